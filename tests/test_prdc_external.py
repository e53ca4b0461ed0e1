"""Precision, recall, density and coverage against the independent `prdc` package (Naeem et al.).

prdc takes the (k+1)-th smallest distance of a row including the sample itself and uses strict
`<`, like us; it computes distances with scikit-learn's |a|^2 + |b|^2 - 2ab expansion, so only
generic continuous data (no ties, no duplicates, near the origin) is compared, where the two
conventions cannot disagree.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from checks import engine_with
from reference import reference_evaluation

from rarity_score import evaluate

prdc = pytest.importorskip("prdc")

CASES = [
    # (seed, n_real, n_fake, dim, k, fake scale)
    (10, 200, 150, 10, 3, 1.0),
    (11, 150, 220, 6, 5, 1.4),
    (12, 120, 90, 32, 1, 0.8),
    (13, 80, 80, 4, 10, 2.0),
]


def compute_prdc_quietly(real: np.ndarray, fake: np.ndarray, k: int) -> dict:
    # compute_prdc prints the set sizes on every call.
    with contextlib.redirect_stdout(io.StringIO()):
        return prdc.compute_prdc(real_features=real, fake_features=fake, nearest_k=k)


@pytest.mark.parametrize(("seed", "n_real", "n_fake", "dim", "k", "scale"), CASES)
def test_prdc_agrees(seed, n_real, n_fake, dim, k, scale, engine_options):
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n_real, dim))
    fake = scale * rng.standard_normal((n_fake, dim)) + 0.3
    expected = compute_prdc_quietly(real, fake, k)
    ev = evaluate(real, fake, k, engine=engine_with(engine_options))
    # Not vacuous: each metric is strictly between its extremes on this data.
    assert 0 < expected["precision"] < 1 and 0 < expected["coverage"] < 1
    for name in ("precision", "recall", "density", "coverage"):
        got = getattr(ev, name)
        assert got == pytest.approx(float(expected[name]), rel=1e-12, abs=0), name


@pytest.mark.parametrize(("seed", "n_real", "n_fake", "dim", "k", "scale"), CASES)
def test_oracle_agrees_with_prdc(seed, n_real, n_fake, dim, k, scale):
    # Checks the checker: our oracle and prdc were written independently.
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n_real, dim))
    fake = scale * rng.standard_normal((n_fake, dim)) + 0.3
    expected = compute_prdc_quietly(real, fake, k)
    ref = reference_evaluation(real, fake, k)
    for name in ("precision", "recall", "density", "coverage"):
        assert getattr(ref, name) == pytest.approx(float(expected[name]), rel=1e-12, abs=0), name
