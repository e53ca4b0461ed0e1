"""The output directory of ``rarity spaces`` (rarity_score.spaces.output): what the writer
writes, that the reader gives it back, that the reader treats the folder as untrusted input (one
line naming the file for every damage), and that it is published like a results directory."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rarity_score.compare import compare
from rarity_score.features.pipeline import FeatureSet
from rarity_score.io.npz import npz_bytes, write_npz
from rarity_score.io.run_record import FORMAT
from rarity_score.results_dir import ResultsError, load_results, read_run
from rarity_score.spaces import agreement_rows
from rarity_score.spaces.agreement import ROW_KEYS
from rarity_score.spaces.match import align
from rarity_score.spaces.output import (
    SpacesWritten,
    format_table,
    load_spaces,
    publish_spaces,
    space_record,
    write_spaces,
    write_spaces_files,
)

DIM = 4


def _inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((80, DIM))
    fakes = {
        # Copies of real samples nudged a little: in the manifold in every space (kappa: null).
        "copies": real[:20] + 1e-3 * rng.standard_normal((20, DIM)),
        "wide": 2.0 * rng.standard_normal((35, DIM)),
    }
    return real, fakes


def _names(prefix: str, n: int) -> list[str]:
    names = [f"{prefix}_{i:03d}.png" for i in range(n)]
    names[0] = f"={prefix}.png"  # a name a spreadsheet would run
    return names


def _warp(x: np.ndarray) -> np.ndarray:
    return np.tanh(x) + 0.2 * x**2


def _run(folder: Path, space: Callable[[np.ndarray], np.ndarray]):
    real, fakes = _inputs()
    sets = {name: FeatureSet(space(x), _names(name, len(x))) for name, x in fakes.items()}
    real_set = FeatureSet(space(real), _names("real", len(real)))
    return load_results(compare(real_set, sets, folder, k=3, report=False).path)


@pytest.fixture
def spaces(tmp_path):
    """Two results directories of the same samples in two spaces, and their alignment."""
    a = _run(tmp_path / "space_a", lambda x: x)
    b = _run(tmp_path / "space_b", _warp)
    named = [("A", a), ("B=warp", b)]
    return named, align(named)


def _records(named):
    return [space_record(name, results, slug=f"s{i}") for i, (name, results) in enumerate(named)]


@pytest.fixture
def written(tmp_path, spaces) -> SpacesWritten:
    named, aligned = spaces
    return write_spaces(tmp_path / "out", aligned, _records(named), k=3, command=["rarity", "x"])


# ---------------------------------------------------------------------- round trip


def test_writer_and_reader_round_trip(written, spaces):
    named, aligned = spaces
    out = written.path
    assert sorted(p.name for p in out.iterdir()) == [
        "run.json",
        "sets",
        "summary.csv",
        "summary.json",
        "summary.md",
    ]
    loaded = load_spaces(out)
    assert loaded.space_names == ["A", "B=warp"]
    assert [s.slug for s in loaded.spaces] == ["s0", "s1"]
    assert loaded.summary == written.rows
    assert [s.name for s in loaded.sets] == ["copies", "wide"]
    for item, original in zip(loaded.sets, aligned.sets, strict=True):
        assert item.names == original.names and item.n == original.n
        assert item.matched_by == "name"
        np.testing.assert_array_equal(item.rarity, original.rarity)
        np.testing.assert_array_equal(item.percentile, original.percentile)
        np.testing.assert_array_equal(item.in_manifold, original.in_manifold)
        np.testing.assert_array_equal(item.nearest_real_index, original.nearest_real_index)
        assert item.rarity.dtype == np.float64 and item.nearest_real_index.dtype == np.int64
    run = loaded.run
    assert run["format"] == FORMAT and run["mode"] == "spaces" and run["fraction"] == 0.1
    assert run["k"] == 3 and run["command"] == ["rarity", "x"]
    assert set(run["files"]) == {
        "summary.csv",
        "summary.json",
        "summary.md",
        "sets/copies.csv",
        "sets/copies.npz",
        "sets/wide.csv",
        "sets/wide.npz",
    }
    space = loaded.spaces[0]
    assert space.results == str(named[0][1].root.absolute())
    assert space.n_real == 80 and space.k == 3 and space.dim == DIM
    assert space.real_origin is not None and space.real_origin[1] == "features"
    assert space.real_names == named[0][1].real_names
    assert loaded.rows_of("wide") == written.rows[1:]


def test_summary_rows_are_the_statistics_of_the_aligned_sets(written, spaces):
    _, aligned = spaces
    want = [
        row
        for item in aligned.sets
        for row in agreement_rows(item.name, ["A", "B=warp"], item.rarity)
    ]
    assert written.rows == want
    copies, wide = written.rows
    assert copies["kappa"] is None and copies["out_out"] == 0  # every copy in both manifolds
    assert wide["kappa"] is not None and 0 < wide["n_in_both"] < wide["n"]


def test_json_is_strict_and_undefined_is_null(written):
    text = (written.path / "summary.json").read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text
    rows = json.loads(text)
    assert list(rows[0]) == list(ROW_KEYS)
    assert rows[0]["kappa"] is None
    json.loads((written.path / "run.json").read_text(encoding="utf-8"))


def test_summary_csv_and_md_hold_the_same_rows(written):
    with (written.path / "summary.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(ROW_KEYS)
    for cells, row in zip(rows, written.rows, strict=True):
        for key in ROW_KEYS:
            value = row[key]
            if value is None:
                assert cells[key] == ""
            elif isinstance(value, str):
                assert cells[key] == value
            else:
                assert float(cells[key]) == value
    md = (written.path / "summary.md").read_text(encoding="utf-8")
    assert "| set | space a | space b | n in both |" in md
    assert "| copies | A | B=warp |" in md and "n/a" in md


def test_set_tables(written, spaces):
    _, aligned = spaces
    wide = aligned.sets[1]
    with (written.path / "sets" / "wide.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "name",
        "rarity[A]",
        "percentile[A]",
        "rarity[B=warp]",
        "percentile[B=warp]",
    ]
    assert rows[0]["name"] == "'=wide.png"  # neutralised for spreadsheets
    assert [row["name"] for row in rows[1:]] == wide.names[1:]
    for i, row in enumerate(rows):
        for s, space in enumerate(["A", "B=warp"]):
            rarity, percentile = row[f"rarity[{space}]"], row[f"percentile[{space}]"]
            if wide.in_manifold[i, s]:
                assert float(rarity) == wide.rarity[i, s]
                assert float(percentile) == wide.percentile[i, s]
            else:
                assert rarity == percentile == ""
    assert not wide.in_manifold.all()


def test_format_table(written):
    text = format_table(written.rows)
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["set", "spaces", "n", "in", "both"]
    assert lines[1].startswith("copies") and "A vs B=warp" in lines[1] and "n/a" in lines[1]
    assert lines[2].startswith("wide") and "n/a" not in lines[2]
    assert len(lines) == 3


# ---------------------------------------------------------------------- the other readers


def test_results_reader_names_the_spaces_output(written):
    expected = (
        f"{written.path} is the output of `rarity spaces`; give one of the results directories "
        "it compares"
    )
    with pytest.raises(ResultsError) as caught:
        load_results(written.path)
    assert str(caught.value) == expected
    with pytest.raises(ValueError) as caught_run:
        read_run(written.path)
    assert str(caught_run.value) == expected


def test_spaces_reader_names_a_results_directory(spaces):
    named, _ = spaces
    with pytest.raises(ResultsError, match="is a results directory of rarity compare, not an"):
        load_spaces(named[0][1].root)


def test_a_directory_elsewhere_is_followed_only_while_it_holds_the_same_real_set(
    written, spaces, tmp_path
):
    named, _ = spaces
    assert load_spaces(written.path).spaces[1].real_names is not None
    # The directory compared in place was replaced since by one scored against other real data.
    other = named[1][1].root
    import shutil

    shutil.rmtree(other)
    real, fakes = _inputs(seed=5)
    sets = {name: FeatureSet(x, _names(name, len(x))) for name, x in fakes.items()}
    compare(FeatureSet(real, _names("real", len(real))), sets, other, k=3, report=False)
    loaded = load_spaces(written.path)
    assert loaded.spaces[0].real_names is not None
    assert loaded.spaces[1].real_names is None and loaded.spaces[1].results_dir == other


def test_missing_per_space_directory_leaves_no_real_names(written, spaces):
    named, _ = spaces
    shutil.rmtree(named[1][1].root)
    loaded = load_spaces(written.path)
    assert loaded.spaces[0].real_names is not None
    assert loaded.spaces[1].real_names is None and loaded.spaces[1].results_dir is None


# ---------------------------------------------------------------------- untrusted input


def _edit_json(path: Path, change: Callable) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def _edit_npz(path: Path, change: Callable[[dict], None]) -> None:
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    change(arrays)
    write_npz(path, **arrays)


def _object_npz() -> bytes:
    """An .npz whose names array holds Python objects (pickled): never unpickled."""
    return npz_bytes(names=np.array([1, "x"], dtype=object))


TAMPERED: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "run.json not JSON": (
        "run.json",
        lambda p: p.write_text("{not json", encoding="utf-8"),
        "not valid JSON",
    ),
    "run.json NaN": (
        "run.json",
        lambda p: p.write_text('{"k": NaN}', encoding="utf-8"),
        "NaN",
    ),
    "other format": (
        "run.json",
        lambda p: _edit_json(p, lambda d: d.update(format="other")),
        "field 'format'",
    ),
    "unknown mode": (
        "run.json",
        lambda p: _edit_json(p, lambda d: d.update(mode="guess")),
        "field 'mode' must be 'spaces'",
    ),
    "newer format": (
        "run.json",
        lambda p: _edit_json(p, lambda d: d.update(format_version=99)),
        "upgrade rarity-score",
    ),
    "one space": (
        "run.json",
        lambda p: _edit_json(p, lambda d: d.update(spaces=d["spaces"][:1])),
        "field 'spaces' must be a list of at least two objects",
    ),
    "space without name": (
        "run.json",
        lambda p: _edit_json(p, lambda d: d["spaces"][1].pop("name")),
        "field 'spaces[1].name' is missing",
    ),
    "space dim text": (
        "run.json",
        lambda p: _edit_json(p, lambda d: d["spaces"][0].update(dim="four")),
        "field 'spaces[0].dim' must be an integer >= 1 or null",
    ),
    "results path leading out": (
        "run.json",
        lambda p: _edit_json(p, lambda d: d["spaces"][0].update(results="../../elsewhere")),
        "must be a relative path inside the results directory",
    ),
    "k negative": (
        "run.json",
        lambda p: _edit_json(p, lambda d: d.update(k=-1)),
        "field 'k' must be an integer >= 1 or null",
    ),
    "fraction zero": (
        "run.json",
        lambda p: _edit_json(p, lambda d: d.update(fraction=0)),
        "field 'fraction'",
    ),
    "no sets": (
        "run.json",
        lambda p: _edit_json(p, lambda d: d.update(sets=[])),
        "field 'sets' must be a non-empty list of objects",
    ),
    "set count": (
        "run.json",
        lambda p: _edit_json(p, lambda d: d["sets"][0].update(n=5)),
        "array 'names' must be of shape (5,)",
    ),
    "matched by guess": (
        "run.json",
        lambda p: _edit_json(p, lambda d: d["sets"][0].update(matched_by="guess")),
        "field 'sets[0].matched_by' must be 'name' or 'row'",
    ),
    "slug leading out": (
        "run.json",
        lambda p: _edit_json(p, lambda d: d["sets"][0].update(slug="../../run")),
        "run.npz is missing",
    ),
    "rarity of text": (
        "sets/wide.npz",
        lambda p: _edit_npz(p, lambda a: a.update(rarity=a["rarity"].astype(str))),
        "array 'rarity' must be of shape (35, 2) (float64)",
    ),
    "rarity one space": (
        "sets/wide.npz",
        lambda p: _edit_npz(p, lambda a: a.update(rarity=a["rarity"][:, :1])),
        "array 'rarity' must be of shape (35, 2)",
    ),
    "flags flipped": (
        "sets/wide.npz",
        lambda p: _edit_npz(p, lambda a: a.update(in_manifold=~a["in_manifold"])),
        "in_manifold must be exactly where rarity is finite",
    ),
    "percentile above 100": (
        "sets/wide.npz",
        lambda p: _edit_npz(p, lambda a: a.update(percentile=a["percentile"] * 2)),
        "percentile must be from 0 to 100",
    ),
    "nearest out of range": (
        "sets/wide.npz",
        lambda p: _edit_npz(
            p, lambda a: a.update(nearest_real_index=a["nearest_real_index"] + 1000)
        ),
        "nearest_real_index of space 'A' must be -1 or below 80",
    ),
    "spaces renamed": (
        "sets/wide.npz",
        lambda p: _edit_npz(p, lambda a: a.update(spaces=np.array(["A", "C"]))),
        "are not those of run.json",
    ),
    "no names": (
        "sets/wide.npz",
        lambda p: _edit_npz(p, lambda a: a.pop("names")),
        "no 'names' array",
    ),
    "npz garbage": (
        "sets/wide.npz",
        lambda p: p.write_bytes(b"garbage" * 10),
        "cannot read the arrays",
    ),
    "npz object array": (
        "sets/wide.npz",
        lambda p: p.write_bytes(_object_npz()),
        "cannot read the arrays",
    ),
    "npz missing": ("sets/wide.npz", lambda p: p.unlink(), "wide.npz is missing"),
    "names repeated where matched by name": (
        "sets/wide.npz",
        lambda p: _edit_npz(p, lambda a: a["names"].__setitem__(1, a["names"][0])),
        "matched by name, but two of them share a name",
    ),
    "negative rarity": (
        "sets/wide.npz",
        lambda p: _edit_npz(p, lambda a: a.update(rarity=np.where(a["in_manifold"], -1.0, np.nan))),
        "rarity must be >= 0",
    ),
    "rarity of float32": (
        "sets/wide.npz",
        lambda p: _edit_npz(p, lambda a: a.update(rarity=a["rarity"].astype(np.float32))),
        "array 'rarity' must be of shape (35, 2) (float64), not float32",
    ),
    "flags of integers": (
        "sets/wide.npz",
        lambda p: _edit_npz(p, lambda a: a.update(in_manifold=a["in_manifold"].astype(np.int8))),
        "array 'in_manifold' must be of shape (35, 2) (true/false values)",
    ),
    "nearest of uint64": (
        "sets/wide.npz",
        lambda p: _edit_npz(
            p, lambda a: a.update(nearest_real_index=a["nearest_real_index"].astype(np.uint64))
        ),
        "array 'nearest_real_index' must be of shape (35, 2) (int64)",
    ),
    "percentiles not the ranks'": (
        "sets/wide.npz",
        lambda p: _edit_npz(p, lambda a: a.update(percentile=100.0 - a["percentile"])),
        "percentile must be each sample's place by rarity within its space",
    ),
    "same images not a flag": (
        "run.json",
        lambda p: _edit_json(p, lambda d: d["sets"][0].update(same_images="yes")),
        "field 'sets[0].same_images' must be true, false or null",
    ),
    "summary missing": ("summary.json", lambda p: p.unlink(), "summary.json is missing"),
    "summary spearman 2": (
        "summary.json",
        lambda p: _edit_json(p, lambda rows: rows[1].update(spearman=2.0)),
        "field '[1].spearman' must be a number from -1 to 1 or null",
    ),
    "summary jaccard text": (
        "summary.json",
        lambda p: _edit_json(p, lambda rows: rows[0].update(jaccard_rarest="high")),
        "field '[0].jaccard_rarest' must be a number from 0 to 1 or null",
    ),
    "summary row missing": (
        "summary.json",
        lambda p: _edit_json(p, lambda rows: rows.pop()),
        "the rows must be one per set and pair of spaces",
    ),
    "summary counts": (
        "summary.json",
        lambda p: _edit_json(p, lambda rows: rows[1].update(out_out=rows[1]["out_out"] + 1)),
        "the 2 x 2 counts must add up to n",
    ),
    "summary n": (
        "summary.json",
        lambda p: _edit_json(
            p, lambda rows: rows[1].update(n=rows[1]["n"] + 1, out_out=rows[1]["out_out"] + 1)
        ),
        "has n = 36 but its arrays hold 35 samples",
    ),
    "summary not a list": (
        "summary.json",
        lambda p: p.write_text('{"rows": 1}', encoding="utf-8"),
        "must hold a list of rows",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_damaged_output_is_one_line_naming_the_file(written, case):
    relative, damage, expected = TAMPERED[case]
    damage(written.path / relative)
    with pytest.raises(ResultsError) as caught:
        load_spaces(written.path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(written.path) in message, message
    assert expected in message, message


def test_not_a_folder_and_no_run_json(tmp_path):
    with pytest.raises(ResultsError, match="is not a folder"):
        load_spaces(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="not an output of rarity spaces"):
        load_spaces(tmp_path / "empty")


def test_symbolic_link_leading_out_is_refused(written, tmp_path):
    target = written.path / "sets" / "wide.npz"
    outside = tmp_path / "elsewhere.npz"
    shutil.move(target, outside)
    target.symlink_to(outside)
    with pytest.raises(ResultsError, match="leads out of the results directory"):
        load_spaces(written.path)


# ---------------------------------------------------------------------- publishing


def test_an_earlier_output_is_replaced_and_a_foreign_file_refused(written, spaces):
    named, aligned = spaces
    again = write_spaces(written.path, aligned, _records(named), k=3)
    assert load_spaces(again.path).summary == written.rows
    (written.path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ValueError, match=r"notes\.txt"):
        write_spaces(written.path, aligned, _records(named), k=3)
    assert (written.path / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_output_inside_a_compared_directory_is_refused(spaces):
    named, aligned = spaces
    inside = named[0][1].root / "spaces_out"
    with pytest.raises(ValueError, match="space 'A'"):
        write_spaces(inside, aligned, _records(named), k=3)
    assert not inside.exists()


def test_publish_with_per_space_directories_inside(tmp_path):
    """As ``rarity spaces`` does from images: the per-space results directories are written
    into the staging folder, read back, compared; their files are in the output's list."""

    def fill(folder: Path) -> SpacesWritten:
        (folder / "spaces").mkdir()
        named = [
            ("A", _run(folder / "spaces" / "A", lambda x: x)),
            ("B", _run(folder / "spaces" / "B", _warp)),
        ]
        records = [
            space_record(name, results, slug=name, results_path=f"spaces/{name}")
            for name, results in named
        ]
        return write_spaces_files(folder, align(named), records, k=3)

    written = publish_spaces(tmp_path / "out", fill)
    assert written.path == tmp_path / "out"
    assert "spaces/A/run.json" in written.run["files"]
    assert "spaces/B/sets/wide.npz" in written.run["files"]
    loaded = load_spaces(written.path)
    assert [space.results for space in loaded.spaces] == ["spaces/A", "spaces/B"]
    assert loaded.spaces[1].results_dir == written.path / "spaces" / "B"
    assert loaded.spaces[1].real_names == load_results(written.path / "spaces" / "B").real_names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_a_failing_run_leaves_no_folder(tmp_path, spaces):
    named, aligned = spaces

    def fill(folder: Path) -> SpacesWritten:
        write_spaces_files(folder, aligned, _records(named), k=3)
        raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError):
        publish_spaces(tmp_path / "out", fill)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_records_must_match_the_spaces(tmp_path, spaces):
    named, aligned = spaces
    with pytest.raises(ValueError, match="1 space records for 2 spaces"):
        write_spaces(tmp_path / "out", aligned, _records(named)[:1], k=3)
