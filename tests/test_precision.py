"""The tensor-core precisions (``EngineOptions(precision="tf32" | "bf16")``): GEMM inputs rounded
to 10 / 7 mantissa bits, an error bound widened to match, and results still exact.

Without a GPU the torch backend applies the same rounding explicitly on CPU tensors, so the bound,
the re-decisions and the results are tested here through the functions CUDA runs; the CUDA test
at the end runs where a GPU is present.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

import numpy as np
import pytest
from checks import assert_matches_reference, engine_with
from cli_helpers import assert_one_line_error, run_cli
from datagen import dataset, dataset_cases, reference
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reference import knn_radii, reference_evaluation

from rarity_score import RealManifold, evaluate
from rarity_score._torch import tensor_core_matmul
from rarity_score.engine.backend import (
    NumpyBackend,
    SweepCounts,
    TorchBackend,
    input_unit_roundoff,
    round_mantissa,
    select_backend,
)
from rarity_score.engine.plan import plan_blocks
from rarity_score.engine.points import ABSOLUTE_ERROR, Frame, PointSet, error_coefficient
from rarity_score.options import EngineOptions, OptionError

torch = pytest.importorskip("torch")

REDUCED = ("tf32", "bf16")
BITS = {"tf32": 10, "bf16": 7}
CUDA = torch.cuda.is_available()


def _reference_rounding(x: np.ndarray, bits: int) -> np.ndarray:
    """Round to nearest, ties to even, to ``bits`` mantissa bits, in float64 arithmetic: the
    spacing is 2^(e - bits) for normal values, and 2^(-126 - bits) below 2^-126 (subnormals)."""
    x = x.astype(np.float64)
    _, exponent = np.frexp(x)  # x = m 2^e, 0.5 <= |m| < 1
    spacing = np.ldexp(1.0, np.maximum(exponent - 1 - bits, -126 - bits))
    return np.round(x / spacing) * spacing  # np.round rounds half to even


def _awkward_float32(rng: np.random.Generator, size: int) -> np.ndarray:
    """Random float32 values plus ties, subnormals, zeros, signs and the largest normal values."""
    normal = rng.normal(size=size) * np.exp2(rng.integers(-60, 60, size=size))
    tiny = rng.normal(size=64) * 2.0**-140
    bits = rng.integers(0, 2**31, size=64, dtype=np.int64).astype(np.uint32)
    ties = (bits & ~np.uint32(0xFFFF) | np.uint32(0x8000)).view(np.float32)  # exact bf16 ties
    halfway = (bits & ~np.uint32(0x1FFF) | np.uint32(0x1000)).view(np.float32)  # tf32 ties
    extremes = np.array([0.0, -0.0, 2.0**-149, -(2.0**-126), 1.0, -1.5, 2.0**100], np.float64)
    values = np.concatenate([normal, tiny, extremes]).astype(np.float32)
    return np.concatenate([values, ties, halfway])


@pytest.mark.parametrize("precision", REDUCED)
def test_rounding_is_to_nearest_even_at_the_modes_precision(precision):
    rng = np.random.default_rng(1)
    values = _awkward_float32(rng, 5000)
    values = values[np.isfinite(values)]
    got = round_mantissa(torch, torch.as_tensor(values.copy()), BITS[precision]).numpy()
    want = _reference_rounding(values, BITS[precision])
    np.testing.assert_array_equal(got.astype(np.float64), want)
    # Within the unit roundoff the bound assumes (normal values), and idempotent.
    normal = np.abs(values) >= 2.0**-126
    assert (
        np.abs(got - values)[normal] <= input_unit_roundoff(precision) * np.abs(values)[normal]
    ).all()
    again = round_mantissa(torch, torch.as_tensor(got.copy()), BITS[precision]).numpy()
    np.testing.assert_array_equal(again, got)
    if precision == "bf16":  # torch's own float32 -> bfloat16 conversion rounds to nearest even
        converted = torch.as_tensor(values).to(torch.bfloat16).to(torch.float32).numpy()
        np.testing.assert_array_equal(got, converted)


def test_the_backend_carries_its_precision():
    assert NumpyBackend().precision == "float32"
    assert NumpyBackend().unit_roundoff == 2.0**-24
    for precision, roundoff in (("float32", 2.0**-24), ("tf32", 2.0**-11), ("bf16", 2.0**-8)):
        backend = select_backend("torch", "cpu", precision=precision)
        assert isinstance(backend, TorchBackend)
        assert (backend.precision, backend.unit_roundoff) == (precision, roundoff)
        # Dask ships a backend by pickling it: the precision (and so the bound) must travel.
        shipped = pickle.loads(pickle.dumps(backend))
        assert (shipped.precision, str(shipped.device)) == (precision, "cpu")
        assert shipped.counts == SweepCounts()
    with pytest.raises(ValueError, match="precision"):
        TorchBackend("cpu", "fp8")


@pytest.mark.parametrize("backend", ["numpy", "auto"])
def test_numpy_refuses_a_reduced_precision_in_one_line(backend):
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(20, 3)), rng.normal(size=(10, 3))
    with pytest.raises(OptionError) as caught:
        evaluate(real, fake, 3, engine=EngineOptions(backend=backend, precision="tf32"))
    message = str(caught.value)
    assert caught.value.field == "precision"
    assert "\n" not in message
    assert "'tf32'" in message and "--backend torch" in message and "cuda" in message


def test_float32_is_unchanged():
    # The coefficient of the float32 bound is the one it always was, and float32 blocks go to
    # the GEMM as prepared (no rounding pass, no copy).
    u = 2.0**-24
    for dim in (1, 3, 512, 4096, 100_000):
        gamma = dim * u / (1 - dim * u)
        assert error_coefficient(dim) == error_coefficient(dim, "float32")
        assert error_coefficient(dim) == 1.25 * (gamma / 2 + 6 * u)
        assert error_coefficient(dim, "tf32") < error_coefficient(dim, "bf16")
        assert error_coefficient(dim, "float32") < error_coefficient(dim, "tf32")
    block = torch.randn(5, 7)
    assert TorchBackend("cpu").gemm_operand(block) is block
    array = block.numpy()
    assert NumpyBackend().gemm_operand(array) is array
    data = np.random.default_rng(3).normal(size=(40, 9))
    backend = NumpyBackend()
    points = PointSet.build(backend, data, Frame.fit(backend, data), cache_bytes=2**20)
    np.testing.assert_array_equal(
        points.block(0, 40), backend.prepare(data, np.arange(40), points.frame.center, 1.0)
    )


def test_tensor_core_settings_are_scoped_and_restored():
    # On CUDA the reduced modes allow TF32 GEMMs (and forbid bf16 reductions in less than
    # float32) for their own GEMMs only; CPU GEMMs stay true float32 (a user's bf16 oneDNN setting
    # would break the simulated rounding), and the caller's settings come back after.
    matmul, mkldnn = torch.backends.cuda.matmul, torch.backends.mkldnn.matmul
    if not hasattr(matmul, "fp32_precision"):
        pytest.skip("this torch has only the legacy allow_tf32 switch")
    saved = matmul.fp32_precision, mkldnn.fp32_precision
    saved_reduction = matmul.allow_bf16_reduced_precision_reduction
    try:
        matmul.fp32_precision, mkldnn.fp32_precision = "ieee", "bf16"
        matmul.allow_bf16_reduced_precision_reduction = True
        with tensor_core_matmul(torch):
            assert (matmul.fp32_precision, mkldnn.fp32_precision) == ("tf32", "ieee")
            assert not matmul.allow_bf16_reduced_precision_reduction
        assert (matmul.fp32_precision, mkldnn.fp32_precision) == ("ieee", "bf16")
        assert matmul.allow_bf16_reduced_precision_reduction
        with TorchBackend("cpu", "tf32").gemm_precision():
            assert (matmul.fp32_precision, mkldnn.fp32_precision) == ("ieee", "ieee")
        real, fake = _near_boundary_problem()
        got = evaluate(real, fake, 3, engine=EngineOptions(backend="torch", precision="tf32"))
        assert_matches_reference(got, reference_evaluation(real, fake, 3))
        assert (matmul.fp32_precision, mkldnn.fp32_precision) == ("ieee", "bf16")
    finally:
        matmul.fp32_precision, mkldnn.fp32_precision = saved
        matmul.allow_bf16_reduced_precision_reduction = saved_reduction


def _tile_and_exact(a: np.ndarray, b: np.ndarray, precision: str):
    """A tile of ``a`` against ``b`` as the sweep computes it in ``precision`` (torch, CPU), the
    exact squared distances in frame units, the widened bound, and the norm sums it is of."""
    backend = TorchBackend("cpu", precision)
    frame = Frame.fit(backend, torch.as_tensor(np.vstack([a, b])))
    pa = PointSet.build(backend, torch.as_tensor(a), frame)
    pb = PointSet.build(backend, torch.as_tensor(b), frame)
    tile = backend.sqdist_tile(pa.block(0, len(a)), pb.block(0, len(b)), pa.norms**2, pb.norms**2)
    exact = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) * frame.scale**2
    norm_sum = pa.norms[:, None] + pb.norms[None, :]
    return tile.numpy().astype(np.float64), exact, pa.error_bound(norm_sum), norm_sum


@given(
    precision=st.sampled_from(REDUCED),
    dim=st.integers(1, 300),
    rows=st.integers(1, 40),
    cols=st.integers(1, 40),
    offset=st.sampled_from([0.0, 1.0, 1e3, 1e6, -3e4]),
    scale_exponent=st.integers(-40, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_widened_bound_bounds_the_rounded_gemm(
    precision, dim, rows, cols, offset, scale_exponent, seed
):
    rng = np.random.default_rng(seed)
    scale = 2.0**scale_exponent
    a = (rng.normal(size=(rows, dim)) + offset) * scale
    b = (rng.normal(size=(cols, dim)) * rng.uniform(0.1, 3) + offset) * scale
    b[: min(rows, cols) // 2] = a[: min(rows, cols) // 2]  # duplicates: distance 0
    tile, exact, bound, _ = _tile_and_exact(a, b, precision)
    assert (np.abs(tile - exact) <= bound).all()


@given(
    precision=st.sampled_from(REDUCED),
    values=hnp.arrays(
        np.float64,
        st.tuples(st.integers(2, 12), st.integers(1, 24)),
        elements=st.floats(-1e4, 1e4, allow_nan=False, allow_subnormal=True),
    ),
)
def test_the_widened_bound_holds_for_arbitrary_vectors(precision, values):
    # Any values, repeated ones and exact zeros included; the rows are split into two sets.
    half = len(values) // 2
    tile, exact, bound, _ = _tile_and_exact(values[:half], values[half:], precision)
    assert (np.abs(tile - exact) <= bound).all()


@pytest.mark.parametrize("precision", REDUCED)
@pytest.mark.parametrize("dim", [1, 64, 4096])
def test_the_bound_is_tight_for_aligned_rounding_errors(precision, dim):
    # The worst case of the input rounding: every component just under a rounding tie (rounded
    # down by almost v), so the errors of a'.b' add up (the accumulation of equal products is
    # exact here). With a = b the exact distance is 0 and the tile about 4 v D, against the
    # bound's rounding term 1.25 v (|a| + |b|)^2 = 5 v D: 80 % of it, and within the bound.
    v = input_unit_roundoff(precision)
    x = np.float32(1.0 + v - 2.0**-23)
    a = np.full((1, dim), x, dtype=np.float64)
    data = np.vstack([a, -a])  # mean 0: the frame neither shifts nor scales
    tile, exact, bound, norm_sum = _tile_and_exact(data, data, precision)
    assert exact[0, 0] == 0.0
    assert tile[0, 0] <= bound[0, 0]
    assert tile[0, 0] >= 0.75 * (1.25 * v * norm_sum[0, 0] ** 2)


@pytest.mark.parametrize("precision", REDUCED)
def test_the_rounding_really_needs_the_wider_bound(precision):
    # Not vacuous: the rounded GEMM's errors break the float32 bound, and stay within a small
    # factor of the widened one (a far looser bound would re-decide much for nothing).
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(200, 64)) + 3.0, rng.normal(size=(150, 64)) + 3.0
    tile, exact, bound, norm_sum = _tile_and_exact(a, b, precision)
    error = np.abs(tile - exact)
    assert (error > error_coefficient(64) * norm_sum**2 + ABSOLUTE_ERROR).any()
    assert (error <= bound).all()
    assert error.max() > bound.max() * 0.02


def _same_results(got, want) -> None:
    """Bit for bit: every per-sample array and the whole JSON record."""
    got_columns, want_columns = got.per_sample_columns(), want.per_sample_columns()
    assert list(got_columns) == list(want_columns)
    for name, values in want_columns.items():
        np.testing.assert_array_equal(got_columns[name], values, err_msg=name)
    assert got.to_dict() == want.to_dict()


CASES = [pytest.param(name, k, id=f"{name}-k{k}") for name, k in dataset_cases()]


@pytest.mark.parametrize("precision", REDUCED)
@pytest.mark.parametrize(("name", "k"), CASES)
def test_every_metric_is_exact_under_reduced_precision(name, k, precision):
    # Ties, duplicates, radius-0 spheres, boundary ties, large offsets, k = N - 1: the float64
    # reference and the float32 run, exactly.
    ds = dataset(name)
    engine = engine_with(backend="torch", device="cpu", tile_size=32)
    base = RealManifold(ds.real, k, engine=engine)
    want = base.evaluate(ds.fake)
    manifold = RealManifold(ds.real, k, engine=replace(engine, precision=precision))
    got = manifold.evaluate(ds.fake)
    assert_matches_reference(got, reference(name, k))
    _same_results(got, want)
    np.testing.assert_array_equal(manifold.radii, base.radii)
    np.testing.assert_array_equal(manifold.nearest_other_distance, base.nearest_other_distance)


def _near_boundary_problem() -> tuple[np.ndarray, np.ndarray]:
    """Fakes at relative distances 1 +- 1e-6 .. 1e-3 of a real sphere's radius from its centre:
    inside the re-decision band of both precisions, on both sides of the boundary."""
    rng = np.random.default_rng(9)
    real = rng.normal(size=(120, 48)) + 20.0
    radii = knn_radii(real, 3)
    centres = rng.integers(0, len(real), 60)
    directions = rng.normal(size=(60, 48))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    factor = 1.0 + np.array([-1e-3, -1e-5, -1e-6, 1e-6, 1e-5, 1e-3])[np.arange(60) % 6]
    fake = real[centres] + directions * (radii[centres] * factor)[:, None]
    return real, np.vstack([fake, rng.normal(size=(30, 48)) * 2 + 20.0])


@pytest.mark.parametrize("precision", REDUCED)
def test_near_boundary_pairs_are_re_decided_and_counted(precision):
    real, fake = _near_boundary_problem()
    want = reference_evaluation(real, fake, 3)
    assert 0 < want.in_manifold.sum() < len(fake)
    engine = engine_with(backend="torch", device="cpu", tile_size=32)
    base_manifold = RealManifold(real, 3, engine=engine)
    base = base_manifold.evaluate(fake)
    manifold = RealManifold(real, 3, engine=replace(engine, precision=precision))
    got = manifold.evaluate(fake)
    assert_matches_reference(got, want)
    _same_results(got, base)
    counts, base_counts = manifold._backend.counts, base_manifold._backend.counts
    # The same tiles, more of them re-decided: the band is wider, and measured.
    assert counts.tile_entries == base_counts.tile_entries > 0
    assert counts.band_entries > base_counts.band_entries
    assert counts.redecided > base_counts.redecided
    assert counts.exact_pairs >= counts.redecided


def test_counts_add_up_and_reset():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(50, 4)), rng.normal(size=(30, 4))
    manifold = RealManifold(real, 3, engine=EngineOptions(tile_size=16))
    counts = manifold._backend.counts
    radii_entries = counts.tile_entries
    # The symmetric self-join computes the tiles on and above the diagonal, once each.
    sizes = [stop - start for start, stop in plan_blocks(50, 16)]
    assert radii_entries == sum(
        sizes[i] * sizes[j] for i in range(len(sizes)) for j in range(i, len(sizes))
    )
    manifold.evaluate(fake, metrics=("precision", "recall", "realism"))
    assert counts.tile_entries > radii_entries
    assert counts.exact_pairs >= counts.candidates + counts.band_entries > 0
    counts.reset()
    assert counts == SweepCounts() and counts.as_dict()["exact_pairs"] == 0


def test_leave_one_out_is_exact_under_bf16():
    ds = dataset("duplicates")
    engine = engine_with(backend="torch", device="cpu", tile_size=9)
    want = RealManifold(ds.real, 3, engine=engine).leave_one_out()
    got = RealManifold(ds.real, 3, engine=replace(engine, precision="bf16")).leave_one_out()
    _same_results(got, want)


def test_cli_bf16_writes_the_same_files_as_float32(capsys, tmp_path):
    ds = dataset("integer_ties")
    real, fake = tmp_path / "real.npy", tmp_path / "fake.npy"
    np.save(real, ds.real)
    np.save(fake, ds.fake)
    outputs = {}
    for precision in ("float32", "bf16"):
        out = tmp_path / precision
        out.mkdir()
        code, _, err = run_cli(
            capsys,
            "score",
            "--real",
            real,
            "--fake",
            fake,
            "--backend",
            "torch",
            "--precision",
            precision,
            "--out",
            out / "per_sample.csv",
            "--json",
            out / "summary.json",
            "--quiet",
        )
        assert code == 0, err
        outputs[precision] = out
    for name in ("per_sample.csv", "summary.json"):
        float32_bytes = (outputs["float32"] / name).read_bytes()
        bf16_bytes = (outputs["bf16"] / name).read_bytes()
        if name.endswith(".json"):  # the command line differs, and only it
            float32_json, bf16_json = json.loads(float32_bytes), json.loads(bf16_bytes)
            for record in (float32_json, bf16_json):
                record.get("settings", {}).pop("command", None)
                record.pop("command", None)
            assert bf16_json == float32_json
        else:
            assert bf16_bytes == float32_bytes


def test_cli_refuses_tf32_on_numpy_in_one_line(capsys, tmp_path):
    np.save(tmp_path / "real.npy", np.random.default_rng(0).normal(size=(20, 3)))
    code, out, err = run_cli(
        capsys,
        "score",
        "--real",
        tmp_path / "real.npy",
        "--fake",
        tmp_path / "real.npy",
        "--backend",
        "numpy",
        "--precision",
        "tf32",
    )
    assert_one_line_error(code, out, err, "precision 'tf32'", "--backend torch")


@pytest.mark.skipif(not CUDA, reason="no CUDA device")
@pytest.mark.parametrize("precision", REDUCED)
def test_cuda_tensor_cores_stay_exact(precision):
    # The real thing: TF32 / bf16 tensor-core GEMMs, their errors within the widened bound, and
    # results equal to the float32 run on the CPU and to the float64 reference.
    rng = np.random.default_rng(12)
    a, b = rng.normal(size=(512, 256)) + 4.0, rng.normal(size=(384, 256)) + 4.0
    backend = TorchBackend("cuda", precision)
    frame = Frame.fit(backend, torch.as_tensor(a, device="cuda"))
    pa = PointSet.build(backend, torch.as_tensor(a, device="cuda"), frame)
    pb = PointSet.build(backend, torch.as_tensor(b, device="cuda"), frame)
    tile = backend.sqdist_tile(pa.block(0, 512), pb.block(0, 384), pa.norms**2, pb.norms**2)
    exact = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) * frame.scale**2
    error = np.abs(tile.cpu().numpy().astype(np.float64) - exact)
    assert (error <= pa.error_bound(pa.norms[:, None] + pb.norms[None, :])).all()
    assert (error > error_coefficient(256) * (pa.norms[:, None] + pb.norms[None, :]) ** 2).any()
    real, fake = _near_boundary_problem()
    want = evaluate(real, fake, 3, engine=EngineOptions(backend="torch", device="cpu"))
    got = evaluate(
        real, fake, 3, engine=EngineOptions(backend="torch", device="cuda", precision=precision)
    )
    assert_matches_reference(got, reference_evaluation(real, fake, 3))
    _same_results(got, want)
