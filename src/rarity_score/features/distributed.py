"""Image extraction on a Dask cluster: one task per shard still to do, the shards back here.

Inside a :func:`rarity_score.cluster.use` block, :func:`~rarity_score.features.pipeline.
extract_features` hands the shards that the feature cache does not hold yet to
:func:`extract_on_cluster`. Each shard becomes one task that runs on a worker the code path of a
local run (the same DataLoader, the same batches: features are the same, bit for bit on the CPU,
tested), writes the shard into the feature cache itself (its folder is meant to be on storage
the workers share) and returns it. The client merges the shards in collection order and stores
the merged entry as a local run does; it writes a shard itself only when the worker could not
(a cluster without shared storage still works, it just resumes from what the client wrote).

What travels: the image collection (names and paths, or an archive's member list; the pixels
only for images held in memory), the extractor's name and options, or a user's extractor object,
travel as one :class:`ShardJob`, which reaches each worker once, never once per task; a task
returns its shard's features. The job is the result of a task of its own rather than scattered
data: Dask drops the extra replicas of scattered data, and the loss of the one worker left
holding it would end the run, whereas a task's result that is lost is computed again. A named
extractor is built once per worker process (:func:`worker_extractor`) with the client's weights
file (on shared storage) and checked to have the client's weights.

Devices: ``ExtractionOptions.device`` names each *worker's* device. ``"cuda"`` on a worker is the
GPU that worker sees: with ``dask-cuda`` (``LocalCUDACluster``, ``dask cuda worker``) each worker
process sees one GPU through ``CUDA_VISIBLE_DEVICES``, so every GPU of a machine runs its share.
The client needs no GPU; each worker checks the device before its first image.

Faults: Dask reruns the task of a worker that dies (nothing here retries), and a rerun after a
killed client reuses every shard already in the cache. An error inside a task (strict mode's
unreadable images, missing weights) reaches the caller as the same exception, with the same
one-line message, as in one process: the error of the lowest shard, raised once every shard
before it is done, which is the one a local run (shards in order) meets first.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rarity_score import cluster
from rarity_score._progress import progress_bar
from rarity_score.io.cache import FeatureCache, Shard
from rarity_score.io.images import ImageCollection
from rarity_score.options import ExtractionOptions

if TYPE_CHECKING:
    from rarity_score.features.info import FeatureExtractor

__all__ = ["MAX_EXTRACTORS", "ShardJob", "extract_on_cluster", "worker_extractor"]

logger = logging.getLogger(__name__)

#: Networks a worker process keeps built (the most recently used ones): a session extracting
#: several feature spaces alternates between a few, and each may hold GPU memory.
MAX_EXTRACTORS = 4

_EXTRACTORS: OrderedDict[Hashable, FeatureExtractor] = OrderedDict()
_LOCK = threading.Lock()

#: A task: (job, shard index, (start, stop)) -> (the shard, whether the worker wrote it).
ShardTask = Callable[["ShardJob", int, tuple[int, int]], tuple[Shard, bool]]


@dataclass(frozen=True)
class ShardJob:
    """What every shard task of one extraction shares: the result of one task, which each worker
    running shards fetches from the worker holding it.

    Attributes:
        collection: the images (picklable; archives are reopened per process).
        extractor: a registry name, built on each worker, or the user's extractor object.
        options: the options as a worker runs them: no progress bar, the weights file as an
            absolute path, ``extractor`` cleared (it is the field above).
        cache: the feature cache with an absolute folder, or None (nothing is written).
        identity: (name, preprocessing, weights_id, dim) of the client's extractor: what a
            network built on a worker must match, or its features would not be these.
    """

    collection: ImageCollection
    extractor: str | FeatureExtractor
    options: ExtractionOptions
    cache: FeatureCache | None
    identity: tuple[str, str, str, int]


def worker_extractor(key: Hashable, build: Callable[[], FeatureExtractor]) -> FeatureExtractor:
    """The extractor of ``key`` in this process: built by ``build`` on first use, then kept
    (the :data:`MAX_EXTRACTORS` most recently used), since building a network per shard would
    cost more than extracting the shard."""
    with _LOCK:  # the threads of one worker build a network once, not once each
        model = _EXTRACTORS.get(key)
        if model is None:
            model = build()
            _EXTRACTORS[key] = model
            while len(_EXTRACTORS) > MAX_EXTRACTORS:
                _EXTRACTORS.popitem(last=False)
        else:
            _EXTRACTORS.move_to_end(key)
        return model


def extract_on_cluster(
    client: Any,
    task: ShardTask,
    job: ShardJob,
    todo: Sequence[tuple[int, tuple[int, int]]],
    *,
    n_done: int,
    progress: bool,
) -> Iterator[tuple[Shard, bool]]:
    """Run ``task`` for every shard of ``todo`` ((index, (start, stop))) on ``client``'s cluster,
    yielding ``(shard, written by the worker)`` as the tasks finish (any order); the progress
    bar counts images, ``n_done`` of them reused.

    Raises:
        Exception: the exception of the lowest failing shard, as the task raised it, once every
            shard before it has finished (the shards after it are cancelled).
    """
    from distributed import as_completed

    job_future = cluster.keep(client, job, prefix="shard-job")
    futures = {
        client.submit(task, job_future, index, span, pure=False): index for index, span in todo
    }
    collection = job.collection
    bar = progress_bar(
        len(collection),
        f"features {collection.source}",
        unit=" images",  # the rate reads "12.3 images/s"
        enabled=progress,
        initial=n_done,
    )
    waiting = set(futures.values())
    failed: dict[int, Any] = {}
    cancelled: set[int] = set()
    try:
        for future in as_completed(list(futures)):
            index = futures[future]
            waiting.discard(index)
            if future.status == "finished":
                shard, written = future.result()
                future.release()
                bar.update(shard.stop - shard.start)
                yield shard, written
            elif index not in cancelled:  # an error, or a task the cluster gave up
                failed[index] = future
                # Shards after the first failure cannot change which error is raised.
                later = {f: i for f, i in futures.items() if i > index and not f.done()}
                cancelled.update(later.values())
                client.cancel(list(later))
            if failed and not any(i < min(failed) for i in waiting):
                break
        if failed:
            _raise(failed[min(failed)])
    except BaseException:
        bar.leave = False  # an error message follows; a half bar above it only confuses
        raise
    finally:
        bar.close()
        client.cancel(list(futures))  # a client stopped early leaves no work behind
        job_future.release()


def _raise(future: Any) -> None:
    """Raise what ended ``future``'s task: its own exception, as raised on the worker."""
    if future.status == "error":
        future.result()  # re-raises the task's exception
    raise RuntimeError(
        f"the Dask cluster gave up the shard task {future.key} ({future.status}); run again: "
        "the shards already in the feature cache are reused"
    )
