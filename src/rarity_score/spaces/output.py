"""The output directory of ``rarity spaces``: its layout, and where its writer and reader are.

::

    run.json          what was compared: format, mode "spaces", format_version,
                      package_version, created, command, k (null when the spaces differ),
                      fraction, the spaces (name, slug, results, extractor, preprocessing,
                      weights_id, dim, k, n_real, n_real_subsampled_from, bootstrap
                      ({resamples, level} of the intervals its results directory holds, or
                      null), real), the sets (name, slug, n, subsampled_from, matched_by,
                      same_images, source, kind, images_fingerprint), the sets left out,
                      real_matched_by, real_same_images, warnings (one line each: real sets
                      of different sizes, different k; shown wherever the output is), notes,
                      and the list of files (io.publish)
    summary.json      one row per (set, pair of spaces a < b in run order): ROW_KEYS, undefined
                      values null
    summary.csv .md   the same rows
    sets/<slug>.csv   name, then per space "rarity[<space>]", "percentile[<space>]" (empty out
                      of the manifold)
    sets/<slug>.npz   names (n,), spaces (S,), rarity (n, S) float64 NaN out of the manifold,
                      percentile (n, S) float64, in_manifold (n, S) bool, nearest_real_index
                      (n, S) int64 (-1: unknown; rows of that space's own real set)
    spaces/<slug>/    the per-space results directories, with their reports (when the spaces
                      were scored here)
    report/           the report, when built

The folder is one unit: ``run.json["files"]`` lists every file in it, the per-space results
directories included, and an earlier output is replaced only while it holds exactly those
files, unchanged. Rebuild its report with ``rarity report OUT``, never a part of it.

- :mod:`rarity_score.spaces.write`: the writer (:func:`write_spaces_files` into a staging
  folder, :func:`publish_spaces`, :func:`write_spaces`);
- :mod:`rarity_score.spaces.read`: the reader (:func:`load_spaces`, untrusted input);
- :mod:`rarity_score.spaces.text`: what is printed and ``summary.md``.

Everything is importable from here as well.
"""

from __future__ import annotations

from rarity_score.spaces.read import SpaceRecord, SpacesResults, SpacesSet, load_spaces
from rarity_score.spaces.text import METHOD, NOTES, format_table, markdown, run_text
from rarity_score.spaces.write import (
    SpacesWritten,
    publish_spaces,
    space_record,
    summary_rows,
    write_spaces,
    write_spaces_files,
)

__all__ = [
    "METHOD",
    "NOTES",
    "SpaceRecord",
    "SpacesResults",
    "SpacesSet",
    "SpacesWritten",
    "format_table",
    "load_spaces",
    "markdown",
    "publish_spaces",
    "run_text",
    "space_record",
    "summary_rows",
    "write_spaces",
    "write_spaces_files",
]
