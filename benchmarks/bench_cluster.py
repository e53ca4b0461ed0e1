"""Cluster benchmark: `evaluate` on a Dask LocalCluster against one process, and the scaling model.

``run``: one problem (N real x M generated x D, every metric) on a LocalCluster of W worker
processes (one thread each), optionally also in one process (numpy with all cores, as without
``--dask``). It prints the wall times and their ratio, the cluster's start, and from Dask's task
stream the throughput of the sweep tasks, in distance pairs per second per worker; ``--record``
appends these measurements to a JSON-lines file.

``model``: from the recorded runs, the scaling model of docs/scale.md: a run takes

    T = pairs / (W * p(D)) + c0 + c1 * moved_bytes

with ``pairs`` the distance pairs every metric needs (N^2/2 + M^2/2 + N M), p(D) the pairs per
second of one worker at that dimension (measured by the task stream; 1/p is linear in D), and
``moved_bytes`` = (N + M) D 4 W, what is scattered to the workers. c0, c1 are fitted on the runs
not marked ``--check``; each ``--check`` run is then predicted from the others and its error
printed, before the predictions for 100k, 1M and 10M samples on several worker counts.

Usage::

    python benchmarks/bench_cluster.py run --n-real 20000 --n-fake 20000 --dim 4096 --workers 2 \\
        --single --record runs.jsonl
    python benchmarks/bench_cluster.py run --n-real 100000 --n-fake 100000 --dim 512 --check \\
        --record runs.jsonl
    python benchmarks/bench_cluster.py model --record runs.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_engine import structured_features

from rarity_score import cluster, evaluate


def pairs_of(n_real: int, n_fake: int) -> float:
    """Distance pairs of every metric: both self-joins (halved by symmetry) and real x fake."""
    return n_real * n_real / 2 + n_fake * n_fake / 2 + n_real * n_fake


def run(args: argparse.Namespace) -> dict[str, Any]:
    import distributed

    rng = np.random.default_rng(0)
    real = structured_features(args.n_real, args.dim, rng)
    fake = structured_features(args.n_fake, args.dim, rng, shift=0.2, spread=1.2)
    record: dict[str, Any] = {
        "n_real": args.n_real,
        "n_fake": args.n_fake,
        "dim": args.dim,
        "workers": args.workers,
        "check": args.check,
    }
    if args.single:
        started = time.perf_counter()
        here = evaluate(real, fake, 3)
        record["single_s"] = time.perf_counter() - started
    started = time.perf_counter()
    local = distributed.LocalCluster(
        n_workers=args.workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        worker_dashboard_address=None,
    )
    client = distributed.Client(local)
    client.wait_for_workers(args.workers)
    record["start_s"] = time.perf_counter() - started
    try:
        with distributed.get_task_stream(client) as stream, cluster.use(client):
            started = time.perf_counter()
            there = evaluate(real, fake, 3)
            record["cluster_s"] = time.perf_counter() - started
        compute = [
            span["stop"] - span["start"]
            for item in stream.data
            if item["key"].startswith("_run_units")
            for span in item["startstops"]
            if span["action"] == "compute"
        ]
    finally:
        client.close()
        local.close()
    record["tasks"] = len(compute)
    record["task_s"] = float(sum(compute))
    record["pairs"] = pairs_of(args.n_real, args.n_fake)
    record["pairs_per_s_per_worker"] = record["pairs"] / record["task_s"]
    record["moved_bytes"] = (args.n_real + args.n_fake) * args.dim * 4 * args.workers
    if args.single:
        for name, column in here.columns.items():
            assert np.array_equal(column, there.columns[name], equal_nan=True), name
        record["identical"] = True
        record["ratio"] = record["cluster_s"] / record["single_s"]
        record["ratio_with_start"] = (record["cluster_s"] + record["start_s"]) / record["single_s"]
    _print_run(record)
    if args.record:
        with open(args.record, "a") as out:
            out.write(json.dumps(record) + "\n")
    return record


def _print_run(record: dict[str, Any]) -> None:
    n, m, d, w = record["n_real"], record["n_fake"], record["dim"], record["workers"]
    print(f"{n} real x {m} generated x {d}, every metric, LocalCluster of {w} workers")
    if "single_s" in record:
        print(f"  one process (numpy, all cores) {record['single_s']:9.2f} s")
    print(f"  cluster start                   {record['start_s']:9.2f} s")
    print(f"  on the cluster                  {record['cluster_s']:9.2f} s")
    if "ratio" in record:
        print(
            f"  cluster / one process           {record['ratio']:9.3f}"
            f"   (with the start: {record['ratio_with_start']:.3f}; results identical)"
        )
    print(
        f"  {record['tasks']} sweep tasks, {record['task_s']:.1f} worker-s: "
        f"{record['pairs_per_s_per_worker']:.3e} pairs/s per worker"
    )


def _fit_rate(records: list[dict[str, Any]]) -> tuple[float, float]:
    """1 / p(D) = a + b D, least squares over the runs (one dimension: b = 0)."""
    dims = np.array([r["dim"] for r in records], dtype=float)
    inverse = np.array([1.0 / r["pairs_per_s_per_worker"] for r in records])
    if len(set(dims)) == 1:
        return float(inverse.mean()), 0.0
    b, a = np.polyfit(dims, inverse, 1)
    return float(a), float(b)


def _fit_overhead(records: list[dict[str, Any]], a: float, b: float) -> tuple[float, float]:
    """c0 + c1 * moved_bytes: what the cluster run takes beyond its tasks' share of work."""
    moved = np.array([r["moved_bytes"] for r in records], dtype=float)
    rest = np.array(
        [r["cluster_s"] - r["pairs"] * (a + b * r["dim"]) / r["workers"] for r in records]
    )
    if len(records) == 1:
        return float(rest[0]), 0.0
    c1, c0 = np.polyfit(moved, rest, 1)
    return float(max(c0, 0.0)), float(max(c1, 0.0))


def predict(
    n_real: float, n_fake: float, dim: int, workers: int, model: tuple[float, ...]
) -> float:
    a, b, c0, c1 = model
    moved = (n_real + n_fake) * dim * 4 * workers
    return pairs_of(int(n_real), int(n_fake)) * (a + b * dim) / workers + c0 + c1 * moved


def model(args: argparse.Namespace) -> None:
    records = [json.loads(line) for line in Path(args.record).read_text().splitlines() if line]
    fitted = [r for r in records if not r.get("check")]
    if not fitted:
        raise SystemExit("no run without --check to fit the model on")
    a, b = _fit_rate(fitted)
    c0, c1 = _fit_overhead(fitted, a, b)
    params = (a, b, c0, c1)
    print(f"model: 1/p(D) = {a:.3e} + {b:.3e} D s per pair per worker; c0 = {c0:.2f} s, ")
    print(f"       c1 = {c1 * 2**30:.3f} s per GiB scattered")
    print("runs (measured / predicted):")
    for r in records:
        predicted = predict(r["n_real"], r["n_fake"], r["dim"], r["workers"], params)
        tag = "check" if r.get("check") else "fit  "
        print(
            f"  {tag} {r['n_real']:>8} x {r['n_fake']:>8} x {r['dim']:>5} on {r['workers']}: "
            f"{r['cluster_s']:9.1f} s / {predicted:9.1f} s  "
            f"(error {100 * (predicted - r['cluster_s']) / r['cluster_s']:+.1f} %)"
        )
    print("predicted wall time, every metric, N = M (CPU workers like this machine's):")
    for dim in sorted({r["dim"] for r in records} | {4096}):
        for n in (100_000, 1_000_000, 10_000_000):
            cells = []
            for workers in (1, 2, 8, 64, 512):
                seconds = predict(n, n, dim, workers, params)
                cells.append(f"W={workers}: {_duration(seconds)}")
            print(f"  {n:>10} x {dim:>5}  " + "  ".join(cells))


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("run", help="measure one problem on a LocalCluster")
    one.add_argument("--n-real", type=int, default=20_000)
    one.add_argument("--n-fake", type=int, default=20_000)
    one.add_argument("--dim", type=int, default=4096)
    one.add_argument("--workers", type=int, default=2)
    one.add_argument("--single", action="store_true", help="also run in one process")
    one.add_argument("--check", action="store_true", help="predict this run, do not fit on it")
    one.add_argument("--record", help="append the measurements to this JSON-lines file")
    fit = commands.add_parser("model", help="fit the scaling model on recorded runs")
    fit.add_argument("--record", required=True)
    args = parser.parse_args()
    if args.command == "run":
        run(args)
    else:
        model(args)


if __name__ == "__main__":
    main()
