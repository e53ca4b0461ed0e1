"""The one table of defaults shared by the Python API and the command line."""

from __future__ import annotations

import os
from pathlib import Path

#: Neighbourhood size of the k-NN spheres (the paper and the official code use 3).
K: int = 3

#: Memory, in bytes, that one tile of the sweep may use (distance block plus its masks).
#: Tiles are sized from it; results never depend on it.
MEMORY_BUDGET: int = 256 * 2**20

#: Array library that runs the sweep: "auto" picks torch for torch tensors, numpy otherwise.
BACKEND: str = "auto"

#: The sweep's array libraries.
BACKENDS: tuple[str, ...] = ("auto", "numpy", "torch")

#: Arithmetic of the float32 distance tiles. "float32" (the default) uses true float32 GEMMs;
#: "tf32" and "bf16" let CUDA tensor cores round the inputs (torch backend): the error bound is
#: widened to that rounding, so results stay exact and only more entries are re-decided.
PRECISION: str = "float32"

#: The tile arithmetics (see :data:`PRECISION`).
PRECISIONS: tuple[str, ...] = ("float32", "tf32", "bf16")

#: Quantiles reported in summaries, over in-manifold samples.
QUANTILES: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)

# ---------------------------------------------------------------------- uncertainty and sample size

#: Confidence level of the bootstrap intervals (``--ci``).
CI_LEVEL: float = 0.95

#: Seed of every random draw of a run (bootstrap resamples, ``--subsample``, ``--stability``):
#: fixed, so that a run repeated gives the same intervals; ``--seed`` changes it.
SEED: int = 0

#: Fewest bootstrap resamples accepted: fewer make the tails of a 95 % percentile interval
#: rest on a handful of resamples.
MIN_RESAMPLES: int = 100

#: Fewest samples a set needs for bootstrap intervals: below it, resamples only shuffle a
#: handful of values and the interval would look more precise than it is.
MIN_BOOTSTRAP_SAMPLES: int = 10

#: The fractions of the real set that ``--stability`` re-scores with (1.0 is the run itself).
STABILITY_FRACTIONS: tuple[float, ...] = (0.25, 0.5, 1.0)

# ---------------------------------------------------------------------- images -> features

#: Feature extractor for image inputs: the paper's space (VGG16 fc2 after its ReLU, 4096-d).
EXTRACTOR: str = "vgg16-fc2"

#: Images per forward pass of the extractor. Features never depend on it (tested).
BATCH_SIZE: int = 64

#: DataLoader worker processes that decode and preprocess images (0: in the main process).
#: Features never depend on it. Worth raising on a GPU, where decoding becomes the bottleneck.
WORKERS: int = 0

#: Images per shard of a long extraction: a killed run loses at most one shard's work. Each shard
#: is a small .npz in the cache (512 x 4096 float32 = 8 MiB for vgg16-fc2).
SHARD_SIZE: int = 512

#: Environment variable naming the feature cache folder.
CACHE_DIR_ENV: str = "RARITY_SCORE_CACHE"


def cache_dir() -> Path:
    """The feature cache folder: ``$RARITY_SCORE_CACHE`` when set (``~`` expanded), otherwise
    ``~/.cache/rarity-score`` (``$XDG_CACHE_HOME/rarity-score`` when that is set).

    Read when called, not at import, so that setting the variable later still counts.
    """
    configured = os.environ.get(CACHE_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "rarity-score"
