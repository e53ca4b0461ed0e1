"""rarity_score.training: the metric of a training loop, batch by batch and across processes.

Checked against a brute-force float64 oracle written here, and against one
:func:`rarity_score.evaluate` of the whole generated set; under ``torch.distributed`` with two
CPU processes (gloo), each fed by a ``DistributedSampler`` over a dataset of odd size (so that
the sampler repeats a sample to pad), the result equals the single-process run.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from rarity_score import RealManifold, evaluate
from rarity_score.training import PlainRarityMetric, RarityMetric, whole_set_metrics

K = 3
N_FAKE = 41  # odd: a DistributedSampler over 2 processes pads with one repeated sample

CLASSES = [pytest.param(RarityMetric, id=RarityMetric.__name__)]
if RarityMetric is not PlainRarityMetric:
    CLASSES.append(pytest.param(PlainRarityMetric, id="PlainRarityMetric"))


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Real samples, and generated ones of which about a third lie far out of the manifold."""
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(50, 4))
    fake = rng.normal(size=(N_FAKE, 4)) * 1.2
    fake[::3] += 6.0
    return real, fake


# ---------------------------------------------------------------------- the oracle


def _oracle(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, object]:
    """The definitions of SPEC.md, brute force in float64 (direct differences)."""
    d_rr = np.sqrt(((real[:, None, :] - real[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d_rr, np.inf)
    radii = np.sort(d_rr, axis=1)[:, k - 1]
    d_rg = np.sqrt(((real[:, None, :] - fake[None, :, :]) ** 2).sum(-1))
    inside = d_rg < radii[:, None]
    in_manifold = inside.any(axis=0)
    masked = np.where(inside, radii[:, None], np.inf)
    sphere_index = np.where(in_manifold, masked.argmin(axis=0), -1)  # ties: smaller index
    rarity = np.where(in_manifold, masked.min(axis=0), np.nan)
    sphere_count = inside.sum(axis=0)
    d_gg = np.sqrt(((fake[:, None, :] - fake[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d_gg, np.inf)
    fake_radii = np.sort(d_gg, axis=1)[:, k - 1]
    g_to_r = d_rg.T  # (M, N)
    recall = float((g_to_r < fake_radii[:, None]).any(axis=0).mean())
    coverage = float((d_rg.min(axis=1) < radii).mean())
    return {
        "in_manifold": in_manifold,
        "rarity": rarity,
        "sphere_index": sphere_index,
        "sphere_count": sphere_count,
        "nearest_real_index": d_rg.argmin(axis=0),
        "nearest_real_distance": d_rg.min(axis=0),
        "precision": float(in_manifold.mean()),
        "density": float(sphere_count.sum() / (k * fake.shape[0])),
        "recall": recall,
        "coverage": coverage,
    }


def _assert_same(got, want) -> None:
    """Two evaluations alike: the same columns, equal arrays, the same summary."""
    assert got.metrics == want.metrics
    assert list(got.columns) == list(want.columns)
    for name in want.columns:
        np.testing.assert_array_equal(got.columns[name], want.columns[name], err_msg=name)
        assert got.columns[name].dtype == want.columns[name].dtype, name
    assert got.summary() == want.summary()


def _feed(metric, fake: np.ndarray, order: np.ndarray, sizes: list[int]) -> None:
    start = 0
    for size in sizes:
        rows = order[start : start + size]
        metric.update(fake[rows], indices=rows)
        start += size
    assert start == len(order)


# ---------------------------------------------------------------------- one process


@pytest.mark.parametrize("cls", CLASSES)
def test_batches_give_the_oracle_and_one_evaluate(cls):
    real, fake = _data()
    metric = cls(real, k=K)
    for start in range(0, N_FAKE, 8):
        metric.update(fake[start : start + 8])  # numbered 0, 1, ... in update order
    result = metric.compute()
    oracle = _oracle(real, fake, K)
    assert 0 < result.in_manifold.sum() < N_FAKE  # samples in and out of the manifold
    for name in ("in_manifold", "sphere_index", "sphere_count", "nearest_real_index"):
        np.testing.assert_array_equal(result.columns[name], oracle[name], err_msg=name)
    for name in ("rarity", "nearest_real_distance"):
        np.testing.assert_allclose(result.columns[name], oracle[name], rtol=1e-12, atol=0)
    assert result.precision == pytest.approx(oracle["precision"], rel=1e-12)
    assert result.density == pytest.approx(oracle["density"], rel=1e-12)
    assert result.metrics == tuple(m for m in result.metrics if m not in whole_set_metrics())
    assert result.recall is None and result.coverage is None
    _assert_same(result, evaluate(real, fake, k=K, metrics=metric.metric_names))
    np.testing.assert_array_equal(metric.sample_indices, np.arange(N_FAKE))


@pytest.mark.parametrize("cls", CLASSES)
def test_any_order_with_indices_and_repeats_dropped(cls):
    real, fake = _data(1)
    order = np.random.default_rng(2).permutation(N_FAKE)
    metric = cls(real, k=K)
    _feed(metric, fake, order, [5, 17, 1, 18])
    # As a DistributedSampler pads, and a repeat inside one batch: counted once each.
    metric.update(fake[order[:2]], indices=order[:2])
    metric.update(fake[[7, 7]], indices=[7, 7])
    result = metric.compute()
    assert result.n_fake == N_FAKE  # fails if the repeats were kept
    np.testing.assert_array_equal(metric.sample_indices, np.arange(N_FAKE))
    _assert_same(result, evaluate(real, fake, k=K, metrics=metric.metric_names))


@pytest.mark.parametrize("cls", CLASSES)
def test_indices_need_not_cover_a_range(cls):
    real, fake = _data(3)
    indices = np.arange(N_FAKE) * 10 + 5
    metric = cls(real, k=K, metrics="rarity")
    metric.update(fake[20:], indices=indices[20:])
    metric.update(fake[:20], indices=indices[:20])
    result = metric.compute()
    np.testing.assert_array_equal(metric.sample_indices, indices)
    _assert_same(result, evaluate(real, fake, k=K, metrics="rarity"))


@pytest.mark.parametrize("cls", CLASSES)
def test_one_index_for_two_samples_is_refused(cls):
    real, fake = _data()
    metric = cls(real, k=K)
    metric.update(fake[:4], indices=[0, 1, 2, 3])
    metric.update(fake[4:6], indices=[3, 4])
    with pytest.raises(ValueError, match="sample index 3 was given with different features"):
        metric.compute()


@pytest.mark.parametrize("cls", CLASSES)
def test_reset_forgets_the_samples_and_keeps_the_manifold(cls):
    real, fake = _data()
    metric = cls(real, k=K)
    manifold = metric.manifold
    metric.update(fake[:10] + 100.0)
    metric.compute()
    metric.reset()
    assert metric.sample_indices is None
    with pytest.raises(ValueError, match="no generated samples yet"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics: compute before update
        metric.compute()
    metric.update(fake[:20])  # numbering starts again at 0
    metric.update(fake[20:])
    assert metric.manifold is manifold
    _assert_same(metric.compute(), evaluate(real, fake, k=K, metrics=metric.metric_names))


@pytest.mark.parametrize("cls", CLASSES)
def test_a_fitted_manifold_is_used_as_it_is(cls):
    real, fake = _data()
    manifold = RealManifold(real, k=5)
    metric = cls(manifold)
    assert metric.manifold is manifold and metric.k == 5
    assert cls(manifold, k=5).k == 5
    metric.update(fake)
    _assert_same(metric.compute(), evaluate(real, fake, k=5, metrics=metric.metric_names))
    with pytest.raises(ValueError, match="k=3 but the RealManifold was fitted with k=5"):
        cls(manifold, k=3)
    from rarity_score.options import EngineOptions

    with pytest.raises(ValueError, match="engine applies when the real manifold is built"):
        cls(manifold, engine=EngineOptions())


@pytest.mark.parametrize("cls", CLASSES)
def test_recall_and_coverage_sweep_the_whole_set_once(cls):
    real, fake = _data(4)
    assert set(whole_set_metrics()) == {"recall", "coverage"}
    order = np.random.default_rng(5).permutation(N_FAKE)
    metric = cls(real, k=K, metrics="all")
    assert metric.keeps_features
    _feed(metric, fake, order, [20, 21])
    metric.update(fake[order[:3]], indices=order[:3])  # repeats would change recall if kept
    result = metric.compute()
    want = evaluate(real, fake, k=K, metrics="all")
    _assert_same(result, want)
    oracle = _oracle(real, fake, K)
    assert result.recall == pytest.approx(oracle["recall"], rel=1e-12)
    assert result.coverage == pytest.approx(oracle["coverage"], rel=1e-12)
    metric.update(fake[:1] + 1.0, indices=[order[0]])
    with pytest.raises(ValueError, match="different features"):
        metric.compute()


@pytest.mark.parametrize("cls", CLASSES)
def test_torch_tensor_batches(cls):
    torch = pytest.importorskip("torch")
    real, fake = _data()
    metric = cls(torch.from_numpy(real).float(), k=K)
    batch = torch.from_numpy(fake).float()
    metric.update(batch[:30], indices=torch.arange(30))
    metric.update(batch[30:], indices=torch.arange(30, N_FAKE))
    # The same backend as the metric's (realism may differ in the last bit across backends).
    want = evaluate(torch.from_numpy(real).float(), batch, k=K, metrics=metric.metric_names)
    _assert_same(metric.compute(), want)


@pytest.mark.parametrize("cls", CLASSES)
def test_bad_indices_are_refused(cls):
    real, fake = _data()
    metric = cls(real, k=K)
    with pytest.raises(ValueError, match="3 indices for 4 samples"):
        metric.update(fake[:4], indices=[0, 1, 2])
    with pytest.raises(ValueError, match="1-D sequence of integers"):
        metric.update(fake[:2], indices=[0.0, 1.0])
    with pytest.raises(ValueError, match="1-D sequence of integers"):
        metric.update(fake[:2], indices=[[0, 1]])
    with pytest.raises(ValueError, match=r"in \[0, 2\*\*53\)"):
        metric.update(fake[:2], indices=[-1, 0])
    metric.update(fake[:2], indices=[0, 1])
    with pytest.raises(ValueError, match="with every batch or with none"):
        metric.update(fake[2:4])
    with pytest.raises(ValueError, match="unknown metric"):
        cls(real, metrics="bogus")


def test_rarity_metric_is_a_torchmetrics_metric_where_installed():
    torchmetrics = pytest.importorskip("torchmetrics")
    import rarity_score.training as training

    assert training.HAS_TORCHMETRICS
    assert issubclass(RarityMetric, torchmetrics.Metric)
    real, fake = _data()
    metric = RarityMetric(real, k=K)
    metric(fake[:10])  # forward adds a batch, as update does
    metric.update(fake[10:])
    first = metric.compute()
    assert metric.compute() is first  # torchmetrics' cache until the next update
    _assert_same(first, evaluate(real, fake, k=K, metrics=metric.metric_names))
    import pickle

    copy = pickle.loads(pickle.dumps(metric))
    _assert_same(copy.compute(), first)


def test_without_torch_it_is_the_plain_class_on_numpy():
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['torchmetrics'] = None\n"
        "import numpy as np\n"
        "import rarity_score.training as t\n"
        "assert t.RarityMetric is t.PlainRarityMetric and not t.HAS_TORCHMETRICS\n"
        "rng = np.random.default_rng(0)\n"
        "m = t.RarityMetric(rng.normal(size=(30, 3)), k=3)\n"
        "m.update(rng.normal(size=(5, 3))); m.update(rng.normal(size=(4, 3)))\n"
        "print(m.compute().n_fake)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "9"


# ---------------------------------------------------------------------- two processes (gloo)


def _worker(rank: int, world: int, init: str, out: str) -> None:
    """One process of the distributed run: its DistributedSampler's share, in batches."""
    import torch
    import torch.distributed as dist
    from torch.utils.data import DistributedSampler

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=init, rank=rank, world_size=world,
        timeout=datetime.timedelta(seconds=60),
    )  # fmt: skip
    try:
        real, fake = _data(6)
        sampler = DistributedSampler(range(N_FAKE), num_replicas=world, rank=rank, seed=3)
        share = np.asarray(list(sampler))
        saved: dict[str, np.ndarray] = {"share": share}
        runs = [("default", RarityMetric, None), ("plain", PlainRarityMetric, None)]
        runs.append(("all", RarityMetric, "all"))
        for name, cls, metrics in runs:
            metric = cls(real, k=K, metrics=metrics)
            for start in range(0, len(share), 8):
                rows = share[start : start + 8]
                batch = torch.from_numpy(fake[rows]) if name == "default" else fake[rows]
                metric.update(batch, indices=torch.from_numpy(rows))
            result = metric.compute()
            for column, values in result.columns.items():
                saved[f"{name}/{column}"] = values
            saved[f"{name}/sample_indices"] = metric.sample_indices
            saved[f"{name}/summary"] = np.array(json.dumps(result.summary()))
        # A process that saw no sample (the other one saw them all).
        for name, cls in (("empty", RarityMetric), ("empty_plain", PlainRarityMetric)):
            metric = cls(real, k=K)
            if rank == 0:
                metric.update(fake, indices=np.arange(N_FAKE))
            result = metric.compute()
            saved[f"{name}/rarity"] = result.rarity
            saved[f"{name}/n_fake"] = np.array(result.n_fake)
        try:
            RarityMetric(real, k=K).update(fake[:2])
        except ValueError as error:
            saved["refusal"] = np.array(str(error))
        np.savez(f"{out}/rank{rank}.npz", **saved)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def distributed_run(tmp_path_factory) -> list[dict[str, np.ndarray]]:
    """Two gloo processes, killed if they have not finished within two minutes."""
    torch = pytest.importorskip("torch")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    import torch.multiprocessing as mp

    tmp = tmp_path_factory.mktemp("distributed")
    init = f"file://{tmp / 'rendezvous'}"
    saved_env = {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    try:
        context = mp.start_processes(
            _worker, args=(2, init, str(tmp)), nprocs=2, join=False, start_method="spawn"
        )
    finally:
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    deadline = time.monotonic() + 120
    try:
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail("the two processes did not finish within 120 s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
                process.join(5)
    return [dict(np.load(tmp / f"rank{rank}.npz")) for rank in range(2)]


def test_two_processes_give_the_single_process_result(distributed_run):
    real, fake = _data(6)
    shares = [run["share"] for run in distributed_run]
    assert sum(len(share) for share in shares) == N_FAKE + 1  # the sampler padded one sample
    assert set(np.concatenate(shares)) == set(range(N_FAKE))
    for name, metrics in (("default", None), ("plain", None), ("all", "all")):
        probe = (RarityMetric if name != "plain" else PlainRarityMetric)(real, k=K, metrics=metrics)
        want = evaluate(real, fake, k=K, metrics=probe.metric_names)
        for run in distributed_run:  # every process gets the whole result
            np.testing.assert_array_equal(run[f"{name}/sample_indices"], np.arange(N_FAKE))
            for column, values in want.columns.items():
                got = run[f"{name}/{column}"]
                assert len(got) == N_FAKE, f"{name}/{column}: the padded repeat was kept"
                np.testing.assert_array_equal(got, values, err_msg=f"{name}/{column}")
            assert json.loads(str(run[f"{name}/summary"])) == json.loads(json.dumps(want.summary()))
    assert json.loads(str(distributed_run[0]["all/summary"]))["recall"] == want.recall


def test_two_processes_one_of_them_without_samples(distributed_run):
    real, fake = _data(6)
    want = evaluate(real, fake, k=K).rarity
    for run in distributed_run:
        for name in ("empty", "empty_plain"):
            assert int(run[f"{name}/n_fake"]) == N_FAKE
            np.testing.assert_array_equal(run[f"{name}/rarity"], want)


def test_two_processes_refuse_batches_without_indices(distributed_run):
    for run in distributed_run:
        assert "pass update(batch, indices)" in str(run["refusal"])


@pytest.mark.parametrize("cls", CLASSES)
def test_numbered_batches_refuse_indexed_ones_after_them(cls):
    real, fake = _data()
    metric = cls(real, k=K)
    with pytest.raises(ValueError, match="dimensions"):
        metric.update(fake[:2, :3], indices=[0, 1])  # refused: it sets no numbering
    metric.update(fake[:2])
    with pytest.raises(ValueError, match="with every batch or with none"):
        metric.update(fake[2:4], indices=[2, 3])
