"""The feature cache: hits, invalidation, atomic writes, damaged files, resuming from shards."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("PIL")

from pipeline_helpers import (
    TinyExtractor,
    assert_same_features,
    write_bad_images,
    write_images,
)

from rarity_score import defaults
from rarity_score.features.pipeline import extract_features
from rarity_score.io import atomic
from rarity_score.io.cache import (
    CachedFeatures,
    FeatureCache,
    Shard,
    cache_key,
    shard_ranges,
)
from rarity_score.options import ExtractionOptions

QUIET = {"progress": False}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_images(tmp_path / "images", 23)
    return tmp_path / "images"


def _extract(folder: Path, extractor: TinyExtractor, cache: Path, **options) -> object:
    return extract_features(
        folder, ExtractionOptions(extractor=extractor, cache_dir=cache, **QUIET, **options)
    )


def _cache_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.rglob("*")) if cache.exists() else []


# ---------------------------------------------------------------------- hits and keys


def test_second_run_is_a_cache_hit(folder, tmp_path):
    cache = tmp_path / "cache"
    extractor = TinyExtractor()
    first = _extract(folder, extractor, cache, batch_size=4)
    assert extractor.images == 23
    files = _cache_files(cache)
    assert len(files) == 2 and {Path(f).suffix for f in files} == {".npz", ".json"}
    calls = extractor.calls
    second = _extract(folder, extractor, cache, batch_size=7, workers=0)
    assert extractor.calls == calls  # not called again
    np.testing.assert_array_equal(second.features, first.features)
    assert second.names == first.names
    assert second.extractor == "tiny" and second.weights_id == "seed-0"

    (meta_file,) = [f for f in files if f.endswith(".json")]
    meta = json.loads((cache / meta_file).read_text())
    assert meta["extractor"] == "tiny" and meta["dim"] == 8
    assert meta["n_images"] == 23 and meta["n_features"] == 23 and meta["n_skipped"] == 0
    assert meta["source"] == str(folder) and meta["weights_id"] == "seed-0"
    assert meta["package_version"] and meta["created"]


def test_rewriting_a_file_invalidates_and_touching_it_does_not(folder, tmp_path):
    cache = tmp_path / "cache"
    extractor = TinyExtractor()
    _extract(folder, extractor, cache)
    target = folder / "img_005.png"
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touch
    seen = extractor.images
    _extract(folder, extractor, cache)
    assert extractor.images == seen  # the key stands for the bytes: the same bytes still hit

    # Rewritten with new content.
    write_images(folder, 1, seed=99, prefix="img_005_new")
    (folder / "img_005_new_000.png").replace(target)
    seen = extractor.images
    again = _extract(folder, extractor, cache)
    assert extractor.images == seen + 23
    fresh = extract_features(
        folder, ExtractionOptions(extractor=TinyExtractor(), cache_dir=False, **QUIET)
    )
    assert_same_features(again.features, fresh.features)


@pytest.mark.parametrize(
    "changed",
    [
        {"preprocessing": "bilinear 16x16, /255, other"},
        {"name": "tiny-2"},
        {"seed": 1},  # other weights, other weights_id
    ],
    ids=["preprocessing", "name", "weights"],
)
def test_another_extractor_or_preprocessing_misses(folder, tmp_path, changed):
    cache = tmp_path / "cache"
    _extract(folder, TinyExtractor(), cache)
    other = TinyExtractor(**changed)
    _extract(folder, other, cache)
    assert other.images == 23
    assert len(_cache_files(cache)) == 4


def test_cache_key_covers_every_field():
    base = ("e", "p", "w", "c")
    keys = {cache_key(*base)}
    for i in range(4):
        fields = list(base)
        fields[i] += "x"
        keys.add(cache_key(*fields))
    assert len(keys) == 5
    # Field boundaries are unambiguous.
    assert cache_key("ab", "c", "w", "f") != cache_key("a", "bc", "w", "f")


def test_default_folder_from_the_environment(folder, tmp_path, monkeypatch):
    monkeypatch.setenv(defaults.CACHE_DIR_ENV, str(tmp_path / "env-cache"))
    assert defaults.cache_dir() == tmp_path / "env-cache"
    import rarity_score.features as features

    extractor = TinyExtractor()
    monkeypatch.setattr(features, "get_extractor", lambda name, **kw: extractor)
    extract_features(
        folder, ExtractionOptions(extractor="tiny", **QUIET)
    )  # a named extractor: cached by default
    assert len(_cache_files(tmp_path / "env-cache")) == 2
    monkeypatch.delenv(defaults.CACHE_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert defaults.cache_dir() == tmp_path / "xdg" / "rarity-score"


def test_what_is_not_cached(folder, tmp_path, monkeypatch):
    monkeypatch.setenv(defaults.CACHE_DIR_ENV, str(tmp_path / "env-cache"))
    extract_features(
        folder, ExtractionOptions(extractor=TinyExtractor(), **QUIET)
    )  # an extractor object, no cache_dir
    batch = np.zeros((3, 10, 10, 3), dtype=np.uint8)
    extract_features(
        batch, ExtractionOptions(extractor=TinyExtractor(), cache_dir=tmp_path / "c", **QUIET)
    )  # an array
    extract_features(folder, ExtractionOptions(extractor=TinyExtractor(), cache_dir=False, **QUIET))
    assert _cache_files(tmp_path / "env-cache") == [] and _cache_files(tmp_path / "c") == []


def test_unwritable_cache_is_a_warning(folder, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="rarity_score"):
        result = _extract(folder, TinyExtractor(), blocker / "cache", shard_size=5)
    assert len(result.names) == 23
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "going on without it" in warnings[0]


# ---------------------------------------------------------------------- damaged files


def test_damaged_cache_file_is_ignored(folder, tmp_path, caplog):
    cache = tmp_path / "cache"
    extractor = TinyExtractor()
    first = _extract(folder, extractor, cache)
    (npz,) = cache.glob("*.npz")
    npz.write_bytes(npz.read_bytes()[:200])  # truncated
    with caplog.at_level(logging.WARNING, logger="rarity_score"):
        again = _extract(folder, extractor, cache)
    assert extractor.images == 46
    assert any("ignoring the cached features" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(again.features, first.features)
    # ... and rewritten whole.
    caplog.clear()
    _extract(folder, extractor, cache)
    assert extractor.images == 46 and not caplog.records


def test_cache_file_of_another_key_or_shape_is_ignored(tmp_path, caplog):
    names = ["a", "b", "c"]
    good = CachedFeatures(
        ok=np.array([True, False, True]),
        features=np.ones((2, 4), dtype=np.float32),
        reasons=["broken"],
    )
    cache = FeatureCache(tmp_path, "k1", names)
    cache.save(good, {"extractor": "x"})
    loaded = cache.load()
    assert loaded is not None and loaded.reasons == ["broken"]
    np.testing.assert_array_equal(loaded.ok, good.ok)
    # The same file under another key (copied by hand) is not trusted.
    (tmp_path / "k2.npz").write_bytes(cache.npz_path.read_bytes())
    with caplog.at_level(logging.WARNING):
        assert FeatureCache(tmp_path, "k2", names).load() is None
        assert FeatureCache(tmp_path, "k1", ["a", "b", "c", "d"]).load() is None
        assert FeatureCache(tmp_path, "k1", ["a", "x", "c"]).load() is not None  # b is skipped
        assert FeatureCache(tmp_path, "k1", ["x", "b", "c"]).load() is None
    assert len(caplog.records) == 3


def test_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    names = ["a", "b"]
    cache = FeatureCache(tmp_path, "k", names)
    old = CachedFeatures(np.array([True, True]), np.zeros((2, 3), np.float32), [])
    cache.save(old, {})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    new = CachedFeatures(np.array([True, True]), np.ones((2, 3), np.float32), [])
    with pytest.raises(OSError, match="No space"):
        cache.save(new, {})
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # old files intact, no temporary files left
    monkeypatch.undo()
    loaded = cache.load()
    assert loaded is not None
    np.testing.assert_array_equal(loaded.features, old.features)


# ---------------------------------------------------------------------- shards and resuming


class _CrashError(Exception):
    pass


class CrashingExtractor(TinyExtractor):
    """Raises on forward pass number ``crash_at`` (a run killed half-way, in-process)."""

    def __init__(self, crash_at: int, **kw) -> None:
        super().__init__(**kw)
        self.crash_at = crash_at

    def __call__(self, batch):
        if self.calls + 1 == self.crash_at:
            self.calls += 1
            raise _CrashError
        return super().__call__(batch)


def test_interrupted_run_resumes_from_complete_shards(folder, tmp_path, caplog):
    write_bad_images(folder)  # 26 items: 23 good, 3 bad
    cache = tmp_path / "cache"
    # Shards of 5 in batches of 2 (3 batches a shard); crash in the first batch of shard 3.
    with pytest.raises(_CrashError):
        _extract(folder, CrashingExtractor(crash_at=10), cache, shard_size=5, batch_size=2)
    (partial,) = cache.glob("*.partial")
    assert sorted(p.name for p in partial.iterdir()) == [
        "shard-00000.npz",
        "shard-00001.npz",
        "shard-00002.npz",
    ]
    assert not list(cache.glob("*.npz"))

    resumed_extractor = TinyExtractor()
    with caplog.at_level(logging.INFO, logger="rarity_score"):
        resumed = _extract(folder, resumed_extractor, cache, shard_size=5, batch_size=2)
    assert resumed_extractor.images == 10  # only the missing shards: items 15-25, one bad
    assert any("reusing 3 complete shard(s)" in r.getMessage() for r in caplog.records)
    (meta,) = [json.loads(p.read_text()) for p in cache.glob("*.json")]
    assert meta["reused_shards"] == 3 and meta["extracted_images"] == 11
    assert not partial.exists()  # merged, then removed
    assert _cache_files(cache) == sorted(p.name for p in cache.iterdir())  # nothing else

    whole = extract_features(
        folder, ExtractionOptions(extractor=TinyExtractor(), cache_dir=False, **QUIET)
    )
    assert_same_features(resumed.features, whole.features)
    assert resumed.names == whole.names and resumed.skipped == whole.skipped
    assert len(resumed.skipped) == 3


def test_damaged_or_foreign_shards_are_extracted_again(folder, tmp_path, caplog):
    cache = tmp_path / "cache"
    with pytest.raises(_CrashError):
        _extract(folder, CrashingExtractor(crash_at=4), cache, shard_size=5, batch_size=5)
    (partial,) = cache.glob("*.partial")
    assert len(list(partial.iterdir())) == 3
    (partial / "shard-00001.npz").write_bytes(b"PK\x03\x04 not really a zip")
    # Shard 2 written for another shard size: a range that does not fit is not used.
    data = dict(np.load(partial / "shard-00002.npz"))
    data["stop"] = np.array(int(data["stop"]) - 1)
    np.savez(partial / "shard-00002.npz", **data)

    extractor = TinyExtractor()
    with caplog.at_level(logging.WARNING, logger="rarity_score"):
        result = _extract(folder, extractor, cache, shard_size=5, batch_size=5)
    assert extractor.images == 23 - 5
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "ignoring 2 unusable shard file(s)" in warning
    assert "shard-00001.npz" in warning and "shard-00002.npz" in warning
    whole = extract_features(
        folder, ExtractionOptions(extractor=TinyExtractor(), cache_dir=False, **QUIET)
    )
    assert_same_features(result.features, whole.features)


def test_shard_round_trip_and_checks(tmp_path):
    names = [f"n{i}" for i in range(7)]
    cache = FeatureCache(tmp_path, "key", names)
    ranges = shard_ranges(7, 3)
    assert ranges == [(0, 3), (3, 6), (6, 7)]
    shard = Shard(1, 3, 6, np.array([True, False, True]), np.ones((2, 4), np.float32), ["bad"])
    cache.save_shard(shard)
    (loaded,) = cache.load_shards(ranges).values()
    assert (loaded.start, loaded.stop, loaded.reasons) == (3, 6, ["bad"])
    np.testing.assert_array_equal(loaded.features, shard.features)
    # Another collection (other names) under the same key does not take it.
    assert FeatureCache(tmp_path, "key", [*names[:4], "x", *names[5:]]).load_shards(ranges) == {}
    with pytest.raises(ValueError):
        shard_ranges(3, 0)
