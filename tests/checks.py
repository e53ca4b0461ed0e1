"""Comparisons of engine output with the oracle, with messages that point at the first bad samples.

Decisions (booleans, indices, counts) must be identical; floats must agree within RTOL relative
(SPEC.md's correctness standard), with NaN and +inf in the same places.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from reference import Reference

from rarity_score import metrics
from rarity_score.options import EngineOptions

RTOL = 1e-9

#: The metrics the brute-force oracle of reference.py covers, in registry order.
ORACLE_METRICS = ("rarity", "precision", "recall", "density", "coverage", "realism", "nearest")

#: Every registered metric (what ``metrics=None`` computes): the oracle's, and any registered later
#: (whose own tests check them against their own brute force).
ALL_METRICS = metrics.names()

# Per-sample fields that are present whatever metrics were asked for.
ALWAYS_PRESENT = ("rarity", "in_manifold", "sphere_index")

# Evaluation fields that belong to each optional metric.
METRIC_FIELDS = {
    "precision": ("precision",),
    "recall": ("recall",),
    "density": ("density",),
    "coverage": ("coverage",),
    "realism": ("realism",),
    "nearest": ("nearest_real_index", "nearest_real_distance"),
}

# Per-sample fields that are decisions (exact) and their dtypes.
EXACT_FIELDS = {
    "in_manifold": np.bool_,
    "sphere_index": np.int64,
    "sphere_count": np.int64,
    "nearest_real_index": np.int64,
}
FLOAT_FIELDS = ("rarity", "nearest_real_distance", "realism")
SCALAR_FIELDS = ("precision", "recall", "density", "coverage")


def engine_with(
    options: Mapping[str, Any] | EngineOptions | None = None, **changes
) -> EngineOptions:
    """EngineOptions from conftest's ``engine_options`` (a dict of backend and device, or already
    an EngineOptions) with ``changes`` (tile_size, memory_budget, ...)."""
    if isinstance(options, EngineOptions):
        base = {field: getattr(options, field) for field in ("backend", "device")}
    else:
        base = dict(options or {})
    return EngineOptions(**{**base, **changes})


def _first_bad(bad: np.ndarray, got: np.ndarray, want: np.ndarray, limit: int = 5) -> str:
    idx = np.flatnonzero(bad)[:limit]
    pairs = ", ".join(f"[{i}] got {got[i]!r} want {want[i]!r}" for i in idx)
    return f"{np.count_nonzero(bad)} of {bad.size} differ; first: {pairs}"


def assert_exact(name: str, got: np.ndarray, want: np.ndarray, dtype: type | None = None) -> None:
    assert isinstance(got, np.ndarray), f"{name}: expected np.ndarray, got {type(got)}"
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    if dtype is not None:
        assert got.dtype == dtype, f"{name}: dtype {got.dtype} != {np.dtype(dtype)}"
    bad = got != want
    assert not bad.any(), f"{name}: {_first_bad(bad, got, want)}"


def assert_close(name: str, got: np.ndarray, want: np.ndarray, rtol: float = RTOL) -> None:
    """float64 arrays equal within rtol, with NaN and +-inf at the same positions; atol is 0, so a
    true zero (a radius-0 sphere, a realism of 0) must come out exactly zero."""
    assert isinstance(got, np.ndarray), f"{name}: expected np.ndarray, got {type(got)}"
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    assert got.dtype == np.float64, f"{name}: dtype {got.dtype} != float64"
    nan_bad = np.isnan(got) != np.isnan(want)
    assert not nan_bad.any(), f"{name} NaN positions: {_first_bad(nan_bad, got, want)}"
    inf_bad = np.isposinf(got) != np.isposinf(want)
    assert not inf_bad.any(), f"{name} +inf positions: {_first_bad(inf_bad, got, want)}"
    finite = np.isfinite(want)
    with np.errstate(invalid="ignore"):
        bad = finite & ~(np.abs(got - want) <= rtol * np.abs(want))
    assert not bad.any(), f"{name} (rtol {rtol}): {_first_bad(bad, got, want)}"


def assert_scalar_close(name: str, got: float | None, want: float, rtol: float = RTOL) -> None:
    assert got is not None, f"{name} is None"
    assert isinstance(got, float), f"{name}: expected a float, got {type(got)}"
    if math.isnan(want):
        assert math.isnan(got), f"{name}: got {got}, want NaN"
    else:
        assert abs(got - want) <= rtol * abs(want), f"{name}: got {got!r}, want {want!r}"


def fields_for(metrics: tuple[str, ...]) -> set[str]:
    """Evaluation fields that must be filled for the metrics asked for."""
    fields = set(ALWAYS_PRESENT)
    for metric in metrics:
        fields.update(METRIC_FIELDS.get(metric, ()))
    return fields


def assert_matches_reference(ev, ref: Reference, metrics: tuple[str, ...] = ALL_METRICS) -> None:
    """Every Evaluation field equals the oracle's; fields of metrics not asked for are None."""
    assert (ev.k, ev.n_real, ev.n_fake, ev.dim) == (ref.k, ref.n_real, ref.n_fake, ref.dim)
    assert set(metrics) <= set(ev.metrics), f"metrics {ev.metrics} lack some of {metrics}"
    wanted = fields_for(metrics)
    if set(metrics) == set(ALL_METRICS):
        wanted.add("sphere_count")
    for name, dtype in EXACT_FIELDS.items():
        if name in wanted:
            assert_exact(name, getattr(ev, name), getattr(ref, name), dtype)
    for name in FLOAT_FIELDS:
        if name in wanted:
            assert_close(name, getattr(ev, name), getattr(ref, name))
    for name in SCALAR_FIELDS:
        if name in wanted:
            assert_scalar_close(name, getattr(ev, name), getattr(ref, name))
    # A metric not asked for must not be silently reported.
    for metric, names in METRIC_FIELDS.items():
        if metric not in metrics and metric not in ev.metrics:
            for name in names:
                assert getattr(ev, name) is None, f"{name} filled but {metric} not asked for"
