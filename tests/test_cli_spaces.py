"""`rarity spaces`: both forms, the printed table and files, --help, and every refusal as exit 2
with one line, before anything is written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from rarity_score.compare import compare
from rarity_score.features.pipeline import FeatureSet

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import assert_one_line_error, run_cli
from pipeline_helpers import write_images

pytest.importorskip("scipy")
pytest.importorskip("sklearn")

DIM = 4


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, Path]:
    """Results directories of the same named samples: A, B (A scaled and shifted); unnamed U, and
    V with one sample fewer; W with other sample names."""
    root = tmp_path_factory.mktemp("cli-spaces")
    rng = np.random.default_rng(3)
    real = rng.normal(size=(50, DIM))
    fake = 1.4 * rng.normal(size=(30, DIM))
    real_names = [f"r{i}.png" for i in range(50)]
    names = [f"g{i}.png" for i in range(30)]

    def run(name, real_x, fake_x, fake_names):
        fakes = {"s": FeatureSet(fake_x, fake_names)}
        return compare(FeatureSet(real_x, real_names), fakes, root / name, k=3, report=False).path

    return {
        "root": root,
        "A": run("A", real, fake, names),
        "B": run("B", 2 * real - 1, 2 * fake - 1, names),
        "W": run("W", real, fake, [f"x{i}.png" for i in range(30)]),
        "U": compare(real, {"s": fake}, root / "U", k=3, report=False).path,
        "V": compare(real, {"s": fake[:-1]}, root / "V", k=3, report=False).path,
    }


def test_the_directory_form_prints_the_table_and_the_files(dirs, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        capsys, "spaces", dirs["A"], f"scaled={dirs['B']}", "--out", out, "--no-report"
    )
    assert code == 0, stderr
    assert "A vs scaled" in stdout and "spearman" in stdout and "1.000" in stdout
    assert "Wrote" in stdout and str(out / "summary.csv") in stdout
    assert "report" not in stdout.split("Wrote")[1]
    rows = json.loads((out / "summary.json").read_text())
    assert [(r["set"], r["space_a"], r["space_b"]) for r in rows] == [("s", "A", "scaled")]
    assert rows[0]["spearman"] == 1.0 and rows[0]["kappa"] == 1.0
    run = json.loads((out / "run.json").read_text())
    assert run["command"][:2] == ["rarity", "spaces"]


def test_the_image_form_scores_each_space(tmp_path, capsys):
    pytest.importorskip("torch")
    write_images(tmp_path / "real", 20, size=10, seed=1)
    write_images(tmp_path / "psi0.7", 10, size=10, seed=2, prefix="gen")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        capsys,
        "spaces",
        "--real",
        tmp_path / "real",
        "--fake",
        tmp_path / "psi0.7",
        "--extractor",
        "pixels",
        "--extractor",
        "pixels+pca3",
        "--input-size",
        "8",
        "-k",
        "3",
        "--cache-dir",
        tmp_path / "cache",
        "--out",
        out,
    )
    assert code == 0, stderr
    assert "pixels vs pixels+pca3" in stdout
    assert str(out / "spaces") in stdout
    run = json.loads((out / "run.json").read_text())
    assert [s["name"] for s in run["sets"]] == ["psi0.7"]  # named after the folder
    assert [s["results"] for s in run["spaces"]] == ["spaces/pixels", "spaces/pixels_pca3"]
    assert (out / "spaces" / "pixels_pca3" / "run.json").is_file()
    if "report/index.html" in run["files"]:  # the report needs matplotlib
        assert str(out / "report" / "index.html") in stdout


def test_a_part_of_a_spaces_output_gets_no_report_of_its_own(tmp_path, capsys):
    pytest.importorskip("torch")
    write_images(tmp_path / "real", 20, size=10, seed=1)
    write_images(tmp_path / "gen", 10, size=10, seed=2, prefix="gen")
    out = tmp_path / "out"
    argv = ["--real", tmp_path / "real", "--fake", tmp_path / "gen", "--extractor", "pixels"]
    argv += ["--extractor", "pixels+pca3", "--input-size", "8", "-k", "3"]
    argv += ["--cache-dir", tmp_path / "cache", "--out", out, "--no-report"]
    code, _, stderr = run_cli(capsys, "spaces", *argv)
    assert code == 0, stderr
    files = json.loads((out / "run.json").read_text())["files"]
    code, stdout, stderr = run_cli(capsys, "report", out / "spaces" / "pixels")
    assert_one_line_error(code, stdout, stderr, "is part of the output of rarity spaces")
    assert json.loads((out / "run.json").read_text())["files"] == files
    assert not (out / "spaces" / "pixels" / "report").exists()
    code, _, stderr = run_cli(capsys, "spaces", *argv)  # still ours: replaced
    assert code == 0, stderr


def test_help_explains_both_forms_the_statistics_and_the_outputs(capsys):
    code, stdout, _ = run_cli(capsys, "spaces", "--help")
    assert code == 0
    text = " ".join(stdout.split())
    for fragment in (
        "rarity spaces --real REAL --fake [NAME=]PATH",
        "rarity spaces [NAME=]RESULTS_DIR [NAME=]RESULTS_DIR",
        "Examples:",
        "+pcaN",
        "Spearman and Kendall",
        "Cohen's kappa",
        "Jaccard",
        "summary.csv",
        "spaces/SPACE/",
        "report/index.html",
        "--no-report",
    ):
        assert fragment in text, fragment
    assert "--extractor SPACE" in text


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["{A}", "--real", "{A}", "--out", "{out}"], ["the two forms do not mix", "--real"]),
        (["{A}", "--extractor", "pixels", "--out", "{out}"], ["do not mix", "--extractor"]),
        (["{A}", "--out", "{out}"], ["at least two spaces", "not 1"]),
        (["--out", "{out}"], ["give two or more results directories"]),
        (
            ["--real", "{A}", "--fake", "{A}", "--extractor", "pixels", "--out", "{out}"],
            ["at least two spaces", "--extractor A --extractor B"],
        ),
        (
            [
                "--real",
                "{A}",
                "--extractor",
                "pixels",
                "--extractor",
                "vgg16-fc2",
                "--out",
                "{out}",
            ],
            ["--fake missing"],
        ),
        (["{A}", "{A}", "--out", "{out}"], ["duplicate space name 'A'", "give NAME=PATH"]),
        (["x={A}", "x={B}", "--out", "{out}"], ["duplicate space name 'x'"]),
        (["{A}", "{B}", "-k", "5", "--out", "{out}"], ["-k and --metrics apply to the image form"]),
        (["{A}", "{W}", "--out", "{out}"], ["do not hold the same samples", "'g0.png'"]),
        (["{U}", "{V}", "--out", "{out}"], ["30 and 29 samples"]),
        (["{A}", "{B}", "--out", "{A}/sets/out"], ["lies inside the input folder"]),
        (["{A}", "{B}", "--out", "{B}"], ["is also an input"]),
        (
            ["{A}", "{B}", "--out", "{foreign}"],
            ["cannot write results to", "is not a results directory"],
        ),
    ],
)
def test_refusals_are_one_line_exit_2(dirs, tmp_path, capsys, argv, fragments):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "sets").mkdir()
    (foreign / "run.json").write_text('{"format": "none"}')
    values = {key: str(value) for key, value in dirs.items()}
    values.update(out=str(tmp_path / "out"), foreign=str(foreign))
    code, stdout, stderr = run_cli(capsys, "spaces", *(arg.format(**values) for arg in argv))
    assert_one_line_error(code, stdout, stderr, *fragments)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in foreign.iterdir()) == ["run.json", "sets"]


def test_a_spaces_output_as_input_and_its_report(dirs, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, stderr = run_cli(capsys, "spaces", dirs["A"], dirs["B"], "--out", out, "--no-report")
    assert code == 0, stderr
    code, stdout, stderr = run_cli(capsys, "spaces", out, dirs["A"], "--out", tmp_path / "again")
    assert_one_line_error(code, stdout, stderr, "is the output of `rarity spaces`")
    (out / "notes.txt").write_text("mine")  # an earlier output, with a file of the user's
    code, stdout, stderr = run_cli(capsys, "spaces", dirs["A"], dirs["B"], "--out", out)
    assert_one_line_error(code, stdout, stderr, "holds files rarity-score did not write")
    (out / "notes.txt").unlink()
    pytest.importorskip("matplotlib")
    code, stdout, stderr = run_cli(capsys, "report", out)
    assert code == 0, stderr
    assert (out / "report" / "index.html").is_file()
    assert "A vs B" in stdout and str(out / "report" / "index.html") in stdout


def test_an_output_of_another_command_is_refused_both_ways(dirs, tmp_path, capsys):
    before = sorted(p.name for p in dirs["U"].iterdir())
    code, stdout, stderr = run_cli(capsys, "spaces", dirs["A"], dirs["B"], "--out", dirs["U"])
    assert_one_line_error(code, stdout, stderr, "holds a results directory of rarity compare")
    assert sorted(p.name for p in dirs["U"].iterdir()) == before
    out = tmp_path / "out"
    code, _, stderr = run_cli(capsys, "spaces", dirs["A"], dirs["B"], "--out", out, "--no-report")
    assert code == 0, stderr
    feats = tmp_path / "f.npy"
    np.save(feats, np.zeros((10, DIM)))
    code, stdout, stderr = run_cli(
        capsys, "compare", "--real", feats, "--fake", f"s={feats}", "--out", out, "--no-report"
    )
    assert_one_line_error(code, stdout, stderr, "holds an output of rarity spaces")
    assert (out / "summary.json").is_file()


def test_the_real_option_says_features_are_refused(capsys):
    code, stdout, _ = run_cli(capsys, "spaces", "--help")
    text = " ".join(stdout.split())
    assert code == 0 and "feature files hold one space only and are refused" in text
