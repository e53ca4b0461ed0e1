"""Precision benchmark: every metric with float32, TF32 and bf16 tiles, each mode's time and how
much of its sweeps it re-decided in float64; results must equal the float32 ones bit for bit.

``tf32`` / ``bf16`` round the GEMM inputs to 10 / 7 mantissa bits and widen the error bound to
match (``rarity_score.engine.points.error_coefficient``), so more tile entries fall inside the band
that is re-decided from float64 distances. The columns:

* ``seconds``: the real set's radii (``RealManifold``) plus ``evaluate`` (every metric);
* ``tile entries``: float32 tile entries computed (the same in every mode);
* ``band``: tile entries within a sphere's error band (precision, recall, density, coverage,
  rarity), re-decided; ``candidates``: k-NN / nearest / realism candidates the bound could not
  place, recomputed; ``scans``: queries without a certificate, recomputed against every reference;
* ``re-decided``: band + candidates, as a fraction of the tile entries.

On a CPU (``--device cpu``, the default) no tensor cores exist: the rounding is applied explicitly
and the reduced modes are slower than float32; their counts are what a GPU run re-decides, and the
check that results do not change is the same. ``--device cuda`` measures the real speed.

Usage: ``python benchmarks/bench_precision.py [--n-real 4000 --n-fake 4000 --dim 512]``
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from bench_engine import structured_features

from rarity_score import RealManifold
from rarity_score.options import EngineOptions

PRECISIONS = ("float32", "tf32", "bf16")


def run(real: np.ndarray, fake: np.ndarray, k: int, engine: EngineOptions) -> dict[str, Any]:
    """Radii and every metric in ``engine``'s precision: seconds, counts, results."""
    started = time.perf_counter()
    manifold = RealManifold(real, k, engine=engine)
    evaluation = manifold.evaluate(fake)
    seconds = time.perf_counter() - started
    # The backend the manifold's sweeps ran on holds their counts (this process only).
    counts = manifold._backend.counts
    return {
        "seconds": seconds,
        "counts": counts,
        "radii": manifold.radii,
        "nearest_other": manifold.nearest_other_distance,
        "columns": evaluation.per_sample_columns(),
        "record": evaluation.to_dict(),
    }


def assert_same(got: dict[str, Any], want: dict[str, Any], precision: str) -> None:
    """Bit for bit: radii, nearest-other distances, every per-sample column, the JSON record."""
    for name in ("radii", "nearest_other"):
        if not np.array_equal(got[name], want[name]):
            raise SystemExit(f"bench_precision.py: {precision} {name} differ from float32")
    for name, values in want["columns"].items():
        if not np.array_equal(got["columns"][name], values, equal_nan=values.dtype.kind == "f"):
            raise SystemExit(f"bench_precision.py: {precision} column {name} differs from float32")
    if got["record"] != want["record"]:
        raise SystemExit(f"bench_precision.py: {precision} summary differs from float32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-real", type=int, default=4000)
    parser.add_argument("--n-fake", type=int, default=4000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("-k", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:N)")
    parser.add_argument("--tile-size", type=int, default=None, help="force the tile edge")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds (best counts)")
    parser.add_argument(
        "--precisions",
        default=",".join(PRECISIONS),
        help="comma-separated modes to run (float32 always runs first, as the reference)",
    )
    args = parser.parse_args()
    wanted = [p for p in args.precisions.split(",") if p and p != "float32"]
    unknown = sorted(set(wanted) - set(PRECISIONS))
    if unknown:
        parser.error(f"--precisions: unknown {', '.join(unknown)}; use {', '.join(PRECISIONS)}")

    rng = np.random.default_rng(0)
    real = structured_features(args.n_real, args.dim, rng)
    fake = structured_features(args.n_fake, args.dim, rng, shift=0.05, spread=1.05)
    print(
        f"real {real.shape}, fake {fake.shape}, float32 features, k={args.k}, torch on "
        f"{args.device}, every metric"
    )
    engines = {
        precision: EngineOptions(
            backend="torch", device=args.device, precision=precision, tile_size=args.tile_size
        )
        for precision in ("float32", *wanted)
    }
    for engine in engines.values():  # warm-up (imports, thread pools, kernels), not timed
        run(real[:200], fake[:200], args.k, engine)
    results: dict[str, dict[str, Any]] = {}
    # The machine's speed drifts; rounds interleave the modes and the best round counts.
    for _ in range(max(1, args.repeat)):
        for precision, engine in engines.items():
            result = run(real, fake, args.k, engine)
            if precision != "float32":
                assert_same(result, results["float32"], precision)
            if precision in results:
                result["seconds"] = min(result["seconds"], results[precision]["seconds"])
            results[precision] = result

    print(
        f"\n{'':9s}{'seconds':>9s}{'tile entries':>14s}{'band':>9s}{'candidates':>12s}"
        f"{'scans':>7s}{'re-decided':>12s}{'fraction':>11s}"
    )
    for precision, result in results.items():
        c = result["counts"]
        print(
            f"{precision:9s}{result['seconds']:9.2f}{c.tile_entries:14,d}{c.band_entries:9,d}"
            f"{c.candidates:12,d}{c.scanned_queries:7,d}{c.redecided:12,d}"
            f"{c.redecided / max(c.tile_entries, 1):11.2e}"
        )
    print(f"\nresults of {', '.join(wanted) or 'no other mode'} equal float32's, bit for bit")


if __name__ == "__main__":
    main()
