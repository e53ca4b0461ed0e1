"""Rarity across feature spaces: which samples come out rare depends on the network that embeds
them, and these modules show where spaces agree and where they do not.

- :mod:`.agreement`: the statistics of one set and one pair of spaces (rank correlations of
  rarity, agreement of the in-manifold flags, overlap of the rarest and most common samples)
  and the within-space percentiles; pure functions of arrays (scipy and scikit-learn, the
  ``spaces`` extra).
- :mod:`.match`: the sets and samples of several results directories lined up, one per space.
- :mod:`.output`: the output directory of ``rarity spaces`` (its layout), from which its
  writer (:mod:`.write`), its reader (:mod:`.read`: :func:`load_spaces`, which the report reads
  through) and its words (:mod:`.text`) are all importable.

``rarity_score.spaces.run`` (``compare_spaces``, which scores and compares) sits above the
results directory's writers and is not imported here: the report may import this package, not
the run.
"""

from __future__ import annotations

from rarity_score.spaces.agreement import (
    FRACTION,
    ROW_KEYS,
    PairAgreement,
    agree,
    agreement_rows,
    percentiles,
    require_libraries,
)
from rarity_score.spaces.match import Aligned, AlignedSet, align
from rarity_score.spaces.output import (
    SpaceRecord,
    SpacesResults,
    SpacesSet,
    SpacesWritten,
    format_table,
    load_spaces,
    publish_spaces,
    run_text,
    space_record,
    summary_rows,
    write_spaces,
    write_spaces_files,
)

__all__ = [
    "FRACTION",
    "ROW_KEYS",
    "Aligned",
    "AlignedSet",
    "PairAgreement",
    "SpaceRecord",
    "SpacesResults",
    "SpacesSet",
    "SpacesWritten",
    "agree",
    "agreement_rows",
    "align",
    "format_table",
    "load_spaces",
    "percentiles",
    "publish_spaces",
    "require_libraries",
    "run_text",
    "space_record",
    "summary_rows",
    "write_spaces",
    "write_spaces_files",
]
