"""A results directory is untrusted input (issue "Hardening"): `rarity report` and the readers of
`compare` validate what they read, never follow a recorded path out of the directory, open no
image of a source that is not the one the run used, and keep user text out of mathtext, legends'
hidden labels and the page's scripts."""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import reportgen

pytest.importorskip("matplotlib")
pytest.importorskip("PIL")

from rarity_score import cli
from rarity_score.io.images import open_images
from rarity_score.report import build_report, load_results
from rarity_score.report.plots import histogram_png
from rarity_score.results_dir import is_results_dir, read_summary


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small compare-mode results directory (its images stay where they are)."""
    root = tmp_path_factory.mktemp("hardening-report")
    results = reportgen.make_compare(root, {"one": (12, 1.0)}, n_real=20, nasty=False)
    _record_fingerprints(results)
    return results


@pytest.fixture()
def results(base: Path, tmp_path: Path) -> Path:
    """A private copy of the results directory, free to damage."""
    return Path(shutil.copytree(base, tmp_path / "results"))


def _record_fingerprints(results: Path) -> None:
    """Record what a run records of its image inputs: the fingerprint of each source."""

    def add(entry: dict[str, Any]) -> None:
        if entry.get("kind") in ("folder", "archive", "list", "image"):
            entry["images_fingerprint"] = open_images(entry["source"]).fingerprint()

    run = _run(results)
    for entry in [run["real"], *run["sets"]]:
        add(entry)
    _write_run(results, run)


def _run(results: Path) -> dict[str, Any]:
    return json.loads((results / "run.json").read_text(encoding="utf-8"))


def _write_run(results: Path, run: Any) -> None:
    (results / "run.json").write_text(json.dumps(run), encoding="utf-8")


def _edit_run(results: Path, edit: Callable[[dict[str, Any]], object]) -> None:
    run = _run(results)
    edit(run)
    _write_run(results, run)


def _edit_arrays(results: Path, **changes: Any) -> None:
    path = results / "sets" / "one.npz"
    arrays = dict(np.load(path))
    arrays.update(changes)
    np.savez(path, **arrays)


def _report(capsys: pytest.CaptureFixture[str], results: Path) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(["report", "-q", str(results)])
    return code, capsys.readouterr().err


def _one_line_error(capsys: pytest.CaptureFixture[str], results: Path, *expected: str) -> str:
    code, err = _report(capsys, results)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    for text in expected:
        assert text in err, (text, err)
    return err


# ---------------------------------------------------------------------- run.json


def _set_entry(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda run: run["sets"][0].__setitem__(key, value)


def _top(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda run: run.__setitem__(key, value)


TAMPERED = {
    "set not an object": (_top("sets", ["x"]), "'sets[0]'"),
    "set name a list": (_set_entry("name", ["a"]), "'sets[0].name' must be a non-empty string"),
    "table missing": (lambda run: run["sets"][0].pop("table"), "'sets[0].table' is missing"),
    "real a list": (_top("real", [1]), "'real' must be an object"),
    "k a string": (_top("k", "3"), "'k' must be an integer"),
    "k zero": (_top("k", 0), "'k' must be an integer >= 1"),
    "extractor a list": (_top("extractor", [1]), "'extractor' must be an object"),
    "unknown mode": (_top("mode", "bogus"), "'mode' must be"),
    "newer format": (_top("format_version", 99), "upgrade rarity-score"),
    "has_images a string": (_set_entry("has_images", "yes"), "'sets[0].has_images'"),
    "n_skipped negative": (_set_entry("n_skipped", -1), "'sets[0].n_skipped'"),
    "skipped not objects": (_set_entry("skipped", [3]), "'sets[0].skipped[0]'"),
    "command a number": (_top("command", 5), "'command' must be a list of strings"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_run_json_is_one_line_naming_the_field(
    capsys: pytest.CaptureFixture[str], results: Path, case: str
) -> None:
    edit, expected = TAMPERED[case]
    _edit_run(results, edit)
    _one_line_error(capsys, results, str(results / "run.json"), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("[1, 2]", "must hold an object"),
        ('{"k": NaN}', "NaN is not a JSON value"),
        ("\xff\xfe", "cannot read"),
    ],
    ids=["deep", "a list", "nan", "not utf-8"],
)
def test_unparsable_run_json_is_one_line(
    capsys: pytest.CaptureFixture[str], results: Path, text: str, expected: str
) -> None:
    (results / "run.json").write_bytes(text.encode("latin-1"))
    _one_line_error(capsys, results, "run.json", expected)


def test_nan_inside_a_valid_record_is_refused(
    capsys: pytest.CaptureFixture[str], results: Path
) -> None:
    run = _run(results)
    run["k"] = float("nan")
    (results / "run.json").write_text(json.dumps(run))  # json writes NaN unless told not to
    _one_line_error(capsys, results, "run.json", "NaN")


def test_a_deep_run_json_is_not_a_results_directory(results: Path) -> None:
    (results / "run.json").write_text("[" * 100_000 + "]" * 100_000)
    assert is_results_dir(results) is False  # not a RecursionError


def test_validation_keeps_unknown_keys_and_fills_optional_ones(results: Path) -> None:
    from rarity_score.io.run_record import read_run_record

    _edit_run(results, lambda run: run.update(files={"run.json": {}}, dim=None))
    run = read_run_record(results)
    assert run["files"] == {"run.json": {}}  # a newer writer's keys are kept
    assert run["dim"] == 2  # from the extractor
    assert run["sets"][0]["skipped"] == []
    assert run["sets"][0]["images_fingerprint"]


# ---------------------------------------------------------------------- paths


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_recorded_paths_stay_inside_the_results_directory(
    capsys: pytest.CaptureFixture[str], results: Path, tmp_path: Path, how: str
) -> None:
    outside = tmp_path / "outside.npz"
    shutil.copy(results / "sets" / "one.npz", outside)  # a valid file, but not the run's
    (results / "sets" / "one.csv").unlink()
    if how == "absolute":
        _edit_run(results, _set_entry("arrays", str(outside)))
        expected = "'sets[0].arrays'"
    elif how == "dotdot":
        _edit_run(results, _set_entry("arrays", "../outside.npz"))
        expected = "'sets[0].arrays'"
    else:
        if not hasattr(os, "symlink"):
            pytest.skip("no symbolic links here")
        (results / "sets" / "one.npz").unlink()
        (results / "sets" / "one.npz").symlink_to(outside)
        expected = "leads out of the results directory"
    _one_line_error(capsys, results, expected)


# ---------------------------------------------------------------------- arrays and summary


def _csv_rarity(results: Path) -> None:
    (results / "sets" / "one.npz").unlink()
    path = results / "sets" / "one.csv"
    lines = path.read_text().splitlines()
    header = lines[1].split(",")
    column = lines[0].split(",").index("rarity")
    header[column] = "abc"
    lines[1] = ",".join(header)
    path.write_text("\n".join(lines) + "\n")


def _summary_json(key: str, value: Any) -> Callable[[Path], None]:
    def damage(results: Path) -> None:
        rows = json.loads((results / "summary.json").read_text())["sets"]
        rows[0][key] = value
        (results / "summary.json").write_text(json.dumps(rows))

    return damage


def _summary_value(results: Path) -> None:
    rows = json.loads((results / "summary.json").read_text())["sets"]
    rows[0]["rarity_mean"] = "abc"
    (results / "summary.json").write_text(json.dumps(rows))


def _csv_cell(path: Path, column: str, value: str) -> None:
    """Set one cell of the first data row of a CSV file."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rows[0][column] = value
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _summary_csv(column: str, value: str) -> Callable[[Path], None]:
    """summary.json missing, so that summary.csv is read; one of its cells damaged."""

    def damage(results: Path) -> None:
        (results / "summary.json").unlink()
        _csv_cell(results / "summary.csv", column, value)

    return damage


def _set_csv(column: str, value: str) -> Callable[[Path], None]:
    """The set's .npz missing, so that its CSV is read; one of its cells damaged."""

    def damage(results: Path) -> None:
        (results / "sets" / "one.npz").unlink()
        _csv_cell(results / "sets" / "one.csv", column, value)

    return damage


DAMAGED: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "names shorter": (
        lambda r: _edit_arrays(r, names=np.array(["a.png"] * 11)),
        ("one.npz", "different lengths"),
    ),
    "rarity as text": (
        lambda r: _edit_arrays(r, rarity=np.array(["x"] * 12)),
        ("one.npz", "'rarity'"),
    ),
    "rarity 2-d": (
        lambda r: _edit_arrays(r, rarity=np.zeros((3, 4))),
        ("one.npz", "one-dimensional"),
    ),
    "names as objects": (
        lambda r: _edit_arrays(r, names=np.array(["a"] * 12, dtype=object)),
        ("one.npz",),
    ),
    "index out of range": (
        lambda r: _edit_arrays(r, nearest_real_index=np.full(12, 10**6)),
        ("one.npz", "nearest_real_index"),
    ),
    "not a zip": (
        lambda r: (r / "sets" / "one.npz").write_bytes(b"PK\x03\x04 damaged"),
        ("one.npz", "cannot read"),
    ),
    "csv cell not a number": (_csv_rarity, ("one.csv", "line 2", "'rarity'")),
    "summary value text": (_summary_value, ("summary.json", "'[0].rarity_mean'")),
    "n differs": (lambda r: _edit_run(r, _set_entry("n", 13)), ("one.npz", "13")),
    # summary.csv read where summary.json is missing: the same checks, naming the line.
    "summary csv count inf": (_summary_csv("n", "inf"), ("summary.csv", "line 2", "'n'")),
    "summary csv count 1e999": (_summary_csv("n", "1e999"), ("summary.csv", "line 2", "'n'")),
    "summary csv count nan": (
        _summary_csv("n_in_manifold", "nan"),
        ("summary.csv", "line 2", "'n_in_manifold'", "finite"),
    ),
    "summary csv count fraction": (
        _summary_csv("n", "2.5"),
        ("summary.csv", "line 2", "'n'", "whole number", "2.5"),
    ),
    "summary csv count negative": (
        _summary_csv("n_out_of_manifold", "-1"),
        ("summary.csv", "line 2", "'n_out_of_manifold'", "whole number", "-1"),
    ),
    "summary csv value inf": (
        _summary_csv("rarity_mean", "-inf"),
        ("summary.csv", "line 2", "'rarity_mean'", "finite"),
    ),
    "summary csv value text": (
        _summary_csv("rarity_median", "abc"),
        ("summary.csv", "line 2", "'rarity_median'", "'abc'"),
    ),
    "summary csv other set": (_summary_csv("name", "two"), ("summary.csv", "'two'", "run.json")),
    "summary json count fraction": (
        _summary_json("n", 2.5),
        ("summary.json", "'[0].n'", "whole number", "2.5"),
    ),
    # A set's CSV read where its .npz is missing.
    "csv index beyond 64 bits": (
        _set_csv("sphere_index", "99999999999999999999999"),
        ("one.csv", "line 2", "'sphere_index'", "64-bit integer"),
    ),
    "csv index not a number": (
        _set_csv("nearest_real_index", "x"),
        ("one.csv", "line 2", "'nearest_real_index'", "integer"),
    ),
    "csv bool not true/false": (
        _set_csv("in_manifold", "yes"),
        ("one.csv", "line 2", "'in_manifold'", "true or false", "'yes'"),
    ),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_results_files_are_one_line_naming_the_file(
    capsys: pytest.CaptureFixture[str], results: Path, case: str
) -> None:
    damage, expected = DAMAGED[case]
    damage(results)
    _one_line_error(capsys, results, *expected)


def test_read_summary_validates_the_rows(results: Path) -> None:
    _summary_value(results)
    with pytest.raises(ValueError, match=r"summary\.json: field '\[0\]\.rarity_mean'"):
        read_summary(results)


def test_an_absurd_real_count_costs_no_memory(
    capsys: pytest.CaptureFixture[str], results: Path
) -> None:
    # Without reference_loo.npz the real names come from the CSV files; run.json's real.n must
    # not size a list.
    (results / "reference_loo.npz").unlink()
    _edit_run(results, lambda run: run["real"].update(n=10**15))
    code, err = _report(capsys, results)
    assert code == 0, err


def test_csv_names_lose_the_spreadsheet_apostrophe(results: Path) -> None:
    (results / "sets" / "one.npz").unlink()
    path = results / "sets" / "one.csv"
    text = path.read_text().replace("s0_000.png", "'=s0_000.png", 1)
    path.write_text(text)
    assert load_results(results).sets[0].names[0] == "=s0_000.png"


# ---------------------------------------------------------------------- thumbnails


def _thumbs(results: Path, group: str) -> list[str]:
    folder = results / "report" / "thumbs" / group
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _victim(tmp_path: Path, names: list[str]) -> Path:
    """A folder of someone's private images that happen to carry the run's names."""
    folder = tmp_path / "private"
    folder.mkdir()
    for i, name in enumerate(names):
        reportgen.picture(np.array([3.0, -1.0 - i])).save(folder / name)
    return folder


def test_no_thumbnail_of_a_source_the_run_did_not_use(
    results: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    names = load_results(results).sets[0].names
    victim = _victim(tmp_path, names)
    _edit_run(results, _set_entry("source", str(victim)))  # the recorded fingerprint stays
    with caplog.at_level(logging.WARNING, logger="rarity_score"):
        page = (build_report(results, gallery_size=12)).read_text(encoding="utf-8")
    assert _thumbs(results, "set-one") == []
    assert "not the images the run used" in page
    assert _thumbs(results, "real")  # the real set's source is the run's: shown
    warnings = [r.getMessage() for r in caplog.records if str(victim) in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0]


def test_nothing_a_recorded_source_holds_reaches_the_report(
    results: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "secret.txt"  # read as a list of image paths when named one
    secret.write_text("TOPSECRET_LINE_1\nTOPSECRET_LINE_2\n")
    _edit_run(results, lambda run: run["sets"][0].update(source=str(secret), kind="list"))
    with caplog.at_level(logging.DEBUG, logger="rarity_score"):
        build_report(results, gallery_size=12)
    assert _thumbs(results, "set-one") == []
    shown = [p.read_text(encoding="utf-8") for p in (results / "report").rglob("*.html")]
    shown += [p.read_text(encoding="utf-8") for p in (results / "report").rglob("*.js")]
    shown += [record.getMessage() for record in caplog.records]
    assert not [text for text in shown if "TOPSECRET" in text]


def test_no_thumbnail_of_a_redirected_real_set(results: Path, tmp_path: Path) -> None:
    victim = _victim(tmp_path, [f"real_{i:03d}.png" for i in range(20)])
    _edit_run(results, lambda run: run["real"].update(source=str(victim)))
    build_report(results, gallery_size=12)
    assert _thumbs(results, "real") == []
    assert len(_thumbs(results, "set-one")) == 12


def test_no_thumbnail_without_a_recorded_fingerprint(results: Path) -> None:
    _edit_run(results, lambda run: run["sets"][0].pop("images_fingerprint"))
    page = build_report(results, gallery_size=12).read_text(encoding="utf-8")
    assert _thumbs(results, "set-one") == []
    assert "recorded no fingerprint" in page


def test_names_are_looked_up_in_the_verified_source(results: Path, base: Path) -> None:
    names = load_results(results).sets[0].names
    real_image = str(base.parent / "images" / "real" / "real_000.png")
    names[:3] = ["../real/real_000.png", real_image, "./" + names[2]]
    _edit_arrays(results, names=np.array(names))
    page = build_report(results, gallery_size=12).read_text(encoding="utf-8")
    assert page.count('title="no longer in its source"') == 3
    assert len(_thumbs(results, "set-one")) == 9


@pytest.mark.skipif(os.name != "posix", reason="needs a file system that takes any bytes")
def test_a_non_utf8_name_finds_its_image(results: Path, base: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(base.parent / "images" / "one", tmp_path / "one"))
    raw = os.fsdecode(b"caf\xe9.png")
    try:
        os.rename(folder / "s0_000.png", folder / raw)
    except (OSError, UnicodeError):
        pytest.skip("the file system refuses non-UTF-8 names")
    names = load_results(results).sets[0].names
    names[0] = "caf\\xe9.png"  # as the writer saves it (io.names.printable)
    _edit_arrays(results, names=np.array(names))
    fingerprint = open_images(str(folder)).fingerprint()
    _edit_run(
        results,
        lambda run: run["sets"][0].update(source=str(folder), images_fingerprint=fingerprint),
    )
    build_report(results, gallery_size=12)
    assert "0.jpg" in _thumbs(results, "set-one")
    assert len(_thumbs(results, "set-one")) == 12


# ---------------------------------------------------------------------- plots and page


def _legend_of(results: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from matplotlib.figure import Figure

    drawn: list[Any] = []
    save = Figure.savefig

    def keep(self: Any, *args: Any, **kwargs: Any) -> Any:
        drawn.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    assert histogram_png(load_results(results)).startswith(b"\x89PNG")
    return drawn[0].axes[0]


def test_a_dollar_name_is_text_not_mathtext(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = r"cost $\frac{1$ and $x^2$"
    results = reportgen.make_compare(tmp_path, {name: (12, 1.0)}, n_real=20, has_images=False)
    axes = _legend_of(results, monkeypatch)
    texts = axes.get_legend().get_texts()
    assert texts[0].get_text().startswith(name)
    assert all(not text.get_parse_math() for text in texts)
    assert not axes.title.get_parse_math()
    assert build_report(results).is_file()


def test_an_underscore_name_stays_in_the_legend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sets = {"_base": (12, 1.0), "other": (12, 1.2)}
    results = reportgen.make_compare(tmp_path, sets, n_real=20, has_images=False)
    axes = _legend_of(results, monkeypatch)
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert labels[0].startswith("_base (n = ") and labels[1].startswith("other (n = ")


def test_names_in_the_page_data_stay_inert(results: Path) -> None:
    nasty = ["</script><script>alert(1)</script>.png", "q\"uo'te.png", "line\u2028sep.png"]
    names = load_results(results).sets[0].names
    names[:3] = nasty
    _edit_arrays(results, names=np.array(names))
    _edit_run(results, lambda run: run["sets"][0].update(name="</script>\u2028"))
    rows = json.loads((results / "summary.json").read_text())["sets"]
    rows[0]["name"] = "</script>\u2028"
    (results / "summary.json").write_text(json.dumps(rows))
    index = build_report(results)
    data = (index.parent / "data" / "set-one.js").read_text(encoding="utf-8")
    assert "</" not in data and "\u2028" not in data
    column = re.search(r'^"name": (\[.*\]),?$', data, re.M)
    shown = json.loads(column.group(1))[:3] if column else None
    assert shown == [*nasty[:2], "line\\u2028sep.png"]  # a line separator is shown escaped
    page = index.read_text(encoding="utf-8")
    assert page.count("</script") == 1  # only the page's own <script src="report.js">
    assert "\u2028" not in page
