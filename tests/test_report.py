"""The HTML report (part D of issue #4) built from results directories made by ``reportgen``."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import reportgen

pytest.importorskip("matplotlib")
pytest.importorskip("PIL")

from rarity_score.io import publish
from rarity_score.report import ReportError, build_report, load_results, plot_histograms
from rarity_score.report import build as build_module

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _page(index: Path) -> str:
    return index.read_text(encoding="utf-8")


def _galleries(page: str, slug: str) -> dict[str, list[int]]:
    """Rows shown in each gallery of one set, read back from the page."""
    section = page.split(f'id="set-{slug}"', 1)[1].split("</section>", 1)[0]
    found = {}
    for kind, body in re.findall(r'data-gallery="(\w+)">(.*?)\n  </div>', section, re.S):
        found[kind] = [int(row) for row in re.findall(r'data-row="(\d+)"', body)]
    return found


@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reportgen.make_compare(tmp_path_factory.mktemp("compare"))


@pytest.fixture(scope="module")
def compare_report(compare_dir: Path) -> Path:
    return build_report(compare_dir)


def test_compare_report_layout(compare_dir: Path, compare_report: Path) -> None:
    report = compare_dir / "report"
    assert compare_report == report / "index.html"
    for name in ("index.html", "report.css", "report.js", "histogram.png"):
        assert (report / name).is_file(), name
    assert (report / "data" / "real-names.js").is_file()
    for slug in ("psi_0.7", "psi_1.0"):
        assert (report / "data" / f"set-{slug}.js").is_file()
    assert (compare_dir / "histogram.png").read_bytes().startswith(PNG_MAGIC)
    assert (report / "histogram.png").read_bytes() == (compare_dir / "histogram.png").read_bytes()
    # Built beside the old one and swapped in: nothing temporary is left behind.
    assert sorted(p.name for p in compare_dir.iterdir() if p.name.startswith(".")) == []


def test_compare_report_settings_and_summary(compare_dir: Path, compare_report: Path) -> None:
    page = _page(compare_report)
    settings = page.split('id="settings"', 1)[1].split("</section>", 1)[0]
    for text in (
        "compare",
        "generated sets scored against the real manifold",
        "vgg16-fc2",
        "resize 224x224 bicubic",
        "torchvision VGG16_Weights.IMAGENET1K_V1",
        "60 samples",
        "0.1.0",
        "rarity compare --real",
        html.escape(str(compare_dir.parent / "images" / "real")),
    ):
        assert text in settings, text
    assert re.search(r"<th[^>]*>k</th><td>3</td>", settings)
    summary = page.split('id="summary-table"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><th scope=\"row\">(.*?)</th>", summary)
    assert rows == ["psi=0.7", "psi=1.0"]
    saved = json.loads((compare_dir / "summary.json").read_text())["sets"]
    assert f"{saved[1]['rarity_mean']:.4g}" in summary
    assert f"{100 * saved[1]['fraction_in_manifold']:.1f} %" in summary


def test_compare_galleries_choose_rarest_common_and_out(
    compare_dir: Path, compare_report: Path
) -> None:
    page = _page(compare_report)
    results = load_results(compare_dir)
    for item in results.sets:
        shown = _galleries(page, item.slug)
        inside = np.flatnonzero(item.in_manifold)
        by_rarity = inside[np.argsort(item.rarity[inside], kind="stable")]
        assert shown["rarest"] == by_rarity[::-1][:12].tolist()
        assert shown["common"] == by_rarity[:12].tolist()
        outside = np.flatnonzero(~item.in_manifold)
        assert set(shown["out"]) <= set(outside.tolist())
        assert len(shown["out"]) == min(12, outside.size)
    # The psi=1.0 set has out-of-manifold samples, shown with no sphere.
    assert _galleries(page, "psi_1.0")["out"]
    assert "in no sphere" in page


def test_thumbnails_only_for_shown_images(compare_dir: Path, compare_report: Path) -> None:
    page = _page(compare_report)
    sources = set(re.findall(r'<img src="(thumbs/[^"]+)"', page))
    made = {
        p.relative_to(compare_dir / "report").as_posix()
        for p in (compare_dir / "report" / "thumbs").rglob("*")
        if p.is_file()
    }
    assert made == sources  # every thumbnail made is shown, and every one shown exists
    results = load_results(compare_dir)
    n_generated = len([p for p in made if p.startswith("thumbs/set-")])
    shown_rows = sum(len(rows) for s in results.sets for rows in _galleries(page, s.slug).values())
    assert n_generated == shown_rows < sum(s.n for s in results.sets)
    # Each card: the generated image, its nearest real image, the real image of its sphere.
    cards = re.findall(r'<figure class="card (inside|outside)".*?</figure>', page, re.S)
    assert len(cards) == shown_rows
    card = page.split('<figure class="card inside"', 1)[1].split("</figure>", 1)[0]
    assert card.count("<img ") == 3 and "thumbs/real/" in card
    for role in ("generated", "nearest real image", "sphere that gave the score (real)"):
        assert role in card
    for value in ("rarity", "nearest distance", "realism"):
        assert f"<dt>{value}</dt>" in card


def test_neighbour_thumbnails_are_the_saved_neighbours(
    compare_dir: Path, compare_report: Path
) -> None:
    page = _page(compare_report)
    item = load_results(compare_dir).sets[0]
    row = _galleries(page, item.slug)["rarest"][0]
    card = page.split(f'data-row="{row}">', 1)[1].split("</figure>", 1)[0]
    images = re.findall(r'<img src="([^"]+)"', card)
    nearest, sphere = int(item.nearest_real_index[row]), int(item.sphere_index[row])
    assert images == [
        f"thumbs/set-{item.slug}/{row}.jpg",
        f"thumbs/real/{nearest}.jpg",
        f"thumbs/real/{sphere}.jpg",
    ]
    assert f"real_{nearest:03d}.png" in card and f"real_{sphere:03d}.png" in card


def test_a_declared_index_column_gets_its_thumbnail(tmp_path: Path) -> None:
    # The card's neighbours come from the declared index columns: one a metric adds is shown
    # after the nearest and sphere images, under its heading, with no edit of the report.
    from rarity_score import metrics
    from rarity_score.metrics.base import Column, Metric
    from rarity_score.metrics.rarity import SMALLEST_SPHERE

    farthest = Column(
        "farthest_real_index", "farthest real", "index", "a test's index", names_column="far_name"
    )
    metric = Metric(
        "farthest", "a test's metric", (SMALLEST_SPHERE,), lambda f, c: ({}, None), (farthest,)
    )
    results = reportgen.make_compare(tmp_path, {"one": (12, 1.0)}, n_real=20, nasty=False)
    arrays = dict(np.load(results / "sets" / "one.npz"))
    arrays["farthest_real_index"] = (np.arange(12) * 7) % 20
    np.savez(results / "sets" / "one.npz", **arrays)
    with metrics.using(metric):
        page = _page(build_report(results))
    row = _galleries(page, "one")["rarest"][0]
    card = page.split(f'data-row="{row}">', 1)[1].split("</figure>", 1)[0]
    item = load_results(results).sets[0]
    nearest, sphere = int(item.nearest_real_index[row]), int(item.sphere_index[row])
    assert re.findall(r'<img src="([^"]+)"', card) == [
        f"thumbs/set-one/{row}.jpg",
        f"thumbs/real/{nearest}.jpg",
        f"thumbs/real/{sphere}.jpg",
        f"thumbs/real/{row * 7 % 20}.jpg",
    ]
    assert "farthest real" in card
    thumbs = results / "report" / "thumbs" / "real" / f"{row * 7 % 20}.jpg"
    assert thumbs.read_bytes()[:2] == b"\xff\xd8"


def test_page_uses_no_network(compare_report: Path) -> None:
    report = compare_report.parent
    for name in ("index.html", "report.js", "report.css"):
        text = (report / name).read_text(encoding="utf-8")
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text), name
        assert "http://" not in text and "https://" not in text, name
        code = [line for line in text.splitlines() if not line.strip().startswith("//")]
        assert not any("fetch(" in line for line in code), name  # blocked on file://


def test_every_name_is_escaped(tmp_path: Path) -> None:
    results = reportgen.make_compare(tmp_path)
    # Large galleries, so the set with the nasty names shows all of them.
    index = build_report(results, gallery_size=40)
    page = _page(index)
    for name in reportgen.NASTY_NAMES:
        assert name not in page  # never raw, anywhere (gallery, attributes, table)
        assert html.escape(name) in page
    assert page.count("<script") == 1  # only report.js
    assert "<img src=x" not in page and "<b>" not in page
    data = (index.parent / "data" / "set-psi_0.7.js").read_text(encoding="utf-8")
    assert "<" not in data  # "<" is \u003c inside the JSON strings
    names = json.loads(re.search(r'"name": (\[.*?\]),\n', data).group(1))
    assert names[: len(reportgen.NASTY_NAMES)] == list(reportgen.NASTY_NAMES)


def test_escapes_set_names_and_command(tmp_path: Path) -> None:
    results = reportgen.make_compare(
        tmp_path, {"<i>model</i> & co": (20, 1.0)}, n_real=30, nasty=False
    )
    run = json.loads((results / "run.json").read_text())
    run["command"] = ["rarity", "compare", "--fake", "x=</script><script>alert(1)</script>"]
    (results / "run.json").write_text(json.dumps(run))
    page = _page(build_report(results))
    assert "<i>model</i>" not in page and "&lt;i&gt;model&lt;/i&gt; &amp; co" in page
    assert "</script><script>" not in page and page.count("<script") == 1


def test_datasets_mode(tmp_path: Path) -> None:
    results = reportgen.make_datasets(tmp_path)
    index = build_report(results)
    page = _page(index)
    settings = page.split('id="settings"', 1)[1].split("</section>", 1)[0]
    assert "datasets" in settings and "leave-one-out" in settings
    assert "each dataset is its own reference" in settings
    assert "leave-one-out" in page.split("</header>", 1)[0]
    thumbs = index.parent / "thumbs"
    assert sorted(p.name for p in thumbs.iterdir()) == ["set-celeba-hq", "set-ffhq"]
    assert not (index.parent / "data" / "real-names.js").exists()
    data = (index.parent / "data" / "set-ffhq.js").read_text()
    assert '"reference": "self"' in data
    # Neighbours come from the same dataset: their thumbnails live in that set's folder.
    item = load_results(results).sets[0]
    row = _galleries(page, "ffhq")["rarest"][0]
    card = page.split(f'data-row="{row}">', 1)[1].split("</figure>", 1)[0]
    nearest, sphere = int(item.nearest_real_index[row]), int(item.sphere_index[row])
    assert re.findall(r'<img src="([^"]+)"', card) == [
        f"thumbs/set-ffhq/{row}.jpg",
        f"thumbs/set-ffhq/{nearest}.jpg",
        f"thumbs/set-ffhq/{sphere}.jpg",
    ]
    assert "nearest other image" in card and "same dataset" in card
    summary = page.split('id="summary-table"', 1)[1].split("</table>", 1)[0]
    assert 'title="not applicable">—' in summary  # precision & co. in datasets mode


def test_datasets_method_always_says_leave_one_out(tmp_path: Path) -> None:
    results = reportgen.make_datasets(tmp_path)
    run = json.loads((results / "run.json").read_text())
    run["method"] = "each dataset scored against its own manifold"
    (results / "run.json").write_text(json.dumps(run))
    settings = _page(build_report(results)).split('id="settings"', 1)[1]
    assert "each dataset scored against its own manifold, leave-one-out" in settings


def test_feature_only_run_has_no_galleries(tmp_path: Path) -> None:
    results = reportgen.make_compare(tmp_path, has_images=False, real_has_images=False)
    index = build_report(results)
    page = _page(index)
    assert page.count("Feature-only set") == 2
    assert "data-gallery=" not in page and '<figure class="card' not in page
    assert not (index.parent / "thumbs").exists()
    assert "No galleries" in page
    # The table and the histogram are still there.
    assert (index.parent / "data" / "set-psi_1.0.js").stat().st_size > 1000
    assert (results / "histogram.png").read_bytes().startswith(PNG_MAGIC)


def test_generated_images_without_real_images(tmp_path: Path) -> None:
    results = reportgen.make_compare(tmp_path, real_has_images=False)
    page = _page(build_report(results))
    assert "reference given as features, no image" in page
    assert "thumbs/set-psi_0.7/" in page and "thumbs/real/" not in page


def test_moved_images_give_placeholders(tmp_path: Path) -> None:
    results = reportgen.make_compare(tmp_path)
    shutil.rmtree(tmp_path / "images" / "psi_1.0")
    (tmp_path / "images" / "real" / "real_000.png").unlink()
    page = _page(build_report(results))
    assert "images not found" in page  # the psi=1.0 folder is gone
    assert "thumbs/set-psi_0.7/" in page  # the other set is unaffected


def test_names_cannot_lead_out_of_their_folder(tmp_path: Path) -> None:
    results = reportgen.make_compare(tmp_path, {"one": (20, 1.0)}, n_real=30, nasty=False)
    reportgen.picture(np.zeros(2)).save(tmp_path / "images" / "secret.png")
    arrays = dict(np.load(results / "sets" / "one.npz"))
    names = arrays["names"].tolist()
    names[:2] = ["../secret.png", str(tmp_path / "images" / "secret.png")]
    arrays["names"] = np.array(names)
    np.savez(results / "sets" / "one.npz", **arrays)
    page = _page(build_report(results, gallery_size=20))
    assert page.count('title="no longer in its source"') == 2
    assert len(list((results / "report" / "thumbs" / "set-one").iterdir())) == 18


def test_images_in_an_archive(tmp_path: Path) -> None:
    results = reportgen.make_compare(tmp_path, {"zipped": (20, 1.0)}, n_real=30, nasty=False)
    folder = tmp_path / "images" / "zipped"
    archive = shutil.make_archive(str(tmp_path / "zipped"), "zip", folder)
    shutil.rmtree(folder)
    run = json.loads((results / "run.json").read_text())
    fingerprint = reportgen.images_fingerprint(archive)
    run["sets"][0].update(source=archive, kind="archive", images_fingerprint=fingerprint)
    (results / "run.json").write_text(json.dumps(run))
    page = _page(build_report(results, gallery_size=20))
    assert "no longer" not in page and "not found" not in page
    assert len(list((results / "report" / "thumbs" / "set-zipped").iterdir())) == 20


def test_rebuild_replaces_the_report(compare_dir: Path, tmp_path: Path) -> None:
    results = reportgen.make_compare(tmp_path)
    build_report(results, gallery_size=2)
    # A file an earlier report wrote (listed in run.json["files"]) that this one does not write.
    (results / "report" / "stale.txt").write_text("old")
    run = json.loads((results / "run.json").read_text())
    run["files"]["report/stale.txt"] = publish.build_manifest(results)["report/stale.txt"]
    (results / "run.json").write_text(json.dumps(run))
    page = _page(build_report(results, gallery_size=3))
    assert not (results / "report" / "stale.txt").exists()
    assert "report/stale.txt" not in json.loads((results / "run.json").read_text())["files"]
    assert len(_galleries(page, "psi_0.7")["rarest"]) == 3
    assert not [p for p in results.iterdir() if p.name.startswith(".report")]


def test_rebuild_never_deletes_a_users_file(tmp_path: Path) -> None:
    results = reportgen.make_compare(tmp_path)
    build_report(results)
    (results / "report" / "my-notes.txt").write_text("mine")
    with pytest.raises(ReportError, match=r"did not write report/my-notes\.txt"):
        build_report(results)
    assert (results / "report" / "my-notes.txt").read_text() == "mine"
    (results / "report" / "my-notes.txt").unlink()
    (results / "histogram.png").write_bytes(b"my own figure")  # changed since the package wrote it
    with pytest.raises(ReportError, match=r"histogram\.png"):
        build_report(results)
    assert (results / "histogram.png").read_bytes() == b"my own figure"


def test_failed_build_leaves_the_old_report(tmp_path: Path, monkeypatch) -> None:
    results = reportgen.make_compare(tmp_path)
    build_report(results)
    before = (results / "report" / "index.html").read_bytes()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(build_module, "_write_report", broken)
    with pytest.raises(RuntimeError, match="report: No space left"):  # the machine: exit 1
        build_report(results)
    assert (results / "report" / "index.html").read_bytes() == before
    assert not [p for p in results.iterdir() if p.name.startswith(".report")]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_results_dir(tmp_path: Path) -> None:
    results = reportgen.make_compare(tmp_path)
    results.chmod(0o555)
    try:
        with pytest.raises(ReportError, match="cannot write the report"):
            build_report(results)
    finally:
        results.chmod(0o755)


def test_not_a_results_directory(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="does not exist"):
        build_report(tmp_path / "missing")
    with pytest.raises(ReportError, match=r"no run\.json"):
        build_report(tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(ReportError, match="cannot read"):
        build_report(tmp_path)


def test_reads_csv_when_arrays_and_summary_json_are_missing(tmp_path: Path) -> None:
    results = reportgen.make_compare(tmp_path)
    reference = load_results(results)
    for path in (results / "sets").glob("*.npz"):
        path.unlink()
    (results / "summary.json").unlink()
    (results / "reference_loo.npz").unlink()
    loaded = load_results(results)
    for before, after in zip(reference.sets, loaded.sets, strict=True):
        assert after.names == before.names
        np.testing.assert_array_equal(after.in_manifold, before.in_manifold)
        np.testing.assert_allclose(after.rarity, before.rarity, equal_nan=True)
        np.testing.assert_array_equal(after.nearest_real_index, before.nearest_real_index)
    # Real names recovered from the CSV's sphere_name / nearest_real_name columns.
    assert loaded.real_names is not None
    shown = {int(i) for s in loaded.sets for i in s.nearest_real_index}
    assert all(loaded.real_names[i] == f"real_{i:03d}.png" for i in shown)
    assert [row["name"] for row in loaded.summary] == ["psi=0.7", "psi=1.0"]
    page = _page(build_report(results))
    assert "thumbs/real/" in page


def test_plot_histograms(compare_dir: Path, tmp_path: Path) -> None:
    out = plot_histograms(compare_dir, tmp_path / "hist.png")
    assert out == tmp_path / "hist.png"
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hist.png"]  # atomic: no temp left
    with pytest.raises(FileNotFoundError):
        plot_histograms(compare_dir, tmp_path / "no" / "such" / "folder.png")


def test_histogram_with_no_in_manifold_sample(tmp_path: Path) -> None:
    results = reportgen.make_compare(tmp_path, {"far": (10, 1.0)}, n_real=20, nasty=False)
    arrays = dict(np.load(results / "sets" / "far.npz"))
    arrays["rarity"][:] = np.nan
    arrays["in_manifold"][:] = False
    arrays["sphere_index"][:] = -1
    np.savez(results / "sets" / "far.npz", **arrays)
    (results / "reference_loo.npz").unlink()
    (results / "summary.json").unlink()
    (results / "summary.csv").unlink()
    page = _page(build_report(results))
    assert (results / "histogram.png").read_bytes().startswith(PNG_MAGIC)
    assert "0 in manifold" in page and "None." in page


def _data_columns(index: Path, slug: str) -> dict:
    """The columns of one set's data file, read back as JSON."""
    text = (index.parent / "data" / f"set-{slug}.js").read_text(encoding="utf-8")
    body = text.split(f"window.RARITY_REPORT_DATA[{json.dumps(slug)}] = ", 1)[1]
    return json.loads(body.rstrip().rstrip(";"))


def test_rarity_column_is_written_when_every_sample_is_out(tmp_path: Path) -> None:
    # The table's minimum-rarity filter reads the rarity column: a set with no sample in the
    # manifold still has one (all missing), as does a leave-one-out run where all are out.
    results = reportgen.make_compare(tmp_path, {"far": (12, 1000.0)}, n_real=20, nasty=False)
    assert not load_results(results).sets[0].in_manifold.any()
    data = _data_columns(build_report(results), "far")
    assert data["columns"]["rarity"] == [None] * 12
    assert "rarity" in [column["key"] for column in data["table"]]
    assert data["columns"]["in_manifold"] == [0] * 12


def test_large_sets_build_fast_and_page_stays_small(tmp_path: Path) -> None:
    results = reportgen.make_large(tmp_path, n=100_000, n_sets=2)
    started = time.perf_counter()
    index = build_report(results)
    elapsed = time.perf_counter() - started
    print(f"report of 2 x 100,000 rows built in {elapsed:.2f} s")
    assert elapsed < 15  # about 1 s on the development machine
    assert index.stat().st_size < 200_000
    data = index.parent / "data" / "set-model_0.js"
    assert data.stat().st_size < 6_000_000
    text = data.read_text()
    assert text.count("img_0") == 100_000
    real = (index.parent / "data" / "real-names.js").read_text()
    assert real.count("real_0") == 100_000


def test_arguments_are_checked(compare_dir: Path) -> None:
    with pytest.raises(ValueError, match="page_size"):
        build_report(compare_dir, page_size=0)
