"""Memory benchmark: scoring a real set larger than the tile budget, read memory-mapped.

Writes a real set (default 200,000 x 4,096 float32, 3.05 GiB, CNN-like data as
``bench_engine.structured_features`` makes it, generated and written a block at a time) and a
small generated set as ``.npy`` files, then, in a fresh interpreter, runs::

    manifold = RealManifold(load_features(real), k=3, engine=EngineOptions(memory_budget=B))
    manifold.evaluate(load_features(fake))                      # every metric
    manifold.evaluate(load_features(fake), metrics=["rarity"])  # rarity only

while a background thread samples ``/proc/self/status`` every few milliseconds. Two figures:

* **RssAnon**: anonymous resident memory (heap, numpy arrays, BLAS buffers). A second copy of
  the real set, or a mask of all of it, would show here. Reported beyond the baseline of the
  interpreter with ``rarity_score`` imported and warmed up (a small evaluate, so BLAS's thread
  buffers are in the baseline), and as a multiple of the memory budget.
* **VmHWM**: the peak of all resident memory, including the pages of the mapped file that are
  resident (RssFile). Those are page cache backed by the file: the system drops them under
  memory pressure instead of swapping, so they do not count against the budget.

Linux only (``/proc``). The files go to a temporary folder (or ``--dir``) and are deleted at the
end. Usage::

    python benchmarks/bench_memory.py [--n-real 200000 --n-fake 2000 --dim 4096
                                       --memory-budget BYTES --dir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Rows generated and written at once (a block of the file, never the whole set in memory).
_WRITE_ROWS = 4096
#: Seconds between two samples of /proc/self/status.
_SAMPLE_SECONDS = 0.005


# ---------------------------------------------------------------------- the files


def write_features(
    path: Path, n: int, dim: int, seed: int, shift: float = 0.0, spread: float = 1.0
) -> None:
    """Write ``n`` x ``dim`` float32 structured features to ``path`` (.npy), a block of rows at a
    time, so that the generator never holds the whole array."""
    from bench_engine import structured_features

    rng = np.random.default_rng(seed)
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
        "fortran_order": False,
        "shape": (n, dim),
    }
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        for start in range(0, n, _WRITE_ROWS):
            block = structured_features(min(_WRITE_ROWS, n - start), dim, rng, shift, spread)
            handle.write(np.ascontiguousarray(block, dtype="<f4").tobytes())


# ---------------------------------------------------------------------- the measured process


def _status() -> dict[str, int]:
    """Bytes of the memory lines of /proc/self/status that the report uses."""
    wanted = ("RssAnon", "RssFile", "VmRSS", "VmHWM")
    out: dict[str, int] = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in wanted:
                out[key] = int(value.split()[0]) * 1024  # the kernel writes kB
    return out


class Sampler(threading.Thread):
    """Peaks of RssAnon and RssFile, sampled in the background, per phase (:meth:`take`)."""

    def __init__(self, report_every: float) -> None:
        super().__init__(daemon=True)
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._report_every = report_every
        self.phase = "start"
        now = _status()
        self.anon, self.file = now["RssAnon"], now["RssFile"]
        self.overall_anon = now["RssAnon"]

    def run(self) -> None:
        last_report = time.monotonic()
        while not self._stop_event.wait(_SAMPLE_SECONDS):
            now = _status()
            with self._lock:
                self.anon = max(self.anon, now["RssAnon"])
                self.file = max(self.file, now["RssFile"])
                self.overall_anon = max(self.overall_anon, now["RssAnon"])
            if self._report_every and time.monotonic() - last_report >= self._report_every:
                last_report = time.monotonic()
                print(
                    f"  [{time.strftime('%H:%M:%S')}] {self.phase}: RssAnon {_mib(now['RssAnon'])}"
                    f" (peak in phase {_mib(self.anon)}), RssFile {_mib(now['RssFile'])}",
                    file=sys.stderr,
                    flush=True,
                )

    def begin(self, phase: str) -> None:
        """Start the peaks of ``phase`` from the current values."""
        now = _status()
        with self._lock:
            self.anon, self.file = now["RssAnon"], now["RssFile"]
            self.phase = phase

    def take(self) -> tuple[int, int]:
        """The peaks of RssAnon and RssFile since :meth:`begin`."""
        now = _status()
        with self._lock:
            return max(self.anon, now["RssAnon"]), max(self.file, now["RssFile"])

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def child(real_path: str, fake_path: str, memory_budget: int, report_every: float) -> None:
    """The measured run; prints one JSON line of figures."""
    from rarity_score.io.features import load_features
    from rarity_score.manifold import RealManifold
    from rarity_score.options import EngineOptions

    engine = EngineOptions(memory_budget=memory_budget)
    warm = np.random.default_rng(0).random((400, 16)).astype(np.float32)
    RealManifold(warm[:200], k=3, engine=engine).evaluate(warm[200:])
    del warm
    sampler = Sampler(report_every)
    baseline = _status()["RssAnon"]
    sampler.start()
    phases: list[dict[str, Any]] = []

    def phase(name: str, started: float) -> None:
        anon, file = sampler.take()
        phases.append(
            {
                "name": name,
                "seconds": time.perf_counter() - started,
                "anon_beyond_baseline": anon - baseline,
                "rss_file": file,
            }
        )
        print(f"  {name}: done in {phases[-1]['seconds']:.1f} s", file=sys.stderr, flush=True)

    names = (
        "load_features (both files, checked)",
        "RealManifold(real, k=3)",
        "evaluate(fake) (every metric)",
        'evaluate(fake, metrics=["rarity"])',
    )
    started_all = started = time.perf_counter()
    sampler.begin(names[0])
    real = load_features(real_path)
    fake = load_features(fake_path)
    phase(names[0], started)

    started = time.perf_counter()
    sampler.begin(names[1])
    manifold = RealManifold(real, k=3, engine=engine)
    phase(names[1], started)

    started = time.perf_counter()
    sampler.begin(names[2])
    result = manifold.evaluate(fake)
    phase(names[2], started)

    started = time.perf_counter()
    sampler.begin(names[3])
    rarity = manifold.evaluate(fake, metrics=["rarity"])
    phase(names[3], started)
    total = time.perf_counter() - started_all
    sampler.stop()
    end = _status()
    print(
        json.dumps(
            {
                "mapped": isinstance(real, np.memmap),
                "baseline_anon": baseline,
                "peak_anon_beyond_baseline": sampler.overall_anon - baseline,
                "vm_hwm": end["VmHWM"],
                "phases": phases,
                "seconds": total,
                "precision": result.precision,
                "in_manifold": int(np.count_nonzero(rarity.in_manifold)),
            }
        )
    )


# ---------------------------------------------------------------------- the report


def _mib(count: float) -> str:
    return f"{count / 2**20:,.0f} MiB"


def main() -> None:
    from rarity_score import defaults

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-real", type=int, default=200_000)
    parser.add_argument("--n-fake", type=int, default=2_000)
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument(
        "--memory-budget",
        type=int,
        default=defaults.MEMORY_BUDGET,
        help="the engine's tile budget in bytes (default: defaults.MEMORY_BUDGET)",
    )
    parser.add_argument("--dir", type=Path, help="where to write the files (default: a temp dir)")
    parser.add_argument(
        "--report-every", type=float, default=60.0, help="seconds between progress lines"
    )
    parser.add_argument("--child", nargs=2, metavar=("REAL", "FAKE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.memory_budget, args.report_every)
        return
    if not Path("/proc/self/status").exists():
        sys.exit("bench_memory.py reads /proc/self/status: run it on Linux")

    folder = Path(tempfile.mkdtemp(prefix="bench-memory-", dir=args.dir))
    real_path, fake_path = folder / "real.npy", folder / "fake.npy"
    try:
        started = time.perf_counter()
        write_features(real_path, args.n_real, args.dim, seed=0)
        write_features(fake_path, args.n_fake, args.dim, seed=1, shift=0.05, spread=1.05)
        written = time.perf_counter() - started
        size = args.n_real * args.dim * 4
        print(
            f"real set: {args.n_real:,} x {args.dim:,} float32 = {size / 2**30:.2f} GiB "
            f"({_mib(size)}); generated set: {args.n_fake:,} x {args.dim:,}; written in "
            f"{written:.0f} s to {folder}",
            flush=True,
        )
        print(f"memory budget (tiles): {_mib(args.memory_budget)}; k=3; numpy backend", flush=True)
        here = Path(__file__).resolve()
        command = [sys.executable, str(here), "--child", str(real_path), str(fake_path)]
        command += ["--memory-budget", str(args.memory_budget)]
        command += ["--report-every", str(args.report_every)]
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        for path in (real_path, fake_path):
            path.unlink(missing_ok=True)
        folder.rmdir()

    budget = args.memory_budget
    print(f"real features memory-mapped: {figures['mapped']}")
    print(
        f"baseline RssAnon (interpreter, rarity_score imported, warmed up): "
        f"{_mib(figures['baseline_anon'])}"
    )
    print(f"{'phase':<38} {'wall s':>8} {'RssAnon peak +base':>19} {'x budget':>9} {'RssFile':>10}")
    for p in figures["phases"]:
        anon = p["anon_beyond_baseline"]
        print(
            f"{p['name']:<38} {p['seconds']:>8.1f} {_mib(anon):>19} {anon / budget:>9.2f} "
            f"{_mib(p['rss_file']):>10}"
        )
    peak = figures["peak_anon_beyond_baseline"]
    print(
        f"peak RssAnon beyond baseline, whole run: {_mib(peak)} = {peak / budget:.2f} x the "
        f"budget ({peak / size:.1%} of the real array)"
    )
    print(
        f"VmHWM (peak resident memory, mapped file pages included: page cache, reclaimable): "
        f"{_mib(figures['vm_hwm'])}"
    )
    print(
        f"wall time (load + radii + both evaluations): {figures['seconds']:.0f} s; "
        f"precision {figures['precision']:.4f}, {figures['in_manifold']:,} of {args.n_fake:,} "
        "generated samples in the manifold"
    )


if __name__ == "__main__":
    main()
