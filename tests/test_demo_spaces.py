"""Hugging Face Spaces readiness (issue 6 §5): README front matter agrees with requirements.txt and
the app, and app.py imports with no GPU, no network and no `spaces` package."""

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from demo_server import BLOCKED, NETWORK_GUARD, ROOT, app_env
from stackgan import StackGANConfig

SPACES_COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
README = ROOT / "README.md"


def front_matter(path: Path) -> tuple[dict, str]:
    assert path.is_file(), f"{path} is missing: its top must be the Spaces front matter " \
                           "(docs/_sections/spaces_front_matter.yml)"
    text = path.read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, flags=re.DOTALL)
    assert match, f"{path.name} must start with a '---' front matter block (Spaces reads only the top)"
    return yaml.safe_load(match.group(1)), match.group(1)


def pinned(requirement: str) -> str:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    pins = [line.split("==", 1)[1].split()[0] for line in lines if re.match(rf"{requirement}\s*==", line)]
    assert len(pins) == 1, f"requirements.txt must pin {requirement} exactly once"
    return pins[0]


def test_spaces_front_matter_matches_requirements_and_app():
    meta, raw = front_matter(README)
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == pinned("gradio"), "sdk_version must equal requirements.txt's gradio pin"
    assert (ROOT / meta["app_file"]).is_file() and meta["app_file"] == "app.py"
    # Unquoted, YAML reads 3.10 as the float 3.1: Spaces wants the string.
    assert isinstance(meta["python_version"], str) and re.search(r"python_version:\s*[\"']", raw)
    assert isinstance(meta["sdk_version"], str)
    assert meta["license"] == "mit"
    assert meta["title"] and meta["emoji"]
    assert {meta["colorFrom"], meta["colorTo"]} <= SPACES_COLORS
    models = meta["models"]
    assert StackGANConfig().text_encoder in models, "list the text encoder's repo under models:"
    assert any(re.fullmatch(r"[\w.-]+/[\w.-]*stackgan[\w.-]*", model, flags=re.IGNORECASE) for model in models), \
        "list the StackGAN model repo under models:"
    bundled = ROOT / "demo" / "pretrained" / "shapes" / "config.json"
    if bundled.is_file() and (repo := json.loads(bundled.read_text()).get("training", {}).get("repo_id")):
        assert repo in models, f"the bundled model's repo {repo} is missing from models:"


def test_app_imports_with_no_gpu_no_network_and_no_spaces_package():
    code = NETWORK_GUARD + """
import sys
import app
assert "gradio" not in sys.modules and "torch" not in sys.modules, "importing app.py must load nothing"
import torch
import demo
from demo.zerogpu import gpu, spaces
assert not torch.cuda.is_available()
assert spaces is None
work = lambda: 1
assert gpu(work) is work
try:
    app.main(["--help"])
except SystemExit as exit:
    assert exit.code == 0
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180,
                            env=app_env(CUDA_VISIBLE_DEVICES=""))
    assert result.returncode == 0, result.stderr
    assert BLOCKED not in result.stderr
    for flag in ("--model", "--host", "--port", "--device"):
        assert flag in result.stdout
