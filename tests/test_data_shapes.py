"""The Shapes dataset: vocabulary, sampling, rendering, captions, parsing, and the files on disk."""

import json

import numpy as np
import pytest
from PIL import Image

from stackgan.data import shapes
from stackgan.data.shapes import (BACKGROUNDS, COLORS, HELD_OUT_PAIRS, PATTERNS, POSITIONS, SHAPES, SIZES,
                                  generate, make_captions, parse_caption, render, sample_attributes)
from stackgan.data.shapes.__main__ import main
from stackgan.data.shapes.vocabulary import BACKGROUND_RGB, COLOR_RGB

BASE = {"shape": "square", "color": "red", "size": "large", "position": "center", "pattern": "plain",
        "background": "white"}


def test_vocabulary_is_the_design_one():
    assert SHAPES == ("circle", "square", "triangle", "star", "heart", "diamond", "hexagon", "cross")
    assert COLORS == ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "white", "black")
    assert SIZES == ("small", "medium", "large")
    assert POSITIONS == ("center", "top", "bottom", "left", "right", "top left", "top right", "bottom left",
                         "bottom right")
    assert PATTERNS == ("plain", "striped", "dotted", "checkered")
    assert BACKGROUNDS == ("white", "black", "gray", "light blue", "beige", "dark green")


def test_held_out_pairs_leave_every_shape_and_color_in_train():
    assert all(shape in SHAPES and color in COLORS for shape, color in HELD_OUT_PAIRS)
    rng = np.random.default_rng(0)
    train = [sample_attributes(rng) for _ in range(3000)]
    pairs = {(a["shape"], a["color"]) for a in train}
    assert not pairs & set(HELD_OUT_PAIRS)
    assert {a["shape"] for a in train} == set(SHAPES) and {a["color"] for a in train} == set(COLORS)
    assert all(a["background"] != a["color"] for a in train)
    held = [sample_attributes(rng, held_out=True) for _ in range(200)]
    assert {(a["shape"], a["color"]) for a in held} == set(HELD_OUT_PAIRS)


def test_sampling_is_seeded():
    first = [sample_attributes(np.random.default_rng(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    assert any(sample_attributes(np.random.default_rng(seed)) != first[0] for seed in (8, 9))


def test_render_draws_the_named_colors_antialiased():
    image = np.asarray(render({**BASE, "shape": "circle"}))
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    assert tuple(image[128, 128]) == COLOR_RGB["red"]
    assert tuple(image[2, 2]) == BACKGROUND_RGB["white"]
    # Anti-aliased: the edge holds blends, not just the two colours.
    colors = {tuple(p) for p in image.reshape(-1, 3)}
    assert len(colors) > 10


def _object_mask(attributes, size=256):
    image = np.asarray(render(attributes, size=size)).astype(int)
    return np.abs(image - np.array(BACKGROUND_RGB[attributes["background"]])).sum(-1) > 30


@pytest.mark.parametrize("position", POSITIONS)
def test_render_places_the_object_where_named(position):
    ys, xs = np.nonzero(_object_mask({**BASE, "size": "small", "position": position}))
    cx, cy = xs.mean() / 256, ys.mean() / 256
    expect_x = 0.5 if "left" not in position and "right" not in position else (0.25 if "left" in position else 0.75)
    expect_y = 0.5 if "top" not in position and "bottom" not in position else (0.25 if "top" in position else 0.75)
    assert abs(cx - expect_x) < 0.15 and abs(cy - expect_y) < 0.15


def test_render_sizes_are_ordered_and_shapes_differ():
    areas = [_object_mask({**BASE, "size": s}).sum() for s in SIZES]
    assert areas[0] < areas[1] < areas[2]
    masks = {s: _object_mask({**BASE, "shape": s}, size=64) for s in SHAPES}
    for a in SHAPES:
        for b in SHAPES:
            if a < b:
                assert (masks[a] != masks[b]).sum() > 40, (a, b)


@pytest.mark.parametrize("pattern", ["striped", "dotted", "checkered"])
def test_patterns_are_fine_detail_that_64px_blurs(pattern):
    image = render({**BASE, "pattern": pattern}, rng=np.random.default_rng(0))

    def contrast(img, size):
        a = np.asarray(img.resize((size, size), Image.BILINEAR) if size != 256 else img).astype(float)
        middle = a[int(size * 0.4):int(size * 0.6), int(size * 0.4):int(size * 0.6)]
        return middle.std(axis=(0, 1)).mean()

    plain = contrast(render(BASE), 256)
    assert plain < 1 and contrast(image, 256) > 20
    assert contrast(image, 64) < 0.35 * contrast(image, 256)


def test_captions_name_what_they_say_and_parse_back():
    rng = np.random.default_rng(0)
    texts = set()
    for _ in range(300):
        attributes = sample_attributes(rng)
        captions = make_captions(attributes, rng)
        assert len(captions) >= 5 and len({c for c, _ in captions}) == len(captions)
        assert set(captions[0][1]) == set(shapes.ATTRIBUTE_KEYS)
        assert any(len(keys) < 6 for _, keys in captions)  # some name only part, as CUB's do
        for caption, keys in captions:
            assert parse_caption(caption) == {k: attributes[k] for k in keys}, caption
            texts.add(caption)
    assert len(texts) > 1500


@pytest.mark.parametrize("sentence, expected", [
    ("A big violet star in the upper-left corner on a grey background",
     {"shape": "star", "color": "purple", "size": "large", "position": "top left", "background": "gray"}),
    ("the background is pale blue and the heart is white",
     {"shape": "heart", "color": "white", "background": "light blue"}),
    ("Tiny polka-dot crosses at the bottom",
     {"shape": "cross", "size": "small", "position": "bottom", "pattern": "dotted"}),
    ("a white circle on black", {"shape": "circle", "color": "white"}),
    ("a photo of a dog", {}),
])
def test_parse_caption_reads_free_sentences(sentence, expected):
    assert parse_caption(sentence) == expected


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_generate_writes_captioned_folders(data_shapes_dir):
    info = json.loads((data_shapes_dir / "dataset_info.json").read_text())
    assert info["splits"] == {"train": 16, "test": 4, "heldout": 4}
    for split, count in info["splits"].items():
        lines = (data_shapes_dir / split / "metadata.jsonl").read_text().splitlines()
        assert len(lines) == count
        for line in lines:
            record = json.loads(line)
            assert (data_shapes_dir / split / record["file_name"]).is_file()
            assert len(record["text"]) >= 5 and len(record["named_attributes"]) == len(record["text"])
            assert set(record["attributes"]) == set(shapes.ATTRIBUTE_KEYS)
            pair = (record["attributes"]["shape"], record["attributes"]["color"])
            assert (pair in HELD_OUT_PAIRS) == (split == "heldout")
            assert record["label"] == f"{pair[1]} {pair[0]}"
            with Image.open(data_shapes_dir / split / record["file_name"]) as image:
                assert image.size == (256, 256) and image.mode == "RGB"


def test_generate_is_byte_identical_for_a_seed_and_any_worker_count(tmp_path, data_shapes_dir):
    generate(tmp_path / "again", num_images=20, seed=0, test_fraction=0.2, num_heldout=4, workers=2, progress=False)
    assert _files(tmp_path / "again") == _files(data_shapes_dir)
    generate(tmp_path / "other", num_images=20, seed=1, test_fraction=0.2, num_heldout=4, workers=1, progress=False)
    assert _files(tmp_path / "other") != _files(data_shapes_dir)


def test_generate_refuses_to_overwrite_and_cli_runs(tmp_path, capsys):
    main(["--out", str(tmp_path), "--num-images", "3", "--num-heldout", "1", "--workers", "1"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["splits"] == {"train": 3, "test": 0, "heldout": 1} and summary["images_per_second"] > 0
    with pytest.raises(FileExistsError, match="overwrite"):
        generate(tmp_path, num_images=3, progress=False, workers=1)
    generate(tmp_path, num_images=2, num_heldout=1, overwrite=True, progress=False, workers=1)
    assert len(list((tmp_path / "train").glob("*.png"))) == 2
