"""Demo speed (issue 6 figures), printed as JSON: app start to ready, and one Generate of 4 images.

    python benchmarks/bench_demo.py                    # the bundled model (demo/pretrained/shapes)
    python benchmarks/bench_demo.py --model PATH       # any model folder
    python benchmarks/bench_demo.py --tiny             # a random "tiny" model (what the tests use)

start_to_ready_s: `python app.py` launched until its page answers (imports, model and text encoder
load, warm-up, server start); start_cpu_s: the CPU seconds the app used by then (less sensitive than
wall time to other work on a shared machine). Generate figures are medians over --runs after one
untimed request:
  server_ms      the request through the running server with gradio_client, files not downloaded
                 (queue, the handler, PNG encoding of 8 images, the event stream on loopback);
  handler_ms     the same handler called in-process (text embedding cached, both stages, PIL);
  pipeline_ms    the pipeline call alone;
  server_cpu_ms  CPU time the server process spent per request (all its threads).
The issue's targets on 2 CPU cores: start to ready <= 15 s, one Generate of 4 images <= 300 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # demo/ is a top-level folder beside app.py, not an installed package
CAPTION = "a large red star on a white background"


def median_ms(fn, runs: int) -> float:
    fn()  # untimed: first call for this caption/settings
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1e3, 1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_app(model: Path, port: int, timeout: float = 180.0) -> tuple[subprocess.Popen, float]:
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    command = [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    if model is not None:
        command += ["--model", str(model)]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while time.perf_counter() - start < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited: {process.stderr.read().decode(errors='replace')}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                if response.status == 200:
                    return process, round(time.perf_counter() - start, 2)
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise TimeoutError("app.py did not become ready")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="model folder (default: the bundled Shapes model)")
    parser.add_argument("--tiny", action="store_true", help="benchmark a random 'tiny' model instead")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--starts", type=int, default=2, help="how many times to time app start-up")
    parser.add_argument("--port", type=int, default=7899)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if args.tiny:
            subprocess.run([sys.executable, "-c", "import sys; from stackgan import *; from stackgan.text import "
                            "TextEncoder; StackGANPipeline(StackGANModel(StackGANConfig.from_preset('tiny')"
                            ".to_dict()), text_encoder=TextEncoder()).save_pretrained(sys.argv[1])", f"{tmp}/tiny"],
                           check=True, capture_output=True)
            model = Path(tmp) / "tiny"

        starts, start_cpu, process = [], [], None
        for attempt in range(args.starts):
            process, seconds = start_app(model, args.port)
            starts.append(seconds)
            start_cpu.append(round(cpu_seconds(process.pid), 2))
            if attempt < args.starts - 1:
                stop(process)
        from gradio_client import Client

        client = Client(f"http://127.0.0.1:{args.port}/", verbose=False, download_files=False)
        cpu_before = cpu_seconds(process.pid)
        server_ms = median_ms(lambda: client.predict(CAPTION, 4, 0, 1.0, "sample", 1.0, api_name="/generate"),
                              args.runs)
        server_cpu_ms = round((cpu_seconds(process.pid) - cpu_before) / (args.runs + 1) * 1e3, 1)
        client.close()
        stop(process)

        import torch
        from demo.handlers import Handlers, warm_up
        from stackgan import StackGANPipeline

        pipeline = StackGANPipeline.from_pretrained(model)
        warm_up(pipeline)
        handlers = Handlers(pipeline)
        handler_ms = median_ms(lambda: handlers.generate(CAPTION, 4, 0), args.runs)
        pipeline_ms = median_ms(lambda: pipeline(CAPTION, num_images_per_prompt=4, seed=0), args.runs)

    print(json.dumps({
        "model": "tiny (random)" if args.tiny else str(model or "bundled demo/pretrained/shapes"),
        "preset": pipeline.config.preset, "stages": pipeline.model.stages, "device": "cpu",
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),  # other work on the machine inflates the figures
        "start_to_ready_s": starts, "start_cpu_s": start_cpu,
        "generate_4_images": {"server_ms": server_ms, "server_cpu_ms": server_cpu_ms, "handler_ms": handler_ms,
                              "pipeline_ms": pipeline_ms, "runs": args.runs},
    }, indent=2))


if __name__ == "__main__":
    main()
