"""--bootstrap, --ci, --seed, --subsample and --stability on the command line (issue #12)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("features")
    rng = np.random.default_rng(0)
    arrays = {
        "real": rng.normal(size=(200, 6)),
        "narrow": 0.8 * rng.normal(size=(120, 6)),
        "wide": 1.2 * rng.normal(size=(150, 6)),
    }
    paths = {}
    for name, array in arrays.items():
        paths[name] = folder / f"{name}.npy"
        np.save(paths[name], array.astype(np.float32))
    return paths


def test_compare_prints_intervals_and_the_comparison(capsys, files, tmp_path) -> None:
    out = tmp_path / "run"
    code, printed, err = run_cli(
        capsys,
        "compare",
        "--real",
        files["real"],
        "--fake",
        f"narrow={files['narrow']}",
        "--fake",
        f"wide={files['wide']}",
        "--out",
        out,
        "--no-report",
        "--bootstrap",
        "200",
        "--ci",
        "0.9",
        "--seed",
        "3",
    )
    assert code == 0, err
    assert "Intervals in brackets: 90 % percentile bootstrap over 200 resamples" in printed
    assert "No interval for recall, coverage" in printed
    assert "narrow is less rare than wide: median -" in printed and "90 % CI [" in printed
    summary = json.loads((out / "summary.json").read_text())
    row = summary["sets"][0]
    assert f"{row['rarity_median']:.4g} [" in printed
    record = json.loads((out / "run.json").read_text())["statistics"]["bootstrap"]
    assert record["level"] == 0.9 and record["seed"] == 3 and record["resamples"] == 200
    # `rarity report` prints what the run printed, read back.
    code, reprinted, err = run_cli(capsys, "report", out)
    assert code == 0, err
    assert "narrow is less rare than wide" in reprinted


def test_score_json_holds_the_intervals_and_the_stability(capsys, files, tmp_path) -> None:
    record_path = tmp_path / "s.json"
    code, printed, err = run_cli(
        capsys,
        "score",
        "--real",
        files["real"],
        "--fake",
        files["wide"],
        "--json",
        record_path,
        "--bootstrap",
        "100",
        "--stability",
    )
    assert code == 0, err
    record = json.loads(record_path.read_text())
    low, high = record["summary_ci"]["rarity"]["median"]
    assert low <= record["summary"]["rarity"]["median"] <= high
    assert record["rows"][0]["rarity_median_ci"] == [low, high]
    assert [step["fraction"] for step in record["stability"]] == [0.25, 0.5, 1.0]
    assert "Stability: the run repeated" in printed
    assert "median" in printed and "[" in printed


def test_datasets_subsample_evens_the_sizes_and_warns_without(capsys, files, tmp_path) -> None:
    given = [f"narrow={files['narrow']}", f"wide={files['wide']}"]
    code, printed, err = run_cli(capsys, "datasets", *given, "--out", tmp_path / "a", "--no-report")
    assert code == 0, err
    assert "differ in size (narrow 120, wide 150)" in err and "--subsample 120" in err
    code, printed, err = run_cli(
        capsys,
        "datasets",
        *given,
        "--out",
        tmp_path / "b",
        "--no-report",
        "--subsample",
        "120",
    )
    assert code == 0, err
    assert "differ in size" not in err
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert [(s["n"], s["subsampled_from"]) for s in run["sets"]] == [(120, None), (120, 150)]
    assert "narrow is less rare than wide" in printed


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("--bootstrap", "50", "--bootstrap: bootstrap needs at least 100"),
        ("--bootstrap", "many", "--bootstrap"),
        ("--ci", "1.5", "--ci: level must be a number between 0 and 1"),
        ("--ci", "nan", "--ci"),
        ("--seed", "-2", "--seed"),
        ("--subsample", "1", "--subsample"),
    ],
)
def test_bad_values_are_one_line_before_any_work(capsys, files, tmp_path, option, value, fragment):
    code, out, err = run_cli(
        capsys,
        "compare",
        "--real",
        files["real"],
        "--fake",
        f"a={files['narrow']}",
        "--out",
        tmp_path / "run",
        option,
        value,
    )
    assert_one_line_error(code, out, err, fragment)
    assert not (tmp_path / "run").exists()


def test_bootstrap_without_scipy_is_one_line(capsys, files, tmp_path, monkeypatch) -> None:
    # None in sys.modules: every import of it fails, whether it was imported before or not.
    for name in ("scipy", "scipy.stats"):
        monkeypatch.setitem(sys.modules, name, None)
    code, out, err = run_cli(
        capsys,
        "score",
        "--real",
        files["real"],
        "--fake",
        files["wide"],
        "--bootstrap",
        "100",
    )
    assert_one_line_error(code, out, err, "--bootstrap needs scipy", "rarity-score[stats]")
