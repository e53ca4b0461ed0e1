"""What a run adds to its point estimates: bootstrap intervals of every summary value, the
comparison of two sets' rarity, and the random subsets of ``--subsample`` and ``--stability``.

Everything here starts from evaluations already computed (:class:`~rarity_score.results.
Evaluation`): the per-sample values are computed once by the sweep, and each bootstrap resample
only recomputes the summary from them. The real set and its k-NN spheres stay fixed, so an
interval covers the draw of the generated samples, nothing else (:data:`RESAMPLED` says so in
words, in every output that holds intervals). Per-set values that rest on the generated set as
a whole (recall: its own spheres; coverage: each real sample's nearest generated sample) are
not recomputed by a resample of per-sample values; they get no interval, and the record says
why (:func:`not_resampled`).

scipy.stats does the statistics (the percentile bootstrap, the Mann-Whitney U test): the extra
``rarity-score[stats]``; :func:`require_scipy` is the one message when it is missing.
"""

from __future__ import annotations

from rarity_score.uncertainty.intervals import (
    RESAMPLED,
    Analysis,
    StabilityStep,
    not_resampled,
    require_scipy,
    statistics_record,
    summary_intervals,
)
from rarity_score.uncertainty.pairs import RarityComparison, compare_rarity, comparisons
from rarity_score.uncertainty.sample import subset_rows

__all__ = [
    "RESAMPLED",
    "Analysis",
    "RarityComparison",
    "StabilityStep",
    "compare_rarity",
    "comparisons",
    "not_resampled",
    "require_scipy",
    "statistics_record",
    "subset_rows",
    "summary_intervals",
]
