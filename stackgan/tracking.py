"""A JSON-lines experiment tracker for Accelerate that needs no extra package.

Each `log` call appends one line {"step": N, "time": unix seconds, ...values} to
`<logging_dir>/<run_name>/metrics.jsonl`; the run's configuration goes to `config.json` beside it.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from accelerate.tracking import GeneralTracker, on_main_process


class JSONLTracker(GeneralTracker):
    name = "jsonl"
    requires_logging_directory = True

    # Built before the Accelerator, so __init__ must not ask which process it is (that would
    # initialise Accelerate's state too early); folders are made in start(), on the main process.
    def __init__(self, run_name: str, logging_dir: str | Path):
        super().__init__()
        self.run_dir = Path(logging_dir) / run_name
        self.path = self.run_dir / "metrics.jsonl"

    @on_main_process
    def start(self):
        self.run_dir.mkdir(parents=True, exist_ok=True)

    @property
    def tracker(self):
        return self.path

    @on_main_process
    def store_init_configuration(self, values: dict):
        (self.run_dir / "config.json").write_text(json.dumps(values, indent=2, sort_keys=True, default=str))

    @on_main_process
    def log(self, values: dict, step: int | None = None, **kwargs):
        row = {"step": step, "time": round(time.time(), 3)}
        for key, value in values.items():
            value = value.item() if hasattr(value, "item") else value
            if isinstance(value, float) and not math.isfinite(value):
                value = str(value)  # keep the line valid JSON
            if isinstance(value, (int, float, str, bool)) or value is None:
                row[key] = value
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    @on_main_process
    def log_images(self, values: dict, step: int | None = None, **kwargs):
        """Images are written by the training script; record where they are."""
        self.log({k: str(v) for k, v in values.items() if isinstance(v, (str, Path))}, step=step)
