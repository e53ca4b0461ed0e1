"""Hardening of the `rarity` command line: one feature space per run, outputs that name inputs,
outputs checked before the work, numbers and devices checked up front, one-line usage errors,
and interrupts (Ctrl-C at start-up, SIGTERM) that end cleanly."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
from cli_helpers import assert_one_line_error, run_cli

import rarity_score.manifold
from rarity_score.features.pipeline import FeatureSet, save_feature_set

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(5)
REAL = RNG.standard_normal((40, 4)).astype(np.float32)
FAKE = RNG.standard_normal((15, 4)).astype(np.float32)


def _saved(path: Path, array: np.ndarray, **record: str) -> Path:
    names = [f"img_{i:03d}.png" for i in range(len(array))]
    save_feature_set(path, FeatureSet(features=array, names=names, **record))
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    np.save(tmp_path / "real.npy", REAL)
    np.save(tmp_path / "fake.npy", FAKE)
    return tmp_path / "real.npy", tmp_path / "fake.npy"


@pytest.fixture
def no_engine(monkeypatch):
    """Fail loudly if the computation starts: the refusals below must come before it."""

    def started(*args, **kwargs):
        raise AssertionError("the computation started before the bad option was refused")

    monkeypatch.setattr(rarity_score.manifold.RealManifold, "__init__", started)


# ---------------------------------------------------------------------- one feature space


def test_score_refuses_features_of_two_preprocessings(capsys, tmp_path, no_engine):
    record = {"extractor": "efficientnet-lite0", "weights_id": "w1"}
    real = _saved(tmp_path / "real.npz", REAL, preprocessing="resize 64x64", **record)
    fake = _saved(tmp_path / "fake.npz", FAKE, preprocessing="resize 224x224", **record)
    result = run_cli(capsys, "score", "--real", real, "--fake", fake)
    assert_one_line_error(*result, "preprocessings", "64x64", "224x224", "--input-size")


def test_score_refuses_features_of_two_weights(capsys, tmp_path, no_engine):
    real = _saved(tmp_path / "real.npz", REAL, extractor="x", weights_id="aaa")
    fake = _saved(tmp_path / "fake.npz", FAKE, extractor="x", weights_id="bbb")
    result = run_cli(capsys, "score", "--real", real, "--fake", fake)
    assert_one_line_error(*result, "weights", "aaa", "bbb")


def test_score_json_records_each_sides_space(capsys, tmp_path):
    # A plain .npy records nothing: accepted beside a recorded space (same dimension), and the
    # JSON says what each side records instead of one side's record for both.
    real = _saved(tmp_path / "real.npz", REAL, extractor="x", preprocessing="resize 64x64")
    np.save(tmp_path / "fake.npy", FAKE)
    out = tmp_path / "run.json"
    code, _, err = run_cli(
        capsys, "score", "--real", real, "--fake", tmp_path / "fake.npy", "--json", out, "-q"
    )
    assert code == 0, err
    settings = json.loads(out.read_text())["settings"]
    assert settings["real_space"] == {
        "extractor": "x",
        "preprocessing": "resize 64x64",
        "weights_id": None,
        "dim": 4,
    }
    assert settings["fake_space"]["preprocessing"] is None


def test_one_space_check_rules():
    from rarity_score.features.space import check_one_space

    def fs(dim: int = 4, **record: str) -> FeatureSet:
        return FeatureSet(features=np.zeros((3, dim)), names=["a", "b", "c"], **record)

    check_one_space([("a", fs(preprocessing="p")), ("b", fs())])  # unknown: accepted
    with pytest.raises(ValueError, match="dimensions differ"):
        check_one_space([("a", fs(preprocessing="p")), ("b", fs(dim=5))])
    with pytest.raises(ValueError, match="different extractors"):
        check_one_space([("a", fs(extractor="x")), ("b", fs()), ("c", fs(extractor="y"))])


# ---------------------------------------------------------------------- outputs naming inputs


def _outputs_cases(tmp: Path, real: Path, fake: Path) -> dict[str, tuple[list[object], str]]:
    (tmp / "link.npy").symlink_to(real)
    os.link(fake, tmp / "hard.npy")
    (tmp / "r").mkdir()  # an empty folder: usable as --report, so only the clash refuses it
    score = ["score", "--real", real, "--fake", fake]
    return {
        "score --out real": ([*score, "--out", real], "--real"),
        "score --json fake": ([*score, "--json", fake], "--fake"),
        "score --out symlink": ([*score, "--out", tmp / "link.npy"], "--real"),
        "score --out hard link": ([*score, "--out", tmp / "hard.npy"], "--fake"),
        "score --out = --json": ([*score, "--out", tmp / "x", "--json", tmp / "x"], "same path"),
        "score --out inside --report": (
            [*score, "--report", tmp / "r", "--out", tmp / "r" / "x.csv"],
            "inside --report",
        ),
    }


CASES = [
    "score --out real",
    "score --json fake",
    "score --out symlink",
    "score --out hard link",
    "score --out = --json",
    "score --out inside --report",
]


@pytest.mark.parametrize("case", CASES)
def test_an_output_that_is_an_input_is_refused_before_work(
    capsys, files, tmp_path, no_engine, case
):
    real, fake = files
    argv, fragment = _outputs_cases(tmp_path, real, fake)[case]
    before = {p: p.read_bytes() for p in (real, fake)}
    result = run_cli(capsys, *argv)
    assert_one_line_error(*result, fragment)
    assert {p: p.read_bytes() for p in (real, fake)} == before
    assert list((tmp_path / "r").iterdir()) == []


@pytest.fixture
def tiny(monkeypatch):
    """Image inputs through a tiny stand-in extractor (no weights)."""
    pytest.importorskip("torch")
    pytest.importorskip("PIL")
    from pipeline_helpers import TinyExtractor

    import rarity_score.features as features_module

    extractor = TinyExtractor()
    monkeypatch.setattr(features_module, "get_extractor", lambda name, **kw: extractor)
    return extractor


@pytest.mark.parametrize("command", ["score", "compare"])
def test_results_inside_an_input_image_folder_are_refused(capsys, tmp_path, tiny, command):
    # The next run would read the report's thumbnails and histogram as images of the set.
    from pipeline_helpers import write_images

    images = tmp_path / "images"
    write_images(images, 12, size=20, seed=3)
    np.save(tmp_path / "fake.npy", RNG.standard_normal((10, tiny.info.dim)))
    fake, inside = tmp_path / "fake.npy", images / "results"
    if command == "score":
        argv = ["score", "--real", images, "--fake", fake, "--report", inside]
    else:
        argv = ["compare", "--real", images, "--fake", f"a={fake}", "--out", inside]
    result = run_cli(capsys, *argv, "--no-cache", "-q")
    assert_one_line_error(*result, "inside the input folder", str(images))
    assert not inside.exists() and tiny.images == 0


def test_images_and_features_of_another_preprocessing_are_refused(capsys, tmp_path, tiny):
    from pipeline_helpers import write_images

    images = tmp_path / "images"
    write_images(images, 12, size=20, seed=3)
    fake = _saved(
        tmp_path / "fake.npz",
        RNG.standard_normal((10, tiny.info.dim)).astype(np.float32),
        extractor="tiny",
        preprocessing="bilinear 64x64, /255",
        weights_id=tiny.weights_id,
    )
    result = run_cli(capsys, "score", "--real", images, "--fake", fake, "--no-cache", "-q")
    assert_one_line_error(*result, "preprocessings", "16x16", "64x64")


def test_results_dir_holding_an_input_is_refused(capsys, files, tmp_path):
    # Features kept inside an earlier results directory: replacing it would delete them.
    real, fake = files
    results = tmp_path / "results"
    code, _, err = run_cli(
        capsys, "compare", "--real", real, "--fake", f"a={fake}", "--out", results
    )
    assert code == 0, err
    kept = results / "kept.npy"
    kept.write_bytes(fake.read_bytes())
    result = run_cli(capsys, "compare", "--real", real, "--fake", f"b={kept}", "--out", results)
    assert_one_line_error(*result, "holds the input", "--out")
    assert kept.read_bytes() == fake.read_bytes()
    result = run_cli(capsys, "datasets", f"a={real}", f"b={kept}", "--out", results)
    assert_one_line_error(*result, "holds the input", "dataset 'b'")
    assert kept.read_bytes() == fake.read_bytes()


def test_npz_key_syntax_names_the_file(capsys, tmp_path, no_engine):
    path = tmp_path / "both.npz"
    np.savez(path, real=REAL, fake=FAKE)
    argv = ["score", "--real", f"{path}:real", "--fake", f"{path}:fake", "--out", path]
    assert_one_line_error(*run_cli(capsys, *argv), "also an input")


def test_output_that_is_not_a_regular_file_is_refused_before_work(
    capsys, files, tmp_path, no_engine
):
    real, fake = files
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    result = run_cli(capsys, "score", "--real", real, "--fake", fake, "--out", fifo)
    assert_one_line_error(*result, "pipe.csv", "not a regular file")
    assert fifo.is_fifo()


# ---------------------------------------------------------------------- numbers, devices, usage


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("--memory-budget", "inf", "finite"),
        ("--memory-budget", "nan", "finite"),
        ("--memory-budget", "1e400", "finite"),
        ("--memory-budget", "0.5", "--memory-budget"),
        ("-k", "0", "-k"),
        ("--workers", "-1", "--workers"),
        ("--metrics", "rarty", "rarty"),
    ],
)
def test_bad_numbers_are_one_line_usage_errors(capsys, files, no_engine, option, value, fragment):
    real, fake = files
    result = run_cli(capsys, "score", "--real", real, "--fake", fake, option, value)
    assert_one_line_error(*result, fragment)


def test_unknown_device_is_bad_input(capsys, files, no_engine):
    real, fake = files
    result = run_cli(capsys, "score", "--real", real, "--fake", fake, "--device", "tpu")
    assert_one_line_error(*result, "--device", "tpu", "cuda:N")


def test_cuda_without_a_gpu_names_the_option(capsys, files, no_engine):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    real, fake = files
    result = run_cli(capsys, "score", "--real", real, "--fake", fake, "--device", "cuda")
    assert_one_line_error(*result, "--device 'cuda'", "--device cpu")


def test_long_names_give_short_messages(capsys, files, no_engine):
    real, fake = files
    long = "x" * 10_000
    for argv in (
        ["score", "--real", real, "--fake", fake, "--metrics", long],
        ["score", "--real", f"{long}.npy", "--fake", fake],
        ["compare", "--real", real, "--fake", long, "--out", "unused"],
    ):
        code, out, err = run_cli(capsys, *argv)
        assert_one_line_error(code, out, err)
        assert len(err) < 600, err[:200]


def test_features_of_a_feature_file_names_no_python_function(capsys, files, tmp_path):
    real, _ = files
    code, out, err = run_cli(capsys, "features", real, "-o", tmp_path / "out.npz")
    assert_one_line_error(code, out, err, "feature file")
    assert "load_or_extract" not in err and "load_features" not in err


# ---------------------------------------------------------------------- interrupts


def _entry_point():
    """The function `rarity` runs, as [project.scripts] names it."""
    with open(ROOT / "pyproject.toml", "rb") as handle:
        target = tomllib.load(handle)["project"]["scripts"]["rarity"]
    module, _, function = target.partition(":")
    return module, function


class _InterruptImport:
    """A meta-path finder that raises KeyboardInterrupt when ``name`` is imported: Ctrl-C while
    the command's modules load."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name:
            raise KeyboardInterrupt
        return None


def test_ctrl_c_while_the_command_starts_is_one_line(monkeypatch, capsys):
    module, function = _entry_point()
    for name in [m for m in sys.modules if m == "rarity_score.cli" or m == module]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_InterruptImport("rarity_score.cli"), *sys.meta_path])
    try:
        code = getattr(importlib.import_module(module), function)(["extractors"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C during the imports escaped as a traceback")
    assert code == 130
    assert capsys.readouterr().err == "rarity: interrupted\n"


def test_ctrl_c_while_parsing_is_one_line(monkeypatch, capsys):
    import rarity_score.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    try:
        code = cli.main(["extractors"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C while parsing escaped as a traceback")
    assert code == 130
    assert capsys.readouterr().err == "rarity: interrupted\n"


_SLOW_COMPARE = """
import sys, time
import rarity_score.compare as compare
from rarity_score.cli import main

def slow(folder):  # the report step, inside the staging folder: stop the run here
    print("ready", flush=True)
    time.sleep(60)

compare._try_report = slow
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_is_handled_like_ctrl_c(files, tmp_path):
    real, fake = files
    out = tmp_path / "results"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _SLOW_COMPARE,
            *("compare", "--real", str(real)),
            "--fake",
            f"a={fake}",
            "--out",
            str(out),
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        process.terminate()
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert err == "rarity: terminated\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.npy", "real.npy"]


def test_a_full_disk_is_the_machine_exit_1_naming_the_output(capsys, files, tmp_path, monkeypatch):
    from rarity_score.io import atomic

    def full(src, dst):
        raise OSError(28, "No space left on device", str(src))

    monkeypatch.setattr(atomic.os, "replace", full)
    out = tmp_path / "scores.csv"
    code, _, err = run_cli(capsys, "score", "--real", files[0], "--fake", files[1], "--out", out)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert str(out) in lines[0] and "No space left" in lines[0] and ".tmp" not in lines[0]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("failing", ["summary.md", "histogram.png"])
def test_a_full_disk_while_publishing_results_is_exit_1_naming_out(
    capsys, files, tmp_path, monkeypatch, failing
):
    """Also while the report is built: a full disk is never a warning and a report-less exit 0."""
    from rarity_score.io import atomic

    replace = atomic.os.replace

    def full(src, dst):
        if str(dst).endswith(failing):
            raise OSError(28, "No space left on device", str(src))
        return replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", full)
    out = tmp_path / "results"
    code, _, err = run_cli(
        capsys, "compare", "--real", files[0], "--fake", f"a={files[1]}", "--out", out, "-q"
    )
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert str(out) in lines[0] and "No space left" in lines[0] and ".tmp" not in lines[0]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_huge_whole_number_option_is_one_line(capsys, files):
    result = run_cli(capsys, "score", "--real", files[0], "--fake", files[1], "-k", "9" * 400)
    assert_one_line_error(*result, "k=")
