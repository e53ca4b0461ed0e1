"""The overlaid rarity histograms of a results directory, drawn with matplotlib; and the plots of
the ``rarity spaces`` report (:func:`spaces_scatter_png`, :func:`spaces_histograms_png`).

In the spirit of the paper's truncation and dataset figures: one density-normalised curve per
set on common bins, so that a set whose histogram sits further right makes rarer images. In
compare mode the real set's own leave-one-out rarity is drawn as a dashed reference curve.
Only in-manifold samples have a score; the legend says how many each curve holds. Beside it the
report draws the empirical CDFs of the same curves (:func:`ecdf_png`, matplotlib's own
``Axes.ecdf``): small shifts that histograms hide are plain in a CDF.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from rarity_score._errors import require
from rarity_score.io.atomic import atomic_write_bytes
from rarity_score.io.names import printable, shorten
from rarity_score.results_dir import Results, load_results

__all__ = [
    "ecdf_png",
    "histogram_png",
    "plot_histograms",
    "require_matplotlib",
    "spaces_histograms_png",
    "spaces_scatter_png",
]

_MAX_BINS = 60


def plot_histograms(results_dir: str | os.PathLike[str], out_png: str | os.PathLike[str]) -> Path:
    """Draw the overlaid rarity histograms of ``results_dir`` and write them to ``out_png``.

    The file is written atomically; its folder must exist. Raises
    :class:`~rarity_score.features.MissingDependency` when matplotlib is not installed and
    :class:`~rarity_score.report.ReportError` when the results directory cannot be read.
    :func:`~rarity_score.report.build_report` draws the report's own copy through
    :func:`histogram_png`.
    """
    return atomic_write_bytes(out_png, histogram_png(load_results(results_dir)))


def require_matplotlib() -> ModuleType:
    """matplotlib, or :class:`~rarity_score.features.MissingDependency` saying how to install
    it: what the histogram (and so the report) needs."""
    return require("matplotlib", what="the rarity histogram", extra="report")


#: One curve of the report's figures: its legend label, its in-manifold scores, its colour, and
#: whether it is the dashed reference curve (the real set's own leave-one-out rarity).
_Curve = tuple[str, np.ndarray, Any, bool]


def _curves(results: Results) -> list[_Curve]:
    """The curves the histogram and the empirical CDFs draw, in the same colours and order."""
    matplotlib = require_matplotlib()
    curves: list[_Curve] = []
    colours = matplotlib.colormaps["tab10"].colors
    for position, item in enumerate(results.sets):
        scores = item.rarity[item.in_manifold & np.isfinite(item.rarity)]
        label = f"{shorten(item.name, 60)} (n = {scores.size:,} of {item.n:,} in manifold)"
        curves.append((label, scores, colours[position % len(colours)], False))
    if results.reference_rarity is not None and not results.datasets_mode:
        reference = results.reference_rarity[np.isfinite(results.reference_rarity)]
        real = results.run.get("real") or {}
        name = shorten(printable(str(real.get("name") or "real")), 60)
        total = results.reference_rarity.size
        label = f"{name}, leave-one-out (n = {reference.size:,} of {total:,} in manifold)"
        curves.append((label, reference, "black", True))
    return curves


def _figure() -> tuple[Any, Any]:
    """A figure and its one axes, in the size and resolution of the report's figures, drawn
    with Agg (without a display, whatever backend the user configured for interactive use)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.0, 4.2), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _range(curves: Sequence[_Curve]) -> tuple[float, float] | None:
    """The common x range of every curve (None when no curve holds a score)."""
    everything = np.concatenate([scores for _, scores, _, _ in curves] or [np.zeros(0)])
    if everything.size == 0:
        return None
    low, high = float(everything.min()), float(everything.max())
    if high <= low:
        low, high = low - 0.5, high + 0.5
    return low, high


def _nothing_to_plot(axes: Any) -> None:
    axes.text(
        0.5,
        0.5,
        "no in-manifold samples: no rarity score to plot",
        ha="center",
        va="center",
        transform=axes.transAxes,
    )


def _legend(axes: Any, handles: list[Any], curves: Sequence[_Curve], loc: str) -> None:
    # Handles and labels given explicitly: matplotlib would drop a label that starts with "_"
    # (a set named "_base") from an automatic legend.
    labels = [label for label, _, _, _ in curves]
    legend = axes.legend(handles, labels, fontsize=8, frameon=False, loc=loc)
    for text in legend.get_texts():
        text.set_parse_math(False)


def _finish(figure: Any, axes: Any, results: Results, title: str, y_label: str) -> bytes:
    # Names come from the results directory: "$...$" in one must stay text, not mathtext
    # (which may also fail to parse and stop the report).
    axes.set_xlabel(_x_label(results), parse_math=False)
    axes.set_ylabel(y_label)
    axes.set_title(title, fontsize=10, parse_math=False)
    axes.spines[["top", "right"]].set_visible(False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def histogram_png(results: Results) -> bytes:
    """The PNG bytes of the overlaid histograms of a loaded results directory."""
    curves = _curves(results)
    figure, axes = _figure()
    extent = _range(curves)
    if extent is None:
        _nothing_to_plot(axes)
    else:
        # Common bins over every curve, so heights are comparable across sets; as many as the
        # smallest curve can fill (sqrt rule), so no curve is drawn as noise.
        low, high = extent
        smallest = min(scores.size for _, scores, _, _ in curves if scores.size)
        bins = np.linspace(low, high, min(_MAX_BINS, max(10, int(np.sqrt(smallest)))) + 1)
        handles: list[Any] = []
        for _, scores, colour, dashed in curves:
            if scores.size == 0:
                style = "--" if dashed else "-"
                handles += axes.plot([], [], color=colour, linestyle=style)
                continue
            density, _ = np.histogram(scores, bins=bins, density=True)
            if dashed:
                line = axes.stairs(density, bins, color=colour, linestyle="--", linewidth=1.6)
            else:
                axes.stairs(density, bins, fill=True, alpha=0.12, color=colour)
                line = axes.stairs(density, bins, color=colour, linewidth=1.8)
            handles.append(line)
        axes.set_xlim(low, high)
        axes.set_ylim(bottom=0)
        _legend(axes, handles, curves, "best")
    return _finish(figure, axes, results, _title(results), "density")


def ecdf_png(results: Results) -> bytes:
    """The PNG bytes of the empirical CDFs of the same curves as :func:`histogram_png` (in its
    colours, the reference dashed), drawn by matplotlib's :meth:`~matplotlib.axes.Axes.ecdf`:
    for each rarity x, the fraction of the set's in-manifold samples whose rarity is at most x.
    A small shift between two sets, which a histogram's bins may hide, is a plain gap between
    two curves here."""
    curves = _curves(results)
    figure, axes = _figure()
    extent = _range(curves)
    if extent is None:
        _nothing_to_plot(axes)
    else:
        handles: list[Any] = []
        for _, scores, colour, dashed in curves:
            style = "--" if dashed else "-"
            if scores.size == 0:
                handles += axes.plot([], [], color=colour, linestyle=style)
                continue
            width = 1.6 if dashed else 1.8
            handles.append(axes.ecdf(scores, color=colour, linestyle=style, linewidth=width))
        axes.set_xlim(*extent)
        axes.set_ylim(0, 1.02)
        _legend(axes, handles, curves, "lower right")
    title = _title(results).replace("Rarity of", "Empirical CDF of the rarity of", 1)
    return _finish(figure, axes, results, title, "fraction of in-manifold samples ≤ rarity")


def _title(results: Results) -> str:
    k = results.run.get("k")
    if results.datasets_mode:
        return f"Rarity of each dataset against its own manifold (leave-one-out, k = {k})"
    real = printable(str((results.run.get("real") or {}).get("name") or "the real set"))
    return f"Rarity of the generated sets against the manifold of {real} (k = {k})"


def _x_label(results: Results) -> str:
    extractor = results.run.get("extractor") or {}
    name = extractor.get("name") if isinstance(extractor, dict) else None
    space = f"{printable(str(name))} features" if name else "the feature space"
    return f"rarity score (distance in {space})"


def spaces_scatter_png(
    x: np.ndarray, y: np.ndarray, *, x_label: str, y_label: str, title: str
) -> bytes:
    """The PNG bytes of one scatter of rarity percentiles (0 to 100 on both axes, the diagonal
    drawn): one point per sample, ``x`` in one space and ``y`` in another. Labels are drawn as
    text (never mathtext).

    >>> import numpy as np
    >>> spaces_scatter_png(np.array([0.0, 50.0, 100.0]), np.array([10.0, 40.0, 90.0]),
    ...                    x_label="a", y_label="b", title="t")[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    figure = Figure(figsize=(3.8, 3.8), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot([0, 100], [0, 100], color="0.6", linewidth=1, linestyle="--")
    if x.size:
        # Smaller, lighter points as they grow many, so dense regions stay readable.
        size = float(np.clip(400 / np.sqrt(x.size), 1.5, 18))
        alpha = float(np.clip(30 / np.sqrt(x.size), 0.15, 0.8))
        axes.scatter(x, y, s=size, alpha=alpha, color="#2d5fd3", linewidths=0, rasterized=True)
    else:
        axes.text(
            0.5, 0.5, "no sample in both manifolds", ha="center", va="center",
            transform=axes.transAxes,
        )  # fmt: skip
    axes.set_xlim(-2, 102)
    axes.set_ylim(-2, 102)
    axes.set_aspect("equal")
    axes.set_xlabel(_label(x_label), parse_math=False)
    axes.set_ylabel(_label(y_label), parse_math=False)
    axes.set_title(_label(title), fontsize=9, parse_math=False)
    axes.spines[["top", "right"]].set_visible(False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def spaces_histograms_png(panels: Sequence[tuple[str, np.ndarray, int]]) -> bytes:
    """The PNG bytes of rarity histograms side by side, one axis per space, each in that space's
    own units: ``panels`` holds (space name, in-manifold rarities, samples in the set).

    >>> import numpy as np
    >>> spaces_histograms_png([("a", np.array([1.0, 2.0]), 3), ("b", np.zeros(0), 3)])[:4]
    b'\\x89PNG'
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    count = max(1, len(panels))
    columns = min(count, 4)
    rows = -(-count // columns)
    figure = Figure(figsize=(3.2 * columns, 2.6 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(rows, columns, squeeze=False)
    for position, axes in enumerate(grid.flat):
        if position >= len(panels):
            axes.set_visible(False)
            continue
        name, scores, total = panels[position]
        scores = np.asarray(scores, dtype=np.float64)
        scores = scores[np.isfinite(scores)]
        if scores.size:
            bins = min(_MAX_BINS, max(10, int(np.sqrt(scores.size))))
            axes.hist(scores, bins=bins, color="#2d5fd3", alpha=0.75)
        else:
            axes.text(
                0.5,
                0.5,
                "no in-manifold sample",
                ha="center",
                va="center",
                transform=axes.transAxes,
            )
        axes.set_title(
            f"{_label(name, 40)} (n = {scores.size:,} of {total:,})", fontsize=9, parse_math=False
        )
        axes.set_xlabel("rarity (this space's units)", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.spines[["top", "right"]].set_visible(False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _label(text: str, limit: int = 90) -> str:
    """A name from an output, made printable and short for a plot."""
    return shorten(printable(str(text)), limit)
