"""Images to features: load, decode and preprocess in a DataLoader, run the extractor in batches,
cache the result, resume a killed run.

:func:`extract_features` is the whole pipeline; :func:`load_or_extract` adds feature inputs (a
feature file, a 2-D array), which pass straight through. Both return a :class:`FeatureSet`: the
features of the readable images in collection order, their names, and the images that were
skipped with the reason.

Guarantees
    * Features do not depend on the batch size or the number of workers (up to float32 rounding
      of the network's kernels): every image is preprocessed on its own, and rows come back in
      collection order.
    * Unreadable images (corrupt, truncated, zero-byte, too large) never stop a run: they are left
      out and listed in one warning with their count; ``ExtractionOptions(strict=True)`` raises
      instead. Every row keeps its name, so outputs line up with the right files.
    * The feature cache (:mod:`rarity_score.io.cache`) is keyed by the extractor, its
      preprocessing, its weights, every image's name and a sha256 of the images' bytes (each
      file's, or the archive file's), so other images never get these features, whatever their
      names, sizes and dates. Long runs write shards as they go; a killed run resumes from the
      shards that were complete.
    * Inside a :func:`rarity_score.cluster.use` block the shards still to do run as tasks on
      that Dask cluster (:mod:`rarity_score.features.distributed`), each worker on its own
      device; the features, the cache entry and the errors are those of a run in one process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from rarity_score import cluster, defaults
from rarity_score._errors import require
from rarity_score._progress import progress_bar
from rarity_score._validation import tensor_features
from rarity_score.engine.backend import check_device
from rarity_score.io.cache import CachedFeatures, FeatureCache, Shard, cache_key, shard_ranges
from rarity_score.io.features import load_features, save_features, split_key
from rarity_score.io.images import (
    CHANGED_REASON,
    ImageCollection,
    ImageInputError,
    UnreadableImage,
    is_feature_file,
    open_images,
)
from rarity_score.io.npz import str_array, write_npz
from rarity_score.options import CacheDir, ExtractionOptions

if TYPE_CHECKING:
    import torch

    from rarity_score.features.distributed import ShardJob
    from rarity_score.features.info import FeatureExtractor

__all__ = [
    "CacheDir",
    "ExtractionOptions",
    "FeatureSet",
    "extract_features",
    "load_or_extract",
    "read_feature_set",
    "save_feature_set",
]

logger = logging.getLogger(__name__)

#: Unreadable images named in one warning or error message before "... and N more".
_SHOWN = 20

#: Arrays of a feature file written by :func:`save_feature_set` besides ``features``.
_METADATA_ARRAYS = (
    "names",
    "skipped_names",
    "skipped_reasons",
    "extractor",
    "preprocessing",
    "weights_id",
    "source",
)


@dataclass(frozen=True)
class FeatureSet:
    """Features of a set of images, one row per readable image, in collection order.

    Attributes:
        features: array (n_ok, dim), float32 when extracted (a feature file keeps its dtype);
            unreadable images are left out.
        names: one name per row: the path relative to the folder, the archive member, the listed
            path, or ``"#i"`` for arrays and plain feature files.
        skipped: ``(name, reason)`` of every image that could not be read, in collection order.
        extractor: the extractor's registry name (``""`` when unknown, e.g. a plain feature file).
        source: the input as given.
        preprocessing: the extractor's preprocessing, in words (``""`` when unknown).
        weights_id: fingerprint of the extractor's weights (``""`` when unknown).
        images_fingerprint: :meth:`~rarity_score.io.images.ImageCollection.fingerprint` of the
            images as listed when extracted (``""`` for feature files); a results directory
            records it, and the report opens the source again only when it still matches.
    """

    features: np.ndarray
    names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    extractor: str = ""
    source: str = ""
    preprocessing: str = ""
    weights_id: str = ""
    images_fingerprint: str = ""

    def __post_init__(self) -> None:
        if len(self.names) != self.features.shape[0]:
            raise ValueError(f"{len(self.names)} names for {self.features.shape[0]} feature rows")

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def dim(self) -> int:
        """Length of one feature vector."""
        return int(self.features.shape[1])

    @property
    def has_names(self) -> bool:
        """Whether the names say more than the row index (``"#i"`` names do not)."""
        return any(name != f"#{i}" for i, name in enumerate(self.names))


# ---------------------------------------------------------------------- public functions


def extract_features(source: Any, options: ExtractionOptions | None = None) -> FeatureSet:
    """Extract features of every readable image of ``source``.

    Args:
        source: a folder, a ``.zip`` / ``.tar`` archive, a ``.txt`` list of image paths, an image
            file, a sequence of paths, a numpy array / torch tensor of images, or an
            :class:`~rarity_score.io.images.ImageCollection` (see
            :func:`rarity_score.io.images.open_images`).
        options: how (default :class:`~rarity_score.options.ExtractionOptions`, whose fields
            say what each one does): the extractor (``None``: ``defaults.EXTRACTOR``; a
            registry name, see ``rarity extractors``, or a
            :class:`~rarity_score.features.info.FeatureExtractor`, e.g. from
            :func:`rarity_score.features.from_module`), device, batch size, workers, weights,
            cache folder, strictness, progress bar, shard size and input size. Arrays of images
            are never cached (the caller holds them), nor are extractor objects unless
            ``cache_dir`` is given (their name and ``weights_id`` are the caller's to keep
            unique). Features do not depend on the batch size, the workers or the shard size.

    Raises:
        ImageInputError: the input is missing or holds no images, no image could be read, or
            (``strict``) some image could not be read.
        WeightsUnavailable: the weights cannot be loaded (offline and not on disk).
        MissingDependency: torch, torchvision, Pillow or an extractor's own library is missing.
    """
    options = _options(options)
    if is_feature_file(source):
        raise ImageInputError(
            f"{os.fspath(source)} is a feature file, not images; use load_or_extract to accept "
            "both, or load_features to read it"
        )
    collection = open_images(source)
    if len(collection) == 0:
        raise ImageInputError(f"no images in {collection.source}")
    extractor = defaults.EXTRACTOR if options.extractor is None else options.extractor
    if cluster.active():
        # The device is each worker's (checked there, before its first image); this process
        # needs the extractor only for its description, weights fingerprint and cache key.
        model = _client_extractor(extractor, options)
    else:
        check_device(options.device)
        model = _resolve_extractor(extractor, options)
    info = model.info
    cache = _open_cache(options.cache_dir, collection, model, named=isinstance(extractor, str))
    names = collection.names

    if cache is not None:
        cached = cache.load()
        if cached is not None:
            logger.info(
                "using cached %s features of %s (%s)", info.name, collection.source, cache.npz_path
            )
            result = _feature_set(cached, names, model, collection)
            _report_skipped(result, collection, strict=options.strict)
            return result

    merged = _extract_with_shards(collection, extractor, model, cache, options)
    result = _feature_set(merged, names, model, collection)
    _report_skipped(result, collection, strict=options.strict)
    return result


def load_or_extract(source: Any, options: ExtractionOptions | None = None) -> FeatureSet:
    """Features of ``source``, which may be images (extracted with ``options``, default
    :class:`ExtractionOptions`) or features already: a :class:`FeatureSet`, a feature file
    (``.npy``, ``.npz``, ``.pt``, ``.pth``, ``file.npz:name``) or a 2-D array (samples x features).

    Features pass straight through, named ``"#i"`` unless the file was written by
    :func:`save_feature_set` (``rarity features``), which stores the names and the extractor.
    """
    if isinstance(source, FeatureSet):
        return source
    if is_feature_file(source):
        return read_feature_set(source)
    if _is_feature_array(source):
        # Tensors go through the one exact conversion (float8, bfloat16, sparse, refusals).
        array = (
            tensor_features(source, "features", floats=False)
            if hasattr(source, "detach")
            else np.asarray(source)
        )
        return FeatureSet(
            features=array,
            names=[f"#{i}" for i in range(array.shape[0])],
            source=f"{type(source).__name__} {tuple(array.shape)}",
        )
    return extract_features(source, options)


def save_feature_set(path: str | os.PathLike[str], features: FeatureSet) -> Path:
    """Write ``features`` atomically: ``.npz`` holds the features (float32, under ``features``),
    the names, the skipped images and the extractor; ``.npy`` only the features.

    :func:`load_or_extract` and ``rarity score`` read the names and extractor back from ``.npz``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    array = np.asarray(features.features, dtype=np.float32)
    if suffix == ".npy":
        logger.warning(
            "%s: a .npy file holds the features only; the image names are not stored (use .npz "
            "to keep them)",
            path,
        )
        return save_features(path, array)
    if suffix != ".npz":
        raise ValueError(f"{path}: write features as .npz (with names) or .npy, not {suffix!r}")
    return write_npz(
        path,
        features=array,
        names=str_array(features.names),
        skipped_names=str_array([name for name, _ in features.skipped]),
        skipped_reasons=str_array([reason for _, reason in features.skipped]),
        extractor=np.array(features.extractor),
        preprocessing=np.array(features.preprocessing),
        weights_id=np.array(features.weights_id),
        source=np.array(features.source),
    )


def read_feature_set(path: str | os.PathLike[str]) -> FeatureSet:
    """Read a feature file as a :class:`FeatureSet` (names ``"#i"`` unless the file stores
    them, see :func:`save_feature_set`). Raises
    :class:`~rarity_score.io.features.FeatureFileError` for a bad file."""
    file, key = split_key(path)
    text = os.fspath(path)
    if file.suffix.lower() == ".npz" and key in (None, "features") and file.is_file():
        stored = _read_stored(file)
        if stored is not None:
            return stored
    array = load_features(path)
    return FeatureSet(features=array, names=[f"#{i}" for i in range(array.shape[0])], source=text)


# ---------------------------------------------------------------------- the extraction loop


def _extract_with_shards(
    collection: ImageCollection,
    extractor: str | FeatureExtractor,
    model: FeatureExtractor,
    cache: FeatureCache | None,
    options: ExtractionOptions,
) -> CachedFeatures:
    """Reuse the complete shards in the cache, extract the others (writing each as it completes;
    on the cluster of a ``cluster.use`` block when there is one), merge them in collection order
    and store the merged result in the cache. ``extractor`` is what ``model`` was made from."""
    names = collection.names
    ranges = shard_ranges(len(collection), options.shard_size)
    done: dict[int, Shard] = cache.load_shards(ranges) if cache is not None else {}
    if options.strict:
        _raise_if_skipped(_skipped_in(done.values(), names), collection)
    todo = [(index, span) for index, span in enumerate(ranges) if index not in done]
    n_reused = sum(shard.stop - shard.start for shard in done.values())
    if done and cache is not None:
        logger.info(
            "resuming: reusing %d complete shard(s) (%d images) from %s",
            len(done),
            n_reused,
            cache.partial_dir,
        )
    on_cluster = bool(todo) and cluster.active()
    if todo:
        logger.info(
            "extracting %s features of %d images from %s (device %s, batch size %d, %d workers%s)",
            model.info.name,
            len(collection) - n_reused,
            collection.source,
            options.device,
            options.batch_size,
            options.workers,
            f", {len(todo)} shard tasks on a Dask cluster" if on_cluster else "",
        )
    start_time = time.perf_counter()
    writer = _ShardWriter(cache)
    if on_cluster:
        from rarity_score.features.distributed import extract_on_cluster

        job = _shard_job(collection, extractor, model, cache, options)
        for shard, written in extract_on_cluster(
            cluster.current(), _extract_shard, job, todo, n_done=n_reused, progress=options.progress
        ):
            done[shard.index] = shard
            # The worker's write counts only where this process sees it: without shared storage
            # the shard went to the worker's own disk, and a rerun here could not resume from it.
            if not (written and cache is not None and cache.shard_path(shard.index).is_file()):
                writer.write(shard)
    else:
        for shard in _run(collection, model, todo, options, n_done=n_reused):
            done[shard.index] = shard
            writer.write(shard)
    merged = _merge([done[index] for index in range(len(ranges))])
    changed = CHANGED_REASON in merged.reasons
    if changed:
        logger.warning(
            "%s: images changed while they were read; their features are not cached",
            collection.source,
        )
    if cache is not None and writer.working and not changed:
        # Stored even when some (or all) images were unreadable: the next run then reports the
        # same skipped images without decoding them again.
        metadata = {
            "extractor": model.info.name,
            "preprocessing": model.info.preprocessing,
            "weights": model.info.weights,
            "weights_id": model.weights_id,
            "source": collection.source,
            "kind": collection.kind,
            "content_fingerprint": cache.content_fingerprint,
            "shard_size": options.shard_size,
            "reused_shards": len(ranges) - len(todo),
            "reused_images": n_reused,
            "extracted_images": len(collection) - n_reused,
            "seconds": round(time.perf_counter() - start_time, 3),
        }
        try:
            cache.save(merged, metadata)
            logger.info("cached the features in %s", cache.npz_path)
        except OSError as error:
            logger.warning("could not write the feature cache %s: %s", cache.npz_path, error)
    return merged


def _shard_job(
    collection: ImageCollection,
    extractor: str | FeatureExtractor,
    model: FeatureExtractor,
    cache: FeatureCache | None,
    options: ExtractionOptions,
) -> ShardJob:
    """What the shard tasks share; paths made absolute, since a worker's folder is not ours."""
    from rarity_score.features.distributed import ShardJob

    weights = None if options.weights is None else os.path.abspath(os.fspath(options.weights))
    on_worker = replace(options, extractor=None, weights=weights, progress=False)
    if cache is not None:
        cache = FeatureCache(
            Path(os.path.abspath(cache.directory)),
            cache.key,
            cache.names,
            content_fingerprint=cache.content_fingerprint,
        )
    return ShardJob(collection, extractor, on_worker, cache, _identity(model))


#: Whether this (worker) process said once that it decodes without DataLoader workers.
_DAEMON_WARNED: list[bool] = []


def _extract_shard(job: ShardJob, index: int, span: tuple[int, int]) -> tuple[Shard, bool]:
    """One Dask task, on a worker: shard ``index`` (items ``span``) extracted by the code path of
    a local run, written into the cache (best effort), and returned with whether it was."""
    options = job.options
    model = _worker_model(job)
    if options.workers and multiprocessing.current_process().daemon:
        # Dask's worker processes are daemons by default, and daemons may not start DataLoader
        # workers; decoding here instead changes the speed, not the features.
        if not _DAEMON_WARNED:
            _DAEMON_WARNED.append(True)
            logger.warning(
                "a Dask worker process is a daemon: decoding without the %d DataLoader workers "
                "asked for (start the workers with the Dask setting distributed.worker.daemon: "
                "False)",
                options.workers,
            )
        options = replace(options, workers=0)
    [shard] = list(_run(job.collection, model, [(index, span)], options, n_done=0))
    return shard, _ShardWriter(job.cache).write(shard)


def _worker_model(job: ShardJob) -> FeatureExtractor:
    """The job's extractor on this worker's device: a named one built once per process and
    checked to be the client's; a user's object as it arrived with the job (once per worker, so
    it needs no keeping here)."""
    from rarity_score.features.distributed import worker_extractor

    options = job.options
    try:
        check_device(options.device)
    except ValueError as error:
        raise ValueError(f"on Dask worker {_worker_address()}: {error}") from None
    if not isinstance(job.extractor, str):
        return job.extractor.to(options.device)
    name = job.extractor
    # With the client's identity in the key, a weights file replaced between runs is loaded anew.
    key = (name, options.weights, options.input_size, options.device, job.identity)
    model = worker_extractor(key, lambda: _resolve_extractor(name, options))
    if _identity(model) != job.identity:
        raise RuntimeError(
            f"{name} built on Dask worker {_worker_address()} is not the one of the client "
            f"(name, preprocessing, weights fingerprint, dim: {_identity(model)} there, "
            f"{job.identity} here); give every worker the same weights file on shared storage "
            "(--weights PATH)"
        )
    return model


def _identity(model: FeatureExtractor) -> tuple[str, str, str, int]:
    info = model.info
    return (info.name, info.preprocessing, model.weights_id, int(info.dim))


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):  # not inside a Dask task
        return "(none)"


class _Items:
    """Map-style dataset: item ``i`` -> ``(i, preprocessed tensor, None)``, or
    ``(i, None, reason)`` when the image cannot be read. Picklable for worker processes (the
    collection reopens archives per process; ``preprocess`` does not hold the network)."""

    def __init__(self, collection: ImageCollection, preprocess: Any) -> None:
        self.collection = collection
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.collection)

    def __getitem__(self, i: int) -> tuple[int, Any, str | None]:
        try:
            image = self.collection.load(i)
        except UnreadableImage as error:
            return i, None, error.reason
        try:
            tensor = self.preprocess(image)
        except (OSError, ValueError) as error:  # e.g. an image that decodes but cannot resize
            return i, None, " ".join(str(error).split()) or type(error).__name__
        return i, tensor, None


def _collate(items: list[tuple[int, Any, str | None]]) -> tuple[list[int], Any, list[str]]:
    """One batch: the indices in order, the stacked tensors of the readable ones (or ``None``),
    and one reason per item (``""`` for readable ones)."""
    import torch

    tensors = [tensor for _, tensor, _ in items if tensor is not None]
    stacked = torch.stack(tensors) if tensors else None
    return [i for i, _, _ in items], stacked, [reason or "" for _, _, reason in items]


def _run(
    collection: ImageCollection,
    model: FeatureExtractor,
    todo: Sequence[tuple[int, tuple[int, int]]],
    options: ExtractionOptions,
    *,
    n_done: int,
) -> Iterator[Shard]:
    """Extract the shards ``todo`` (index, (start, stop)) in order, yielding each when complete."""
    if not todo:
        return
    torch = _import("torch")
    from torch.utils.data import DataLoader

    device, batch_size = options.device, options.batch_size
    # Batches never straddle a shard, so each shard is complete as soon as its last batch is.
    batches: list[list[int]] = []
    for _, (start, stop) in todo:
        batches += [
            list(range(s, min(s + batch_size, stop))) for s in range(start, stop, batch_size)
        ]
    on_cuda = str(device).startswith("cuda")
    loader: Any = DataLoader(
        cast(Any, _Items(collection, model.preprocess)),
        batch_sampler=batches,
        num_workers=options.workers,
        collate_fn=_collate,
        pin_memory=on_cuda,  # faster host -> GPU copies
    )
    bar = progress_bar(
        len(collection),
        f"features {collection.source}",
        unit=" images",  # the rate reads "12.3 images/s"
        enabled=options.progress,
        initial=n_done,
    )
    pending = iter(todo)
    index, (start, stop) = next(pending)
    ok: list[bool] = []
    rows: list[np.ndarray] = []
    reasons: list[str] = []
    try:
        for indices, batch, batch_reasons in loader:
            if options.strict and any(batch_reasons):
                _raise_if_skipped(
                    [
                        (collection[i].name, r)
                        for i, r in zip(indices, batch_reasons, strict=True)
                        if r
                    ],
                    collection,
                )
            if batch is not None:
                rows.append(_forward(model, batch, device, torch))
            ok += [not reason for reason in batch_reasons]
            reasons += [reason for reason in batch_reasons if reason]
            bar.update(len(indices))
            if indices[-1] == stop - 1:
                yield Shard(
                    index=index,
                    start=start,
                    stop=stop,
                    ok=np.array(ok, dtype=bool),
                    features=_stack(rows, model),
                    reasons=reasons,
                )
                ok, rows, reasons = [], [], []
                index, (start, stop) = next(pending, (-1, (-1, -1)))
    except BaseException:
        bar.leave = False  # an error message follows; a half bar above it only confuses
        raise
    finally:
        bar.close()


def _forward(model: FeatureExtractor, batch: torch.Tensor, device: str, torch: Any) -> np.ndarray:
    on_cuda = str(device).startswith("cuda")
    with torch.inference_mode():
        out = model(batch.to(device, non_blocking=on_cuda))
    out = out.detach().to("cpu", torch.float32)
    # A user's module may return (B, C, 1, 1) pooled maps; one row per image either way.
    return np.ascontiguousarray(out.reshape(out.shape[0], -1).numpy())


def _stack(rows: list[np.ndarray], model: FeatureExtractor) -> np.ndarray:
    if rows:
        return np.concatenate(rows).astype(np.float32, copy=False)
    return np.zeros((0, model.info.dim), dtype=np.float32)


# ---------------------------------------------------------------------- helpers


def _options(options: Any) -> ExtractionOptions:
    if options is None:
        return ExtractionOptions()
    if not isinstance(options, ExtractionOptions):
        # The old signature took the extractor second: say how to give it now.
        raise TypeError(
            f"options must be ExtractionOptions, got {type(options).__name__}; give the "
            "extractor as ExtractionOptions(extractor=...)"
        )
    return options


def _client_extractor(
    extractor: str | FeatureExtractor, options: ExtractionOptions
) -> FeatureExtractor:
    """The extractor as a cluster's client needs it: a named one built on the CPU (the device is
    the workers'), a user's object as given (not moved; it travels to the workers as it is)."""
    if isinstance(extractor, str):
        return _resolve_extractor(extractor, replace(options, device="cpu"))
    return extractor


def _resolve_extractor(
    extractor: str | FeatureExtractor, options: ExtractionOptions
) -> FeatureExtractor:
    """The network of ``extractor`` on ``options.device`` (the options checked that an object
    comes without ``weights`` and ``input_size``)."""
    if isinstance(extractor, str):
        from rarity_score.features import get_extractor

        settings: dict[str, Any] = {"weights": options.weights, "device": options.device}
        if options.input_size is not None:
            settings["input_size"] = options.input_size
        return get_extractor(extractor, **settings)
    return extractor.to(options.device)


def _open_cache(
    cache_dir: CacheDir, collection: ImageCollection, model: FeatureExtractor, *, named: bool
) -> FeatureCache | None:
    if cache_dir is False:
        return None
    if collection.kind == "array":
        # The pixels are in the caller's memory already; writing them into the user's cache
        # folder for a throwaway batch would only fill it.
        return None
    if not named and cache_dir is None:
        return None
    directory = defaults.cache_dir() if cache_dir is None else Path(cache_dir)
    # The content, not names, sizes and dates (those can be equal for other images): reads
    # every image file (or the archive) once, far less than decoding them.
    started = time.perf_counter()
    content = collection.content_fingerprint()
    logger.debug(
        "hashed the images of %s in %.1f s", collection.source, time.perf_counter() - started
    )
    key = cache_key(model.info.name, model.info.preprocessing, model.weights_id, content)
    logger.debug("feature cache key %s in %s", key, directory)
    return FeatureCache(directory, key, collection.names, content_fingerprint=content)


class _ShardWriter:
    """Writes shards to the cache; after the first failure it stops trying (with one warning),
    because a cache that cannot be written must not stop the extraction."""

    def __init__(self, cache: FeatureCache | None) -> None:
        self.cache = cache
        self.working = cache is not None

    def write(self, shard: Shard) -> bool:
        """Write ``shard``; whether it was written."""
        if not self.working or self.cache is None:
            return False
        if CHANGED_REASON in shard.reasons:  # not the content the key stands for
            return False
        try:
            path = self.cache.save_shard(shard)
        except OSError as error:
            self.working = False
            logger.warning(
                "could not write to the feature cache %s (%s); going on without it",
                self.cache.directory,
                error,
            )
            return False
        logger.debug("wrote shard %s (items %d-%d)", path, shard.start, shard.stop - 1)
        return True


def _merge(shards: Sequence[Shard]) -> CachedFeatures:
    dims = {shard.features.shape[1] for shard in shards if shard.features.shape[0]}
    if len(dims) > 1:  # pragma: no cover - one extractor gives one dimension
        raise RuntimeError(f"feature dimensions differ between shards: {sorted(dims)}")
    dim = dims.pop() if dims else shards[0].features.shape[1]
    features = [shard.features.reshape(-1, dim) for shard in shards]
    return CachedFeatures(
        ok=np.concatenate([shard.ok for shard in shards]),
        features=np.concatenate(features).astype(np.float32, copy=False),
        reasons=[reason for shard in shards for reason in shard.reasons],
    )


def _feature_set(
    result: CachedFeatures,
    names: Sequence[str],
    model: FeatureExtractor,
    collection: ImageCollection,
) -> FeatureSet:
    ok = result.ok.tolist()
    bad = [name for name, good in zip(names, ok, strict=True) if not good]
    return FeatureSet(
        features=result.features,
        names=[name for name, good in zip(names, ok, strict=True) if good],
        skipped=list(zip(bad, result.reasons, strict=True)),
        extractor=model.info.name,
        source=collection.source,
        preprocessing=model.info.preprocessing,
        weights_id=model.weights_id,
        images_fingerprint=collection.fingerprint(),
    )


def _skipped_in(shards: Any, names: Sequence[str]) -> list[tuple[str, str]]:
    skipped: list[tuple[str, str]] = []
    for shard in sorted(shards, key=lambda s: s.start):
        bad = [names[shard.start + j] for j in np.flatnonzero(~shard.ok)]
        skipped += list(zip(bad, shard.reasons, strict=True))
    return skipped


def _listing(skipped: Sequence[tuple[str, str]]) -> str:
    shown = "; ".join(f"{name} ({reason})" for name, reason in skipped[:_SHOWN])
    more = len(skipped) - _SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


def _raise_if_skipped(skipped: Sequence[tuple[str, str]], collection: ImageCollection) -> None:
    if skipped:
        raise ImageInputError(
            f"{len(skipped)} unreadable image(s) in {collection.source} (strict mode): "
            f"{_listing(skipped)}"
        )


def _report_skipped(result: FeatureSet, collection: ImageCollection, *, strict: bool) -> None:
    """Raise when nothing (or, strictly, not everything) was readable; else warn once."""
    if strict:
        _raise_if_skipped(result.skipped, collection)
    if not result.skipped:
        return
    if len(result) == 0:
        raise ImageInputError(
            f"none of the {len(collection)} images in {collection.source} could be read: "
            f"{_listing(result.skipped)}"
        )
    logger.warning(
        "skipped %d of %d images in %s that could not be read: %s",
        len(result.skipped),
        len(collection),
        collection.source,
        _listing(result.skipped),
    )


def _import(module: str) -> Any:
    return require(module, what="extracting image features")


def _read_stored(file: Path) -> FeatureSet | None:
    """A file written by :func:`save_feature_set`, or ``None`` when ``file`` is another .npz."""
    import zipfile

    from rarity_score.io.features import FeatureFileError, open_npz, read_npz_array

    try:
        with open_npz(file) as data:
            arrays = set(data.files)
            if "features" not in arrays or "names" not in arrays:
                return None
            if not arrays - {"features"} <= set(_METADATA_ARRAYS):
                return None
            # Each header is checked before its array is read (a damaged one can declare
            # exabytes); the features are read, and checked, by load_features below.
            stored = {
                name: read_npz_array(data, name, file, numeric=False)
                for name in sorted(arrays - {"features"})
            }
    except FeatureFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise FeatureFileError(f"{file}: not a readable .npz file ({error})") from error
    features = load_features(f"{file}:features")
    if stored["names"].ndim != 1:
        raise FeatureFileError(
            f"{file}: its names array has shape {stored['names'].shape}, not one name per row; "
            "the file is damaged"
        )
    names = [str(n) for n in stored["names"].tolist()]
    if len(names) != features.shape[0]:
        raise FeatureFileError(
            f"{file}: {len(names)} names for {features.shape[0]} feature rows; the file is damaged"
        )
    skipped_names = [str(n) for n in stored.get("skipped_names", np.zeros(0, str)).tolist()]
    skipped_reasons = [str(n) for n in stored.get("skipped_reasons", np.zeros(0, str)).tolist()]

    def text(name: str) -> str:
        return str(stored[name]) if name in stored else ""

    return FeatureSet(
        features=features,
        names=names,
        skipped=list(zip(skipped_names, skipped_reasons, strict=False)),
        extractor=text("extractor"),
        source=os.fspath(file),
        preprocessing=text("preprocessing"),
        weights_id=text("weights_id"),
    )


def _is_feature_array(source: Any) -> bool:
    """A 2-D numpy array or torch tensor: features, since image batches have 3 or 4 axes."""
    shape = getattr(source, "shape", None)
    return shape is not None and hasattr(source, "dtype") and len(shape) == 2
