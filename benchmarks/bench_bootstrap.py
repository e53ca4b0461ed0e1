"""Bootstrap benchmark: what ``--bootstrap B`` adds to a run, against the run's own sweeps.

The intervals are computed from the per-sample values the sweep computed once
(``rarity_score.uncertainty.summary_intervals``): each resample recomputes a summary, no distance.
This prints, in one run, the seconds of the real radii plus ``evaluate`` (every metric), the
seconds of the intervals of every summary value, and of one comparison of two sets, each as a
ratio of the sweep time, and the peak memory the bootstrap allocates (``tracemalloc``, in a
second, untimed pass; the resamples go in batches of about 4 M indices, so it does not grow
with B).

Usage: ``python benchmarks/bench_bootstrap.py [--n-real 10000 --n-fake 10000 --dim 512 -B 1000]``
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from bench_engine import structured_features

from rarity_score import RealManifold
from rarity_score.options import StatisticsOptions
from rarity_score.uncertainty import compare_rarity, summary_intervals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-real", type=int, default=10_000)
    parser.add_argument("--n-fake", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("-B", "--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    real = structured_features(args.n_real, args.dim, rng)
    fakes = [structured_features(args.n_fake, args.dim, rng, spread=s) for s in (0.95, 1.05)]

    started = time.perf_counter()
    manifold = RealManifold(real, 3)
    evaluations = [manifold.evaluate(fake) for fake in fakes]
    sweep = (time.perf_counter() - started) / len(fakes)  # per set, radii shared

    options = StatisticsOptions(bootstrap=args.bootstrap)
    summary_intervals(evaluations[0], StatisticsOptions(bootstrap=100))  # imports scipy.stats
    started = time.perf_counter()
    intervals = summary_intervals(evaluations[0], options)
    per_set = time.perf_counter() - started
    started = time.perf_counter()
    pair = compare_rarity(("a", evaluations[0]), ("b", evaluations[1]), options)
    per_pair = time.perf_counter() - started
    # Memory in a second pass: tracemalloc slows every allocation, so it is not timed.
    tracemalloc.start()
    summary_intervals(evaluations[0], options)
    compare_rarity(("a", evaluations[0]), ("b", evaluations[1]), options)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    print(f"{args.n_real} real x {args.n_fake} generated x {args.dim}, B = {args.bootstrap}")
    print(f"  sweep (radii + evaluate, per set)   {sweep:8.2f} s")
    print(
        f"  intervals of every summary value    {per_set:8.2f} s  ({per_set / sweep:.2f} x sweep)"
    )
    print(
        f"  one comparison of two sets          {per_pair:8.2f} s  ({per_pair / sweep:.2f} x sweep)"
    )
    print(f"  peak memory of the bootstrap        {peak / 2**20:8.1f} MiB")
    print(f"  median rarity {intervals['rarity']['median']}; {pair.sentence}")


if __name__ == "__main__":
    main()
