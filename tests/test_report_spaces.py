"""The report of ``rarity spaces`` (``report/spaces.py``), built from spaces outputs that
``compare_spaces`` makes of tiny image folders scored with seeded random extractors.

Every expectation is recomputed here from the saved arrays (``sets/<slug>.npz``), the summary
rows and the per-space results directories, never read from the report's own code.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("PIL")
pytest.importorskip("torch")  # the tiny extractor
pytest.importorskip("scipy")  # the agreement statistics of compare_spaces
pytest.importorskip("sklearn")

from pipeline_helpers import TinyExtractor, write_images

from rarity_score.compare import compare
from rarity_score.io import publish
from rarity_score.options import ExtractionOptions
from rarity_score.report import ReportError, build_spaces_report
from rarity_score.report.spaces import GALLERY_SIZE
from rarity_score.report.thumbnails import CHANGED
from rarity_score.results_dir import load_results
from rarity_score.spaces.run import compare_spaces

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SPACES = ("tiny a", "tiny b", "tiny c")
SETS = {"one": 26, "two": 18}
N_REAL = 30
NASTY = ("<script>.png", 'a&b "q" <b>bold.png', "<img src=x onerror=alert(1)>.png")


def _extraction(seed: int) -> ExtractionOptions:
    extractor = TinyExtractor(seed=seed, dim=6, name=f"tiny-{seed}")
    return ExtractionOptions(extractor=extractor, cache_dir=False, progress=False)


def make_images(base: Path, sets: Mapping[str, int] = SETS, *, nasty: bool = False) -> dict:
    """Image folders under ``base/images``: the real one and one per set (set name -> folder)."""
    write_images(base / "images" / "real", N_REAL, seed=0, prefix="real")
    folders = {}
    for position, (name, n) in enumerate(sets.items()):
        folder = base / "images" / f"set{position}"
        names = write_images(folder, n, seed=position + 1, prefix=f"s{position}")
        if nasty and position == 0:
            for old, new in zip(names, NASTY, strict=False):
                (folder / old).rename(folder / new)
        folders[name] = folder
    return folders


def make_spaces(
    base: Path,
    sets: Mapping[str, int] = SETS,
    spaces: Sequence[str] = SPACES,
    *,
    nasty: bool = False,
) -> Path:
    """A spaces output scored from images (one seeded tiny extractor per space), without its
    report: the tests build it themselves, so that a failure raises (compare_spaces only warns).
    """
    folders = make_images(base, sets, nasty=nasty)
    extractors = {
        name: TinyExtractor(seed=position, dim=6, name=f"tiny-{position}")
        for position, name in enumerate(spaces)
    }
    run = compare_spaces(
        extractors,
        base / "out",
        real=base / "images" / "real",
        fakes=folders,
        k=3,
        extraction=ExtractionOptions(cache_dir=False, progress=False),
        report=False,
    )
    return run.path


def make_feature_spaces(base: Path, n_spaces: int = 3) -> Path:
    """A spaces output of results directories that were given features (no images at all)."""
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(N_REAL, 4)), rng.normal(size=(20, 4)) * 1.2
    dirs = {}
    for position in range(n_spaces):
        turn = rng.normal(size=(4, 3 + position))
        dirs[f"features {position}"] = compare(
            real @ turn, {"feat": fake @ turn}, base / f"results{position}", report=False
        ).path
    return compare_spaces(dirs, base / "out", report=False).path


@pytest.fixture(scope="module")
def spaces_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = make_spaces(tmp_path_factory.mktemp("spaces"))
    build_spaces_report(out)
    return out


def _page(out: Path) -> str:
    return (out / "report" / "index.html").read_text(encoding="utf-8")


def _run(out: Path) -> dict:
    return json.loads((out / "run.json").read_text(encoding="utf-8"))


def _arrays(out: Path, slug: str) -> dict[str, np.ndarray]:
    with np.load(out / "sets" / f"{slug}.npz") as data:
        return {key: data[key] for key in data.files}


def _section(page: str, slug: str) -> str:
    return page.split(f'id="set-{slug}"', 1)[1].split("\n</section>", 1)[0]


def _galleries(section: str) -> dict[str, str]:
    return dict(re.findall(r'data-gallery="([\w-]+)">(.*?)\n  </div>', section, re.S))


def _rows(gallery: str) -> list[int]:
    return [int(row) for row in re.findall(r'<figure class="card[^"]*" data-row="(\d+)"', gallery)]


def _cards(gallery: str) -> list[tuple[int, str]]:
    return [
        (int(row), body)
        for row, body in re.findall(
            r'<figure class="card[^"]*" data-row="(\d+)">(.*?)</figure>', gallery, re.S
        )
    ]


def _slots(card: str) -> dict[int, str]:
    return {
        int(space): body
        for space, body in re.findall(
            r'<div class="slot space-slot \w+" data-space="(-?\d+)">(.*?)\n          </div>',
            card,
            re.S,
        )
    }


def expected_galleries(arrays: Mapping[str, np.ndarray], size: int = 8) -> dict[str, list[int]]:
    """The documented selection, in plain Python: "rare in a, common in b" takes the samples in
    both manifolds with a higher percentile in a, largest difference first; "rare in every
    space" the samples in every manifold by largest minimum percentile, "common in every
    space" by smallest maximum percentile; ties by row."""
    percentile = arrays["percentile"].tolist()
    inside = arrays["in_manifold"].tolist()
    n, count = arrays["percentile"].shape
    out = {}
    for a in range(count):
        for b in range(count):
            if a == b:
                continue
            rows = [
                r
                for r in range(n)
                if inside[r][a] and inside[r][b] and percentile[r][a] > percentile[r][b]
            ]
            rows.sort(key=lambda r: (-(percentile[r][a] - percentile[r][b]), r))
            out[f"rare-{a}-common-{b}"] = rows[:size]
    every = [r for r in range(n) if all(inside[r])]
    out["rare-everywhere"] = sorted(every, key=lambda r: (-min(percentile[r]), r))[:size]
    out["common-everywhere"] = sorted(every, key=lambda r: (max(percentile[r]), r))[:size]
    return out


def test_layout_and_plots(spaces_dir: Path) -> None:
    report = spaces_dir / "report"
    for name in ("index.html", "report.css", "spaces.css"):
        assert (report / name).is_file(), name
    run = _run(spaces_dir)
    count = len(run["spaces"])
    for position in range(len(run["sets"])):
        assert (report / "plots" / f"set-{position}-histograms.png").read_bytes()[:8] == PNG_MAGIC
        for a in range(count):
            for b in range(a + 1, count):
                scatter = report / "plots" / f"set-{position}-scatter-{a}-{b}.png"
                assert scatter.read_bytes()[:8] == PNG_MAGIC
    plots = sorted(p.name for p in (report / "plots").iterdir())
    assert len(plots) == len(run["sets"]) * (1 + count * (count - 1) // 2)
    page = _page(spaces_dir)
    shown = set(re.findall(r'<img src="([^"]+)"', page))
    made = {p.relative_to(report).as_posix() for p in report.rglob("*") if p.is_file()}
    assert shown <= made  # every image the page shows exists
    # Thumbnails: exactly those shown; plots: every one shown.
    assert {p for p in made if p.startswith("thumbs/")} == {p for p in shown if "thumbs/" in p}
    assert {p for p in made if p.startswith("plots/")} == {p for p in shown if "plots/" in p}
    # The report is listed in run.json["files"], as the output's other files.
    assert run["files"] == publish.build_manifest(spaces_dir, own=("run.json",))
    assert not [p for p in spaces_dir.iterdir() if p.name.startswith(".")]


def test_header_spaces_sets_and_method(spaces_dir: Path) -> None:
    page = _page(spaces_dir)
    header = page.split("</header>", 1)[0]
    assert "<title>Feature spaces compared: tiny a, tiny b, tiny c</title>" in page
    for name in SETS:
        assert f'href="#set-{name}"' in header
    table = page.split('id="spaces-table"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><th scope=\"row\">(.*?)</th>(.*?)</tr>", table)
    assert [name for name, _ in rows] == list(SPACES)
    for position, (_, cells) in enumerate(rows):
        for text in (f"tiny-{position}", "bilinear 16x16, /255", f"seed-{position}", ">6<"):
            assert text in cells, text
        assert re.search(rf'<td class="num">3</td><td class="num">{N_REAL}</td>', cells)
        assert f"spaces/{_run(spaces_dir)['spaces'][position]['slug']}" in cells
    sets = page.split('id="sets-table"', 1)[1].split("</table>", 1)[0]
    for name, n in SETS.items():
        assert f'>{name}</a></th><td class="num">{n}</td>' in sets
    assert "matched by image name" in sets
    method = page.split('id="method"', 1)[1].split("</section>", 1)[0]
    assert "compared by ranks, not values" in method
    for word in ("Spearman", "Kendall", "kappa", "Jaccard", "rarest 10 %", "percentile"):
        assert word in method, word


def test_agreement_tables_are_the_summary_rows(spaces_dir: Path) -> None:
    page = _page(spaces_dir)
    summary = json.loads((spaces_dir / "summary.json").read_text())
    keys = ("n_in_both", "spearman", "kendall", "in_in", "in_out", "out_in", "out_out")
    keys += ("kappa", "jaccard_rarest", "jaccard_common")
    for name in SETS:
        section = _section(page, name)
        table = section.split('class="summary agreement"', 1)[1].split("</table>", 1)[0]
        shown = re.findall(
            r'<tr><th scope="row">(.*?)</th><th scope="row">(.*?)</th>(.*?)</tr>', table
        )
        rows = [row for row in summary if row["set"] == name]
        assert [(a, b) for a, b, _ in shown] == [(r["space_a"], r["space_b"]) for r in rows]
        assert len(rows) == 3
        for (_, _, cells), row in zip(shown, rows, strict=True):
            values = dict(re.findall(r'data-col="(\w+)"[^>]*>([^<]*)</td>', cells))
            for key in keys:
                value = row[key]
                if value is None:
                    text = "—"
                elif key in ("spearman", "kendall", "kappa") or key.startswith("jaccard"):
                    text = f"{value:.3f}"
                else:
                    text = f"{value:,}"
                assert values[key] == text, (key, values[key], value)
        # Each scatter's caption gives that pair's saved correlations and its count.
        for row in rows:
            caption = f"{row['space_a']} vs {row['space_b']}: Spearman {row['spearman']:.3f}, "
            caption += f"Kendall {row['kendall']:.3f} (n = {row['n_in_both']} in both)"
            assert caption in section


def test_galleries_follow_the_documented_rules(spaces_dir: Path) -> None:
    assert GALLERY_SIZE == 8
    page = _page(spaces_dir)
    for name in SETS:
        arrays = _arrays(spaces_dir, name)
        expected = expected_galleries(arrays)
        galleries = _galleries(_section(page, name))
        assert list(galleries) == list(expected)
        for kind, rows in expected.items():
            assert _rows(galleries[kind]) == rows, (name, kind)
        # The data give every gallery something to show.
        assert all(expected.values())
        assert "Rare in tiny a, common in tiny b" in galleries["rare-0-common-1"]
        assert "Rare in tiny c, common in tiny a" in galleries["rare-2-common-0"]


def test_cards_show_each_space_nearest_real_image(spaces_dir: Path) -> None:
    page = _page(spaces_dir)
    run = _run(spaces_dir)
    real_names = [load_results(spaces_dir / entry["results"]).real_names for entry in run["spaces"]]
    report = spaces_dir / "report"
    checked = 0
    for position, name in enumerate(SETS):
        arrays = _arrays(spaces_dir, name)
        names = arrays["names"].tolist()
        for gallery in _galleries(_section(page, name)).values():
            for row, card in _cards(gallery):
                slots = _slots(card)
                assert sorted(slots) == [-1, 0, 1, 2]
                subject = re.findall(r'<img src="([^"]+)"', slots[-1])
                assert subject == [f"thumbs/set-{position}/{row}.jpg"]
                assert html.escape(names[row]) in slots[-1]
                for s in range(len(SPACES)):
                    slot = slots[s]
                    assert f">{SPACES[s]}</div>" in slot
                    nearest = int(arrays["nearest_real_index"][row, s])
                    assert f">{real_names[s][nearest]}</div>" in slot
                    (image,) = re.findall(r'<img src="([^"]+)"', slot)
                    assert (report / image).read_bytes()[:2] == b"\xff\xd8"
                    if arrays["in_manifold"][row, s]:
                        assert f"<dd>{arrays['rarity'][row, s]:.4g}</dd>" in slot
                        assert f"<dd>{arrays['percentile'][row, s]:.1f}</dd>" in slot
                    else:
                        assert "out of manifold" in slot
                    checked += 1
    assert checked > 50
    # The thumbnail is of the real image the card names: of all real images, the closest to it
    # (JPEG of random pixels is far from exact, but much closer to its own image).
    from PIL import Image

    real = spaces_dir.parent / "images" / "real"
    originals = {p.name: np.asarray(Image.open(p).convert("RGB"), np.int16) for p in real.iterdir()}
    for _, card in _cards(_galleries(_section(page, "one"))["rare-everywhere"]):
        for s in range(len(SPACES)):
            slot = _slots(card)[s]
            (image,) = re.findall(r'<img src="([^"]+)"', slot)
            (shown,) = re.findall(r'<div class="fname" title="([^"]+)"', slot)
            thumb = np.asarray(Image.open(report / image), dtype=np.int16)
            distance = {name: np.abs(thumb - pixels).mean() for name, pixels in originals.items()}
            assert min(distance, key=distance.__getitem__) == shown


def test_changed_images_give_placeholders(tmp_path: Path) -> None:
    out = make_spaces(tmp_path, {"only": 16}, SPACES[:2])
    # The set's folder changes after the run: its images are no longer the ones scored.
    write_images(tmp_path / "images" / "set0", 1, seed=9, prefix="zz_added")
    page = build_spaces_report(out).read_text(encoding="utf-8")
    assert CHANGED in page
    thumbs = out / "report" / "thumbs"
    assert not (thumbs / "set-0").exists()  # not one image of the changed source was opened
    assert any((thumbs / "real-0").iterdir())  # the real images are still the run's
    # And when the real folder changes too, no real image is shown either.
    (tmp_path / "images" / "real" / "real_000.png").unlink()
    page = build_spaces_report(out).read_text(encoding="utf-8")
    assert not (out / "report" / "thumbs").exists()
    assert page.count(CHANGED) >= 2 and '<img src="thumbs/' not in page


def test_rebuild_replaces_only_its_own_report(tmp_path: Path) -> None:
    out = make_spaces(tmp_path, {"only": 12}, SPACES[:2])
    build_spaces_report(out)
    first = _run(out)["files"]
    build_spaces_report(out)  # a rebuild replaces the report it wrote
    assert _run(out)["files"] == publish.build_manifest(out, own=("run.json",))
    assert {k for k in first if k.startswith("report/")} == {
        k for k in _run(out)["files"] if k.startswith("report/")
    }
    (out / "report" / "notes.txt").write_text("mine")
    with pytest.raises(ReportError, match=r"notes\.txt"):
        build_spaces_report(out)
    assert (out / "report" / "notes.txt").read_text() == "mine"


def test_compare_spaces_builds_the_report(tmp_path: Path) -> None:
    folders = make_images(tmp_path, {"only": 10})
    run = compare_spaces(
        {"a": TinyExtractor(seed=0, dim=6), "b": TinyExtractor(seed=1, dim=6)},
        tmp_path / "out",
        real=tmp_path / "images" / "real",
        fakes=folders,
        k=3,
        extraction=ExtractionOptions(cache_dir=False, progress=False),
    )
    page = _page(run.path)
    assert 'data-gallery="rare-0-common-1"' in page and 'data-gallery="rare-1-common-0"' in page
    assert "report/index.html" in run.run["files"]


def test_hostile_names_are_escaped(tmp_path: Path) -> None:
    folders = make_images(tmp_path, {"<b>set</b> & 'q'": 14}, nasty=True)
    dirs = {}
    for position, name in enumerate(("<i>A</i> & $x^2$", '"B" <script>alert(1)</script>')):
        result = compare(
            tmp_path / "images" / "real",
            folders,
            tmp_path / f"results{position}",
            k=3,
            extraction=_extraction(position),
            report=False,
        )
        dirs[name] = result.path
    out = compare_spaces(dirs, tmp_path / "out", report=False).path
    page = build_spaces_report(out).read_text(encoding="utf-8")
    hostile = [*dirs, *folders, *NASTY]
    for name in hostile:
        assert name not in page, name  # never raw: not in text, attributes or titles
        assert html.escape(name) in page, name
    assert "<script" not in page and "<b>" not in page and "<i>" not in page
    # The nasty image names are shown (escaped) on the cards that show them.
    arrays = _arrays(out, _run(out)["sets"][0]["slug"])
    shown = {row for gallery in _galleries(page).values() for row in _rows(gallery)}
    for row in shown:
        assert html.escape(arrays["names"][row]) in page
    assert (out / "report" / "plots" / "set-0-scatter-0-1.png").read_bytes()[:8] == PNG_MAGIC


def test_feature_only_sets_show_names_without_thumbnails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = make_feature_spaces(tmp_path)
    with caplog.at_level(logging.WARNING):
        page = build_spaces_report(out).read_text(encoding="utf-8")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # nothing to refuse
    assert "Feature-only set" in page
    assert not (out / "report" / "thumbs").exists()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images and all(src.startswith("plots/") for src in images)
    assert len(images) == 1 + 3  # the histograms and the three pairs of the one set
    arrays = _arrays(out, "feat")
    expected = expected_galleries(arrays)
    galleries = _galleries(_section(page, "feat"))
    for kind, rows in expected.items():
        assert _rows(galleries[kind]) == rows
        for row, card in _cards(galleries[kind]):
            assert "names-only" in page.split(f'data-row="{row}"', 1)[0].rsplit("<figure", 1)[1]
            assert html.escape(arrays["names"][row]) in card
            assert '<div class="frame">' not in card
    assert "matched by row" in page


def test_page_uses_no_network_and_no_script(spaces_dir: Path) -> None:
    report = spaces_dir / "report"
    for name in ("index.html", "report.css", "spaces.css"):
        text = (report / name).read_text(encoding="utf-8")
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text), name
        assert "http://" not in text and "https://" not in text, name
    assert "<script" not in _page(spaces_dir)
