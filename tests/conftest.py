"""Shared fixtures: the backends to run, and a fast, reproducible hypothesis profile."""

from __future__ import annotations

import importlib.util
import logging
import os

import pytest
from hypothesis import settings

# Property tests run on small problems; deadline=None because the first call of an example may
# import or warm up torch.
settings.register_profile("suite", max_examples=30, deadline=None)
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

HAVE_TORCH = importlib.util.find_spec("torch") is not None


def _cuda_available() -> bool:
    if not HAVE_TORCH:
        return False
    import torch

    return bool(torch.cuda.is_available())


# (backend, device) pairs every engine test runs under; CUDA only where a GPU is present.
BACKENDS = [
    pytest.param(("numpy", None), id="numpy"),
    pytest.param(
        ("torch", "cpu"),
        id="torch-cpu",
        marks=pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed"),
    ),
    # Listed only where a GPU is present, so CPU-only runs are not cluttered with skips.
    *([pytest.param(("torch", "cuda"), id="torch-cuda")] if _cuda_available() else []),
]


@pytest.fixture(params=BACKENDS)
def engine_options(request) -> dict:
    """Keyword arguments selecting one backend/device for evaluate, rarity_score, RealManifold."""
    backend, device = request.param
    return {"backend": backend, "device": device}


@pytest.fixture(autouse=True)
def _restore_package_logger():
    """The CLI's main() configures the package logger; leave it as found for the next test."""
    package_logger = logging.getLogger("rarity_score")
    handlers, level = list(package_logger.handlers), package_logger.level
    yield
    package_logger.handlers[:] = handlers
    package_logger.setLevel(level)


@pytest.fixture(autouse=True, scope="session")
def _suite_cache(tmp_path_factory):
    """The package's feature cache and journal in a folder of the suite's own: a test run never
    reads or writes the user's ~/.cache/rarity-score (tests that need another set their own)."""
    from rarity_score import defaults

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(defaults.CACHE_DIR_ENV, str(tmp_path_factory.mktemp("rarity-cache")))
        yield
