"""CUB-200-2011 and Oxford-102 in the StackGAN layout (hanzhanggit/StackGAN, StackGAN-Pytorch).

CUB (``DATA_DIR`` is e.g. ``Data/birds``)::

    CUB_200_2011/images/<key>.jpg          key = "001.Black_footed_Albatross/Black_Footed_..._796111"
    CUB_200_2011/images.txt                "<image id> <key>.jpg" per line
    CUB_200_2011/bounding_boxes.txt        "<image id> <x> <y> <width> <height>" per line
    text_c10/<key>.txt                     10 captions, one per line
    train/ and test/                       filenames.pickle (keys), class_info.pickle (class ids),
                                           char-CNN-RNN-embeddings.pickle (N, 10, 1024)

Oxford-102 (``Data/flowers``)::

    jpg/image_00001.jpg                    key = "jpg/image_00001"
    text_c10/class_00077/image_00001.txt   10 captions; the folder is the image's class id
    train/ and test/                       as for CUB (the splits have disjoint classes)

The pickles are Python 2 pickles, read with a restricted unpickler (`load_pickle`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .problems import InputErrors
from .records import Example
from .safe_pickle import load_pickle

SPLITS = ("train", "test")
CHAR_CNN_RNN = "char-CNN-RNN"  # the id under which the original embeddings are cached


def _split_dir(data_dir: Path, split: str) -> Path:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} for the StackGAN layout, got {split!r}")
    return data_dir / split


def load_split_keys(data_dir: str | Path, split: str) -> tuple[Path, list[str], list[int] | None]:
    """The split's image keys (filenames.pickle) and class ids (class_info.pickle, or None)."""
    split_dir = _split_dir(Path(data_dir), split)
    names_path = split_dir / "filenames.pickle"
    if not names_path.is_file():
        raise ValueError(f"{names_path} does not exist: DATA_DIR must be in the StackGAN layout "
                         "(see stackgan.data.birds)")
    keys = load_pickle(names_path)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValueError(f"{names_path}: expected a list of strings, got {type(keys).__name__}")
    classes_path = split_dir / "class_info.pickle"
    if not classes_path.is_file():
        return names_path, keys, None
    classes = [int(c) for c in np.asarray(load_pickle(classes_path)).reshape(-1)]
    if len(classes) != len(keys):
        raise ValueError(f"{classes_path} holds {len(classes)} class ids but {names_path} lists {len(keys)} images")
    return names_path, keys, classes


def read_captions(path: Path, where: str, errors: InputErrors) -> tuple[str, ...]:
    """The captions of one ``text_c10`` file, one per line."""
    if not path.is_file():
        errors.report("missing captions", where, f"caption file {path} does not exist")
        return ()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        errors.report("bad caption file", where, f"{path} is not UTF-8 ({error})")
        return ()
    # The released CUB captions contain a mis-encoded character as two U+FFFD; the official code
    # replaces the pair with a space, and so do we, to embed the same text. Trailing newlines end
    # the file; a blank line before them is a blank caption.
    lines = text.replace("\ufffd\ufffd", " ").rstrip().splitlines()
    kept = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            kept.append(line.strip())
        else:
            errors.report("blank caption", f"{path}:{number}", "blank caption line")
    if not kept:
        errors.report("image without captions", where, f"{path} holds no caption")
    return tuple(kept)


def _read_table(path: Path, columns: int, errors: InputErrors) -> dict[int, tuple[list[str], str]]:
    """``{id: (fields after the id, "file:line")}`` from a whitespace-separated CUB table."""
    if not path.is_file():
        raise ValueError(f"{path} does not exist (CUB_200_2011 must be extracted inside DATA_DIR)")
    rows = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            fields = line.split()
            if len(fields) != columns or not fields[0].isdigit():
                errors.report("malformed line", where,
                              f"expected {columns} fields starting with an image id, got {line.strip()!r}")
                continue
            if int(fields[0]) in rows:
                errors.report("malformed line", where, f"image id {fields[0]} appears twice")
                continue
            rows[int(fields[0])] = (fields[1:], where)
    return rows


def load_cub_boxes(data_dir: str | Path, errors: InputErrors) -> dict[str, tuple[tuple[float, ...], str]]:
    """``{key: ((x, y, width, height), "file:line")}`` from images.txt and bounding_boxes.txt.

    The two files must list the same image ids; every mismatch is reported with its file and line.
    """
    root = Path(data_dir) / "CUB_200_2011"
    images_path, boxes_path = root / "images.txt", root / "bounding_boxes.txt"
    images = _read_table(images_path, 2, errors)
    boxes = _read_table(boxes_path, 5, errors)
    result = {}
    for image_id, (fields, where) in boxes.items():
        if image_id not in images:
            errors.report("bbox mismatch", where, f"image id {image_id} is not listed in {images_path}")
            continue
        try:
            box = tuple(float(v) for v in fields)
        except ValueError:
            errors.report("malformed line", where, f"box {fields} is not four numbers")
            continue
        if box[2] <= 0 or box[3] <= 0:
            errors.report("bad bbox", where, f"box {box} has a non-positive width or height")
            continue
        key = images[image_id][0][0].rsplit(".", 1)[0]
        result[key] = (box, where)
    for image_id, (fields, where) in images.items():
        if image_id not in boxes:
            errors.report("bbox mismatch", where, f"image id {image_id} has no box in {boxes_path}")
    return result


def load_cub(data_dir: str | Path, split: str, errors: InputErrors, with_captions: bool = True) -> list[Example]:
    """List a CUB-200-2011 split: images, object boxes, classes and the 10 captions of each.

    ``with_captions=False`` skips text_c10 (for training on the char-CNN-RNN pickles alone).
    """
    data_dir = Path(data_dir)
    names_path, keys, classes = load_split_keys(data_dir, split)
    boxes = load_cub_boxes(data_dir, errors)
    examples = []
    for index, key in enumerate(keys):
        where = f"{names_path} [entry {index}: {key!r}]"
        if key not in boxes:
            errors.report("bbox mismatch", where, f"no bounding box for this image in {data_dir / 'CUB_200_2011'}")
            continue
        image_path = data_dir / "CUB_200_2011" / "images" / f"{key}.jpg"
        if not image_path.is_file():
            errors.report("missing image", where, f"image file {image_path} does not exist")
            continue
        captions = read_captions(data_dir / "text_c10" / f"{key}.txt", where, errors) if with_captions else ()
        if with_captions and not captions:
            continue
        # Without class_info.pickle, the class is the image's folder ("001.Black_footed_Albatross").
        label = classes[index] if classes is not None else key.split("/", 1)[0]
        examples.append(Example(key, image_path, captions, where, label=label, bbox=boxes[key][0]))
    return examples


def load_oxford(data_dir: str | Path, split: str, errors: InputErrors, with_captions: bool = True) -> list[Example]:
    """List an Oxford-102 split: images, classes and the 10 captions of each.

    ``with_captions=False`` skips text_c10 (for training on the char-CNN-RNN pickles alone).
    """
    data_dir = Path(data_dir)
    names_path, keys, classes = load_split_keys(data_dir, split)
    if classes is None:
        raise ValueError(f"{names_path.parent / 'class_info.pickle'} does not exist; "
                         "Oxford-102 captions are filed by class")
    examples = []
    for index, (key, label) in enumerate(zip(keys, classes)):
        where = f"{names_path} [entry {index}: {key!r}]"
        image_path = data_dir / f"{key}.jpg"
        if not image_path.is_file():
            errors.report("missing image", where, f"image file {image_path} does not exist")
            continue
        caption_path = data_dir / "text_c10" / f"class_{label:05d}" / f"{Path(key).name}.txt"
        captions = read_captions(caption_path, where, errors) if with_captions else ()
        if with_captions and not captions:
            continue
        examples.append(Example(key, image_path, captions, where, label=label))
    return examples


def load_char_cnn_rnn(data_dir: str | Path, split: str) -> dict[str, np.ndarray]:
    """The original char-CNN-RNN embeddings of a split, ``{key: (captions, 1024) float32}``."""
    names_path, keys, _ = load_split_keys(Path(data_dir), split)
    path = names_path.parent / "char-CNN-RNN-embeddings.pickle"
    if not path.is_file():
        raise ValueError(f"{path} does not exist; it comes with the StackGAN data downloads")
    embeddings = np.asarray(load_pickle(path), dtype=np.float32)
    if embeddings.ndim != 3 or len(embeddings) != len(keys):
        raise ValueError(
            f"{path}: expected an array (N, captions, dim) with N = {len(keys)} images as in {names_path}, "
            f"got shape {embeddings.shape}"
        )
    return dict(zip(keys, embeddings))
