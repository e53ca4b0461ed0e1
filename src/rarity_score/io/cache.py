"""The feature cache: extracted features stored once, reused on the next run, resumable.

Layout, in the cache folder (``$RARITY_SCORE_CACHE`` or ``~/.cache/rarity-score``)::

    <key>.npz             features (float32, one row per readable image, collection order),
                          names, ok (one flag per collection item), skipped names and reasons
    <key>.json            the same facts for people: extractor, weights, counts, source, dates
    <key>.partial/        only while an extraction runs (or after it was killed):
        shard-00000.npz   items [0, S) of the collection, S = shard size
        shard-00001.npz   items [S, 2S) ...

The key is a sha256 over the extractor's name, its preprocessing, the fingerprint of its weights
and the content fingerprint of the image collection
(:meth:`~rarity_score.io.images.ImageCollection.content_fingerprint`: every image's name and a
sha256 of the bytes of every image file, or of the archive file), so any change to one of them is
a different key: stale features are never found, only orphaned, and images that merely share
names, sizes and modification times with others (``tar --mtime``) never get their features. The
same bytes under the same names hit wherever they lie (a copied folder, a touched file).

Every file is written atomically (:mod:`rarity_score.io.atomic`) and every file read is checked
against the key and the collection (names, shapes, counts, finite values). A file that fails a check
is ignored with a warning and its images are extracted again: the cache can save time, never cost
correctness. Problems *writing* the cache (a read-only folder, a full disk) are warnings too.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rarity_score._version import __version__
from rarity_score.io.atomic import atomic_write_text
from rarity_score.io.npz import str_array, write_npz

__all__ = [
    "CACHE_FORMAT_VERSION",
    "CachedFeatures",
    "FeatureCache",
    "Shard",
    "cache_key",
    "shard_ranges",
]

logger = logging.getLogger(__name__)

#: Bumped whenever the layout of the cache files or the meaning of the key changes, so old files
#: are never misread. 2: the key stands for the images' bytes (1 trusted sizes and dates).
CACHE_FORMAT_VERSION = 2

_SHARD_PREFIX = "shard-"


def cache_key(
    extractor: str, preprocessing: str, weights_id: str, collection_fingerprint: str
) -> str:
    """The cache key (64 hex digits) of one extractor applied to one image collection.

    >>> a = cache_key("vgg16-fc2", "bicubic 224", "397923af", "sha256:00")
    >>> a == cache_key("vgg16-fc2", "bicubic 224", "397923af", "sha256:00"), len(a)
    (True, 64)
    >>> a == cache_key("vgg16-fc2", "bilinear 224", "397923af", "sha256:00")
    False
    """
    # JSON of a list: unambiguous field boundaries, unlike plain concatenation.
    payload = json.dumps(
        ["rarity-score/feature-cache", CACHE_FORMAT_VERSION, extractor, preprocessing, weights_id,
         collection_fingerprint]
    )  # fmt: skip
    return hashlib.sha256(payload.encode()).hexdigest()


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` ranges of ``shard_size`` items covering ``range(n)``.

    >>> shard_ranges(7, 3)
    [(0, 3), (3, 6), (6, 7)]
    """
    if shard_size < 1:
        raise ValueError(f"shard size must be at least 1, got {shard_size}")
    return [(start, min(start + shard_size, n)) for start in range(0, n, shard_size)]


@dataclass(frozen=True)
class Shard:
    """Features of the collection items ``[start, stop)``.

    ``ok[j]`` tells whether item ``start + j`` could be read; ``features`` has one row per
    readable item (in order), ``reasons`` one entry per unreadable item (in order).
    """

    index: int
    start: int
    stop: int
    ok: np.ndarray
    features: np.ndarray
    reasons: list[str]


@dataclass(frozen=True)
class CachedFeatures:
    """A complete cache entry: ``ok`` has one flag per collection item, ``features`` one row per
    readable item, ``reasons`` one entry per unreadable item, both in collection order."""

    ok: np.ndarray
    features: np.ndarray
    reasons: list[str]


class _CacheFileError(Exception):
    """A cache file failed a check; the message says which."""


class FeatureCache:
    """The cache entry of one key: the final ``.npz`` / ``.json`` pair and the shards.

    ``names`` are the names of the collection's items in order; every file read back is checked
    against them. Reading never raises for a bad file (it warns and returns nothing); writing
    raises :class:`OSError` and the caller decides (the pipeline warns and carries on uncached).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        key: str,
        names: Sequence[str],
        *,
        content_fingerprint: str = "",
    ) -> None:
        self.directory = Path(directory)
        self.key = key
        self.names = list(names)
        self.content_fingerprint = content_fingerprint  # what the key stands for (metadata)

    @property
    def npz_path(self) -> Path:
        """The final features file."""
        return self.directory / f"{self.key}.npz"

    @property
    def json_path(self) -> Path:
        """The human-readable metadata of the final features file."""
        return self.directory / f"{self.key}.json"

    @property
    def partial_dir(self) -> Path:
        """The folder of shards written while an extraction runs."""
        return self.directory / f"{self.key}.partial"

    def shard_path(self, index: int) -> Path:
        """The file of shard ``index``."""
        return self.partial_dir / f"{_SHARD_PREFIX}{index:05d}.npz"

    # ------------------------------------------------------------------ complete entries

    def load(self) -> CachedFeatures | None:
        """The complete cached features, or ``None`` when there are none or the file is bad."""
        path = self.npz_path
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                self._check_key(data)
                ok = np.asarray(data["ok"])
                features = np.asarray(data["features"])
                reasons = [str(r) for r in np.asarray(data["skipped_reasons"]).tolist()]
                names = [str(n) for n in np.asarray(data["names"]).tolist()]
            _check_rows(ok, features, reasons, len(self.names))
            if names != [n for n, good in zip(self.names, ok.tolist(), strict=True) if good]:
                raise _CacheFileError("its names differ from the collection's")
        except Exception as error:  # any failure to read means: do not trust it
            logger.warning(
                "ignoring the cached features %s (%s); extracting again", path, _why(error)
            )
            return None
        return CachedFeatures(ok=ok.astype(bool), features=features, reasons=reasons)

    def save(self, result: CachedFeatures, metadata: Mapping[str, Any]) -> None:
        """Write the complete entry (``.npz`` then ``.json``, each atomically) and remove the
        shards. ``metadata`` is added to the JSON file."""
        ok = np.asarray(result.ok, dtype=bool)
        names = [n for n, good in zip(self.names, ok.tolist(), strict=True) if good]
        skipped = [n for n, good in zip(self.names, ok.tolist(), strict=True) if not good]
        self.directory.mkdir(parents=True, exist_ok=True)
        write_npz(
            self.npz_path,
            key=np.array(self.key),
            format_version=np.array(CACHE_FORMAT_VERSION),
            ok=ok,
            features=np.asarray(result.features, dtype=np.float32),
            names=str_array(names),
            skipped_names=str_array(skipped),
            skipped_reasons=str_array(result.reasons),
        )
        record: dict[str, Any] = {
            "format": "rarity-score/feature-cache",
            "format_version": CACHE_FORMAT_VERSION,
            "key": self.key,
            **metadata,
            "n_images": len(self.names),
            "n_features": len(names),
            "n_skipped": len(skipped),
            "dim": int(np.asarray(result.features).shape[1]),
            "skipped": [
                {"name": n, "reason": r} for n, r in zip(skipped, result.reasons, strict=True)
            ],
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "package_version": __version__,
        }
        atomic_write_text(self.json_path, json.dumps(record, indent=2) + "\n")
        self.remove_partial()

    def metadata(self) -> dict[str, Any] | None:
        """The JSON metadata of the complete entry, or ``None`` when missing or unreadable."""
        try:
            data = json.loads(self.json_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    # ------------------------------------------------------------------ shards

    def load_shards(self, ranges: Sequence[tuple[int, int]]) -> dict[int, Shard]:
        """The valid shards among ``ranges`` (shard ``i`` covers ``ranges[i]``), by index.

        Files that fail a check (truncated, another shard size, other names...) are ignored
        with one warning and their images are extracted again.
        """
        if not self.partial_dir.is_dir():
            return {}
        found: dict[int, Shard] = {}
        bad: list[str] = []
        dim: int | None = None
        for index, (start, stop) in enumerate(ranges):
            path = self.shard_path(index)
            if not path.exists():
                continue
            try:
                shard = self._read_shard(path, index, start, stop)
                if dim is not None and shard.features.shape[1] != dim:
                    raise _CacheFileError(
                        f"{shard.features.shape[1]} columns, other shards have {dim}"
                    )
            except Exception as error:  # any failure to read means: do not trust it
                bad.append(f"{path.name} ({_why(error)})")
                continue
            dim = shard.features.shape[1]
            found[index] = shard
        if bad:
            shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
            logger.warning(
                "ignoring %d unusable shard file(s) in %s, extracting their images again: %s",
                len(bad),
                self.partial_dir,
                shown,
            )
        return found

    def save_shard(self, shard: Shard) -> Path:
        """Write one shard atomically (a killed run leaves either the whole shard or none)."""
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        path = self.shard_path(shard.index)
        return write_npz(
            path,
            key=np.array(self.key),
            format_version=np.array(CACHE_FORMAT_VERSION),
            start=np.array(shard.start),
            stop=np.array(shard.stop),
            ok=np.asarray(shard.ok, dtype=bool),
            features=np.asarray(shard.features, dtype=np.float32),
            names=str_array(self.names[shard.start : shard.stop]),
            reasons=str_array(shard.reasons),
        )

    def remove_partial(self) -> None:
        """Delete the shard folder (after the merge; nothing in it is needed any more)."""
        shutil.rmtree(self.partial_dir, ignore_errors=True)

    # ------------------------------------------------------------------ checks

    def _read_shard(self, path: Path, index: int, start: int, stop: int) -> Shard:
        with np.load(path, allow_pickle=False) as data:
            self._check_key(data)
            got = (int(data["start"]), int(data["stop"]))
            if got != (start, stop):
                raise _CacheFileError(f"covers items {got[0]}-{got[1]}, expected {start}-{stop}")
            ok = np.asarray(data["ok"])
            features = np.asarray(data["features"])
            reasons = [str(r) for r in np.asarray(data["reasons"]).tolist()]
            names = [str(n) for n in np.asarray(data["names"]).tolist()]
        _check_rows(ok, features, reasons, stop - start)
        if names != self.names[start:stop]:
            raise _CacheFileError("its names differ from the collection's")
        return Shard(index, start, stop, ok.astype(bool), features, reasons)

    def _check_key(self, data: Any) -> None:
        if int(data["format_version"]) != CACHE_FORMAT_VERSION:
            raise _CacheFileError(f"cache format {int(data['format_version'])}")
        if str(data["key"]) != self.key:
            raise _CacheFileError("it belongs to another key")


def _check_rows(ok: np.ndarray, features: np.ndarray, reasons: list[str], n: int) -> None:
    """Shapes and values that every shard and entry must have."""
    if ok.dtype != np.bool_ or ok.shape != (n,):
        raise _CacheFileError(f"expected {n} item flags, got shape {ok.shape} of {ok.dtype}")
    if features.dtype != np.float32 or features.ndim != 2:
        raise _CacheFileError(f"features of dtype {features.dtype} and shape {features.shape}")
    n_ok = int(ok.sum())
    if features.shape[0] != n_ok or len(reasons) != n - n_ok:
        raise _CacheFileError(
            f"{features.shape[0]} feature rows and {len(reasons)} reasons for {n_ok} readable "
            f"of {n} items"
        )
    if not np.isfinite(features).all():
        raise _CacheFileError("non-finite features")


def _why(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if isinstance(error, _CacheFileError):
        return text
    if isinstance(error, KeyError):  # a missing array in the file
        return f"no {text} array"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
