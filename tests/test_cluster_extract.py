"""Extraction on a Dask cluster (``rarity_score.cluster.use``): one task per shard on worker
processes, the same features, cache entry and errors as one process, resumable from the shards a
failed or killed run left, and a worker lost mid-run costs time, not results.

One ``LocalCluster`` of two worker processes serves the whole module (starting one costs
seconds). Extractors that record what they see write files, one per forward pass, so that what
the worker processes computed can be counted here.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
torch = pytest.importorskip("torch")
pytest.importorskip("PIL")

from PIL import Image  # noqa: E402

from rarity_score import cluster  # noqa: E402
from rarity_score._errors import MissingDependency, WeightsUnavailable  # noqa: E402
from rarity_score.features import from_module, pipeline  # noqa: E402
from rarity_score.features.preprocess import pixels_preprocess  # noqa: E402
from rarity_score.io.features import FeatureFileError  # noqa: E402
from rarity_score.io.images import ImageInputError  # noqa: E402
from rarity_score.options import ExtractionOptions  # noqa: E402

N_IMAGES = 14
SHARD = 3  # shards [0,3) [3,6) [6,9) [9,12) [12,14)
BAD = (4, 7)  # unreadable images, in shards 1 and 2
SIZE = 8

PIXELS = ExtractionOptions(
    extractor="pixels", input_size=SIZE, shard_size=SHARD, batch_size=2, progress=False
)


def _red(index: int) -> int:
    """The red value of image ``index``: what tells the images apart in the records."""
    return 10 + 15 * index


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Solid images, two of them unreadable; a solid image stays solid through the resize, so
    a batch's red values name its images."""
    folder = tmp_path_factory.mktemp("images")
    for i in range(N_IMAGES):
        path = folder / f"img_{i:02d}.png"
        if i in BAD:
            path.write_bytes(b"not an image\n" * 4)
        else:
            Image.new("RGB", (12, 8), (_red(i), 40, 200)).save(path)
    return folder


class Recorder(torch.nn.Module):
    """The pixels of each image as its features; every forward pass writes one file naming the
    images it saw (by their red value), whichever process runs it. ``fail_at`` raises on an
    image; ``kill_at`` ends the process on an image, once (a marker file remembers); ``slow_at``
    waits a second on an image."""

    def __init__(
        self,
        folder: Path,
        *,
        fail_at: int | None = None,
        kill_at: int | None = None,
        slow_at: int | None = None,
    ):
        super().__init__()
        self.folder = str(folder)
        self.fail_at = fail_at
        self.kill_at = kill_at
        self.slow_at = slow_at

    def forward(self, x):
        reds = [round(float(v) * 255) for v in x[:, 0, 0, 0]]
        if self.slow_at is not None and _red(self.slow_at) in reds:
            time.sleep(1.0)
        if self.fail_at is not None and _red(self.fail_at) in reds:
            raise RuntimeError(f"failing on purpose at image {self.fail_at}")
        marker = Path(self.folder, "killed")
        if self.kill_at is not None and _red(self.kill_at) in reds and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)  # a worker lost mid-task, as to SIGKILL
        Path(self.folder, f"{os.getpid()}-{uuid.uuid4().hex}").write_text(" ".join(map(str, reds)))
        return x.reshape(x.shape[0], -1)


def _recorder(folder: Path, **faults) -> ExtractionOptions:
    folder.mkdir(parents=True, exist_ok=True)
    model = from_module(
        Recorder(folder, **faults),
        name="recorder",
        dim=3 * SIZE * SIZE,
        input_size=SIZE,
        preprocess=pixels_preprocess(SIZE),
        preprocessing=f"pixels {SIZE} (recorded)",
    )
    return ExtractionOptions(extractor=model, shard_size=SHARD, batch_size=2, progress=False)


def _recorded(folder: Path) -> list[int]:
    """The red values of every image forwarded (sorted); all by other processes than this."""
    reds = []
    for file in folder.iterdir():
        if file.name != "killed":
            assert not file.name.startswith(f"{os.getpid()}-"), "extracted here, not on a worker"
            reds += [int(v) for v in file.read_text().split()]
    return sorted(reds)


def _shard_reds(shards: set[int]) -> list[int]:
    """The red values of the readable images of ``shards``."""
    return sorted(
        _red(i)
        for s in shards
        for i in range(s * SHARD, min((s + 1) * SHARD, N_IMAGES))
        if i not in BAD
    )


def _executing(dask_worker) -> int:
    return len(dask_worker.state.executing)


def _settle(client, timeout: float = 20.0) -> None:
    """Wait until no worker runs a task: a task cancelled after a failure finishes its shard
    (and writes it) all the same."""
    deadline = time.monotonic() + timeout
    while any(client.run(_executing).values()):
        assert time.monotonic() < deadline, "the workers are still busy"
        time.sleep(0.05)


def _written_shards(cache_dir: Path) -> set[int]:
    return {int(p.stem.split("-")[1]) for p in cache_dir.glob("*.partial/shard-*.npz")}


def _same(a, b) -> None:
    assert a.features.dtype == b.features.dtype == np.float32
    assert a.features.shape == b.features.shape
    assert a.features.tobytes() == b.features.tobytes()  # bit for bit
    assert a.names == b.names
    assert a.skipped == b.skipped
    assert (a.extractor, a.weights_id, a.preprocessing) == (
        b.extractor,
        b.weights_id,
        b.preprocessing,
    )


def _entry(cache_dir: Path) -> dict[str, np.ndarray]:
    [npz] = cache_dir.glob("*.npz")
    with np.load(npz) as data:
        return {name: data[name] for name in data.files}


def test_features_and_cache_entry_are_those_of_one_process(client, images, tmp_path, monkeypatch):
    local = pipeline.extract_features(images, replace(PIXELS, cache_dir=tmp_path / "here"))
    with cluster.use(client):
        remote = pipeline.extract_features(images, replace(PIXELS, cache_dir=tmp_path / "there"))
    _same(remote, local)
    assert len(remote) == N_IMAGES - len(BAD)
    assert [name for name, _ in remote.skipped] == [f"img_{i:02d}.png" for i in BAD]

    here, there = _entry(tmp_path / "here"), _entry(tmp_path / "there")
    assert here.keys() == there.keys()
    for name in here:
        assert np.array_equal(here[name], there[name]), name
    assert not list((tmp_path / "there").glob("*.partial"))  # merged: no shards left

    # A later run in one process finds the entry and extracts nothing.
    def no_extraction(*args, **kwargs):
        raise AssertionError("extracted again instead of using the cached features")

    monkeypatch.setattr(pipeline, "_extract_with_shards", no_extraction)
    _same(pipeline.extract_features(images, replace(PIXELS, cache_dir=tmp_path / "there")), local)


def test_strict_error_is_the_one_of_one_process(client, images, tmp_path):
    # One image per batch, and shard 1 slow before its unreadable image: on the cluster shard 2
    # fails first (on the other worker), yet the error is shard 1's, the one a run in one
    # process meets.
    strict = replace(_recorder(tmp_path, slow_at=3), strict=True, cache_dir=False, batch_size=1)
    with pytest.raises(ImageInputError) as here:
        pipeline.extract_features(images, strict)
    with cluster.use(client), pytest.raises(ImageInputError) as there:
        pipeline.extract_features(images, strict)
    assert str(there.value) == str(here.value)
    assert "img_04.png" in str(here.value) and "img_07.png" not in str(here.value)
    assert "\n" not in str(here.value)


def test_a_failed_cluster_run_resumes_from_the_shards_written(client, images, tmp_path):
    cache = tmp_path / "cache"
    records = tmp_path / "records"
    # Strict mode fails at shard 1 (image 4); shard 0 is written by then, later ones may be.
    options = replace(_recorder(records), strict=True, cache_dir=cache)
    with cluster.use(client), pytest.raises(ImageInputError, match=r"img_04\.png"):
        pipeline.extract_features(images, options)
    _settle(client)
    written = _written_shards(cache)
    assert 0 in written and 1 not in written

    for file in records.iterdir():
        file.unlink()
    with cluster.use(client):
        resumed = pipeline.extract_features(images, replace(options, strict=False))
    # Exactly the shards not on disk were extracted again, each image once.
    assert _recorded(records) == _shard_reds(set(range(5)) - written)
    fresh = pipeline.extract_features(images, replace(_recorder(tmp_path / "r2"), cache_dir=False))
    _same(resumed, fresh)


def test_a_run_killed_here_resumes_on_the_cluster(client, images, tmp_path):
    cache = tmp_path / "cache"
    records = tmp_path / "records"
    # A run in this process that stops in shard 2 (image 8) leaves shards 0 and 1.
    broken = replace(_recorder(records, fail_at=8), cache_dir=cache)
    with pytest.raises(RuntimeError, match="failing on purpose"):
        pipeline.extract_features(images, broken)
    assert _written_shards(cache) == {0, 1}

    for file in records.iterdir():
        file.unlink()
    with cluster.use(client):
        resumed = pipeline.extract_features(images, replace(_recorder(records), cache_dir=cache))
    assert _recorded(records) == _shard_reds({2, 3, 4})
    fresh = pipeline.extract_features(images, replace(_recorder(tmp_path / "r2"), cache_dir=False))
    _same(resumed, fresh)


def test_an_error_on_a_worker_is_raised_here_as_it_was_raised(client, images, tmp_path):
    with cluster.use(client), pytest.raises(RuntimeError, match="failing on purpose at image 8"):
        pipeline.extract_features(images, _recorder(tmp_path / "records", fail_at=8))


def _break_shard_writes() -> None:
    from rarity_score.io.cache import FeatureCache

    def refuse(self, shard):
        raise OSError(28, "No space left on device")

    FeatureCache._saved = FeatureCache.save_shard  # type: ignore[attr-defined]
    FeatureCache.save_shard = refuse  # type: ignore[method-assign]


def _mend_shard_writes() -> None:
    from rarity_score.io.cache import FeatureCache

    FeatureCache.save_shard = FeatureCache._saved  # type: ignore[attr-defined,method-assign]


def test_shards_a_worker_cannot_write_are_written_here_and_no_shard_twice(
    client, images, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG, logger="rarity_score.features.pipeline")
    with cluster.use(client):
        pipeline.extract_features(images, replace(PIXELS, cache_dir=tmp_path / "shared"))
    assert not [r for r in caplog.records if r.getMessage().startswith("wrote shard")]

    caplog.clear()
    client.run(_break_shard_writes)  # workers whose disk is full (or not shared)
    try:
        with cluster.use(client):
            result = pipeline.extract_features(images, replace(PIXELS, cache_dir=tmp_path / "own"))
    finally:
        client.run(_mend_shard_writes)
    wrote = [r for r in caplog.records if r.getMessage().startswith("wrote shard")]
    assert len(wrote) == 5  # every shard once, by this process
    assert np.array_equal(_entry(tmp_path / "own")["features"], result.features)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs workers without a GPU")
def test_a_device_a_worker_lacks_is_refused_naming_the_worker(client, images):
    with cluster.use(client), pytest.raises(ValueError, match=r"on Dask worker tcp://.*cuda"):
        pipeline.extract_features(images, replace(PIXELS, device="cuda", cache_dir=False))


@pytest.mark.parametrize(
    "error",
    [
        ImageInputError("3 unreadable image(s) in /x (strict mode): a.png (corrupt)"),
        WeightsUnavailable("no vgg16-397923af.pth in /w; use --weights PATH"),
        MissingDependency("vgg16-fc2 needs torchvision: pip install 'rarity-score[images]'"),
        FeatureFileError("/f.npy: not a readable .npy file"),
    ],
)
def test_errors_of_a_task_pickle_with_their_message(error):
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error)


def test_a_worker_lost_mid_run_costs_time_not_results(client, images, tmp_path):
    records = tmp_path / "records"
    with cluster.use(client):
        # The worker dies on image 8 (shard 2); Dask reruns the task elsewhere.
        lost = pipeline.extract_features(
            images, replace(_recorder(records, kill_at=8), cache_dir=tmp_path / "cache")
        )
    assert (records / "killed").exists()
    fresh = pipeline.extract_features(images, replace(_recorder(tmp_path / "r2"), cache_dir=False))
    _same(lost, fresh)
    # Every readable image was extracted; only work the dead worker held was done again.
    assert set(_recorded(records)) == set(_shard_reds(set(range(5))))


def test_a_worker_builds_each_extractor_once_and_keeps_the_latest(monkeypatch):
    from rarity_score.features import distributed as on_cluster

    monkeypatch.setattr(on_cluster, "_EXTRACTORS", type(on_cluster._EXTRACTORS)())
    built: list[int] = []

    def build(n: int):
        def make():
            built.append(n)
            return f"network {n}"

        return make

    assert on_cluster.worker_extractor(0, build(0)) == on_cluster.worker_extractor(0, build(0))
    assert built == [0]
    for n in range(1, on_cluster.MAX_EXTRACTORS + 1):
        on_cluster.worker_extractor(n, build(n))
    assert 0 not in on_cluster._EXTRACTORS  # the least recently used one went
    on_cluster.worker_extractor(0, build(0))
    assert built == [0, *range(1, on_cluster.MAX_EXTRACTORS + 1), 0]
