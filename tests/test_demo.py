"""The offline demo (``rarity demo``, docs/demo.md): its data functions, and the paper's findings
measured by the same pipeline as ``make demo`` at a reduced size; its comparison of feature
spaces and its filter example, checked against the files it wrote.

The orderings asserted are those measured (docs/demo.md lists the numbers); no threshold is a
magic number of the scores themselves.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from rarity_score import defaults
from rarity_score.demo import (
    DEMO_EXTRACTOR,
    DEMO_MARKER,
    SPACES,
    DemoConfig,
    balanced_subset,
    check_demo_dir,
    digits_to_mnist,
    fit_digit_model,
    from_logits,
    kmeans,
    run_demo,
    sample_digits,
    to_logits,
    truncate,
)
from rarity_score.demo.findings import check_comparison, findings, spaces_findings
from rarity_score.options import ExtractionOptions

#: Extraction as the tests run it: quiet (the cache is the demo's own, under its output folder).
QUIET = ExtractionOptions(progress=False)


def read_summary(results_dir: Path) -> list[dict]:
    """The summary rows as written (``summary.json``), not as the run returned them: a results
    directory's ``sets``, or a spaces output's list of rows."""
    summary = json.loads((Path(results_dir) / "summary.json").read_text())
    return summary["sets"] if isinstance(summary, dict) else summary


def read_summary_json(results_dir: Path) -> dict:
    """``summary.json`` as written: its ``sets``, ``comparisons`` and ``stability``."""
    return json.loads((Path(results_dir) / "summary.json").read_text())


# ---------------------------------------------------------------------- pure functions


def _toy_model(temperature: float = 1.0):
    rng = np.random.default_rng(4)
    images = rng.uniform(0, 255, size=(90, 8, 8))
    return fit_digit_model(
        images, np.arange(90) % 3, n_components=6, cluster_size=10, temperature=temperature
    )


def test_digits_to_mnist_format_and_polarity():
    sklearn = pytest.importorskip("sklearn.datasets")
    digits = sklearn.load_digits()
    out = digits_to_mnist(digits.images[:50])
    assert out.shape == (50, 28, 28) and out.dtype == np.uint8
    # Ink high on a black frame, like MNIST: the 4-pixel border outside the 20x20 box is empty
    # on at least two opposite sides, and the ink reaches full intensity.
    assert out[:, :, :2].max() == 0 and out[:, :2, :].max() == 0
    assert out.max() == 255 and np.median(out) == 0
    # Centred by centre of mass, as MNIST was made (within a pixel).
    rows = np.arange(28)
    for image in out.astype(float):
        centre = (rows @ image.sum(axis=1) / image.sum(), rows @ image.sum(axis=0) / image.sum())
        assert np.allclose(centre, 13.5, atol=1.0)


def test_balanced_subset_is_balanced_and_deterministic():
    labels = np.repeat(np.arange(10), 50)
    chosen = balanced_subset(labels, 120)
    assert len(set(chosen.tolist())) == 120
    assert np.bincount(labels[chosen]).tolist() == [12] * 10
    assert np.array_equal(chosen, balanced_subset(labels, 120))
    assert np.array_equal(balanced_subset(labels, 10_000), np.arange(500))


def test_logits_round_trip():
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    assert np.array_equal(from_logits(to_logits(pixels)).reshape(1, 16, 16), pixels)


def test_kmeans_is_deterministic_and_separates_clusters():
    rng = np.random.default_rng(0)
    points = np.vstack([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2))])
    labels = kmeans(points, 2, seed=1)
    assert np.array_equal(labels, kmeans(points, 2, seed=1))
    assert len(set(labels[:20])) == 1 and len(set(labels[20:])) == 1 and labels[0] != labels[-1]


def test_model_sampling_is_deterministic_and_truncation_pulls_to_the_mean():
    model = _toy_model()
    a, la = sample_digits(model, 40, psi=1.0, seed=7)
    b, lb = sample_digits(model, 40, psi=1.0, seed=7)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, sample_digits(model, 40, psi=1.0, seed=8)[0])
    # psi = 0 gives each sample's component mean; lower psi is closer to it, in logit space.
    zero, lz = sample_digits(model, 40, psi=0.0, seed=7)
    assert np.array_equal(lz, la)
    centres = to_logits(zero)
    gaps = [
        np.linalg.norm(to_logits(sample_digits(model, 40, psi=psi, seed=7)[0]) - centres)
        for psi in (1.0, 0.7, 0.4)
    ]
    assert gaps[0] > gaps[1] > gaps[2]
    assert set(np.unique(la)) <= set(model.labels.tolist())


def test_truncate_and_config_validation():
    assert truncate(np.array([4.0]), 0.25, mean=2.0).tolist() == [2.5]
    with pytest.raises(ValueError, match="psi"):
        truncate(np.zeros(2), 1.5)
    with pytest.raises(ValueError):
        DemoConfig(psi=(1.0, 1.0))
    with pytest.raises(ValueError):
        DemoConfig(samples_per_level=0)
    with pytest.raises(ValueError, match="bootstrap"):
        DemoConfig(bootstrap=10)  # fewer resamples than an interval's tails need
    statistics = DemoConfig(bootstrap=0, seed=3).statistics(subsample=50)
    assert (statistics.bootstrap, statistics.seed, statistics.subsample) == (0, 3, 50)
    assert DemoConfig().statistics().subsample is None  # truncation: every sample


def test_check_demo_dir(tmp_path):
    assert check_demo_dir(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(ValueError, match="not an earlier demo output"):
        check_demo_dir(tmp_path)
    (tmp_path / DEMO_MARKER).write_text("{}")
    assert check_demo_dir(tmp_path) == tmp_path
    # The marker is no licence to delete: a file of someone else's among the images is refused.
    level = tmp_path / "images" / "psi1.0"
    level.mkdir(parents=True)
    (level / "00000_digit3.png").write_bytes(b"png")
    assert check_demo_dir(tmp_path) == tmp_path
    (level / "holiday.jpg").write_bytes(b"jpg")
    with pytest.raises(ValueError, match=r"holiday\.jpg was not written by the demo"):
        check_demo_dir(tmp_path)
    assert (level / "holiday.jpg").exists()
    (level / "holiday.jpg").unlink()
    # A linked image folder is refused, not followed: the demo would rewrite PNG files there.
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    (elsewhere / "99999_digit1.png").write_bytes(b"png")
    (tmp_path / "images" / "psi0.7").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ValueError, match=r"psi0\.7 was not written by the demo"):
        check_demo_dir(tmp_path)
    assert (elsewhere / "99999_digit1.png").exists()
    (tmp_path / "images" / "psi0.7").unlink()
    images = tmp_path / "images"
    images.rename(tmp_path / "images-moved")
    images.symlink_to(tmp_path / "images-moved", target_is_directory=True)
    with pytest.raises(ValueError, match="is a symbolic link"):
        check_demo_dir(tmp_path)
    images.unlink()
    (tmp_path / "images-moved").rename(images)
    # The demo's own list of MNIST images is rewritten; a file of that name it did not write
    # is refused, and another output kind in one of its folders is refused before the work.
    (images / "mnist-subset.txt").write_text("mnist/00000_digit3.png\n")
    assert check_demo_dir(tmp_path) == tmp_path
    (images / "mnist-subset.txt").write_text("my notes\n")
    with pytest.raises(ValueError, match=r"mnist-subset\.txt was not written by the demo"):
        check_demo_dir(tmp_path)
    assert (images / "mnist-subset.txt").read_text() == "my notes\n"


@pytest.mark.parametrize(
    ("folder", "message"),
    [
        ("truncation", "not a results directory"),
        ("spaces", "not a results directory"),
        ("per-space/pixels", "not a results directory"),
        ("per-space", r"per-space/notes\.txt was not written by the demo"),
        ("rarest", "notes.txt"),
    ],
)
def test_check_demo_dir_refuses_foreign_files_where_a_part_writes(tmp_path, folder, message):
    """Each folder the demo replaces whole is checked up front, before the long work, as its
    writer checks it: a file the demo did not write is refused, and left where it is."""
    (tmp_path / DEMO_MARKER).write_text("{}")
    (tmp_path / folder).mkdir(parents=True)
    (tmp_path / folder / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=message):
        check_demo_dir(tmp_path)
    with pytest.raises(ValueError, match=message):
        run_demo(tmp_path, DemoConfig(), extraction=QUIET)
    assert (tmp_path / folder / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([DEMO_MARKER, folder.split("/")[0]])


@pytest.mark.parametrize("name", ["demo", "demo.data", "demo.model", "demo.findings"])
def test_the_demo_modules_keep_their_examples(name):
    # tests/test_docstrings.py runs them; this says which of the demo's modules must have some.
    module = importlib.import_module(f"rarity_score.{name}")
    assert any(test.examples for test in doctest.DocTestFinder().find(module))


def test_defaults_come_from_the_one_table(tmp_path):
    """The demo declares no k, batch size, device or workers of its own: k is defaults.K and the
    extraction options come whole from the caller (ExtractionOptions' defaults)."""
    from rarity_score.demo.run import _demo_extraction

    assert DemoConfig().k == defaults.K
    parameters = set(inspect.signature(run_demo).parameters)
    assert {"extraction", "engine"} <= parameters
    assert not parameters & {"k", "batch_size", "workers", "device", "cache_dir", "progress"}
    options = _demo_extraction(ExtractionOptions(), DemoConfig(input_size=48), tmp_path)
    assert options.batch_size == defaults.BATCH_SIZE and options.workers == defaults.WORKERS
    assert (options.extractor, options.input_size) == (DEMO_EXTRACTOR, 48)
    assert options.cache_dir == tmp_path / "cache"  # the demo's own cache by default
    assert (
        _demo_extraction(ExtractionOptions(cache_dir=False), DemoConfig(), tmp_path).cache_dir
        is False
    )
    kept = _demo_extraction(ExtractionOptions(batch_size=7, device="cpu"), DemoConfig(), tmp_path)
    assert (kept.batch_size, kept.device) == (7, "cpu")


def test_another_feature_space_is_refused(tmp_path):
    for extraction in (ExtractionOptions(extractor="vgg16-fc2"), ExtractionOptions(input_size=32)):
        with pytest.raises(ValueError, match="feature space is efficientnet-lite0"):
            run_demo(tmp_path / "out", DemoConfig(), extraction=extraction)
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_findings_of_rows():
    def row(name, value):
        keys = ("rarity_mean", "rarity_median", "fraction_in_manifold", "precision", "recall")
        return {"name": name, **dict.fromkeys(keys, value), "density": 1.0, "coverage": None}

    found = findings([row("psi=1.0", 3.0), row("psi=0.4", 2.0)], [row("A", 2.0), row("B", 4.0)])
    trend = found["truncation"]["trend"]
    assert trend["rarity_mean"] == {"values": [3.0, 2.0], "as_psi_falls": "falls"}
    assert trend["density"]["as_psi_falls"] == "neither"  # equal values
    assert trend["coverage"]["as_psi_falls"] == "neither"  # not computed
    assert (found["datasets"]["right"], found["datasets"]["median_ratio"]) == ("B", 2.0)
    # Bare rows carry no comparison: none is checked.
    assert found["truncation"]["comparisons"] == found["datasets"]["comparisons"] == []


def _pair(a, b, median, interval, p, share):
    return {
        "a": a,
        "b": b,
        "n_a": 90,
        "n_b": 80,
        "mean_difference": median,
        "mean_difference_ci": interval,
        "median_difference": median,
        "median_difference_ci": interval,
        "mann_whitney_u": 1.0,
        "p_value": p,
        "probability_a_rarer": share,
        "level": 0.95,
        "sentence": f"{a} vs {b}",
    }


def test_a_comparison_is_checked_as_a_finding():
    """Holds: p below 1 - level, median difference and rank effect in the expected direction,
    its interval clear of 0; the same the other way round is reversed; p at or above 1 - level
    is not significant; a significant test whose median or interval disagrees is unclear; a set
    with no sample in the manifold, or a pair marked not comparable, is not compared."""
    clear = _pair("psi=1.0", "psi=0.4", 0.8, [0.3, 1.2], 1e-4, 0.62)
    assert check_comparison(clear, "psi=1.0")["verdict"] == "holds"
    assert check_comparison(clear, "psi=0.4")["verdict"] == "reversed"
    checked = check_comparison(clear, "psi=1.0")
    assert checked["expected"] == "psi=0.4 less rare than psi=1.0"
    assert checked["sentence"] == "psi=1.0 vs psi=0.4" and checked["p_value"] == 1e-4
    assert check_comparison({**clear, "p_value": 0.06}, "psi=1.0")["verdict"] == ("not significant")
    for weak in (
        {"median_difference_ci": [-0.1, 1.2]},  # the interval holds 0
        {"median_difference": -0.1},  # the medians disagree with the rank test
        {"probability_a_rarer": 0.5},
    ):
        assert check_comparison({**clear, **weak}, "psi=1.0")["verdict"] == "unclear"
    # Without resamples the rank test decides; in a bootstrapped run, no interval is unclear.
    no_interval = {**clear, "median_difference_ci": None}
    assert check_comparison(no_interval, "psi=1.0")["verdict"] == "holds"
    assert check_comparison(no_interval, "psi=1.0", resampled=True)["verdict"] == "unclear"
    marked = {**clear, "caveat": "they differ in size, 120 and 80"}
    assert check_comparison(marked, "psi=1.0")["verdict"] == "not compared"
    empty = {**clear, "p_value": None, "median_difference": None, "probability_a_rarer": None}
    assert check_comparison(empty, "psi=1.0")["verdict"] == "not compared"
    with pytest.raises(ValueError, match="not one of the sets"):
        check_comparison(clear, "psi=0.7")


def test_findings_check_every_pair_with_the_higher_psi_expected_rarer():
    rows = [{"name": f"psi={psi}", "rarity_mean": 1.0, "rarity_median": 1.0} for psi in "174"]
    pairs = [
        _pair("psi=1", "psi=7", -0.5, [-0.9, -0.1], 1e-3, 0.4),  # 7 is the higher psi
        _pair("psi=1", "psi=4", 0.1, [-0.2, 0.4], 0.3, 0.52),
        _pair("psi=7", "psi=4", 0.6, [0.2, 0.9], 1e-5, 0.7),
    ]
    datasets = {"sets": rows[:2], "comparisons": [pairs[0], pairs[2]]}
    found = findings({"sets": rows, "comparisons": pairs}, datasets)
    checked = found["truncation"]["comparisons"]
    assert [(c["a"], c["b"], c["verdict"]) for c in checked] == [
        ("psi=1", "psi=7", "holds"),
        ("psi=1", "psi=4", "not significant"),
        ("psi=7", "psi=4", "holds"),
    ]
    assert checked[0]["expected"] == "psi=1 less rare than psi=7"
    # The datasets: only the pair of the two sets shown, the right one expected rarer.
    assert [c["b"] for c in found["datasets"]["comparisons"]] == ["psi=7"]


def test_spaces_findings_keep_the_set_and_refuse_a_missing_one():
    row = {"set": "psi=1.0", "space_a": "A", "space_b": "B", "n": 5, "spearman": None}
    found = spaces_findings([row, {**row, "set": "psi=0.4"}], "psi=1.0", [{"name": "A"}])
    assert [(p["space_a"], p["space_b"], p["n"]) for p in found["pairs"]] == [("A", "B", 5)]
    assert found["pairs"][0]["spearman"] is None and found["spaces"] == [{"name": "A"}]
    with pytest.raises(ValueError, match=r"no rows for the set 'psi=0\.7'"):
        spaces_findings([row], "psi=0.7")


# ---------------------------------------------------------------------- the findings

#: The CI size: the same pipeline as `make demo` (5000 real, 1000 per level, 1797 per dataset),
#: smaller; about 25 s on 2 cores including the feature extraction before parts 3 and 4, which
#: add about 15 % (the three spaces and the filter, timed step by step).
CI_CONFIG = DemoConfig(n_real=2000, samples_per_level=500, n_dataset=600)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    for module in ("mlxtend", "sklearn", "torch", "PIL", "matplotlib"):
        pytest.importorskip(module)
    out = tmp_path_factory.mktemp("demo") / "out"
    return run_demo(out, CI_CONFIG, extraction=QUIET)


def _rows(path):
    return {row["name"]: row for row in read_summary(path)}


def test_demo_writes_both_comparisons(demo_run):
    assert [row["name"] for row in read_summary(demo_run.truncation)] == [
        "psi=1.0",
        "psi=0.7",
        "psi=0.4",
    ]
    assert sorted(_rows(demo_run.datasets)) == ["MNIST", "sklearn-digits"]
    for folder in (demo_run.truncation, demo_run.datasets):
        assert (folder / "report" / "index.html").is_file()
        assert (folder / "histogram.png").is_file()
    assert len(demo_run.histograms) == 2 and len(demo_run.reports) == 3  # and spaces/
    run = json.loads((demo_run.truncation / "run.json").read_text())
    assert run["extractor"]["name"] == "efficientnet-lite0"
    assert "64" in run["extractor"]["preprocessing"]
    assert run["real"]["n"] == CI_CONFIG.n_real
    assert run["sets"][0]["has_images"]  # the report shows the generated digits
    datasets = json.loads((demo_run.datasets / "run.json").read_text())
    assert datasets["mode"] == "datasets"
    # Equal sizes by the run's own random subsets (--subsample), of all of each dataset.
    assert [s["n"] for s in datasets["sets"]] == [CI_CONFIG.n_dataset] * 2
    assert [s["subsampled_from"] for s in datasets["sets"]] == [CI_CONFIG.n_real, 1797]
    assert datasets["statistics"]["subsample"] is not None
    assert run["statistics"]["subsample"] is None and run["real"]["subsampled_from"] is None
    for record in (run, datasets):
        bootstrap = record["statistics"]["bootstrap"]
        assert (bootstrap["resamples"], bootstrap["seed"]) == (CI_CONFIG.bootstrap, CI_CONFIG.seed)
    assert not (demo_run.images / "mnist-subset.txt").exists()


def test_rarity_falls_as_psi_falls(demo_run):
    rows = read_summary(demo_run.truncation)
    means = [row["rarity_mean"] for row in rows]
    medians = [row["rarity_median"] for row in rows]
    assert means[0] > means[1] > means[2], means
    assert medians[0] > medians[1] > medians[2], medians


def test_precision_rises_and_recall_falls_as_psi_falls(demo_run):
    """The paper's reading of truncation: fidelity up (more samples in the real manifold),
    diversity down (fewer real samples covered by the generated manifold)."""
    rows = read_summary(demo_run.truncation)
    precision = [row["precision"] for row in rows]
    recall = [row["recall"] for row in rows]
    assert precision[2] > precision[0], precision
    assert [row["fraction_in_manifold"] for row in rows] == precision  # the same thing here
    assert recall[0] > recall[1] > recall[2], recall


def test_dataset_ordering(demo_run):
    """MNIST (28x28, many writers) sits to the right of scikit-learn's digits (8x8, upsampled)
    in this feature space, by a clear margin."""
    rows = _rows(demo_run.datasets)
    mnist, sk = rows["MNIST"], rows["sklearn-digits"]
    assert mnist["rarity_median"] > 1.1 * sk["rarity_median"]
    assert mnist["rarity_mean"] > 1.1 * sk["rarity_mean"]
    record = json.loads((demo_run.out_dir / DEMO_MARKER).read_text())
    assert record["findings"]["datasets"]["right"] == "MNIST"
    # What demo.json records is what the written summaries show, comparisons included.
    written = findings(read_summary_json(demo_run.truncation), read_summary_json(demo_run.datasets))
    assert record["findings"] == demo_run.findings == written
    assert record["findings"]["truncation"]["trend"]["rarity_median"]["as_psi_falls"] == "falls"


def test_summaries_hold_intervals_and_the_pairwise_comparisons(demo_run):
    """Every rarity value of each set has its bootstrap interval around it, and summary.json
    compares every pair of sets: difference of mean and median with intervals, Mann-Whitney U."""
    for folder, names in (
        (demo_run.truncation, ["psi=1.0", "psi=0.7", "psi=0.4"]),
        (demo_run.datasets, ["MNIST", "sklearn-digits"]),
    ):
        summary = read_summary_json(folder)
        for row in summary["sets"]:
            for key in ("rarity_mean", "rarity_median", "fraction_in_manifold"):
                low, high = row[f"{key}_ci"]
                assert low <= row[key] <= high, (row["name"], key)
        pairs = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names))]
        assert [(c["a"], c["b"]) for c in summary["comparisons"]] == [
            (names[i], names[j]) for i, j in pairs
        ]
        for pair in summary["comparisons"]:
            for key in ("mean_difference", "median_difference"):
                low, high = pair[f"{key}_ci"]
                assert low <= pair[key] <= high, (pair["a"], pair["b"], key)
            assert 0 <= pair["p_value"] <= 1 and pair["mann_whitney_u"] >= 0
            assert pair["level"] == 0.95 and pair["sentence"].startswith(pair["a"])


def test_the_comparisons_are_checked_as_findings(demo_run):
    """At the CI size the untruncated samples are clearly rarer than the strongest truncation
    and MNIST clearly rarer than scikit-learn's digits (p < 0.05, median difference's 95 %
    interval clear of 0); no pair is reversed. The verdicts are those of the written entries."""
    truncation = demo_run.findings["truncation"]["comparisons"]
    assert [(c["a"], c["b"]) for c in truncation] == [
        ("psi=1.0", "psi=0.7"),
        ("psi=1.0", "psi=0.4"),
        ("psi=0.7", "psi=0.4"),
    ]
    verdicts = {(c["a"], c["b"]): c["verdict"] for c in truncation}
    assert verdicts[("psi=1.0", "psi=0.4")] == "holds"
    assert "reversed" not in verdicts.values()
    strongest = truncation[1]
    assert strongest["expected"] == "psi=0.4 less rare than psi=1.0"
    assert strongest["median_difference_ci"][0] > 0 and strongest["p_value"] < 0.05
    assert strongest["sentence"].startswith("psi=1.0 is more rare than psi=0.4: median ")
    (datasets,) = demo_run.findings["datasets"]["comparisons"]
    assert (datasets["a"], datasets["b"], datasets["verdict"]) == (
        "MNIST",
        "sklearn-digits",
        "holds",
    )
    assert datasets["expected"] == "sklearn-digits less rare than MNIST"
    # What is printed: each finding with its verdict, then the run's sentence.
    from rarity_score.demo import describe_findings

    lines = describe_findings(demo_run.findings)
    for entry in [*truncation, datasets]:
        at = lines.index(f"  {entry['expected']}: {entry['verdict']}")
        assert lines[at + 1] == f"    {entry['sentence']}"


def _set_arrays(results_dir: Path, name: str) -> dict[str, np.ndarray]:
    """A set's per-sample arrays as written (``run.json`` names the file)."""
    run = json.loads((Path(results_dir) / "run.json").read_text())
    entry = next(item for item in run["sets"] if item["name"] == name)
    with np.load(Path(results_dir) / entry["arrays"], allow_pickle=False) as arrays:
        return {key: arrays[key] for key in arrays.files}


SPACE_NAMES = ["pixels", "efficientnet-lite0-stage2", "efficientnet-lite0"]


def test_demo_scores_the_first_level_in_three_spaces(demo_run):
    record = json.loads((demo_run.out_dir / DEMO_MARKER).read_text())["spaces"]
    assert record["set"] == "psi=1.0"
    assert [name for name, _, _ in SPACES] == SPACE_NAMES == list(demo_run.space_runs)
    assert [entry["name"] for entry in record["spaces"]] == SPACE_NAMES
    side = CI_CONFIG.input_size
    expected = {  # extractor, input side, dimension: pixels at MNIST's own 28 px, RGB
        "pixels": ("pixels", 28, 3 * 28 * 28),
        "efficientnet-lite0-stage2": ("efficientnet-lite0-stage2", side, 24),
        "efficientnet-lite0": ("efficientnet-lite0", side, 1280),
    }
    for entry in record["spaces"]:
        folder = Path(entry["results"])
        assert folder == demo_run.out_dir / "per-space" / entry["name"]
        run = json.loads((folder / "run.json").read_text())
        extractor = run["extractor"]
        assert (extractor["name"], entry["input_size"], extractor["dim"]) == expected[entry["name"]]
        assert entry["dim"] == extractor["dim"]
        assert f"{entry['input_size']}x{entry['input_size']}" in extractor["preprocessing"]
        assert [item["name"] for item in run["sets"]] == ["psi=1.0"]
        assert run["real"]["n"] == CI_CONFIG.n_real
        row = read_summary(folder)[0]
        assert entry["fraction_in_manifold"] == row["fraction_in_manifold"]


def test_the_head_space_is_part_one_read_from_the_cache(demo_run):
    """The head's features are those the truncation part extracted: the scores are identical,
    and the cache holds no second entry of the head's features for them."""
    head = _set_arrays(demo_run.out_dir / "per-space" / DEMO_EXTRACTOR, "psi=1.0")
    part1 = _set_arrays(demo_run.truncation, "psi=1.0")
    assert np.array_equal(head["names"], part1["names"])
    assert np.array_equal(head["rarity"], part1["rarity"], equal_nan=True)
    entries: dict[str, int] = {}
    for path in (demo_run.out_dir / "cache").glob("*.json"):
        name = json.loads(path.read_text())["extractor"]
        entries[name] = entries.get(name, 0) + 1
    # Head: MNIST, three levels, scikit-learn's digits (the datasets are subsets of these,
    # cut by the run); the other two spaces: MNIST and the first level.
    assert entries == {DEMO_EXTRACTOR: 5, "efficientnet-lite0-stage2": 2, "pixels": 2}


def test_spaces_output_holds_what_demo_json_says(demo_run):
    from scipy import stats

    root = demo_run.spaces
    assert root == demo_run.out_dir / "spaces"
    record = json.loads((demo_run.out_dir / DEMO_MARKER).read_text())["spaces"]
    assert record["path"] == str(root)
    run = json.loads((root / "run.json").read_text())
    assert run["mode"] == "spaces" and [s["name"] for s in run["spaces"]] == SPACE_NAMES
    rows = [row for row in read_summary(root) if row["set"] == "psi=1.0"]
    pairs = [(a, b) for i, a in enumerate(SPACE_NAMES) for b in SPACE_NAMES[i + 1 :]]
    assert [(row["space_a"], row["space_b"]) for row in rows] == pairs
    assert record["pairs"] == [{key: row[key] for key in record["pairs"][0]} for row in rows]
    assert {"spearman", "kendall", "kappa", "jaccard_rarest", "jaccard_common"} <= set(
        record["pairs"][0]
    )
    assert (root / "report" / "index.html") in demo_run.reports
    # Checked against the per-space results directories themselves (same names, same order).
    arrays = {name: _set_arrays(demo_run.space_runs[name].path, "psi=1.0") for name in SPACE_NAMES}
    for pair in record["pairs"]:
        a, b = arrays[pair["space_a"]], arrays[pair["space_b"]]
        assert np.array_equal(a["names"], b["names"])
        ia, ib = a["in_manifold"].astype(bool), b["in_manifold"].astype(bool)
        counts = [int((x & y).sum()) for x, y in ((ia, ib), (ia, ~ib), (~ia, ib), (~ia, ~ib))]
        assert [pair[k] for k in ("in_in", "in_out", "out_in", "out_out")] == counts
        assert pair["n"] == CI_CONFIG.samples_per_level and pair["n_in_both"] == counts[0]
        both = ia & ib
        expected = stats.spearmanr(a["rarity"][both], b["rarity"][both]).statistic
        assert pair["spearman"] == pytest.approx(expected, abs=1e-12)


def _rank_and_name(path: Path) -> tuple[int, str]:
    match = re.fullmatch(r"([0-9]+)_(.+)", path.name)
    assert match, path.name
    return int(match.group(1)), match.group(2)


def test_rarest_folder_holds_the_top_of_the_table(demo_run):
    """The copied files are exactly the n_rarest in-manifold samples of largest rarity in the
    psi=1.0 table as written (ties: the lower row first), in rank order, byte for byte."""
    n = CI_CONFIG.n_rarest
    folder = demo_run.out_dir / "rarest"
    assert demo_run.rarest == folder
    record = json.loads((demo_run.out_dir / DEMO_MARKER).read_text())["rarest"]
    assert (record["set"], record["rule"], record["asked"], record["copied"]) == (
        "psi=1.0",
        "rarest",
        n,
        n,
    )
    table = _set_arrays(demo_run.truncation, "psi=1.0")
    rows = np.flatnonzero(np.isfinite(table["rarity"]))
    order = rows[np.argsort(-table["rarity"][rows], kind="stable")][:n]
    top = [str(table["names"][i]) for i in order]
    files = sorted(
        (p for p in folder.iterdir() if p.name not in ("selection.csv", "filter.json")),
        key=_rank_and_name,
    )
    assert [_rank_and_name(p) for p in files] == list(enumerate(top, start=1))
    for path, name in zip(files, top, strict=True):
        assert path.read_bytes() == (demo_run.images / "psi1.0" / name).read_bytes()
    assert [entry["name"] for entry in record["selected"]] == top
    assert [entry["score"] for entry in record["selected"]] == [
        float(table["rarity"][i]) for i in order
    ]


def test_second_run_is_identical_and_reuses_the_images(demo_run):
    pngs = sorted((demo_run.images / "psi1.0").iterdir())[:20]
    stamps = [os.stat(p).st_mtime_ns for p in pngs]
    before = {name: read_summary(getattr(demo_run, name)) for name in ("truncation", "datasets")}
    spaces_before = read_summary(demo_run.spaces)
    rarest = demo_run.out_dir / "rarest"
    files_before = {p.name: p.read_bytes() for p in rarest.iterdir() if p.name != "filter.json"}
    folders = {name: os.stat(demo_run.out_dir / name).st_ino for name in ("spaces", "rarest")}
    # An earlier demo's hand-made list of MNIST images is removed (the run subsamples now).
    (demo_run.images / "mnist-subset.txt").write_text("mnist/00000_digit3.png\n")
    again = run_demo(demo_run.out_dir, CI_CONFIG, extraction=QUIET, report=False)
    assert not (demo_run.images / "mnist-subset.txt").exists()
    # The images are regenerated byte for byte (so not rewritten: the cache key holds).
    assert [os.stat(p).st_mtime_ns for p in pngs] == stamps
    for name, rows in before.items():
        assert read_summary(getattr(again, name)) == rows  # the intervals too: seeded
    assert again.findings == demo_run.findings
    # The spaces output and the filtered folder are replaced (new folders moved into place),
    # with the same content.
    for name, inode in folders.items():
        assert os.stat(demo_run.out_dir / name).st_ino != inode, name
    assert read_summary(again.spaces) == spaces_before
    assert {p.name: p.read_bytes() for p in rarest.iterdir() if p.name != "filter.json"} == (
        files_before
    )
    assert not (again.spaces / "report").exists()  # report=False this time
    record = json.loads((again.out_dir / DEMO_MARKER).read_text())
    for part, found in (("spaces", again.spaces_found), ("rarest", again.rarest_found)):
        assert {key: value for key, value in record[part].items() if key != "path"} == found
