"""Evaluation summaries and the CSV / JSON outputs (SPEC: out-of-manifold samples are missing,
never 0, never dropped; JSON has null, not NaN)."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from checks import ORACLE_METRICS

from rarity_score import Evaluation, __version__, defaults, evaluate
from rarity_score.results import format_summary, quantile_name

RNG = np.random.default_rng(1)
REAL = RNG.standard_normal((120, 6))
# Generated set: near-copies of reals (in), exact copies (realism +inf), far outliers (out).
FAKE = np.vstack(
    [
        REAL[:30] + 0.05 * RNG.standard_normal((30, 6)),
        REAL[30:33],
        RNG.standard_normal((10, 6)) + 8.0,
        RNG.standard_normal((20, 6)),
    ]
)


@pytest.fixture(scope="module")
def full() -> Evaluation:
    # The oracle's metrics by name: a metric registered later adds columns of its own.
    return evaluate(REAL, FAKE, k=3, metrics=ORACLE_METRICS)


def _strict_json(text: str):
    """json.loads that refuses NaN / Infinity tokens."""

    def refuse(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def _read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _hand_made(**changes) -> Evaluation:
    fields = {
        "k": 2,
        "n_real": 5,
        "n_fake": 4,
        "dim": 3,
        "metrics": ("rarity", "precision", "realism"),
        "rarity": np.array([0.5, np.nan, 1.25, np.nan]),
        "in_manifold": np.array([True, False, True, False]),
        "sphere_index": np.array([3, -1, 0, -1]),
        "realism": np.array([np.inf, 0.1, 2.0, np.nan]),
    }
    fields.update(changes)
    # precision is derived (the fraction in the manifold, 0.5 here); given, it is checked.
    return Evaluation.from_fields(**fields)


# ---------------------------------------------------------------------- fixture sanity


def test_fixture_has_both_kinds_of_samples(full):
    assert 0 < full.in_manifold.sum() < len(FAKE)
    assert np.isposinf(full.realism).any()


# ---------------------------------------------------------------------- summary


def test_summary_counts_and_statistics_over_in_manifold(full):
    s = full.summary()
    inside = full.rarity[full.in_manifold]
    assert s["k"] == 3 and s["n_real"] == len(REAL) and s["n_fake"] == len(FAKE) and s["dim"] == 6
    assert s["n_in_manifold"] == inside.size
    assert s["n_out_of_manifold"] == len(FAKE) - inside.size
    assert s["fraction_out_of_manifold"] == pytest.approx(1 - inside.size / len(FAKE))
    r = s["rarity"]
    assert r["n"] == inside.size
    assert r["mean"] == pytest.approx(inside.mean(), rel=1e-12)
    assert r["std"] == pytest.approx(inside.std(), rel=1e-12)
    assert r["min"] == inside.min() and r["max"] == inside.max()
    assert r["median"] == pytest.approx(np.median(inside), rel=1e-12)
    for q in defaults.QUANTILES:
        assert r[quantile_name(q)] == pytest.approx(np.quantile(inside, q), rel=1e-12)
    for name in ("precision", "recall", "density", "coverage"):
        assert s[name] == getattr(full, name)
    finite = full.realism[np.isfinite(full.realism)]
    assert s["realism"]["mean"] == pytest.approx(finite.mean(), rel=1e-12)
    assert s["realism"]["n_infinite"] == int(np.isposinf(full.realism).sum())


def test_summary_values_are_plain_python(full):
    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        else:
            assert value is None or type(value) in (int, float, str, bool), type(value)
            assert not (isinstance(value, float) and math.isnan(value))

    walk(full.summary())


def test_summary_with_nothing_in_the_manifold_has_none_not_nan():
    ev = _hand_made(
        rarity=np.full(4, np.nan),
        in_manifold=np.zeros(4, dtype=bool),
        sphere_index=np.full(4, -1),
        realism=np.full(4, np.nan),
        precision=0.0,
    )
    s = ev.summary()
    assert s["n_in_manifold"] == 0 and s["fraction_out_of_manifold"] == 1.0
    assert s["rarity"]["n"] == 0
    assert all(value is None for key, value in s["rarity"].items() if key != "n")
    assert s["realism"]["mean"] is None and s["realism"]["median"] is None
    _strict_json(ev.to_json())


def test_metrics_not_computed_are_none():
    ev = evaluate(REAL, FAKE, k=3, metrics=["rarity"])
    s = ev.summary()
    assert s["precision"] is None and s["recall"] is None and s["density"] is None
    assert s["coverage"] is None and s["realism"] is None
    assert s["rarity"]["n"] == int(ev.in_manifold.sum())


def test_nan_recall_becomes_none():
    ev = _hand_made(recall=float("nan"))
    assert ev.summary()["recall"] is None


def test_quantile_names():
    assert [quantile_name(q) for q in defaults.QUANTILES] == ["q10", "q25", "q50", "q75", "q90"]


# ---------------------------------------------------------------------- CSV


def test_csv_one_row_per_fake_and_empty_cells_out_of_manifold(full, tmp_path):
    path = full.write_csv(tmp_path / "scores.csv")
    rows = _read_csv(path)
    assert len(rows) == len(FAKE)
    assert [row["index"] for row in rows] == [str(i) for i in range(len(FAKE))]
    assert list(rows[0]) == [
        "index",
        "in_manifold",
        "rarity",
        "sphere_index",
        "sphere_count",
        "nearest_real_index",
        "nearest_real_distance",
        "realism",
    ]
    for i, row in enumerate(rows):
        if full.in_manifold[i]:
            assert row["in_manifold"] == "true"
            assert float(row["rarity"]) == full.rarity[i]  # repr round-trips exactly
            assert int(row["sphere_index"]) == full.sphere_index[i]
        else:
            assert row["in_manifold"] == "false"
            assert row["rarity"] == ""  # never "0"
            assert row["sphere_index"] == ""
        assert float(row["nearest_real_distance"]) == full.nearest_real_distance[i]
        assert int(row["nearest_real_index"]) == full.nearest_real_index[i]
        assert float(row["realism"]) == full.realism[i]  # "inf" reads back as inf
    assert any(row["rarity"] == "" for row in rows)
    assert not any(row["rarity"] in ("0", "0.0") for row in rows)


def test_csv_only_computed_columns_and_names(tmp_path):
    ev = evaluate(REAL, FAKE, k=3, metrics=["rarity"])
    names = [f"img_{i}.png" for i in range(len(FAKE))]
    rows = _read_csv(ev.write_csv(tmp_path / "s.csv", names=names))
    assert list(rows[0]) == ["index", "name", "in_manifold", "rarity", "sphere_index"]
    assert [row["name"] for row in rows] == names
    with pytest.raises(ValueError, match="names"):
        ev.write_csv(tmp_path / "t.csv", names=names[:-1])


def test_csv_float_formatting_round_trips():
    values = np.array([0.1, 1 / 3, 1e-300, 123456789.123456789, np.nextafter(1.0, 2.0)])
    ev = _hand_made(
        n_fake=5,
        rarity=values,
        in_manifold=np.ones(5, dtype=bool),
        sphere_index=np.arange(5),
        realism=None,
    )
    cells = [row["rarity"] for row in ev.per_sample_rows()]
    assert [float(cell) for cell in cells] == values.tolist()
    assert cells[0] == "0.1"


def test_csv_writer_is_atomic(full, tmp_path, monkeypatch):
    path = tmp_path / "scores.csv"
    path.write_text("previous run\n")
    monkeypatch.setattr(
        "rarity_score.io.atomic.os.replace", lambda a, b: (_ for _ in ()).throw(OSError("boom"))
    )
    with pytest.raises(OSError, match="boom"):
        full.write_csv(path)
    assert path.read_text() == "previous run\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]


# ---------------------------------------------------------------------- JSON


def test_json_is_strict_with_null_for_missing(full):
    data = _strict_json(full.to_json())
    table = data["per_sample"]
    assert len(table["rarity"]) == len(FAKE)
    for i in range(len(FAKE)):
        if full.in_manifold[i]:
            assert table["rarity"][i] == full.rarity[i]
            assert table["sphere_index"][i] == full.sphere_index[i]
        else:
            assert table["rarity"][i] is None
            assert table["sphere_index"][i] is None
        assert table["in_manifold"][i] is bool(full.in_manifold[i])
    infinite = np.isposinf(full.realism)
    assert table["realism_infinite"] == infinite.tolist()
    assert all(table["realism"][i] is None for i in np.flatnonzero(infinite))
    assert data["summary"]["realism"]["n_infinite"] == int(infinite.sum())


def test_json_hand_made_encoding():
    data = _strict_json(_hand_made().to_json())
    assert data["per_sample"]["rarity"] == [0.5, None, 1.25, None]
    assert data["per_sample"]["realism"] == [None, 0.1, 2.0, None]
    assert data["per_sample"]["realism_infinite"] == [True, False, False, False]
    assert data["format"] == "rarity-score/evaluation"
    assert "in-manifold" in data["notes"]["rarity"]


def test_write_json_settings_and_atomicity(full, tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("{}")
    extra = {"feature_extractor": "test", "real_features": tmp_path / "real.npy", "n": np.int64(3)}
    full.write_json(path, extra)
    data = _strict_json(path.read_text())
    settings = data["settings"]
    assert settings["k"] == 3 and settings["n_real"] == len(REAL) and settings["dim"] == 6
    assert settings["package_version"] == __version__
    assert settings["feature_extractor"] == "test"
    assert settings["real_features"] == str(tmp_path / "real.npy")
    assert settings["n"] == 3
    assert data["summary"] == _strict_json(json.dumps(full.summary()))
    assert "per_sample" not in data
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    with_rows = _strict_json(full.write_json(path, per_sample=True).read_text())
    assert len(with_rows["per_sample"]["in_manifold"]) == len(FAKE)


# ---------------------------------------------------------------------- text table


def test_format_summary_mentions_the_conventions(full):
    text = format_summary(full.summary(), {"real features": "real.npy"})
    s = full.summary()
    assert "real.npy" in text
    assert f"{s['n_out_of_manifold']} / {len(FAKE)}" in text
    assert f"over the {s['n_in_manifold']} in-manifold samples" in text
    for label in ("median", "q10", "q90", "precision", "recall", "density", "coverage"):
        assert label in text
    assert "nan" not in text.lower()


def test_format_summary_asked_but_missing_metric_is_na():
    text = format_summary(_hand_made(recall=float("nan"), metrics=("rarity", "recall")).summary())
    assert "recall" in text and "n/a" in text


# ---------------------------------------------------------------------- hand-made evaluations


def test_from_fields_checks_what_it_derives():
    with pytest.raises(ValueError, match="n_fake=5"):
        _hand_made(n_fake=5)
    with pytest.raises(ValueError, match="precision"):
        _hand_made(precision=0.75)  # two of four samples are in the manifold
    with pytest.raises(TypeError, match="bogus"):
        _hand_made(bogus=1)
    ev = _hand_made(n_fake=4, precision=0.5, recall=0.25)
    assert (ev.n_fake, ev.precision, ev.recall, ev.density) == (4, 0.5, None, None)
    assert ev.values == {"recall": 0.25}  # kept (recall was not asked: reported as None)


def test_evaluation_arrays_must_agree_in_length():
    with pytest.raises(ValueError, match="lengths"):
        Evaluation(
            k=1,
            n_real=2,
            dim=1,
            metrics=("rarity",),
            columns={"in_manifold": np.ones(2, bool), "rarity": np.ones(3)},
        )
    with pytest.raises(ValueError, match="in_manifold"):
        Evaluation(k=1, n_real=2, dim=1, metrics=(), columns={})


def test_unknown_attribute_is_an_attribute_error(full):
    with pytest.raises(AttributeError, match="rarty"):
        full.rarty  # noqa: B018
    import copy
    import pickle

    assert pickle.loads(pickle.dumps(full)).summary() == full.summary()
    assert copy.deepcopy(full).summary() == full.summary()
