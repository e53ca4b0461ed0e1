"""Bootstrap intervals, comparisons of sets, subsets and stability (issue #12).

The intervals are checked three ways: calibration (a 95 % interval covers the true value, known
from a very large sample against the same real set, in about 95 % of repeated draws), against an
independent percentile bootstrap of the brute-force oracle's per-sample values, and by
properties (seeds, levels, what is never resampled). The comparisons are checked against the
oracle's rarities and scipy's own Mann-Whitney U on them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats
from reference import reference_evaluation

from rarity_score.compare import compare, compare_datasets
from rarity_score.manifold import RealManifold, evaluate
from rarity_score.options import OptionError, StatisticsOptions
from rarity_score.results import Evaluation
from rarity_score.results_dir import load_results
from rarity_score.uncertainty import (
    RESAMPLED,
    compare_rarity,
    comparisons,
    not_resampled,
    subset_rows,
    summary_intervals,
)


def _evaluation(rarity: np.ndarray) -> Evaluation:
    inside = ~np.isnan(rarity)
    return Evaluation.from_fields(
        k=1,
        n_real=10,
        dim=1,
        metrics=("rarity",),
        rarity=rarity,
        in_manifold=inside,
        sphere_index=np.where(inside, 0, -1),
    )


# ---------------------------------------------------------------------- calibration


def test_95_percent_intervals_cover_the_true_value_in_about_95_percent_of_draws() -> None:
    """The real set is fixed (the intervals are of the generated side); the true values are
    those of 100,000 generated samples against it. 100 draws of 200 samples: a correct 95 %
    interval misses about 5 times (binomial sd ~2.2); 88 % is 3 sd below, a broken interval
    (say, resampling only in-manifold samples for precision, or a 50 % interval) falls far
    below it."""
    rng = np.random.default_rng(1)
    manifold = RealManifold(rng.normal(size=(300, 4)), 3)
    asked = ("rarity", "precision", "density")
    big = manifold.evaluate(1.1 * rng.normal(size=(100_000, 4)), metrics=asked).summary()
    paths = {
        "mean": ("rarity", "mean"),
        "median": ("rarity", "median"),
        "precision": ("precision",),
        "density": ("density",),
    }

    def find(tree, path):
        for key in path:
            tree = tree[key]
        return tree

    truth = {name: find(big, path) for name, path in paths.items()}
    assert 0.5 < truth["precision"] < 0.99  # real fractions in and out of the manifold
    repeats = 100
    hits = dict.fromkeys(paths, 0)
    for repeat in range(repeats):
        draw = manifold.evaluate(1.1 * rng.normal(size=(200, 4)), metrics=asked)
        intervals = summary_intervals(draw, StatisticsOptions(bootstrap=200, seed=repeat))
        for name, path in paths.items():
            low, high = find(intervals, path)
            hits[name] += low <= truth[name] <= high
    coverage = {name: count / repeats for name, count in hits.items()}
    assert all(value >= 0.88 for value in coverage.values()), coverage


# ---------------------------------------------------------------------- against the oracle


def _independent_percentile_bootstrap(values, statistic, resamples, level, rng):
    """A percentile bootstrap written from its definition (rows with replacement)."""
    n = len(values)
    found = np.array([statistic(values[rng.integers(0, n, n)]) for _ in range(resamples)])
    tail = (1 - level) / 2
    return np.quantile(found, [tail, 1 - tail])


def test_intervals_match_an_independent_bootstrap_of_the_oracle() -> None:
    rng = np.random.default_rng(7)
    real = rng.normal(size=(150, 3))
    fake = np.concatenate([1.2 * rng.normal(size=(110, 3)), real[:10] + 1e-9])  # near copies
    oracle = reference_evaluation(real, fake, 3)
    evaluation = evaluate(real, fake, 3)
    intervals = summary_intervals(evaluation, StatisticsOptions(bootstrap=4000, seed=3))
    per_sample = np.stack([oracle.rarity, oracle.sphere_count.astype(float)], axis=1)

    def median_rarity(rows):
        inside = ~np.isnan(rows[:, 0])
        return np.median(rows[inside, 0])

    checks = {
        ("rarity", "median"): median_rarity,
        ("precision",): lambda rows: np.mean(~np.isnan(rows[:, 0])),
        ("density",): lambda rows: rows[:, 1].mean() / 3,
        ("fraction_out_of_manifold",): lambda rows: np.mean(np.isnan(rows[:, 0])),
    }
    assert 0 < oracle.precision < 1
    for path, statistic in checks.items():
        expected = _independent_percentile_bootstrap(
            per_sample, statistic, 4000, 0.95, np.random.default_rng(11)
        )
        found = intervals
        for key in path:
            found = found[key]
        width = expected[1] - expected[0]
        assert width > 0, path
        # Two bootstraps of 4,000 resamples agree on the percentiles to a small part of the width.
        assert abs(found[0] - expected[0]) < 0.15 * width, (path, found, expected)
        assert abs(found[1] - expected[1]) < 0.15 * width, (path, found, expected)


def test_comparisons_match_the_oracle_and_scipy() -> None:
    rng = np.random.default_rng(5)
    real = rng.normal(size=(200, 4))
    narrow, wide = 0.7 * rng.normal(size=(120, 4)), 1.3 * rng.normal(size=(140, 4))
    manifold = RealManifold(real, 3)
    named = [("narrow", manifold.evaluate(narrow)), ("wide", manifold.evaluate(wide))]
    (found,) = comparisons(named, StatisticsOptions(bootstrap=500))
    a, b = (reference_evaluation(real, x, 3).rarity for x in (narrow, wide))
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    assert 0 < len(b) < 140  # some of the wide set lies outside the manifold
    assert found.n_a == len(a) and found.n_b == len(b)
    assert found.median_difference == pytest.approx(np.median(a) - np.median(b), rel=1e-12)
    assert found.mean_difference == pytest.approx(a.mean() - b.mean(), rel=1e-12)
    test = scipy.stats.mannwhitneyu(a, b, alternative="two-sided")
    assert found.p_value == pytest.approx(test.pvalue, rel=1e-9)
    assert found.probability_a_rarer == pytest.approx(test.statistic / (len(a) * len(b)))
    low, high = found.median_difference_ci
    assert low < found.median_difference < high < 0
    assert found.sentence.startswith("narrow is less rare than wide: median ")
    assert "95 % CI [" in found.sentence and "p = " in found.sentence
    assert f"P(narrow rarer) = {found.probability_a_rarer:.2f}" in found.sentence
    entry = found.to_dict()
    assert entry["sentence"] == found.sentence and entry["a"] == "narrow"
    json.dumps(entry, allow_nan=False)


def test_same_distribution_does_not_differ_clearly_and_empty_sets_cannot_be_compared() -> None:
    rng = np.random.default_rng(2)
    same = compare_rarity(
        ("x", _evaluation(rng.normal(1, 0.1, 300))),
        ("y", _evaluation(rng.normal(1, 0.1, 300))),
        StatisticsOptions(bootstrap=200),
    )
    assert same.p_value > 0.05
    assert same.sentence.startswith("x and y do not differ clearly in rarity: median ")
    low, high = same.median_difference_ci
    assert low < 0 < high
    empty = compare_rarity(
        ("x", _evaluation(np.array([1.0, 2.0]))),
        ("gone", _evaluation(np.array([np.nan, np.nan]))),
        StatisticsOptions(bootstrap=200),
    )
    assert empty.p_value is None and empty.median_difference_ci is None
    assert empty.sentence == "x and gone cannot be compared: gone has no in-manifold sample"


def test_more_rare_is_said_when_the_first_set_is_rarer() -> None:
    rng = np.random.default_rng(3)
    found = compare_rarity(
        ("high", _evaluation(rng.normal(2, 0.1, 100))),
        ("low", _evaluation(rng.normal(1, 0.1, 100))),
        StatisticsOptions(),
    )
    assert found.sentence.startswith("high is more rare than low: median 0.98")
    assert found.median_difference_ci is None and "CI" not in found.sentence


# ---------------------------------------------------------------------- properties


def test_what_is_and_is_not_resampled() -> None:
    rng = np.random.default_rng(0)
    evaluation = evaluate(rng.normal(size=(80, 3)), rng.normal(size=(60, 3)), 3)
    intervals = summary_intervals(evaluation, StatisticsOptions(bootstrap=100))
    assert set(not_resampled()) == {"recall", "coverage"}
    assert intervals["recall"] is None and intervals["coverage"] is None
    for fixed in ("k", "n_real", "n_fake", "dim", "n_in_manifold", "n_out_of_manifold"):
        assert fixed not in intervals
    point = evaluation.summary()
    for key in ("mean", "median", "q10", "q90", "std"):
        low, high = intervals["rarity"][key]
        assert low <= high
    low, high = intervals["precision"]
    assert low <= point["precision"] <= high
    assert "fixed" in RESAMPLED and "with replacement" in RESAMPLED


def test_seed_and_level() -> None:
    rarity = np.random.default_rng(4).gamma(2.0, 1.0, 150)
    evaluation = _evaluation(rarity)

    def median(**options):
        return summary_intervals(evaluation, StatisticsOptions(bootstrap=600, **options))["rarity"][
            "median"
        ]

    assert median(seed=1) == median(seed=1)
    assert median(seed=1) != median(seed=2)
    narrow, wide = median(level=0.5), median(level=0.99)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


def test_undefined_values_have_no_interval() -> None:
    outside = summary_intervals(_evaluation(np.full(20, np.nan)), StatisticsOptions(bootstrap=100))
    assert outside["rarity"]["median"] is None
    assert outside["fraction_in_manifold"] == [0.0, 0.0]
    # Below MIN_BOOTSTRAP_SAMPLES (10) samples: no interval at all.
    few = summary_intervals(_evaluation(np.arange(1.0, 10.0)), StatisticsOptions(bootstrap=100))
    assert few["rarity"]["median"] is None and few["fraction_in_manifold"] is None
    # Counts are never given an interval, nested ones included.
    ten = summary_intervals(_evaluation(np.arange(1.0, 11.0)), StatisticsOptions(bootstrap=100))
    assert "n" not in ten["rarity"] and ten["rarity"]["median"] is not None


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"bootstrap": 50}, "bootstrap"),
        ({"bootstrap": -1}, "bootstrap"),
        ({"level": 1.0}, "level"),
        ({"level": 0}, "level"),
        ({"level": True}, "level"),
        ({"bootstrap": 1000, "level": 0.999}, "bootstrap"),
        ({"seed": -1}, "seed"),
        ({"subsample": 1}, "subsample"),
    ],
)
def test_bad_statistics_options(options, field) -> None:
    with pytest.raises(OptionError) as error:
        StatisticsOptions(**options)
    assert error.value.field == field


def test_subset_rows_are_seeded_sorted_and_distinct() -> None:
    rows = subset_rows(1000, 100, 3, salt="a")
    assert np.array_equal(rows, subset_rows(1000, 100, 3, salt="a"))
    assert not np.array_equal(rows, subset_rows(1000, 100, 4, salt="a"))
    assert not np.array_equal(rows, subset_rows(1000, 100, 3, salt="b"))
    assert np.all(np.diff(rows) > 0) and rows.max() < 1000
    assert np.array_equal(subset_rows(10, 10, 0), np.arange(10))


# ---------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(9)
    return {
        "real": rng.normal(size=(240, 5)),
        "narrow": 0.8 * rng.normal(size=(120, 5)),
        "wide": 1.2 * rng.normal(size=(100, 5)),
        "mid": rng.normal(size=(110, 5)),
    }


def test_compare_writes_intervals_comparisons_and_stability(data, tmp_path) -> None:
    fakes = {name: data[name] for name in ("narrow", "wide", "mid")}
    statistics = StatisticsOptions(bootstrap=200, stability=True, seed=5)
    result = compare(data["real"], fakes, tmp_path / "run", report=False, statistics=statistics)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [row["name"] for row in summary["sets"]] == ["narrow", "wide", "mid"]
    row = summary["sets"][0]
    low, high = row["rarity_median_ci"]
    assert low <= row["rarity_median"] <= high
    assert row["recall_ci"] is None and row["coverage_ci"] is None
    assert "n_ci" not in row and "n_in_manifold_ci" not in row
    assert [(c["a"], c["b"]) for c in summary["comparisons"]] == [
        ("narrow", "wide"),
        ("narrow", "mid"),
        ("wide", "mid"),
    ]
    assert summary["comparisons"][0]["sentence"].startswith("narrow is less rare than wide")
    steps = summary["stability"]
    assert [step["fraction"] for step in steps] == [0.25, 0.5, 1.0]
    assert [step["sets"][0]["n_reference"] for step in steps] == [60, 120, 240]
    assert steps[-1]["sets"][0]["rarity_median"] == row["rarity_median"]
    # Radii shrink as the reference grows: the median rarity falls with the fraction.
    medians = [step["sets"][0]["rarity_median"] for step in steps]
    assert medians[0] > medians[1] > medians[2]
    record = json.loads((tmp_path / "run" / "run.json").read_text())["statistics"]
    assert record["bootstrap"]["resamples"] == 200 and record["bootstrap"]["seed"] == 5
    assert record["bootstrap"]["resampled"] == RESAMPLED
    assert set(record["bootstrap"]["no_interval"]) == {"recall", "coverage"}
    assert record["stability"]["fractions"] == [0.25, 0.5, 1.0]
    header = (tmp_path / "run" / "summary.csv").read_text().splitlines()[0].split(",")
    assert "rarity_median_ci_low" in header and "rarity_median_ci_high" in header
    loaded = load_results(tmp_path / "run")
    assert loaded.comparisons == result.comparisons and loaded.stability == result.stability
    assert "narrow is less rare than wide" in (tmp_path / "run" / "summary.md").read_text()


def test_a_run_without_statistics_still_compares_its_sets(data, tmp_path) -> None:
    fakes = {"narrow": data["narrow"], "wide": data["wide"]}
    compare(data["real"], fakes, tmp_path / "run", report=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "rarity_median_ci" not in summary["sets"][0] and summary["stability"] is None
    (entry,) = summary["comparisons"]
    assert entry["median_difference_ci"] is None and entry["p_value"] < 0.05
    assert (
        json.loads((tmp_path / "run" / "run.json").read_text())["statistics"]["bootstrap"] is None
    )


def test_subsample_scores_the_same_random_rows_each_run(data, tmp_path) -> None:
    statistics = StatisticsOptions(subsample=90, seed=2)
    runs = [
        compare(
            data["real"],
            {"narrow": data["narrow"], "wide": data["wide"]},
            tmp_path / f"run{i}",
            report=False,
            statistics=statistics,
        )
        for i in range(2)
    ]
    run = runs[0].run
    assert run["real"]["n"] == 90 and run["real"]["subsampled_from"] == 240
    assert [s["n"] for s in run["sets"]] == [90, 90]
    assert [s["subsampled_from"] for s in run["sets"]] == [120, 100]
    first, second = (load_results(r.path).sets[0] for r in runs)
    assert first.names == second.names  # the original rows, "#i"
    rows = [int(name[1:]) for name in first.names]
    assert rows == sorted(rows) and len(set(rows)) == 90
    expected = evaluate(data["real"][subset_rows(240, 90, 2, salt="real")], data["narrow"][rows], 3)
    assert np.array_equal(first.rarity, expected.rarity, equal_nan=True)


def test_datasets_of_different_sizes_warn_and_subsample_evens_them(data, tmp_path, caplog) -> None:
    datasets = {"narrow": data["narrow"], "wide": data["wide"]}
    with caplog.at_level("WARNING", logger="rarity_score"):
        result = compare_datasets(
            datasets,
            tmp_path / "ds",
            report=False,
            statistics=StatisticsOptions(bootstrap=100, stability=True),
        )
    assert "differ in size (narrow 120, wide 100)" in caplog.text
    assert "--subsample 100" in caplog.text
    (entry,) = result.comparisons
    assert entry["a"] == "narrow" and entry["median_difference_ci"] is not None
    # A size effect is never reported as a finding.
    assert entry["sentence"].startswith("narrow and wide are not comparable (they differ in size")
    assert "--subsample 100" in entry["sentence"]
    assert [step["fraction"] for step in result.stability] == [0.25, 0.5, 1.0]
    assert result.stability[0]["sets"][0]["n_reference"] == 30
    caplog.clear()
    with caplog.at_level("WARNING", logger="rarity_score"):
        evened = compare_datasets(
            datasets, tmp_path / "even", report=False, statistics=StatisticsOptions(subsample=100)
        )
    assert "differ in size" not in caplog.text
    assert [s["n"] for s in evened.run["sets"]] == [100, 100]
    assert evened.comparisons[0]["caveat"] is None


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda s: s["sets"][0].update(rarity_mean_ci=["a", "b"]), "'[0].rarity_mean_ci'"),
        (lambda s: s["sets"][0].update(rarity_mean_ci=[2.0, 1.0]), "'[0].rarity_mean_ci'"),
        (lambda s: s["sets"][0].update(rarity_mean_ci=[True, 1.0]), "interval"),
        (lambda s: s.update(comparisons=False), "'comparisons' must be a list"),
        (lambda s: s.update(comparisons=["x"]), "comparisons[0]"),
        (lambda s: s["comparisons"][0].update(p_value="0.01"), "comparisons[0].p_value"),
        (lambda s: s["comparisons"][0].update(p_value=2.0), "comparisons[0].p_value"),
        (lambda s: s["comparisons"][0].update(median_difference_ci=[0]), "median_difference_ci"),
        (lambda s: s["comparisons"][0].update(sentence=None), "comparisons[0].sentence"),
        (lambda s: s.update(stability=[{"fraction": "half", "sets": []}]), "fraction"),
        # JSON integers have any number of digits: one beyond a float is no finite number.
        (lambda s: s["comparisons"][0].update(p_value=10**400), "comparisons[0].p_value"),
        (lambda s: s["sets"][0].update(rarity_mean_ci=[0, 10**400]), "'[0].rarity_mean_ci'"),
        (lambda s: s["sets"][0].update(rarity_mean=10**400), "'[0].rarity_mean'"),
    ],
)
def test_damaged_statistics_in_summary_json_are_one_line(data, tmp_path, damage, fragment):
    from rarity_score.results_dir import ResultsError

    out = tmp_path / "run"
    fakes = {"narrow": data["narrow"], "wide": data["wide"]}
    compare(data["real"], fakes, out, report=False, statistics=StatisticsOptions(bootstrap=100))
    path = out / "summary.json"
    summary = json.loads(path.read_text())
    damage(summary)
    path.write_text(json.dumps(summary))
    with pytest.raises(ResultsError) as error:
        load_results(out)
    message = str(error.value)
    assert "summary.json" in message and fragment in message and "\n" not in message


def test_summary_csv_gives_the_intervals_back(data, tmp_path) -> None:
    out = tmp_path / "run"
    fakes = {"narrow": data["narrow"], "wide": data["wide"]}
    compare(data["real"], fakes, out, report=False, statistics=StatisticsOptions(bootstrap=100))
    from_json = load_results(out).summary
    (out / "summary.json").unlink()  # the reader falls back on summary.csv
    from_csv = load_results(out).summary
    for json_row, csv_row in zip(from_json, from_csv, strict=True):
        assert csv_row["rarity_median_ci"] == pytest.approx(json_row["rarity_median_ci"])
        assert csv_row["recall_ci"] is None
        assert "rarity_median_ci_low" not in csv_row


def test_extremes_and_small_sets_get_no_interval() -> None:
    rng = np.random.default_rng(8)
    intervals = summary_intervals(
        _evaluation(rng.gamma(2, 1, 50)), StatisticsOptions(bootstrap=100)
    )
    assert "min" not in intervals["rarity"] and "max" not in intervals["rarity"]
    assert intervals["rarity"]["q10"] is not None
    small = compare_rarity(
        ("big", _evaluation(rng.normal(1, 0.1, 50))),
        ("tiny", _evaluation(rng.normal(2, 0.1, 6))),
        StatisticsOptions(bootstrap=100),
    )
    assert small.median_difference_ci is None and small.p_value is not None
