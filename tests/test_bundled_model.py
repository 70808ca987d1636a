"""The bundled Shapes model still draws what captions name (a regression guard on generation).

Forty test captions (data seed 0, the test split's first examples, full captions), one image
each with fixed seeds, read back by the Shapes oracle. The floors sit below what the shipped model
measured with this very test (see demo/pretrained/shapes/evaluation.json for its full report), so
a change that breaks generation, loading or the oracle fails here.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from stackgan import StackGANPipeline
from stackgan.data.shapes import make_captions, sample_attributes
from stackgan.data.shapes.export import SPLIT_STREAMS
from stackgan.metrics.shapes_oracle import attribute_accuracy, load_shapes_oracle

BUNDLE = Path(__file__).resolve().parent.parent / "demo" / "pretrained" / "shapes"
NUM_CAPTIONS = 40
# stage -> attribute -> lowest accepted accuracy over the 40 images (measured: colour 1.0 / 1.0,
# shape 0.975 / 0.975, size 1.0 / 1.0, position 1.0 / 1.0, background 1.0 / 1.0 for
# Stage-I / Stage-II; chance: 0.1, 0.125, 0.33, 0.11, 0.17). Forty images vary by about 7 points.
FLOORS = {"stage1": {"color": 0.9, "shape": 0.7, "size": 0.85, "position": 0.8, "background": 0.9},
          "stage2": {"color": 0.9, "shape": 0.7, "size": 0.85, "position": 0.8, "background": 0.9}}


def caption_of_test_example(index: int) -> str:
    """The first (full) caption of test example `index` of the dataset made with seed 0, drawn as
    stackgan.data.shapes.export.make_example draws it, without rendering the image."""
    rng = np.random.default_rng([0, SPLIT_STREAMS["test"], index])
    return make_captions(sample_attributes(rng), rng)[0][0]


@pytest.fixture(scope="module")
def accuracy():
    pipe = StackGANPipeline.from_pretrained()
    captions = [caption_of_test_example(i) for i in range(NUM_CAPTIONS)]
    out = pipe(captions, seed=0)
    oracle = load_shapes_oracle()
    return {stage: attribute_accuracy(oracle, [row[0] for row in rows], captions)
            for stage, rows in (("stage1", out.stage1), ("stage2", out.stage2)) if rows}


def test_bundled_model_draws_the_named_attributes(accuracy):
    assert set(accuracy) == {"stage1", "stage2"}  # the demo shows both stages
    for stage, floors in FLOORS.items():
        for key, floor in floors.items():
            measured = accuracy[stage][key]
            assert measured["count"] == NUM_CAPTIONS
            assert measured["accuracy"] >= floor, f"{stage} {key}: {measured['accuracy']:.3f} < {floor}"


def test_bundled_model_varies_what_a_caption_leaves_open():
    """Its caption prior draws completions: "a red star" eight times keeps red (the oracle read
    8 of 8 when shipped) and varies place and size (read: 3 places, 2 sizes; without the prior the
    bundle drew one size in one place)."""
    pipe = StackGANPipeline.from_pretrained()
    assert pipe.model.prior is not None
    read = load_shapes_oracle().predict(pipe("a red star", 8, seed=0).stage2[0])
    assert read["color"].count("red") >= 7, read["color"]
    assert len(set(read["position"])) >= 3 and len(set(read["size"])) >= 2, read


def test_bundled_model_ships_its_evaluation():
    report = json.loads((BUNDLE / "evaluation.json").read_text())
    assert report["counts"]["test"] >= 1000
    for stage, floors in FLOORS.items():
        assert report["stages"][stage]["attribute_accuracy"]["color"]["accuracy"] >= floors["color"]


def test_bundled_model_ships_the_stage1_discriminator_its_command_builds():
    """A fine-tune of the bundle's Stage-I (`train.py --init_from demo/pretrained/shapes` with the
    D flags of the card's Stage-I command) continues from the D it was trained against."""
    import shlex

    from stackgan import Stage1Discriminator
    from stackgan.checkpoint import load_discriminator
    from test_train import train
    record = json.loads((BUNDLE / "config.json").read_text())["training"]
    assert record["discriminators"] == [1]
    command = shlex.split(record["stage1"]["command"])
    args = train.parse_args(command[command.index("train/train.py") + 1:])
    discriminator = Stage1Discriminator(train.build_config(args, None))
    shipped = load_discriminator(BUNDLE, 1)
    assert shipped is not None and train.mismatched(discriminator, shipped) == []
    discriminator.load_state_dict(shipped)


def test_bundled_model_fits_the_size_budget():
    files = [p for p in BUNDLE.iterdir() if p.is_file()]
    assert {"model.safetensors", "config.json", "README.md", "evaluation.json", "samples.png"} <= {p.name for p in files}
    assert sum(p.stat().st_size for p in files) <= 20 * 1024 * 1024  # the limit for the shipped folder
