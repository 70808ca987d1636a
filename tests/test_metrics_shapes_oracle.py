"""The shipped Shapes oracle reads real Shapes images; the scoring follows the captions."""

import pytest
import torch
from safetensors.torch import save_file

from stackgan.data.shapes import ATTRIBUTE_KEYS, SHAPES, make_example
from stackgan.metrics.shapes_oracle import (ORACLE_FILE, ShapesOracle, attribute_accuracy,
                                            load_shapes_oracle, to_stage1)

NUM_IMAGES = 200


@pytest.fixture(scope="module")
def oracle():
    return load_shapes_oracle()


@pytest.fixture(scope="module")
def real_test_images():
    # Seed 12345: not a seed the oracle was trained or tested on.
    examples = [make_example(12345, "test", index) for index in range(NUM_IMAGES)]
    return [image for _, _, image in examples], [attributes for attributes, _, _ in examples]


def test_shipped_file_is_small():
    assert ORACLE_FILE.stat().st_size < 3_000_000


def test_at_least_99_percent_on_real_256px_images(oracle, real_test_images):
    images, attributes = real_test_images
    report = attribute_accuracy(oracle, images, attributes)
    for key in ATTRIBUTE_KEYS:
        assert report[key]["count"] == NUM_IMAGES
        assert report[key]["accuracy"] >= 0.99, (key, report[key])


def test_reads_64px_images_except_fine_patterns(oracle, real_test_images):
    images, attributes = real_test_images
    report = attribute_accuracy(oracle, [to_stage1(im) for im in images], attributes)
    for key in ("shape", "color", "size", "position", "background"):
        assert report[key]["accuracy"] >= 0.95, (key, report[key])


def test_scores_only_what_captions_name(oracle, real_test_images):
    images, attributes = real_test_images
    right = [f"a {a['color']} {a['shape']}" for a in attributes[:10]]
    other_shape = next(s for s in SHAPES if s != attributes[0]["shape"])
    wrong = f"a {attributes[0]['size']} {attributes[0]['color']} {other_shape}"
    report = attribute_accuracy(oracle, images[:10] + images[:1], right + [wrong])
    assert report["shape"]["count"] == report["color"]["count"] == 11
    assert report["size"]["count"] == 1 and report["pattern"]["count"] == 0
    assert report["pattern"]["accuracy"] is None and report["num_images"] == 11
    assert report["shape"]["accuracy"] == pytest.approx(10 / 11)
    assert report["all_named"] == pytest.approx(10 / 11)


def test_features_and_heads(oracle):
    with torch.no_grad():
        for size in (64, 256):
            features = oracle(torch.rand(2, 3, size, size))
            assert features.shape == (2, oracle.feature_dim)
            assert {k: v.shape[1] for k, v in oracle.classify(features).items()} == {
                "shape": 8, "color": 10, "size": 3, "position": 9, "pattern": 4, "background": 6}


def test_missing_weights_say_how_to_train(tmp_path):
    with pytest.raises(FileNotFoundError, match="shapes_oracle train"):
        load_shapes_oracle(tmp_path / "absent.safetensors")


def test_weights_from_another_vocabulary_are_refused(tmp_path):
    state = {k: v.clone() for k, v in ShapesOracle().state_dict().items()}
    save_file(state, str(tmp_path / "old.safetensors"), metadata={"vocabulary": "{}"})
    with pytest.raises(ValueError, match="vocabulary"):
        load_shapes_oracle(tmp_path / "old.safetensors")
