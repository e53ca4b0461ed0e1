"""The sweep on a real Dask cluster: a scheduler and worker processes started here on 127.0.0.1.

Every metric computed on the cluster equals the single-process run bit for bit (and the float64
oracle), on data sets with in/out fractions, duplicates and ties; a worker killed with SIGKILL in
the middle of a run costs time, not results.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from checks import assert_matches_reference
from datagen import check_nontrivial, dataset, reference

from rarity_score import RealManifold, cluster, evaluate
from rarity_score.io.features import load_features
from rarity_score.options import EngineOptions

distributed = pytest.importorskip("distributed")

#: Seconds a cluster may take to come up before the test fails (rather than hangs).
START_TIMEOUT = 60


#: The scheduler keeps every copy of scattered data, as the README tells a cluster's owner to:
#: with Dask's active memory manager on, the replicas of features sent from memory may drop to
#: one near a sweep's end (fewer waiting tasks than workers), and the kill test would then lose
#: its only copy now and then (it did once under load).
_SCHEDULER_ENV = {"DASK_DISTRIBUTED__SCHEDULER__ACTIVE_MEMORY_MANAGER__START": "False"}


def _spawn(*args: str, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **_SCHEDULER_ENV},
        )


@contextmanager
def local_processes(tmp: Path, workers: int) -> Iterator[tuple[object, list[subprocess.Popen]]]:
    """A scheduler and ``workers`` worker processes (no nanny: a killed worker stays dead), and a
    client of them."""
    scheduler_file = tmp / "scheduler.json"
    log = tmp / "cluster.log"
    started = [
        _spawn(
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(scheduler_file),
            log=log,
        )
    ]
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        time.sleep(0.2)  # written: let the scheduler finish writing it
        worker_processes = [
            _spawn(
                "worker",
                "--scheduler-file",
                str(scheduler_file),
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--name",
                f"w{index}",
                log=log,
            )
            for index in range(workers)
        ]
        started += worker_processes
        client = distributed.Client(scheduler_file=str(scheduler_file), timeout=START_TIMEOUT)
        try:
            client.wait_for_workers(workers, timeout=START_TIMEOUT)
            yield client, worker_processes
        finally:
            client.close()
    finally:
        # Workers first, then the scheduler, so that none waits for the other to go.
        for process in reversed(started):
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with local_processes(tmp_path_factory.mktemp("dask"), workers=2) as (client, _):
        yield client


def assert_identical(got, want) -> None:
    """Two evaluations with the same columns, bit for bit, and the same per-set values."""
    assert got.metrics == want.metrics
    assert list(got.columns) == list(want.columns)
    for name, column in want.columns.items():
        assert column.dtype == got.columns[name].dtype, name
        assert np.array_equal(got.columns[name], column, equal_nan=True), name
    assert got.values.keys() == want.values.keys()
    for name, value in want.values.items():
        assert np.array_equal(got.values[name], value, equal_nan=True), name


#: Tiles small enough that every sweep of these data sets is cut into many tasks.
SMALL_TILES = EngineOptions(tile_size=24)


@pytest.mark.parametrize(
    ("name", "k"),
    [
        ("gaussian", 3),
        ("duplicates", 1),
        ("duplicates", 3),
        ("integer_ties", 2),
        ("median_zero", 3),
    ],
)
def test_every_metric_on_the_cluster_equals_one_process(client, name: str, k: int) -> None:
    data = dataset(name)
    check_nontrivial(data)
    here = evaluate(data.real, data.fake, k, engine=SMALL_TILES)
    with distributed.get_task_stream(client) as stream, cluster.use(client):
        there = evaluate(data.real, data.fake, k, engine=SMALL_TILES)
    assert_identical(there, here)
    assert_matches_reference(there, reference(name, k))
    # Not vacuous: the sweeps ran as many tasks, on both workers.
    tasks = [item for item in stream.data if item["key"].startswith("_run_units")]
    assert len(tasks) >= 8
    assert len({item["worker"] for item in tasks}) == 2


def test_leave_one_out_and_rarity_only_on_the_cluster(client) -> None:
    data = dataset("duplicates")
    here = RealManifold(data.real, 2, engine=SMALL_TILES)
    with cluster.use(client):
        there = RealManifold(data.real, 2, engine=SMALL_TILES)
        assert np.array_equal(there.radii, here.radii)
        assert_identical(there.leave_one_out(), here.leave_one_out())
        got = there.evaluate(data.fake, metrics=["rarity"])
    assert_identical(got, here.evaluate(data.fake, metrics=["rarity"]))


def test_memory_mapped_features_travel_as_their_file(client, tmp_path: Path) -> None:
    from rarity_score.engine import distributed as engine_distributed

    data = dataset("gaussian")
    np.save(tmp_path / "real.npy", data.real)
    np.save(tmp_path / "fake.npy", data.fake)
    real = load_features(tmp_path / "real.npy")
    fake = load_features(tmp_path / "fake.npy")
    assert engine_distributed._describe_map(np.load(tmp_path / "real.npy", mmap_mode="r")) is None
    described = engine_distributed._describe_map(real)
    assert described is not None and described.path == str(tmp_path / "real.npy")
    assert engine_distributed._describe_map(real[1:]) is None  # a view goes as its values
    assert engine_distributed._describe_map(np.array(real)) is None
    with cluster.use(client):
        there = evaluate(real, fake, 3, engine=SMALL_TILES)
    assert_identical(there, evaluate(data.real, data.fake, 3, engine=SMALL_TILES))


def test_a_worker_seeing_another_file_is_refused(tmp_path: Path) -> None:
    from rarity_score.engine import distributed as engine_distributed

    np.save(tmp_path / "a.npy", np.arange(40.0).reshape(10, 4))
    described = engine_distributed._describe_map(load_features(tmp_path / "a.npy"))
    assert described is not None
    np.save(tmp_path / "a.npy", np.arange(40.0).reshape(10, 4) + 1)  # same shape, other values
    with pytest.raises(ValueError, match="another file at"):
        described.open()
    (tmp_path / "a.npy").unlink()
    with pytest.raises(FileNotFoundError, match="storage every worker shares"):
        described.open()


def _kill_mid_run(client, victim: subprocess.Popen, killed: dict, sweeps: int) -> None:
    """SIGKILL ``victim`` once the ``sweeps``-th sweep of the run has started (its job is on the
    cluster) and the victim is running one of its tasks."""
    [address] = [worker for worker, pid in client.run(os.getpid).items() if pid == victim.pid]
    jobs: set[str] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        keys = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks))
        jobs.update(key for key in keys if str(key).startswith("sweep-job-"))
        mine = [key for key in client.processing().get(address, ()) if key.startswith("_run_units")]
        if len(jobs) >= sweeps and mine:
            os.kill(victim.pid, signal.SIGKILL)
            killed["at"] = time.monotonic()
            killed["tasks"] = mine
            return
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("inputs", "sweeps"),
    [
        ("in memory", 1),  # killed during the real radii, while both workers hold the features
        ("memory-mapped files", 3),  # killed during the last sweep, the generated set's
    ],
)
def test_a_worker_killed_mid_run_costs_time_not_results(
    tmp_path: Path, inputs: str, sweeps: int
) -> None:
    rng = np.random.default_rng(7)
    real = rng.standard_normal((900, 24))
    real[850:] = real[:50]  # duplicates: tied spheres
    fake = np.vstack(
        [
            real[:30],  # copies of reals
            real[200:600] + 0.3 * rng.standard_normal((400, 24)),
            2.5 * rng.standard_normal((300, 24)),  # partly out of the manifold
        ]
    )
    engine = EngineOptions(tile_size=40)
    here = evaluate(real, fake, 3, engine=engine)
    assert 0.2 < here.precision < 0.9
    if inputs == "memory-mapped files":
        np.save(tmp_path / "real.npy", real)
        np.save(tmp_path / "fake.npy", fake)
        real = load_features(tmp_path / "real.npy")
        fake = load_features(tmp_path / "fake.npy")
    with local_processes(tmp_path, workers=2) as (client, workers):
        killed: dict = {}
        killer = threading.Thread(target=_kill_mid_run, args=(client, workers[1], killed, sweeps))
        killer.start()
        try:
            with cluster.use(client):
                there = evaluate(real, fake, 3, engine=engine)
            finished = time.monotonic()
        finally:
            killer.join()
        assert "at" in killed, "the worker was never seen running a task"
        assert killed["at"] < finished
        assert workers[1].wait(timeout=10) == -signal.SIGKILL
        assert len(client.scheduler_info()["workers"]) == 1
    assert_identical(there, here)


# ---------------------------------------------------------------------- review regressions


def test_an_in_process_cluster_with_threads_equals_one_process() -> None:
    # processes=False hands tasks the client's own objects (nothing is serialised), and two
    # threads per worker share a worker's point sets.
    data = dataset("duplicates")
    here = RealManifold(data.real, 2, engine=SMALL_TILES)
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=False,
            dashboard_address=None,
            worker_dashboard_address=None,
        ) as local,
        distributed.Client(local) as in_process,
        cluster.use(in_process),
    ):
        there = RealManifold(data.real, 2, engine=SMALL_TILES)
        assert np.array_equal(there.radii, here.radii)
        assert_identical(there.evaluate(data.fake), here.evaluate(data.fake))
        assert_identical(there.leave_one_out(), here.leave_one_out())


def test_a_buffer_refilled_between_evaluations_is_sent_again(client) -> None:
    data = dataset("gaussian")
    here = RealManifold(data.real, 3, engine=SMALL_TILES)
    buffer = np.array(data.fake)
    with cluster.use(client):
        there = RealManifold(data.real, 3, engine=SMALL_TILES)
        first = there.evaluate(buffer)
        buffer[:] = buffer[::-1] * 1.1  # the same array object, other values
        second = there.evaluate(buffer)
    assert_identical(first, here.evaluate(data.fake))
    assert_identical(second, here.evaluate(buffer))


def test_features_lost_from_the_cluster_are_sent_again(client) -> None:
    data = dataset("gaussian")
    with cluster.use(client):
        manifold = RealManifold(data.real, 3, engine=SMALL_TILES)
        [sent] = manifold._points.shipped.values()
        client.cancel(sent)  # as if every worker holding it had died
        got = manifold.evaluate(data.fake)
    assert_identical(got, evaluate(data.real, data.fake, 3, engine=SMALL_TILES))


def test_a_lost_task_is_one_line_for_the_machine(client) -> None:
    from rarity_score.engine import distributed as engine_distributed

    future = client.submit(time.sleep, 30, pure=False)
    client.cancel(future)
    with pytest.raises(RuntimeError, match="lost a sweep task") as caught:
        engine_distributed._result(future)
    assert "\n" not in str(caught.value)


def test_a_reducer_holding_a_state_is_refused(client) -> None:
    from rarity_score.engine.sweep import sweep
    from rarity_score.metrics.sphere_counts import RealSphereCounts

    manifold = RealManifold(dataset("gaussian").real, 3)
    reducer = RealSphereCounts(manifold.n_real, 5)
    reducer.counts[:] = 1
    with cluster.use(client), pytest.raises(ValueError, match="already holds a state"):
        sweep(manifold._points, manifold._points, [reducer], 24, same_set=True)


def test_memory_maps_passed_through_asarray_still_travel_as_their_file(client, tmp_path) -> None:
    from rarity_score.engine import distributed as engine_distributed

    data = dataset("gaussian")
    np.save(tmp_path / "real.npy", data.real)
    mapped = np.asarray(load_features(tmp_path / "real.npy"))  # as the input checks pass it on
    manifold = RealManifold(mapped, 3, engine=SMALL_TILES)
    sent = engine_distributed._ship_array(client, manifold._points)
    assert isinstance(sent, engine_distributed._MappedFile)
    replacement = np.array(data.real)
    replacement[1] += 1.0  # a row the digest does not sample
    np.save(tmp_path / "other.npy", replacement)
    os.replace(tmp_path / "other.npy", tmp_path / "real.npy")  # the same size, another file
    with pytest.raises(ValueError, match="another file"):
        sent.open()
    # Sent again now, what this process maps goes as its values: the path holds another file.
    assert engine_distributed._describe_map(manifold._points.data) is None
    with cluster.use(client):
        got = RealManifold(mapped, 3, engine=SMALL_TILES).evaluate(data.fake)
    assert_identical(got, evaluate(data.real, data.fake, 3, engine=SMALL_TILES))
