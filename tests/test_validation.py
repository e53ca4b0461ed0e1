"""Bad input raises ValueError with a message that names the problem (SPEC: helpful messages)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rarity_score import RealManifold, evaluate, rarity_score
from rarity_score.options import EngineOptions

RNG = np.random.default_rng(0)
REAL = RNG.standard_normal((40, 5))
FAKE = RNG.standard_normal((30, 5))

# Every public entry point that takes real and fake sets.
ENTRY_POINTS = {
    "evaluate": lambda real, fake, **kw: evaluate(real, fake, **kw),
    "rarity_score": lambda real, fake, **kw: rarity_score(real, fake, **kw),
    "manifold": lambda real, fake, **kw: RealManifold(real, **kw).score(fake),
}


def assert_value_error(call, *patterns: str) -> None:
    """call() raises ValueError and its message matches every pattern (case-insensitive)."""
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, message, re.IGNORECASE), f"{pattern!r} not in {message!r}"


def with_bad_rows(x: np.ndarray, rows: list[int], values: list[float]) -> np.ndarray:
    """Copy of x with the given rows spoilt; some rows get several bad entries, which must still
    count as one bad row."""
    x = x.copy()
    for i, row in enumerate(rows):
        x[row, i % x.shape[1]] = values[i % len(values)]
        if i % 2:
            x[row, (i + 1) % x.shape[1]] = values[(i + 1) % len(values)]
    return x


NOT_2D = r"2-?d|two-dimensional|2 dimensions|ndim|matrix"


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize(
    ("real", "fake"),
    [
        pytest.param(REAL[:, 0], FAKE, id="real-1d"),
        pytest.param(REAL[None], FAKE, id="real-3d"),
        pytest.param(REAL, FAKE[:, 0], id="fake-1d"),
        pytest.param(REAL, FAKE.reshape(5, 6, 5), id="fake-3d"),
    ],
)
def test_not_two_dimensional(entry, real, fake):
    assert_value_error(lambda: ENTRY_POINTS[entry](real, fake, k=3), NOT_2D)


def test_scalar_input():
    assert_value_error(lambda: evaluate(np.float64(1.0), FAKE), NOT_2D)


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_feature_dimensions_differ(entry):
    fake = RNG.standard_normal((30, 7))
    # The message must give both dimensions, so the user sees which extractor is wrong.
    assert_value_error(lambda: ENTRY_POINTS[entry](REAL, fake, k=3), r"dim", r"\b5\b", r"\b7\b")


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_nan_rows_in_real(entry):
    real = with_bad_rows(REAL, [1, 4, 8, 15, 16, 23, 39], [np.nan])
    assert_value_error(lambda: ENTRY_POINTS[entry](real, FAKE, k=2), r"nan|finite", r"\b7\b")


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_inf_rows_in_fake(entry):
    fake = with_bad_rows(FAKE, [0, 11, 12, 29], [np.inf, -np.inf])
    assert_value_error(lambda: ENTRY_POINTS[entry](REAL, fake, k=2), r"inf|finite", r"\b4\b")


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("k", [0, -1])
def test_k_below_one(entry, k):
    assert_value_error(lambda: ENTRY_POINTS[entry](REAL, FAKE, k=k), r"\bk\b")


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("k", [40, 41, 1000])
def test_k_too_large_names_largest_valid_k(entry, k):
    # N = 40 real samples: the sample itself is excluded, so the largest valid k is 39.
    assert_value_error(lambda: ENTRY_POINTS[entry](REAL, FAKE, k=k), r"\bk\b", r"\b39\b")


def test_single_real_sample_has_no_valid_k():
    assert_value_error(lambda: evaluate(REAL[:1], FAKE, k=1), r"\bk\b|real")


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize(
    ("real", "fake"),
    [
        pytest.param(REAL[:0], FAKE, id="real"),
        pytest.param(REAL, FAKE[:0], id="fake"),
    ],
)
def test_empty_sets(entry, real, fake):
    assert_value_error(
        lambda: ENTRY_POINTS[entry](real, fake, k=3), r"empty|no (rows|samples)|zero|0 (rows|samp)"
    )


def test_unknown_backend():
    assert_value_error(
        lambda: evaluate(REAL, FAKE, engine=EngineOptions(backend="jax")), r"jax|backend"
    )


def test_unknown_metric():
    assert_value_error(lambda: evaluate(REAL, FAKE, metrics=("precision", "bogus")), r"bogus")


def test_torch_tensor_with_nan_rows():
    torch = pytest.importorskip("torch")
    real = torch.from_numpy(with_bad_rows(REAL, [3, 5, 7], [np.nan]))
    assert_value_error(lambda: evaluate(real, torch.from_numpy(FAKE), k=2), r"nan|finite", r"\b3\b")


def test_float16_overflow_to_inf_is_reported():
    # Features above 65504 become inf when stored as float16 (what 1e5 turns into); that must be
    # reported, not used.
    fake = FAKE.astype(np.float16)
    fake[[2, 6], 1] = np.float16(np.inf)
    assert_value_error(
        lambda: evaluate(REAL.astype(np.float16), fake, k=3), r"inf|finite", r"\b2\b"
    )


def test_one_k_check_names_the_set():
    from rarity_score._validation import check_k

    assert check_k(np.int64(3), 10) == 3 and check_k(5) == 5
    for bad in (0, -2, 2.0, True, "3"):
        assert_value_error(lambda bad=bad: check_k(bad, 10), r"^k must be a whole number")
    assert_value_error(
        lambda: check_k(3, 3, label="the real set"),
        r"^the real set \(3 samples\): k=3 needs at least k \+ 1 = 4 samples; choose k between "
        r"1 and 2$",
    )
    assert_value_error(lambda: check_k(1, 1, label="dataset 'a'"), r"^dataset 'a' \(1 sample\)")
    assert_value_error(
        lambda: RealManifold(REAL, k=40, label="real features r.npz"), r"real features r\.npz"
    )


def test_unknown_metric_is_one_line_listing_the_names():
    with pytest.raises(ValueError) as info:
        evaluate(REAL, FAKE, metrics=["bogus"])
    message = str(info.value)
    assert "\n" not in message and "rarity, precision, recall" in message
