"""The results-directory format (rarity_score.results_dir): its columns come from the metric
registry (a metric registered in a test reaches every file and the report without any edit of the
format or the report), one reader (``rarity_score.load_results``), the JSON of ``rarity score``
in the spelling of run.json / summary.json, the report's one owner of the histogram, and a
reader that loads no engine."""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli

import rarity_score
from rarity_score import metrics
from rarity_score.compare import compare
from rarity_score.features.pipeline import FeatureSet, save_feature_set
from rarity_score.metrics.base import Column, Gallery, Metric, SetValue
from rarity_score.metrics.rarity import SMALLEST_SPHERE
from rarity_score.results_dir import (
    load_results,
    read_run,
    read_summary,
    summary_columns,
    table_values,
)

DIM = 6


def _array(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).normal(size=(n, DIM))).astype(np.float32)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    def save(name: str, array: np.ndarray) -> Path:
        names = [f"{name}_{i:03d}.png" for i in range(len(array))]
        return save_feature_set(tmp_path / f"{name}.npz", FeatureSet(array, names, extractor="x"))

    return {"real": save("real", _array(50, 0)), "a": save("a", _array(20, 1, 1.3))}


# ---------------------------------------------------------------------- a metric of a test


def _toy_compute(finished, context):
    n = len(finished["in_manifold"])
    score = np.arange(n, dtype=np.float64)[::-1].copy()  # by position: generated input order
    return {"toy_flag": np.arange(n) % 3 == 0, "toy_score": score}, None


def _toy_summarize(computed):
    score = computed.columns.get("toy_score")
    return None if score is None else {"mean": float(np.mean(score))}


#: A metric the package does not know: one file's worth of declarations, registered in the test.
TOY = Metric(
    name="toy",
    description="a metric of the tests",
    reducers=(SMALLEST_SPHERE,),
    compute=_toy_compute,
    columns=(
        Column("toy_flag", "toy flag", "bool", "every third sample"),
        Column("toy_score", "toy score", "float", "the samples counted down"),
    ),
    values=(SetValue("toy_mean", "toy mean", ("toy", "mean")),),
    galleries=(
        Gallery(
            "Toy picks", "every third sample, lowest score first", "toy_flag", True, "toy_score"
        ),
    ),
    summarize=_toy_summarize,
)


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_a_registered_metric_reaches_every_file_and_the_report(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    from pipeline_helpers import TinyExtractor, write_images

    from rarity_score.options import ExtractionOptions

    real, fake = tmp_path / "real", tmp_path / "fake"
    write_images(real, 24, size=16, seed=1)
    write_images(fake, 12, size=16, seed=2, prefix="gen")
    extraction = ExtractionOptions(extractor=TinyExtractor(), cache_dir=False, progress=False)
    with metrics.using(TOY):
        result = compare(real, {"a": fake}, tmp_path / "out", extraction=extraction)
        out = result.path
        expected_score = np.arange(12, dtype=np.float64)[::-1]
        flags = np.arange(12) % 3 == 0

        rows = _csv(out / "sets" / "a.csv")
        assert list(rows[0])[-4:] == ["toy_flag", "toy_score", "sphere_name", "nearest_real_name"]
        assert [row["toy_flag"] == "true" for row in rows] == flags.tolist()
        assert [float(row["toy_score"]) for row in rows] == expected_score.tolist()
        with np.load(out / "sets" / "a.npz") as data:
            np.testing.assert_array_equal(data["toy_score"], expected_score)
            assert data["toy_flag"].dtype == bool and "toy" in data["metrics"].tolist()

        assert summary_columns()[-1] == "toy_mean"
        (row,) = _csv(out / "summary.csv")
        assert list(row) == list(summary_columns()) and float(row["toy_mean"]) == 5.5
        assert read_summary(out)[0]["toy_mean"] == 5.5 == result.rows[0]["toy_mean"]
        assert "toy mean" in (out / "summary.md").read_text()

        loaded = load_results(out)
        item = loaded.sets[0]
        np.testing.assert_array_equal(item.toy_score, expected_score)
        assert [c.name for c in loaded.columns][-2:] == ["toy_flag", "toy_score"]
        # Every registered metric's galleries, in registry order: the toy's among them.
        galleries = loaded.galleries(item)
        assert galleries == metrics.galleries_of(metrics.names()) and TOY.galleries[0] in galleries

        # The report: the table's columns, the summary's heading and the gallery.
        data = (out / "report" / "data" / "set-a.js").read_text()
        table = json.loads(re.search(r'"table": (\[.*?\]), "columns"', data).group(1))
        assert {"key": "toy_score", "label": "toy score", "kind": "float"} in table
        assert {"key": "toy_flag", "label": "toy flag", "kind": "flag"} in table
        page = (out / "report" / "index.html").read_text()
        assert 'data-col="toy_mean">toy mean</th>' in page
        index = galleries.index(TOY.galleries[0])
        gallery = page.split(f'data-gallery="declared-{index}"', 1)[1].split("\n  </div>", 1)[0]
        assert "Toy picks" in gallery
        shown = [int(r) for r in re.findall(r'data-row="(\d+)"', gallery)]
        assert shown == [9, 6, 3, 0]  # the flagged samples, lowest toy score first
        assert "<dt>toy score</dt>" in gallery

    # Without the metric registered, the same directory still reads: its columns are ignored.
    assert "toy_mean" not in summary_columns()
    assert "toy_score" not in load_results(out).sets[0].columns


# ---------------------------------------------------------------------- the reader


def test_load_results_is_public_and_reads_what_was_computed(files, tmp_path):
    assert rarity_score.load_results is load_results
    result = compare(files["real"], {"a": files["a"]}, tmp_path / "out", report=False)
    results = rarity_score.load_results(result.path)
    (item,) = results.sets
    (evaluation,) = result.evaluations
    for name, values in evaluation.columns.items():
        np.testing.assert_array_equal(item.columns[name], values)
    assert item.names == [f"a_{i:03d}.png" for i in range(20)]
    assert results.summary == result.rows
    assert {k: v for k, v in results.run.items() if k != "real_has_images"} == result.run
    assert results.real_names == [f"real_{i:03d}.png" for i in range(50)]


def test_real_has_images_is_derived_and_an_older_record_still_reads(files, tmp_path):
    out = compare(files["real"], {"a": files["a"]}, tmp_path / "out", report=False).path
    written = json.loads((out / "run.json").read_text())
    assert "real_has_images" not in written and read_run(out)["real_has_images"] is False
    written["real_has_images"] = True  # what earlier versions wrote
    (out / "run.json").write_text(json.dumps(written))
    assert read_run(out)["real_has_images"] is True


def test_the_tables_read_the_declarations():
    headings = [value.heading for value in table_values("compare")]
    assert headings[:3] == ["n", "in manifold", "fraction in"]
    assert "precision" in headings and "out of manifold" not in headings
    datasets = [value.key for value in table_values("datasets")]
    assert "rarity_median" in datasets and "precision" not in datasets


def test_importing_the_reader_loads_no_engine_and_no_extractor():
    code = (
        "import sys, rarity_score.results_dir, rarity_score.report; "
        "bad = [m for m in sys.modules if m.startswith(('rarity_score.manifold', "
        "'rarity_score.features', 'rarity_score.sources', 'rarity_score.compare', "
        "'rarity_score.metrics'))]; assert not bad, bad"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------- rarity score --json


def test_score_json_uses_the_spelling_of_run_json(capsys, files, tmp_path):
    out_json, results = tmp_path / "s.json", tmp_path / "results"
    code, _, err = run_cli(
        capsys, "score", "--real", files["real"], "--fake", files["a"], "--json", out_json,
        "--report", results, "--no-cache", "-q",
    )  # fmt: skip
    assert code == 0, err
    record = json.loads(out_json.read_text())
    run = read_run(results)
    assert record["mode"] == run["mode"] == "score" and record["method"] == run["method"]
    assert record["k"] == run["k"] and record["dim"] == run["dim"] == DIM
    assert record["extractor"] == run["extractor"]
    assert set(record["extractor"]) == {"name", "preprocessing", "weights_id", "dim"}
    assert record["real"] == json.loads((results / "run.json").read_text())["real"]
    (entry,) = record["sets"]
    assert entry.items() <= run["sets"][0].items()
    assert record["rows"] == read_summary(results)
    assert list(record["rows"][0]) == list(summary_columns())
    assert record["notes"]["comparability"] == run["notes"]["comparability"]
    # The names earlier versions wrote stay, for their readers.
    settings = record["settings"]
    assert settings["feature_extractor"] == record["extractor"]["name"] == "x"
    assert settings["real_fingerprint"] == run["real"]["fingerprint"]
    assert record["summary"]["n_in_manifold"] == record["rows"][0]["n_in_manifold"]


def test_score_json_settings_keep_the_paths_as_typed(capsys, files, tmp_path, monkeypatch):
    # settings.real_features / fake_features: what was typed (as earlier versions wrote);
    # real.source, as in run.json, is the absolute path.
    monkeypatch.chdir(files["real"].parent)
    real, fake = files["real"].name, files["a"].name
    out_json = tmp_path / "s.json"
    code, _, err = run_cli(
        capsys, "score", "--real", real, "--fake", fake, "--json", out_json, "--no-cache", "-q"
    )
    assert code == 0, err
    record = json.loads(out_json.read_text())
    assert record["settings"]["real_features"] == real
    assert record["settings"]["fake_features"] == fake
    assert record["real"]["source"] == str(files["real"].resolve())


# ---------------------------------------------------------------------- a missing matplotlib


@pytest.fixture
def no_matplotlib(monkeypatch):
    """matplotlib made unimportable, as on an install without the report extra."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError


def test_without_matplotlib_compare_warns_once_and_builds_no_half_report(
    files, tmp_path, caplog, no_matplotlib
):
    with caplog.at_level(logging.WARNING, logger="rarity_score"):
        out = compare(files["real"], {"a": files["a"]}, tmp_path / "out").path
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "report not built" in warnings[0] and "pip install 'rarity-score[report]'" in warnings[0]
    assert not (out / "report").exists() and not (out / "histogram.png").exists()
    assert not any(name.startswith(("report/", "histogram")) for name in read_run(out)["files"])


def test_without_matplotlib_rarity_report_is_exit_2_and_writes_nothing(
    capsys, files, tmp_path, no_matplotlib
):
    out = compare(files["real"], {"a": files["a"]}, tmp_path / "out", report=False).path
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = run_cli(capsys, "report", out)
    assert_one_line_error(*result, "matplotlib", "rarity-score[report]")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_the_output_folder_is_hashed_once_before_the_work_and_once_at_the_swap(
    files, tmp_path, monkeypatch, capsys
):
    from rarity_score.io import publish

    out = tmp_path / "out"
    compare(files["real"], {"a": files["a"]}, out, report=False)
    calls: list[Path] = []
    original = publish.foreign_entries

    def counted(folder, *args, **kwargs):
        calls.append(Path(folder))
        return original(folder, *args, **kwargs)

    monkeypatch.setattr(publish, "foreign_entries", counted)
    compare(files["real"], {"b": files["a"]}, out, report=False)
    # Once before any work; then only the old folder moved aside is checked (nothing can be
    # added to it unseen), before the swap and after its files are removed one by one.
    assert calls.count(out) == 1 and calls[0] == out
    assert all(path.name.endswith(".old") for path in calls[1:]) and len(calls) == 3
    calls.clear()
    code, _, err = run_cli(
        capsys, "compare", "--real", files["real"], "--fake", f"a={files['a']}", "--out", out,
        "--no-report", "-q",
    )  # fmt: skip
    assert code == 0, err
    assert calls.count(out) == 1 and len(calls) == 3


def test_an_output_is_replaced_only_by_its_own_kind(tmp_path):
    from rarity_score.results_dir.write import check_output_dir

    first = compare(_array(20, 0), {"s": _array(8, 1)}, tmp_path / "run", report=False).path
    assert check_output_dir(first, kind="results").path == first
    assert check_output_dir(first).path == first  # any kind: for callers that check others'
    with pytest.raises(
        ValueError,
        match="holds a results directory of rarity compare, not an output of rarity spaces",
    ):
        check_output_dir(first, kind="spaces")
    run = json.loads((first / "run.json").read_text())
    run["mode"] = "spaces"
    (first / "run.json").write_text(json.dumps(run))
    with pytest.raises(ValueError, match="holds an output of rarity spaces, not a results dir"):
        check_output_dir(first, kind="results")
    with pytest.raises(ValueError, match="unknown kind of output"):
        check_output_dir(tmp_path / "new", kind="other")


def test_a_tampered_mode_of_any_json_type_is_one_line(tmp_path):
    from rarity_score.results_dir.write import check_output_dir

    first = compare(_array(20, 0), {"s": _array(8, 1)}, tmp_path / "run", report=False).path
    run = json.loads((first / "run.json").read_text())
    for mode in (["compare"], {"a": 1}, 3):
        run["mode"] = mode
        (first / "run.json").write_text(json.dumps(run))
        with pytest.raises(ValueError, match="of another kind"):
            check_output_dir(first, kind="results")


def test_no_output_inside_another_output(tmp_path):
    """Replacing a part of an output would leave its summary describing files that are gone."""
    from rarity_score.results_dir.write import check_output_dir

    outer = compare(_array(20, 0), {"s": _array(8, 1)}, tmp_path / "run", report=False).path
    for inner in (outer / "new", outer / "sets" / "deeper"):
        with pytest.raises(ValueError, match=r"lies inside .*run, an output of rarity-score"):
            check_output_dir(inner)
    (outer / "report").mkdir()  # an empty folder of an output is no place for another one
    with pytest.raises(ValueError, match="lies inside"):
        compare(_array(20, 0), {"t": _array(8, 1)}, outer / "report", report=False)
    assert list((outer / "report").iterdir()) == []
    (outer / "report").rmdir()
    assert check_output_dir(tmp_path / "beside").path == tmp_path / "beside"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_pipe_named_run_json_is_refused_not_waited_on(tmp_path, capsys):
    """Reading a results directory, or asking whether a folder is one, must not block on a
    FIFO put where run.json should be."""
    from rarity_score.results_dir.write import check_output_dir

    folder = tmp_path / "piped"
    folder.mkdir()
    os.mkfifo(folder / "run.json")
    with pytest.raises(rarity_score.results_dir.ResultsError, match="not a regular file"):
        rarity_score.load_results(folder)
    assert_one_line_error(*run_cli(capsys, "report", folder), "not a regular file")
    assert check_output_dir(folder / "inner").path == folder / "inner"
