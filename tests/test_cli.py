"""The `rarity` command line: exit codes, one-line errors, outputs, and the offline demo."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli

from rarity_score import __version__, evaluate
from rarity_score.cli import main

RNG = np.random.default_rng(2)
REAL = RNG.standard_normal((80, 5))
FAKE = np.vstack(
    [REAL[:20] + 0.05 * RNG.standard_normal((20, 5)), RNG.standard_normal((15, 5)) + 6]
)


@pytest.fixture
def files(tmp_path):
    np.save(tmp_path / "real.npy", REAL)
    np.save(tmp_path / "fake.npy", FAKE)
    return tmp_path / "real.npy", tmp_path / "fake.npy"


# ---------------------------------------------------------------------- success


def test_score_prints_summary_and_writes_outputs(capsys, files, tmp_path):
    real, fake = files
    out_csv, out_json = tmp_path / "per_sample.csv", tmp_path / "summary.json"
    code, out, err = run_cli(
        capsys, "score", "--real", real, "--fake", fake, "--out", out_csv, "--json", out_json
    )
    assert code == 0, err
    expected = evaluate(REAL, FAKE, k=3)
    n_in = int(expected.in_manifold.sum())
    for fragment in (
        "Settings",
        str(real),
        f"in manifold         {n_in} / {len(FAKE)}",
        f"over the {n_in} in-manifold samples",
        "precision",
        "coverage",
        "same feature extractor",
        str(out_csv),
        str(out_json),
    ):
        assert fragment in out, fragment

    with open(out_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(FAKE)
    for i, row in enumerate(rows):
        if expected.in_manifold[i]:
            assert float(row["rarity"]) == expected.rarity[i]
        else:
            assert row["rarity"] == "" and row["in_manifold"] == "false"

    data = json.loads(out_json.read_text(), parse_constant=pytest.fail)
    settings = data["settings"]
    assert settings["k"] == 3
    assert settings["real_features"] == str(real) and settings["fake_features"] == str(fake)
    assert settings["real_fingerprint"].startswith("sha256:")
    assert settings["package_version"] == __version__
    assert data["summary"]["n_in_manifold"] == n_in


def test_score_options_reach_the_engine(capsys, files, tmp_path):
    real, fake = files
    out_csv = tmp_path / "s.csv"
    code, _, err = run_cli(
        capsys,
        "score",
        "--real",
        real,
        "--fake",
        fake,
        "-k",
        "5",
        "--metrics",
        "rarity,precision",
        "--backend",
        "numpy",
        "--memory-budget",
        "1",
        "--out",
        out_csv,
        "--quiet",
    )
    assert code == 0, err
    with open(out_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["index", "in_manifold", "rarity", "sphere_index"]
    expected = evaluate(REAL, FAKE, k=5, metrics=["rarity"])
    got = np.array([float(row["rarity"]) if row["rarity"] else np.nan for row in rows])
    np.testing.assert_array_equal(got, expected.rarity)


def test_quiet_prints_nothing_and_verbose_logs(capsys, files):
    real, fake = files
    code, out, err = run_cli(capsys, "score", "--real", real, "--fake", fake, "-q")
    assert code == 0 and out == "" and err == ""
    code, out, err = run_cli(capsys, "-v", "score", "--real", real, "--fake", fake)
    assert code == 0 and "Settings" in out
    assert "rarity: INFO: evaluating" in err


def test_npz_key_syntax(capsys, tmp_path):
    np.savez(tmp_path / "both.npz", real=REAL, fake=FAKE)
    both = tmp_path / "both.npz"
    code, out, err = run_cli(capsys, "score", "--real", f"{both}:real", "--fake", f"{both}:fake")
    assert code == 0, err
    assert f"{len(FAKE)}" in out


def test_library_warnings_become_log_lines(capsys, tmp_path):
    np.save(tmp_path / "real.npy", REAL)
    np.save(tmp_path / "fake.npy", FAKE[:3])  # recall needs more than k generated samples
    code, out, err = run_cli(
        capsys, "score", "--real", tmp_path / "real.npy", "--fake", tmp_path / "fake.npy"
    )
    assert code == 0
    assert "rarity: WARNING: recall" in err and "Traceback" not in err
    assert "recall" in out and "n/a" in out


def test_version(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and __version__ in out


def test_help_explains_the_terms(capsys):
    code, out, _ = run_cli(capsys, "score", "--help")
    assert code == 0
    text = " ".join(out.split())
    for fragment in ("k-th nearest", "out of the manifold", "same feature extractor", "same k"):
        assert fragment in text, fragment


# ---------------------------------------------------------------------- bad input: exit 2


def test_missing_file(capsys, files, tmp_path):
    _, fake = files
    result = run_cli(capsys, "score", "--real", tmp_path / "nope.npy", "--fake", fake)
    assert_one_line_error(*result, "not found", "nope.npy")


def test_mismatched_dimensions(capsys, files, tmp_path):
    real, _ = files
    np.save(tmp_path / "narrow.npy", FAKE[:, :3])
    result = run_cli(capsys, "score", "--real", real, "--fake", tmp_path / "narrow.npy")
    assert_one_line_error(*result, "dimensions differ", "5", "3")


def test_k_too_large(capsys, files):
    real, fake = files
    result = run_cli(capsys, "score", "--real", real, "--fake", fake, "-k", str(len(REAL)))
    assert_one_line_error(*result, f"k={len(REAL)}", str(len(REAL) - 1))


def test_npz_with_several_arrays_and_no_key(capsys, files, tmp_path):
    _, fake = files
    np.savez(tmp_path / "many.npz", a=REAL, b=REAL)
    result = run_cli(capsys, "score", "--real", tmp_path / "many.npz", "--fake", fake)
    assert_one_line_error(*result, "several arrays", "a, b", "many.npz:")


def test_not_two_dimensional(capsys, files, tmp_path):
    real, _ = files
    np.save(tmp_path / "flat.npy", FAKE[0])
    result = run_cli(capsys, "score", "--real", real, "--fake", tmp_path / "flat.npy")
    assert_one_line_error(*result, "flat.npy", "2-D")


def test_output_folder_missing_fails_before_computing(capsys, files, tmp_path):
    real, fake = files
    target = tmp_path / "no" / "out.csv"
    result = run_cli(capsys, "score", "--real", real, "--fake", fake, "--out", target)
    assert_one_line_error(*result, "does not exist")


def test_usage_errors_exit_2(capsys, files):
    real, fake = files
    code, _, err = run_cli(capsys, "score", "--real", real, "--fake", fake, "--metrics", "bogus")
    assert code == 2 and "bogus" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "score", "--real", real)
    assert code == 2 and "--fake" in err
    code, _, err = run_cli(capsys)
    assert code == 2


# ---------------------------------------------------------------------- demo


# Small sizes: the demo's findings are checked at a larger size in tests/test_demo.py.
_DEMO_SMALL = ("--n-real", "300", "--samples-per-level", "60", "--n-dataset", "100")
_DEMO_SMALL += ("--input-size", "32")


def _needs_demo_extras() -> None:
    for module in ("mlxtend", "sklearn", "torch", "PIL"):
        pytest.importorskip(module)


def test_demo_in_process(capsys, tmp_path):
    _needs_demo_extras()
    out = tmp_path / "demo"
    code, stdout, err = run_cli(capsys, "demo", "--out", out, *_DEMO_SMALL, "--no-report")
    assert code == 0, err
    assert {"demo.json", "images", "truncation", "datasets", "cache"} <= {
        p.name for p in out.iterdir()
    }
    for title in ("1. Truncation", "2. Datasets", "What the demo measured", "Wrote"):
        assert title in stdout
    for name in ("psi=1.0", "psi=0.7", "psi=0.4", "MNIST", "sklearn-digits"):
        assert name in stdout
    assert "rarity demo: fitting the generative model" in err  # progress on stderr
    for path in (out / "demo.json", out / "truncation", out / "datasets"):
        assert f"  {path}\n" in stdout
    record = json.loads((out / "demo.json").read_text())
    assert record["demo"]["samples_per_level"] == 60
    assert record["findings"]["datasets"]["right"] in ("MNIST", "sklearn-digits")
    with open(out / "truncation" / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["name"] for row in rows] == ["psi=1.0", "psi=0.7", "psi=0.4"]
    assert [int(row["n"]) for row in rows] == [60, 60, 60]


def test_demo_refuses_a_foreign_folder(capsys, tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    code, stdout, err = run_cli(capsys, "demo", "--out", tmp_path, *_DEMO_SMALL)
    assert code == 2 and "not an earlier demo output" in err and stdout == ""
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def _console_script() -> str | None:
    beside = Path(sys.executable).with_name("rarity")
    if beside.exists():
        return str(beside)
    return shutil.which("rarity")


@pytest.mark.skipif(_console_script() is None, reason="console script `rarity` not installed")
def test_console_script_demo_and_error(tmp_path):
    _needs_demo_extras()
    script = _console_script()
    assert script is not None
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [script, "demo", "--out", str(tmp_path / "demo"), *_DEMO_SMALL],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "What the demo measured" in done.stdout
    for name in ("report/index.html", "histogram.png", "summary.csv"):
        assert (tmp_path / "demo" / "truncation" / name).is_file()
        assert (tmp_path / "demo" / "datasets" / name).is_file()
    assert str(tmp_path / "demo" / "truncation" / "histogram.png") in done.stdout

    failed = subprocess.run(
        [script, "score", "--real", str(tmp_path / "missing.npy"), "--fake", "x.npy"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert failed.returncode == 2
    assert failed.stderr.count("\n") == 1 and failed.stderr.startswith("rarity: error: ")
    assert "Traceback" not in failed.stderr


def test_machine_failures_are_one_line_not_tracebacks(monkeypatch, capsys, tmp_path):
    # Out of memory or a failing device is not bad input: exit 1, still one line.
    import rarity_score.manifold

    def fail(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(rarity_score.manifold.RealManifold, "__init__", fail)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "real.npy", rng.normal(size=(20, 4)))
    np.save(tmp_path / "fake.npy", rng.normal(size=(10, 4)))
    code = main(
        ["score", "--real", str(tmp_path / "real.npy"), "--fake", str(tmp_path / "fake.npy")]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err and "out of memory" in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1


# ---------------------------------------------------------------------- option values, progress


def _captured_options(monkeypatch, capsys, *argv):
    """Run ``rarity score`` with ``argv`` and return the options it passed to the API."""
    import rarity_score.compare

    seen = {}
    real_score = rarity_score.compare.score

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_score(*args, **kwargs)

    monkeypatch.setattr(rarity_score.compare, "score", spy)
    code, _, err = run_cli(capsys, "score", *argv)
    assert code == 0, err
    return seen


def test_option_values_are_the_option_classes_defaults(monkeypatch, capsys, files):
    from rarity_score import defaults
    from rarity_score.options import EngineOptions, ExtractionOptions

    real, fake = files
    seen = _captured_options(monkeypatch, capsys, "--real", real, "--fake", fake)
    assert seen["extraction"] == ExtractionOptions(progress=True)
    assert seen["engine"] == EngineOptions(progress=True)
    assert seen["k"] == defaults.K and seen["metrics"] is None
    seen = _captured_options(
        monkeypatch,
        capsys,
        "--real",
        real,
        "--fake",
        fake,
        "-q",
        "--backend",
        "numpy",
        "--memory-budget",
        "2",
        "--batch-size",
        "7",
        "--no-cache",
        "--metrics",
        "rarity",
    )
    assert seen["extraction"] == ExtractionOptions(batch_size=7, cache_dir=False, progress=False)
    assert seen["engine"] == EngineOptions(backend="numpy", memory_budget=2 * 2**20)


def test_the_demo_takes_the_same_declared_options(monkeypatch, capsys, tmp_path):
    # One declaration of --batch-size, --workers and -k: the demo's defaults are the package's.
    import rarity_score.demo
    from rarity_score import defaults
    from rarity_score.cli.parser import build_parser
    from rarity_score.options import EngineOptions, ExtractionOptions

    parser = build_parser()
    demo = parser.parse_args(["demo"])
    score = parser.parse_args(["score", "--real", "r", "--fake", "f"])
    for name in ("batch_size", "workers", "k", "cache_dir", "device"):
        assert getattr(demo, name) == getattr(score, name), name
    assert demo.batch_size == defaults.BATCH_SIZE == ExtractionOptions().batch_size

    seen = {}

    def stand_in(*args, **kwargs):
        seen.update(kwargs)
        raise ValueError("stand-in: stop here")

    monkeypatch.setattr(rarity_score.demo, "run_demo", stand_in)
    code, _, err = run_cli(capsys, "demo", "--out", tmp_path / "demo")
    assert code == 2 and "stand-in: stop here" in err
    assert seen["extraction"] == ExtractionOptions(progress=True)
    assert seen["engine"] == EngineOptions(progress=True)  # the demo's sweeps show progress too
    assert seen["command"][:2] == ["rarity", "demo"]


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (("--shard-size", "0"), ("argument --shard-size", "shard_size", "at least 1")),
        (("--batch-size", "-3"), ("argument --batch-size", "-3")),
        (("--input-size", "0"), ("argument --input-size",)),
        (("-k", "0"), ("argument -k", "k must be a whole number of at least 1")),
        (("--backend", "jax"), ("argument --backend", "jax", "auto, numpy, torch")),
        (("--no-cache", "--cache-dir", "x"), ("--no-cache and --cache-dir",)),
    ],
)
def test_a_value_is_checked_by_its_option_class_and_names_the_option(
    capsys, files, argv, fragments
):
    real, fake = files
    result = run_cli(capsys, "score", "--real", real, "--fake", fake, *argv)
    assert_one_line_error(*result, *fragments)


def test_a_bad_metric_is_named_once(capsys, files):
    from rarity_score import metrics

    real, fake = files
    result = run_cli(capsys, "score", "--real", real, "--fake", fake, "--metrics", "bogus")
    assert_one_line_error(*result, "bogus", *metrics.names())
    assert result[2].count("--metrics") == 1  # not "argument --metrics: --metrics: ..."


def test_demo_size_checks_name_the_option(capsys, tmp_path):
    result = run_cli(capsys, "demo", "--out", tmp_path / "demo", "--n-real", "0")
    assert_one_line_error(*result, "argument --n-real", "n_real must be at least 1")
    assert not (tmp_path / "demo").exists()


def test_metrics_help_lists_the_registry(capsys):
    from rarity_score import metrics

    code, out, _ = run_cli(capsys, "compare", "--help")
    assert code == 0
    listed = " ".join(out.split())
    assert f"from: {', '.join(metrics.names())} (default: all)" in listed


def _bars(monkeypatch, terminal: bool) -> list[str]:
    """Record the sweep's progress bars; stderr is a terminal when ``terminal``."""
    import rarity_score.manifold

    made: list[str] = []
    real_bar = rarity_score.manifold.progress_bar

    def spy(total, description, **kwargs):
        made.append(description)
        return real_bar(total, description, **kwargs)

    monkeypatch.setattr(rarity_score.manifold, "progress_bar", spy)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    return made


def test_the_sweep_shows_progress_unless_quiet_or_not_a_terminal(monkeypatch, capsys, files):
    real, fake = files
    made = _bars(monkeypatch, terminal=True)
    code, _, err = run_cli(capsys, "score", "--real", real, "--fake", fake)
    assert code == 0, err
    assert any(description.startswith("k-NN") for description in made), made
    made.clear()
    code, _, err = run_cli(capsys, "score", "--real", real, "--fake", fake, "-q")
    assert code == 0 and err == ""
    assert made == []
    made = _bars(monkeypatch, terminal=False)
    code, _, err = run_cli(
        capsys,
        "compare",
        "--real",
        real,
        "--fake",
        f"a={fake}",
        "--out",
        files[0].parent / "run",
        "--no-report",
    )
    assert code == 0, err
    assert made == []


def test_printed_tables_come_from_the_run_not_from_disk(monkeypatch, capsys, tmp_path):
    # `rarity compare` and `rarity demo` print what the API returned: reading the results
    # directory back (the old _print_table) fails here.
    import rarity_score.demo
    import rarity_score.results_dir
    from rarity_score.compare import compare, compare_datasets
    from rarity_score.demo import DemoResult
    from rarity_score.demo.findings import findings, rarest_findings, spaces_findings
    from rarity_score.filtering import Rule, select, write_selection
    from rarity_score.spaces.run import compare_spaces

    # The whole result is made before the readers are replaced: only the printing is under test.
    out = tmp_path / "made"
    out.mkdir()
    fakes = {"psi=1.0": FAKE, "psi=0.4": 0.5 * FAKE}
    truncation = compare(REAL, fakes, out / "truncation", report=False)
    datasets = compare_datasets({"A": REAL, "B": FAKE}, out / "datasets", report=False)
    space_runs = {
        "plain": truncation,
        "scaled": compare(3 * REAL, {"psi=1.0": 3 * FAKE}, out / "scaled", report=False),
    }
    spaces = compare_spaces(
        {name: run.path for name, run in space_runs.items()}, out / "spaces", report=False
    )
    selection = select(truncation.path, Rule.rarest(3), "psi=1.0")
    rarest = write_selection(selection, out / "rarest")
    made = DemoResult(
        out_dir=out,
        images=out / "images",
        config=None,
        truncation_run=truncation,
        datasets_run=datasets,
        findings=findings(truncation, datasets),
        space_runs=space_runs,
        spaces_run=spaces,
        spaces_found=spaces_findings(spaces.rows, "psi=1.0", [{"name": n} for n in space_runs]),
        selection=selection,
        rarest=rarest,
        rarest_found=rarest_findings(selection, rarest),
    )

    def stand_in(out_dir, config, **kwargs):
        return made

    def no_reading(*args, **kwargs):
        raise AssertionError("the command read back what the run returned")

    monkeypatch.setattr(rarity_score.demo, "run_demo", stand_in)
    for name in ("read_run", "read_summary", "load_results"):
        monkeypatch.setattr(rarity_score.results_dir, name, no_reading)
    code, out, err = run_cli(capsys, "demo", "--out", tmp_path / "demo")
    assert code == 0, err
    for fragment in ("1. Truncation", "psi=0.4", "2. Datasets", "What the demo measured"):
        assert fragment in out
    assert "plain" in out and "scaled" in out and str(rarest) in out
    np.save(tmp_path / "real.npy", REAL)
    np.save(tmp_path / "fake.npy", FAKE)
    argv = ["--real", tmp_path / "real.npy", "--fake", f"b={tmp_path / 'fake.npy'}"]
    code, out, err = run_cli(capsys, "compare", *argv, "--out", tmp_path / "run", "--no-report")
    assert code == 0, err
    assert "Method:" in out and str(tmp_path / "run" / "summary.csv") in out
