"""Build the HTML report of a results directory (``docs/dev/report-contract.md``, part D).

The report is a folder ``RESULTS_DIR/report/`` that opens straight from disk (``file://``):
``index.html`` with the settings, the summary table (with the bootstrap intervals of a run that
has them, and a warning when leave-one-out datasets differ in size), the comparisons of the sets,
the stability table, the histogram and the empirical CDFs, and the galleries; beside it
``report.css`` and ``report.js`` (copied from this package), ``histogram.png``, ``ecdf.png``,
``thumbs/``
(thumbnails of the shown images only) and ``data/`` (one JavaScript file per set holding the
per-image table, loaded by the page only when that set's table is opened; ``fetch`` of local files
is blocked on ``file://``, a ``<script>`` is not).

Every name from the results (set names, file names, paths, the command) is HTML-escaped here, and
written into the data files as JSON strings that the page puts into the DOM as text, never as HTML.
The reader validates the intervals of the summary rows and the comparisons' numbers (a damaged
one is a one-line ReportError); what it does not, ``run.json["statistics"]``, is checked here: a
value of the wrong type is not shown, and text is escaped like the rest.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rarity_score._version import __version__
from rarity_score.io import publish
from rarity_score.io.atomic import atomic_write_bytes
from rarity_score.io.names import printable, shorten
from rarity_score.io.run_record import COMPARABILITY, finite_number
from rarity_score.report.folder import check_replaceable, publish_report
from rarity_score.report.load import Results, SetResult, load_results
from rarity_score.report.page import escape as _e
from rarity_score.report.page import page_head, run_rows
from rarity_score.report.page import setting_row as _row
from rarity_score.report.page import template as _template
from rarity_score.report.plots import ecdf_png, histogram_png, require_matplotlib
from rarity_score.report.thumbnails import ImageOrigin, Thumb, ThumbnailMaker
from rarity_score.results_dir import table_values, value_text
from rarity_score.results_dir.layout import ci_key, with_interval

if TYPE_CHECKING:
    from rarity_score.metrics.base import Column, Gallery, SetValue

__all__ = ["build_report"]

logger = logging.getLogger(__name__)

_STATIC_FILES = ("report.css", "report.js")
_STYLESHEETS = ("report.css",)
_REAL_GROUP = "real"  # thumbs/real/ holds the real set's thumbnails (set slugs get "set-")
_OUT_SAMPLE_SEED = 0  # the out-of-manifold sample is the same on every rebuild
_BESIDE = ("histogram.png",)  # written beside report/ (the report embeds a copy)


def build_report(
    results_dir: str | os.PathLike[str],
    *,
    gallery_size: int = 12,
    out_of_manifold_sample: int = 12,
    page_size: int = 500,
) -> Path:
    """Build ``RESULTS_DIR/report/`` from a saved results directory; return its ``index.html``.

    Reads only what the directory holds (``run.json``, the summary, the per-set arrays, the
    leave-one-out reference; through :func:`rarity_score.results_dir.load_results`) and the
    images its sources point to, for thumbnails of the shown images. Also writes
    ``RESULTS_DIR/histogram.png`` (the one histogram: the report embeds a copy). The report
    folder is built beside the old one and swapped in when complete, so a reader never sees
    half a report.

    Args:
        results_dir: a results directory as written by ``rarity compare`` / ``rarity datasets``.
        gallery_size: images in each of the "rarest" and "most common" galleries of a set.
        out_of_manifold_sample: out-of-manifold images shown per set (a fixed random sample).
        page_size: rows per page of the per-image table.

    Raises:
        ReportError: the directory is not a readable results directory, or cannot be written.
        MissingDependency: matplotlib (for the histogram) is not installed; an ImportError,
            raised before anything is written.
    """
    if gallery_size < 0 or out_of_manifold_sample < 0 or page_size < 1:
        raise ValueError("gallery_size and out_of_manifold_sample must be >= 0, page_size >= 1")
    results = load_results(results_dir)
    require_matplotlib()  # the histogram is part of the report: nothing is built without it
    root = results.root
    publish.clean_stale()  # what a killed run (or rebuild) left beside it
    manifest = check_replaceable(
        root, results.run, beside=_BESIDE, unlisted=" (an older version wrote it)"
    )

    histogram: list[bytes] = []

    def write(staging: Path) -> None:
        histogram.append(
            _write_report(
                results, staging, gallery_size, out_of_manifold_sample, min(page_size, 100_000)
            )
        )

    return publish_report(
        root,
        write,
        manifest,
        beside=_BESIDE,
        then=lambda: atomic_write_bytes(root / "histogram.png", histogram[-1]),
    )


def _write_report(
    results: Results, folder: Path, gallery_size: int, out_sample: int, page_size: int
) -> bytes:
    """Write every file of the report into ``folder``; return the histogram PNG."""
    static = resources.files("rarity_score.report") / "static"
    for name in _STATIC_FILES:
        (folder / name).write_bytes((static / name).read_bytes())

    png = histogram_png(results)
    (folder / "histogram.png").write_bytes(png)
    histogram = (
        '  <figure class="histogram"><img src="histogram.png" id="histogram-img" '
        'alt="Overlaid rarity histograms of all sets"><figcaption>'
        f"{_e(_histogram_caption(results))} Also saved as <code>histogram.png</code> in the "
        "results directory.</figcaption></figure>"
    )
    (folder / "ecdf.png").write_bytes(ecdf_png(results))
    ecdf = (
        '  <figure class="histogram ecdf"><img src="ecdf.png" id="ecdf-img" '
        'alt="Empirical cumulative distributions of the rarity of all sets"><figcaption>'
        f"{_e(_ecdf_caption(results))}</figcaption></figure>"
    )
    rows = results.summary
    comparisons = _render_comparisons(results)
    stability = _render_stability(results)
    nav = "".join(
        f'\n    <a href="#{anchor}">{label}</a>'
        for anchor, label, html_text in (
            ("comparisons", "Comparisons", comparisons),
            ("stability", "Stability", stability),
        )
        if html_text
    )

    thumbs = ThumbnailMaker(folder)
    plans = [
        _plan_galleries(results, item, thumbs, gallery_size, out_sample) for item in results.sets
    ]
    thumbs.make()
    for source, reason in thumbs.refused().items():
        # One line per source: the page shows the reason on each placeholder too.
        logger.warning("report: no thumbnails of %s (%s)", shorten(source, 120), reason)
    galleries = "\n".join(
        _render_set(results, item, plan, thumbs)
        for item, plan in zip(results.sets, plans, strict=True)
    )

    (folder / "data").mkdir()
    tabs = []
    real_file = ""
    if not results.datasets_mode and results.real_names is not None:
        real_file = "data/real-names.js"
        _write_js(
            folder / real_file,
            "window.RARITY_REPORT_REAL_NAMES = " + _js_strings(results.real_names) + ";\n",
        )
    for item in results.sets:
        file = f"data/set-{item.slug}.js"
        _write_js(folder / file, _set_data_js(results, item))
        tabs.append(
            _template("tab.html")
            .substitute(
                slug=_e(item.slug),
                file=_e(file),
                ref_file=_e(real_file),
                n=item.n,
                name=_e(item.name),
                count=_e(f"{item.n:,}"),
            )
            .rstrip("\n")
        )
    table = _template("table.html").substitute(page_size=page_size, tabs="\n".join(tabs))

    version = str(results.run.get("package_version") or _package_version())
    page = _template("index.html").substitute(
        head=page_head(version=version, title=_title(results), stylesheets=_STYLESHEETS),
        version=_e(version),
        title=_e(_title(results)),
        lede=_e(_lede(results)),
        settings=_render_settings(results),
        summary_head='<th scope="col" data-col="name">set</th>'
        + "".join(
            f'<th scope="col" data-col="{_e(value.key)}">{_e(value.heading)}</th>'
            for value in results.values
        ),
        summary_rows=_render_summary(results, rows),
        comparability=_e(COMPARABILITY),
        nav_analyses=nav,
        size_warning=_size_warning(results),
        intervals_note=_intervals_note(results, rows),
        analyses="".join(part + "\n" for part in (comparisons, stability) if part),
        histogram=histogram,
        ecdf=ecdf,
        gallery_note=_e(_gallery_note(results)),
        galleries=galleries,
        table=table,
    )
    (folder / "index.html").write_text(page, encoding="utf-8")
    return png


# ------------------------------------------------------------------------------------------
# Text


def _package_version() -> str:
    return __version__


def _title(results: Results) -> str:
    if results.datasets_mode:
        return "Rarity report: " + " vs ".join(item.name for item in results.sets)
    real = _real(results).get("name") or "real"
    return (
        f"Rarity report: {len(results.sets)} set{'s' if len(results.sets) != 1 else ''} vs {real}"
    )


def _lede(results: Results) -> str:
    if results.datasets_mode:
        return (
            f"{len(results.sets)} datasets, each scored against its own manifold with its own "
            "k-NN sphere left out (leave-one-out), in one feature space. The dataset whose "
            "histogram sits further right is the more diverse."
        )
    real = _real(results)
    n_real = real.get("n")
    of = f" ({int(n_real):,} samples)" if isinstance(n_real, (int, float)) else ""
    return (
        f"{len(results.sets)} generated set{'s' if len(results.sets) != 1 else ''} scored against "
        f"the real manifold of {real.get('name') or 'the real set'}{of}. A set whose histogram "
        "sits further right makes rarer images."
    )


def _real(results: Results) -> dict[str, Any]:
    real = results.run.get("real")
    return real if isinstance(real, dict) else {}


def _method(results: Results) -> str:
    method = str(results.run.get("method") or "")
    if results.datasets_mode:
        if not method:
            method = "each dataset scored against its own manifold"
        if "leave-one-out" not in method:  # the method must say it, whatever run.json holds
            method += ", leave-one-out"
    elif not method:
        method = "generated sets scored against the real manifold"
    return method


def _histogram_caption(results: Results) -> str:
    text = (
        "Density-normalised histograms on common bins, over the in-manifold samples of each "
        "set (the legend gives how many)."
    )
    if results.reference_rarity is not None and not results.datasets_mode:
        text += (
            " Dashed: the real set's own rarity, each real sample scored against the other real "
            "samples' spheres (leave-one-out), as a reference."
        )
    return text


def _ecdf_caption(results: Results) -> str:
    text = (
        "Empirical cumulative distributions of the same scores (matplotlib's Axes.ecdf): at each "
        "rarity, the fraction of a set's in-manifold samples whose rarity is at most that. A "
        "curve further right is the rarer set; small shifts that histograms hide are plain in a "
        "CDF."
    )
    if results.reference_rarity is not None and not results.datasets_mode:
        text += " Dashed: the real set's own leave-one-out rarity."
    return text


def _gallery_note(results: Results) -> str:
    if not any(item.has_images for item in results.sets):
        return (
            "No galleries: the sets were given as features, without image paths. Every score is "
            "in the per-image table."
        )
    if results.datasets_mode:
        return (
            "Each image is shown beside its nearest other image of the same dataset and the "
            "image whose k-NN sphere gave its score (the smallest sphere that holds it, its own "
            "left out)."
        )
    return (
        "Each generated image is shown beside its nearest real image and the real image whose "
        "k-NN sphere gave its score (the smallest real sphere that holds it)."
    )


def _number(value: Any, digits: int = 4) -> str:
    if value is None or isinstance(value, bool):
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return f"{value:.{digits}g}"
    return str(value)


# ------------------------------------------------------------------------------------------
# Settings and summary


def _render_settings(results: Results) -> str:
    run = results.run
    rows = [
        _row("mode", f"<strong>{_e(results.mode)}</strong>"),
        _row("method", _e(_method(results))),
        _row("k", _e(run.get("k", "—"))),
    ]
    extractor = run.get("extractor")
    if isinstance(extractor, dict):
        parts = [
            f"<strong>{_e(extractor.get('name') or 'unnamed')}</strong>",
            *(
                f"{_e(label)}: <code>{_e(extractor[key])}</code>"
                for key, label in (
                    ("preprocessing", "preprocessing"),
                    ("weights_id", "weights"),
                    ("dim", "dimension"),
                )
                if extractor.get(key) is not None
            ),
        ]
        rows.append(_row("feature extractor", "<br>".join(parts)))
    else:
        rows.append(_row("feature extractor", "none recorded (features were given as files)"))
    real = _real(results)
    if real:
        rows.append(_row("real set", _describe_source(real)))
    elif results.datasets_mode:
        rows.append(_row("reference", "each dataset is its own reference (no separate real set)"))
    for item in results.sets:
        entry = next(
            (e for e in run["sets"] if isinstance(e, dict) and e.get("name") == item.name), {}
        )
        label = "dataset" if results.datasets_mode else "generated set"
        rows.append(_row(f"{label} {item.name}", _describe_source({**entry, "n": item.n})))
    rows += _statistics_rows(results)
    rows += run_rows(run)
    return "\n".join(rows)


def _describe_source(entry: Mapping[str, Any]) -> str:
    parts = []
    if entry.get("name") is not None:
        parts.append(f"<strong>{_e(entry['name'])}</strong>")
    if entry.get("n") is not None:
        text = f"{_number(entry['n'])} samples"
        n, drawn_from = _count(entry["n"]), _count(entry.get("subsampled_from"))
        if n is not None and drawn_from is not None and drawn_from > n:
            text = f"{_number(n)} of {_number(drawn_from)} samples, drawn at random"
        if entry.get("n_skipped"):
            text += f" ({_number(entry['n_skipped'])} unreadable, skipped)"
        parts.append(_e(text))
    if entry.get("source") is not None:
        kind = f" ({entry['kind']})" if entry.get("kind") else ""
        parts.append(f"<code>{_e(entry['source'])}</code>{_e(kind)}")
    if entry.get("fingerprint"):
        fingerprint = str(entry["fingerprint"])
        parts.append(f'fingerprint <code title="{_e(fingerprint)}">{_e(fingerprint[:12])}</code>')
    return " · ".join(parts)


def _render_summary(results: Results, rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows of the summary table; a value with an interval in its row (``<key>_ci``,
    validated by the reader) is followed by it: ``1.25 [1.1, 1.4]``."""
    lines = []
    level = _level_text(_bootstrap(results))
    for row in rows:
        name = row.get("name")
        cells = [f'<th scope="row">{_e(name if name is not None else "")}</th>']
        for spec in results.values:
            value = row.get(spec.key)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                value = None  # validated when read from summary.json; summary.csv may hold text
            text = value_text(value, spec, missing="—", grouping=True)
            title = ' title="not applicable"' if value is None else ""
            if value is not None and row.get(ci_key(spec.key)) is not None:
                text = with_interval(text, row, spec)
                title = f' title="{_e(level)} bootstrap interval in brackets"'
            cells.append(f'<td class="num"{title}>{_e(text)}</td>')
        lines.append("      <tr>" + "".join(cells) + "</tr>")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# Statistics: intervals, comparisons, stability, sizes
#
# The reader validates the summary rows with their intervals, the stability steps and the
# comparisons (names, sentences, numbers, intervals); not run.json["statistics"], whose values
# are used here only when of their type, so a damaged record reaches the page as text at most.

_LIMIT = 600  # characters of a recorded text shown


def _count(value: Any) -> int | None:
    """``value`` when it is a whole number >= 0 (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _text(value: Any, limit: int = _LIMIT) -> str | None:
    """A recorded text, printable and at most ``limit`` characters; None when not a string."""
    return shorten(printable(value), limit) if isinstance(value, str) else None


def _statistics(results: Results) -> Mapping[str, Any]:
    record = results.run.get("statistics")
    return record if isinstance(record, Mapping) else {}


def _bootstrap(results: Results) -> Mapping[str, Any] | None:
    record = _statistics(results).get("bootstrap")
    return record if isinstance(record, Mapping) else None


def _level(value: Any) -> float | None:
    level = finite_number(value)
    return level if level is not None and 0 < level < 1 else None


def _level_text(bootstrap: Mapping[str, Any] | None) -> str:
    level = _level(bootstrap.get("level")) if bootstrap is not None else None
    return f"{100 * level:g} %" if level is not None else "a"


def _intervals_note(results: Results, rows: Sequence[Mapping[str, Any]]) -> str:
    """What the intervals of the summary cover (``run.json["statistics"]["bootstrap"]``), and
    the values without one and why; empty for a run without intervals."""
    bootstrap = _bootstrap(results)
    shown = any(row.get(ci_key(spec.key)) is not None for row in rows for spec in results.values)
    if bootstrap is None:
        if not shown:
            return ""
        return (
            '  <p class="note intervals" id="intervals">Intervals in brackets: bootstrap '
            "intervals (run.json records no settings of the bootstrap).</p>"
        )
    method = _text(bootstrap.get("method"), 120) or "percentile bootstrap"
    text = f"Intervals in brackets: {_level_text(bootstrap)} {method}"
    resamples = _count(bootstrap.get("resamples"))
    if resamples is not None:
        text += f" over {resamples:,} resamples"
    seed = _count(bootstrap.get("seed"))
    if seed is not None:
        text += f" (seed {seed})"
    text += "."
    resampled = _text(bootstrap.get("resampled"))
    if resampled:
        text += f" Resampled: {resampled}."
    parts = [f'  <p class="note intervals" id="intervals">{_e(text)}</p>']
    missing = _no_interval(bootstrap.get("no_interval"))
    if missing:
        items = "".join(
            f"<li><strong>{_e(' and '.join(names))}</strong>"
            + (f": {_e(why)}" if why else "")
            + "</li>"
            for why, names in missing.items()
        )
        parts.append(f'  <div class="note no-interval">No interval for:<ul>{items}</ul></div>')
    return "\n".join(parts)


def _no_interval(record: Any) -> dict[str, list[str]]:
    """The values without an interval, grouped by why (``no_interval``: metric -> why)."""
    if isinstance(record, Mapping):
        pairs = list(record.items())
    elif isinstance(record, list):  # a list of names: no reasons
        pairs = [(name, "") for name in record]
    else:
        return {}
    grouped: dict[str, list[str]] = {}
    for name, why in pairs:
        label = _text(name, 80)
        if not label:
            continue
        reason = _text(why) or ""
        if reason.lower().startswith("no interval:"):
            reason = reason[len("no interval:") :].strip()
        grouped.setdefault(reason, []).append(label)
    return grouped


def _size_warning(results: Results) -> str:
    """In datasets mode, a warning when the datasets differ in size: leave-one-out rarity is
    comparable only at equal size (``--subsample N`` gives each the same)."""
    if not results.datasets_mode:
        return ""
    sizes = [(item.name, item.n) for item in results.sets]
    if len({n for _, n in sizes}) < 2:
        return ""
    listed = ", ".join(f"{shorten(name, 60)} {n:,}" for name, n in sizes)
    smallest = min(n for _, n in sizes if n > 0) if any(n > 0 for _, n in sizes) else 0
    rerun = (
        f" Rerun with <code>--subsample {smallest}</code> to score {smallest:,} samples of each."
        if smallest
        else " Rerun with <code>--subsample N</code> to score N samples of each."
    )
    return (
        '  <p class="warning size-warning" id="size-warning" role="alert"><strong>The datasets '
        f"differ in size</strong> ({_e(listed)}): k-NN radii shrink as a set grows, so "
        "leave-one-out rarity is comparable only between datasets of equal size."
        f"{rerun}</p>"
    )


def _statistics_rows(results: Results) -> list[str]:
    """Rows of the settings table for ``--subsample`` and ``--stability``."""
    record = _statistics(results)
    rows = []
    subsample = record.get("subsample")
    if isinstance(subsample, Mapping):
        n = _count(subsample.get("n"))
        text = f"{n:,} samples of each larger set" if n is not None else "recorded"
        seed = _count(subsample.get("seed"))
        if seed is not None:
            text += f", seed {seed}"
        how = _text(subsample.get("how"))
        rows.append(_row("subsample", _e(text) + (f"<br>{_e(how)}" if how else "")))
    stability = record.get("stability")
    if isinstance(stability, Mapping):
        how = _text(stability.get("how"))
        rows.append(_row("stability", _e(how or "recorded") + ' (<a href="#stability">table</a>)'))
    return rows


def _render_comparisons(results: Results) -> str:
    """The comparisons of the sets: each one's sentence, then their numbers in a table; empty
    when there are none (a run with one set)."""
    if not results.comparisons:
        return ""
    sentences = []
    rows = []
    levels = set()
    intervals = False
    for entry in results.comparisons:
        sentence = _text(entry.get("sentence"))
        if sentence:
            sentences.append(f"    <li>{_e(sentence)}</li>")
        level = _level(entry.get("level"))
        if level is not None:
            levels.add(level)
        cells = [
            f'<th scope="row">{_e(_text(entry.get("a"), 80) or "")}</th>',
            f'<td class="text">{_e(_text(entry.get("b"), 80) or "")}</td>',
        ]
        for key in ("n_a", "n_b"):
            cells.append(f'<td class="num">{_e(_number(_count(entry.get(key))))}</td>')
        for key in ("mean_difference", "median_difference"):
            intervals = intervals or entry.get(ci_key(key)) is not None
            cells.append(f'<td class="num">{_e(_difference(entry, key))}</td>')
        for key, digits in (("probability_a_rarer", 3), ("mann_whitney_u", 6), ("p_value", 2)):
            value = finite_number(entry.get(key))
            cells.append(f'<td class="num">{_e(_number(value, digits))}</td>')
        rows.append("      <tr>" + "".join(cells) + "</tr>")
    shown = f"{100 * levels.pop():g} %" if len(levels) == 1 else "bootstrap"
    ci = f" [{shown} CI]" if intervals else ""
    head = "".join(
        f'<th scope="col">{_e(heading)}</th>'
        for heading in (
            "first set",
            "second set",
            "n in manifold, first",
            "n in manifold, second",
            f"mean difference{ci}",
            f"median difference{ci}",
            "P(first rarer)",
            "Mann-Whitney U",
            "p-value",
        )
    )
    note = (
        "Each pair of sets: the differences of their in-manifold rarity (first set minus second)"
        + (" with their bootstrap intervals" if intervals else "")
        + ", and the two-sided Mann-Whitney U test of whether one set's rarity tends to be "
        "higher; P(first rarer) is the probability that a sample of the first set is rarer than "
        "one of the second."
    )
    return (
        _template("comparisons.html")
        .substitute(note=_e(note), sentences="\n".join(sentences), head=head, rows="\n".join(rows))
        .rstrip("\n")
    )


def _difference(entry: Mapping[str, Any], key: str) -> str:
    """A difference of a comparison with its interval (both validated by the reader):
    ``-0.313 [-0.401, -0.276]``."""
    value = finite_number(entry.get(key))
    if value is None:
        return "—"
    text = f"{value:.4g}"
    interval = entry.get(ci_key(key))
    if interval is not None:
        text += f" [{interval[0]:.4g}, {interval[1]:.4g}]"
    return text


def _render_stability(results: Results) -> str:
    """``--stability``: per set and fraction of the reference set, its size and the values the
    printed table shows (:func:`rarity_score.results_dir.layout.stability_table`); empty
    without it."""
    if not results.stability:
        return ""
    values: list[SetValue] = [v for v in table_values(results.mode) if v.kind != "count"]
    found: list[tuple[int, float, str]] = []  # (set's position in the run, fraction, row html)
    for step in results.stability:
        fraction = finite_number(step.get("fraction")) or 0.0
        for position, row in enumerate(step.get("sets") or ()):
            name = printable(str(row.get("name")))
            cells = [
                f'<th scope="row">{_e(name)}</th>',
                f'<td class="num">{_e(f"{100 * fraction:g} %")}</td>',
                f'<td class="num">{_e(_number(_count(row.get("n_reference"))))}</td>',
            ]
            for spec in values:
                value = finite_number(row.get(spec.key))
                cells.append(f'<td class="num">{_e(value_text(value, spec, missing="—"))}</td>')
            found.append((position, fraction, "      <tr>" + "".join(cells) + "</tr>"))
    found.sort(key=lambda item: (item[0], item[1]))  # by set in run order, fractions in order
    head = "".join(
        f'<th scope="col">{_e(heading)}</th>'
        for heading in ("set", "reference", "n ref", *(v.heading for v in values))
    )
    record = _statistics(results).get("stability")
    how = _text(record.get("how")) if isinstance(record, Mapping) else None
    first = how[:1].upper() + how[1:].rstrip(".") if how else ""
    intro = (
        (first or "The run repeated with a random part of the reference set")
        + ". Rarity values shrink as the reference set grows (k-NN radii do); what matters is "
        "whether the order of the sets and the fractions in the manifold hold."
    )
    return (
        _template("stability.html")
        .substitute(note=_e(intro), head=head, rows="\n".join(html_row for _, _, html_row in found))
        .rstrip("\n")
    )


# ------------------------------------------------------------------------------------------
# Galleries


_Plan = list[tuple[str, str, str, list[int]]]  # (kind, heading, counts, rows)


def _plan_galleries(
    results: Results, item: SetResult, thumbs: ThumbnailMaker, size: int, out_sample: int
) -> _Plan:
    """Choose the rows each gallery shows and ask for their thumbnails."""
    if not item.has_images or not item.source or item.n == 0:
        return []
    inside = np.flatnonzero(item.in_manifold & np.isfinite(item.rarity))
    # Stable sorts: equal scores keep row order, so the galleries are the same on every build.
    by_rarity = inside[np.argsort(item.rarity[inside], kind="stable")]
    rarest = by_rarity[::-1][:size].tolist() if size else []
    rarest_set = set(rarest)
    common = [row for row in by_rarity[:size].tolist() if row not in rarest_set] if size else []
    outside = np.flatnonzero(~item.in_manifold)
    if outside.size > out_sample:
        rng = np.random.default_rng(_OUT_SAMPLE_SEED)
        outside = np.sort(rng.choice(outside, size=out_sample, replace=False))
    sample = outside.tolist() if out_sample else []
    n_out = int((~item.in_manifold).sum())

    plan: _Plan = [
        (
            "rarest",
            "Rarest in-manifold images",
            f"highest rarity first · {len(rarest)} of {inside.size:,} in manifold",
            rarest,
        ),
        (
            "common",
            "Most common images",
            f"lowest rarity first · {len(common)} of {inside.size:,} in manifold",
            common,
        ),
        (
            "out",
            "Out of the manifold",
            f"no rarity score · a fixed sample of {len(sample)} of {n_out:,}",
            sample,
        ),
    ]
    plan += [
        _declared_gallery(item, gallery, position, size)
        for position, gallery in enumerate(results.galleries(item))
    ]
    group = f"set-{item.slug}"
    origin = _origin(item)
    ref_source, ref_group = _reference(results, item)
    ref_names = results.reference_names(item)
    for _, _, _, rows in plan:
        for row in rows:
            thumbs.request(group, origin, item.names[row], row)
            if ref_source is None or ref_names is None:
                continue
            for index in _neighbours(results, item, row):
                if 0 <= index < len(ref_names) and ref_names[index]:
                    thumbs.request(ref_group, ref_source, ref_names[index], index)
    return plan


def _declared_gallery(
    item: SetResult, gallery: Gallery, position: int, size: int
) -> tuple[str, str, str, list[int]]:
    """A gallery a metric declares: the samples whose ``column`` equals ``value``, in increasing
    ``order_by`` (missing values last, ties in row order), the first ``size`` of them."""
    flagged = np.flatnonzero(item.columns[gallery.column] == gallery.value)
    if gallery.order_by is not None:
        keys = np.asarray(item.columns[gallery.order_by], dtype=np.float64)[flagged]
        flagged = flagged[np.argsort(np.where(np.isnan(keys), np.inf, keys), kind="stable")]
    rows = flagged[:size].tolist()
    counts = f"{gallery.caption} · {len(rows)} of {flagged.size:,}"
    return f"declared-{position}", gallery.title, counts, rows


def _origin(item: SetResult) -> ImageOrigin:
    """The image source of ``item`` as the run recorded it (checked before any image is read)."""
    return ImageOrigin(item.source or "", item.kind, item.images_fingerprint)


def _reference(results: Results, item: SetResult) -> tuple[ImageOrigin | None, str]:
    """The image source the neighbour indices of ``item`` refer to, and its thumbnail group."""
    if results.datasets_mode:
        return _origin(item), f"set-{item.slug}"
    real = _real(results)
    if not results.run.get("real_has_images", False) or not real.get("source"):
        return None, _REAL_GROUP
    origin = ImageOrigin(str(real["source"]), real.get("kind"), real.get("images_fingerprint"))
    return origin, _REAL_GROUP


#: How a card names the neighbours of the index columns the package has always shown: the role
#: in datasets mode and in compare mode, and the slot's class. They come first, in this order;
#: any other declared index column follows, under its heading.
_CARD_NEIGHBOURS: dict[str, tuple[str, str, str]] = {
    "nearest_real_index": ("nearest other image", "nearest real image", "nearest"),
    "sphere_index": (
        "sphere that gave the score (same dataset)",
        "sphere that gave the score (real)",
        "sphere",
    ),
}


def _neighbour_slots(results: Results, item: SetResult, row: int) -> list[tuple[str, str, int]]:
    """The reference rows a card shows beside the sample, from the declared index columns the
    set holds: (role, slot class, row; -1 for none, as for a sample outside the manifold in a
    column that holds only in-manifold values)."""
    declared = [column for column in results.columns if column.kind == "index"]
    ordered = [c for name in _CARD_NEIGHBOURS for c in declared if c.name == name]
    ordered += [c for c in declared if c.name not in _CARD_NEIGHBOURS]
    inside = bool(item.in_manifold[row])
    found = []
    for column in ordered:
        values = item.columns.get(column.name)
        if values is None:
            continue
        known = _CARD_NEIGHBOURS.get(column.name)
        if known is not None:
            role, role_class = known[0] if results.datasets_mode else known[1], known[2]
        else:
            role = _table_column(results, column)["label"]
            role_class = column.name.replace("_", "-")
        index = int(values[row]) if inside or not column.only_in_manifold else -1
        found.append((role, role_class, index))
    return found


def _neighbours(results: Results, item: SetResult, row: int) -> list[int]:
    return [index for _, _, index in _neighbour_slots(results, item, row) if index >= 0]


def _render_set(results: Results, item: SetResult, plan: _Plan, thumbs: ThumbnailMaker) -> str:
    n_in = int(item.in_manifold.sum())
    counts = f"{item.n:,} samples · {n_in:,} in manifold · {item.n - n_in:,} out"
    if item.n == 0:
        body = '  <p class="note">This set is empty.</p>'
    elif not item.has_images or not item.source:
        body = (
            '  <p class="note no-images">Feature-only set: no image paths were saved with it, so '
            "there are no galleries. Every score is in the per-image table below.</p>"
        )
    else:
        body = "\n".join(
            _template("gallery.html")
            .substitute(
                kind=kind,
                heading=_e(heading),
                counts=_e(count_text),
                cards="\n".join(_render_card(results, item, row, thumbs) for row in rows)
                or '      <p class="note">None.</p>',
            )
            .rstrip("\n")
            for kind, heading, count_text, rows in plan
        )
    return (
        _template("set.html")
        .substitute(slug=_e(item.slug), name=_e(item.name), counts=_e(counts), body=body)
        .rstrip("\n")
    )


def _render_card(results: Results, item: SetResult, row: int, thumbs: ThumbnailMaker) -> str:
    group = f"set-{item.slug}"
    inside = bool(item.in_manifold[row])
    slots = [
        _slot(
            thumbs.get(thumbs.request(group, _origin(item), item.names[row], row)),
            "generated" if not results.datasets_mode else "image",
            "subject",
            item.names[row],
        )
    ]
    ref_source, ref_group = _reference(results, item)
    ref_names = results.reference_names(item)
    for role, role_class, index in _neighbour_slots(results, item, row):
        if index < 0:
            none = "in no sphere" if role_class in ("nearest", "sphere") else "none"
            slots.append(_slot(Thumb(error=none), role, role_class, "—"))
            continue
        name = ref_names[index] if ref_names is not None and index < len(ref_names) else ""
        label = name or f"row {index}"
        if ref_source is None:
            why = "reference given as features, no image"
            slots.append(_slot(Thumb(error=why), role, role_class, label))
        elif not name:
            slots.append(_slot(Thumb(error="name not saved"), role, role_class, label))
        else:
            thumb = thumbs.get(thumbs.request(ref_group, ref_source, name, index))
            slots.append(_slot(thumb, role, role_class, label))

    values = []
    for column in results.columns:  # each value of the sample (neighbours are the slots)
        array = item.columns.get(column.name)
        if array is None or column.kind == "index" or column.name == "in_manifold":
            continue
        if column.only_in_manifold and not inside:
            values.append((column.heading, "out of manifold"))
        elif column.kind == "bool":
            values.append((column.heading, "yes" if array[row] else "no"))
        elif column.kind == "float" and not math.isnan(float(array[row])):
            values.append((column.heading, _number(float(array[row]), 5)))
        elif column.kind == "int":
            values.append((column.heading, _number(int(array[row]))))
    values.append(("row", str(row)))
    return (
        _template("card.html")
        .substitute(
            state="inside" if inside else "outside",
            row=row,
            slots="\n".join(slots),
            values="".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in values),
        )
        .rstrip("\n")
    )


def _slot(thumb: Thumb, role: str, role_class: str, name: str) -> str:
    if thumb.path is not None:
        picture = (
            f'<img src="{_e(thumb.path)}" width="{thumb.width}" height="{thumb.height}" '
            f'alt="{_e(role)}: {_e(name)}" decoding="async">'
        )
    else:
        picture = f'<span class="missing" title="{_e(thumb.error)}">{_e(thumb.error)}</span>'
    return (
        _template("slot.html")
        .substitute(picture=picture, role=_e(role), role_class=role_class, name=_e(name))
        .rstrip("\n")
    )


# ------------------------------------------------------------------------------------------
# Data files of the per-image table


def _write_js(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _js_strings(values: Sequence[str]) -> str:
    return _js_json(list(values))


def _js_floats(values: np.ndarray) -> str:
    """A JavaScript array literal of floats, 7 significant digits (enough to sort and show)."""
    return "[" + ",".join(map(_js_float, values.tolist())) + "]"


def _js_float(value: float) -> str:
    if math.isfinite(value):
        return f"{value:.7g}"
    if math.isnan(value):
        return "null"
    return "Infinity" if value > 0 else "-Infinity"


def _js_ints(values: Iterable[int]) -> str:
    return "[" + ",".join(str(int(value)) for value in values) + "]"


#: How the page's table shows and sorts each kind of column.
_JS_KINDS = {"float": "float", "int": "int", "bool": "flag", "index": "ref"}


def _set_data_js(results: Results, item: SetResult) -> str:
    """One set's data file: its rows by column, and the table's columns (key, heading, kind;
    an index column is shown as the name of the row it points at), from the declarations."""
    inside = item.in_manifold
    columns: dict[str, str] = {"name": _js_strings(item.names)}
    table: list[dict[str, str]] = []
    for column in results.columns:
        values = item.columns.get(column.name)
        if values is None:
            continue
        if column.kind == "float":
            shown = np.where(inside, values, np.nan) if column.only_in_manifold else values
            if np.isnan(shown).all() and not (column.only_in_manifold or column.always_written):
                # Nothing to show (realism in a leave-one-out run). A column missing only for the
                # samples out of the manifold (rarity) is written even when all are out: the
                # table's filters read it.
                continue
            columns[column.name] = _js_floats(shown)
        elif column.kind == "bool":
            columns[column.name] = _js_ints(values.astype(np.int8).tolist())
        else:
            shown = np.where(inside, values, -1) if column.only_in_manifold else values
            columns[column.name] = _js_ints(shown.tolist())
        table.append(_table_column(results, column))
    reference = "self" if results.datasets_mode else ("real" if results.real_names else "none")
    body = ",\n".join(f"{json.dumps(key)}: {value}" for key, value in columns.items())
    slug = json.dumps(item.slug)
    return (
        "// Per-image rows of one set, for the report's table (loaded on demand).\n"
        "window.RARITY_REPORT_DATA = window.RARITY_REPORT_DATA || {};\n"
        f"window.RARITY_REPORT_DATA[{slug}] = {{\n"
        f'"n": {item.n}, "reference": {json.dumps(reference)}, '
        f'"table": {_js_json(table)}, "columns": {{\n{body}\n}}}};\n'
    )


def _table_column(results: Results, column: Column) -> dict[str, str]:
    """The page's description of one column of the table."""
    heading = column.heading
    if column.kind != "index":
        return {"key": column.name, "label": heading, "kind": _JS_KINDS[column.kind]}
    if results.datasets_mode:  # the rows pointed at are other samples of the same dataset
        heading = heading.replace("real", "other")
    key = column.names_column or f"{column.name}_name"
    return {"key": key, "label": heading, "kind": "ref", "from": column.name}


def _js_json(value: Any) -> str:
    # JSON is JavaScript; "<" is escaped too so that the text stays inert even if someone pastes
    # it into an inline <script>.
    return json.dumps(value, ensure_ascii=True).replace("<", "\\u003c")
