"""COCO 2014 captions (annotations/captions_{train,val}2014.json)."""

import json

import pytest
from PIL import Image

from stackgan.data import InputErrors, build_dataset
from stackgan.data.coco import load_coco


def make_coco(root, images=None, annotations=None, split="train2014"):
    """A COCO 2014 tree: <split>/COCO_<split>_<id>.jpg and annotations/captions_<split>.json."""
    ids = [9, 25, 30]
    if images is None:
        images = [{"id": i, "file_name": f"COCO_{split}_{i:012d}.jpg", "width": 64, "height": 48} for i in ids]
    if annotations is None:
        annotations = [{"id": 100 + n, "image_id": ids[n % 3], "caption": f"a scene number {n}"} for n in range(7)]
    (root / split).mkdir(parents=True, exist_ok=True)
    for image in images:
        if isinstance(image, dict) and "file_name" in image:
            Image.new("RGB", (64, 48), (50, 60, 70)).save(root / split / image["file_name"])
    (root / "annotations").mkdir(exist_ok=True)
    path = root / "annotations" / f"captions_{split}.json"
    path.write_text(json.dumps({"info": {}, "images": images, "annotations": annotations}, indent=1))
    return path


def test_groups_captions_by_image(tmp_path):
    make_coco(tmp_path)
    examples = load_coco(tmp_path, "train", InputErrors())
    assert [e.key for e in examples] == [f"train2014/COCO_train2014_{i:012d}.jpg" for i in (9, 25, 30)]
    assert examples[0].captions == ("a scene number 0", "a scene number 3", "a scene number 6")
    assert examples[1].captions == ("a scene number 1", "a scene number 4")
    assert all(e.label is None for e in examples)


def test_test_split_is_val2014(tmp_path, data_encoder):
    make_coco(tmp_path, split="val2014")
    assert len(load_coco(tmp_path, "test", InputErrors())) == 3
    with pytest.raises(ValueError, match="split must be one of"):
        load_coco(tmp_path, "val", InputErrors())
    dataset = build_dataset("coco", tmp_path, 64, data_encoder, split="test", workers=1)
    assert len(dataset) == 3 and dataset.labels is None and "wrong_image" in dataset[0]


def test_malformed_json_names_the_line(tmp_path):
    path = make_coco(tmp_path)
    text = path.read_text().splitlines()
    text[4] = text[4] + ",,"
    path.write_text("\n".join(text))
    with pytest.raises(ValueError, match=r"captions_train2014.json:5: malformed JSON"):
        load_coco(tmp_path, "train", InputErrors())


@pytest.mark.parametrize("annotations, message", [
    ([{"image_id": 9, "caption": "ok"}, {"image_id": 9, "caption": "  "}], r"\[annotations\[1\]\]: caption 0 is '  '"),
    ([{"image_id": 9, "caption": "ok"}, {"image_id": 77, "caption": "x"}],
     r"\[annotations\[1\]\]: annotation refers to no listed image"),
    ([{"image_id": 9, "caption": "ok"}], r"\[images\[1\]\]: no caption for image id 25"),
])
def test_bad_annotations_raise_with_their_entry(tmp_path, annotations, message):
    make_coco(tmp_path, annotations=annotations)
    with pytest.raises(ValueError, match=message):
        load_coco(tmp_path, "train", InputErrors())


def test_missing_images_raise_or_are_skipped(tmp_path, capsys):
    make_coco(tmp_path)
    (tmp_path / "train2014" / "COCO_train2014_000000000025.jpg").unlink()
    with pytest.raises(ValueError, match=r"\[images\[1\]\]: image file .*000000000025.jpg does not exist"):
        load_coco(tmp_path, "train", InputErrors())
    errors = InputErrors("skip")
    assert len(load_coco(tmp_path, "train", errors)) == 2 and errors.counts == {"missing image": 1}
    errors.print_summary("coco")
    assert "1 x missing image" in capsys.readouterr().out
