"""Captioned folders: images plus ``metadata.jsonl``, the Hugging Face imagefolder convention.

Each line of ``metadata.jsonl`` is a JSON object with ``file_name`` (relative to the folder) and
``text`` (a caption or a list of captions); an optional ``label`` (string or integer) gives the
image's class. Either ``DATA_DIR/<split>/metadata.jsonl`` or, for the train split,
``DATA_DIR/metadata.jsonl``. The Shapes dataset is written in this format.
"""

from __future__ import annotations

import json
from pathlib import Path

from .problems import InputErrors
from .records import Example, check_captions


def metadata_path(data_dir: str | Path, split: str) -> Path:
    """Where the split's metadata.jsonl is; ValueError naming the places looked at if nowhere."""
    data_dir = Path(data_dir)
    candidates = [data_dir / split / "metadata.jsonl"]
    if split == "train":
        candidates.append(data_dir / "metadata.jsonl")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ValueError(
        f"no metadata.jsonl for split {split!r}: looked for {', '.join(str(c) for c in candidates)}"
    )


def load_folder(data_dir: str | Path, split: str, errors: InputErrors, caption_column: str = "text") -> list[Example]:
    """List a captioned folder's images and captions.

    Bad lines (malformed JSON, no ``file_name``, a missing file, blank captions, a duplicate
    entry) are reported to ``errors`` with the file and line number.
    """
    path = metadata_path(data_dir, split)
    root = path.parent
    examples, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue  # an empty line carries no entry (e.g. a trailing newline)
            where = f"{path}:{number}"
            example = _parse_line(line, where, root, caption_column, errors)
            if example is None:
                continue
            if example.key in seen:
                errors.report("duplicate entry", where, f"file_name {example.key!r} is listed twice")
                continue
            seen.add(example.key)
            examples.append(example)
    return examples


def _parse_line(line: str, where: str, root: Path, caption_column: str, errors: InputErrors) -> Example | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        errors.report("malformed line", where, f"not valid JSON ({error.msg} at column {error.colno})")
        return None
    if not isinstance(record, dict):
        errors.report("malformed line", where, f"expected a JSON object, got {type(record).__name__}")
        return None
    file_name = record.get("file_name")
    if not isinstance(file_name, str) or not file_name.strip():
        errors.report("malformed line", where, f"'file_name' must be a non-empty string, got {file_name!r}")
        return None
    if caption_column not in record:
        errors.report("malformed line", where, f"no {caption_column!r} field with the captions")
        return None
    label = record.get("label")
    if label is not None and (isinstance(label, bool) or not isinstance(label, (str, int))):
        errors.report("malformed line", where, f"'label' must be a string or an integer, got {label!r}")
        return None
    image_path = root / file_name
    if not image_path.is_file():
        errors.report("missing image", where, f"image file {image_path} does not exist")
        return None
    captions = check_captions(record[caption_column], where, errors)
    if not captions:
        errors.report("image without captions", where, f"no usable caption in {caption_column!r}")
        return None
    return Example(key=file_name, image_path=image_path, captions=captions, origin=where, label=label)
