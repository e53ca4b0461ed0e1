"""Engine benchmark: the sweep against a plain float32 GEMM and a naive float64 implementation.

Everything is measured in one run on the same machine, so the ratios are the figures that matter:

* ``gemm (same pairs)``: float32 ``R R^T``, ``G G^T`` and ``R G^T``, the products that all metrics
  need (real radii, generated radii for recall, real-vs-generated); ``gemm (R G^T)`` the last alone.
* ``evaluate``: every metric; ``rarity_score``: rarity alone (radii plus the early-stopping search).
* ``naive float64``: full N x N and N x M float64 matrices, as the paper's script holds them.

Peak memory is what tracemalloc sees numpy allocate during each call, beyond its inputs.

Usage: ``python benchmarks/bench_engine.py [--n-real 10000 --n-fake 10000 --dim 4096]``
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from rarity_score import evaluate, rarity_score


def structured_features(
    n: int, dim: int, rng: np.random.Generator, shift: float = 0.0, spread: float = 1.0
) -> np.ndarray:
    """CNN-like features: a 64-d latent through a fixed random layer and a ReLU, plus noise.

    Non-negative with a large mean and low intrinsic dimension, like VGG fc2 activations.
    """
    mixing = np.random.default_rng(12345).normal(size=(64, dim)) / 8.0
    latent = rng.normal(size=(n, 64)) * spread + shift
    features = np.maximum(latent @ mixing + 0.5, 0.0) + 0.05 * rng.random((n, dim))
    return features.astype(np.float32)


def measure(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Seconds and peak MiB of numpy allocations of one call."""
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / 2**20, result


def gemm_same_pairs(real: np.ndarray, fake: np.ndarray) -> None:
    for a, b in ((real, real), (fake, fake), (real, fake)):
        _ = a @ b.T


def naive_float64(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, Any]:
    """All metrics from full float64 matrices, the way the paper's script computes them."""
    r, g = real.astype(np.float64), fake.astype(np.float64)

    def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
        return np.sqrt(np.maximum(squared, 0.0))

    real_real = distances(r, r)
    np.fill_diagonal(real_real, np.inf)
    radii = np.partition(real_real, k - 1, axis=1)[:, k - 1]
    del real_real
    fake_fake = distances(g, g)
    np.fill_diagonal(fake_fake, np.inf)
    fake_radii = np.partition(fake_fake, k - 1, axis=1)[:, k - 1]
    del fake_fake
    real_fake = distances(r, g)
    inside = real_fake < radii[:, None]
    rarity = np.where(inside, radii[:, None], np.inf).min(axis=0)
    return {
        "rarity": np.where(np.isinf(rarity), np.nan, rarity),
        "precision": inside.any(axis=0).mean(),
        "recall": (real_fake < fake_radii[None, :]).any(axis=1).mean(),
        "density": inside.sum() / (k * len(g)),
        "coverage": inside.any(axis=1).mean(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-real", type=int, default=10_000)
    parser.add_argument("--n-fake", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("-k", type=int, default=3)
    parser.add_argument("--no-naive", action="store_true", help="skip the naive float64 run")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved rounds (best counts)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    real = structured_features(args.n_real, args.dim, rng)
    fake = structured_features(args.n_fake, args.dim, rng, shift=0.05, spread=1.05)
    print(f"real {real.shape}, fake {fake.shape}, float32, k={args.k}, {args.repeat} rounds")

    # The machine's speed drifts; rounds interleave the contenders and the best round counts.
    contenders: dict[str, Callable[[], Any]] = {
        "gemm (same pairs)": lambda: gemm_same_pairs(real, fake),
        "gemm (R G^T only)": lambda: real @ fake.T,
        "evaluate (all metrics)": lambda: evaluate(real, fake, args.k),
        "rarity_score alone": lambda: rarity_score(real, fake, args.k),
    }
    best: dict[str, tuple[float, float]] = {}
    outputs: dict[str, Any] = {}
    for _ in range(args.repeat):
        for name, call in contenders.items():
            seconds, mib, outputs[name] = measure(call)
            previous = best.get(name, (np.inf, 0.0))
            best[name] = (min(previous[0], seconds), max(previous[1], mib))
    naive = None
    if not args.no_naive:
        t_naive, m_naive, naive = measure(lambda: naive_float64(real, fake, args.k))
        best["naive float64 (once)"] = (t_naive, m_naive)
    result, rarity = outputs["evaluate (all metrics)"], outputs["rarity_score alone"]

    t_gemm = best["gemm (same pairs)"][0]
    t_cross = best["gemm (R G^T only)"][0]
    t_eval = best["evaluate (all metrics)"][0]
    t_rar = best["rarity_score alone"][0]
    print(f"\n{'':26s}{'seconds':>10s}{'peak MiB':>10s}{'/ gemm':>9s}")
    for name, (seconds, mib) in best.items():
        print(f"{name:26s}{seconds:10.2f}{mib:10.0f}{seconds / t_gemm:9.2f}")
    print(f"\nevaluate / gemm (same pairs)  {t_eval / t_gemm:.2f}")
    print(f"evaluate / gemm (R G^T only)  {t_eval / t_cross:.2f}")
    print(f"rarity   / gemm (same pairs)  {t_rar / t_gemm:.2f}")
    if naive is not None:
        print(f"naive float64 / evaluate      {best['naive float64 (once)'][0] / t_eval:.2f}")
    inside = result.in_manifold.mean()
    print(
        f"in manifold: {inside:.3f}; precision {result.precision:.4f} recall {result.recall:.4f} "
        f"density {result.density:.4f} coverage {result.coverage:.4f}"
    )
    assert np.array_equal(np.isnan(rarity), ~result.in_manifold)
    if naive is not None:
        # The naive run uses the float64 GEMM formula, so it may differ on a knife-edge pair.
        agree = np.mean(np.isnan(naive["rarity"]) == np.isnan(result.rarity))
        print(f"naive agrees on in/out for {agree:.6f} of samples")


if __name__ == "__main__":
    main()
