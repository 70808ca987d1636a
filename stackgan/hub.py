"""Where a model folder comes from (local folder, train/ checkpoint, Hub) and how one is uploaded."""

from __future__ import annotations

import os
from pathlib import Path

from .checkpoint import DISCRIMINATORS_FILE

# What a published model folder holds; everything else (checkpoint-*, logs) stays local.
MODEL_FILES = ("config.json", "model.safetensors", "README.md", "*.png", "*.json")
NEVER_UPLOAD = ("checkpoint-*", "checkpoint-*/**", "samples/**", "logs/**", "*.tmp")


def resolve_model_folder(path_or_repo_id: str | os.PathLike, *, revision: str | None = None,
                         cache_dir: str | None = None, token: str | bool | None = None,
                         local_files_only: bool = False, discriminators: bool = False) -> Path:
    """A folder holding config.json + model.safetensors.

    Accepts a model folder, a train/ output or checkpoint-N folder (its `pipeline/` subfolder), or
    a Hub repo id (downloaded with snapshot_download, honouring HF_HUB_OFFLINE and the cache).
    `discriminators`: also fetch the discriminators a model may carry (for fine-tuning it).
    """
    path = Path(path_or_repo_id).expanduser()
    if path.is_dir():
        for candidate in (path, path / "pipeline"):
            if (candidate / "config.json").is_file():
                return candidate
        raise ValueError(f"{path} is a folder but holds no config.json (nor pipeline/config.json); "
                         "expected a folder written by StackGANPipeline.save_pretrained or train/train.py")
    text = str(path_or_repo_id)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise ValueError(f"{text!r} is neither an existing model folder nor a Hub repo id of the form 'owner/name'")
    from huggingface_hub import snapshot_download

    folder = snapshot_download(repo_id=text, revision=revision, cache_dir=cache_dir, token=token,
                               local_files_only=local_files_only,
                               allow_patterns=[*MODEL_FILES, *([DISCRIMINATORS_FILE] if discriminators else [])])
    return Path(folder)


def upload_model_folder(folder: str | os.PathLike, repo_id: str, *, api=None, token: str | None = None,
                        private: bool = False, commit_message: str = "Upload StackGAN model") -> str:
    """Create `repo_id` if needed and upload `folder` as one commit; returns the commit URL.

    `api` is an `huggingface_hub.HfApi` (tests pass an object with the same two methods). One
    commit means the repo flips from the old model to the new one atomically; checkpoints, samples
    and logs are never uploaded. The caller verifies the folder first (see StackGANPipeline.push_to_hub).
    """
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder),
                               commit_message=commit_message, ignore_patterns=list(NEVER_UPLOAD))
    return str(getattr(commit, "commit_url", commit))
