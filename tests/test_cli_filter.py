"""`rarity filter`: end to end on real results directories (images, a dataset, features), what it
prints, and every refusal as exit 2 with one line naming what to fix."""

from __future__ import annotations

import csv
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli
from test_filter import (
    expected_order,
    extraction,
    make_feature_run,
    make_image_run,
    originals,
    ranked_files,
    table,
)

from rarity_score.compare import compare_datasets
from rarity_score.filtering import FORMAT


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> tuple[Path, Path]:
    pytest.importorskip("torch")
    pytest.importorskip("PIL")
    from pipeline_helpers import write_images

    root = tmp_path_factory.mktemp("cli-filter")
    real, fake = root / "real", root / "fake"
    write_images(real, 24, size=12, seed=1)
    write_images(fake, 10, size=12, seed=2, prefix="gen")
    return make_image_run(root, real=real, fake=fake), fake


def _listed(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_help_explains_rules_order_and_outputs(capsys):
    code, out, _ = run_cli(capsys, "filter", "--help")
    assert code == 0
    text = " ".join(out.split())
    for fragment in (
        "--rarest N",
        "--most-common N",
        "--quantile LO HI",
        "--out-of-manifold",
        "--unauthentic",
        "equal scores keep the set's row order (the lower row first)",
        "--to DIR",
        "--list FILE",
        "--copy",
        "--link",
        "filter.json",
        "Examples:",
        "rarity filter results/ --set psi1.0 --rarest 100 --to rarest/",
        "an existing FILE is refused",
    ):
        assert fragment in text, fragment


def test_rarest_to_a_folder(capsys, image_run, tmp_path):
    run, fake = image_run
    rows = table(run)
    inside = [r for r in rows if r["in_manifold"] == "true"]
    out = tmp_path / "rarest"
    code, stdout, err = run_cli(capsys, "filter", run, "--rarest", 4, "--to", out)
    assert code == 0, err
    assert err == ""
    assert "4 of 10 samples of set 'gen': the 4 rarest in-manifold samples" in stdout
    assert f"Wrote 4 copies with selection.csv and filter.json to {out}" in stdout
    order = expected_order(inside, "rarity", descending=True)[:4]
    sources = originals(fake)
    files = ranked_files(out)
    assert [p.name for p in files] == [f"{r}_{rows[i]['name']}" for r, i in enumerate(order, 1)]
    for path, i in zip(files, order, strict=True):
        assert path.read_bytes() == sources[rows[i]["name"]].read_bytes()

    # again, with links: the earlier output is replaced
    code, stdout, err = run_cli(capsys, "filter", run, "--most-common", 2, "--to", out, "--link")
    assert code == 0, err
    assert "Wrote 2 symbolic links" in stdout
    files = ranked_files(out)
    order = expected_order(inside, "rarity", descending=False)[:2]
    assert [os.readlink(p) for p in files] == [str(sources[rows[i]["name"]]) for i in order]
    assert json.loads((out / "filter.json").read_text())["format"] == FORMAT


def test_quantile_to_a_list(capsys, image_run, tmp_path):
    run, _ = image_run
    rows = [r for r in table(run) if r["in_manifold"] == "true"]
    rarity = np.array([float(r["rarity"]) for r in rows])
    low, high = np.quantile(rarity, [0.2, 0.8])
    wanted = expected_order(
        [r for r in rows if low <= float(r["rarity"]) <= high], "rarity", descending=False
    )
    path = tmp_path / "band.csv"
    code, stdout, err = run_cli(capsys, "filter", run, "--quantile", 0.2, 0.8, "--list", path)
    assert code == 0, err
    assert f"Wrote the list of {len(wanted)} samples to {path}" in stdout
    listed = _listed(path)
    names = {int(r["index"]): r["name"] for r in table(run)}
    assert [r["name"] for r in listed] == [names[i] for i in wanted]
    assert [int(r["rank"]) for r in listed] == list(range(1, len(wanted) + 1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["band.csv"]


def test_out_of_manifold_and_quiet(capsys, image_run, tmp_path):
    run, _ = image_run
    outside = [r for r in table(run) if r["in_manifold"] == "false"]
    code, stdout, err = run_cli(
        capsys, "filter", run, "--out-of-manifold", "--list", tmp_path / "out.csv", "-q"
    )
    assert (code, stdout, err) == (0, "", "")
    listed = _listed(tmp_path / "out.csv")
    wanted = expected_order(outside, "nearest_real_distance", descending=True)
    names = {int(r["index"]): r["name"] for r in table(run)}
    assert [r["name"] for r in listed] == [names[i] for i in wanted]


def test_datasets_mode(capsys, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("PIL")
    from pipeline_helpers import write_images

    folder = tmp_path / "train"
    write_images(folder, 20, size=12, seed=5)
    datasets = {"train": folder, "other": folder}
    run = compare_datasets(
        datasets, tmp_path / "curation", k=3, extraction=extraction(), report=False
    ).path
    code, out, err = run_cli(capsys, "filter", run, "--rarest", 3, "--to", tmp_path / "x")
    assert_one_line_error(code, out, err, "2 sets ('train', 'other')", "--set NAME")
    code, out, err = run_cli(
        capsys, "filter", run, "--set", "train", "--most-common", 3, "--to", tmp_path / "typical"
    )
    assert code == 0, err
    rows = table(run, "train")
    order = expected_order(
        [r for r in rows if r["in_manifold"] == "true"], "rarity", descending=False
    )[:3]
    sources = originals(folder)
    for path, i in zip(ranked_files(tmp_path / "typical"), order, strict=True):
        assert path.read_bytes() == sources[rows[i]["name"]].read_bytes()
    code, out, err = run_cli(
        capsys, "filter", run, "--set", "train", "--unauthentic", "--to", tmp_path / "u"
    )
    assert_one_line_error(code, out, err, "no authenticity flags")


def test_feature_run_writes_the_list_only(capsys, tmp_path):
    run = make_feature_run(tmp_path)
    code, out, err = run_cli(capsys, "filter", run, "--rarest", 3, "--to", tmp_path / "sel")
    assert code == 0, err
    assert "only selection.csv" in err and err.count("\n") == 1
    assert "only selection.csv and filter.json are written" in err
    assert "Wrote selection.csv and filter.json (3 samples; the set has no image files)" in out
    assert sorted(p.name for p in (tmp_path / "sel").iterdir()) == ["filter.json", "selection.csv"]


# ---------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("arguments", "fragments"),
    [
        (["--rarest", "0"], ["--rarest 0", "at least 1"]),
        (["--most-common", "-3"], ["--most-common -3", "at least 1"]),
        (["--rarest", "x"], ["--rarest", "whole number"]),
        (["--quantile", "0.5", "0.2"], ["--quantile 0.5 0.2", "must not exceed"]),
        (["--quantile", "-0.1", "0.2"], ["--quantile", "[0, 1]"]),
        (["--quantile", "0.1", "1.5"], ["--quantile", "[0, 1]"]),
        (["--quantile", "0.1", "nan"], ["--quantile", "[0, 1]"]),
        (["--rarest", "2", "--unauthentic"], ["not allowed with"]),
        ([], ["one of the arguments --rarest"]),
    ],
)
def test_bad_rules(capsys, tmp_path, arguments, fragments):
    run = make_feature_run(tmp_path)
    code, out, err = run_cli(capsys, "filter", run, *arguments, "--list", tmp_path / "l.csv")
    assert_one_line_error(code, out, err, *fragments)
    assert not (tmp_path / "l.csv").exists()


def test_bad_outputs(capsys, image_run, tmp_path):
    run, fake = image_run
    rule = ["--rarest", "2"]
    existing = tmp_path / "there.csv"
    existing.write_text("mine\n")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        (foreign / name).write_text("keep")
    cases = [
        (["--list", existing], ["--list", "there.csv exists"]),
        (["--list", ""], ["--list needs a file name"]),
        (["--list", fake / "x.png"], ["--list", "lies inside the input folder", "'gen'"]),
        (["--to", ""], ["--to needs a folder name"]),
        (
            ["--to", foreign],
            ["cannot write --to", "not an output of `rarity filter`", "a.txt, b.txt, c.txt and 1"],
        ),
        (["--to", run], ["--to", "also an input"]),
        (
            ["--to", run / "sel"],
            ["--to", "lies inside the input folder", "(the results directory); a later run"],
        ),
        (["--to", fake / "sel"], ["--to", "lies inside the input folder", "generated set 'gen'"]),
        (["--to", fake.parent], ["--to", "holds the input"]),
        (["--list", tmp_path / "l.csv", "--link"], ["--link goes with --to DIR"]),
        (["--to", tmp_path / "a", "--list", tmp_path / "b.csv"], ["not allowed with"]),
        (["--to", tmp_path / "a", "--copy", "--link"], ["not allowed with"]),
        ([], ["one of the arguments --to --list is required"]),
        (["--to", tmp_path / "a", "--set", "nope"], ["no set 'nope'", "its sets: 'gen'"]),
    ]
    for arguments, fragments in cases:
        code, out, err = run_cli(capsys, "filter", run, *rule, *arguments)
        assert_one_line_error(code, out, err, *fragments)
    assert existing.read_text() == "mine\n"
    assert sorted(p.name for p in foreign.iterdir()) == ["a.txt", "b.txt", "c.txt", "d.txt"]
    assert not (tmp_path / "a").exists() and not (fake / "sel").exists()
    assert not (fake / "x.png").exists()


def test_not_a_results_directory(capsys, tmp_path):
    code, out, err = run_cli(capsys, "filter", tmp_path, "--rarest", 1, "--list", tmp_path / "x")
    assert_one_line_error(code, out, err, "run.json")


def test_changed_or_moved_images(capsys, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("PIL")
    from pipeline_helpers import write_images

    real, fake = tmp_path / "real", tmp_path / "fake"
    write_images(real, 20, size=12, seed=1)
    write_images(fake, 6, size=12, seed=2, prefix="gen")
    run = make_image_run(tmp_path, real=real, fake=fake)
    (fake / "gen_000.png").write_bytes((fake / "gen_001.png").read_bytes())
    code, out, err = run_cli(capsys, "filter", run, "--rarest", 2, "--to", tmp_path / "o")
    assert_one_line_error(code, out, err, "fingerprint differs", str(fake))
    fake.rename(tmp_path / "elsewhere")
    code, out, err = run_cli(capsys, "filter", run, "--rarest", 2, "--to", tmp_path / "o")
    assert_one_line_error(code, out, err, "not at", "any more")
    assert not (tmp_path / "o").exists()


def test_link_on_an_archive(capsys, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("PIL")
    from pipeline_helpers import write_images

    real, loose = tmp_path / "real", tmp_path / "loose"
    write_images(real, 20, size=12, seed=1)
    write_images(loose, 6, size=12, seed=2, prefix="gen")
    archive = tmp_path / "gen.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(loose.iterdir()):
            handle.write(path, path.name)
    run = make_image_run(tmp_path, real=real, fake=archive)
    out_dir = tmp_path / "o"
    code, out, err = run_cli(capsys, "filter", run, "--rarest", 2, "--to", out_dir, "--link")
    assert_one_line_error(code, out, err, "archive", "use --copy")
    assert "how=" not in err  # no Python names on the command line
    code, out, err = run_cli(capsys, "filter", run, "--rarest", 2, "--to", out_dir, "--copy")
    assert code == 0, err
    with zipfile.ZipFile(archive) as handle:
        for path in ranked_files(out_dir):
            assert path.read_bytes() == handle.read(path.name.split("_", 1)[1])


def test_one_copy_is_one(capsys, image_run, tmp_path):
    run, _ = image_run
    code, out, err = run_cli(capsys, "filter", run, "--rarest", 1, "--to", tmp_path / "one")
    assert code == 0, err
    assert "Wrote 1 copy with selection.csv and filter.json" in out
    code, out, err = run_cli(capsys, "filter", run, "--rarest", 1, "--list", tmp_path / "one.csv")
    assert code == 0, err
    assert "Wrote the list of 1 sample to" in out


def test_a_list_of_paths_refuses_copy_and_link(capsys, image_run, tmp_path):
    """A set scored from a Python list of paths has no recorded image files: an explicit --copy
    or --link is refused (nothing would be copied or linked); without them, the CSV and the
    record are written, and the warning says why."""
    from rarity_score.compare import compare

    _, fake = image_run
    paths = [str(p) for p in sorted(fake.glob("*.png"))]
    run = compare(
        fake.parent / "real",
        {"gen": paths},
        tmp_path / "paths-run",
        k=3,
        extraction=extraction(),
        report=False,
    ).path
    for flag in ("--copy", "--link"):
        code, out, err = run_cli(capsys, "filter", run, "--rarest", 2, "--to", tmp_path / "o", flag)
        assert_one_line_error(
            code, out, err, flag, "did not record where the image files of set 'gen' are"
        )
    assert not (tmp_path / "o").exists()
    code, out, err = run_cli(capsys, "filter", run, "--rarest", 2, "--to", tmp_path / "o")
    assert code == 0, err
    assert "did not record where the image files" in err and "features" not in err
    assert "Wrote selection.csv and filter.json (2 samples; the set has no image files)" in out
