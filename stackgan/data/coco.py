"""MS-COCO 2014 captions, as StackGAN used them (train2014 to train, val2014 to test).

Layout (``DATA_DIR`` is e.g. ``Data/coco``)::

    train2014/COCO_train2014_000000000009.jpg
    val2014/COCO_val2014_000000000042.jpg
    annotations/captions_train2014.json
    annotations/captions_val2014.json

Each annotation file has ``images`` (``id``, ``file_name``) and ``annotations`` (``image_id``,
``caption``); most images have 5 captions.
"""

from __future__ import annotations

import json
from pathlib import Path

from .problems import InputErrors
from .records import Example, check_captions

SPLIT_FOLDERS = {"train": "train2014", "test": "val2014"}


def _read_json(path: Path):
    if not path.is_file():
        raise ValueError(f"{path} does not exist (COCO 2014 captions go in DATA_DIR/annotations/)")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}: malformed JSON ({error.msg} at column {error.colno})") from error


def load_coco(data_dir: str | Path, split: str, errors: InputErrors) -> list[Example]:
    """List a COCO 2014 split ("train" = train2014, "test" = val2014) with its captions."""
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"split must be one of {tuple(SPLIT_FOLDERS)} for COCO, got {split!r}")
    data_dir = Path(data_dir)
    folder = SPLIT_FOLDERS[split]
    path = data_dir / "annotations" / f"captions_{folder}.json"
    data = _read_json(path)
    if not (isinstance(data, dict) and isinstance(data.get("images"), list)
            and isinstance(data.get("annotations"), list)):
        raise ValueError(f"{path}: expected an object with 'images' and 'annotations' lists")

    images = {}
    for number, image in enumerate(data["images"]):
        where = f"{path} [images[{number}]]"
        if not (isinstance(image, dict) and isinstance(image.get("id"), int)
                and isinstance(image.get("file_name"), str)):
            errors.report("malformed entry", where,
                          f"expected an object with an integer 'id' and a 'file_name', got {image!r}")
            continue
        if image["id"] in images:
            errors.report("duplicate entry", where, f"image id {image['id']} is listed twice")
            continue
        images[image["id"]] = (image["file_name"], where)

    captions = {image_id: [] for image_id in images}
    for number, annotation in enumerate(data["annotations"]):
        where = f"{path} [annotations[{number}]]"
        image_id = annotation.get("image_id") if isinstance(annotation, dict) else None
        if image_id not in captions:
            errors.report("malformed entry", where, f"annotation refers to no listed image: {annotation!r}")
            continue
        # Checked one by one so that a blank caption names its own annotation.
        captions[image_id].extend(check_captions([annotation.get("caption")], where, errors))

    examples = []
    for image_id in sorted(images):
        file_name, where = images[image_id]
        image_path = data_dir / folder / file_name
        if not image_path.is_file():
            errors.report("missing image", where, f"image file {image_path} does not exist")
            continue
        if not captions[image_id]:
            errors.report("image without captions", where, f"no caption for image id {image_id}")
            continue
        examples.append(Example(f"{folder}/{file_name}", image_path, tuple(captions[image_id]), where))
    return examples
