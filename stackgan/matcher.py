"""An image-text matcher trained on real captioned images, frozen, then used as a loss for G.

AttnGAN's DAMSM (Xu et al., CVPR 2018) at the sentence level: an image encoder and a text head map
images and caption embeddings into one space where an image lies closest to its own caption. It
learns from real images only, with no moving target, so it can learn what the GAN's D learns
slowly: D meets fakes from the first step and rejects mismatched captions by colour or background
alone, which left Stage-II's D blind to Shapes' patterns after 3,000 steps (README, "What D
reads"). G is then rewarded for images the frozen matcher places near their caption (`loss`).

Train one with ``python train/train_matcher.py``; the files are `config.json` and
`model.safetensors`, like a pipeline's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


@dataclass
class MatcherConfig:
    text_dim: int = 384
    image_size: int = 128   # images are area-resized to this: Shapes' 4-6 px patterns keep 2-3 px
    channels: int = 16      # of the full-resolution stem; doubled by each stride-2 conv
    downsamples: int = 4    # 128 -> 8
    joint_dim: int = 256
    temperature: float = 0.07
    # Read only the detail (the image minus its 5x5 local mean): textures and edges, no flat
    # colour. A Shapes pattern then shows as a texture alone, not also as a darker tint that
    # mixes with the named colour, and G's gradient lands on detail (what Stage-II adds).
    detail: bool = False


class ImageTextMatcher(nn.Module):
    """Cosine similarities of images and caption embeddings in a learned joint space.

    Text goes in as the raw encoder embeddings: the matcher standardises them with the statistics
    of the captions it was trained on (`embedding_mean`, `embedding_std`), so G's training loop
    and the matcher can disagree on nothing.
    """

    def __init__(self, config: MatcherConfig):
        super().__init__()
        self.config = config
        ch = config.channels
        # Full-resolution stem first: a stride-2 first layer reads every other pixel and aliases
        # textures a few pixels across (README, "Can D see the patterns at all?").
        layers = [nn.Conv2d(3, ch, 3, 1, 1), nn.LeakyReLU(0.2, True)]
        for i in range(config.downsamples):
            layers += [nn.Conv2d(ch << i, ch << (i + 1), 3, 2, 1, bias=False), nn.BatchNorm2d(ch << (i + 1)),
                       nn.LeakyReLU(0.2, True)]
        self.encoder = nn.Sequential(*layers)
        width = ch << config.downsamples
        # What is drawn (the mean over cells) and where (a 4x4 grid of cells).
        self.image_head = nn.Linear(width * (1 + 16), config.joint_dim)
        self.text_head = nn.Sequential(nn.Linear(config.text_dim, config.joint_dim), nn.LeakyReLU(0.2, True),
                                       nn.Linear(config.joint_dim, config.joint_dim))
        self.register_buffer("embedding_mean", torch.zeros(config.text_dim))
        self.register_buffer("embedding_std", torch.ones(config.text_dim))

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """Unit vectors (B, joint_dim) of images in [-1, 1] of any size."""
        size = self.config.image_size
        if images.shape[-1] != size or images.shape[-2] != size:
            images = F.interpolate(images, size=(size, size), mode="area" if images.shape[-1] > size else "bilinear")
        if self.config.detail:
            images = images - F.avg_pool2d(F.pad(images, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
        h = self.encoder(images)
        pooled = torch.cat([h.mean(dim=(2, 3)), F.adaptive_avg_pool2d(h, 4).flatten(1)], dim=1)
        return F.normalize(self.image_head(pooled), dim=1)

    def embed_text(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Unit vectors (N, joint_dim) of raw caption embeddings (N, text_dim)."""
        standardized = (embeddings - self.embedding_mean) / self.embedding_std
        return F.normalize(self.text_head(standardized), dim=1)

    def similarity(self, images: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, N) cosine similarities of every image with every caption."""
        return self.embed_images(images) @ self.embed_text(embeddings).t()

    def loss(self, images: torch.Tensor, embeddings: torch.Tensor, negatives: torch.Tensor | None = None,
             hard: torch.Tensor | None = None) -> torch.Tensor:
        """InfoNCE of each image against its own caption (row i of `embeddings`), the batch's other
        captions, `negatives` (more raw embeddings, e.g. a queue of earlier captions) and `hard`
        (B, K, text_dim): K negatives of image i's own, such as the captions nearest its caption
        (`NearestCaptions`). A shared negative that is the image's own caption again (short
        captions repeat) is left out: it fits the image as well as the positive does."""
        text = embeddings if negatives is None else torch.cat([embeddings, negatives])
        image_vectors = self.embed_images(images)
        logits = image_vectors @ self.embed_text(text).t()
        unit = F.normalize(text.detach(), dim=1)
        same = (unit[:len(images)] @ unit.t()) >= 0.999
        same[torch.arange(len(images)), torch.arange(len(images))] = False
        logits = logits.masked_fill(same, float("-inf"))
        if hard is not None:
            hard_vectors = self.embed_text(hard.flatten(0, 1)).view(*hard.shape[:2], -1)
            logits = torch.cat([logits, (hard_vectors * image_vectors[:, None]).sum(-1)], dim=1)
        return F.cross_entropy(logits / self.config.temperature, torch.arange(len(images), device=images.device))

    def save_pretrained(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(folder / WEIGHTS_FILE))
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "ImageTextMatcher":
        """A trained matcher, frozen and in eval mode (its BatchNorm uses running statistics)."""
        folder = Path(folder)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} not found: a matcher folder holds {CONFIG_FILE} and "
                                        f"{WEIGHTS_FILE} (written by train/train_matcher.py)")
        values = json.loads((folder / CONFIG_FILE).read_text())
        unknown = set(values) - set(MatcherConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{folder / CONFIG_FILE}: unknown keys {sorted(unknown)}")
        matcher = cls(MatcherConfig(**values))
        state, expected = load_file(str(folder / WEIGHTS_FILE)), matcher.state_dict()
        wrong = sorted(k for k in set(state) | set(expected)
                       if k not in state or k not in expected or state[k].shape != expected[k].shape)
        if wrong:
            raise ValueError(f"{folder / WEIGHTS_FILE} does not fit {folder / CONFIG_FILE}: "
                             f"missing or misshapen {wrong[:5]}{' ...' if len(wrong) > 5 else ''}")
        matcher.load_state_dict(state)
        return matcher.eval().requires_grad_(False)


class NearestCaptions:
    """A pool of caption embeddings (a dataset's training captions) that returns, for a caption,
    the K pool captions nearest to it: hard negatives for the matcher's InfoNCE.

    Random negatives almost always differ from a caption in colour or background, so a matcher
    (or a G scored by one) learns those and little else. A caption's nearest neighbours in the
    text encoder's space mostly differ in one detail (Shapes' training captions, up to 16 nearest
    of 400: 46% one attribute, position, background, size, colour or pattern; 21% paraphrases,
    which no generic rule can tell from a near miss, and which cost InfoNCE a constant). Copies of
    the caption itself (cosine >= 0.999) are skipped.
    """

    def __init__(self, embeddings, mean: torch.Tensor, std: torch.Tensor):
        self.embeddings = embeddings  # (N, text_dim) array, e.g. the dataset's memory-mapped cache: not copied
        self.mean, self.std = torch.as_tensor(mean).float().cpu(), torch.as_tensor(std).float().cpu()
        self.unit = self._unit(torch.from_numpy(np.asarray(embeddings, dtype=np.float32).copy()))

    def _unit(self, embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize((embeddings.float().cpu() - self.mean) / self.std, dim=1)

    def __call__(self, embeddings: torch.Tensor, k: int) -> torch.Tensor:
        """(B, k, text_dim) raw embeddings of the k pool captions nearest each of `embeddings` (B, text_dim)."""
        if not 1 <= k < len(self.unit):
            raise ValueError(f"need 1 <= k < {len(self.unit)} (the pool's captions), got k={k}")
        similarity = self._unit(embeddings) @ self.unit.t()
        nearest = similarity.masked_fill(similarity >= 0.999, float("-inf")).topk(k, dim=1).indices
        return torch.from_numpy(np.asarray(self.embeddings[nearest.numpy()], dtype=np.float32)).to(embeddings.device)
