"""The Gradio demo: `build_demo(pipeline)` lays out the page, `launch(...)` serves it (see app.py)."""

from .zerogpu import gpu  # first: `spaces` wants to be imported before torch
from .handlers import warm_up
from .ui import build_demo, launch

__all__ = ["build_demo", "gpu", "launch", "warm_up"]
