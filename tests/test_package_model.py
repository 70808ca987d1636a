"""train/package_model.py: a model plus its evaluation report becomes a publishable folder."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from stackgan import StackGANConfig, StackGANModel, StackGANPipeline

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("package_model", ROOT / "train" / "package_model.py")
package_model = importlib.util.module_from_spec(spec)
spec.loader.exec_module(package_model)


def stage_report(size, color):
    return {"num_samples": 1000, "image_size": size,
            "attribute_accuracy": {"color": {"accuracy": color, "count": 800}, "shape": {"accuracy": 0.5, "count": 1000},
                                   "all_named": 0.2, "num_images": 1000},
            "heldout_pair_accuracy": 0.25, "diversity": {"oracle": {"ratio": 0.9}},
            "oracle": {"fid": 12.5, "kid": 0.3}}


@pytest.fixture
def inputs(tmp_path):
    torch.manual_seed(0)
    model = StackGANModel(StackGANConfig.from_preset("tiny").to_dict(), stages=2,
                          training={"dataset": "shapes", "steps": 7, "command": "accelerate launch train/train.py"})
    StackGANPipeline(model).save_pretrained(tmp_path / "run")
    report = {"split": "test", "counts": {"test": 1000}, "stages": {"stage1": stage_report(64, 0.4),
                                                                   "stage2": stage_report(256, 0.6)}}
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "report.json").write_text(json.dumps(report))
    Image.new("RGB", (8, 8), "red").save(tmp_path / "eval" / "samples_stage2.png")
    return tmp_path


def test_package_writes_model_report_grid_and_card(inputs):
    out = package_model.main(["--model", str(inputs / "run"), "--report", str(inputs / "eval" / "report.json"),
                              "--out", str(inputs / "bundle"), "--note", "still training"])
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "evaluation.json",
                                                     "model.safetensors", "samples.png"]
    assert json.loads((out / "evaluation.json").read_text())["stages"]["stage2"]["image_size"] == 256
    card = (out / "README.md").read_text()
    assert "| metric | stage1 | stage2 |" in card and "| color accuracy | 0.4 | 0.6 |" in card
    assert "> still training" in card and "![samples](samples.png)" in card
    loaded = StackGANPipeline.from_pretrained(out)
    assert loaded.model.training_info["steps"] == 7
    assert loaded.model.training_info["metrics"]["stage2"]["held-out pair accuracy"] == 0.25


def test_a_bad_report_leaves_the_existing_folder_alone(inputs):
    bundle = inputs / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text("{}")
    (inputs / "eval" / "report.json").write_text("{\"stages\": ")
    with pytest.raises(json.JSONDecodeError):
        package_model.main(["--model", str(inputs / "run"), "--report", str(inputs / "eval" / "report.json"),
                            "--out", str(bundle)])
    assert (bundle / "config.json").read_text() == "{}"
