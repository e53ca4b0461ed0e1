"""rarity_score.filtering: the samples chosen are exactly those the per-sample table
(sets/<slug>.csv) ranks first, in the documented order (ties: lower row first); the files written
are the original bytes (or links to the originals) under safe, distinct names; the output folder
is published whole, replaces only an earlier output of ours, and refuses everything else."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rarity_score.compare import compare, compare_datasets
from rarity_score.filtering import (
    FORMAT,
    Rule,
    Selection,
    file_names,
    select,
    write_list,
    write_selection,
)
from rarity_score.io import publish
from rarity_score.io.names import printable, uncsv_cell
from rarity_score.results_dir import load_results

K = 3

#: Samples of the image set whose names are hostile to file systems and spreadsheets.
HOSTILE = (
    "-=SUM(A1).png",
    "new\nline.png",
    "L" * 200 + ".png",
    "caf\udce9.png",  # the byte 0xe9: not UTF-8
    "spaced name .png",
)


# ---------------------------------------------------------------------- runs to select from


def _png(pixels: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def extraction():
    from pipeline_helpers import TinyExtractor

    from rarity_score.options import ExtractionOptions

    return ExtractionOptions(extractor=TinyExtractor(), cache_dir=False, progress=False)


def make_image_folders(root: Path) -> tuple[Path, Path]:
    """A real folder (30 random images) and a generated one: random images, two exact copies of
    a real image with one base name in two subfolders (their rarities tie), two flat images
    far from everything (out of the manifold) and hostile names."""
    from pipeline_helpers import write_images

    real, fake = root / "real", root / "fake"
    write_images(real, 30, size=12, seed=1)
    write_images(fake, 12, size=12, seed=2, prefix="gen")
    twin = (real / "img_003.png").read_bytes()
    for sub in ("a", "b"):
        (fake / "sub" / sub).mkdir(parents=True)
        (fake / "sub" / sub / "twin.png").write_bytes(twin)
    (fake / "white.png").write_bytes(_png(np.full((12, 12, 3), 255, np.uint8)))
    (fake / "black.png").write_bytes(_png(np.zeros((12, 12, 3), np.uint8)))
    rng = np.random.default_rng(7)
    for name in HOSTILE:
        pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        (fake / name).write_bytes(_png(pixels))
    return real, fake


def make_image_run(root: Path, *, fake: Path | None = None, real: Path | None = None) -> Path:
    """A results directory of `compare` on image folders (the tiny extractor)."""
    if real is None or fake is None:
        real, fake = make_image_folders(root)
    return compare(
        real, {"gen": fake}, root / "run", k=K, extraction=extraction(), report=False
    ).path


def make_feature_run(root: Path, sets: tuple[str, ...] = ("gen",)) -> Path:
    rng = np.random.default_rng(3)
    fakes = {name: rng.normal(size=(25, 3)) * (1 + i) for i, name in enumerate(sets)}
    return compare(rng.normal(size=(40, 3)), fakes, root / "features-run", k=K, report=False).path


def table(run: Path, slug: str = "gen") -> list[dict[str, str]]:
    """The per-sample table as written (names back from their CSV cells)."""
    with open(run / "sets" / f"{slug}.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["name"] = uncsv_cell(row["name"])
    return rows


def originals(folder: Path) -> dict[str, Path]:
    """Printed name (as the tables write it) -> file, for every image under ``folder``."""
    return {
        printable(path.relative_to(folder).as_posix()): path
        for path in folder.rglob("*.png")
        if path.is_file()
    }


def ranked_files(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.name not in ("selection.csv", "filter.json"))


def expected_order(rows: list[dict[str, str]], key: str, *, descending: bool) -> list[int]:
    """Row indices sorted by ``key`` (descending or not), equal values by row: brute force."""
    sign = -1.0 if descending else 1.0
    return [
        int(r["index"]) for r in sorted(rows, key=lambda r: (sign * float(r[key]), int(r["index"])))
    ]


def assert_files_are(out: Path, names: list[str], sources: dict[str, Path]) -> None:
    """``out`` holds one file per name, in rank order, each the original's bytes."""
    files = ranked_files(out)
    assert len(files) == len(names)
    for rank, (path, name) in enumerate(zip(files, names, strict=True), start=1):
        assert path.name.startswith(f"{rank:0{len(str(len(names)))}d}_"), path.name
        assert not path.is_symlink()
        assert path.read_bytes() == sources[name].read_bytes(), (rank, name)


def joined(first: Selection, second: Selection) -> Selection:
    """Both selections' samples as one, ranked in that order (every sample of a set)."""
    rows = [replace(s, rank=rank) for rank, s in enumerate(first.rows + second.rows, start=1)]
    return replace(first, rows=tuple(rows))


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> tuple[Path, Path]:
    pytest.importorskip("torch")
    pytest.importorskip("PIL")
    root = tmp_path_factory.mktemp("filter-images")
    run = make_image_run(root)
    rows = table(run)
    inside = [r for r in rows if r["in_manifold"] == "true"]
    twins = [r for r in rows if r["name"].endswith("twin.png")]
    # The data this suite relies on (fail loudly, never test nothing):
    assert len(inside) >= 10 and len(inside) < len(rows), "want samples in and out"
    assert [r["name"] for r in twins] == ["sub/a/twin.png", "sub/b/twin.png"]
    assert twins[0]["in_manifold"] == "true" and twins[0]["rarity"] == twins[1]["rarity"]
    return run, root / "fake"


# ---------------------------------------------------------------------- the selection


def test_rarest_are_the_top_of_the_table(image_run, tmp_path):
    run, fake = image_run
    rows = table(run)
    inside = [r for r in rows if r["in_manifold"] == "true"]
    order = expected_order(inside, "rarity", descending=True)
    selection = select(load_results(run), Rule.rarest(5))
    assert [s.row for s in selection.rows] == order[:5]
    assert [s.rank for s in selection.rows] == [1, 2, 3, 4, 5]
    assert [s.score for s in selection.rows] == [float(rows[i]["rarity"]) for i in order[:5]]
    out = write_selection(selection, tmp_path / "rarest")
    assert_files_are(out, [rows[i]["name"] for i in order[:5]], originals(fake))


def test_ties_keep_the_row_order(image_run):
    run, _ = image_run
    rows = table(run)
    inside = [r for r in rows if r["in_manifold"] == "true"]
    results = load_results(run)
    twins = [int(r["index"]) for r in rows if r["name"].endswith("twin.png")]
    for rule, descending in ((Rule.rarest(len(rows)), True), (Rule.most_common(100), False)):
        chosen = [s.row for s in select(results, rule).rows]
        assert chosen == expected_order(inside, "rarity", descending=descending)
        first, second = chosen.index(twins[0]), chosen.index(twins[1])
        assert second == first + 1  # lower row first, both ways
        # A cut between the two takes the lower row only.
        cut = select(results, Rule(rule.kind, count=first + 1)).rows
        assert cut[-1].row == twins[0] and twins[1] not in [s.row for s in cut]


def test_most_common_and_n_beyond_what_there_is(image_run):
    run, _ = image_run
    rows = table(run)
    inside = [r for r in rows if r["in_manifold"] == "true"]
    chosen = select(load_results(run), Rule.most_common(10_000))
    assert [s.row for s in chosen.rows] == expected_order(inside, "rarity", descending=False)
    assert all(rows[s.row]["in_manifold"] == "true" for s in chosen.rows)


@pytest.mark.parametrize(("low", "high"), [(0.0, 0.25), (0.25, 0.75), (0.9, 1.0), (0.5, 0.5)])
def test_quantile_bounds(image_run, low, high):
    run, _ = image_run
    rows = [r for r in table(run) if r["in_manifold"] == "true"]
    rarity = np.array([float(r["rarity"]) for r in rows])
    q_low, q_high = np.quantile(rarity, [low, high])
    wanted = [r for r in rows if q_low <= float(r["rarity"]) <= q_high]
    chosen = select(load_results(run), Rule.quantile(low, high))
    assert [s.row for s in chosen.rows] == expected_order(wanted, "rarity", descending=False)
    if (low, high) == (0.0, 0.25):
        assert chosen.rows[0].score == rarity.min()
    if high == 1.0:
        assert chosen.rows[-1].score == rarity.max()


def test_out_of_manifold_against_the_flags(image_run, tmp_path):
    run, fake = image_run
    rows = table(run)
    outside = [r for r in rows if r["in_manifold"] == "false"]
    chosen = select(load_results(run), Rule.out_of_manifold())
    assert chosen.score_name == "nearest_real_distance"
    assert [s.row for s in chosen.rows] == expected_order(
        outside, "nearest_real_distance", descending=True
    )
    names = {rows[s.row]["name"] for s in chosen.rows}
    assert {"white.png", "black.png"} <= names  # far from every random real image
    out = write_selection(chosen, tmp_path / "outside")
    assert_files_are(out, [rows[s.row]["name"] for s in chosen.rows], originals(fake))


def test_unauthentic_against_the_flags(image_run, tmp_path):
    run, _ = image_run
    rows = table(run)
    copies = [r for r in rows if r["authentic"] == "false"]
    chosen = select(load_results(run), Rule.unauthentic())
    assert chosen.score_name == "authenticity_ratio"
    assert [s.row for s in chosen.rows] == expected_order(
        copies, "authenticity_ratio", descending=False
    )
    # The two exact copies of a real image come first (ratio 0), the lower row first.
    assert [rows[s.row]["name"] for s in chosen.rows[:2]] == ["sub/a/twin.png", "sub/b/twin.png"]
    assert chosen.rows[0].score == 0.0
    out = write_selection(chosen, tmp_path / "copies")
    files = ranked_files(out)
    assert [f.name for f in files[:2]] == [f"{1:0{len(str(len(files)))}d}_twin.png", files[1].name]
    assert files[0].name != files[1].name and files[1].name.endswith("_twin.png")


def test_selection_csv_and_filter_json(image_run, tmp_path):
    run, fake = image_run
    rows = table(run)
    selection = select(run, Rule.rarest(4))  # a path works as well as loaded results
    out = write_selection(selection, tmp_path / "out")
    with open(out / "selection.csv", newline="", encoding="utf-8") as handle:
        listed = list(csv.DictReader(handle))
    assert list(listed[0]) == ["path", "name", "rarity", "rank", "file"]
    files = [p.name for p in ranked_files(out)]
    sources = originals(fake)
    for position, (line, chosen) in enumerate(zip(listed, selection.rows, strict=True)):
        assert int(line["rank"]) == position + 1 == chosen.rank
        assert uncsv_cell(line["name"]) == rows[chosen.row]["name"]
        assert float(line["rarity"]) == float(rows[chosen.row]["rarity"])
        assert line["file"] == files[position]
        assert uncsv_cell(line["path"]) == printable(str(sources[chosen.name]))  # escaped
    record = json.loads((out / "filter.json").read_text(encoding="utf-8"))
    assert record["format"] == FORMAT and record["set"] == "gen" and record["how"] == "copy"
    assert record["rule"] == {"kind": "rarest", "count": 4, "low": None, "high": None}
    assert [s["row"] for s in record["selected"]] == [s.row for s in selection.rows]
    assert set(record["files"]) == {*files, "selection.csv"}
    assert record["files"] == publish.build_manifest(out, own=("filter.json",))


def test_write_list(image_run, tmp_path):
    run, fake = image_run
    selection = select(run, Rule.most_common(3))
    path = write_list(selection, tmp_path / "typical.csv")
    with open(path, newline="", encoding="utf-8") as handle:
        listed = list(csv.DictReader(handle))
    assert list(listed[0]) == ["path", "name", "rarity", "rank"]
    sources = originals(fake)
    wanted = [printable(str(sources[name])) for name in selection.names]
    assert [uncsv_cell(r["path"]) for r in listed] == wanted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["typical.csv"]  # nothing beside it
    with pytest.raises(ValueError, match="exists"):
        write_list(selection, path)
    with pytest.raises(ValueError, match=r"\(the results directory\); a later run replaces"):
        write_list(selection, run / "mine.csv")


def test_links_point_at_the_originals(image_run, tmp_path):
    run, fake = image_run
    selection = select(run, Rule.rarest(6))
    out = write_selection(selection, tmp_path / "linked", how="link")
    sources = originals(fake)
    files = ranked_files(out)
    assert len(files) == 6
    for path, chosen in zip(files, selection.rows, strict=True):
        assert path.is_symlink()
        assert os.readlink(path) == os.path.abspath(sources[chosen.name])
        assert path.samefile(sources[chosen.name])
    record = json.loads((out / "filter.json").read_text(encoding="utf-8"))
    assert record["how"] == "link"
    # Links are listed with their targets, like files with their digests.
    assert {name for name, entry in record["files"].items() if "link" in entry} == {
        p.name for p in files
    }
    assert record["files"][files[0].name] == {"link": os.readlink(files[0])}
    assert set(record["files"]) == {"selection.csv", *(p.name for p in files)}


def test_hostile_names_give_safe_distinct_files(image_run, tmp_path):
    run, fake = image_run
    results = load_results(run)
    selection = joined(select(results, Rule.rarest(1000)), select(results, Rule.out_of_manifold()))
    assert len(selection.rows) == results.sets[0].n
    out = write_selection(selection, tmp_path / "all")
    files = ranked_files(out)
    names = [p.name for p in files]
    assert names == file_names(selection)
    assert len(set(names)) == len(names) == results.sets[0].n
    assert len({name.lower() for name in names}) == len(names)  # case-insensitive file systems
    for name in names:
        assert len(name.encode("utf-8")) <= 200
        assert not any(c in name for c in "/\\\n\r\t\0:") and name.isprintable()
        assert not name.startswith(".")
    sources = originals(fake)
    for path, chosen in zip(files, selection.rows, strict=True):
        assert path.parent == out
        assert path.read_bytes() == sources[chosen.name].read_bytes()
    long = next(n for n in names if "LLLL" in n)
    assert long.endswith(".png") and len(long) < 200
    assert any(n.endswith("_new_x0aline.png") for n in names)
    assert sorted(p.name for p in out.parent.iterdir()) == ["all"]  # no staging left


def test_dot_dot_names_from_a_list_file(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("PIL")
    from pipeline_helpers import write_images

    real, _ = make_image_folders(tmp_path / "data")
    elsewhere = tmp_path / "elsewhere"
    write_images(elsewhere, 6, size=12, seed=9, prefix="x")
    lists = tmp_path / "lists"
    lists.mkdir()
    entries = ["../elsewhere/x_000.png", "../elsewhere/x_001.png", str(elsewhere / "x_002.png")]
    entries += [f"../elsewhere/x_00{i}.png" for i in (3, 4, 5)]
    (lists / "gen.txt").write_text("\n".join(entries) + "\n", encoding="utf-8")
    run = make_image_run(tmp_path, real=real, fake=lists / "gen.txt")
    results = load_results(run)
    selection = joined(select(results, Rule.rarest(6)), select(results, Rule.out_of_manifold()))
    for how in ("copy", "link"):
        out = write_selection(selection, tmp_path / f"out-{how}", how=how)
        files = ranked_files(out)
        assert len(files) == 6 and all(p.parent == out for p in files)
        for path, chosen in zip(files, selection.rows, strict=True):
            original = elsewhere / Path(chosen.name).name
            assert path.name.endswith("_" + original.name)
            assert path.read_bytes() == original.read_bytes()
            if how == "link":
                assert os.readlink(path) == os.path.abspath(original)
    assert not (tmp_path / "x_000.png").exists()


def test_datasets_mode_selects_from_a_real_dataset(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("PIL")
    real, _ = make_image_folders(tmp_path)
    run = compare_datasets(
        {"train": real}, tmp_path / "curation", k=K, extraction=extraction(), report=False
    ).path
    rows = table(run, "train")
    inside = [r for r in rows if r["in_manifold"] == "true"]
    selection = select(load_results(run), Rule.most_common(5))
    assert [s.row for s in selection.rows] == expected_order(inside, "rarity", descending=False)[:5]
    out = write_selection(selection, tmp_path / "typical")
    assert_files_are(out, [rows[s.row]["name"] for s in selection.rows], originals(real))
    out = select(load_results(run), Rule.out_of_manifold())
    outside = [r for r in rows if r["in_manifold"] == "false"]
    assert out.score_name == "row" and [s.row for s in out.rows] == [
        int(r["index"]) for r in outside
    ]
    with pytest.raises(ValueError, match="no authenticity flags"):
        select(load_results(run), Rule.unauthentic())


def test_archive_copies_and_refuses_links(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("PIL")
    from pipeline_helpers import write_images

    real = tmp_path / "real"
    write_images(real, 25, size=12, seed=1)
    loose = tmp_path / "loose"
    write_images(loose, 10, size=12, seed=4, prefix="z")
    archive = tmp_path / "gen.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(loose.iterdir()):
            handle.write(path, f"inner/{path.name}")
    run = make_image_run(tmp_path, real=real, fake=archive)
    selection = select(run, Rule.rarest(3))
    with pytest.raises(ValueError, match=r"archive .*use --copy"):
        write_selection(selection, tmp_path / "linked", how="link")
    assert not (tmp_path / "linked").exists()
    out = write_selection(selection, tmp_path / "copied")
    with zipfile.ZipFile(archive) as handle:
        for path, chosen in zip(ranked_files(out), selection.rows, strict=True):
            assert path.read_bytes() == handle.read(chosen.name)
            assert path.name.endswith("_" + chosen.name.split("/")[-1])
    with open(out / "selection.csv", newline="", encoding="utf-8") as handle:
        first = next(csv.DictReader(handle))
    assert first["path"] == f"{archive}:{selection.rows[0].name}"


def test_feature_sets_write_the_list_only(tmp_path, caplog):
    run = make_feature_run(tmp_path)
    rows = table(run)
    selection = select(run, Rule.rarest(4))
    inside = [r for r in rows if r["in_manifold"] == "true"]
    assert [s.row for s in selection.rows] == expected_order(inside, "rarity", descending=True)[:4]
    with caplog.at_level("WARNING", logger="rarity_score"):
        out = write_selection(selection, tmp_path / "out")
    assert "only selection.csv" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["filter.json", "selection.csv"]
    with open(out / "selection.csv", newline="", encoding="utf-8") as handle:
        listed = list(csv.DictReader(handle))
    assert [int(r["rank"]) for r in listed] == [1, 2, 3, 4]
    assert all(r["path"] == "" and r["file"] == "" for r in listed)
    # and it is an output of ours: the next run replaces it
    write_selection(select(run, Rule.most_common(2)), tmp_path / "out")
    assert json.loads((out / "filter.json").read_text())["rule"]["kind"] == "most-common"


# ---------------------------------------------------------------------- rules and sets


def test_rule_values_are_checked():
    for bad in (0, -1, 1.5, True, None):
        with pytest.raises(ValueError, match="at least 1"):
            Rule.rarest(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="at least 1"):
            Rule.most_common(bad)  # type: ignore[arg-type]
    for low, high in ((-0.1, 0.5), (0.2, 1.5), (float("nan"), 1.0), (0.0, float("inf"))):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            Rule.quantile(low, high)
    with pytest.raises(ValueError, match="must not exceed"):
        Rule.quantile(0.6, 0.4)
    with pytest.raises(ValueError, match="unknown rule"):
        Rule("rarer")
    assert Rule.quantile(0, 1) == Rule("quantile", low=0.0, high=1.0)


def test_several_sets_need_a_name(tmp_path):
    run = make_feature_run(tmp_path, ("alpha", "beta", "gamma"))
    with pytest.raises(ValueError, match=r"3 sets \('alpha', 'beta', 'gamma'\).*--set"):
        select(run, Rule.rarest(2))
    with pytest.raises(ValueError, match=r"no set 'delta'; its sets: 'alpha', 'beta', 'gamma'"):
        select(run, Rule.rarest(2), "delta")
    chosen = select(run, Rule.rarest(2), "beta")
    assert chosen.item.name == "beta"
    rows = table(run, "beta")
    inside = [r for r in rows if r["in_manifold"] == "true"]
    assert [s.row for s in chosen.rows] == expected_order(inside, "rarity", descending=True)[:2]


def test_an_empty_selection_is_written_empty(tmp_path, caplog):
    rng = np.random.default_rng(0)
    far = {"far": rng.normal(size=(5, 2)) + 100}
    run = compare(rng.normal(size=(30, 2)), far, tmp_path / "r", k=K, report=False).path
    selection = select(run, Rule.rarest(3))
    assert selection.rows == ()
    with caplog.at_level("WARNING", logger="rarity_score"):
        out = write_selection(selection, tmp_path / "none")
    assert "no sample" in caplog.text
    assert (out / "selection.csv").read_text() == "path,name,rarity,rank,file\n"


# ---------------------------------------------------------------------- the source is checked


@pytest.fixture
def small_run(tmp_path) -> tuple[Path, Path]:
    pytest.importorskip("torch")
    pytest.importorskip("PIL")
    from pipeline_helpers import write_images

    real, fake = tmp_path / "real", tmp_path / "fake"
    write_images(real, 20, size=12, seed=1)
    write_images(fake, 8, size=12, seed=2, prefix="gen")
    return make_image_run(tmp_path, real=real, fake=fake), fake


def test_a_changed_source_is_refused(small_run, tmp_path):
    run, fake = small_run
    selection = select(run, Rule.rarest(2))
    first = fake / "gen_000.png"
    stamp = first.stat()
    os.utime(first, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    for how in ("copy", "link"):
        with pytest.raises(ValueError, match="fingerprint differs"):
            write_selection(selection, tmp_path / "out", how=how)
    with pytest.raises(ValueError, match="fingerprint differs"):
        write_list(selection, tmp_path / "list.csv")
    assert not (tmp_path / "out").exists() and not (tmp_path / "list.csv").exists()
    os.utime(first, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    (fake / "extra.png").write_bytes(first.read_bytes())
    with pytest.raises(ValueError, match="fingerprint differs"):
        write_selection(selection, tmp_path / "out")


def test_a_moved_source_is_refused(small_run, tmp_path):
    run, fake = small_run
    selection = select(run, Rule.rarest(2))
    fake.rename(tmp_path / "moved")
    with pytest.raises(ValueError, match=r"not at .* any more"):
        write_selection(selection, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("how", ["copy", "link"])
def test_a_file_changed_after_the_check_is_not_copied(small_run, tmp_path, monkeypatch, how):
    import rarity_score.filtering.write as writing

    run, _ = small_run
    selection = select(run, Rule.rarest(3))
    step = writing._place
    calls = []

    def touch_then_place(collection, position, target, how):
        calls.append(position)
        if len(calls) == 2:  # the source changes under the run, after its check
            path = collection.path(position)
            stamp = os.stat(path)
            os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
        return step(collection, position, target, how)

    monkeypatch.setattr(writing, "_place", touch_then_place)
    with pytest.raises(ValueError, match="changed since"):
        write_selection(selection, tmp_path / "out", how=how)
    assert len(calls) == 2
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------- the output folder


def test_refuses_a_folder_that_is_not_ours(small_run, tmp_path):
    run, _ = small_run
    selection = select(run, Rule.rarest(2))
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("a.txt", "b.txt", "c.txt", "d.txt", "e.txt"):
        (mine / name).write_text("keep me")
    refused = r"not an output of `rarity filter` .*a\.txt, b\.txt, c\.txt and 2 more"
    with pytest.raises(ValueError, match=refused):
        write_selection(selection, mine)
    assert sorted(p.name for p in mine.iterdir()) == ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt"]
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        write_selection(selection, tmp_path / "a-file")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert write_selection(selection, empty) == empty and len(ranked_files(empty)) == 2


def test_refuses_the_results_directory_and_the_sources(small_run, tmp_path):
    run, fake = small_run
    selection = select(run, Rule.rarest(2))
    for target, fragment in (
        (run, "also an input"),
        (run / "sets" / "out", "lies inside the input folder"),
        (run / "new", "lies inside the input folder"),
        (fake, "also an input"),
        (fake / "rarest", "lies inside the input folder"),
        (tmp_path / "real" / "rarest", "lies inside the input folder"),  # the real set's
        (tmp_path, "holds the input"),
    ):
        with pytest.raises(ValueError, match=fragment):
            write_selection(selection, target)
    assert not (fake / "rarest").exists() and not (run / "new").exists()


def test_replaces_an_earlier_output_only(small_run, tmp_path):
    run, _ = small_run
    out = tmp_path / "out"
    write_selection(select(run, Rule.rarest(3)), out)
    first = [p.name for p in ranked_files(out)]
    write_selection(select(run, Rule.most_common(2)), out, how="link")
    assert len(ranked_files(out)) == 2 and all(p.is_symlink() for p in ranked_files(out))
    write_selection(select(run, Rule.rarest(3)), out)  # links replaced by copies
    assert [p.name for p in ranked_files(out)] == first
    assert not any(p.is_symlink() for p in ranked_files(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake", "out", "real", "run"]

    # A file of the user's, an edited copy, a link replaced: refused, nothing deleted.
    (out / "note.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"did not write or that changed since \(note\.txt\)"):
        write_selection(select(run, Rule.rarest(1)), out)
    (out / "note.txt").unlink()
    edited = ranked_files(out)[0]
    edited.write_bytes(b"edited")
    with pytest.raises(ValueError, match=re.escape(edited.name)):
        write_selection(select(run, Rule.rarest(1)), out)
    assert edited.read_bytes() == b"edited"
    edited.unlink()  # a file it lists may be gone: the rest is still ours
    write_selection(select(run, Rule.most_common(1)), out, how="link")
    link = ranked_files(out)[0]
    link.unlink()
    link.write_bytes(b"not a link any more")
    with pytest.raises(ValueError, match=re.escape(link.name)):
        write_selection(select(run, Rule.rarest(1)), out)
    assert link.read_bytes() == b"not a link any more"


def test_a_claimed_filter_json_gives_no_licence(small_run, tmp_path):
    run, _ = small_run
    out = tmp_path / "out"
    out.mkdir()
    (out / "filter.json").write_text(json.dumps({"format": FORMAT}))  # no list of files
    (out / "precious.png").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"precious\.png"):
        write_selection(select(run, Rule.rarest(1)), out)
    claimed = {"format": FORMAT, "files": {}, "links": {"precious.png": "/anywhere"}}
    (out / "filter.json").write_text(json.dumps(claimed))
    with pytest.raises(ValueError, match=r"precious\.png"):
        write_selection(select(run, Rule.rarest(1)), out)
    assert (out / "precious.png").read_bytes() == b"x"


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_an_interrupted_write_leaves_nothing(small_run, tmp_path, monkeypatch, error):
    import rarity_score.filtering.write as filtering

    run, _ = small_run
    original = filtering._place
    calls = []

    def copy_then_fail(*args):
        calls.append(args)
        if len(calls) == 3:
            raise error("interrupted")
        return original(*args)

    monkeypatch.setattr(filtering, "_place", copy_then_fail)
    journaled = set(publish.journal_dir().glob("*.json"))
    with pytest.raises(error):
        write_selection(select(run, Rule.rarest(5)), tmp_path / "out")
    assert len(calls) == 3
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert set(publish.journal_dir().glob("*.json")) <= journaled  # its entry is gone

    # An earlier output survives an interrupted replacement whole.
    monkeypatch.setattr(filtering, "_place", original)
    out = write_selection(select(run, Rule.rarest(2)), tmp_path / "out")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls.clear()
    monkeypatch.setattr(filtering, "_place", copy_then_fail)
    with pytest.raises(error):
        write_selection(select(run, Rule.most_common(5)), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_write_selection_checks_how(small_run, tmp_path):
    run, _ = small_run
    with pytest.raises(ValueError, match="'copy' or 'link'"):
        write_selection(select(run, Rule.rarest(1)), tmp_path / "out", how="move")


def test_copies_can_be_scored_again(small_run, tmp_path):
    """The output is a folder of images like any other (selection.csv and filter.json are not
    images), so the rarest can be scored again."""
    from rarity_score.io.images import open_images

    run, _ = small_run
    out = write_selection(select(run, Rule.rarest(4)), tmp_path / "again")
    collection = open_images(out)
    assert len(collection) == 4 and collection.names == [p.name for p in ranked_files(out)]
    shutil.rmtree(out)


# ---------------------------------------------------------------------- review regressions


def _edit_run(run: Path, change) -> None:
    """Rewrite ``run.json`` with ``change(record)`` applied (a tampered results directory)."""
    record = json.loads((run / "run.json").read_text(encoding="utf-8"))
    change(record)
    (run / "run.json").write_text(json.dumps(record), encoding="utf-8")


def test_a_list_is_never_written_into_an_input(small_run, tmp_path):
    """A list file named like an image inside a scored folder would join its images (and break
    the run's fingerprint): refused like an output folder there."""
    run, fake = small_run
    selection = select(run, Rule.rarest(3))
    before = sorted(p.name for p in fake.iterdir())
    for target, fragment in (
        (fake / "x.png", "lies inside the input folder"),
        (fake / "deeper.csv", "generated set 'gen'"),
        (tmp_path / "real" / "x.png", "the real set"),
    ):
        with pytest.raises(ValueError, match=fragment):
            write_list(selection, target)
    assert sorted(p.name for p in fake.iterdir()) == before
    with pytest.raises(ValueError, match="the list file needs a file name"):
        write_list(selection, "")


def test_images_a_list_file_names_are_never_replaced(small_run, tmp_path):
    """An earlier output whose images a later run scored through a list file (of the real set
    or of a generated one) is an input of that run: replacing it would delete them."""
    run, _ = small_run
    real = tmp_path / "real"
    everything = select(run, Rule.rarest(100))
    everything = joined(everything, select(run, Rule.out_of_manifold()))
    generated = write_selection(everything, tmp_path / "generated")
    datasets = compare_datasets(
        {"train": real}, tmp_path / "curation", k=K, extraction=extraction(), report=False
    ).path
    train = select(datasets, Rule.rarest(100))
    reals = write_selection(joined(train, select(datasets, Rule.out_of_manifold())), tmp_path / "r")
    lists = tmp_path / "lists"
    lists.mkdir()
    for name, folder in (("real.txt", reals), ("gen.txt", generated)):
        files = [f"../{folder.name}/{p.name}" for p in ranked_files(folder)]
        (lists / name).write_text("\n".join(files) + "\n", encoding="utf-8")
    again = compare(
        lists / "real.txt",
        {"gen": lists / "gen.txt"},
        tmp_path / "again",
        k=K,
        extraction=extraction(),
        report=False,
    ).path
    kept = {p: p.read_bytes() for folder in (reals, generated) for p in ranked_files(folder)}
    selection = select(again, Rule.rarest(2))
    for folder, label in ((generated, "generated set 'gen'"), (reals, "the real set")):
        with pytest.raises(ValueError, match=f"holds the input .*an image listed by {label}"):
            write_selection(selection, folder)
    assert {p: p.read_bytes() for p in kept} == kept
    assert len(ranked_files(write_selection(selection, tmp_path / "fresh"))) == 2


@pytest.mark.parametrize("source", ["", None])
def test_a_run_without_a_source_is_refused(small_run, tmp_path, monkeypatch, source):
    """An empty or missing source in run.json never means "the current folder"."""
    run, _ = small_run

    def no_source(record):
        record["sets"][0]["source"] = source

    _edit_run(run, no_source)
    monkeypatch.chdir(tmp_path)  # a folder of images: open_images("") would list it
    selection = select(run, Rule.rarest(2))
    for write in (
        lambda: write_selection(selection, tmp_path / "out"),
        lambda: write_list(selection, tmp_path / "list.csv"),
    ):
        with pytest.raises(ValueError, match=r"run\.json records no source for set 'gen'"):
            write()
    assert not (tmp_path / "out").exists() and not (tmp_path / "list.csv").exists()


def test_a_list_of_paths_is_no_set_of_features(small_run, tmp_path, caplog):
    """Images given as a Python list of paths: the run records their names, not where they are,
    so nothing is copied or linked, and the warning says why (not "features")."""
    _, fake = small_run
    paths = [str(p) for p in sorted(fake.glob("*.png"))]
    run = compare(
        tmp_path / "real",
        {"gen": paths},
        tmp_path / "paths-run",
        k=K,
        extraction=extraction(),
        report=False,
    ).path
    selection = select(run, Rule.rarest(2))
    reason = "the run did not record where the image files of set 'gen' are"
    assert selection.missing_images().startswith(reason)
    with pytest.raises(ValueError, match=f"{reason}.*no link can be made"):
        write_selection(selection, tmp_path / "linked", how="link")
    assert not (tmp_path / "linked").exists()
    with caplog.at_level("WARNING", logger="rarity_score"):
        out = write_selection(selection, tmp_path / "out")
    assert reason in caplog.text and "only selection.csv and filter.json" in caplog.text
    assert "features" not in caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["filter.json", "selection.csv"]
    array_run = compare(
        tmp_path / "real",
        {
            "gen": np.arange(6, dtype=np.uint8)[:, None, None, None]
            * np.ones((1, 12, 12, 3), np.uint8)
            * 40
        },
        tmp_path / "array-run",
        k=K,
        extraction=extraction(),
        report=False,
    ).path
    assert "held in memory" in select(array_run, Rule.out_of_manifold()).missing_images()


def test_links_follow_what_the_source_opened_as(tmp_path):
    """A run.json that calls an archive a folder does not get links made to archive members
    (which would silently be copies): what the source opens as decides."""
    pytest.importorskip("torch")
    pytest.importorskip("PIL")
    from pipeline_helpers import write_images

    real, loose = tmp_path / "real", tmp_path / "loose"
    write_images(real, 20, size=12, seed=1)
    write_images(loose, 6, size=12, seed=2, prefix="z")
    archive = tmp_path / "gen.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(loose.iterdir()):
            handle.write(path, path.name)
    run = make_image_run(tmp_path, real=real, fake=archive)

    def as_folder(record):
        record["sets"][0]["kind"] = "folder"

    _edit_run(run, as_folder)
    selection = select(run, Rule.rarest(2))
    with pytest.raises(ValueError, match=r"members of the archive .*use --copy"):
        write_selection(selection, tmp_path / "linked", how="link")
    assert not (tmp_path / "linked").exists()


def test_a_link_replaced_meanwhile_is_not_deleted(small_run, tmp_path, monkeypatch):
    """The links of an earlier output are checked again as they are removed: a user's file put
    in a link's place after the folder was checked stays (with the old folder, as any file
    rarity-score did not write)."""
    run, _ = small_run
    out = write_selection(select(run, Rule.rarest(2)), tmp_path / "out", how="link")
    link = ranked_files(out)[0]
    remove = publish.remove_verified

    def swap_then_remove(folder, manifest, **kwargs):
        moved = Path(folder) / link.name
        moved.unlink()
        moved.write_bytes(b"the user's file")
        return remove(folder, manifest, **kwargs)

    monkeypatch.setattr(publish, "remove_verified", swap_then_remove)
    write_selection(select(run, Rule.most_common(1)), out)
    kept = [p / link.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert [p.read_bytes() for p in kept] == [b"the user's file"]
    # The rest went; the record stays with what it does not account for.
    assert sorted(p.name for p in kept[0].parent.iterdir()) == [link.name, "filter.json"]


def test_a_link_replaced_in_an_old_folder_is_not_cleaned(small_run, tmp_path):
    """An old folder a killed run left (journaled) is removed link by link, each checked."""
    import socket

    run, _ = small_run
    out = write_selection(select(run, Rule.rarest(2)), tmp_path / "out", how="link")
    record = json.loads((out / "filter.json").read_text(encoding="utf-8"))
    old = tmp_path / ".out.0123abcd.old"
    shutil.copytree(out, old, symlinks=True)
    first, second = ranked_files(old)
    first.unlink()
    first.write_bytes(b"the user's file")
    journal = publish.journal_dir()
    journal.mkdir(parents=True, exist_ok=True)
    entry = {
        "path": str(old),
        "kind": "old",
        "target": str(out),
        "files": record["files"],
        "own": ["filter.json"],
        "host": socket.gethostname(),
        "pid": 2**22 + 12345,  # no such process: a killed run's
    }
    (journal / "old-00000000000000aa.json").write_text(json.dumps(entry))
    assert old in publish.clean_stale()
    assert sorted(p.name for p in old.iterdir()) == [
        first.name,
        "filter.json",
    ]  # the record stays with it
    assert first.read_bytes() == b"the user's file" and not os.path.lexists(second)


def test_the_set_name_is_checked(tmp_path):
    run = make_feature_run(tmp_path)
    with pytest.raises(TypeError, match=r"set_name must be a set's name \(a str\), not int"):
        select(run, Rule.rarest(3), 123)  # type: ignore[arg-type]


def test_a_killed_list_leaves_nothing_behind(small_run, tmp_path):
    """``--list`` is written in a journaled staging folder: a run killed before the file is in
    place leaves a folder the next run removes, and no file."""
    import subprocess
    import sys

    run, _ = small_run
    target = tmp_path / "list.csv"
    script = f"""
import os, signal
import rarity_score.io.publish as publish
from rarity_score.filtering import Rule, select, write_list
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
publish.os.link = die
write_list(select({str(run)!r}, Rule.rarest(2)), {str(target)!r})
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -9, done.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".list.csv.")]
    assert not target.exists()
    write_list(select(run, Rule.rarest(2)), target)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert target.read_text(encoding="utf-8").startswith("path,name,rarity,rank\n")
