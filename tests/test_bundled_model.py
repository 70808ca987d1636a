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
# attribute -> lowest accepted accuracy over the 40 images
FLOORS = {"color": 0.35, "background": 0.40, "shape": 0.25}


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
    images = [row[0] for row in (out.stage2 or out.stage1)]
    return attribute_accuracy(load_shapes_oracle(), images, captions)


def test_bundled_model_draws_the_named_attributes(accuracy):
    for key, floor in FLOORS.items():
        assert accuracy[key]["count"] == NUM_CAPTIONS
        assert accuracy[key]["accuracy"] >= floor, f"{key}: {accuracy[key]['accuracy']:.3f} < {floor}"


def test_bundled_model_ships_its_evaluation():
    report = json.loads((BUNDLE / "evaluation.json").read_text())
    stage = "stage2" if "stage2" in report["stages"] else "stage1"
    assert report["counts"]["test"] >= 1000
    assert report["stages"][stage]["attribute_accuracy"]["color"]["accuracy"] >= FLOORS["color"]
