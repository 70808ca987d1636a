"""train/probe_discriminator.py on a real (tiny) training checkpoint."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from stackgan.data.shapes import generate, parse_caption, sample_attributes

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "train"))  # the script imports its sibling evaluate.py, as when run
spec = importlib.util.spec_from_file_location("probe_script", ROOT / "train" / "probe_discriminator.py")
probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probe)
spec = importlib.util.spec_from_file_location("train_script", ROOT / "train" / "train.py")
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)


def test_each_probe_caption_names_exactly_the_attributes_it_was_written_from():
    rng = np.random.default_rng(0)
    for _ in range(200):
        attributes = sample_attributes(rng)
        key = list(probe.VALUES)[int(rng.integers(6))]
        value = list(probe.VALUES[key])[int(rng.integers(len(probe.VALUES[key])))]
        assert parse_caption(probe.full_caption({**attributes, key: value})) == {**attributes, key: value}


@pytest.mark.parametrize("text_input", ["projection", "generator_mu"])
def test_probe_reports_every_attribute_of_a_checkpoints_discriminator(tmp_path, text_input):
    data = tmp_path / "shapes"
    generate(data, num_images=20, seed=0, workers=1, progress=False)
    argv = ["--dataset", "shapes", "--data_dir", str(data), "--output_dir", str(tmp_path / "run"), "--preset",
            "tiny", "--train_batch_size", "4", "--max_train_steps", "1", "--checkpointing_steps", "1",
            "--validation_steps", "1000", "--contrastive_weight", "1.0", "--d_text_input", text_input]
    train.main(train.parse_args(argv))
    report = probe.main(["--checkpoint", str(tmp_path / "run" / "checkpoint-1"), "--data_dir", str(data)])
    images = report["images"]
    assert report["stage"] == 1 and images == 2  # the test split of 20 images
    assert json.loads((tmp_path / "run" / "checkpoint-1" / "probe.json").read_text()) == report
    counts = {key: row["values"] for key, row in report["attributes"].items()}
    assert counts == {"shape": 8, "color": 10, "size": 3, "position": 9, "pattern": 4, "background": 6}
    for row in report["attributes"].values():
        for score in (row["logit"], row["contrastive"]):
            assert score * images == pytest.approx(round(score * images))  # a share of the images
    with pytest.raises(FileNotFoundError, match="discriminator.safetensors not found"):
        probe.main(["--checkpoint", str(tmp_path / "run"), "--data_dir", str(data)])
