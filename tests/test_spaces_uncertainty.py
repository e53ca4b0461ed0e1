"""rarity spaces with --bootstrap / --subsample, and reference sizes (issue #12).

Scoring images: each space's results directory gets the bootstrap intervals (``<key>_ci`` in its
summary.json, its run.json's statistics) and, with a subsample, the very same rows of every set
in every space (the draw depends on the seed, the set's name and its size only), which the
spaces output shows. From results directories nothing is rescored: bootstrap, subsample and
stability are refused in one line, the intervals the directories hold are named; directories
scored against real sets of different sizes (one a random subset of the other) are compared
with a warning, logged and kept in run.json, printed, in summary.md and in the report; equal
sizes give none.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from rarity_score import compare_spaces, load_results, load_spaces
from rarity_score.compare import compare
from rarity_score.features.pipeline import FeatureSet
from rarity_score.options import ExtractionOptions, StatisticsOptions
from rarity_score.spaces.output import markdown, run_text
from rarity_score.uncertainty import subset_rows

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_helpers import write_images

pytest.importorskip("scipy")
pytest.importorskip("sklearn")

DIM = 4
N_REAL, N_FAKE = 80, 30
SIZE_WARNING = "the real sets differ in size"


def _flat(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------------- scoring images


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("images")
    write_images(root / "real", 24, size=10, seed=1)
    write_images(root / "fake", 12, size=10, seed=2, prefix="gen")
    return {"real": root / "real", "fake": root / "fake", "cache": root / "cache"}


def _score(images, out: Path, statistics: StatisticsOptions):
    return compare_spaces(
        {"pixels": "pixels", "pca": "pixels+pca4"},
        out,
        real=images["real"],
        fakes={"g": images["fake"]},
        k=3,
        extraction=ExtractionOptions(cache_dir=images["cache"], progress=False, input_size=8),
        statistics=statistics,
        report=False,
    )


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_scoring_with_bootstrap_gives_each_space_intervals(images, tmp_path):
    pytest.importorskip("torch")
    run = _score(images, tmp_path / "out", StatisticsOptions(bootstrap=100, level=0.9))
    for slug in ("pixels", "pca"):
        folder = run.path / "spaces" / slug
        summary = json.loads((folder / "summary.json").read_text())
        row = summary["sets"][0]
        low, high = row["rarity_mean_ci"]
        assert low <= row["rarity_mean"] <= high
        assert "fraction_in_manifold_ci" in row
        bootstrap = json.loads((folder / "run.json").read_text())["statistics"]["bootstrap"]
        assert (bootstrap["resamples"], bootstrap["level"]) == (100, 0.9)
        assert load_results(folder).summary[0]["rarity_mean_ci"] == [low, high]
    # The spaces output names the intervals each space's directory holds.
    assert [space["bootstrap"] for space in run.run["spaces"]] == [
        {"resamples": 100, "level": 0.9}
    ] * 2
    text = _flat(run_text(run.run, run.rows))
    assert "90 % bootstrap intervals (100 resamples) in its results directory" in text
    assert load_spaces(run.path).spaces[1].bootstrap == {"resamples": 100, "level": 0.9}
    assert run.run["warnings"] == []


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_subsample_draws_the_same_rows_in_every_space(images, tmp_path):
    pytest.importorskip("torch")
    run = _score(images, tmp_path / "out", StatisticsOptions(subsample=10, seed=3))
    pixels = load_results(run.path / "spaces" / "pixels")
    pca = load_results(run.path / "spaces" / "pca")
    real_names = sorted(p.name for p in images["real"].iterdir())
    fake_names = sorted(p.name for p in images["fake"].iterdir())
    expected_real = [real_names[i] for i in subset_rows(24, 10, 3, salt="real").tolist()]
    expected_fake = [fake_names[i] for i in subset_rows(12, 10, 3, salt="g").tolist()]
    for results in (pixels, pca):
        assert results.real_names == expected_real
        assert results.sets[0].names == expected_fake
        assert results.run["real"]["subsampled_from"] == 24
        assert results.run["sets"][0]["subsampled_from"] == 12
    item = load_spaces(run.path).sets[0]
    assert item.names == expected_fake and item.matched_by == "name"
    assert item.subsampled_from == 12
    # Shown where the sizes are.
    assert run.run["sets"][0]["subsampled_from"] == 12
    assert [space["n_real_subsampled_from"] for space in run.run["spaces"]] == [24, 24]
    text = _flat(run_text(run.run, run.rows))
    assert "Set g: 10 samples (a random subset of 12), matched by image name" in text
    assert "10 of 24 real samples, a random subset" in text
    assert "10 samples (a random subset of 12)" in markdown(run.rows, run.run)
    # The same draw again: the same rows (a rerun is identical).
    again = _score(images, tmp_path / "again", StatisticsOptions(subsample=10, seed=3))
    assert again.rows == run.rows


# ---------------------------------------------------------------------- results directories


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    real = rng.normal(size=(N_REAL, DIM))
    fake = 1.3 * rng.normal(size=(N_FAKE, DIM))
    q, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    return {
        "real": real,
        "fake": fake,
        "q": q,
        "real_names": [f"real_{i:03d}.png" for i in range(N_REAL)],
        "names": [f"gen_{i:03d}.png" for i in range(N_FAKE)],
    }


def _dir(data, out: Path, *, moved: bool = False, statistics=None, real_names=None) -> Path:
    real, fake = data["real"], data["fake"]
    if moved:
        real, fake = 2.0 * real @ data["q"] + 1.0, 2.0 * fake @ data["q"] + 1.0
    return compare(
        FeatureSet(real, real_names or data["real_names"]),
        {"s": FeatureSet(fake, data["names"])},
        out,
        k=3,
        statistics=statistics,
        report=False,
    ).path


def test_reference_sizes_that_differ_are_warned_and_shown(data, tmp_path, caplog):
    pytest.importorskip("matplotlib")
    whole = _dir(data, tmp_path / "whole")
    # The real set cut to 60 of its 80 samples; the generated set (30) is kept whole.
    part = _dir(data, tmp_path / "part", moved=True, statistics=StatisticsOptions(subsample=60))
    assert load_results(part).run["real"]["subsampled_from"] == N_REAL
    with caplog.at_level("WARNING"):
        run = compare_spaces({"A": whole, "B": part}, tmp_path / "out", report=True)
    said = [r.getMessage() for r in caplog.records if SIZE_WARNING in r.getMessage()]
    assert len(said) == 1
    assert "A: 80 in " in said[0] and "B: 60 of 80 in " in said[0]
    assert str(whole) in said[0] and str(part) in said[0]
    assert "comparable only at equal reference size" in said[0]
    assert run.run["warnings"] == said
    assert [s["n_real"] for s in run.run["spaces"]] == [80, 60]
    assert [s["n_real_subsampled_from"] for s in run.run["spaces"]] == [None, 80]
    # Printed, in summary.md, read back, in the report.
    text = _flat(run_text(run.run, run.rows))
    assert f"Warning: {SIZE_WARNING}" in text
    assert "60 of 80 real samples, a random subset" in text
    assert f"**warning**: {SIZE_WARNING}" in (run.path / "summary.md").read_text()
    loaded = load_spaces(run.path)
    assert loaded.warnings == said and loaded.spaces[1].n_real_subsampled_from == 80
    page = (run.path / "report" / "index.html").read_text()
    assert '<tr class="warning">' in page and SIZE_WARNING in page
    assert "of 80 (a random subset)" in page
    # The generated samples are the same: compared as usual.
    assert run.rows[0]["n"] == N_FAKE and run.run["sets"][0]["matched_by"] == "name"


def test_equal_reference_sizes_do_not_warn(data, tmp_path, caplog):
    pytest.importorskip("matplotlib")
    first = _dir(data, tmp_path / "a")
    second = _dir(data, tmp_path / "b", moved=True)
    with caplog.at_level("WARNING"):
        run = compare_spaces({"A": first, "B": second}, tmp_path / "out", report=True)
    assert not any(SIZE_WARNING in r.getMessage() for r in caplog.records)
    assert run.run["warnings"] == []
    assert "Warning" not in run_text(run.run, run.rows)
    page = (run.path / "report" / "index.html").read_text()
    assert 'class="warning"' not in page and SIZE_WARNING not in page
    assert run.rows[0]["spearman"] == 1.0


def test_real_sets_of_other_sizes_must_be_one_real_set(data, tmp_path):
    whole = _dir(data, tmp_path / "whole")
    # Fewer real samples, not a recorded subset: other real sets, refused as before.
    fewer = compare(
        FeatureSet(data["real"][:70], data["real_names"][:70]),
        {"s": FeatureSet(data["fake"], data["names"])},
        tmp_path / "fewer",
        k=3,
        report=False,
    ).path
    with pytest.raises(ValueError, match=r"the real set: 80 and 70 real samples"):
        compare_spaces([whole, fewer], tmp_path / "out", report=False)
    # A subset of another real set (its names not among the whole set's): refused.
    renamed = _dir(
        data,
        tmp_path / "renamed",
        statistics=StatisticsOptions(subsample=60),
        real_names=[f"other_{i:03d}.png" for i in range(N_REAL)],
    )
    with pytest.raises(ValueError, match=r"scored a subset of real samples not in the other's"):
        compare_spaces([whole, renamed], tmp_path / "out", report=False)
    assert not (tmp_path / "out").exists()


def test_bootstrap_of_results_directories_is_refused_and_their_intervals_shown(data, tmp_path):
    first = _dir(data, tmp_path / "a", statistics=StatisticsOptions(bootstrap=100))
    second = _dir(data, tmp_path / "b", moved=True)
    out = tmp_path / "out"
    for statistics, words in (
        (StatisticsOptions(bootstrap=100), r"bootstrap intervals \(--bootstrap\)"),
        (StatisticsOptions(subsample=20), r"a subsample \(--subsample\)"),
        (StatisticsOptions(stability=True), r"stability \(--stability\)"),
    ):
        with pytest.raises(ValueError, match=words + " need the spaces scored") as caught:
            compare_spaces([first, second], out, statistics=statistics, report=False)
        assert "\n" not in str(caught.value) and "--bootstrap B" in str(caught.value)
    assert not out.exists()
    # The defaults (what the CLI passes without the options) are taken.
    run = compare_spaces(
        {"A": first, "B": second}, out, statistics=StatisticsOptions(), report=False
    )
    assert [space["bootstrap"] for space in run.run["spaces"]] == [
        {"resamples": 100, "level": 0.95},
        None,
    ]
    text = _flat(run_text(run.run, run.rows))
    assert "Space A: unknown (precomputed features) (4-d, k = 3); 95 % bootstrap" in text
    assert "Space B: unknown (precomputed features) (4-d, k = 3)" in text
    assert text.count("bootstrap intervals") == 1
