"""The training dataset: random crops from the image cache, each with a caption embedding and,
for the matching-aware discriminator loss, a "wrong" image."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .birds import CHAR_CNN_RNN, load_char_cnn_rnn, load_cub, load_oxford
from .cache import embedder_id, embedding_cache, encode_captions, image_cache, load_size
from .coco import load_coco
from .folder import load_folder
from .problems import InputErrors

DATASET_NAMES = ("shapes", "folder", "cub", "oxford", "coco")
WRONG_IMAGE_CHOICES = ("other_class", "none")
CROP_CHOICES = ("random", "center")


def _reopen(array):
    """A memory map travels between processes as its file name, not as its contents."""
    return ("memmap", array.filename) if isinstance(array, np.memmap) else array


def _restore(value):
    return np.load(value[1], mmap_mode="r") if isinstance(value, tuple) else value


class StackGANDataset(Dataset):
    """Training items from the caches of one dataset split.

    Each item is a dict:

    - ``"image"``: float32 (3, resolution, resolution) in [-1, 1], a crop of the cached image
      (random, or the centre with ``crop="center"``), flipped left-right half the time if ``flip``.
    - ``"embedding"``: float32 (dim,), one of the image's caption embeddings at random, or the
      mean of ``captions_per_step`` distinct ones (the paper's TF code uses 4).
    - ``"wrong_image"``: with ``wrong_image="other_class"`` only, an image of another class
      (another image where the dataset has no classes), cropped the same way.
    - ``"first_embedding"``: with ``first_caption=True`` only, the embedding of the image's first
      caption (on Shapes the one that names all six attributes: a caption that fixes the image).
    - ``"index"``: the item's index.

    All randomness of an item is a function of (seed, epoch, index): call `set_epoch` at the start
    of each epoch, and a resumed run sees exactly the items it would have seen.

    Attributes:
        embedding_mean, embedding_std: float32 (dim,) over all captions of this split; the model
            standardises embeddings with the training split's values (DESIGN.md §6).
        embedding_id: the encoder id the embeddings come from.
        captions, keys: per item, its captions and its key in the source dataset.
    """

    def __init__(
        self,
        images: np.ndarray,
        embeddings: np.ndarray,
        offsets: np.ndarray,
        stats: np.ndarray,
        resolution: int,
        *,
        labels=None,
        captions=None,
        keys=None,
        captions_per_step: int = 1,
        wrong_image: str = "other_class",
        flip: bool = False,
        crop: str = "random",
        seed: int = 0,
        embedding_id: str = "",
        first_caption: bool = False,
    ):
        if wrong_image not in WRONG_IMAGE_CHOICES:
            raise ValueError(f"wrong_image must be one of {WRONG_IMAGE_CHOICES}, got {wrong_image!r}")
        if crop not in CROP_CHOICES:
            raise ValueError(f"crop must be one of {CROP_CHOICES}, got {crop!r}")
        if captions_per_step < 1:
            raise ValueError(f"captions_per_step must be >= 1, got {captions_per_step}")
        if images.shape[-1] < resolution:
            raise ValueError(f"cached images are {images.shape[-1]} px, smaller than resolution {resolution}")
        if len(offsets) != len(images) + 1:
            raise ValueError(f"{len(images)} images but {len(offsets) - 1} caption groups")
        self.images, self.embeddings, self.offsets = images, embeddings, np.asarray(offsets)
        self.embedding_mean = torch.from_numpy(np.array(stats[0], dtype=np.float32))
        self.embedding_std = torch.from_numpy(np.array(stats[1], dtype=np.float32))
        self.resolution = resolution
        # Labels may be strings or ints (CUB class ids); compare them as integer codes.
        self.labels = None if labels is None else np.unique([str(v) for v in labels], return_inverse=True)[1]
        self.captions, self.keys = captions, keys
        self.captions_per_step, self.wrong_image, self.flip, self.crop = captions_per_step, wrong_image, flip, crop
        self.seed, self.epoch, self.embedding_id = seed, 0, embedding_id
        self.first_caption = first_caption
        if wrong_image == "other_class":
            if len(images) < 2:
                raise ValueError("wrong_image='other_class' needs at least two images")
            if self.labels is not None and self.labels.max() == 0:
                raise ValueError("wrong_image='other_class' needs at least two classes, but every image has "
                                 "the same label; pass wrong_image='none' to shift the batch instead")

    @property
    def embedding_dim(self) -> int:
        """Dimension of the caption embeddings."""
        return int(self.embeddings.shape[1])

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops, flips, captions and wrong images to draw."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        rng = np.random.default_rng((self.seed, self.epoch, index))
        item = {"image": self._image(index, rng), "embedding": self.caption_embedding(index, rng), "index": index}
        if self.wrong_image == "other_class":
            item["wrong_image"] = self._image(self._wrong_index(index, rng), rng)
        if self.first_caption:
            item["first_embedding"] = torch.from_numpy(np.array(self.embeddings[int(self.offsets[index])],
                                                                dtype=np.float32))
        return item

    def _image(self, index: int, rng: np.random.Generator) -> torch.Tensor:
        margin = self.images.shape[-1] - self.resolution
        if self.crop == "random":
            top, left = (int(v) for v in rng.integers(0, margin + 1, size=2))
        else:
            top = left = margin // 2
        patch = self.images[index, :, top : top + self.resolution, left : left + self.resolution]
        if self.flip and rng.random() < 0.5:
            patch = patch[:, :, ::-1]
        # In numpy: small torch ops pay for intra-op threading, 100x over on a busy 2-core machine.
        pixels = patch.astype(np.float32, order="C")  # also copies out of the memory map
        pixels *= 2 / 255
        pixels -= 1
        return torch.from_numpy(pixels)

    def caption_embedding(self, index: int, rng: np.random.Generator) -> torch.Tensor:
        start, stop = int(self.offsets[index]), int(self.offsets[index + 1])
        count = min(self.captions_per_step, stop - start)
        if count == 1:
            embedding = np.array(self.embeddings[start + int(rng.integers(stop - start))], dtype=np.float32)
        else:
            rows = start + np.sort(rng.choice(stop - start, size=count, replace=False))
            embedding = np.asarray(self.embeddings[rows], dtype=np.float32).mean(axis=0)
        return torch.from_numpy(embedding)

    def _wrong_index(self, index: int, rng: np.random.Generator) -> int:
        # Rejection sampling: with many classes it almost always succeeds at once.
        for _ in range(32):
            other = int(rng.integers(len(self)))
            if other != index and (self.labels is None or self.labels[other] != self.labels[index]):
                return other
        candidates = np.flatnonzero(self.labels != self.labels[index]) if self.labels is not None else \
            np.delete(np.arange(len(self)), index)
        return int(candidates[rng.integers(len(candidates))])

    def __getstate__(self):
        # DataLoader workers started with "spawn" pickle the dataset: send file names, not data.
        state = dict(self.__dict__)
        state["images"], state["embeddings"] = _reopen(self.images), _reopen(self.embeddings)
        return state

    def __setstate__(self, state):
        state["images"], state["embeddings"] = _restore(state["images"]), _restore(state["embeddings"])
        self.__dict__.update(state)


def load_examples(name: str, data_dir: str | Path, split: str, errors: InputErrors, with_captions: bool = True):
    """List a dataset split's images and captions, as `Example` records."""
    if name in ("shapes", "folder"):
        return load_folder(data_dir, split, errors)
    if name == "cub":
        return load_cub(data_dir, split, errors, with_captions=with_captions)
    if name == "oxford":
        return load_oxford(data_dir, split, errors, with_captions=with_captions)
    if name == "coco":
        return load_coco(data_dir, split, errors)
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASET_NAMES}")


def _labels(examples):
    labelled = [e.label is not None for e in examples]
    if not any(labelled):
        return None
    if not all(labelled):
        first = examples[labelled.index(False)]
        raise ValueError(f"{first.origin}: this image has no label but others have; label all images or none")
    return [e.label for e in examples]


def _original_embeddings(data_dir, split, keys):
    """`embedding_cache`'s compute for the char-CNN-RNN pickles of CUB and Oxford-102."""

    def compute(_captions):
        by_key = load_char_cnn_rnn(data_dir, split)
        rows = [by_key[key] for key in keys]
        offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
        return np.concatenate(rows), offsets, "char-CNN-RNN embeddings from the StackGAN pickles"

    return compute


def build_dataset(
    name: str,
    data_dir: str | Path,
    resolution: int,
    encoder,
    split: str = "train",
    *,
    cache_dir: str | Path | None = None,
    captions_per_step: int = 1,
    wrong_image: str = "other_class",
    flip: bool | None = None,
    crop: str = "random",
    seed: int = 0,
    on_error: str = "raise",
    workers: int = 2,
    first_caption: bool = False,
) -> StackGANDataset:
    """Load a dataset split for training, building its caches on first use.

    Args:
        name: "shapes" (written by ``python -m stackgan.data.shapes``), "folder" (images +
            metadata.jsonl), "cub", "oxford" (StackGAN layout) or "coco" (2014 captions).
        data_dir: the dataset's root folder (layouts: see each loader module and the README).
        resolution: training image side: 64 (Stage-I) or 256 (Stage-II); images are cached at
            76/64 of it and randomly cropped.
        encoder: a `stackgan.text.TextEncoder`, or "char-CNN-RNN" to use the original StackGAN
            embedding pickles (cub and oxford only).
        split: "train" or "test" (and "heldout" for shapes; COCO's test is val2014).
        cache_dir: where the caches go (default ``data_dir/stackgan_cache/<split>``).
        captions_per_step: embed the mean of this many captions per item (1: one at random).
        wrong_image: "other_class" to return a wrong image with each item, "none" when the
            training loop makes its own (e.g. by shifting the batch).
        flip: random horizontal flips; default on, except for shapes (captions name left/right).
        crop: "random" for training, "center" for evaluation.
        seed: with the epoch and the index, fixes each item's randomness.
        on_error: "raise" at the first bad input, or "skip" bad inputs and print how many.
        workers: processes that decode images while the cache is built.
        first_caption: also return each image's first caption embedding (``"first_embedding"``).
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASET_NAMES}")
    identifier = embedder_id(encoder)
    original = identifier == CHAR_CNN_RNN
    if original and name not in ("cub", "oxford"):
        raise ValueError(f"{CHAR_CNN_RNN!r} embeddings exist only for cub and oxford, not {name!r}")
    errors = InputErrors(on_error)
    examples = load_examples(name, data_dir, split, errors, with_captions=not original)
    cache_dir = Path(cache_dir) if cache_dir is not None else Path(data_dir) / "stackgan_cache" / split
    images, kept = image_cache(examples, cache_dir, load_size(resolution), errors, workers)
    errors.print_summary(f"{name} {split} ({data_dir})")
    examples = [examples[i] for i in kept]
    if not examples:
        raise ValueError(f"no usable image in {name} split {split!r} at {data_dir}")
    keys, captions = [e.key for e in examples], [e.captions for e in examples]
    compute = _original_embeddings(data_dir, split, keys) if original else partial(encode_captions, encoder)
    embeddings, offsets, stats = embedding_cache(cache_dir, identifier, keys, captions, compute)
    return StackGANDataset(
        images, embeddings, offsets, stats, resolution,
        labels=_labels(examples), captions=captions, keys=keys, captions_per_step=captions_per_step,
        wrong_image=wrong_image, flip=(name != "shapes") if flip is None else flip, crop=crop, seed=seed,
        embedding_id=identifier, first_caption=first_caption,
    )
