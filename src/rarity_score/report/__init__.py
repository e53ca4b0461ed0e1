"""The HTML report of a results directory: settings, summary, histograms, galleries, table.

:func:`build_report` writes ``RESULTS_DIR/report/index.html`` (and its assets beside it), which
opens straight from disk; :func:`plot_histograms` writes the overlaid rarity histograms as a PNG.
Both read only the saved results (``docs/dev/report-contract.md``); nothing is recomputed.
"""

from __future__ import annotations

from rarity_score.report.build import build_report
from rarity_score.report.load import ReportError, load_results
from rarity_score.report.plots import plot_histograms

__all__ = ["ReportError", "build_report", "load_results", "plot_histograms"]
