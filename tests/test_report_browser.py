"""The report opened in a real browser: headless Chromium driven by Playwright.

Playwright's own browser download fails here, so the tests drive the system's Chromium
(``/usr/bin/chromium`` on Debian; ``RARITY_CHROMIUM`` names another). They are skipped, with a
loud message, only when Playwright's Python package or a Chromium binary cannot be found at all;
a Chromium that is found but fails to start is a failure, not a skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest
import reportgen

pytest.importorskip("matplotlib")
pytest.importorskip("PIL")

from rarity_score.report import build_report, load_results

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE_SIZE = 10
DASH = "\u2013"  # between the first and last row numbers of a page


def _skip_loudly(request: pytest.FixtureRequest, reason: str) -> NoReturn:
    banner = "=" * 78
    message = f"{banner}\nBROWSER TESTS SKIPPED: {reason}\n{banner}"
    # With output capture off for a moment: pytest hides what skipped tests print.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n{message}", file=sys.stderr, flush=True)
    pytest.skip(f"BROWSER TESTS SKIPPED: {reason}")


def _chromium() -> str | None:
    candidates = [
        os.environ.get("RARITY_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_loudly(
            request, "the playwright Python package is not installed (pip install playwright)"
        )
    executable = _chromium()
    if executable is None:
        _skip_loudly(
            request,
            "no Chromium found (looked for $RARITY_CHROMIUM, /usr/bin/chromium, chromium, "
            "chromium-browser, google-chrome on PATH); install it with apt-get install chromium",
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Page:
    """A page of the report with the console errors it produced."""

    def __init__(self, browser: Any, index: Path) -> None:
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": 1300, "height": 900})
        # Any alert() would mean a name was run as code.
        self.context.add_init_script("window.__alerts = []; window.alert = m => __alerts.push(m);")
        self.context.set_default_timeout(10_000)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(index.as_uri())  # waits for the load event: images decoded
        self.wait_rows()

    def wait_rows(self) -> None:
        self.page.wait_for_function("document.querySelector('#rows-table tbody tr') !== null")

    def rows(self) -> list[int]:
        """The row numbers shown in the per-image table, top to bottom."""
        return [
            int(value)
            for value in self.page.eval_on_selector_all(
                "#rows-table tbody tr", "trs => trs.map(tr => tr.dataset.row)"
            )
        ]

    def column(self, key: str) -> list[str]:
        position = self.page.eval_on_selector_all(
            "#rows-table thead th", f"ths => ths.findIndex(th => th.dataset.key === '{key}')"
        )
        return self.page.eval_on_selector_all(
            "#rows-table tbody tr",
            f"trs => trs.map(tr => tr.children[{position}].textContent)",
        )

    def info(self) -> str:
        return self.page.inner_text("#page-info")

    def wait_info(self, text: str) -> None:
        self.page.wait_for_function(
            "t => document.getElementById('page-info').textContent.includes(t)", arg=text
        )

    def sort(self, key: str) -> None:
        self.page.click(f"#rows-table thead th[data-key='{key}'] button")

    def open_tab(self, slug: str) -> None:
        self.page.click(f".tab[data-slug='{slug}']")
        self.page.wait_for_function(
            "s => document.querySelector('.tab[aria-selected=true]').dataset.slug === s"
            " && document.querySelector('#rows-table tbody tr') !== null",
            arg=slug,
        )

    def close(self) -> None:
        assert self.errors == [], self.errors
        assert self.page.evaluate("window.__alerts") == []
        self.context.close()


@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    results = reportgen.make_compare(tmp_path_factory.mktemp("browser"))
    build_report(results, page_size=PAGE_SIZE)
    return results


@pytest.fixture
def page(browser: Any, compare_dir: Path) -> Iterator[Page]:
    opened = Page(browser, compare_dir / "report" / "index.html")
    yield opened
    opened.close()


def _expected_order(values: np.ndarray, descending: bool) -> list[int]:
    """Row order of a sort with missing values last and ties in row order (as the page does)."""
    finite = np.flatnonzero(~np.isnan(values))
    keys = -values[finite] if descending else values[finite]
    order = finite[np.argsort(keys, kind="stable")]
    return [*order.tolist(), *np.flatnonzero(np.isnan(values)).tolist()]


def test_page_loads_with_summary_galleries_and_screenshot(
    page: Page, compare_dir: Path, tmp_path: Path
) -> None:
    p = page.page
    assert p.title() == "Rarity report: 2 sets vs real"
    summary = p.eval_on_selector_all(
        "#summary-table tbody tr", "trs => trs.map(tr => tr.cells[0].textContent)"
    )
    assert summary == ["psi=0.7", "psi=1.0"]
    results = load_results(compare_dir)
    for item in results.sets:
        n_out = int((~item.in_manifold).sum())
        counts = p.evaluate(
            """slug => Object.fromEntries(['rarest', 'common', 'out'].map(kind => [kind,
                 document.querySelectorAll(`#set-${CSS.escape(slug)} [data-gallery=${kind}] .card`)
                 .length]))""",
            item.slug,
        )
        assert counts == {"rarest": 12, "common": 12, "out": min(12, n_out)}
    images = p.eval_on_selector_all(
        "#galleries img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.src])"
    )
    # Every card: generated image, nearest real image, sphere's real image (none when out).
    n_cards = p.eval_on_selector_all("#galleries .card", "cards => cards.length")
    n_out_cards = p.eval_on_selector_all("#galleries .card.outside", "cards => cards.length")
    assert len(images) == 3 * n_cards - n_out_cards
    assert all(complete and width > 0 for complete, width, _ in images), images
    assert p.eval_on_selector("#histogram-img", "i => i.naturalWidth") > 500
    shot = tmp_path / "report.png"
    p.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000


def test_table_shows_first_page_of_first_set(page: Page, compare_dir: Path) -> None:
    assert page.rows() == list(range(PAGE_SIZE))
    assert page.info() == f"Rows 1{DASH}10 of 40 · page 1 of 4"
    headers = page.page.eval_on_selector_all(
        "#rows-table thead th", "ths => ths.map(th => th.textContent)"
    )
    assert headers[:4] == ["#", "name", "in manifold", "rarity"]
    assert "sphere (score from)" in headers and "nearest real" in headers
    item = load_results(compare_dir).sets[0]
    nearest = page.column("nearest_real_name")
    assert nearest == [f"real_{int(i):03d}.png" for i in item.nearest_real_index[:PAGE_SIZE]]


def test_names_are_shown_as_text(page: Page) -> None:
    names = page.column("name")
    assert names[:3] == list(reportgen.NASTY_NAMES)
    p = page.page
    assert p.eval_on_selector_all("img[src='x']", "imgs => imgs.length") == 0
    assert p.eval_on_selector_all("#rows-table b", "bs => bs.length") == 0


def test_sort_by_rarity(page: Page, compare_dir: Path) -> None:
    item = load_results(compare_dir).sets[1]
    page.open_tab(item.slug)
    rarity = np.where(item.in_manifold, item.rarity, np.nan)
    page.sort("rarity")
    assert page.rows() == _expected_order(rarity, descending=True)[:PAGE_SIZE]
    p = page.page
    assert p.get_attribute("th[data-key='rarity']", "aria-sort") == "descending"
    shown = [float(v) for v in page.column("rarity")]
    assert shown == sorted(shown, reverse=True)
    page.sort("rarity")
    assert page.rows() == _expected_order(rarity, descending=False)[:PAGE_SIZE]
    assert p.get_attribute("th[data-key='rarity']", "aria-sort") == "ascending"
    # Missing values (out of the manifold) come last in either direction.
    p.click("#page-next")
    p.click("#page-next")
    p.click("#page-next")
    page.wait_info("page 4 of 5")
    p.click("#page-next")
    page.wait_info("page 5 of 5")
    assert page.column("rarity")[-7:] == ["—"] * 7
    page.sort("name")
    assert page.column("name") == sorted(item.names, key=str.lower)[:PAGE_SIZE]


def test_filter(page: Page, compare_dir: Path) -> None:
    p = page.page
    p.fill("#filter-name", "s0_01")
    page.wait_info("filtered from 40")
    assert page.column("name") == [f"s0_01{i}.png" for i in range(10)]
    assert page.info() == f"Rows 1{DASH}10 of 10 (filtered from 40) · page 1 of 1"
    p.fill("#filter-name", "<script")
    page.wait_info("of 1 (filtered")
    assert page.column("name") == ["<script>.png"]
    p.fill("#filter-name", "")
    page.wait_info("of 40 ·")

    item = load_results(compare_dir).sets[1]
    page.open_tab(item.slug)
    p.select_option("#filter-manifold", "out")
    n_out = int((~item.in_manifold).sum())
    page.wait_info(f"of {n_out} (filtered from 50)")
    assert page.rows() == np.flatnonzero(~item.in_manifold).tolist()
    assert set(page.column("in_manifold")) == {"no"}
    p.select_option("#filter-manifold", "all")
    # Halfway between two scores, so the 7 digits the page keeps cannot move a row across it.
    scores = np.unique(item.rarity[item.in_manifold])
    threshold = float(scores[scores.size // 2 - 1] + scores[scores.size // 2]) / 2
    p.fill("#filter-min", repr(threshold))
    expected = int((item.rarity >= threshold).sum())
    page.wait_info(f"of {expected} (filtered from 50)")
    assert all(float(v) >= threshold - 1e-6 for v in page.column("rarity"))


def test_rarity_filter_when_every_sample_is_out(browser: Any, tmp_path: Path) -> None:
    # No sample in the manifold: no rarity to filter on, so a minimum matches no row (and the
    # page raises no error reading the all-missing column).
    results = reportgen.make_compare(tmp_path, {"far": (12, 1000.0)}, n_real=20, nasty=False)
    page = Page(browser, build_report(results))
    try:
        assert page.rows() == list(range(12))
        page.page.fill("#filter-min", "0")
        page.wait_info("No rows match")
        assert page.rows() == []
        page.page.fill("#filter-min", "")
        page.wait_info("of 12 ·")
    finally:
        page.close()


def test_paging(page: Page) -> None:
    p = page.page
    assert p.is_disabled("#page-prev") and not p.is_disabled("#page-next")
    p.click("#page-next")
    page.wait_info(f"Rows 11{DASH}20 of 40")
    assert page.rows() == list(range(10, 20))
    p.click("#page-next")
    p.click("#page-next")
    page.wait_info("page 4 of 4")
    assert page.rows() == list(range(30, 40))
    assert p.is_disabled("#page-next")
    p.click("#page-prev")
    page.wait_info("page 3 of 4")
    assert page.rows() == list(range(20, 30))


def test_datasets_report_in_browser(browser: Any, tmp_path: Path) -> None:
    results = reportgen.make_datasets(tmp_path)
    index = build_report(results)
    page = Page(browser, index)
    try:
        headers = page.page.eval_on_selector_all(
            "#rows-table thead th", "ths => ths.map(th => th.textContent)"
        )
        assert "nearest other" in headers
        assert "leave-one-out" in page.page.inner_text("#settings")
        widths = page.page.eval_on_selector_all("#galleries img", "i => i.map(x => x.naturalWidth)")
        assert widths and min(widths) > 0
    finally:
        page.close()


def test_feature_only_report_in_browser(browser: Any, tmp_path: Path) -> None:
    results = reportgen.make_compare(tmp_path, has_images=False, real_has_images=False)
    page = Page(browser, build_report(results))
    try:
        assert page.page.eval_on_selector_all("#galleries img", "i => i.length") == 0
        assert "Feature-only set" in page.page.inner_text("#galleries")
        assert page.rows() == list(range(40))
    finally:
        page.close()


def test_large_report_in_browser(browser: Any, tmp_path: Path) -> None:
    results = reportgen.make_large(tmp_path, n=100_000, n_sets=1)
    index = build_report(results)
    started = time.perf_counter()
    page = Page(browser, index)
    try:
        loaded = time.perf_counter() - started
        assert page.rows() == list(range(500))
        assert page.info() == f"Rows 1{DASH}500 of 100,000 · page 1 of 200"
        item = load_results(results).sets[0]
        rarity = np.where(item.in_manifold, item.rarity, np.nan)
        started = time.perf_counter()
        page.sort("rarity")
        sorted_in = time.perf_counter() - started
        assert page.rows()[:20] == _expected_order(rarity, descending=True)[:20]
        print(f"100,000 rows: page ready in {loaded:.2f} s, sorted in {sorted_in:.2f} s")
        assert loaded < 10 and sorted_in < 10
    finally:
        page.close()


def test_spaces_report_in_browser(browser: Any, tmp_path: Path) -> None:
    # The report of `rarity spaces`: no script of its own, so no table to wait for; the page
    # must load without errors and show its sections, plots and thumbnails.
    for module in ("torch", "scipy", "sklearn"):  # what test_report_spaces builds outputs with
        pytest.importorskip(module)
    from test_report_spaces import SETS, SPACES, make_spaces

    from rarity_score.report import build_spaces_report

    index = build_spaces_report(make_spaces(tmp_path))
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.add_init_script("window.__alerts = []; window.alert = m => __alerts.push(m);")
    context.set_default_timeout(10_000)
    p = context.new_page()
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda error: errors.append(str(error)))
    try:
        p.goto(index.as_uri())  # waits for the load event: images decoded
        assert p.title() == "Feature spaces compared: " + ", ".join(SPACES)
        for selector in ("#method", "#spaces", "#sets", *(f"#set-{name}" for name in SETS)):
            assert p.is_visible(selector), selector
        shown = p.eval_on_selector_all(
            "#spaces-table tbody tr", "trs => trs.map(tr => tr.cells[0].textContent)"
        )
        assert shown == list(SPACES)
        images = p.eval_on_selector_all(
            "img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.getAttribute('src')])"
        )
        assert images and all(complete and width > 0 for complete, width, _ in images), images
        pairs = len(SPACES) * (len(SPACES) - 1) // 2
        scatters = p.eval_on_selector_all(".scatter img", "i => i.map(x => x.naturalWidth)")
        assert len(scatters) == len(SETS) * pairs and min(scatters) > 300
        histograms = p.eval_on_selector_all(
            ".spaces-histograms img", "i => i.map(x => x.naturalWidth)"
        )
        assert len(histograms) == len(SETS) and min(histograms) > 500
        for name in SETS:
            counts = p.evaluate(
                """slug => Array.from(document.querySelectorAll(
                     `#set-${CSS.escape(slug)} [data-gallery]`)).map(g => [g.dataset.gallery,
                     g.querySelectorAll('.card').length])""",
                name,
            )
            # Every ordered pair, then rare and common in every space.
            assert len(counts) == len(SPACES) * (len(SPACES) - 1) + 2
            assert all(0 < count <= 8 for _, count in counts), counts
        card = p.locator("#set-one [data-gallery=rare-everywhere] .card").first
        card.scroll_into_view_if_needed()
        assert card.is_visible()
        text = card.inner_text()
        assert "percentile" in text and "nearest real" in text
        assert all(space in text for space in SPACES)
        # Each slot is one thumbnail wide: its texts stay inside the card.
        box, slot = card.bounding_box(), card.locator(".space-slot").last.bounding_box()
        assert box is not None and slot is not None
        assert slot["x"] + slot["width"] <= box["x"] + box["width"]
        shot = tmp_path / "spaces.png"
        p.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 50_000
        assert p.evaluate("window.__alerts") == []
    finally:
        context.close()
    assert errors == [], errors
