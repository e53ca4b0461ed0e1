"""The random subsets of a run (``--subsample``, ``--stability``): which rows, from the seed."""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["subset_rows"]


def subset_rows(n_total: int, size: int, seed: int, *, salt: str = "") -> np.ndarray:
    """``size`` distinct rows of ``range(n_total)`` drawn without replacement, in increasing
    order (every row when ``size >= n_total``).

    The draw depends only on ``seed``, ``n_total``, ``size`` and ``salt`` (a set's name), so a
    run repeated draws the same rows, and two sets of one size draw different ones.

    >>> subset_rows(10, 4, seed=0, salt="a").tolist() == subset_rows(10, 4, 0, salt="a").tolist()
    True
    >>> len(subset_rows(10, 4, 0)), subset_rows(3, 5, 0).tolist()
    (4, [0, 1, 2])
    """
    if size >= n_total:
        return np.arange(n_total)
    rng = np.random.default_rng([seed, zlib.crc32(salt.encode("utf-8", "surrogateescape"))])
    return np.sort(rng.choice(n_total, size=size, replace=False))
