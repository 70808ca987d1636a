"""Read the StackGAN pickles (filenames, class ids, char-CNN-RNN embeddings) without trusting them.

`pickle.load` runs whatever code a file names. These pickles come from third-party downloads, so
the unpickler here resolves only the globals that numpy arrays need; anything else is refused.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path

import numpy as np

try:  # numpy >= 2 moved its internals to numpy._core
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar


def _latin1_encode(text, encoding):
    # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(text, "latin1").
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, encoding)


# Everything a pickle of numpy arrays, numpy scalars, lists, ints and strings may name, whether
# written by Python 2 (numpy.core) or by numpy 2 (numpy._core).
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): scalar,
    ("numpy._core.multiarray", "scalar"): scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only numpy arrays, lists and strings are allowed"
            ) from None


def load_pickle(path: str | Path):
    """Load a pickle that may hold only numpy arrays, numpy scalars, lists, ints and strings.

    Python 2 pickles (the StackGAN downloads) are read with ``encoding="latin1"``, which is what
    numpy needs to rebuild their arrays.

    Raises:
        ValueError: naming the file, when it is not such a pickle.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _ArraysOnlyUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError) as error:
        raise ValueError(f"{path}: not a readable pickle of arrays, lists and strings ({error})") from error
