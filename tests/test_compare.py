"""The comparison API (rarity_score.compare): results directory layout, run.json, numbers equal to
direct evaluations, per-sample rows that line up with names, one real manifold, atomic
publication, and bad input refused with nothing written."""

from __future__ import annotations

import csv
import json
import logging
import types
from pathlib import Path

import numpy as np
import pytest

import rarity_score.compare as compare_module
import rarity_score.results_dir.write as write_module
from rarity_score import RealManifold, evaluate
from rarity_score.compare import compare, compare_datasets
from rarity_score.features.pipeline import FeatureSet, save_feature_set
from rarity_score.io.atomic import atomic_write_text
from rarity_score.results_dir import FORMAT, METHODS, read_run, read_summary, summary_columns

DIM = 12


def _features(n: int, scale: float, seed: int, dim: int = DIM) -> np.ndarray:
    return (scale * np.random.default_rng(seed).normal(size=(n, dim))).astype(np.float32)


def _save(path: Path, array: np.ndarray, prefix: str, extractor: str = "tiny") -> Path:
    names = [f"{prefix}_{i:03d}.png" for i in range(array.shape[0])]
    feature_set = FeatureSet(
        features=array,
        names=names,
        extractor=extractor,
        preprocessing="bilinear 16x16" if extractor else "",
        weights_id="seed-0" if extractor else "",
    )
    return save_feature_set(path, feature_set)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Feature files written by save_feature_set (names and extractor recorded)."""
    return {
        "real": _save(tmp_path / "real.npz", _features(150, 1.0, 0), "real"),
        "psi=0.7": _save(tmp_path / "a.npz", _features(60, 0.7, 1), "a"),
        "psi=1.0": _save(tmp_path / "b.npz", _features(50, 1.3, 2), "b"),
    }


def _fakes(files: dict[str, Path]) -> dict[str, Path]:
    return {name: path for name, path in files.items() if name != "real"}


def _load(path: Path) -> tuple[np.ndarray, list[str]]:
    with np.load(path) as data:
        return np.asarray(data["features"]), [str(n) for n in data["names"]]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _leftovers(folder: Path) -> list[str]:
    """Temporary siblings a run may have left behind (none, ever)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------------- compare


def test_layout_and_run_json(files, tmp_path):
    out = compare(files["real"], _fakes(files), tmp_path / "out", report=False).path
    assert out == tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "reference_loo.npz", "run.json", "sets", "summary.csv", "summary.json", "summary.md",
    ]  # fmt: skip
    assert sorted(p.name for p in (out / "sets").iterdir()) == [
        "psi_0.7.csv", "psi_0.7.npz", "psi_1.0.csv", "psi_1.0.npz",
    ]  # fmt: skip
    run = read_run(out)  # real_has_images is derived there, no longer stored
    assert run["format"] == FORMAT and run["format_version"] == 2
    assert run["mode"] == "compare" and run["method"] == METHODS["compare"]
    assert run["k"] == 3 and run["dim"] == DIM and run["command"] is None
    assert run["package_version"] == "0.1.0" and run["created"]
    assert run["extractor"] == {
        "name": "tiny", "preprocessing": "bilinear 16x16", "weights_id": "seed-0", "dim": DIM,
    }  # fmt: skip
    assert run["real"]["name"] == "real" and run["real"]["n"] == 150
    assert run["real"]["source"] == str(files["real"]) and run["real"]["kind"] == "features"
    assert run["real"]["fingerprint"].startswith("sha256:")
    assert run["real_has_images"] is False
    assert [s["name"] for s in run["sets"]] == ["psi=0.7", "psi=1.0"]
    first = run["sets"][0]
    assert first["slug"] == "psi_0.7" and first["n"] == 60 and first["n_skipped"] == 0
    assert first["table"] == "sets/psi_0.7.csv" and first["arrays"] == "sets/psi_0.7.npz"
    assert first["kind"] == "features" and first["has_images"] is False
    assert _leftovers(tmp_path) == []
    md = (out / "summary.md").read_text()
    assert "psi=0.7" in md and METHODS["compare"] in md


def test_summary_equals_direct_evaluate(files, tmp_path):
    out = compare(files["real"], _fakes(files), tmp_path / "out", k=4, report=False).path
    real, _ = _load(files["real"])
    rows = read_summary(out)
    with open(out / "summary.csv", newline="") as handle:
        csv_rows = list(csv.DictReader(handle))
    assert list(csv_rows[0]) == list(summary_columns())
    for row, csv_row, (name, path) in zip(rows, csv_rows, _fakes(files).items(), strict=True):
        fake, _ = _load(path)
        expected = evaluate(real, fake, k=4)
        summary = expected.summary()
        assert row["name"] == csv_row["name"] == name
        assert row["n"] == (60 if name == "psi=0.7" else 50)
        assert row["n_in_manifold"] == summary["n_in_manifold"]
        assert row["n_out_of_manifold"] == summary["n_out_of_manifold"]
        assert row["fraction_in_manifold"] == summary["n_in_manifold"] / summary["n_fake"]
        for key in ("mean", "median", "q10", "q90"):
            assert row[f"rarity_{key}"] == summary["rarity"][key]
            assert float(csv_row[f"rarity_{key}"]) == summary["rarity"][key]
        for key in ("precision", "recall", "density", "coverage"):
            assert row[key] == summary[key]


def test_per_sample_rows_line_up_with_names(files, tmp_path):
    out = compare(files["real"], _fakes(files), tmp_path / "out", report=False).path
    real, real_names = _load(files["real"])
    fake, fake_names = _load(files["psi=0.7"])
    expected = evaluate(real, fake, k=3)
    rows = _rows(out / "sets" / "psi_0.7.csv")
    assert list(rows[0]) == [
        "index", "name", "in_manifold", "rarity", "sphere_index", "sphere_count",
        "nearest_real_index", "nearest_real_distance", "realism", "authentic",
        "authenticity_ratio", "sphere_name", "nearest_real_name",
    ]  # fmt: skip
    assert [row["name"] for row in rows] == fake_names
    assert 0 < expected.in_manifold.sum() < len(fake_names)  # both kinds of rows are checked
    for i, row in enumerate(rows):
        assert row["index"] == str(i)
        nearest = int(expected.nearest_real_index[i])
        assert row["nearest_real_name"] == real_names[nearest] == f"real_{nearest:03d}.png"
        if expected.in_manifold[i]:
            assert float(row["rarity"]) == expected.rarity[i]
            assert row["sphere_name"] == real_names[int(expected.sphere_index[i])]
        else:
            assert row["rarity"] == row["sphere_index"] == row["sphere_name"] == ""

    with np.load(out / "sets" / "psi_0.7.npz") as data:
        assert [str(n) for n in data["names"]] == fake_names
        np.testing.assert_array_equal(data["rarity"], expected.rarity)
        np.testing.assert_array_equal(data["in_manifold"], expected.in_manifold)
        np.testing.assert_array_equal(data["sphere_index"], expected.sphere_index)
        np.testing.assert_array_equal(data["nearest_real_index"], expected.nearest_real_index)
        np.testing.assert_array_equal(data["realism"], expected.realism)
        np.testing.assert_array_equal(data["sphere_count"], expected.sphere_count)

    loo = RealManifold(real, k=3).leave_one_out()
    with np.load(out / "reference_loo.npz") as data:
        assert [str(n) for n in data["names"]] == real_names
        np.testing.assert_array_equal(data["rarity"], loo.rarity)
        np.testing.assert_array_equal(data["sphere_index"], loo.sphere_index)


def test_real_manifold_built_once(files, tmp_path, monkeypatch):
    calls = {"init": 0, "evaluate": 0, "leave_one_out": 0}

    class Counting(RealManifold):
        def __init__(self, *args, **kwargs):
            calls["init"] += 1
            super().__init__(*args, **kwargs)

        def evaluate(self, *args, **kwargs):
            calls["evaluate"] += 1
            return super().evaluate(*args, **kwargs)

        def leave_one_out(self):
            calls["leave_one_out"] += 1
            return super().leave_one_out()

    monkeypatch.setattr(compare_module, "RealManifold", Counting)
    fakes = {**_fakes(files), "again": files["psi=0.7"]}
    compare(files["real"], fakes, tmp_path / "out", report=False)
    assert calls == {"init": 1, "evaluate": 3, "leave_one_out": 1}

    calls.update(init=0, evaluate=0, leave_one_out=0)
    compare_datasets(_fakes(files), tmp_path / "ds", report=False)
    assert calls == {"init": 2, "evaluate": 0, "leave_one_out": 2}


def test_arrays_as_sources_and_metrics_subset(tmp_path):
    real, fake = _features(80, 1.0, 3), _features(30, 1.0, 4)
    out = compare(real, {"f": fake}, tmp_path / "out", metrics=["rarity"], report=False).path
    row = read_summary(out)[0]
    assert row["precision"] is None and row["rarity_mean"] is not None
    run = json.loads((out / "run.json").read_text())
    assert run["extractor"] is None and run["real"]["kind"] == "features"
    with np.load(out / "sets" / "f.npz") as data:
        assert "realism" not in data.files  # not computed: left out, never made up
        assert [str(m) for m in data["metrics"]] == ["rarity"]
    header = _rows(out / "sets" / "f.csv")[0]
    assert "realism" not in header and header["nearest_real_name"] == ""


# ---------------------------------------------------------------------- datasets


def test_datasets_equal_leave_one_out(files, tmp_path):
    datasets = {"narrow": files["psi=0.7"], "wide": files["psi=1.0"]}
    out = compare_datasets(datasets, tmp_path / "ds", k=3, report=False, command=["x", "y"]).path
    run = json.loads((out / "run.json").read_text())
    assert run["mode"] == "datasets" and "leave-one-out" in run["method"]
    assert run["method"] == METHODS["datasets"] and run["command"] == ["x", "y"]
    assert run["real"] is None and run["reference_loo"] is None
    assert "leave-one-out" in run["notes"]
    assert not (out / "reference_loo.npz").exists()
    rows = read_summary(out)
    for row, path in zip(rows, datasets.values(), strict=True):
        features, names = _load(path)
        loo = RealManifold(features, k=3).leave_one_out()
        summary = loo.summary()
        assert row["n_in_manifold"] == summary["n_in_manifold"]
        for key in ("mean", "median", "q10", "q90"):
            assert row[f"rarity_{key}"] == summary["rarity"][key]
        for key in ("precision", "recall", "density", "coverage"):
            assert row[key] is None
        table = _rows(out / "sets" / f"{row['name']}.csv")
        assert [r["name"] for r in table] == names
        for i, r in enumerate(table):  # the sphere is a row of the same dataset, never itself
            if loo.in_manifold[i]:
                assert r["sphere_name"] == names[int(loo.sphere_index[i])] != names[i]
    assert rows[0]["rarity_median"] < rows[1]["rarity_median"]  # the narrow set is less rare
    with open(out / "summary.csv", newline="") as handle:
        assert next(csv.DictReader(handle))["precision"] == ""


def test_datasets_refuse_other_feature_spaces(files, tmp_path):
    other_dim = _save(tmp_path / "d.npz", _features(40, 1.0, 5, dim=DIM + 1), "d")
    with pytest.raises(ValueError, match=r"dataset 'd' .*13-dimensional"):
        compare_datasets({"a": files["psi=0.7"], "d": other_dim}, tmp_path / "ds")
    other_net = _save(tmp_path / "e.npz", _features(40, 1.0, 6), "e", extractor="vgg16-fc2")
    with pytest.raises(ValueError, match="different extractors"):
        compare_datasets({"a": files["psi=0.7"], "e": other_net}, tmp_path / "ds")
    assert not (tmp_path / "ds").exists() and _leftovers(tmp_path) == []


# ---------------------------------------------------------------------- the directory


def test_results_dir_is_replaced_never_half_written(files, tmp_path, monkeypatch):
    out = tmp_path / "out"
    compare(files["real"], {"one": files["psi=0.7"]}, out, report=False)
    compare(files["real"], {"two": files["psi=1.0"]}, out, report=False)
    assert sorted(p.name for p in (out / "sets").iterdir()) == ["two.csv", "two.npz"]
    assert _leftovers(tmp_path) == []
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(write_module, "_write_summary", broken)
    with pytest.raises(OSError, match="disk full"):
        compare(files["real"], {"three": files["psi=0.7"]}, out, report=False)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    with pytest.raises(OSError):
        compare(files["real"], {"three": files["psi=0.7"]}, tmp_path / "new", report=False)
    assert not (tmp_path / "new").exists() and _leftovers(tmp_path) == []


def test_output_folder_checks(files, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and is not a results directory"):
        compare(files["real"], _fakes(files), other, report=False)
    assert sorted(p.name for p in other.iterdir()) == ["keep.txt"]
    with pytest.raises(ValueError, match="is not a folder"):
        compare(files["real"], _fakes(files), files["real"] / "out", report=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert compare(files["real"], _fakes(files), empty, report=False).path == empty
    assert (empty / "run.json").exists() and _leftovers(tmp_path) == []


def test_bad_sets_name_the_set(files, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"generated set 'bad' .*13-dimensional"):
        compare(files["real"], {"bad": _features(10, 1.0, 7, dim=DIM + 1)}, out)
    with pytest.raises(ValueError, match=r"generated set 'none'.*(empty|0 samples)"):
        compare(files["real"], {"none": np.zeros((0, DIM), np.float32)}, out)
    empty_folder = tmp_path / "nothing"
    empty_folder.mkdir()
    with pytest.raises(ValueError, match=r"generated set 'folder'.*no images"):
        compare(files["real"], {"folder": empty_folder}, out)
    with pytest.raises(ValueError, match="give at least one generated set"):
        compare(files["real"], {}, out)
    with pytest.raises(ValueError, match=r"the real set .* k=3 needs at least"):
        compare(_features(3, 1.0, 8), {"a": files["psi=0.7"]}, out)
    assert not out.exists() and _leftovers(tmp_path) == []


# ---------------------------------------------------------------------- the report


def _stub_report(monkeypatch, seen: list[Path]) -> None:
    """A stand-in for part D's rarity_score.report: records where it was asked to build."""

    def build_report(results_dir):
        root = Path(results_dir)
        seen.append(root)
        assert (root / "run.json").exists() and (root / "summary.json").exists()
        (root / "report").mkdir(exist_ok=True)
        atomic_write_text(root / "histogram.png", "png")  # the report draws the histogram
        return atomic_write_text(root / "report" / "index.html", "<html></html>")

    module = types.ModuleType("rarity_score.report")
    module.build_report = build_report  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "rarity_score.report", module)


def test_report_is_built_inside_the_new_directory(files, tmp_path, monkeypatch):
    seen: list[Path] = []
    _stub_report(monkeypatch, seen)
    out = compare(files["real"], _fakes(files), tmp_path / "out").path
    assert len(seen) == 1 and seen[0] != out  # built before the move: all or nothing
    assert (out / "report" / "index.html").exists() and (out / "histogram.png").exists()


def test_missing_report_module_leaves_a_note(files, tmp_path, monkeypatch, caplog):
    module = types.ModuleType("rarity_score.report")  # like a namespace package: no functions
    monkeypatch.setitem(__import__("sys").modules, "rarity_score.report", module)
    with caplog.at_level(logging.WARNING, logger="rarity_score"):
        out = compare(files["real"], _fakes(files), tmp_path / "out").path
    assert "report not built" in caplog.text
    assert (out / "run.json").exists() and not (out / "report").exists()
