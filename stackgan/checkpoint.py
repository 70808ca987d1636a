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
