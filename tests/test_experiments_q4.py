"""experiments/q4_fid.py --smoke on a tiny random model and a tiny Shapes dataset."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import torch

from stackgan import StackGANConfig, StackGANModel, StackGANPipeline
from stackgan.data.shapes import generate

ROOT = Path(__file__).resolve().parent.parent


def numbers(value):
    if isinstance(value, dict):
        return [x for v in value.values() for x in numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in numbers(v)]
    return [value] if isinstance(value, float) else []


def test_smoke_run_writes_results_and_figures(tmp_path):
    generate(tmp_path / "shapes", 48, seed=0, test_fraction=0.5, num_heldout=1, workers=1,
             progress=False)
    torch.manual_seed(0)
    model = StackGANModel(StackGANConfig.from_preset("tiny").to_dict(), stages=2)
    StackGANPipeline(model).save_pretrained(tmp_path / "model")
    results = tmp_path / "q4.json"
    subprocess.run([sys.executable, str(ROOT / "experiments" / "q4_fid.py"), "--smoke",
                    "--model", str(tmp_path / "model"), "--data_dir", str(tmp_path / "shapes"),
                    "--out", str(tmp_path / "figures"), "--results", str(results)],
                   check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    report = json.loads(results.read_text())
    assert {"fid_vs_n", "resize", "fid_vs_accuracy", "seconds", "counts"} <= set(report)
    for curve in report["fid_vs_n"].values():
        assert curve["n"] == [8, 16] and {"mean", "std", "fid_infinity"} <= set(curve)
    assert len(report["resize"]) == 6
    rows = report["fid_vs_accuracy"]
    own, shuffled = rows["real images, own captions"], rows["real images, shuffled captions"]
    assert own["fid_64"] == shuffled["fid_64"]          # FID never reads the captions
    assert all(math.isfinite(x) for x in numbers(report))
    for name in ("q4_fid_vs_n.png", "q4_resize.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 0
