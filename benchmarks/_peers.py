"""The contenders of ``bench_engine.py``, each measured alone in a fresh process.

``python benchmarks/_peers.py NAME DATA_DIR K OUT`` loads ``DATA_DIR/real.npy`` and ``fake.npy``,
imports what contender NAME needs, warms it up on a small slice (lazy imports, thread pools), then
times one call on the full data and writes ``{"seconds", "rss_mib", "numpy_mib", "output"}`` to the
pickle OUT. Exit status 3: the contender needs an optional peer that is not installed.

Why a fresh process: tracemalloc sees only the allocations made through Python's allocator (numpy
arrays), not those of faiss or torch, so the figure that is fair to every contender is the
process's resident memory. ``rss_mib`` is the high-water mark of the resident set during the call
beyond what was resident before it (inputs loaded, libraries imported, warm-up done): the kernel's
VmHWM, reset just before the call through ``/proc/self/clear_refs``, or, where that is refused, the
largest VmRSS a thread sampled every millisecond. ``numpy_mib`` is tracemalloc's peak, as before.
"""

from __future__ import annotations

import contextlib
import gc
import io
import pickle
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: Exit status of a child whose contender needs a peer that is not installed.
NOT_INSTALLED = 3

Contender = Callable[[np.ndarray, np.ndarray, int], Any]


# --- memory ---------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}; the benchmark needs Linux")


class PeakResident:
    """Peak resident MiB of this process during a ``with`` block, beyond the resident set at its
    start: the kernel's high-water mark, reset at entry; a sampling thread where that is refused."""

    def __enter__(self) -> PeakResident:
        try:
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")  # resets VmHWM to the current VmRSS (Linux >= 4.0)
            self._sampler: threading.Thread | None = None
        except OSError:
            self._sampled = 0
            self._done = threading.Event()
            self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._baseline = _status_kib("VmRSS")
        if self._sampler is not None:
            self._sampler.start()
        self.mib = 0.0
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.001):
            self._sampled = max(self._sampled, _status_kib("VmRSS"))

    def __exit__(self, *exc: object) -> None:
        if self._sampler is None:
            peak = _status_kib("VmHWM")
        else:
            self._done.set()
            self._sampler.join()
            peak = max(self._sampled, _status_kib("VmRSS"))
        self.mib = max(peak - self._baseline, 0) / 1024


# --- the contenders -------------------------------------------------------------------------------


def gemm_same_pairs(real: np.ndarray, fake: np.ndarray, k: int) -> None:
    """The float32 products that every metric needs: real radii, generated radii, real-vs-fake."""
    for a, b in ((real, real), (fake, fake), (real, fake)):
        _ = a @ b.T


def gemm_cross(real: np.ndarray, fake: np.ndarray, k: int) -> None:
    _ = real @ fake.T


def ours_evaluate(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, Any]:
    from rarity_score import evaluate

    result = evaluate(real, fake, k)
    return {
        "precision": result.precision,
        "recall": result.recall,
        "density": result.density,
        "coverage": result.coverage,
        "rarity": result.rarity,
        "in_manifold": result.in_manifold,
        "nearest_real_distance": result.nearest_real_distance,
    }


def ours_rarity(real: np.ndarray, fake: np.ndarray, k: int) -> np.ndarray:
    from rarity_score import rarity_score

    return rarity_score(real, fake, k)


def ours_radii(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, Any]:
    """Rarity's radii step: the exact k-NN radii (and nearest-other distances, same sweep)."""
    from rarity_score import RealManifold

    return {"radii": np.asarray(RealManifold(real, k).radii)}


def _faiss_radii(faiss: Any, real: np.ndarray, k: int) -> tuple[Any, np.ndarray, int]:
    """Exact (float32) k-NN radii by faiss brute force, the sample itself excluded by index.

    faiss returns k + 1 neighbours of every sample; the sample itself is one of them unless more
    than k exact duplicates crowd it out (then the radius is 0 either way). Where it is in the
    first k, the k-th other neighbour is the (k+1)-th returned; otherwise the k-th.
    """
    index = faiss.IndexFlatL2(real.shape[1])
    index.add(real)
    squared, labels = index.search(real, k + 1)
    is_self = labels == np.arange(len(real))[:, None]
    self_in_first_k = is_self[:, :k].any(axis=1)
    kth = np.where(self_in_first_k, squared[:, k], squared[:, k - 1])
    # faiss computes |x|^2 + |y|^2 - 2 x.y in float32, which can come out slightly negative.
    radii = np.sqrt(np.maximum(kth.astype(np.float64), 0.0))
    return index, radii, int((~is_self.any(axis=1)).sum())


def faiss_radii(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, Any]:
    import faiss

    _, radii, self_missing = _faiss_radii(faiss, real, k)
    return {"radii": radii, "self_missing": self_missing}


def faiss_radii_cross(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, Any]:
    """The radii plus the two real-vs-fake nearest-neighbour searches: each real sample's nearest
    generated one (coverage) and each generated sample's nearest real one. Precision, recall,
    density and rarity need every real sphere that holds a sample, which k-NN search cannot give."""
    import faiss

    real_index, radii, _ = _faiss_radii(faiss, real, k)
    fake_index = faiss.IndexFlatL2(fake.shape[1])
    fake_index.add(fake)
    to_fake, _ = fake_index.search(real, 1)
    to_real, _ = real_index.search(fake, 1)
    nearest_fake = np.sqrt(np.maximum(to_fake[:, 0].astype(np.float64), 0.0))
    return {
        "radii": radii,
        "coverage": float(np.mean(nearest_fake < radii)),
        "nearest_real_distance": np.sqrt(np.maximum(to_real[:, 0].astype(np.float64), 0.0)),
    }


def torch_fidelity_prc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, Any]:
    """torch-fidelity's precision/recall on feature tensors, with its defaults (full distance
    matrices, batches of 10,000; features_1 is the generated set, features_2 the real one)."""
    import torch
    from torch_fidelity.metric_prc import prc_features_to_metric

    out = prc_features_to_metric(
        torch.from_numpy(fake), torch.from_numpy(real), prc_neighborhood=k, verbose=False
    )
    return {"precision": out["precision"], "recall": out["recall"]}


def prdc_metrics(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, Any]:
    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):  # it prints the set sizes
        out = compute_prdc(real, fake, k)
    return {name: float(value) for name, value in out.items()}


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
        "precision": float(inside.any(axis=0).mean()),
        "recall": float((real_fake < fake_radii[None, :]).any(axis=1).mean()),
        "density": float(inside.sum() / (k * len(g))),
        "coverage": float(inside.any(axis=1).mean()),
    }


#: Contender name -> (function, the optional modules it needs).
CONTENDERS: dict[str, tuple[Contender, tuple[str, ...]]] = {
    "gemm (same pairs)": (gemm_same_pairs, ()),
    "gemm (R G^T only)": (gemm_cross, ()),
    "evaluate (all metrics)": (ours_evaluate, ()),
    "rarity_score alone": (ours_rarity, ()),
    "radii (RealManifold)": (ours_radii, ()),
    "faiss radii": (faiss_radii, ("faiss",)),
    "faiss radii + cross 1-NN": (faiss_radii_cross, ("faiss",)),
    "torch-fidelity prc": (torch_fidelity_prc, ("torch", "torch_fidelity.metric_prc")),
    "prdc": (prdc_metrics, ("prdc",)),
    "naive float64": (naive_float64, ()),
}


def run_one(name: str, data_dir: Path, k: int) -> dict[str, Any]:
    """Load the data, warm up contender ``name`` (its lazy imports, thread pools) on a slice, then
    measure one call on the whole."""
    fn, _ = CONTENDERS[name]
    real = np.load(data_dir / "real.npy")
    fake = np.load(data_dir / "fake.npy")
    warm = min(64, len(real), len(fake))
    fn(np.ascontiguousarray(real[:warm]), np.ascontiguousarray(fake[:warm]), min(k, warm - 1))
    gc.collect()
    with PeakResident() as resident:
        tracemalloc.start()
        started = time.perf_counter()
        output = fn(real, fake, k)
        seconds = time.perf_counter() - started
        _, numpy_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {
        "seconds": seconds,
        "rss_mib": resident.mib,
        "numpy_mib": numpy_peak / 2**20,
        "output": output,
    }


def main(argv: list[str]) -> int:
    name, data_dir, k, out = argv
    for module in CONTENDERS[name][1]:
        try:
            __import__(module)
        except ImportError as error:
            print(f"{name}: {error}", file=sys.stderr)
            return NOT_INSTALLED
    measured = run_one(name, Path(data_dir), int(k))
    with open(out, "wb") as f:
        pickle.dump(measured, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
