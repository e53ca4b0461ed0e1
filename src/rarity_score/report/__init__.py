"""The HTML reports: of a results directory (settings, summary, histograms, galleries, table) and
of a ``rarity spaces`` output (the spaces compared).

:func:`build_report` writes ``RESULTS_DIR/report/index.html`` (and its assets beside it), which
opens straight from disk; :func:`plot_histograms` writes the overlaid rarity histograms as a PNG.
:func:`build_spaces_report` writes ``OUT/report/index.html`` of a ``rarity spaces`` output
(agreement tables, percentile scatters, per-space histograms, "rare in one space, common in
another" galleries). They read only the saved outputs (``docs/dev/report-contract.md``);
nothing is recomputed.
"""

from __future__ import annotations

from rarity_score.report.build import build_report
from rarity_score.report.load import ReportError, load_results
from rarity_score.report.plots import plot_histograms
from rarity_score.report.spaces import build_spaces_report

__all__ = ["ReportError", "build_report", "build_spaces_report", "load_results", "plot_histograms"]
