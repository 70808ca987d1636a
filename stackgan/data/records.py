"""What every dataset source yields: one `Example` per image, with its captions checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .problems import InputErrors


@dataclass(frozen=True)
class Example:
    """One image and its captions, as a dataset source lists it.

    Attributes:
        key: stable id within the split (the image's relative name); cache entries follow it.
        image_path: where the image file is.
        captions: one or more non-blank captions.
        origin: ``"file:line"`` of the entry that listed the image, for error messages.
        label: class of the image where the dataset has classes (CUB, Oxford-102, Shapes),
            used to draw "wrong" images of another class; None otherwise.
        bbox: ``(x, y, width, height)`` of the object in pixels (CUB only), or None.
    """

    key: str
    image_path: Path
    captions: tuple[str, ...]
    origin: str
    label: str | int | None = None
    bbox: tuple[float, float, float, float] | None = None


def check_captions(captions, where: str, errors: InputErrors) -> tuple[str, ...]:
    """Return the usable captions of one entry, reporting each blank or non-string one.

    A caption string is accepted as a list of one. Under ``on_error="skip"`` bad captions are
    dropped and counted; the caller decides what an entry left without captions means.
    """
    if isinstance(captions, str):
        captions = [captions]
    if not isinstance(captions, (list, tuple)):
        errors.report("bad caption", where, f"captions must be a string or a list of strings, got {captions!r}")
        return ()
    kept = []
    for number, caption in enumerate(captions):
        if isinstance(caption, str) and caption.strip():
            kept.append(caption.strip())
        else:
            errors.report("blank caption", where,
                          f"caption {number} is {caption!r}; captions must be non-empty strings")
    return tuple(kept)
