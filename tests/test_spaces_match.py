"""Lining up results directories made in different feature spaces (rarity_score.spaces.match):
sets by name, samples by image name (whatever the order in each directory) or by row, and one
clear line for every mismatch."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from rarity_score.compare import compare, compare_datasets
from rarity_score.features.pipeline import FeatureSet
from rarity_score.results_dir import load_results
from rarity_score.spaces.match import align, is_placeholder

DIM = 4


def _data(seed: int = 0, n_real: int = 80, n_fake: int = 30):
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n_real, DIM))
    fakes = {
        "near": real[rng.integers(0, n_real, n_fake)] + 0.7 * rng.standard_normal((n_fake, DIM)),
        "wide": 2.0 * rng.standard_normal((n_fake + 5, DIM)),
    }
    return real, fakes


def _names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}_{i:03d}.png" for i in range(n)]


def _run(folder: Path, real, fakes, *, names: bool = True, real_names=None):
    """A results directory of ``compare`` on features, with image names when ``names``."""
    if names:
        real = FeatureSet(real, real_names or _names("real", len(real)))
        fakes = {
            name: value
            if isinstance(value, FeatureSet)
            else FeatureSet(value, _names(name, len(value)))
            for name, value in fakes.items()
        }
    return load_results(compare(real, fakes, folder, k=3, report=False).path)


def _warp(x: np.ndarray) -> np.ndarray:
    return np.tanh(x) + 0.2 * x**2


def test_samples_matched_by_name_across_shuffled_order(tmp_path):
    real, fakes = _data()
    first = _run(tmp_path / "a", real, fakes)
    rng = np.random.default_rng(1)
    order = rng.permutation(len(fakes["near"]))
    names = _names("near", len(fakes["near"]))
    shuffled = {
        "near": FeatureSet(_warp(fakes["near"])[order], [names[i] for i in order]),
        "wide": _warp(fakes["wide"]),
    }
    second = _run(tmp_path / "b", _warp(real), shuffled)
    aligned = align([("A", first), ("B", second)])
    assert aligned.spaces == ("A", "B")
    assert [s.name for s in aligned.sets] == ["near", "wide"]
    near = aligned.sets[0]
    assert near.matched_by == "name" and near.names == names
    assert near.rarity.shape == near.in_manifold.shape == near.nearest_real_index.shape == (30, 2)
    # Independently of the rows: look each name up in each directory's own arrays.
    by_name = {
        space: dict(zip(item.names, item.rarity.tolist(), strict=True))
        for space, item in (("A", first.sets[0]), ("B", second.sets[0]))
    }
    for i, name in enumerate(names):
        np.testing.assert_equal(near.rarity[i], [by_name["A"][name], by_name["B"][name]])
    assert np.array_equal(near.rows[1], np.argsort(order))
    nearest_b = second.sets[0].nearest_real_index
    assert np.array_equal(near.nearest_real_index[:, 1], nearest_b[np.argsort(order)])
    assert np.array_equal(near.in_manifold, np.isfinite(near.rarity))
    assert not near.in_manifold.all() and near.in_manifold.any()
    # percentiles are within each space: in the order of that space's rarity, from 0 to 100
    for s in range(2):
        inside = near.in_manifold[:, s]
        column, rarity = near.percentile[inside, s], near.rarity[inside, s]
        assert np.array_equal(np.isnan(near.percentile[:, s]), ~inside)
        assert column.min() >= 0 and column.max() <= 100
        assert np.array_equal(np.argsort(rarity, kind="stable"), np.argsort(column, kind="stable"))
    assert aligned.real_matched_by == "name"
    assert aligned.sets[1].matched_by == "name"


def test_samples_matched_by_row_without_names(tmp_path):
    real, fakes = _data()
    first = _run(tmp_path / "a", real, fakes, names=False)
    second = _run(tmp_path / "b", _warp(real), {k: _warp(v) for k, v in fakes.items()}, names=False)
    assert is_placeholder(first.sets[0].names)
    aligned = align([("A", first), ("B", second)])
    item = aligned.sets[0]
    assert item.matched_by == "row" and aligned.real_matched_by == "row"
    assert all(np.array_equal(rows, np.arange(30)) for rows in item.rows)
    np.testing.assert_equal(item.rarity[:, 1], second.sets[0].rarity)


def test_names_in_one_space_only_match_by_row_with_a_warning(tmp_path, caplog):
    real, fakes = _data()
    first = _run(tmp_path / "a", real, fakes)
    second = _run(tmp_path / "b", _warp(real), {k: _warp(v) for k, v in fakes.items()}, names=False)
    with caplog.at_level(logging.WARNING, logger="rarity_score.spaces.match"):
        aligned = align([("A", first), ("B", second)])
    assert aligned.sets[0].matched_by == "row" and aligned.real_matched_by == "row"
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # One per generated set, and one for the real set: each says what was matched by row and
    # which directory has no names.
    assert len(lines) == 3, lines
    assert "set 'near': samples matched by row" in lines[1] and str(tmp_path / "b") in lines[1]
    assert "names none of them" in lines[1]
    assert lines[0].startswith("the real set: matched by row")
    assert all("\n" not in line for line in lines)


def test_no_warning_when_no_space_names_its_samples(tmp_path, caplog):
    real, fakes = _data()
    first = _run(tmp_path / "a", real, fakes, names=False)
    second = _run(tmp_path / "b", _warp(real), {k: _warp(v) for k, v in fakes.items()}, names=False)
    with caplog.at_level(logging.WARNING, logger="rarity_score.spaces.match"):
        assert align([("A", first), ("B", second)]).sets[0].matched_by == "row"
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_duplicated_names_match_by_row(tmp_path):
    real, fakes = _data()
    names = _names("near", 30)
    names[5] = names[4]
    dup = {"near": FeatureSet(fakes["near"], names), "wide": fakes["wide"]}
    first = _run(tmp_path / "a", real, dup)
    second = _run(
        tmp_path / "b", _warp(real), {**dup, "near": FeatureSet(_warp(fakes["near"]), names)}
    )
    item = align([("A", first), ("B", second)]).sets[0]
    assert item.matched_by == "row"
    assert align([("A", first), ("B", second)]).sets[1].matched_by == "name"


def _fingerprinted(results, fingerprints):
    """``results`` as if its run had recorded these image fingerprints (set name -> value;
    "real" for the real set)."""
    from dataclasses import replace

    run = dict(results.run)
    run["real"] = {**run["real"], "images_fingerprint": fingerprints.get("real")}
    sets = [replace(item, images_fingerprint=fingerprints.get(item.name)) for item in results.sets]
    return replace(results, run=run, sets=sets)


def test_different_image_fingerprints_are_said_and_recorded(tmp_path, caplog):
    real, fakes = _data()
    first = _run(tmp_path / "a", real, fakes)
    second = _run(tmp_path / "b", _warp(real), {k: _warp(v) for k, v in fakes.items()})
    a = _fingerprinted(first, {"real": "r1", "near": "n1", "wide": "w1"})
    b = _fingerprinted(second, {"real": "r1", "near": "n2"})
    with caplog.at_level(logging.WARNING, logger="rarity_score.spaces.match"):
        aligned = align([("A", a), ("B", b)])
    assert aligned.real_same_images is True
    assert [(s.name, s.same_images) for s in aligned.sets] == [("near", False), ("wide", None)]
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1
    assert lines[0].startswith("set 'near': ") and str(tmp_path / "a") in lines[0]
    assert str(tmp_path / "b") in lines[0]
    assert "the spaces may not have scored the same images" in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rarity_score.spaces.match"):
        other = align([("A", a), ("B", _fingerprinted(second, {"real": "r2", "near": "n1"}))])
    assert other.real_same_images is False and other.sets[0].same_images is True
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1 and lines[0].startswith("the real set: ")


def test_different_names_are_one_clear_error(tmp_path):
    real, fakes = _data()
    first = _run(tmp_path / "a", real, fakes)
    renamed = _names("near", 30)
    renamed[7] = "stranger.png"
    second = _run(tmp_path / "b", real, {**fakes, "near": FeatureSet(fakes["near"], renamed)})
    with pytest.raises(ValueError) as caught:
        align([("A", first), ("B", second)])
    message = str(caught.value)
    assert "\n" not in message
    assert str(tmp_path / "a") in message and str(tmp_path / "b") in message
    assert "'near'" in message and "'near_007.png'" in message and "'stranger.png'" in message


def test_at_most_three_differing_names_are_shown(tmp_path):
    real, fakes = _data()
    first = _run(tmp_path / "a", real, fakes)
    second = _run(
        tmp_path / "b", real, {**fakes, "near": FeatureSet(fakes["near"], _names("x", 30))}
    )
    with pytest.raises(ValueError, match="and 27 more") as caught:
        align([("A", first), ("B", second)])
    assert str(caught.value).count("near_0") == 3


def test_different_counts_by_row_are_one_clear_error(tmp_path):
    real, fakes = _data()
    first = _run(tmp_path / "a", real, fakes, names=False)
    second = _run(tmp_path / "b", real, {**fakes, "near": fakes["near"][:-2]}, names=False)
    with pytest.raises(ValueError, match=r"30 and 28 samples, matched by row") as caught:
        align([("A", first), ("B", second)])
    assert str(tmp_path / "b") in str(caught.value) and "'near'" in str(caught.value)


def test_names_differing_by_row_are_refused(tmp_path):
    real, fakes = _data()
    names = _names("near", 30)
    names[1] = names[0]  # not unique: matched by row
    first = _run(tmp_path / "a", real, {**fakes, "near": FeatureSet(fakes["near"], names)})
    other = list(names)
    other[9] = "else.png"
    second = _run(tmp_path / "b", real, {**fakes, "near": FeatureSet(fakes["near"], other)})
    with pytest.raises(
        ValueError, match=r"names differ by row \(row 9: 'near_009.png' / 'else.png'\)"
    ):
        align([("A", first), ("B", second)])


def test_real_sets_must_agree(tmp_path):
    real, fakes = _data()
    first = _run(tmp_path / "a", real, fakes)
    fewer = _run(tmp_path / "b", real[:-1], fakes)
    with pytest.raises(ValueError, match=r"the real set: 80 and 79 real samples"):
        align([("A", first), ("B", fewer)])
    other_names = _names("real", 80)
    other_names[3] = "intruder.png"
    renamed = _run(tmp_path / "c", real, fakes, real_names=other_names)
    with pytest.raises(ValueError, match=r"the real set: only in the first: 'real_003.png'"):
        align([("A", first), ("C", renamed)])
    # The same real names in another order are the same real set.
    order = np.random.default_rng(2).permutation(80)
    names = _names("real", 80)
    permuted = _run(tmp_path / "d", real[order], fakes, real_names=[names[i] for i in order])
    assert align([("A", first), ("D", permuted)]).real_matched_by == "name"


def test_sets_missing_somewhere_are_left_out_with_one_warning(tmp_path, caplog):
    real, fakes = _data()
    first = _run(tmp_path / "a", real, fakes)
    second = _run(tmp_path / "b", real, {"wide": fakes["wide"], "extra": fakes["near"]})
    with caplog.at_level(logging.WARNING, logger="rarity_score"):
        aligned = align([("A", first), ("B", second)])
    assert [s.name for s in aligned.sets] == ["wide"]
    assert aligned.left_out == {"near": ("B",), "extra": ("A",)}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'near' (not in B)" in warnings[0].getMessage()
    assert "'extra' (not in A)" in warnings[0].getMessage()


def test_no_set_in_common_is_an_error(tmp_path):
    real, fakes = _data()
    first = _run(tmp_path / "a", real, {"near": fakes["near"]})
    second = _run(tmp_path / "b", real, {"wide": fakes["wide"]})
    with pytest.raises(ValueError, match="no set in common"):
        align([("A", first), ("B", second)])


def test_order_of_sets_is_the_first_directorys(tmp_path):
    real, fakes = _data()
    first = _run(tmp_path / "a", real, fakes)
    second = _run(tmp_path / "b", real, {"wide": fakes["wide"], "near": fakes["near"]})
    assert [s.name for s in align([("A", first), ("B", second)]).sets] == ["near", "wide"]
    assert [s.name for s in align([("B", second), ("A", first)]).sets] == ["wide", "near"]


def test_three_spaces_and_too_few(tmp_path):
    real, fakes = _data()
    runs = [
        _run(tmp_path / name, real * (i + 1), {k: v * (i + 1) for k, v in fakes.items()})
        for i, name in enumerate("abc")
    ]
    aligned = align(list(zip("ABC", runs, strict=True)))
    assert aligned.sets[0].rarity.shape == (30, 3)
    np.testing.assert_allclose(aligned.sets[0].rarity[:, 2], 3 * aligned.sets[0].rarity[:, 0])
    with pytest.raises(ValueError, match="at least two spaces"):
        align([("A", runs[0])])


def test_datasets_directories_are_refused(tmp_path):
    real, fakes = _data()
    first = _run(tmp_path / "a", real, fakes)
    datasets = load_results(compare_datasets(fakes, tmp_path / "d", k=3, report=False).path)
    with pytest.raises(ValueError, match="of rarity compare or rarity score --report"):
        align([("A", first), ("D", datasets)])


def test_flags_that_contradict_the_rarity_are_refused(tmp_path):
    real, fakes = _data()
    first = _run(tmp_path / "a", real, fakes)
    second = _run(tmp_path / "b", real, fakes)
    item = second.sets[0]
    item.columns["in_manifold"] = ~item.columns["in_manifold"]
    with pytest.raises(ValueError, match="in_manifold does not match"):
        align([("A", first), ("B", second)])
