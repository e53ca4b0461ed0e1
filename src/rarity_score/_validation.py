"""Checks on user input, with messages that say what is wrong and what to do."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from rarity_score import defaults
from rarity_score.engine.backend import Backend


def as_features(x: Any, name: str, backend: Backend) -> Any:
    """``x`` as a 2-D floating array on ``backend``, or a ValueError naming ``name``."""
    array = backend.asarray(x if hasattr(x, "shape") else np.asarray(x))
    shape = tuple(array.shape)
    if len(shape) != 2:
        hint = " (a single feature vector? pass x.reshape(1, -1))" if len(shape) == 1 else ""
        raise ValueError(
            f"{name} features must be a 2-D array of shape (samples, features); "
            f"got shape {shape}{hint}"
        )
    if shape[0] == 0:
        raise ValueError(f"{name} features are empty (0 samples); pass at least one row")
    if shape[1] == 0:
        raise ValueError(f"{name} features have 0 dimensions; each sample needs a feature vector")
    kind = str(array.dtype)
    if "complex" in kind or kind in ("object", "str", "bool", "torch.bool"):
        raise ValueError(f"{name} features must be real numbers; got dtype {kind}")
    if "float" not in kind:
        # Integers are exact in float64 below 2**53; the engine needs a floating type.
        array = backend.asarray(backend.to_numpy(array).astype(np.float64))
    finite = backend.to_numpy(_finite_rows(array))
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"{name} features contain NaN or inf in {len(bad)} of {shape[0]} rows "
            f"(first: row {bad[0]}); remove or repair those samples"
        )
    return array


def _finite_rows(array: Any) -> Any:
    if isinstance(array, np.ndarray):
        return np.isfinite(array).all(axis=1)
    import torch

    return torch.isfinite(array).all(dim=1)


def check_k(k: Any, n_real: int) -> int:
    """k as an int in ``1 .. n_real - 1``."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer, got {k!r}")
    if n_real < 2:
        raise ValueError(
            f"the real set has {n_real} sample; k-NN spheres need at least 2 real samples"
        )
    if not 1 <= k <= n_real - 1:
        raise ValueError(
            f"k must be between 1 and {n_real - 1} (the number of real samples minus one) "
            f"for {n_real} real samples; got k={k}"
        )
    return int(k)


def check_same_dim(real_dim: int, fake_dim: int, fake_name: str = "fake") -> None:
    if real_dim != fake_dim:
        raise ValueError(
            f"{fake_name} features have {fake_dim} dimensions but the real features have "
            f"{real_dim}; both must come from the same feature extractor"
        )


def check_metrics(metrics: Iterable[str] | None) -> tuple[str, ...]:
    """The metrics asked for, in the canonical order; None means all."""
    if metrics is None:
        return defaults.METRICS
    if isinstance(metrics, str):
        metrics = [metrics]
    wanted = set(metrics)
    unknown = sorted(wanted - set(defaults.METRICS))
    if unknown:
        raise ValueError(
            f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(defaults.METRICS)}"
        )
    if not wanted:
        raise ValueError(f"no metric asked for; choose from {', '.join(defaults.METRICS)}")
    return tuple(m for m in defaults.METRICS if m in wanted)
