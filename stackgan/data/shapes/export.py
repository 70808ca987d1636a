"""Write the Shapes dataset to disk in the captioned-folder format (metadata.jsonl + PNGs)."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .captions import make_captions
from .drawing import render
from .vocabulary import HELD_OUT_PAIRS, VOCABULARY, sample_attributes

FORMAT_VERSION = 1
# Each split draws from its own random stream, so split sizes never change another split's images.
SPLIT_STREAMS = {"train": 0, "test": 1, "heldout": 2}


def make_example(seed: int, split: str, index: int, size: int = 256):
    """Attributes, captions and image of one example; a pure function of (seed, split, index)."""
    rng = np.random.default_rng([seed, SPLIT_STREAMS[split], index])
    attributes = sample_attributes(rng, held_out=split == "heldout")
    captions = make_captions(attributes, rng)
    return attributes, captions, render(attributes, size=size, rng=rng)


def _write_example(job) -> dict:
    split_dir, seed, split, index, size = job
    attributes, captions, image = make_example(seed, split, index, size)
    file_name = f"{index:06d}.png"
    # compress_level=1: PNG encoding would otherwise cost more than drawing.
    image.save(Path(split_dir) / file_name, format="PNG", compress_level=1)
    return {
        "file_name": file_name,
        "text": [caption for caption, _ in captions],
        "named_attributes": [list(keys) for _, keys in captions],
        "attributes": attributes,
        "label": f"{attributes['color']} {attributes['shape']}",
    }


def split_sizes(num_images: int, test_fraction: float, num_heldout: int | None) -> dict[str, int]:
    """How many images each split gets: train + test = num_images, heldout on top."""
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    test = int(round(num_images * test_fraction))
    heldout = max(1, num_images // 10) if num_heldout is None else num_heldout
    if heldout < 0:
        raise ValueError(f"num_heldout must be >= 0, got {num_heldout}")
    return {"train": num_images - test, "test": test, "heldout": heldout}


def generate(
    out_dir: str | Path,
    num_images: int,
    seed: int = 0,
    test_fraction: float = 0.1,
    num_heldout: int | None = None,
    size: int = 256,
    workers: int = 2,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Render the Shapes dataset into ``out_dir/{train,test,heldout}/``.

    Each split folder holds ``NNNNNN.png`` and a ``metadata.jsonl`` whose lines carry
    ``file_name``, ``text`` (the captions), ``named_attributes`` (per caption, the attribute keys it
    names), ``attributes`` (the six labels) and ``label`` (``"color shape"``, the class used to draw
    wrong images). ``heldout`` holds only the (shape, color) pairs of `HELD_OUT_PAIRS`, which train
    and test never contain. The same arguments give byte-identical files.

    Args:
        num_images: train + test images; the held-out split comes on top.
        test_fraction: share of ``num_images`` that goes to test.
        num_heldout: held-out images (default: a tenth of ``num_images``, at least 1).
        workers: processes that render (1 renders in this process).
        overwrite: replace existing split folders instead of refusing.

    Returns:
        A summary: images per split, seconds, images per second.
    """
    out_dir = Path(out_dir)
    sizes = split_sizes(num_images, test_fraction, num_heldout)
    for split in sizes:
        split_dir = out_dir / split
        if (split_dir / "metadata.jsonl").exists():
            if not overwrite:
                raise FileExistsError(f"{split_dir} already holds a dataset; pass overwrite=True (--overwrite)")
            shutil.rmtree(split_dir)
        split_dir.mkdir(parents=True, exist_ok=True)

    jobs = [(str(out_dir / split), seed, split, index, size)
            for split, count in sizes.items() for index in range(count)]
    start = time.perf_counter()
    records = {split: [] for split in sizes}
    bar = tqdm(total=len(jobs), desc="rendering shapes", unit="img", disable=not progress)
    with multiprocessing.Pool(workers) if workers > 1 else _InProcess() as pool:
        for job, record in zip(jobs, pool.imap(_write_example, jobs, chunksize=64)):
            records[job[2]].append(record)
            bar.update()
    bar.close()
    seconds = time.perf_counter() - start

    for split, split_records in records.items():
        with open(out_dir / split / "metadata.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(record) + "\n" for record in split_records)
    info = {
        "generator": "stackgan.data.shapes",
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "image_size": size,
        "splits": sizes,
        "held_out_pairs": [list(pair) for pair in HELD_OUT_PAIRS],
        "vocabulary": {key: list(values) for key, values in VOCABULARY.items()},
    }
    (out_dir / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return {"splits": sizes, "seconds": seconds, "images_per_second": len(jobs) / seconds}


class _InProcess:
    """Stands in for a Pool when rendering in this process."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def imap(function, items, chunksize=1):
        return map(function, items)
