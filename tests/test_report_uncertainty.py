"""The report of a run with statistics (issue #12): the bootstrap intervals in the summary table
and what they cover, the comparisons of the sets, the stability table, the empirical CDFs beside
the histogram, the warning that leave-one-out datasets of different sizes are not comparable,
and the subsample each set was drawn from. The values the reader does not validate (intervals,
the comparisons' numbers, run.json's statistics record) are untrusted: a damaged one is left out
with one warning line, and text is escaped."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("scipy")

from matplotlib.axes import Axes

from rarity_score.compare import compare, compare_datasets
from rarity_score.options import StatisticsOptions
from rarity_score.report import ReportError, build_report, load_results
from rarity_score.report.page import escape
from rarity_score.results_dir import row_values, value_text
from rarity_score.results_dir.layout import ci_key, with_interval

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STATISTICS = StatisticsOptions(bootstrap=200, stability=True)
HOSTILE = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"


def _features(seed: int, n: int, scale: float = 1.0, dim: int = 4) -> np.ndarray:
    return scale * np.random.default_rng(seed).normal(size=(n, dim))


@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two generated sets against a real set subsampled to 100 of its 150 samples."""
    out = tmp_path_factory.mktemp("uncertainty") / "compare"
    statistics = StatisticsOptions(bootstrap=200, stability=True, subsample=100)
    fakes = {"narrow": _features(1, 60, 0.8), "wide": _features(2, 60, 1.3)}
    compare(_features(0, 150), fakes, out, report=False, statistics=statistics)
    return out


@pytest.fixture(scope="module")
def compare_page(compare_dir: Path) -> str:
    return build_report(compare_dir).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def datasets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two datasets of different sizes, scored leave-one-out."""
    out = tmp_path_factory.mktemp("uncertainty") / "datasets"
    sets = {"small": _features(3, 50), "large": _features(4, 80, 1.1)}
    compare_datasets(sets, out, report=False, statistics=STATISTICS)
    return out


@pytest.fixture()
def damaged(compare_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the compare results directory, free to damage (its report removed, so
    it can be rebuilt after the files change)."""
    copy = Path(shutil.copytree(compare_dir, tmp_path / "results"))
    shutil.rmtree(copy / "report", ignore_errors=True)
    (copy / "histogram.png").unlink(missing_ok=True)
    return copy


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _write(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


def _section(page: str, anchor: str) -> str:
    return page.split(f'id="{anchor}"', 1)[1].split("</section>", 1)[0]


def _summary_rows(page: str) -> dict[str, list[str]]:
    """The summary table's cells (as HTML text), by set name."""
    table = page.split('id="summary-table"', 1)[1].split("</table>", 1)[0]
    found = {}
    for name, cells in re.findall(r'<tr><th scope="row">(.*?)</th>(.*?)</tr>', table):
        found[name] = re.findall(r"<td[^>]*>(.*?)</td>", cells)
    return found


# ------------------------------------------------------------------------------------------
# Intervals


def test_summary_cells_hold_their_intervals(compare_dir: Path, compare_page: str) -> None:
    saved = _read(compare_dir / "summary.json")["sets"]
    cells = _summary_rows(compare_page)
    specs = row_values()
    assert set(cells) == {"narrow", "wide"}
    for row in saved:
        shown = dict(zip([spec.key for spec in specs], cells[row["name"]], strict=True))
        for spec in specs:
            text = value_text(row[spec.key], spec, missing="—", grouping=True)
            if row.get(ci_key(spec.key)) is not None:
                expected = with_interval(text, row, spec)
                assert expected != text and "[" in expected
            else:
                expected = text  # counts, and recall / coverage (no interval)
            assert shown[spec.key] == escape(expected), spec.key
    # e.g. "1.25 [1.1, 1.4]" and a fraction as "95.0 % [90.0, 100.0]"
    assert re.search(r"\d %\s\[[\d.]+, [\d.]+\]", " ".join(cells["narrow"]))
    assert "[" not in shown["recall"] and "[" not in shown["coverage"]


def test_the_page_says_what_the_intervals_cover(compare_dir: Path, compare_page: str) -> None:
    bootstrap = _read(compare_dir / "run.json")["statistics"]["bootstrap"]
    note = compare_page.split('id="intervals"', 1)[1].split("</section>", 1)[0]
    assert "95 % percentile bootstrap" in note
    assert "200 resamples" in note
    assert escape(bootstrap["resampled"]) in note
    # The values without an interval, with why (the same reason once, for both).
    assert "No interval for" in note
    assert "<strong>recall and coverage</strong>" in note
    why = bootstrap["no_interval"]["recall"].removeprefix("no interval:").strip()
    assert note.count(escape(why)) == 1


def test_the_settings_say_what_was_subsampled(compare_page: str) -> None:
    settings = _section(compare_page, "settings")
    assert "100 of 150 samples, drawn at random" in settings  # the real set
    assert "60 samples ·" in settings  # the generated sets, smaller than 100: whole
    assert '<th scope="row">subsample</th>' in settings
    assert '<th scope="row">stability</th>' in settings


# ------------------------------------------------------------------------------------------
# Comparisons and stability


def test_comparisons_list_each_sentence(compare_dir: Path, compare_page: str) -> None:
    comparisons = _read(compare_dir / "summary.json")["comparisons"]
    assert comparisons
    assert '<a href="#comparisons">Comparisons</a>' in compare_page
    section = _section(compare_page, "comparisons")
    for entry in comparisons:
        assert f"<li>{escape(entry['sentence'])}</li>" in section
    table = section.split('id="comparisons-table"', 1)[1]
    assert "median difference [95 % CI]" in table
    first = comparisons[0]
    low, high = first["median_difference_ci"]
    assert f"{first['median_difference']:.4g} [{low:.4g}, {high:.4g}]" in table
    assert f"{first['p_value']:.2g}" in table


def test_stability_table(compare_dir: Path, compare_page: str) -> None:
    stability = _read(compare_dir / "summary.json")["stability"]
    assert [step["fraction"] for step in stability] == [0.25, 0.5, 1.0]
    assert '<a href="#stability">Stability</a>' in compare_page
    table = _section(compare_page, "stability").split('id="stability-table"', 1)[1]
    rows = re.findall(r'<tr><th scope="row">(.*?)</th><td class="num">(.*?)</td>'
                      r'<td class="num">(.*?)</td>', table)  # fmt: skip
    expected = sorted(
        (row["name"], step["fraction"], f"{row['n_reference']:,}")
        for step in stability
        for row in step["sets"]
    )
    assert [(name, f"{100 * f:g} %", n) for name, f, n in expected] == rows
    assert len(rows) == 6  # 2 sets x 3 fractions


# ------------------------------------------------------------------------------------------
# The empirical CDFs


def test_ecdf_image_beside_the_histogram(
    compare_dir: Path, compare_page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures = compare_page.split('<div class="figures">', 1)[1].split("</div>", 1)[0]
    assert 'src="histogram.png"' in figures and 'src="ecdf.png"' in figures
    assert "small shifts that histograms hide are plain in a CDF" in figures
    assert (compare_dir / "report" / "ecdf.png").read_bytes().startswith(PNG_MAGIC)

    # Drawn by matplotlib's own Axes.ecdf: one curve per set, and the reference curve.
    drawn: list[np.ndarray] = []
    original = Axes.ecdf

    def spy(self: Axes, x: Any, *args: Any, **kwargs: Any) -> Any:
        drawn.append(np.asarray(x))
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(Axes, "ecdf", spy)
    build_report(compare_dir)
    results = load_results(compare_dir)
    expected = [item.rarity[item.in_manifold] for item in results.sets]
    assert results.reference_rarity is not None
    expected.append(results.reference_rarity[np.isfinite(results.reference_rarity)])
    assert len(drawn) == len(expected) == 3
    for got, want in zip(drawn, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert (compare_dir / "report" / "ecdf.png").read_bytes().startswith(PNG_MAGIC)


# ------------------------------------------------------------------------------------------
# Sizes of leave-one-out datasets


def test_size_warning_when_datasets_differ_in_size(datasets_dir: Path) -> None:
    page = build_report(datasets_dir).read_text(encoding="utf-8")
    warning = _section(page, "summary").split('id="size-warning"', 1)[1].split("</p>", 1)[0]
    assert 'role="alert"' in warning
    assert "small 50, large 80" in warning
    assert "comparable only between datasets of equal size" in warning
    assert "<code>--subsample 50</code>" in warning
    # The datasets' analyses are there too.
    assert 'id="comparisons"' in page and 'id="stability"' in page
    assert re.search(r"\d \[[\d.]+, [\d.]+\]", " ".join(_summary_rows(page)["small"]))


def test_no_size_warning_at_equal_size_nor_in_compare_mode(
    tmp_path: Path, compare_page: str
) -> None:
    sets = {"one": _features(5, 40), "two": _features(6, 40, 1.2)}
    out = compare_datasets(sets, tmp_path / "equal", report=False, statistics=STATISTICS).path
    page = build_report(out).read_text(encoding="utf-8")
    assert "size-warning" not in page and "differ in size" not in page
    assert "size-warning" not in compare_page  # one real set: nothing to compare sizes of


# ------------------------------------------------------------------------------------------
# A run without statistics


def test_a_run_without_statistics_shows_none_of_it(tmp_path: Path) -> None:
    out = compare(_features(7, 60), {"only": _features(8, 30)}, tmp_path / "plain", report=False)
    page = build_report(out.path).read_text(encoding="utf-8")
    for anchor in ("comparisons", "stability", "intervals", "size-warning"):
        assert f'id="{anchor}"' not in page, anchor
    assert "#comparisons" not in page and "#stability" not in page
    assert not any("[" in cell for cells in _summary_rows(page).values() for cell in cells)
    assert "No interval for" not in page and "drawn at random" not in page
    assert (out.path / "report" / "ecdf.png").read_bytes().startswith(PNG_MAGIC)


def test_comparisons_without_bootstrap_have_no_intervals(tmp_path: Path) -> None:
    fakes = {"a": _features(10, 30), "b": _features(11, 30, 1.4)}
    out = compare(_features(9, 60), fakes, tmp_path / "two", report=False).path
    page = build_report(out).read_text(encoding="utf-8")
    section = _section(page, "comparisons")
    entry = _read(out / "summary.json")["comparisons"][0]
    assert f"<li>{escape(entry['sentence'])}</li>" in section
    assert "CI" not in section and "bootstrap" not in section
    assert 'id="intervals"' not in page and 'id="stability"' not in page


# ------------------------------------------------------------------------------------------
# Untrusted values


def _scripts(page: str) -> list[str]:
    return re.findall(r"<script[^>]*>", page)


def test_hostile_texts_are_escaped_and_a_damaged_statistics_record_is_left_out(
    damaged: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Texts of the right type are shown as text; the run.json record of the bootstrap, which
    the reader does not check, is left out field by field with a warning."""
    summary = _read(damaged / "summary.json")
    entry = summary["comparisons"][0]
    entry["sentence"] = HOSTILE
    entry["a"] = "<b>a</b>"
    _write(damaged / "summary.json", summary)

    run = _read(damaged / "run.json")
    bootstrap = run["statistics"]["bootstrap"]
    bootstrap.update(level=HOSTILE, resamples="many", seed=-1, method=[HOSTILE])
    bootstrap["resampled"] = HOSTILE
    bootstrap["no_interval"] = {HOSTILE: HOSTILE, "recall": 3}
    run["statistics"]["subsample"] = {"n": HOSTILE, "how": 5}
    run["statistics"]["stability"] = [HOSTILE]
    _write(damaged / "run.json", run)

    with caplog.at_level(logging.WARNING, logger="rarity_score.report"):
        page = build_report(damaged).read_text(encoding="utf-8")
    assert _scripts(page) == ['<script src="report.js">']
    assert "<img src=x" not in page and "<b>a</b>" not in page
    assert escape(HOSTILE) in _section(page, "comparisons")  # the sentence, as text
    assert escape(HOSTILE) in page.split('id="intervals"', 1)[1]  # the recorded texts, as text
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("rarity_score.report")]
    assert all("\n" not in line for line in lines)


@pytest.mark.parametrize(
    ("damage", "field"),
    [
        (lambda s: s["sets"][0].update(rarity_mean_ci=[HOSTILE, 1.0]), "[0].rarity_mean_ci"),
        (lambda s: s["sets"][0].update(rarity_median_ci={"low": 1}), "[0].rarity_median_ci"),
        (lambda s: s["sets"][0].update(rarity_q10_ci=[True, False]), "[0].rarity_q10_ci"),
        (lambda s: s["sets"][0].update(rarity_q90_ci=[2.0, 1.0]), "[0].rarity_q90_ci"),
        (lambda s: s["sets"][0].update(precision_ci=[0.1, 0.2, 0.3]), "[0].precision_ci"),
        (lambda s: s["comparisons"][0].update(p_value=HOSTILE), "comparisons[0].p_value"),
        (lambda s: s["comparisons"][0].update(mann_whitney_u=[1, 2]), "mann_whitney_u"),
        (lambda s: s["comparisons"][0].update(n_a=-5), "comparisons[0].n_a"),
        (
            lambda s: s["comparisons"][0].update(median_difference_ci=[HOSTILE, HOSTILE]),
            "comparisons[0].median_difference_ci",
        ),
        (
            lambda s: s["stability"][0]["sets"][0].update(n_reference=HOSTILE),
            "[0].n_reference",
        ),
    ],
)
def test_damaged_intervals_and_comparisons_are_one_line_naming_the_field(
    damaged: Path, damage: Any, field: str
) -> None:
    summary = _read(damaged / "summary.json")
    damage(summary)
    _write(damaged / "summary.json", summary)
    with pytest.raises(ReportError) as raised:
        build_report(damaged)
    message = str(raised.value)
    assert "\n" not in message and field in message and "summary.json" in message
    assert not (damaged / "report").exists()


@pytest.mark.parametrize("value", [HOSTILE, 0, True, 2.5])
def test_a_damaged_subsampled_from_is_one_line_naming_the_field(damaged: Path, value: Any) -> None:
    run = _read(damaged / "run.json")
    run["real"]["subsampled_from"] = value
    _write(damaged / "run.json", run)
    with pytest.raises(ReportError) as raised:
        build_report(damaged)
    message = str(raised.value)
    assert "\n" not in message and "real.subsampled_from" in message and "run.json" in message


def test_a_wrong_type_of_statistics_record_is_ignored(damaged: Path) -> None:
    run = _read(damaged / "run.json")
    run["statistics"] = HOSTILE
    _write(damaged / "run.json", run)
    page = build_report(damaged).read_text(encoding="utf-8")
    assert _scripts(page) == ['<script src="report.js">']
    # The intervals the rows hold are shown, without the record's settings.
    assert "run.json records no settings of the bootstrap" in page
    assert '<th scope="row">subsample</th>' not in page


def test_a_sentence_that_is_not_text_is_one_line_naming_the_field(damaged: Path) -> None:
    summary = _read(damaged / "summary.json")
    summary["comparisons"][0]["sentence"] = {"html": HOSTILE}
    _write(damaged / "summary.json", summary)
    with pytest.raises(ReportError) as raised:
        build_report(damaged)
    message = str(raised.value)
    assert "\n" not in message and "sentence" in message and "summary.json" in message
    assert not (damaged / "report").exists()
