"""Training checkpoints: written atomically, found again after a crash, pruned to a limit.

A checkpoint folder `checkpoint-<step>` holds the networks and EMA as safetensors, the optimiser
states (`optimizers.pt`, tensors only: read back with weights_only=True), `state.json` (step,
epoch, batches done in the epoch, the config), and `pipeline/`, a loadable model folder.
It is assembled in `.tmp-checkpoint-<step>` and renamed into place, so a kill during a save leaves
the previous checkpoint as the latest one.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

PATTERN = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints in `output_dir`, oldest first."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := PATTERN.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def resolve_checkpoint(output_dir: str | Path, which: str) -> Path | None:
    """"latest" -> the newest complete checkpoint (None if there is none); else a path that must exist."""
    if which == "latest":
        found = checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(which)
    if not (path / "state.json").is_file():
        raise ValueError(f"--resume_from_checkpoint {which}: no checkpoint there (missing state.json)")
    return path


def save_checkpoint(output_dir: str | Path, step: int, tensors: dict[str, dict], optimizers: dict,
                    state: dict, write_pipeline, limit: int | None = None) -> Path:
    """Write checkpoint-<step> atomically and keep at most `limit` checkpoints.

    tensors: file stem -> state dict (saved as <stem>.safetensors); optimizers: name -> state dict;
    write_pipeline(folder) writes the loadable model folder.
    """
    output_dir = Path(output_dir)
    final, tmp = output_dir / f"checkpoint-{step}", output_dir / f".tmp-checkpoint-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for stem, weights in tensors.items():
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(tmp / f"{stem}.safetensors"))
    torch.save(optimizers, tmp / "optimizers.pt")
    (tmp / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
    write_pipeline(tmp / "pipeline")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    if limit is not None:
        for old in checkpoints(output_dir)[:-limit]:
            shutil.rmtree(old)
    return final


def load_checkpoint(folder: str | Path) -> tuple[dict, dict, dict]:
    """(tensors by stem, optimiser states, state.json) of a checkpoint folder."""
    folder = Path(folder)
    tensors = {p.stem: load_file(str(p)) for p in folder.glob("*.safetensors")}
    optimizers = torch.load(folder / "optimizers.pt", weights_only=True)
    return tensors, optimizers, json.loads((folder / "state.json").read_text())


# A published model may carry the discriminators it was trained against, so that a fine-tune of
# it (train.py --init_from) continues the adversarial game instead of restarting it: every fresh
# D cost the bundled model 15-25 points of shape accuracy (README "Where the object goes").
# Inference never reads this file; Hub pulls fetch it only for training (resolve_model_folder).
DISCRIMINATORS_FILE = "discriminators.safetensors"


def save_discriminators(folder: str | Path, discriminators: dict[int, dict]) -> Path:
    """Write {stage: D state dict} into one safetensors file, keys prefixed `stage<N>.`."""
    path = Path(folder) / DISCRIMINATORS_FILE
    save_file({f"stage{stage}.{key}": value.detach().cpu().contiguous()
               for stage, tensors in sorted(discriminators.items()) for key, value in tensors.items()}, str(path))
    return path


def load_discriminator(folder: str | Path, stage: int) -> dict | None:
    """The Stage-`stage` D a model folder carries, or None where it carries none."""
    path = Path(folder) / DISCRIMINATORS_FILE
    if not path.is_file():
        return None
    try:
        tensors = load_file(str(path))
    except Exception as error:  # safetensors raises its own error types for corrupt headers
        raise ValueError(f"{path} is not a valid safetensors file: {error}") from None
    prefix = f"stage{stage}."
    return {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)} or None
