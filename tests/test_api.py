"""The public entry points agree with each other, metric subsets, torch inputs, Evaluation."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from checks import (
    ALL_METRICS,
    METRIC_FIELDS,
    assert_close,
    assert_exact,
    assert_matches_reference,
    engine_with,
)
from datagen import dataset, reference
from reference import reference_evaluation

from rarity_score import Evaluation, RealManifold, evaluate, rarity_score

NAMES = ["gaussian", "duplicates", "integer_ties"]


@pytest.mark.parametrize("name", NAMES)
def test_manifold_score_equals_rarity_score(name, engine_options):
    ds = dataset(name)
    manifold = RealManifold(ds.real, 3, engine=engine_with(engine_options))
    assert_close(
        "score",
        manifold.score(ds.fake),
        rarity_score(ds.real, ds.fake, 3, engine=engine_with(engine_options)),
    )
    assert_close("score", manifold.score(ds.fake), reference(name, 3).rarity)


@pytest.mark.parametrize("name", NAMES)
def test_manifold_evaluate_equals_evaluate(name, engine_options):
    ds = dataset(name)
    ev = RealManifold(ds.real, 3, engine=engine_with(engine_options)).evaluate(ds.fake)
    assert isinstance(ev, Evaluation)
    assert_matches_reference(ev, reference(name, 3))


def test_manifold_is_reusable(engine_options):
    # One manifold, several fake sets: each answer is that of a fresh computation.
    ds = dataset("integer_ties")
    manifold = RealManifold(ds.real, 3, engine=engine_with(engine_options))
    for part in (ds.fake[:10], ds.fake[10:], ds.fake):
        ref = reference_evaluation(ds.real, part, 3)
        assert_matches_reference(manifold.evaluate(part), ref)
        assert_close("score", manifold.score(part), ref.rarity)


@pytest.mark.parametrize("metric", ALL_METRICS)
def test_single_metric_subset(metric, engine_options):
    # Asking for fewer metrics must not change the rarity decisions, and must leave the rest None.
    ds = dataset("duplicates")
    full = evaluate(ds.real, ds.fake, 2, engine=engine_with(engine_options))
    ev = evaluate(ds.real, ds.fake, 2, metrics=(metric,), engine=engine_with(engine_options))
    assert_exact("in_manifold", ev.in_manifold, full.in_manifold)
    assert_exact("sphere_index", ev.sphere_index, full.sphere_index)
    assert_close("rarity", ev.rarity, full.rarity)
    assert_matches_reference(ev, reference("duplicates", 2), metrics=(metric,))
    for other, fields in METRIC_FIELDS.items():
        if other != metric:
            assert all(getattr(ev, f) is None for f in fields), f"{other} computed unasked"


def test_default_metrics_are_all(engine_options):
    ds = dataset("gaussian")
    ev = evaluate(ds.real, ds.fake, engine=engine_with(engine_options))
    assert ev.k == 3  # the paper's default
    assert set(ev.metrics) == set(ALL_METRICS)
    assert_matches_reference(ev, reference("gaussian", 3))


@pytest.mark.parametrize("dtype_name", ["float16", "float32", "float64"])
def test_torch_tensor_inputs(dtype_name):
    torch = pytest.importorskip("torch")
    ds = dataset("integer_ties")  # small integers: exact in every float dtype
    dtype = getattr(torch, dtype_name)
    real = torch.from_numpy(ds.real).to(dtype)
    fake = torch.from_numpy(ds.fake).to(dtype)
    ev = evaluate(real, fake, 3)  # backend "auto" picks torch for tensors
    assert_matches_reference(ev, reference("integer_ties", 3))
    assert_close("rarity", rarity_score(real, fake, 3), reference("integer_ties", 3).rarity)
    manifold = RealManifold(real, 3)
    assert isinstance(manifold.radii, np.ndarray)
    assert_close("radii", manifold.radii, reference("integer_ties", 3).radii)


def test_torch_float32_tensor_values_are_used_exactly():
    # A float32 tensor of continuous data is scored as its exact values upcast to float64.
    torch = pytest.importorskip("torch")
    ds = dataset("embedded")
    real32, fake32 = ds.real.astype(np.float32), ds.fake.astype(np.float32)
    ev = evaluate(torch.from_numpy(real32), torch.from_numpy(fake32), 3)
    assert_matches_reference(ev, reference_evaluation(real32, fake32, 3))


def test_inputs_are_not_modified(engine_options):
    ds = dataset("offset_tiny")
    real, fake = ds.real.copy(), ds.fake.copy()
    evaluate(real, fake, 3, engine=engine_with(engine_options))
    assert np.array_equal(real, ds.real) and np.array_equal(fake, ds.fake)


def test_evaluation_is_frozen():
    ds = dataset("gaussian")
    ev = evaluate(ds.real, ds.fake, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.k = 4


def test_summary_counts_out_of_manifold_and_uses_in_manifold_only(engine_options):
    ds = dataset("gaussian")
    ref = reference("gaussian", 3)
    summary = evaluate(ds.real, ds.fake, 3, engine=engine_with(engine_options)).summary()
    inside = ref.rarity[ref.in_manifold]
    n_out = int((~ref.in_manifold).sum())
    assert 0 < n_out < ref.n_fake  # both kinds present, so NaN handling matters
    assert summary["n_out_of_manifold"] == n_out
    assert summary["n_in_manifold"] == ref.n_fake - n_out
    assert summary["fraction_out_of_manifold"] == pytest.approx(n_out / ref.n_fake, rel=1e-12)
    stats = summary["rarity"]
    assert stats["n"] == inside.size
    expected = {
        "mean": inside.mean(),
        "median": np.median(inside),
        "min": inside.min(),
        "max": inside.max(),
        "q10": np.quantile(inside, 0.1),
        "q90": np.quantile(inside, 0.9),
    }
    for key, value in expected.items():
        assert stats[key] == pytest.approx(value, rel=1e-9), key
    assert summary["realism"]["n_infinite"] == int(np.isposinf(ref.realism).sum())


def test_to_dict_is_strict_json_with_nulls_for_out_of_manifold():
    ds = dataset("gaussian")
    ref = reference("gaussian", 3)
    data = evaluate(ds.real, ds.fake, 3).to_dict()
    json.dumps(data, allow_nan=False)  # no NaN / Infinity tokens
    rarity = data["per_sample"]["rarity"]
    assert len(rarity) == ref.n_fake  # out-of-manifold samples are not dropped
    assert [value is None for value in rarity] == (~ref.in_manifold).tolist()
    assert data["per_sample"]["realism_infinite"] == np.isposinf(ref.realism).tolist()


def test_non_contiguous_inputs(engine_options):
    # Strided and Fortran-ordered views must be read as the values they show.
    ds = dataset("duplicates")
    wide = np.zeros((ds.real.shape[0], 2 * ds.real.shape[1]))
    wide[:, ::2] = ds.real
    real_view = wide[:, ::2]
    fake_fortran = np.asfortranarray(ds.fake)
    ev = evaluate(real_view, fake_fortran, 2, engine=engine_with(engine_options, tile_size=7))
    assert_matches_reference(ev, reference("duplicates", 2))


BARS: list[_Recorder] = []


class _Recorder:
    """Stands in for the progress bar: records what the sweep reports."""

    def __init__(self, total, description, *, unit, enabled, initial=0):
        self.total, self.description, self.enabled, self.done = total, description, enabled, 0
        self.closed = False
        BARS.append(self)

    def update(self, n=1):
        self.done += n

    def close(self):
        self.closed = True


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_bars_of_the_sweeps(monkeypatch, terminal):
    import rarity_score.manifold as manifold_module
    from rarity_score.options import EngineOptions

    BARS.clear()
    monkeypatch.setattr(manifold_module, "progress_bar", _Recorder)
    monkeypatch.setattr(manifold_module.sys.stderr, "isatty", lambda: terminal, raising=False)
    ds = dataset("gaussian")
    quiet = evaluate(ds.real, ds.fake, 3, engine=EngineOptions(tile_size=16))
    assert BARS == []  # off by default
    shown = evaluate(ds.real, ds.fake, 3, engine=EngineOptions(tile_size=16, progress=True))
    assert_matches_reference(shown, reference("gaussian", 3))
    assert_close("rarity", shown.rarity, quiet.rarity)
    if not terminal:
        assert BARS == []  # never drawn into a file or a pipe
        return
    descriptions = [bar.description for bar in BARS]
    assert descriptions == ["k-NN radii", "k-NN radii (generated)", "k-NN sweep"]
    for bar in BARS:
        assert bar.done == bar.total > 1 and bar.closed


def test_engine_must_be_engine_options():
    ds = dataset("gaussian")
    with pytest.raises(TypeError, match="EngineOptions"):
        evaluate(ds.real, ds.fake, 3, engine={"backend": "numpy"})
