"""train/evaluate.py end to end on a tiny random model and a tiny Shapes dataset."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from stackgan import StackGANConfig, StackGANModel, StackGANPipeline
from stackgan.data.shapes import generate
from stackgan.metrics import FeatureStatistics
from stackgan.metrics.inception import FID_WEIGHTS_ENV, FIDInceptionV3

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("evaluate", ROOT / "train" / "evaluate.py")
evaluate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(evaluate)


def save_tiny_model(folder, stages):
    torch.manual_seed(0)
    model = StackGANModel(StackGANConfig.from_preset("tiny").to_dict(), stages=stages)
    return StackGANPipeline(model).save_pretrained(folder)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    generate(folder, 30, seed=0, num_heldout=10, workers=1, progress=False)   # test split: 3
    return folder


def arguments(model, data_dir, output_dir, *extra):
    return evaluate.parse_args([
        "--model", str(model), "--dataset", "shapes", "--data_dir", str(data_dir),
        "--output_dir", str(output_dir), "--num_samples", "4", "--num_heldout", "2",
        "--diversity_captions", "2", "--diversity_samples", "2", "--is_splits", "2",
        "--kid_subsets", "3", *extra])


def save_random_inception(path):
    """The real FIDInceptionV3 with random weights, saved where --fid_weights reads it: the
    plumbing runs through the real network and the real loader (the TF weights cannot be fetched
    here; tests/test_metrics_inception.py checks the architecture against their key list)."""
    torch.manual_seed(0)
    save_file(FIDInceptionV3().state_dict(), str(path))
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory, data_dir):
    tmp = tmp_path_factory.mktemp("evaluate")
    model = save_tiny_model(tmp / "model", stages=2)
    weights = save_random_inception(tmp / "random-inception.safetensors")
    args = arguments(model, data_dir, tmp / "out", "--fid_weights", str(weights))
    return evaluate.main(args), tmp


def test_report_has_every_metric_per_stage(report):
    report, tmp = report
    assert set(report["stages"]) == {"stage1", "stage2"} and report["skipped"] == {}
    assert report["counts"] == {"test": 4, "heldout": 2, "real": 3, "diversity_captions": 2,
                                "diversity_samples": 2}                  # the split has 3 images
    assert report["seeds"]["test"] == 0 and report["seeds"]["diversity"] == 2_000_000
    for stage, size in (("stage1", 64), ("stage2", 256)):
        metrics = report["stages"][stage]
        assert metrics["image_size"] == size and metrics["num_samples"] == 4
        for name in ("inception", "oracle"):
            assert {"fid", "kid", "kid_std", "inception_score"} <= set(metrics[name])
            stats = FeatureStatistics.load(tmp / "out" / f"reference_{name}_{size}px.npz")
            assert stats.metadata["image_size"] == size
            assert stats.metadata["dataset"] == "shapes/test"
        # exp(mutual information) is at most the number of images in a split (4 samples / 2 splits)
        assert 1 - 1e-6 <= metrics["inception"]["inception_score"][0] <= 2 + 1e-6
        assert metrics["attribute_accuracy"]["shape"]["count"] == 4
        assert metrics["heldout_attribute_accuracy"]["num_images"] == 2
        assert 0 <= metrics["heldout_pair_accuracy"] <= 1
        assert {"generated", "real", "ratio"} <= set(metrics["diversity"]["oracle"])
        assert (tmp / "out" / f"samples_{stage}.png").is_file()
    assert set(report["stages"]["stage2"]["diversity"]["ms_ssim"]) == {"generated", "real"}
    assert "not computed" in report["stages"]["stage1"]["diversity"]["ms_ssim"]
    assert json.loads((tmp / "out" / "report.json").read_text()) == json.loads(json.dumps(report))


def test_stage1_checkpoint_without_fid_weights(tmp_path, data_dir, monkeypatch):
    monkeypatch.delenv(FID_WEIGHTS_ENV, raising=False)
    save_tiny_model(tmp_path / "run" / "checkpoint-10" / "pipeline", stages=1)
    report = evaluate.main(arguments(tmp_path / "run" / "checkpoint-10", data_dir,
                                     tmp_path / "out"))
    assert set(report["stages"]) == {"stage1"}
    assert "pt_inception-2015-12-05-6726825d.pth" in report["skipped"]["inception"]
    assert "inception" not in report["stages"]["stage1"]


def test_missing_explicit_fid_weights_is_an_error(tmp_path, data_dir):
    args = arguments("unused", data_dir, tmp_path, "--fid_weights", str(tmp_path / "no.pth"))
    with pytest.raises(FileNotFoundError, match="pt_inception"):
        evaluate.load_extractors(args)
