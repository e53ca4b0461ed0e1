"""The typed option values of a run, each declared once, with defaults from :mod:`defaults`.

The command line builds each value once from its arguments (its argparse defaults are read from
these classes) and the API passes them whole: ``compare(..., extraction=ExtractionOptions(...),
engine=EngineOptions(...))``. No layer re-lists their fields. Each field is checked in
``__post_init__``, the one home of its check and its message.

:func:`on_device` is the one place that decides which device runs the extractor and which runs
the sweep when a user names one device.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, Union

from rarity_score import defaults

if TYPE_CHECKING:
    from rarity_score.features.info import FeatureExtractor

__all__ = [
    "CacheDir",
    "EngineOptions",
    "ExtractionOptions",
    "OptionError",
    "StatisticsOptions",
    "on_device",
]

#: Where extracted features are cached: None (the default folder, :func:`defaults.cache_dir`),
#: False (no cache) or a folder.
CacheDir = Union[str, "os.PathLike[str]", Literal[False], None]


class OptionError(ValueError):
    """A bad value of one option field; ``field`` names it, so that the command line can name
    the ``--option`` that set it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _positive(name: str, value: object, *, allow_none: bool = False, minimum: int = 1) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OptionError(name, f"{name} must be an integer of at least {minimum}, got {value!r}")


@dataclass(frozen=True)
class EngineOptions:
    """How the k-NN sweep runs. Results never depend on any of these (tested).

    Args:
        backend: "numpy", "torch", or "auto" (torch for torch tensors, numpy otherwise).
        device: torch device of the sweep ("cpu", "cuda", "cuda:1"); implies the torch backend.
        memory_budget: bytes one tile may use; each feature set in use also keeps up to this many
            bytes of float32 blocks for reuse, so the peak extra memory is about three budgets.
        tile_size: force the tile edge (for tests).
        progress: show a progress bar of the sweep on stderr (when it is a terminal).
        precision: arithmetic of the float32 tiles, one of ``defaults.PRECISIONS``: "float32"
            (default), or "tf32" / "bf16" for CUDA tensor cores (torch backend), whose wider
            rounding the error bound covers, so results stay exact (more entries re-decided).

    Where the sweep runs (this process or a Dask cluster) is :func:`rarity_score.cluster.use`.
    """

    backend: str = defaults.BACKEND
    device: str | None = None
    memory_budget: int = defaults.MEMORY_BUDGET
    tile_size: int | None = None
    progress: bool = False
    precision: str = defaults.PRECISION

    def __post_init__(self) -> None:
        if self.precision not in defaults.PRECISIONS:
            raise OptionError(
                "precision",
                f"unknown precision {self.precision!r}: use one of "
                f"{', '.join(defaults.PRECISIONS)}",
            )
        if self.backend not in defaults.BACKENDS:
            raise OptionError(
                "backend",
                f"unknown backend {self.backend!r}: use one of {', '.join(defaults.BACKENDS)}",
            )
        _positive("memory_budget", self.memory_budget)
        _positive("tile_size", self.tile_size, allow_none=True)


@dataclass(frozen=True)
class ExtractionOptions:
    """How images become features: everything extraction takes besides the images.

    ``extractor=None`` means the one recorded in the feature files given beside the images, else
    ``defaults.EXTRACTOR``. Features never depend on ``batch_size``, ``workers``, ``shard_size``
    or ``progress`` (tested).

    Attributes:
        extractor: a registry name (``rarity extractors`` lists them), a
            :class:`~rarity_score.features.info.FeatureExtractor` (e.g. from
            :func:`rarity_score.features.from_module`), or None (see above).
        device: torch device of the network: ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
        batch_size: images per forward pass.
        workers: DataLoader worker processes decoding images (0: in this process).
        weights: a local weights file for a named extractor (machines without internet).
        cache_dir: feature cache folder (:data:`CacheDir`): None, ``$RARITY_SCORE_CACHE`` or
            ``~/.cache/rarity-score``; False, no cache.
        strict: raise naming the unreadable images instead of skipping them.
        progress: show a progress bar with images/s on stderr.
        shard_size: images per cache shard; a killed run resumes from the last complete shard.
        input_size: input side for a named extractor that allows another one (the
            ``efficientnet-lite0`` layers; ``pixels``, whose dimension is 3 x side x side);
            part of its preprocessing, hence of the cache key.
    """

    extractor: str | FeatureExtractor | None = None
    device: str = "cpu"
    batch_size: int = defaults.BATCH_SIZE
    workers: int = defaults.WORKERS
    weights: str | os.PathLike[str] | None = None
    cache_dir: CacheDir = None
    strict: bool = False
    progress: bool = True
    shard_size: int = defaults.SHARD_SIZE
    input_size: int | None = None

    def __post_init__(self) -> None:
        _positive("batch_size", self.batch_size)
        _positive("workers", self.workers, minimum=0)
        _positive("shard_size", self.shard_size)
        _positive("input_size", self.input_size, allow_none=True)
        if self.extractor is None or isinstance(self.extractor, str):
            return
        if not (hasattr(self.extractor, "info") and hasattr(self.extractor, "preprocess")):
            raise TypeError(
                "expected an extractor name or a FeatureExtractor, got "
                f"{type(self.extractor).__name__}; wrap a torch module with "
                "rarity_score.features.from_module(module, name=...)"
            )
        if self.weights is not None or self.input_size is not None:
            # A user's network comes built: its weights and input size are part of it.
            raise ValueError(
                "weights= and input_size= apply to a named extractor; set them up in your own model"
            )


@dataclass(frozen=True)
class StatisticsOptions:
    """What a run adds to its point estimates, and which samples it scores.

    Args:
        bootstrap: percentile-bootstrap resamples of each generated set (0: no intervals; else
            at least ``defaults.MIN_RESAMPLES``). The per-sample values are computed once; each
            resample recomputes the summary from them, so no sweep is rerun. The real set and
            its k-NN spheres stay fixed: the intervals cover the draw of the generated samples.
        level: confidence level of the intervals, in (0, 1).
        seed: seed of every random draw (resamples, subsets); a run repeated is identical.
        subsample: score a random subset of this many samples of each set (the real set too);
            sets of at most this many samples are kept whole. None: every sample.
        stability: also re-score with the real set subsampled at
            ``defaults.STABILITY_FRACTIONS`` of its size, to show how the summary moves with N.
    """

    bootstrap: int = 0
    level: float = defaults.CI_LEVEL
    seed: int = defaults.SEED
    subsample: int | None = None
    stability: bool = False

    def __post_init__(self) -> None:
        _positive("bootstrap", self.bootstrap, minimum=0)
        if 0 < self.bootstrap < defaults.MIN_RESAMPLES:
            raise OptionError(
                "bootstrap",
                f"bootstrap needs at least {defaults.MIN_RESAMPLES} resamples for the tails of "
                f"an interval, got {self.bootstrap}",
            )
        level = self.level
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
            raise OptionError(
                "level", f"level must be a number between 0 and 1 (0.95 for 95 %), got {level!r}"
            )
        if self.bootstrap and self.bootstrap * (1 - level) < 5:
            # Each tail of the interval must rest on a few resamples, not on the extreme one.
            raise OptionError(
                "bootstrap",
                f"a {100 * level:g} % interval needs at least {math.ceil(5 / (1 - level))} "
                f"resamples (for a few beyond each end), got {self.bootstrap}",
            )
        _positive("seed", self.seed, minimum=0)
        _positive("subsample", self.subsample, allow_none=True, minimum=2)

    @property
    def intervals(self) -> bool:
        """Bootstrap intervals are asked for."""
        return self.bootstrap > 0


def on_device(
    device: str | None,
    *,
    extraction: ExtractionOptions | None = None,
    engine: EngineOptions | None = None,
) -> tuple[ExtractionOptions, EngineOptions]:
    """``extraction`` and ``engine`` (defaults when None) with one user-given ``device``: it runs
    the extractor (cpu when None) and the sweep, unless the engine's backend is numpy (then the
    sweep runs on the CPU in numpy and the device only runs the extractor).

    >>> extraction, engine = on_device("cuda:1")
    >>> extraction.device, engine.device
    ('cuda:1', 'cuda:1')
    >>> on_device("cuda", engine=EngineOptions(backend="numpy"))[1].device is None
    True
    """
    extraction = extraction or ExtractionOptions()
    engine = engine or EngineOptions()
    sweep_device = device if engine.backend != "numpy" else None
    return replace(extraction, device=device or "cpu"), replace(engine, device=sweep_device)
