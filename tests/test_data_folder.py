"""Captioned folders (imagefolder + metadata.jsonl) and the bad-input policy."""

import json

import numpy as np
import pytest
from PIL import Image

from stackgan.data import InputErrors, build_dataset
from stackgan.data.folder import load_folder


def write_folder(root, records, images=None, raw_lines=()):
    """Write images (small solid PNGs) and metadata.jsonl lines into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for number, name in enumerate(images if images is not None else [r["file_name"] for r in records]):
        Image.new("RGB", (40, 30), (10 * number, 100, 200)).save(root / name)
    lines = [json.dumps(r) for r in records] + list(raw_lines)
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root / "metadata.jsonl"


def test_reads_string_or_list_captions_and_labels(tmp_path):
    write_folder(tmp_path / "train", [
        {"file_name": "a.png", "text": "one caption"},
        {"file_name": "b.png", "text": ["first", " second "], "label": "cat", "other": 1},
    ])
    examples = load_folder(tmp_path, "train", InputErrors())
    assert [e.key for e in examples] == ["a.png", "b.png"]
    assert examples[0].captions == ("one caption",) and examples[1].captions == ("first", "second")
    assert examples[1].label == "cat" and examples[0].label is None
    assert examples[1].origin.endswith("metadata.jsonl:2")


def test_top_level_metadata_is_the_train_split(tmp_path):
    write_folder(tmp_path, [{"file_name": "a.png", "text": "x"}])
    assert len(load_folder(tmp_path, "train", InputErrors())) == 1
    with pytest.raises(ValueError, match=r"no metadata.jsonl for split 'test'.*test/metadata.jsonl"):
        load_folder(tmp_path, "test", InputErrors())


@pytest.mark.parametrize("raw, message", [
    ('{"file_name": "a.png", "text": "x"', r"metadata.jsonl:2: not valid JSON"),
    ('["a.png"]', r"metadata.jsonl:2: expected a JSON object"),
    ('{"text": "x"}', r"metadata.jsonl:2: 'file_name' must be a non-empty string"),
    ('{"file_name": "gone.png", "text": "x"}', r"metadata.jsonl:2: image file .*gone.png does not exist"),
    ('{"file_name": "b.png", "text": ["fine", "   "]}', r"metadata.jsonl:2: caption 1 is '   '"),
    ('{"file_name": "b.png", "text": []}', r"metadata.jsonl:2: no usable caption"),
    ('{"file_name": "b.png"}', r"metadata.jsonl:2: no 'text' field"),
    ('{"file_name": "a.png", "text": "again"}', r"metadata.jsonl:2: file_name 'a.png' is listed twice"),
    ('{"file_name": "b.png", "text": "x", "label": 1.5}', r"metadata.jsonl:2: 'label' must be"),
])
def test_bad_lines_raise_with_file_and_line(tmp_path, raw, message):
    write_folder(tmp_path, [{"file_name": "a.png", "text": "x"}], images=["a.png", "b.png"], raw_lines=[raw])
    with pytest.raises(ValueError, match=message):
        load_folder(tmp_path, "train", InputErrors())


def test_skip_counts_bad_lines_and_prints_a_summary(tmp_path, capsys):
    write_folder(tmp_path, [{"file_name": "a.png", "text": "x"}], images=["a.png", "b.png", "c.png"], raw_lines=[
        "not json", '{"file_name": "gone.png", "text": "x"}', '{"file_name": "b.png", "text": ["ok", ""]}',
        '{"file_name": "c.png", "text": ""}',
    ])
    errors = InputErrors("skip")
    examples = load_folder(tmp_path, "train", errors)
    assert [e.key for e in examples] == ["a.png", "b.png"] and examples[1].captions == ("ok",)
    assert errors.counts == {"malformed line": 1, "missing image": 1, "blank caption": 2, "image without captions": 1}
    errors.print_summary("folder")
    out = capsys.readouterr().out
    assert "skipped 5 bad input(s)" in out and "metadata.jsonl:3" in out


def test_on_error_must_be_a_known_choice():
    with pytest.raises(ValueError, match="on_error must be one of"):
        InputErrors("ignore")


def _truncated_png(path):
    Image.new("RGB", (64, 64), (255, 0, 0)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_corrupt_images_raise_at_cache_build_or_are_skipped(tmp_path, data_encoder, capsys):
    write_folder(tmp_path, [{"file_name": n, "text": f"caption {n}"} for n in ("a.png", "b.png", "c.png", "d.png")])
    _truncated_png(tmp_path / "b.png")
    (tmp_path / "c.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"metadata.jsonl:2: cannot read image .*b.png"):
        build_dataset("folder", tmp_path, 64, data_encoder, workers=1)
    assert not list((tmp_path / "stackgan_cache").rglob("*.npy"))  # no half-built cache left behind
    dataset = build_dataset("folder", tmp_path, 64, data_encoder, on_error="skip", workers=1)
    assert dataset.keys == ["a.png", "d.png"] and len(dataset) == 2
    assert dataset.captions == [("caption a.png",), ("caption d.png",)]
    assert tuple(dataset.images[1][:, 38, 38]) == (30, 100, 200)  # d.png's pixels moved up a row
    assert "skipped 2 bad input(s)" in capsys.readouterr().out
    # The cache remembers what it skipped: a strict run still refuses it.
    with pytest.raises(ValueError, match="cannot read image"):
        build_dataset("folder", tmp_path, 64, data_encoder, workers=1)


def test_folder_images_are_resized_into_the_cache(tmp_path, data_encoder):
    write_folder(tmp_path, [{"file_name": "a.png", "text": "x"}, {"file_name": "b.png", "text": "y"}])
    dataset = build_dataset("folder", tmp_path, 64, data_encoder, crop="center", workers=1)
    assert dataset.images.shape == (2, 3, 76, 76)
    expected = (np.array([0, 100, 200]) * 2 / 255 - 1).astype(np.float32)
    np.testing.assert_allclose(dataset[0]["image"].mean(dim=(1, 2)).numpy(), expected, atol=1e-6)
