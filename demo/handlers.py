"""What the demo's buttons do: check the inputs, run the pipeline, shape the results for galleries.

Kept apart from the layout (ui.py) so that tests and benchmarks call exactly what the server runs.
Every problem a user can cause becomes a `gr.Error` with a sentence that says what to change
(issue 6 §6), never a traceback.
"""

from __future__ import annotations

import math
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import gradio as gr
from PIL import Image

MAX_IMAGES = 8
MAX_SEED = 2**31 - 1
MAX_STEPS = 12
# Far above the encoder's token limit (captions past it are truncated with a notice); only stops
# megabyte-long inputs from reaching the tokenizer.
MAX_CAPTION_CHARS = 2000
INTERPOLATION_MODES = ("caption", "seed")
EXAMPLE_CAPTIONS = [
    "a large red star on a white background",
    "a small blue circle in the top left corner on a black background",
    "a green striped triangle at the bottom over a beige background",
    "a big yellow heart in the center against a light blue backdrop",
    "a purple dotted hexagon on the right on a gray background",
    "a medium orange checkered square in the bottom right corner on a dark green background",
]
EMPTY_CAPTION = "{what} is empty: type a description, for example “a large red star on a white background”."


@dataclass
class Result:
    """Gallery values: lists of (image, label); stage2 is empty for a Stage-I-only model."""

    stage1: list
    stage2: list
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def compare(self, index: int = 0):
        """(Stage-I enlarged, Stage-II) for gr.ImageSlider, or None without Stage-II."""
        if not self.stage2 or index >= len(self.stage2):
            return None
        return enlarge(self.stage1[index][0]), self.stage2[index][0]


class Handlers:
    """The demo's actions on one loaded pipeline."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        # Every generation runs on this one thread, one at a time: the text encoder's cache is a
        # plain OrderedDict, one batch already keeps every core busy, and glibc gives each thread
        # its own heap, so tensors freed and reallocated on one thread reuse the same memory
        # instead of fragmenting several heaps. Measured over 400 requests: RSS +13% and climbing
        # when gradio's worker threads ran the model, flat (+0.4%) on this thread (issue 6 §6).
        # Gradio's concurrency still overlaps one request's PNG encoding with the next generation.
        self._start_worker()
        # A forked child (ZeroGPU runs each GPU call in one) inherits the executor but not its thread.
        os.register_at_fork(after_in_child=self._start_worker)

    @property
    def has_stage2(self) -> bool:
        return self.pipeline.model.stage2 is not None

    def generate(self, caption, num_images, seed, truncation=1.0, ca_mode="sample", ca_scale=1.0,
                 vary="both") -> Result:
        """`num_images` images for one caption; the same inputs give the same pixels."""
        caption = check_caption(caption, "The caption")
        count = whole_number("Number of images", num_images, 1, MAX_IMAGES)
        seed = whole_number("Seed", seed, 0, MAX_SEED)
        start = time.perf_counter()
        out = self._run(self.pipeline, caption, num_images_per_prompt=count, seed=seed, truncation=truncation,
                        ca_mode=ca_mode, ca_scale=ca_scale, vary=vary)
        labels = [f"seed {seed} · #{i + 1}" for i in range(count)]
        return self._result(out, labels, time.perf_counter() - start)

    def interpolate(self, mode, caption_a, caption_b, seed_a, seed_b, steps) -> Result:
        """The paper's interpolations (Fig. 8): "caption" walks caption A -> caption B at the fixed
        noise of seed A; "seed" walks seed A -> seed B at the fixed caption A. K = `steps` images."""
        if mode not in INTERPOLATION_MODES:
            raise gr.Error(f"Interpolation mode {mode!r} is not one of {INTERPOLATION_MODES}.",
                           print_exception=False)
        steps = whole_number("Steps", steps, 2, MAX_STEPS)
        caption_a = check_caption(caption_a, "Caption A")
        seed_a = whole_number("Seed A", seed_a, 0, MAX_SEED)
        start = time.perf_counter()
        if mode == "caption":
            caption_b = check_caption(caption_b, "Caption B")
            out = self._run(self.pipeline.interpolate_captions, caption_a, caption_b, steps=steps, seed=seed_a)
        else:
            seed_b = whole_number("Seed B", seed_b, 0, MAX_SEED)
            out = self._run(self.pipeline.interpolate_seeds, caption_a, seed_a, seed_b, steps=steps)
        labels = [f"t = {i / (steps - 1):.2f}" for i in range(steps)]
        return self._result(out, labels, time.perf_counter() - start)

    def _start_worker(self) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stackgan-generate")

    def _run(self, fn, *args, **kwargs):
        """fn(*args, **kwargs) on the generation thread; the pipeline's ValueErrors, which say what
        is wrong and how to fix it, become messages."""
        try:
            return self._worker.submit(fn, *args, **kwargs).result()
        except ValueError as error:
            raise gr.Error(str(error), print_exception=False) from None

    def _result(self, out, labels: list[str], seconds: float) -> Result:
        stage1 = list(zip(out.stage1[0], labels))
        stage2 = list(zip(out.stage2[0], labels)) if out.stage2 is not None else []
        notes = []
        if any(out.truncated):
            limit = getattr(self.pipeline.text_encoder, "max_tokens", None)
            limit = f" of {limit} tokens" if limit else ""
            notes.append(f"The caption is longer than the text encoder's limit{limit}: only its beginning was used.")
            gr.Warning(notes[-1])
        if out.stage2 is None:
            notes.append("This model has no Stage-II, so only Stage-I images are shown.")
        return Result(stage1, stage2, notes, seconds)


def warm_up(pipeline) -> None:
    """Embed the example captions (the encoder caches them) and run one generation, so the first
    visitor does not pay for loading the text encoder."""
    pipeline.text_encoder.encode(EXAMPLE_CAPTIONS)
    pipeline(EXAMPLE_CAPTIONS[0], num_images_per_prompt=1, seed=0)


def random_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


def enlarge(image: Image.Image, size: int = 256) -> Image.Image:
    """Scale a Stage-I image up with nearest neighbour: every generated pixel stays a sharp square."""
    return image.resize((size, size), Image.Resampling.NEAREST)


def check_caption(caption, what: str) -> str:
    if caption is None or not isinstance(caption, str) or not caption.strip():
        raise gr.Error(EMPTY_CAPTION.format(what=what), title="Caption needed", print_exception=False)
    if len(caption) > MAX_CAPTION_CHARS:
        raise gr.Error(f"{what} has {len(caption)} characters; the limit is {MAX_CAPTION_CHARS}.",
                       print_exception=False)
    return caption.strip()


def whole_number(name: str, value, low: int, high: int) -> int:
    """`value` as an int in [low, high], or a gr.Error that names the allowed range."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise gr.Error(f"{name} must be a whole number from {low} to {high}, got {value!r}.", print_exception=False)
    return value

