"""Hardening of what the package writes: results directories replace only what the package
wrote itself, runs killed while publishing leave no debris, CSV cells never run as formulas,
names that are not UTF-8 or very long never make the final writing fail, and write errors name
the file the user asked for."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli

import rarity_score.compare as compare_module
import rarity_score.sources as sources_module
from rarity_score import defaults
from rarity_score.compare import compare, compare_datasets
from rarity_score.features.pipeline import FeatureSet, save_feature_set
from rarity_score.io import atomic
from rarity_score.report import build_report as build_results_report
from rarity_score.results import Evaluation
from rarity_score.results_dir import check_output_dir

DIM = 6
SRC = Path(compare_module.__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _own_state(tmp_path_factory, monkeypatch):
    """The package's own state (journal) in a folder of its own, outside the tested folder."""
    monkeypatch.setenv(defaults.CACHE_DIR_ENV, str(tmp_path_factory.mktemp("state")))


def _array(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).normal(size=(n, DIM))).astype(np.float32)


def _features(n: int, seed: int, names: list[str] | None = None) -> FeatureSet:
    names = names if names is not None else [f"s{seed}_{i:03d}.png" for i in range(n)]
    return FeatureSet(features=_array(n, seed), names=names, extractor="tiny")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    return {
        "real": save_feature_set(inputs / "real.npz", _features(40, 0)),
        "a": save_feature_set(inputs / "a.npz", _features(20, 1)),
    }


def _run(files: dict[str, Path], out: Path, **kwargs) -> Path:
    return compare(files["real"], {"a": files["a"]}, out, report=False, **kwargs).path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _no_work(monkeypatch) -> None:
    """Make loading any input fail loudly: a refusal must come before any work."""

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(sources_module, "load_inputs", refuse)


# ---------------------------------------------------------------------- lost files


def test_rerun_keeps_files_the_user_added(files, tmp_path, monkeypatch, capsys):
    out = _run(files, tmp_path / "out")
    (out / "notes.txt").write_text("my notes")
    (out / "figures").mkdir()
    (out / "figures" / "plot.png").write_bytes(b"png")
    before = _snapshot(out)
    with monkeypatch.context() as patched:
        _no_work(patched)
        with pytest.raises(ValueError, match="did not write") as refused:
            _run(files, out)
    message = str(refused.value)
    assert str(out) in message and "notes.txt" in message and "figures/" in message
    assert _snapshot(out) == before and _hidden(tmp_path) == []
    code, stdout, err = run_cli(
        capsys, "compare", "--real", files["real"], "--fake", f"a={files['a']}", "--out", out,
        "--no-report", "-q",
    )  # fmt: skip
    assert_one_line_error(code, stdout, err, str(out), "notes.txt")
    assert _snapshot(out) == before

    # An edited table is not what the run wrote either.
    (out / "notes.txt").unlink()
    (out / "figures" / "plot.png").unlink()
    (out / "figures").rmdir()
    with open(out / "summary.csv", "a") as handle:
        handle.write("my,row\n")
    with pytest.raises(ValueError, match=r"summary\.csv"):
        _run(files, out)


def test_own_results_are_replaced_also_after_a_report_rebuild(files, tmp_path, monkeypatch):
    out = _run(files, tmp_path / "out")
    run = json.loads((out / "run.json").read_text())
    assert set(run["files"]) == {p for p in _snapshot(out) if p != "run.json"}
    assert all(len(d["sha256"]) == 64 for d in run["files"].values())
    build_results_report(out)  # the real report, built in place
    build_results_report(out)  # and rebuilt over its own files
    listed = json.loads((out / "run.json").read_text())["files"]
    assert "report/index.html" in listed and "histogram.png" in listed
    assert set(listed) == {p for p in _snapshot(out) if p != "run.json"}
    fakes = {"b": save_feature_set(tmp_path / "b.npz", _features(15, 2))}
    compare(files["real"], fakes, out, report=False)
    assert sorted(p.name for p in (out / "sets").iterdir()) == ["b.csv", "b.npz"]
    assert not (out / "report").exists() and _hidden(tmp_path) == []


def test_a_forged_or_unlisted_results_directory_is_not_wiped(files, tmp_path, monkeypatch):
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / "run.json").write_text(json.dumps({"format": "rarity-score/results"}))
    (forged / "thesis.tex").write_text("precious")
    # A results directory written without a file list (earlier versions): cannot be verified.
    old = tmp_path / "old"
    for folder in (forged, old):
        if folder == old:
            _run(files, old)
            run = json.loads((old / "run.json").read_text())
            del run["files"]
            (old / "run.json").write_text(json.dumps(run))
        before = _snapshot(folder)
        with monkeypatch.context() as patched:
            _no_work(patched)
            with pytest.raises(ValueError, match="does not list the files") as refused:
                _run(files, folder)
        assert str(folder) in str(refused.value)
        assert _snapshot(folder) == before
    # A manifest that lists a user's file with the wrong content protects nothing.
    run = {
        "format": "rarity-score/results",
        "files": {"thesis.tex": {"sha256": "0" * 64, "size": 8}},
    }
    (forged / "run.json").write_text(json.dumps(run))
    with pytest.raises(ValueError, match=r"thesis\.tex"):
        compare_datasets({"a": files["a"]}, forged, report=False)
    assert (forged / "thesis.tex").read_text() == "precious"


def test_a_results_directory_that_holds_an_input_is_refused(files, tmp_path):
    out = _run(files, tmp_path / "out")
    inside = out / "sets" / "a.npz"
    before = _snapshot(out)
    with pytest.raises(ValueError, match="holds the input"):
        compare(files["real"], {"a": inside}, out, report=False)
    assert _snapshot(out) == before


# ---------------------------------------------------------------------- killed runs


_CHILD = """
import os, signal, sys
sys.path.insert(0, {src!r})
import rarity_score.compare as c
mode = sys.argv[1]
if mode == "staging":
    def die(folder):
        os.kill(os.getpid(), signal.SIGKILL)
    c._try_report = die
else:  # killed between moving the old results aside and moving the new ones in
    rename = os.rename
    def die(src, dst):
        rename(src, dst)
        if str(dst).endswith(".old"):
            os.kill(os.getpid(), signal.SIGKILL)
    os.rename = die
c.compare({real!r}, {{"a": {fake!r}}}, {out!r}, report=True)
"""


def _killed_run(files: dict[str, Path], out: Path, mode: str) -> None:
    script = _CHILD.format(
        src=str(SRC), real=str(files["real"]), fake=str(files["a"]), out=str(out)
    )
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), mode],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert done.returncode == -9, done.stderr


def test_debris_of_killed_runs_is_cleaned_but_look_alikes_are_kept(files, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    out = work / "out"
    look_alike = work / ".out.0123abcd.tmp"  # named like a staging folder, but the user's
    look_alike.mkdir()
    (look_alike / "mine.txt").write_text("mine")
    _killed_run(files, out, "staging")
    debris = [name for name in _hidden(work) if name != look_alike.name]
    assert len(debris) == 1 and debris[0].endswith(".tmp")
    _run(files, out)
    assert _hidden(work) == [look_alike.name] and (look_alike / "mine.txt").read_text() == "mine"

    saved = _snapshot(out)
    _killed_run(files, out, "old")
    assert not out.exists()  # the previous results sit in a hidden .old folder
    check_output_dir(out)
    _run(files, out)  # puts the previous results back first, then replaces them
    assert _hidden(work) == [look_alike.name]
    assert set(_snapshot(out)) == set(saved)


def test_a_forged_journal_entry_is_never_obeyed(files, tmp_path):
    victim = tmp_path / "victim"  # any folder: a journal can be shared or edited
    victim.mkdir()
    (victim / "thesis.tex").write_text("mine")
    moved = tmp_path / "moved"
    journal = defaults.cache_dir() / "journal"
    journal.mkdir(parents=True, exist_ok=True)
    dead = {"host": socket.gethostname(), "pid": 2**22 + 12345}  # no such process
    (journal / "staging-0000000000000000.json").write_text(
        json.dumps({"path": str(victim), "kind": "staging", **dead})
    )
    (journal / "old-0000000000000000.json").write_text(
        json.dumps({"path": str(victim), "kind": "old", "target": str(moved), **dead})
    )
    _run(files, tmp_path / "out")  # cleans the journal on the way
    assert (victim / "thesis.tex").read_text() == "mine" and not moved.exists()


def test_a_killed_report_rebuild_is_cleaned_by_the_next_one(files, tmp_path):
    out = _run(files, tmp_path / "out")
    build_results_report(out)
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(SRC)!r})
import rarity_score.report.build as b
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
b._write_report = die
from rarity_score.report import build_report
build_report({str(out)!r})
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -9, done.stderr
    assert [p.name for p in out.iterdir() if p.name.startswith(".report.")]  # the debris
    build_results_report(out)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    compare(files["real"], {"a": files["a"]}, out, report=False)  # still ours


def test_an_interrupt_while_publishing_leaves_nothing(files, tmp_path, monkeypatch):
    out = _run(files, tmp_path / "out")
    saved = _snapshot(out)

    def interrupted(folder):
        raise KeyboardInterrupt

    monkeypatch.setattr(compare_module, "_try_report", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compare(files["real"], {"a": files["a"]}, out, report=True)
    assert _snapshot(out) == saved and _hidden(tmp_path) == []
    assert list((defaults.cache_dir() / "journal").glob("*")) == []


# ---------------------------------------------------------------------- formula injection


FORMULAS = [
    '=HYPERLINK("http://x")',
    "+1+1",
    "-2+3",
    "@SUM(A1)",
    "\tTab",
    "'quoted",
    "  =1+1",
    "\uff1d1+1",
]


def test_csv_cells_never_run_as_formulas(files, tmp_path):
    names = [*FORMULAS, *(f"ok_{i}.png" for i in range(12))]
    fake = save_feature_set(tmp_path / "f.npz", _features(20, 3, names))
    out = compare(files["real"], {"=cmd|' /C calc'!A0": fake}, tmp_path / "out", report=False).path
    with open(out / "summary.csv", newline="") as handle:
        summary = list(csv.DictReader(handle))
    assert summary[0]["name"] == "'=cmd|' /C calc'!A0"
    (table,) = (out / "sets").glob("*.csv")
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = ['\'=HYPERLINK("http://x")', "'+1+1", "'-2+3", "'@SUM(A1)", "\\x09Tab", "''quoted"]
    expected += ["'  =1+1", "'\uff1d1+1"]
    assert [row["name"] for row in rows] == expected + names[len(FORMULAS) :]
    for row in rows:
        for key, cell in row.items():
            if key not in ("name", "sphere_name", "nearest_real_name"):
                assert not cell.startswith("'"), (key, cell)  # numbers stay numbers
    # Names in the arrays and JSON are kept as they are (no apostrophe).
    with np.load(out / "sets" / table.with_suffix(".npz").name) as arrays:
        assert [str(n) for n in arrays["names"]][:2] == names[:2]
    assert json.loads((out / "summary.json").read_text())["sets"][0]["name"] == "=cmd|' /C calc'!A0"

    evaluation = Evaluation.from_fields(
        k=1, n_real=2, dim=1, metrics=("rarity",), rarity=np.array([-1.5, 2.0]),
        in_manifold=np.array([True, True]), sphere_index=np.array([0, 1]),
    )  # fmt: skip
    lines = evaluation.to_csv(names=["=1+1", "-x.png"]).splitlines()
    assert lines[1:] == ["0,'=1+1,true,-1.5,0", "1,'-x.png,true,2.0,1"]


# ---------------------------------------------------------------------- names


def test_names_that_are_not_utf8_are_written_escaped(files, tmp_path):
    bad = os.fsdecode(b"caf\xe9.png")  # what a file system that is not UTF-8 gives Python
    names = [bad, *(f"ok_{i}.png" for i in range(19))]
    fake = FeatureSet(features=_array(20, 4), names=names, extractor="tiny")
    out = compare(
        files["real"], {os.fsdecode(b"set\xff"): fake}, tmp_path / "out", report=False
    ).path
    for path in out.rglob("*"):
        if path.suffix in (".csv", ".json", ".md"):
            path.read_text(encoding="utf-8")  # valid UTF-8 everywhere
            assert "\\ud" not in path.read_text(), path  # no lone surrogates in the JSON
    run = json.loads((out / "run.json").read_text())
    assert run["sets"][0]["name"] == "set\\xff"
    table = out / run["sets"][0]["table"]
    with open(table, newline="", encoding="utf-8") as handle:
        assert next(csv.DictReader(handle))["name"] == "caf\\xe9.png"
    with np.load(out / run["sets"][0]["arrays"]) as arrays:
        assert str(arrays["names"][0]) == "caf\\xe9.png"

    evaluation = Evaluation.from_fields(
        k=1, n_real=2, dim=1, metrics=("rarity",), rarity=np.array([0.5]),
        in_manifold=np.array([True]), sphere_index=np.array([0]),
    )  # fmt: skip
    csv_path = evaluation.write_csv(tmp_path / "scores.csv", names=[bad])
    assert "caf\\xe9.png" in csv_path.read_text(encoding="utf-8")
    json_path = evaluation.write_json(tmp_path / "s.json", per_sample=True, names=[bad])
    assert json.loads(json_path.read_text(encoding="utf-8"))["per_sample"]["name"] == [
        "caf\\xe9.png"
    ]


def test_long_set_names_write_and_give_short_messages(files, tmp_path):
    long_name = "n" * 300
    out = compare(files["real"], {long_name: files["a"]}, tmp_path / "out", report=False).path
    run = json.loads((out / "run.json").read_text())
    assert run["sets"][0]["name"] == long_name and len(run["sets"][0]["slug"]) < 120
    huge = "x" * 10_000
    out = compare(
        files["real"], {huge: files["a"], huge.upper(): files["a"]}, tmp_path / "huge", report=False
    ).path
    slugs = [entry["slug"] for entry in json.loads((out / "run.json").read_text())["sets"]]
    assert len({slug.lower() for slug in slugs}) == 2 and max(map(len, slugs)) < 120
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((5, DIM + 1), np.float32))
    with pytest.raises(ValueError) as refused:
        compare(files["real"], {huge: wrong}, tmp_path / "x", report=False)
    assert len(str(refused.value)) < 600 and "10000 characters" in str(refused.value)


# ---------------------------------------------------------------------- write errors


def test_write_errors_name_the_target(tmp_path, monkeypatch):
    target = tmp_path / "scores.csv"

    def denied(src, dst):
        raise PermissionError(13, "Permission denied", str(src))

    with monkeypatch.context() as patched:
        patched.setattr(atomic.os, "replace", denied)
        with pytest.raises(PermissionError) as error:
            atomic.atomic_write_text(target, "x")
    assert str(target) in str(error.value) and ".tmp" not in str(error.value)

    def full(src, dst):
        raise OSError(28, "No space left on device", str(src))

    with monkeypatch.context() as patched:
        patched.setattr(atomic.os, "replace", full)
        with pytest.raises(RuntimeError) as error:  # the machine, not the input: exit 1
            atomic.atomic_write_text(target, "x")
    assert str(target) in str(error.value) and ".tmp" not in str(error.value)
    assert isinstance(error.value, OSError) and _hidden(tmp_path) == []

    assert atomic.check_writable(target) == target and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="does not exist"):
        atomic.check_writable(tmp_path / "missing" / "scores.csv")
    with pytest.raises(ValueError, match="is a folder"):
        atomic.check_writable(tmp_path)
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if str(path).endswith(".tmp"):
            raise OSError(30, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "open", read_only)
    with pytest.raises(ValueError) as refused:
        atomic.check_writable(target)
    assert str(target) in str(refused.value) and ".tmp" not in str(refused.value)
