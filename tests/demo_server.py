"""Shared by the tests/test_demo_*.py modules: a tiny model on disk and `python app.py` serving it on
loopback, with every non-loopback connection refused and logged (issue 6: the demo runs offline)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stackgan import StackGANConfig, StackGANModel, StackGANPipeline

ROOT = Path(__file__).resolve().parent.parent
BLOCKED = "NETWORK-BLOCKED"
# Run first in the app's process: refuse (and report) any connection or name lookup that would leave
# the machine. Covers httpx, requests, urllib and asyncio, which all end in socket.connect.
NETWORK_GUARD = f"""
import socket, sys
_LOCAL = {{"127.0.0.1", "::1", "localhost", "0.0.0.0", "::", None}}
_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
def _refuse(what):
    print("{BLOCKED}", what, file=sys.stderr, flush=True)
    raise OSError(f"network access blocked by the test: {{what}}")
def _local(address):
    return not isinstance(address, tuple) or address[0] in _LOCAL or str(address[0]).startswith("127.")
def connect(self, address):
    return _connect(self, address) if _local(address) else _refuse(address)
def connect_ex(self, address):
    return _connect_ex(self, address) if _local(address) else _refuse(address)
def getaddrinfo(host, *args, **kwargs):
    return _getaddrinfo(host, *args, **kwargs) if _local((host,)) else _refuse(host)
socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
"""


def save_tiny_model(folder: Path, stages: int = 2, training: dict | None = None) -> Path:
    """A randomly initialised "tiny" model saved like a published one; it uses the bundled MiniLM."""
    from stackgan.text import TextEncoder

    model = StackGANModel(StackGANConfig.from_preset("tiny").to_dict(), stages=stages, training=training)
    StackGANPipeline(model, text_encoder=TextEncoder()).save_pretrained(folder)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(**extra) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", GRADIO_ANALYTICS_ENABLED="False",
               PYTHONUNBUFFERED="1", **extra)
    env.pop("GRADIO_SERVER_NAME", None)
    env.pop("GRADIO_SERVER_PORT", None)
    return env


@dataclass
class AppServer:
    url: str
    process: subprocess.Popen
    log: Path
    start_seconds: float

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss_bytes(self) -> int:
        """Resident memory of the server process (Linux /proc; no psutil needed)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("VmRSS not found")

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_app(model_folder: Path, log: Path, timeout: float = 120.0, extra_args: tuple = ()) -> AppServer:
    """`python app.py --model model_folder` on a free loopback port, returned once it serves the page."""
    port = free_port()
    code = NETWORK_GUARD + "\nimport runpy; runpy.run_path('app.py', run_name='__main__')\n"
    command = [sys.executable, "-c", code, "--model", str(model_folder), "--host", "127.0.0.1", "--port", str(port),
               "--device", "cpu", *extra_args]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=app_env(), stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    while time.perf_counter() - start < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return AppServer(url, process, log, time.perf_counter() - start)
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise TimeoutError(f"app.py did not serve {url} within {timeout} s:\n{log.read_text()}")


@contextmanager
def tiny_model_app(folder: Path):
    """app.py serving a fresh random "tiny" model saved under `folder`; stopped on exit."""
    app = start_app(save_tiny_model(folder / "model"), folder / "app.log")
    try:
        yield app
    finally:
        app.stop()
