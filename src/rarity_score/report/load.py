"""The report's view of a results directory: it reads through the one reader of the format,
:func:`rarity_score.results_dir.load_results`, and never parses the files itself.

:class:`ReportError` is :class:`rarity_score.results_dir.ResultsError` under the report's name:
a results directory that cannot be read, or a report that cannot be written into it.
"""

from __future__ import annotations

from rarity_score.results_dir import Results, ResultsError, SetResult, load_results

__all__ = ["ReportError", "Results", "SetResult", "load_results"]

ReportError = ResultsError
