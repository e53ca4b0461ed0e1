"""The results directory: its format, its one writer and its one reader.

A run (:func:`~rarity_score.compare.compare`, :func:`~rarity_score.compare.compare_datasets`,
``rarity score --report``) writes::

    run.json                 what was run: mode, method, k, extractor, the sets, the command,
                             the package version, the list of files (run_record, publish)
    summary.csv .json .md    one row per set: name, the manifold's counts, each metric's values
    sets/<slug>.csv .npz     one row per sample: name, each metric's columns, the names of the
                             samples the index columns point at (CSV)
    reference_loo.npz        the real set's own leave-one-out rarity (compare and score modes)
    report/, histogram.png   the report, when built

The columns and headings come from the metric declarations (:mod:`.layout`); the writer
(:mod:`.write`) checks the output folder once, writes every file into a staging folder and
publishes it whole (:func:`rarity_score.io.publish.publish_folder`); the reader (:mod:`.read`)
treats a results directory as untrusted. The report reads through here and :mod:`rarity_score.io`
only.
"""

from __future__ import annotations

from rarity_score.io.run_record import FORMAT, FORMAT_VERSION, METHODS
from rarity_score.results_dir.layout import (
    ci_key,
    format_table,
    markdown,
    row_values,
    run_text,
    stability_table,
    statistics_text,
    summary_columns,
    summary_row,
    table_values,
    value_text,
    with_interval,
)
from rarity_score.results_dir.read import (
    Results,
    ResultsError,
    SetResult,
    load_results,
    read_run,
    read_summary,
)
from rarity_score.results_dir.write import (
    OutputDir,
    RunResult,
    check_output_dir,
    is_results_dir,
    score_record,
    stability_rows,
    table_text,
    write_results,
    write_score_record,
    write_table,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "METHODS",
    "OutputDir",
    "Results",
    "ResultsError",
    "RunResult",
    "SetResult",
    "check_output_dir",
    "ci_key",
    "format_table",
    "is_results_dir",
    "load_results",
    "markdown",
    "read_run",
    "read_summary",
    "row_values",
    "run_text",
    "score_record",
    "stability_rows",
    "stability_table",
    "statistics_text",
    "summary_columns",
    "summary_row",
    "table_text",
    "table_values",
    "value_text",
    "with_interval",
    "write_results",
    "write_score_record",
    "write_table",
]
