"""The engine's own promises: the float32 error bound, rescaled frames, certificates and their
fallback, early stopping, and tile planning."""

from __future__ import annotations

import numpy as np
import pytest
from checks import assert_matches_reference, engine_with
from reference import knn_radii as reference_radii
from reference import reference_evaluation

from rarity_score import RealManifold, evaluate
from rarity_score.engine import exact as exact_module
from rarity_score.engine.backend import NumpyBackend
from rarity_score.engine.plan import plan_blocks, tile_edge
from rarity_score.engine.points import Frame, PointSet, error_coefficient


@pytest.mark.parametrize("dim", [3, 64, 1000])
@pytest.mark.parametrize("offset", [0.0, 50.0])
def test_float32_tiles_stay_within_the_error_bound(dim, offset):
    # The bound is what makes float32 decisions exact; measure the real error against it.
    rng = np.random.default_rng(dim)
    a = rng.normal(size=(300, dim)) + offset
    b = rng.normal(size=(200, dim)) * 2.0 + offset
    backend = NumpyBackend()
    frame = Frame.fit(backend, a)
    pa, pb = PointSet.build(backend, a, frame), PointSet.build(backend, b, frame)
    tile = backend.sqdist_tile(pa.block(0, 300), pb.block(0, 200), pa.norms**2, pb.norms**2)
    exact = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) * frame.scale**2
    bound = error_coefficient(dim) * (pa.norms[:, None] + pb.norms[None, :]) ** 2
    error = np.abs(tile.astype(np.float64) - exact)
    assert (error <= bound).all()
    # A bound far looser than the errors would send many pairs to float64 for nothing.
    assert error.max() > bound.max() * 1e-4


@pytest.mark.parametrize("magnitude", [1e-25, 1e25])
def test_extreme_magnitudes_are_rescaled_exactly(magnitude):
    # float32 squares of 1e-25 underflow and of 1e25 overflow: the frame must rescale.
    rng = np.random.default_rng(7)
    real = rng.normal(size=(80, 6))
    fake = np.concatenate(
        [real[:20] + 0.01 * rng.normal(size=(20, 6)), rng.normal(size=(40, 6)) * 3]
    )
    reference = reference_evaluation(real * magnitude, fake * magnitude, 3)
    got = evaluate(real * magnitude, fake * magnitude, 3, engine=engine_with(tile_size=32))
    assert Frame.fit(NumpyBackend(), real * magnitude).scale != 1.0
    assert 0 < reference.in_manifold.sum() < len(fake)
    assert_matches_reference(got, reference)


def _count_scans(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = exact_module._scan

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(exact_module, "_scan", counting)
    return calls


def test_many_exact_ties_fall_back_to_a_full_scan(monkeypatch):
    # On a lattice every point has many neighbours at exactly the same distance: more than the
    # candidates kept, so some answers need the exact scan, and must still be right.
    calls = _count_scans(monkeypatch)
    grid = np.stack(np.meshgrid(*[np.arange(4.0)] * 3), -1).reshape(-1, 3)
    fake = np.concatenate([grid[::5] + 0.5, grid[:10], [[10.0, 10.0, 10.0]]])
    for k in (1, 6, 7):
        assert_matches_reference(
            evaluate(grid, fake, k, engine=engine_with(tile_size=16)),
            reference_evaluation(grid, fake, k),
        )
    assert calls, "the lattice should have needed the fallback scan"


def test_generic_data_needs_no_fallback(monkeypatch):
    # Certificates must hold on ordinary continuous data, or the engine degrades to brute force.
    calls = _count_scans(monkeypatch)
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(400, 32)) + 5, rng.normal(size=(300, 32)) + 5
    evaluate(real, fake, 3, engine=engine_with(tile_size=64))
    assert not calls


def test_radii_match_the_reference_for_every_tile_size():
    rng = np.random.default_rng(11)
    real = np.concatenate([rng.normal(size=(150, 10)), rng.normal(size=(20, 10)) * 4])
    real[5] = real[6]  # a duplicate: radius may be 0 for k=1
    want = reference_radii(real, 4)
    for tile_size in (1, 7, 50, 170, None):
        got = RealManifold(real, 4, engine=engine_with(tile_size=tile_size)).radii
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


@pytest.fixture
def tiles(monkeypatch) -> list[int]:
    """One entry per float32 distance tile the numpy backend computes."""
    counted: list[int] = []
    original = NumpyBackend.sqdist_tile

    def counting(self, *args):
        counted.append(1)
        return original(self, *args)

    monkeypatch.setattr(NumpyBackend, "sqdist_tile", counting)
    return counted


def test_rarity_alone_stops_early(tiles):
    # Generated samples sitting on the smallest spheres' centres are settled by the first row
    # block: the rarity-only sweep must skip the rest, the full one must not.
    rng = np.random.default_rng(5)
    real = rng.normal(size=(200, 8))
    manifold = RealManifold(real, 3, engine=engine_with(tile_size=20))
    fake = real[np.argsort(manifold.radii)[:20]]
    tiles.clear()
    scores = manifold.score(fake)
    rarity_tiles = len(tiles)
    tiles.clear()
    full = manifold.evaluate(fake)
    assert rarity_tiles < len(tiles) / 5
    np.testing.assert_array_equal(scores, full.rarity)
    np.testing.assert_allclose(scores, reference_evaluation(real, fake, 3).rarity, rtol=1e-12)


def test_blocks_cover_the_range_once():
    for n, edge in [(1, 5), (10, 3), (10, 10), (10000, 3007), (7, 100)]:
        blocks = plan_blocks(n, edge)
        covered = np.concatenate([np.arange(a, b) for a, b in blocks])
        np.testing.assert_array_equal(covered, np.arange(n))
        assert max(b - a for a, b in blocks) <= edge


def test_tile_edge_follows_the_budget():
    assert tile_edge(2**20) < tile_edge(2**28) < tile_edge(2**32)
    assert tile_edge(2**28, tile_size=17) == 17
    with pytest.raises(ValueError, match="tile_size"):
        tile_edge(2**28, tile_size=0)
    with pytest.raises(ValueError, match="memory_budget"):
        tile_edge(1000)


@pytest.mark.parametrize("tile_size", [None, 9])
def test_leave_one_out_rarity_matches_brute_force(tile_size, engine_options):
    # Each sample against the others' spheres; radii of the full set; strict membership.
    rng = np.random.default_rng(13)
    data = np.concatenate([rng.normal(size=(60, 5)), rng.normal(size=(15, 5)) * 3])
    data[3] = data[4]  # duplicates: each is inside the other's sphere at distance 0
    k = 3
    radii = reference_radii(data, k)
    distance = np.sqrt(((data[:, None] - data[None]) ** 2).sum(-1))
    inside = distance < radii[:, None]  # [sphere j, sample i]
    np.fill_diagonal(inside, False)
    want = np.array(
        [radii[inside[:, i]].min() if inside[:, i].any() else np.nan for i in range(75)]
    )
    first = [
        int(np.flatnonzero(inside[:, i] & (radii == want[i])).min()) if inside[:, i].any() else -1
        for i in range(75)
    ]
    got = RealManifold(
        data, k, engine=engine_with(engine_options, tile_size=tile_size)
    ).leave_one_out()
    assert 0 < np.isnan(want).sum() < 75
    np.testing.assert_allclose(got.rarity, want, rtol=1e-12)
    np.testing.assert_array_equal(got.sphere_index, first)
    np.testing.assert_array_equal(got.in_manifold, ~np.isnan(want))
    assert got.extra["method"] == "leave-one-out"


@pytest.mark.parametrize("k", [1, 3])
def test_clusters_below_float32_normal_range_are_decided_exactly(k):
    # Distances of 1e-22 within a set spread over ~1: their float32 squares are subnormal, where
    # rounding is absolute, not relative; such entries must go to the float64 re-decision.
    rng = np.random.default_rng(21)
    real = np.concatenate([rng.normal(size=(30, 4)), 1e-22 * rng.normal(size=(20, 4))])
    fake = np.concatenate([rng.normal(size=(20, 4)), 1e-22 * rng.normal(size=(40, 4)) * 1.5])
    reference = reference_evaluation(real, fake, k)
    assert 0 < reference.in_manifold[20:].sum() < 40
    assert_matches_reference(evaluate(real, fake, k, engine=engine_with(tile_size=16)), reference)


def test_realism_with_tiny_spheres():
    # 1 / rad^2 of spheres of radius 1e-23 overflows float32: the weights are rescaled exactly.
    rng = np.random.default_rng(8)
    real, fake = 1e-23 * rng.normal(size=(60, 5)), 1e-23 * rng.normal(size=(30, 5))
    assert_matches_reference(evaluate(real, fake, 3), reference_evaluation(real, fake, 3))


def test_features_beyond_float32_reach_are_refused():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(40, 8)), rng.normal(size=(5, 8))
    fake[0] = 1e20
    with pytest.raises(ValueError, match="1e18 times"):
        evaluate(real, fake, 3)


def test_torch_low_precision_settings_are_overridden_and_restored():
    # Users may allow TF32 / bf16 GEMMs (newer torch: fp32_precision); the float32 error bound
    # needs true float32, and reading the legacy flag then raises: neither may break a run.
    torch = pytest.importorskip("torch")
    matmul = torch.backends.cuda.matmul
    if not hasattr(matmul, "fp32_precision"):
        pytest.skip("this torch has only the legacy allow_tf32 switch")
    saved = (matmul.fp32_precision, torch.backends.mkldnn.matmul.fp32_precision)
    try:
        matmul.fp32_precision = "tf32"
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"
        rng = np.random.default_rng(4)
        real, fake = rng.normal(size=(60, 16)), rng.normal(size=(30, 16))
        got = evaluate(
            torch.as_tensor(real), torch.as_tensor(fake), 3, engine=engine_with(backend="torch")
        )
        assert_matches_reference(got, reference_evaluation(real, fake, 3))
        assert (matmul.fp32_precision, torch.backends.mkldnn.matmul.fp32_precision) == (
            "tf32",
            "bf16",
        )
    finally:
        matmul.fp32_precision, torch.backends.mkldnn.matmul.fp32_precision = saved


def test_knn_distances_gives_every_rank_of_one_sweep(tiles):
    # Rank 1 (the nearest other sample) and rank k come from the same selection: no extra tile.
    rng = np.random.default_rng(17)
    data = np.concatenate([rng.normal(size=(90, 6)), rng.normal(size=(10, 6)) * 5])
    data[7] = data[8]  # a duplicate: both have nearest-other distance exactly 0
    backend = NumpyBackend()
    points = PointSet.build(backend, data, Frame.fit(backend, data))
    both = exact_module.knn_distances(points, (1, 4), 16)
    with_both = len(tiles)
    tiles.clear()
    alone = exact_module.knn_radii(points, 4, 16)
    assert with_both == len(tiles)
    np.testing.assert_array_equal(both[1], alone)
    np.testing.assert_allclose(both[0], reference_radii(data, 1), rtol=1e-12, atol=0)
    assert both[0][7] == both[0][8] == 0.0
    with pytest.raises(ValueError, match="ranks"):
        exact_module.knn_distances(points, (), 16)


@pytest.mark.parametrize("tile_size", [None, 5])
def test_nearest_other_distance_matches_brute_force(tile_size, engine_options):
    rng = np.random.default_rng(19)
    data = np.concatenate([rng.normal(size=(50, 3)), np.round(rng.normal(size=(20, 3)))])
    data[3] = data[40]
    manifold = RealManifold(data, 3, engine=engine_with(engine_options, tile_size=tile_size))
    got = manifold.nearest_other_distance
    np.testing.assert_allclose(got, reference_radii(data, 1), rtol=1e-12, atol=0)
    assert got[3] == got[40] == 0.0
    assert not got.flags.writeable and not manifold.radii.flags.writeable
    k1 = RealManifold(data, 1, engine=engine_with(engine_options, tile_size=tile_size))
    np.testing.assert_array_equal(k1.nearest_other_distance, k1.radii)
