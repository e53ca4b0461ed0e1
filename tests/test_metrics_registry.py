"""The metric registry drives the sweep and every output: a metric registered in a test appears in
Evaluation.columns, the CSV, the JSON, the summary and the printed summary without any change to
results.py or manifold.py; each reducer spec is built once; metric names have one check."""

from __future__ import annotations

import json

import numpy as np
import pytest
from checks import ALL_METRICS, ORACLE_METRICS

from rarity_score import RealManifold, defaults, evaluate, metrics
from rarity_score.engine.sweep import NeverSettles
from rarity_score.metrics import rarity as rarity_module
from rarity_score.metrics import sphere_counts as sphere_counts_module
from rarity_score.metrics.base import Column, Metric, ReducerSpec, SetValue
from rarity_score.metrics.rarity import SMALLEST_SPHERE
from rarity_score.results import Evaluation, format_summary

RNG = np.random.default_rng(3)
REAL = RNG.normal(size=(80, 4))
FAKE = np.concatenate([RNG.normal(size=(30, 4)), RNG.normal(size=(10, 4)) + 6.0, REAL[:3]])

# ---------------------------------------------------------------------- a toy metric


class TileCounter(NeverSettles):
    """How many tiles each generated sample was in (a stand-in reducer)."""

    def __init__(self, n_fake: int) -> None:
        self.count = np.zeros(n_fake, dtype=np.int64)

    def partial(self, tile):
        return tile.col_positions

    def absorb(self, partial) -> None:
        self.count[partial] += 1


BUILT: list[str] = []


def _make_counter(context):
    BUILT.append("tiles")
    return TileCounter(len(context.fake))


TILE_COUNTER = ReducerSpec(
    name="tile_counter",
    make=_make_counter,
    finish=lambda reducer, context: {"toy_tiles": reducer.count},
)


def _toy_compute(finished, context):
    doubled = 2.0 * finished["rarity"]
    doubled[finished["rarity"] == np.nanmax(finished["rarity"])] = np.inf  # some +inf to write
    per_sample = {"toy_double": doubled, "toy_tiles": finished["toy_tiles"]}
    return per_sample, int(finished["in_manifold"].sum())


TOY = Metric(
    name="toy",
    description="twice the rarity score, and a count kept per set",
    reducers=(SMALLEST_SPHERE, TILE_COUNTER),
    compute=_toy_compute,
    columns=(
        Column("toy_double", "double", "float", only_in_manifold=True, may_be_infinite=True),
        Column("toy_tiles", "tiles", "int"),
    ),
    values=(SetValue("toy_count", "toy count", ("toy",), "count"),),
)
# A second metric sharing the toy's reducer: the sweep must build it once for both.
TWIN = Metric(
    name="twin",
    description="the tile counts again",
    reducers=(TILE_COUNTER,),
    compute=lambda finished, context: ({"toy_tiles": finished["toy_tiles"]}, None),
    columns=(Column("toy_tiles", "tiles", "int"),),
)


@pytest.fixture
def toy():
    BUILT.clear()
    with metrics.using(TOY, TWIN):
        yield


def test_a_registered_metric_appears_in_every_output(toy):
    ev = evaluate(REAL, FAKE, 3, metrics=(*ORACLE_METRICS, "toy", "twin"), engine=None)
    assert ev.metrics[-2:] == ("toy", "twin")
    inside = ev.in_manifold
    assert list(ev.columns)[-2:] == ["toy_double", "toy_tiles"]
    assert np.array_equal(
        ev.toy_double[inside & np.isfinite(ev.toy_double)] / 2,
        ev.rarity[inside & np.isfinite(ev.toy_double)],
    )
    assert np.isposinf(ev.toy_double).any()
    assert ev.toy == int(inside.sum())  # the kept per-set value, by attribute
    # CSV: the columns come last, empty out of the manifold, inf written as inf.
    lines = ev.to_csv().splitlines()
    assert lines[0].endswith(",realism,toy_double,toy_tiles")
    outside = int(np.flatnonzero(~inside)[0])
    assert lines[1 + outside].split(",")[-2] == ""
    assert any(line.split(",")[-2] == "inf" for line in lines[1:])
    # JSON: nulls out of the manifold and the infinite flags.
    data = json.loads(ev.to_json())
    assert data["per_sample"]["toy_double"][outside] is None
    assert data["per_sample"]["toy_double_infinite"] == np.isposinf(ev.toy_double).tolist()
    assert "toy_double_infinite" in data["notes"]["encoding"]
    # Summary and printed summary.
    summary = ev.summary()
    assert summary["toy"] == int(inside.sum())
    assert "twin" not in summary  # no per-set values: no summary entry (as nearest)
    assert f"toy count {int(inside.sum())}" in " ".join(format_summary(summary).split())
    assert [value.key for value in metrics.values_of(["toy"])] == ["toy_count"]


def test_a_registered_metric_not_asked_is_absent(toy):
    ev = evaluate(REAL, FAKE, 3, metrics=("rarity",))
    assert ev.toy is None and ev.toy_double is None
    assert "toy_double" not in ev.to_csv().splitlines()[0]
    assert ev.summary()["toy"] is None
    assert "toy count" not in format_summary(ev.summary())
    assert BUILT == []  # its reducer was not built either


def test_each_spec_is_built_once(toy, monkeypatch):
    counts = {"spheres": 0, "sphere counts": 0}
    for module, cls, key in (
        (rarity_module, "SmallestSphere", "spheres"),
        (sphere_counts_module, "RealSphereCounts", "sphere counts"),
    ):
        original = getattr(module, cls).__init__

        def counting(self, *args, _original=original, _key=key, **kwargs):
            counts[_key] += 1
            _original(self, *args, **kwargs)

        monkeypatch.setattr(getattr(module, cls), "__init__", counting)
    ev = evaluate(REAL, FAKE, 3, metrics=("precision", "density", "coverage", "toy", "twin"))
    assert BUILT == ["tiles"]  # toy and twin share one
    assert counts == {"spheres": 1, "sphere counts": 1}  # rarity+precision+toy; density+coverage
    assert list(ev.per_sample_columns()) == [
        "in_manifold",
        "sphere_count",
        "toy_double",
        "toy_tiles",
    ]


def test_specs_of_lists_each_spec_once():
    chosen = [metrics.get(name) for name in ("rarity", "precision", "density", "coverage")]
    assert [spec.name for spec in metrics.specs_of(chosen)] == [
        "smallest_sphere",
        "real_sphere_counts",
    ]


def test_using_restores_and_refuses_clashes():
    before = metrics.REGISTRY
    with metrics.using(TOY):
        assert metrics.names()[-1] == "toy"
        with metrics.using(TOY):  # already registered: no second copy
            assert metrics.names().count("toy") == 1
    assert metrics.REGISTRY is before
    clash = Metric(name="rarity", description="", reducers=(), compute=TOY.compute)
    with pytest.raises(ValueError, match="rarity"), metrics.using(clash):
        pass


# ---------------------------------------------------------------------- the registry itself


def test_registry_order_and_lookup():
    assert metrics.names()[: len(ORACLE_METRICS)] == ORACLE_METRICS  # today's order first
    assert metrics.get("realism").name == "realism"
    with pytest.raises(ValueError, match="nope"):
        metrics.get("nope")
    assert not hasattr(defaults, "METRICS")  # the names have one home


def test_columns_of_keeps_the_table_order():
    assert [column.name for column in metrics.columns_of(ORACLE_METRICS)] == [
        "in_manifold",
        "rarity",
        "sphere_index",
        "sphere_count",
        "nearest_real_index",
        "nearest_real_distance",
        "realism",
    ]
    assert [column.name for column in metrics.columns_of(["coverage"])] == [
        "in_manifold",
        "sphere_count",
    ]


def test_check_names():
    assert metrics.check_names(None) == ALL_METRICS
    assert metrics.check_names("all") == ALL_METRICS
    assert metrics.check_names(" Nearest ,rarity,nearest") == ("rarity", "nearest")
    assert metrics.check_names(["realism", "precision"]) == ("precision", "realism")


@pytest.mark.parametrize("given", [["precision", "bogus", "rarty"], "bogus,rarty"])
def test_unknown_metric_message(given):
    with pytest.raises(ValueError) as info:
        metrics.check_names(given, option="--metrics")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("--metrics: unknown metrics bogus, rarty;")
    assert ", ".join(ALL_METRICS) in message


def test_no_metric_given():
    with pytest.raises(ValueError, match="no metric given"):
        metrics.check_names([" ", ""])


def test_evaluate_checks_names_before_any_work(monkeypatch):
    monkeypatch.setattr(RealManifold, "__init__", lambda *a, **k: pytest.fail("radii computed"))
    with pytest.raises(ValueError, match="bogus"):
        evaluate(REAL, FAKE, 3, metrics=["bogus"])


def test_evaluation_stores_nothing_derivable():
    ev = evaluate(REAL, FAKE, 3)
    assert [f for f in Evaluation.__dataclass_fields__] == [
        "k",
        "n_real",
        "dim",
        "metrics",
        "columns",
        "values",
        "extra",
    ]
    assert set(ev.values) == {"recall", "coverage"}  # the rest comes from the columns
    assert ev.n_fake == len(FAKE) and ev.precision == float(ev.in_manifold.mean())
    assert ev.density == float(ev.sphere_count.sum() / (3 * len(FAKE)))
