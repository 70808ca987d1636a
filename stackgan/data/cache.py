"""Build once, reuse after: a split's uint8 image cache and its caption-embedding cache.

Layout of a cache folder (one per dataset split)::

    images_76.npy, images_76.json       (N, 3, 76, 76) uint8 and what built it
    images_304.npy, images_304.json     the same at the Stage-II size
    embeddings/<encoder>/               embeddings.npy (M, dim) float32, offsets.npy (N + 1,),
                                        stats.npy (2, dim): mean and std, info.json

Every file is .npy or JSON (never pickle) and is memory-mapped when read. A JSON file records a
fingerprint of what the cache was built from; a different dataset or encoder rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .preprocess import IMAGE_ERRORS, load_image
from .problems import InputErrors
from .records import Example

CACHE_VERSION = 1
ENCODE_CHUNK = 2048  # captions per encoder call while building, for a progress bar


def load_size(resolution: int) -> int:
    """Side of the cached images for a training resolution: the paper loads 76 px images for
    64 px training and 304 for 256, and takes random 64 / 256 crops from them."""
    if resolution < 8:
        raise ValueError(f"resolution must be at least 8 pixels, got {resolution}")
    return resolution * 76 // 64


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode("utf-8")).hexdigest()


def _read_info(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None  # absent or half-written: rebuild


def _partial(path: Path) -> Path:
    # Per-process scratch names, renamed into place when complete: processes that build the same
    # cache at once (one per rank) write identical bytes and never a half-written file.
    return path.with_name(f"{path.stem}.{os.getpid()}.partial{path.suffix}")


def _write_info(path: Path, info: dict) -> None:
    # Written last: the cache counts as built only once its info file exists.
    tmp = _partial(path)
    tmp.write_text(json.dumps(info), encoding="utf-8")
    os.replace(tmp, path)


def _save(path: Path, array: np.ndarray) -> None:
    tmp = _partial(path)
    np.save(tmp, array)
    os.replace(tmp, path)


def _decode(job):
    path, bbox, size = job
    try:
        return load_image(Path(path), size, bbox), None
    except IMAGE_ERRORS as error:
        return None, f"cannot read image {path}: {error}"


def image_cache(
    examples: list[Example], cache_dir: Path, size: int, errors: InputErrors, workers: int = 2
) -> tuple[np.ndarray, list[int]]:
    """The split's images at ``size`` x ``size``, building the cache on first use.

    Unreadable (corrupt, truncated) images are reported to ``errors``; under ``on_error="skip"``
    they are left out, and a cache built that way reports them again on every load.

    Returns:
        A read-only memory map (K, 3, size, size) uint8, and the indices in ``examples`` of its K
        rows.
    """
    cache_dir = Path(cache_dir)
    array_path, info_path = cache_dir / f"images_{size}.npy", cache_dir / f"images_{size}.json"
    fingerprint = _digest(CACHE_VERSION, size, [(e.key, e.bbox) for e in examples])
    info = _read_info(info_path)
    if info is None or info.get("fingerprint") != fingerprint or not array_path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        info = _build_image_cache(examples, array_path, size, errors, workers)
        info["fingerprint"] = fingerprint
        _write_info(info_path, info)
    for skipped in info["skipped"]:
        errors.report("unreadable image", skipped["where"], skipped["message"])
    return np.load(array_path, mmap_mode="r"), info["kept"]


def _build_image_cache(examples, array_path: Path, size: int, errors: InputErrors, workers: int) -> dict:
    tmp_path = _partial(array_path)
    images = np.lib.format.open_memmap(tmp_path, mode="w+", dtype=np.uint8, shape=(len(examples), 3, size, size))
    jobs = [(str(e.image_path), e.bbox, size) for e in examples]
    kept, skipped = [], []
    bar = tqdm(total=len(jobs), desc=f"caching images at {size} px", unit="img", disable=len(jobs) < 1000)
    pool = multiprocessing.Pool(workers) if workers > 1 and len(jobs) > 1 else None
    try:
        results = pool.imap(_decode, jobs, chunksize=16) if pool else map(_decode, jobs)
        for index, (array, message) in enumerate(results):
            bar.update()
            if message is None:
                images[index] = array
                kept.append(index)
                continue
            where = examples[index].origin
            if errors.on_error == "raise":
                errors.report("unreadable image", where, message)
            skipped.append({"where": where, "message": message})
    except BaseException:
        del images
        tmp_path.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
        if pool:
            pool.terminate()
    images.flush()
    if skipped:
        compact_path = _partial(array_path.with_suffix(".compact.npy"))
        compact = np.lib.format.open_memmap(compact_path, mode="w+", dtype=np.uint8, shape=(len(kept), 3, size, size))
        for row, index in enumerate(kept):
            compact[row] = images[index]
        compact.flush()
        del compact, images
        tmp_path.unlink()
        os.replace(compact_path, array_path)
    else:
        del images
        os.replace(tmp_path, array_path)
    return {"version": CACHE_VERSION, "size": size, "kept": kept, "skipped": skipped}


def embedder_id(encoder) -> str:
    """The id a caption-embedding cache is keyed by: the encoder's model id, or the string
    itself for precomputed embeddings ("char-CNN-RNN")."""
    return encoder if isinstance(encoder, str) else encoder.model_id


def _slug(identifier: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9.-]+", "--", identifier).strip("-")[-60:]
    return f"{readable}-{hashlib.sha256(identifier.encode('utf-8')).hexdigest()[:8]}"


def embedding_cache(cache_dir: Path, identifier: str, keys: list[str], captions: list[tuple[str, ...]], compute):
    """Caption embeddings of a split, computed once per encoder.

    Args:
        identifier: the encoder id the cache is keyed by.
        keys, captions: per image (in cache order), its key and its captions.
        compute: called as ``compute(captions)`` when the cache must be built; returns
            ``(embeddings (M, dim) float32 in caption order, offsets (N + 1,) int64, note)``,
            where image i owns rows ``offsets[i]:offsets[i + 1]``.

    Returns:
        ``(embeddings, offsets, stats)``: memory-mapped arrays, stats = [mean, std] (2, dim)
        over all captions of the split.
    """
    folder = Path(cache_dir) / "embeddings" / _slug(identifier)
    info_path = folder / "info.json"
    fingerprint = _digest(CACHE_VERSION, identifier, keys, captions)
    info = _read_info(info_path)
    if info is None or info.get("fingerprint") != fingerprint:
        folder.mkdir(parents=True, exist_ok=True)
        embeddings, offsets, note = compute(captions)
        assert offsets[-1] == len(embeddings) and len(offsets) == len(captions) + 1, "rows and offsets disagree"
        mean = embeddings.mean(axis=0, dtype=np.float64)
        # Floor the std: a dimension constant over the split must not divide by zero.
        std = np.maximum(embeddings.std(axis=0, dtype=np.float64), 1e-6)
        _save(folder / "embeddings.npy", embeddings.astype(np.float32, copy=False))
        _save(folder / "offsets.npy", offsets.astype(np.int64))
        _save(folder / "stats.npy", np.stack([mean, std]).astype(np.float32))
        _write_info(info_path, {"version": CACHE_VERSION, "encoder_id": identifier, "dim": int(embeddings.shape[1]),
                                "captions": int(len(embeddings)), "note": note, "fingerprint": fingerprint})
    return (
        np.load(folder / "embeddings.npy", mmap_mode="r"),
        np.load(folder / "offsets.npy"),
        np.load(folder / "stats.npy"),
    )


def encode_captions(encoder, captions: list[tuple[str, ...]]):
    """Embed every caption with a `TextEncoder`, with a progress bar; `embedding_cache`'s
    ``compute`` for our encoders. Reports how many captions were cut at the token limit."""
    flat = [caption for group in captions for caption in group]
    offsets = np.concatenate([[0], np.cumsum([len(group) for group in captions])]).astype(np.int64)
    chunks, truncated = [], 0
    for start in tqdm(range(0, len(flat), ENCODE_CHUNK), desc=f"encoding captions with {encoder.model_id}",
                      unit="chunk", disable=len(flat) <= ENCODE_CHUNK):
        embeddings, cut = encoder.encode(flat[start:start + ENCODE_CHUNK], return_truncation=True)
        chunks.append(embeddings.numpy())
        truncated += sum(cut)
    note = f"{truncated} of {len(flat)} captions were truncated at {encoder.max_tokens} tokens"
    if truncated:
        print(f"{encoder.model_id}: {note}", flush=True)
    return np.concatenate(chunks), offsets, note
