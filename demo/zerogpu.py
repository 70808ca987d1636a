"""Hugging Face ZeroGPU support without depending on it.

On a ZeroGPU Space, `spaces.GPU` attaches a GPU to each decorated call; the `spaces` package is
not installed elsewhere (DESIGN.md §6), and then the functions run unchanged on the CPU or on the
device given to app.py.
"""

from __future__ import annotations

try:  # `spaces` must be imported before torch touches CUDA, so demo/__init__.py imports us first.
    import spaces
except ImportError:
    spaces = None


def gpu(fn):
    """`spaces.GPU(fn)` on Hugging Face Spaces, `fn` itself everywhere else."""
    return fn if spaces is None else spaces.GPU(fn)
