"""Authenticity (Alaa et al. 2022) against an independent float64 brute force, on planted exact
copies, near copies just inside and just outside the threshold, duplicates in the real set and
ties; asked alone; sharing the nearest-real reducer with ``nearest``.

The metric is one module plus its line in ``metrics.REGISTRY``; the tests of its outputs check
that the results directory and the report carry it without knowing it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from checks import assert_close, assert_exact, engine_with
from reference import authenticity_reference

from rarity_score import evaluate, metrics
from rarity_score.metrics import nearest as nearest_module
from rarity_score.metrics.authenticity import AUTHENTICITY
from rarity_score.results import format_summary

DIM = 5
SPACING = 100_000.0  # between the planted sites: no site's samples see another's


def _at(site: int, *offset: float) -> np.ndarray:
    point = np.zeros(DIM)
    point[0] = site * SPACING
    point[: len(offset)] += offset
    return point


def planted() -> tuple[np.ndarray, np.ndarray, dict[str, tuple[int, bool, float]]]:
    """Real and generated sets, and per named generated row the expected
    ``(row, authentic, ratio)``. Integer coordinates: every squared distance is an exact
    integer, so the float64 distances are the correctly rounded square roots, whatever the
    summation order."""
    rng = np.random.default_rng(42)
    real: list[np.ndarray] = []
    fake: list[np.ndarray] = []
    expected: dict[str, tuple[int, bool, float]] = {}

    def plant(name: str, point: np.ndarray, authentic: bool, ratio: float) -> None:
        expected[name] = (len(fake), authentic, ratio)
        fake.append(point)

    # Site 0: a random cloud with exact copies and near copies among its generated samples.
    cloud = _at(0) + np.round(rng.normal(size=(40, DIM)) * 10.0)
    real.extend(cloud)
    fake.extend(_at(0) + np.round(rng.normal(size=(25, DIM)) * 10.0))
    fake.extend(cloud[:4])  # exact copies
    fake.extend(cloud[4:8] + rng.choice([-1.0, 1.0], size=(4, DIM)) * (rng.random((4, DIM)) < 0.3))

    # Site 1: r_a and its nearest other real r_b at distance 10.
    real.extend([_at(1), _at(1, 10.0)])
    plant("inside", _at(1, -7.0, 7.0, 1.0), False, np.sqrt(99.0) / 10.0)  # d^2 = 99 < 100
    plant("on the threshold", _at(1, -6.0, 8.0), True, 1.0)  # d = 10 exactly: not closer
    plant("outside", _at(1, -6.0, 8.0, 1.0), True, np.sqrt(101.0) / 10.0)
    plant("exact copy", _at(1), False, 0.0)

    # Site 2: the same at distance 1000, where d^2 = 999999 against 10^6 differs by one part in
    # a million: float32 tiles cannot tell them apart, the exact distances must.
    real.extend([_at(2), _at(2, 1000.0)])
    plant("just inside", _at(2, -999.0, 44.0, 7.0, 3.0, 2.0), False, np.sqrt(999999.0) / 1000.0)
    plant("just on", _at(2, -600.0, 800.0), True, 1.0)
    plant("just outside", _at(2, -1000.0, 1.0), True, np.sqrt(1000001.0) / 1000.0)

    # Site 3: g is equidistant (2) from r1 and r2; r* is the smaller index, r1, whose nearest
    # other real is r2 at 4: unauthentic. r2's own nearest (r3, at 2) would have said authentic.
    real.extend([_at(3), _at(3, 4.0), _at(3, 4.0, 2.0)])
    plant("tie, first", _at(3, 2.0), False, 0.5)
    # Site 4: the same points with r2 listed first: now r* = r2, and g is authentic (2 < 2 fails).
    real.extend([_at(4, 4.0), _at(4, 4.0, 2.0), _at(4)])
    plant("tie, swapped", _at(4, 2.0), True, 1.0)

    # Site 5: r* has an exact duplicate in the real set (its nearest other distance is 0).
    real.extend([_at(5), _at(5), _at(5, 50.0)])
    plant("duplicate, off it", _at(5, 0.0, 3.0), True, np.inf)
    plant("duplicate, on it", _at(5), False, 0.0)  # 0 / 0: an exact copy, unauthentic
    return np.array(real), np.array(fake), expected


@pytest.fixture
def registered():
    """Authenticity is registered: every output carries it with nothing else changed."""
    assert metrics.get("authenticity") is AUTHENTICITY


def _check_against_brute_force(ev, real, fake) -> None:
    want = authenticity_reference(real, fake)
    assert_exact("authentic", ev.authentic, want.authentic, np.bool_)
    assert_close("authenticity_ratio", ev.authenticity_ratio, want.ratio)
    assert ev.authenticity == pytest.approx(want.authenticity, rel=1e-12)
    assert ev.summary()["authenticity"] == ev.authenticity


@pytest.mark.parametrize("tile_size", [None, 7])
def test_planted_cases_match_brute_force_and_expectations(registered, engine_options, tile_size):
    real, fake, expected = planted()
    ev = evaluate(real, fake, 3, engine=engine_with(engine_options, tile_size=tile_size))
    _check_against_brute_force(ev, real, fake)
    for name, (row, authentic, ratio) in expected.items():
        assert ev.authentic[row] == authentic, name
        assert ev.authenticity_ratio[row] == ratio, name  # exact: integer geometry
    # Not vacuous: the random site has both kinds, and exact copies were found.
    cloud = slice(0, 33)
    assert 0 < ev.authentic[cloud].sum() < 33
    assert not ev.authentic[25:29].any() and (ev.authenticity_ratio[25:29] == 0).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_continuous_data_matches_brute_force(registered, engine_options, seed):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(150, 6)) + 3.0
    fake = np.concatenate(
        [
            rng.normal(size=(60, 6)) + 3.0,
            real[:15] + 1e-3 * rng.normal(size=(15, 6)),  # near copies
            real[15:20],  # exact copies
        ]
    )
    ev = evaluate(real, fake, 3, metrics=("authenticity",), engine=engine_with(engine_options))
    _check_against_brute_force(ev, real, fake)
    assert not ev.authentic[60:].any()  # every copy is caught
    assert ev.authentic[:60].mean() > 0.5


def test_asking_only_for_authenticity(registered):
    real, fake, _ = planted()
    ev = evaluate(real, fake, 3, metrics=["authenticity"])
    assert ev.metrics == ("authenticity",)
    assert list(ev.per_sample_columns()) == ["in_manifold", "authentic", "authenticity_ratio"]
    assert ev.nearest_real_index is None  # nearest not asked: its columns not kept
    summary = ev.summary()
    assert summary["rarity"] is None and summary["precision"] is None
    assert summary["authenticity"] == pytest.approx(float(ev.authentic.mean()))


def test_nearest_and_authenticity_build_one_nearest_reducer(registered, monkeypatch):
    built: list[int] = []
    original = nearest_module.NearestReal.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(nearest_module.NearestReal, "__init__", counting)
    real, fake, _ = planted()
    ev = evaluate(real, fake, 3, metrics=("nearest", "authenticity"))
    assert len(built) == 1
    want = authenticity_reference(real, fake)
    assert_exact("nearest_real_index", ev.nearest_real_index, want.nearest_real_index)
    assert_close("nearest_real_distance", ev.nearest_real_distance, want.to_real)


def test_real_nearest_distance_is_the_manifolds(registered):
    real, fake, _ = planted()
    from rarity_score import RealManifold

    manifold = RealManifold(real, 3)
    want = authenticity_reference(real, fake)
    ev = manifold.evaluate(fake, metrics=("nearest", "authenticity"))
    own = manifold.nearest_other_distance[ev.nearest_real_index]
    assert_close("d(r*, NN)", own, want.real_nearest)


def test_outputs_carry_the_metric(registered):
    real, fake, expected = planted()
    ev = evaluate(real, fake, 3)
    assert "authenticity" in ev.metrics
    header = ev.to_csv().splitlines()[0].split(",")
    assert header[-2:] == ["authentic", "authenticity_ratio"]
    rows = ev.to_csv().splitlines()[1:]
    row, _, _ = expected["duplicate, off it"]
    assert rows[row].endswith(",true,inf")
    data = json.loads(ev.to_json())
    table = data["per_sample"]
    assert table["authenticity_ratio_infinite"][row] is True
    assert table["authenticity_ratio"][row] is None
    assert "authenticity_ratio_infinite" in data["notes"]["encoding"]
    assert data["summary"]["authenticity"] == ev.authenticity
    text = format_summary(ev.summary())
    assert f"authenticity {ev.authenticity:.6g}".replace(" ", "") in text.replace(" ", "")
    (gallery,) = metrics.galleries_of(["authenticity"])
    assert (gallery.column, gallery.value, gallery.order_by) == (
        "authentic",
        False,
        "authenticity_ratio",
    )
    row_keys = [value.key for value in metrics.values_of() if value.in_row]
    assert row_keys[-1] == "authenticity"


def test_not_in_leave_one_out(registered):
    real, _, _ = planted()
    from rarity_score import RealManifold

    loo = RealManifold(real, 3).leave_one_out()
    assert loo.metrics == ("rarity",) and loo.authentic is None and loo.authenticity is None
