"""Build the HTML report of a ``rarity spaces`` output (``docs/dev/report-contract.md``).

The report is a folder ``OUT/report/`` that opens straight from disk (``file://``), with no
script: ``index.html``, ``report.css`` and ``spaces.css`` (copied from this package),
``plots/`` (PNGs drawn with matplotlib) and ``thumbs/`` (thumbnails of the shown images only).
It reads only the saved output, through :func:`rarity_score.spaces.output.load_spaces`; nothing
is recomputed. The page holds

- the header: the feature spaces (name, extractor and layer, preprocessing, dimension, k, real
  samples, a random subset's whole size, the bootstrap intervals its results directory holds),
  the sets (a random subset's whole size too), and what is compared and how (ranks, not
  values); the output's warnings (``run.json["warnings"]``: real sets of different sizes,
  different k) as rows of class ``warning`` of the spaces table and of the settings;
- per set: the agreement table (the rows of ``summary.json`` for that set), one scatter of the
  rarity percentiles for each pair of spaces (the samples in the manifold in both; the saved
  correlations in the title), and the histograms of rarity in each space's own units, one axis
  per space;
- per set, the galleries below, each card showing the sample's image and, for each space, its
  nearest real image in that space (``nearest_real_index`` of that space, looked up in the real
  set's names of that space; a placeholder says why when the names or the images are not
  available or not verified) with the space's name, the sample's rarity and percentile there.
  Feature-only sets (no images) get the same galleries as names, without thumbnails.

Gallery selection (``GALLERY_SIZE`` = 8 samples each, from the percentiles of
``sets/<slug>.npz``; a sample "in a space's manifold" has a percentile there):

- "rare in A, common in B", for each ordered pair (A, B) of distinct spaces, in run order: the
  samples in the manifold in both A and B with percentile_A > percentile_B, largest
  percentile_A - percentile_B first;
- "rare in every space": the samples in the manifold of every space, largest minimum percentile
  over the spaces first;
- "common in every space": the same samples, smallest maximum percentile first.

Ties keep row order (lower row first), so a rebuild shows the same cards. The two "every
space" galleries are chosen independently (a very small set may show a sample in both).

Images are opened only from the source the run recorded, after its fingerprint matched
(:mod:`rarity_score.report.thumbnails`); thumbnail and plot files are named by numbers, so no
name from the output reaches the file system. Every name (sets, spaces, images, paths, the
command) is HTML-escaped here.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rarity_score._version import __version__
from rarity_score.io import publish
from rarity_score.io.names import printable, shorten
from rarity_score.io.run_record import IMAGE_KINDS
from rarity_score.report.folder import check_replaceable, publish_report
from rarity_score.report.page import escape as _e
from rarity_score.report.page import page_head, run_rows
from rarity_score.report.page import setting_row as _row
from rarity_score.report.page import template as _template
from rarity_score.report.plots import (
    require_matplotlib,
    spaces_histograms_png,
    spaces_scatter_png,
)
from rarity_score.report.thumbnails import ImageOrigin, Thumb, ThumbnailMaker
from rarity_score.spaces.output import load_spaces
from rarity_score.spaces.text import interval_words

if TYPE_CHECKING:
    from rarity_score.spaces.output import SpaceRecord, SpacesResults, SpacesSet

__all__ = ["GALLERY_SIZE", "build_spaces_report"]

logger = logging.getLogger(__name__)

#: Samples in each gallery of the spaces report.
GALLERY_SIZE = 8

_STATIC_FILES = ("report.css", "spaces.css")
_STYLESHEETS = _STATIC_FILES
_DEFAULT_FRACTION = 0.1  # what run.json["fraction"] holds today (the rarest/most common 10 %)


def build_spaces_report(folder: str | os.PathLike[str]) -> Path:
    """Build ``FOLDER/report/`` from a ``rarity spaces`` output; return its ``index.html``.

    Reads only what the output holds (``run.json``, ``summary.json``, ``sets/*.npz``, the real
    names of the per-space results directories; through
    :func:`rarity_score.spaces.output.load_spaces`) and the images its sources point to, for
    thumbnails of the shown images. The folder is built beside any old ``report/`` and swapped
    in when complete; an old one is replaced only when it holds exactly the files
    ``run.json["files"]`` lists for it (then the list is updated).

    Raises:
        ReportError: the report cannot be written into ``folder`` (or an old one is not ours).
        MissingDependency: matplotlib (for the plots) is not installed; an ImportError, raised
            before anything is written.
        The reader's errors when ``folder`` is not a readable spaces output.
    """
    results = load_spaces(folder)
    require_matplotlib()  # the plots are part of the report: nothing is built without them
    root = Path(results.root)
    publish.clean_stale()  # what a killed run (or rebuild) left beside it
    manifest = check_replaceable(root, results.run)

    return publish_report(root, lambda staging: _write_report(results, staging), manifest)


# ------------------------------------------------------------------------------------------
# Gallery selection


@dataclass(frozen=True)
class _Gallery:
    kind: str  # data-gallery attribute: "rare-0-common-1", "rare-everywhere", "common-everywhere"
    heading: str
    counts: str
    rows: list[int]


def _top(rows: np.ndarray, keys: np.ndarray, size: int) -> list[int]:
    """The first ``size`` of ``rows`` by increasing ``keys``, ties in row order (``rows`` is
    increasing, and the sort is stable)."""
    return rows[np.argsort(keys, kind="stable")][:size].tolist()


def _select(results: SpacesResults, item: SpacesSet, size: int = GALLERY_SIZE) -> list[_Gallery]:
    """The galleries of one set, by the rules of the module docstring."""
    percentile = np.asarray(item.percentile, dtype=np.float64)
    inside = np.asarray(item.in_manifold, dtype=bool) & np.isfinite(percentile)
    names = [space.name for space in results.spaces]
    galleries = []
    for a, name_a in enumerate(names):
        for b, name_b in enumerate(names):
            if a == b:
                continue
            both = inside[:, a] & inside[:, b]
            difference = np.where(both, percentile[:, a] - percentile[:, b], np.nan)
            rows = np.flatnonzero(both & (difference > 0))
            chosen = _top(rows, -difference[rows], size)
            galleries.append(
                _Gallery(
                    f"rare-{a}-common-{b}",
                    f"Rare in {name_a}, common in {name_b}",
                    f"largest percentile difference first · {len(chosen)} of {rows.size:,} "
                    f"samples rarer in {name_a} than in {name_b} (of {int(both.sum()):,} in both "
                    "manifolds)",
                    chosen,
                )
            )
    every = np.flatnonzero(inside.all(axis=1)) if names else np.zeros(0, dtype=np.int64)
    lowest = percentile[every].min(axis=1) if every.size else np.zeros(0)
    highest = percentile[every].max(axis=1) if every.size else np.zeros(0)
    rare = _top(every, -lowest, size)
    common = _top(every, highest, size)
    galleries += [
        _Gallery(
            "rare-everywhere",
            "Rare in every space",
            f"largest lowest percentile first · {len(rare)} of {every.size:,} samples in every "
            "space's manifold",
            rare,
        ),
        _Gallery(
            "common-everywhere",
            "Common in every space",
            f"smallest highest percentile first · {len(common)} of {every.size:,} samples in "
            "every space's manifold",
            common,
        ),
    ]
    return galleries


# ------------------------------------------------------------------------------------------
# Writing


@dataclass
class _Images:
    """Thumbnail requests of the report: files named by group and number, never by a name."""

    maker: ThumbnailMaker
    real_groups: dict[ImageOrigin, str] = field(default_factory=dict)
    numbers: dict[tuple[str, str], int] = field(default_factory=dict)

    def subject(self, position: int, item: SpacesSet, row: int) -> Any:
        return self.maker.request(f"set-{position}", _set_origin(item), item.names[row], row)

    def real(self, origin: ImageOrigin, name: str) -> Any:
        group = self.real_groups.setdefault(origin, f"real-{len(self.real_groups)}")
        # A number per name within the group: the real sets of two spaces may list the same
        # images in other orders, so the real row cannot name the file.
        number = self.numbers.setdefault((group, name), len(self.numbers))
        return self.maker.request(group, origin, name, number)


def _has_images(item: SpacesSet) -> bool:
    return bool(item.source) and item.kind in IMAGE_KINDS


def _set_origin(item: SpacesSet) -> ImageOrigin:
    return ImageOrigin(str(item.source or ""), item.kind, item.images_fingerprint)


def _real_origin(space: SpaceRecord) -> ImageOrigin | None:
    if space.real_origin is None:
        return None
    source, kind, fingerprint = space.real_origin
    if not source or (kind is not None and kind not in IMAGE_KINDS):
        return None  # given as features: no image to show (placeholders say so, no warning)
    return ImageOrigin(str(source), kind, fingerprint)


def _write_report(results: SpacesResults, folder: Path) -> None:
    static = resources.files("rarity_score.report") / "static"
    for name in _STATIC_FILES:
        (folder / name).write_bytes((static / name).read_bytes())
    (folder / "plots").mkdir()

    images = _Images(ThumbnailMaker(folder))
    plans = [_select(results, item) for item in results.sets]
    for position, (item, plan) in enumerate(zip(results.sets, plans, strict=True)):
        for gallery in plan:
            for row in gallery.rows:
                _request_card(results, position, item, row, images)
    images.maker.make()
    for source, reason in images.maker.refused().items():
        logger.warning("report: no thumbnails of %s (%s)", shorten(source, 120), reason)

    sections = "\n".join(
        _render_set(results, position, item, plan, images, folder)
        for position, (item, plan) in enumerate(zip(results.sets, plans, strict=True))
    )
    version = str(results.run.get("package_version") or __version__)
    page = _template("spaces-index.html").substitute(
        head=page_head(version=version, title=_title(results), stylesheets=_STYLESHEETS),
        version=_e(version),
        title=_e(_title(results)),
        lede=_e(_lede(results)),
        nav="\n".join(
            f'    <a href="#set-{_e(item.slug)}">{_e(item.name)}</a>' for item in results.sets
        ),
        method=_e(_method(results)),
        spaces_rows=_render_spaces(results),
        sets_rows=_render_sets(results),
        settings=_render_settings(results),
        sets=sections,
    )
    (folder / "index.html").write_text(page, encoding="utf-8")


def _request_card(
    results: SpacesResults, position: int, item: SpacesSet, row: int, images: _Images
) -> None:
    if not _has_images(item):
        return
    images.subject(position, item, row)
    for s, space in enumerate(results.spaces):
        origin = _real_origin(space)
        name = _real_name(space, int(item.nearest_real_index[row, s]))
        if origin is not None and name:
            images.real(origin, name)


def _real_name(space: SpaceRecord, index: int) -> str | None:
    """The name of real row ``index`` of ``space``, or None when it is not known."""
    names = space.real_names
    if index < 0 or names is None or index >= len(names):
        return None
    return names[index] or None


# ------------------------------------------------------------------------------------------
# Text


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' if n != 1 else ''}"


def _fraction(results: SpacesResults) -> float:
    value = results.run.get("fraction", _DEFAULT_FRACTION)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        return _DEFAULT_FRACTION
    return float(value)


def _title(results: SpacesResults) -> str:
    return "Feature spaces compared: " + ", ".join(space.name for space in results.spaces)


def _lede(results: SpacesResults) -> str:
    spaces = _plural(len(results.spaces), "feature space")
    return (
        f"{_plural(len(results.sets), 'set')} scored in {spaces}: where do the spaces agree on "
        "which images are rare, and where not?"
    )


def _method(results: SpacesResults) -> str:
    percent = f"{100 * _fraction(results):g} %"
    return (
        "Rarity scores are distances in each space's own units, so the spaces are compared by "
        "ranks, not values. For each set and each pair of spaces: Spearman's and Kendall's "
        "(tau-b) rank correlations of rarity over the samples in the manifold in both spaces "
        "(n in both); the agreement of the in-manifold flags (the 2 x 2 counts: in both, in the "
        "first only, in the second only, in neither; and Cohen's kappa); and the overlap "
        f"(Jaccard index) of the rarest {percent} and of the most common {percent} of the "
        "samples in both manifolds, one set per space. A sample's percentile in a space is its "
        "rank among the set's in-manifold samples in that space: 0 is the most common, 100 the "
        "rarest; it has none where it is out of the manifold. A dash marks a value that is "
        "undefined (too few samples, or a constant side)."
    )


def _number(value: Any, digits: int = 3) -> str:
    """A summary value: a count with thousands separators, a float to ``digits`` decimals,
    a dash for None (undefined)."""
    if value is None or isinstance(value, bool):
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.{digits}f}"
    return printable(str(value))


def _subset_html(n: Any, whole: int | None) -> str:
    """A size, with the size of the whole set when it is a random subset (``--subsample``)."""
    text = _e(_number(n))
    if whole is None:
        return text
    return f'{text} <span class="subset">of {_e(_number(whole))} (a random subset)</span>'


def _render_warnings(results: SpacesResults, columns: int) -> list[str]:
    return [
        f'      <tr class="warning"><td class="text warning" colspan="{columns}">'
        f"<strong>Warning:</strong> {_e(warning)}</td></tr>"
        for warning in results.warnings
    ]


def _render_spaces(results: SpacesResults) -> str:
    lines = []
    sizes = {space.n_real for space in results.spaces if space.n_real is not None}
    for space in results.spaces:
        source, kind, _ = space.real_origin or (None, None, None)
        n_class = "num warning" if len(sizes) > 1 else "num"
        intervals = interval_words(space.bootstrap)
        held = f'<br><span class="intervals">{_e(intervals)}</span>' if intervals else ""
        cells = [
            f'<th scope="row">{_e(space.name)}</th>',
            '<td class="text">'
            + _e(space.extractor or "not recorded (features given as files)")
            + "</td>",
            '<td class="text">' + _e(space.preprocessing or "—") + "</td>",
            '<td class="text">' + _e(space.weights_id or "—") + "</td>",
            f'<td class="num">{_e(_number(space.dim))}</td>',
            f'<td class="num">{_e(_number(space.k))}</td>',
            f'<td class="{n_class}">'
            f"{_subset_html(space.n_real, space.n_real_subsampled_from)}</td>",
            f'<td class="text"><code>{_e(space.results)}</code>{held}</td>',
            f'<td class="text">{_source_html(source, kind)}</td>',
        ]
        lines.append("      <tr>" + "".join(cells) + "</tr>")
    return "\n".join(lines + _render_warnings(results, 9))


def _render_sets(results: SpacesResults) -> str:
    lines = []
    for item in results.sets:
        fingerprint = "—"
        if item.images_fingerprint:
            text = str(item.images_fingerprint)
            fingerprint = f'<code title="{_e(text)}">{_e(text[:12])}</code>'
        cells = [
            f'<th scope="row"><a href="#set-{_e(item.slug)}">{_e(item.name)}</a></th>',
            f'<td class="num">{_subset_html(int(item.n), item.subsampled_from)}</td>',
            f'<td class="text">{_e(_matched_by(item))}</td>',
            f'<td class="text">{_source_html(item.source, item.kind)}</td>',
            f'<td class="text">{fingerprint}</td>',
        ]
        lines.append("      <tr>" + "".join(cells) + "</tr>")
    return "\n".join(lines)


def _source_html(source: str | None, kind: str | None) -> str:
    """A recorded source as a cell shows it: the path and its kind; a dash for none."""
    if not source:
        return "—"
    shown_kind = f" ({kind})" if kind else ""
    return f"<code>{_e(source)}</code>{_e(shown_kind)}"


def _matched_by(item: SpacesSet) -> str:
    return {"name": "matched by image name", "row": "matched by row"}.get(item.matched_by, "—")


def _render_settings(results: SpacesResults) -> str:
    run = results.run
    rows = [
        _row("mode", "<strong>spaces</strong>"),
        _row("k", _e(run.get("k", "—"))),
        _row("rarest / most common", _e(f"{100 * _fraction(results):g} % of the samples in both")),
        *(
            _row("warning", f'<span class="warning">{_e(warning)}</span>')
            for warning in results.warnings
        ),
        *run_rows(run),
    ]
    return "\n".join(rows)


# ------------------------------------------------------------------------------------------
# One set: agreement table, plots, galleries

#: The agreement table's columns: (summary key, heading, decimals; None for a count).
_AGREEMENT: tuple[tuple[str, str, int | None], ...] = (
    ("n_in_both", "n in both", None),
    ("spearman", "Spearman", 3),
    ("kendall", "Kendall", 3),
    ("in_in", "in / in", None),
    ("in_out", "in / out", None),
    ("out_in", "out / in", None),
    ("out_out", "out / out", None),
    ("kappa", "kappa", 3),
    ("jaccard_rarest", "Jaccard rarest", 3),
    ("jaccard_common", "Jaccard common", 3),
)


def _summary_rows(results: SpacesResults, item: SpacesSet) -> list[dict[str, Any]]:
    return [row for row in results.summary if isinstance(row, dict) and row.get("set") == item.name]


def _pair_row(rows: Sequence[dict[str, Any]], a: str, b: str) -> dict[str, Any] | None:
    for row in rows:
        if row.get("space_a") == a and row.get("space_b") == b:
            return row
    return None


def _render_agreement(results: SpacesResults, item: SpacesSet) -> str:
    percent = f"{100 * _fraction(results):g} %"
    head = '<th scope="col">space a</th><th scope="col">space b</th>' + "".join(
        f'<th scope="col" data-col="{key}">'
        f"{_e(heading if not key.startswith('jaccard') else f'{heading} {percent}')}</th>"
        for key, heading, _ in _AGREEMENT
    )
    lines = []
    for row in _summary_rows(results, item):
        cells = [
            f'<th scope="row">{_e(row.get("space_a", ""))}</th>',
            f'<th scope="row">{_e(row.get("space_b", ""))}</th>',
        ]
        for key, _, digits in _AGREEMENT:
            value = row.get(key)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                value = None
            elif digits is not None:
                value = float(value)
            text = _number(value, digits or 0)
            title = ' title="undefined"' if value is None else ""
            cells.append(f'<td class="num" data-col="{key}"{title}>{_e(text)}</td>')
        lines.append("        <tr>" + "".join(cells) + "</tr>")
    if not lines:
        lines.append(f'        <tr><td colspan="{len(_AGREEMENT) + 2}">No summary rows.</td></tr>')
    return (
        '  <div class="table-wrap">\n  <table class="summary agreement">\n'
        f"    <thead><tr>{head}</tr></thead>\n    <tbody>\n"
        + "\n".join(lines)
        + "\n    </tbody>\n  </table>\n  </div>"
    )


def _render_plots(results: SpacesResults, position: int, item: SpacesSet, folder: Path) -> str:
    rows = _summary_rows(results, item)
    percentile = np.asarray(item.percentile, dtype=np.float64)
    inside = np.asarray(item.in_manifold, dtype=bool) & np.isfinite(percentile)
    figures = []
    spaces = results.spaces
    for a in range(len(spaces)):
        for b in range(a + 1, len(spaces)):
            both = inside[:, a] & inside[:, b]
            row = _pair_row(rows, spaces[a].name, spaces[b].name) or {}
            title = (
                f"Spearman {_number(_float(row.get('spearman')))}, "
                f"Kendall {_number(_float(row.get('kendall')))} (n = {int(both.sum()):,} in both)"
            )
            png = spaces_scatter_png(
                percentile[both, a],
                percentile[both, b],
                x_label=f"percentile in {spaces[a].name}",
                y_label=f"percentile in {spaces[b].name}",
                title=title,
            )
            file = f"plots/set-{position}-scatter-{a}-{b}.png"
            (folder / file).write_bytes(png)
            alt = f"Rarity percentiles of {item.name}: {spaces[a].name} against {spaces[b].name}"
            figures.append(
                f'    <figure class="scatter" data-pair="{a}-{b}"><img src="{file}" '
                f'alt="{_e(alt)}"><figcaption>{_e(spaces[a].name)} vs {_e(spaces[b].name)}: '
                f"{_e(title)}</figcaption></figure>"
            )
    rarity = np.asarray(item.rarity, dtype=np.float64)
    panels = []
    for s, space in enumerate(spaces):
        keep = np.asarray(item.in_manifold, dtype=bool)[:, s] & np.isfinite(rarity[:, s])
        panels.append((space.name, rarity[keep, s], int(item.n)))
    file = f"plots/set-{position}-histograms.png"
    (folder / file).write_bytes(spaces_histograms_png(panels))
    scatter = (
        '  <h4>Rarity percentiles, pair by pair <span class="counts">samples in the manifold in '
        "both spaces · the diagonal is perfect agreement</span></h4>\n"
        '  <div class="scatters">\n' + "\n".join(figures) + "\n  </div>"
        if figures
        else ""
    )
    histograms = (
        '  <h4>Rarity in each space\'s own units <span class="counts">in-manifold samples; the '
        "axes are not comparable across spaces</span></h4>\n"
        f'  <figure class="histogram spaces-histograms"><img src="{file}" '
        f'alt="{_e(f"Rarity histograms of {item.name}, one per space")}"></figure>'
    )
    return scatter + "\n" + histograms


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _render_set(
    results: SpacesResults,
    position: int,
    item: SpacesSet,
    plan: list[_Gallery],
    images: _Images,
    folder: Path,
) -> str:
    whole = item.subsampled_from
    subset = f" (a random subset of {whole:,})" if whole is not None else ""
    counts = f"{item.n:,} samples{subset} · {_matched_by(item)}"
    parts = [
        "  <h3>Agreement of the spaces</h3>",
        _render_agreement(results, item),
        _render_plots(results, position, item, folder),
        "  <h3>Galleries</h3>",
    ]
    if item.n == 0:
        parts.append('  <p class="note">This set is empty.</p>')
    else:
        if not _has_images(item):
            parts.append(
                '  <p class="note no-images">Feature-only set: no images were saved with it, so '
                "the galleries list names, without thumbnails.</p>"
            )
        else:
            parts.append(
                '  <p class="note">Each card: the image, then for each space its nearest real '
                "image in that space, with the image's rarity and percentile there.</p>"
            )
        for gallery in plan:
            cards = "\n".join(
                _render_card(results, position, item, row, images) for row in gallery.rows
            )
            parts.append(
                _template("spaces-gallery.html")
                .substitute(
                    kind=_e(gallery.kind),
                    heading=_e(gallery.heading),
                    counts=_e(gallery.counts),
                    cards=cards or '      <p class="note">None.</p>',
                )
                .rstrip("\n")
            )
    return (
        _template("spaces-set.html")
        .substitute(
            slug=_e(item.slug),
            position=position,
            name=_e(item.name),
            counts=_e(counts),
            body="\n".join(parts),
        )
        .rstrip("\n")
    )


def _picture(thumb: Thumb, alt: str) -> str:
    if thumb.path is not None:
        return (
            f'<img src="{_e(thumb.path)}" width="{thumb.width}" height="{thumb.height}" '
            f'alt="{_e(alt)}" decoding="async">'
        )
    return f'<span class="missing" title="{_e(thumb.error)}">{_e(thumb.error)}</span>'


def _frame(picture: str) -> str:
    return f'            <div class="frame">{picture}</div>\n'


def _render_card(
    results: SpacesResults, position: int, item: SpacesSet, row: int, images: _Images
) -> str:
    with_images = _has_images(item)
    name = item.names[row]
    slots = []
    if with_images:
        thumb = images.maker.get(images.subject(position, item, row))
        slots.append(
            _template("spaces-slot.html")
            .substitute(
                kind="subject",
                space=-1,
                frame=_frame(_picture(thumb, f"image: {name}")),
                heading="image",
                role="this sample",
                ref=_e(name),
                values="",
            )
            .rstrip("\n")
        )
    rarity = np.asarray(item.rarity, dtype=np.float64)
    percentile = np.asarray(item.percentile, dtype=np.float64)
    for s, space in enumerate(results.spaces):
        index = int(item.nearest_real_index[row, s])
        real_name = _real_name(space, index)
        label = real_name or (f"row {index}" if index >= 0 else "—")
        frame = ""
        if with_images:
            origin = _real_origin(space)
            if index < 0:
                thumb = Thumb(error="nearest real image unknown")
            elif origin is None:
                thumb = Thumb(error="real set given as features, no image")
            elif space.real_names is None:
                thumb = Thumb(error="names of the real set not available")
            elif real_name is None:
                thumb = Thumb(error="name not saved")
            else:
                thumb = images.maker.get(images.real(origin, real_name))
            frame = _frame(_picture(thumb, f"nearest real image in {space.name}: {label}"))
        inside = bool(item.in_manifold[row, s]) and math.isfinite(percentile[row, s])
        if inside:
            values = (
                f"<dt>rarity</dt><dd>{_e(f'{rarity[row, s]:.4g}')}</dd>"
                f"<dt>percentile</dt><dd>{_e(f'{percentile[row, s]:.1f}')}</dd>"
            )
        else:
            values = "<dt>rarity</dt><dd>out of manifold</dd>"
        slots.append(
            _template("spaces-slot.html")
            .substitute(
                kind="inside" if inside else "outside",
                space=s,
                frame=frame,
                heading=_e(space.name),
                role="nearest real",
                ref=_e(label),
                values=values,
            )
            .rstrip("\n")
        )
    return (
        _template("spaces-card.html")
        .substitute(
            images="with-images" if with_images else "names-only",
            row=row,
            name=_e(name),
            slots="\n".join(slots),
        )
        .rstrip("\n")
    )
