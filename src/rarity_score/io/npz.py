"""Writing ``.npz`` files the one way the package writes them: text as unicode arrays (which load
back with ``allow_pickle=False``), never object arrays, and each file written atomically.

The results directory, the feature cache and feature files written by ``rarity features`` all
write through these helpers; the readers (:func:`rarity_score.io.features.open_npz`) refuse
object arrays, so a file written any other way would not read back.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rarity_score.io.atomic import atomic_write_bytes

__all__ = ["npz_bytes", "str_array", "write_npz"]


def str_array(values: Sequence[str]) -> np.ndarray:
    """``values`` as a unicode array; an empty one still has a unicode dtype.

    >>> str_array(["a.png", "bc.png"]).dtype, str_array([]).dtype
    (dtype('<U6'), dtype('<U1'))
    """
    if not len(values):
        return np.zeros(0, dtype="<U1")
    return np.array([str(value) for value in values], dtype=str)


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """The bytes of an uncompressed ``.npz`` holding ``arrays`` (in the order given)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def write_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> Path:
    """Write ``arrays`` to the ``.npz`` file ``path`` atomically; return the path."""
    return atomic_write_bytes(path, npz_bytes(**arrays))
