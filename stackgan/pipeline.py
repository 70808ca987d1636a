"""Text -> Stage-I 64x64 -> Stage-II 256x256, saved and loaded in Hugging Face Hub format.

    pipe = StackGANPipeline.from_pretrained()          # the bundled Shapes model
    out = pipe("a large red star", num_images_per_prompt=4, seed=0)
    out.stage1[0][0], out.stage2[0][0]                 # PIL images, 64x64 and 256x256
"""

from __future__ import annotations

import json
import math
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from huggingface_hub import PyTorchModelHubMixin
from safetensors import safe_open
from safetensors.torch import load_file

from .card import model_card
from .config import StackGANConfig
from . import fast
from .hub import resolve_model_folder, upload_model_folder
from .images import to_pil
from .models import Stage1Generator, Stage2Generator
from .prior import CaptionPrior

BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "demo" / "pretrained" / "shapes"
CA_MODES = ("sample", "mean")
VARY = ("both", "noise", "conditioning")


class StackGANModel(nn.Module, PyTorchModelHubMixin, library_name="stackgan",
                    tags=["text-to-image", "gan", "stackgan"], pipeline_tag="text-to-image"):
    """What a published model holds: Stage-I G, Stage-II G (optional), and the statistics that
    standardise text embeddings (DESIGN.md §6: raw unit-norm sentence embeddings make CA's KL
    term erase the condition). `config`, `stages` and `training` become config.json."""

    def __init__(self, config: dict, stages: int = 2, training: dict | None = None):
        super().__init__()
        if stages not in (1, 2):
            raise ValueError(f"stages must be 1 or 2, got {stages!r}")
        self.config = StackGANConfig.from_dict(config) if isinstance(config, dict) else config
        self.stages = stages
        self.training_info = dict(training or {})
        self.stage1 = Stage1Generator(self.config)
        self.stage2 = Stage2Generator(self.config) if stages == 2 else None
        self.prior = (CaptionPrior(self.config.text_dim, self.config.prior_noise_dim, self.config.prior_hidden)
                      if self.config.prior_noise_dim else None)
        self.register_buffer("text_mean", torch.zeros(self.config.text_dim))
        self.register_buffer("text_std", torch.ones(self.config.text_dim))
        self.eval()

    def standardize(self, embeddings: torch.Tensor) -> torch.Tensor:
        return (embeddings - self.text_mean) / self.text_std

    @torch.no_grad()
    def set_text_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-dimension mean and std of the training captions' embeddings."""
        if (std <= 0).any():
            raise ValueError("text embedding std must be positive in every dimension")
        self.text_mean.copy_(mean)
        self.text_std.copy_(std)

    def init_kwargs(self) -> dict:
        return {"config": self.config.to_dict(), "stages": self.stages, "training": self.training_info}

    def save_pretrained(self, save_directory, **kwargs):
        # config.json is exactly the constructor's arguments, as they are now.
        return super().save_pretrained(save_directory, config=self.init_kwargs(), **kwargs)

    @classmethod
    def from_pretrained(cls, path_or_repo_id, **hub_kwargs) -> "StackGANModel":
        """Load from a folder, checkpoint folder or Hub id; safetensors only, strict."""
        folder = resolve_model_folder(path_or_repo_id, **hub_kwargs)
        config_file = folder / "config.json"
        try:
            values = json.loads(config_file.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{config_file} is not valid JSON: {error}") from None
        unknown = sorted(set(values) - {"config", "stages", "training"})
        if "config" not in values or unknown:
            raise ValueError(f"{config_file} must hold 'config' (and optionally 'stages', 'training'); "
                             f"found keys {sorted(values)}")
        try:
            model = cls(values["config"], stages=values.get("stages", 2), training=values.get("training"))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{config_file}: {error}") from None
        load_weights_strict(model, folder / "model.safetensors")
        return model.eval()


def load_weights_strict(model: nn.Module, weights_file: Path) -> None:
    """Load a safetensors file whose keys and shapes match `model` exactly, or raise naming them.

    Checks everything before touching the model, so a bad file leaves no half-loaded state; never
    falls back to a pickle (pytorch_model.bin), which could run code.
    """
    if not weights_file.is_file():
        if (weights_file.parent / "pytorch_model.bin").exists():
            raise ValueError(f"{weights_file.parent} holds pytorch_model.bin but no model.safetensors; "
                             "StackGAN loads safetensors only (a pickle can run code). Convert it with "
                             "safetensors.torch.save_file(torch.load(path, weights_only=True), 'model.safetensors')")
        raise FileNotFoundError(f"no weights file: {weights_file}")
    try:
        with safe_open(str(weights_file), framework="pt") as f:
            shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except Exception as error:  # safetensors raises its own error types for corrupt headers
        raise ValueError(f"{weights_file} is not a valid safetensors file: {error}") from None
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    problems = []
    if missing := sorted(set(expected) - set(shapes)):
        problems.append(f"missing tensors {missing}")
    if unexpected := sorted(set(shapes) - set(expected)):
        problems.append(f"unexpected tensors {unexpected}")
    for key in sorted(set(shapes) & set(expected)):
        if shapes[key] != expected[key]:
            problems.append(f"tensor {key!r} has shape {shapes[key]} in the file but {expected[key]} in the model")
    if problems:
        raise ValueError(f"{weights_file} does not match its config.json: " + "; ".join(problems))
    model.load_state_dict(load_file(str(weights_file)), strict=True)


@dataclass
class StackGANOutput:
    """Images per caption: stage1[i][j] is caption i's j-th 64x64 image; stage2 likewise at 256x256
    (None for a Stage-I-only model). `truncated[i]` says caption i was cut at the encoder's limit."""

    stage1: list[list]
    stage2: list[list] | None
    seed: int
    truncated: list[bool] = field(default_factory=list)


class StackGANPipeline:
    """Caption(s) -> text encoder -> Stage-I G -> Stage-II G, with seeded noise and CA controls."""

    def __init__(self, model: StackGANModel, text_encoder=None, fold_batchnorm: bool = True,
                 compile: bool = False):
        self.model = model.eval()
        self._text_encoder = text_encoder
        # Inference runs on copies with BatchNorm folded into the convolutions (stackgan/fast.py):
        # the same function, one pass less over every activation. Rebuilt when the weights change.
        self.fold_batchnorm = fold_batchnorm
        # torch.compile of those copies: 15-25% faster per call on the CPU at `cub` widths, but
        # 10-25 s of compilation on the first call of each batch size, so opt-in.
        self.compile = compile
        self._folded = (None, None)
        if text_encoder is not None:
            check_encoder(text_encoder, model.config)

    @property
    def config(self) -> StackGANConfig:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return self.model.text_mean.device

    @property
    def text_encoder(self):
        """The encoder named in the model's config, loaded on first use."""
        if self._text_encoder is None:
            from .text import TextEncoder

            self._text_encoder = TextEncoder(self.config.text_encoder)
            check_encoder(self._text_encoder, self.config)
        return self._text_encoder

    def to(self, device) -> "StackGANPipeline":
        self.model.to(device)
        return self

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike | None = None, *, text_encoder=None,
                        device: str | torch.device = "cpu", compile: bool = False,
                        **hub_kwargs) -> "StackGANPipeline":
        """Load a model folder, a train/ checkpoint folder or a Hub repo id; no argument loads the
        bundled Shapes model (offline). `compile`: run the generators through torch.compile.
        `hub_kwargs`: revision, cache_dir, token, local_files_only."""
        if path_or_repo_id is None:
            if not (BUNDLED_MODEL / "config.json").is_file():
                raise FileNotFoundError(f"the bundled model is missing from {BUNDLED_MODEL}; pass a model "
                                        "folder or Hub id, or train one with train/train.py (see README)")
            path_or_repo_id = BUNDLED_MODEL
        model = StackGANModel.from_pretrained(path_or_repo_id, **hub_kwargs)
        return cls(model.to(device), text_encoder=text_encoder, compile=compile)

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write config.json, model.safetensors and a README.md model card."""
        folder = Path(save_directory)
        self.model.save_pretrained(folder)
        (folder / "README.md").write_text(model_card(self.model.config, self.model.stages, self.model.training_info))
        return folder

    def push_to_hub(self, repo_id: str, *, private: bool = False, token: str | None = None,
                    commit_message: str = "Upload StackGAN model", api=None) -> str:
        """Save to a temporary folder, verify that it loads back identically, then upload it as one
        commit, so a broken save never replaces a good model on the Hub."""
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "model")
            verify_model_folder(folder, self.model)
            return upload_model_folder(folder, repo_id, api=api, token=token, private=private,
                                       commit_message=commit_message)

    def encode(self, captions: list[str]) -> tuple[torch.Tensor, list[bool]]:
        """Standardised text embeddings (N, text_dim) on the model's device, and truncation flags."""
        encoder = self.text_encoder
        try:
            embeddings, truncated = encoder.encode(captions, return_truncation=True)
        except TypeError:  # a plain encode(list[str]) -> Tensor object
            embeddings, truncated = encoder.encode(captions), [False] * len(captions)
        embeddings = torch.as_tensor(embeddings, dtype=torch.float32)
        if embeddings.shape != (len(captions), self.config.text_dim):
            raise ValueError(f"text encoder returned shape {tuple(embeddings.shape)} for {len(captions)} "
                             f"captions; the model expects text_dim={self.config.text_dim} "
                             f"({self.config.text_encoder})")
        return self.model.standardize(embeddings.to(self.device)), list(truncated)

    def sample_noise(self, num_prompts: int, num_images: int, seed: int, truncation: float = 1.0,
                     ca_mode: str = "sample", ca_scale: float = 1.0, vary: str = "both") -> dict:
        """z, both stages' CA noise eps and, with a caption prior, its noise u, shape (num_prompts,
        num_images, dim), on the CPU.

        Prompt i draws from a generator seeded with seed + i, in a fixed order (z, eps1, eps2, u), so
        a caption's images do not depend on the other captions in the call. truncation scales z (1.0:
        z ~ N(0, I); smaller trades diversity for typical images); ca_scale scales sigma; "mean"
        uses mu alone. u, which completes what the caption leaves open, counts as conditioning:
        vary="noise" shares eps and u across a caption's images, "conditioning" shares z.
        """
        check_choice("ca_mode", ca_mode, CA_MODES)
        check_choice("vary", vary, VARY)
        if not (isinstance(truncation, (int, float)) and math.isfinite(truncation) and truncation > 0):
            raise ValueError(f"truncation must be a positive number, got {truncation!r}")
        if not (isinstance(ca_scale, (int, float)) and math.isfinite(ca_scale) and ca_scale >= 0):
            raise ValueError(f"ca_scale must be a number >= 0, got {ca_scale!r}")
        dims = {"z": self.config.z_dim, "eps1": self.config.condition_dim, "eps2": self.config.condition_dim}
        if self.model.prior is not None:
            dims["u"] = self.config.prior_noise_dim
        draws = {name: [] for name in dims}
        for i in range(num_prompts):
            generator = torch.Generator().manual_seed(seed + i)
            for name, dim in dims.items():
                draws[name].append(torch.randn(num_images, dim, generator=generator))
        noise = {name: torch.stack(values) for name, values in draws.items()}
        noise["z"] = noise["z"] * truncation
        for name in ("eps1", "eps2"):
            noise[name] = noise[name] * (ca_scale if ca_mode == "sample" else 0.0)
        if vary == "noise":
            for name in set(noise) - {"z"}:
                noise[name] = noise[name][:, :1].expand_as(noise[name])
        elif vary == "conditioning":
            noise["z"] = noise["z"][:, :1].expand_as(noise["z"])
        return noise

    def generators(self) -> tuple[nn.Module, nn.Module | None]:
        """The (Stage-I, Stage-II) networks inference uses: BN-folded copies unless disabled."""
        if not self.fold_batchnorm:
            return self.model.stage1, self.model.stage2
        # Tensor._version counts in-place writes, so any change to the weights (load_state_dict,
        # an optimiser step, .to()) gives a new key.
        key = tuple((t.data_ptr(), t._version) for t in self.model.state_dict().values())
        if self._folded[0] != key:
            nets = [None if net is None else fast.fold_batchnorm(net) for net in (self.model.stage1, self.model.stage2)]
            if self.compile:
                nets = [None if net is None else torch.compile(net) for net in nets]
            self._folded = (key, tuple(nets))
        return self._folded[1]

    @torch.inference_mode()
    def generate(self, embeddings: torch.Tensor, z: torch.Tensor, eps1: torch.Tensor, eps2: torch.Tensor,
                 batch_size: int = 16, u: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images for flat (N, ...) inputs, in batches: (stage1 (N,3,64,64), stage2 (N,3,256,256) or None).
        `u`: the caption prior's noise, needed when the model has a prior (both stages read its
        completed caption)."""
        stage1_net, stage2_net = self.generators()
        prior = self.model.prior
        if prior is not None and u is None:
            raise ValueError("this model has a caption prior (config.prior_noise_dim="
                             f"{self.config.prior_noise_dim}); pass its noise u (see sample_noise)")
        stage1, stage2 = [], []
        for start in range(0, len(z), batch_size):
            part = slice(start, start + batch_size)
            e = embeddings[part].to(self.device)
            if prior is not None:
                e = prior(e, u[part].to(self.device))
            image1, _, _ = stage1_net(e, z[part].to(self.device), eps1[part].to(self.device))
            stage1.append(image1.cpu())
            if stage2_net is not None:
                image2, _, _ = stage2_net(image1, e, eps2[part].to(self.device))
                stage2.append(image2.cpu())
        return torch.cat(stage1), (torch.cat(stage2) if stage2 else None)

    def __call__(self, prompt: str | list[str], num_images_per_prompt: int = 1, seed: int | None = None,
                 truncation: float = 1.0, ca_mode: str = "sample", ca_scale: float = 1.0,
                 vary: str = "both", batch_size: int = 16) -> StackGANOutput:
        """Generate `num_images_per_prompt` images per caption; same seed and settings, same pixels."""
        captions = [prompt] if isinstance(prompt, str) else list(prompt)
        if not captions:
            raise ValueError("no caption given")
        if not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise ValueError(f"num_images_per_prompt must be a positive integer, got {num_images_per_prompt!r}")
        seed = check_seed(seed)
        embeddings, truncated = self.encode(captions)
        n = num_images_per_prompt
        noise = self.sample_noise(len(captions), n, seed, truncation, ca_mode, ca_scale, vary)
        flat = {k: v.reshape(len(captions) * n, -1) for k, v in noise.items()}
        stage1, stage2 = self.generate(embeddings.repeat_interleave(n, dim=0), flat["z"], flat["eps1"],
                                       flat["eps2"], batch_size, flat.get("u"))
        return StackGANOutput(stage1=rows(to_pil(stage1), n),
                              stage2=None if stage2 is None else rows(to_pil(stage2), n),
                              seed=seed, truncated=truncated)

    def interpolate_captions(self, caption_a: str, caption_b: str, steps: int = 8, seed: int = 0,
                             truncation: float = 1.0, ca_mode: str = "mean", ca_scale: float = 1.0) -> StackGANOutput:
        """Caption A -> caption B at fixed noise (paper Fig. 8): embeddings linearly interpolated."""
        steps = check_steps(steps)
        embeddings, truncated = self.encode([caption_a, caption_b])
        t = torch.linspace(0, 1, steps, device=embeddings.device)[:, None]
        path = (1 - t) * embeddings[0] + t * embeddings[1]
        noise = {k: v[0, :1].expand(steps, -1) for k, v in
                 self.sample_noise(1, 1, check_seed(seed), truncation, ca_mode, ca_scale).items()}
        return self._single_row(path, noise, seed, truncated)

    def interpolate_seeds(self, caption: str, seed_a: int, seed_b: int, steps: int = 8,
                          truncation: float = 1.0, ca_mode: str = "mean", ca_scale: float = 1.0) -> StackGANOutput:
        """Seed A -> seed B at a fixed caption: z moves along the great circle (slerp), CA noise fixed."""
        steps = check_steps(steps)
        embeddings, truncated = self.encode([caption])
        noise_a = self.sample_noise(1, 1, check_seed(seed_a), truncation, ca_mode, ca_scale)
        noise_b = self.sample_noise(1, 1, check_seed(seed_b), truncation, ca_mode, ca_scale)
        t = torch.linspace(0, 1, steps)
        noise = {k: v[0, :1].expand(steps, -1) for k, v in noise_a.items()}
        noise["z"] = slerp(noise_a["z"][0, 0], noise_b["z"][0, 0], t)
        return self._single_row(embeddings.expand(steps, -1), noise, seed_a, truncated)

    def _single_row(self, embeddings, noise, seed, truncated) -> StackGANOutput:
        stage1, stage2 = self.generate(embeddings, noise["z"], noise["eps1"], noise["eps2"], u=noise.get("u"))
        return StackGANOutput(stage1=[to_pil(stage1)], stage2=None if stage2 is None else [to_pil(stage2)],
                              seed=seed, truncated=truncated)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between two noise vectors, so every point keeps a typical norm."""
    omega = torch.arccos(torch.clamp(torch.dot(a / a.norm(), b / b.norm()), -1.0, 1.0))
    if omega.abs() < 1e-6:
        return torch.lerp(a.expand(len(t), -1), b.expand(len(t), -1), t[:, None])
    t = t[:, None]
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def rows(images: list, per_row: int) -> list[list]:
    return [images[i:i + per_row] for i in range(0, len(images), per_row)]


def check_choice(name: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {allowed}")


def check_seed(seed: int | None) -> int:
    if seed is None:
        return secrets.randbelow(2**31)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63 - 2**20:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return seed


def check_steps(steps: int) -> int:
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    return steps


def check_encoder(encoder, config: StackGANConfig) -> None:
    """The model only understands embeddings of the encoder it was trained with."""
    model_id = getattr(encoder, "model_id", None)
    if model_id is not None and model_id != config.text_encoder:
        raise ValueError(f"text encoder {model_id!r} does not match the model's {config.text_encoder!r} "
                         "(config.text_encoder); the model was trained on that encoder's embeddings")
    dim = getattr(encoder, "dim", None)
    if dim is not None and dim != config.text_dim:
        raise ValueError(f"text encoder gives {dim}-d embeddings; the model expects text_dim={config.text_dim}")


def verify_model_folder(folder: Path, reference: StackGANModel) -> None:
    """Reload a saved folder and compare every tensor with the model it came from."""
    loaded = StackGANModel.from_pretrained(folder)
    expected = reference.state_dict()
    for key, value in loaded.state_dict().items():
        if not torch.isfinite(value.float()).all():
            raise ValueError(f"refusing to upload: tensor {key!r} holds NaN or Inf")
        if not torch.equal(value, expected[key].cpu()):
            raise ValueError(f"refusing to upload: tensor {key!r} changed in the save/load round trip")
