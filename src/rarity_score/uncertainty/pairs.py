"""Is one set rarer than another? The difference of mean and median rarity with bootstrap
intervals, and a Mann-Whitney U test on the in-manifold rarities, in one plain sentence.

Differences are ``a - b``. The intervals resample each set independently (with replacement, all
its samples, in or out of the manifold, as the summaries do) and recompute the difference of the
statistics over the in-manifold samples of each resample; the reference spheres stay fixed
(:data:`~rarity_score.uncertainty.RESAMPLED`). The rank test compares the two sets' in-manifold
rarities (two-sided, ``scipy.stats.mannwhitneyu``); with it comes the probability that a sample of
``a`` is rarer than one of ``b`` (U / (n_a n_b), ties counting half).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from rarity_score import defaults
from rarity_score.options import StatisticsOptions
from rarity_score.results import Evaluation
from rarity_score.uncertainty.intervals import bootstrap, require_scipy

__all__ = ["RarityComparison", "compare_rarity", "comparisons"]

Interval = list[float] | None


@dataclass(frozen=True)
class RarityComparison:
    """The rarity of set ``a`` against set ``b`` (differences ``a - b``; intervals None without
    resamples; ``p_value`` None when a set has no in-manifold sample)."""

    a: str
    b: str
    n_a: int
    n_b: int
    mean_difference: float | None
    mean_difference_ci: Interval
    median_difference: float | None
    median_difference_ci: Interval
    mann_whitney_u: float | None
    p_value: float | None
    probability_a_rarer: float | None
    level: float
    #: Why the two sets' rarity is not comparable (datasets of different sizes), said first in
    #: the sentence; None when it is.
    caveat: str | None = None

    @property
    def sentence(self) -> str:
        """The finding in words: which set is less rare (when the rank test says so at
        ``1 - level``), the median difference with its interval, and the p-value.

        >>> c = RarityComparison("psi=0.4", "psi=1.0", 900, 950, -0.5, [-0.7, -0.3], -0.78,
        ...                      [-1.1, -0.41], 1e5, 3e-5, 0.4, 0.95)
        >>> print(c.sentence)  # doctest: +NORMALIZE_WHITESPACE
        psi=0.4 is less rare than psi=1.0: median -0.78, 95 % CI [-1.1, -0.41],
        P(psi=0.4 rarer) = 0.40, p = 3e-05
        """
        if self.p_value is None or self.median_difference is None:
            empty = self.a if self.n_a == 0 else self.b
            return f"{self.a} and {self.b} cannot be compared: {empty} has no in-manifold sample"
        details = f"median {_number(self.median_difference)}"
        if self.median_difference_ci is not None:
            low, high = self.median_difference_ci
            details += f", {_percent(self.level)} CI [{_number(low)}, {_number(high)}]"
        p = f"p = {self.p_value:.2g}" if self.p_value > 0 else "p < 1e-300"
        if self.probability_a_rarer is not None:
            details += f", P({self.a} rarer) = {self.probability_a_rarer:.2f}"
        details += f", {p}"
        if self.caveat is not None:
            return f"{self.a} and {self.b} are not comparable ({self.caveat}): {details}"
        if self.p_value >= 1 - self.level:
            return f"{self.a} and {self.b} do not differ clearly in rarity: {details}"
        # The rank test says the distributions differ; its own effect size says in which way.
        rarer = self.probability_a_rarer is not None and self.probability_a_rarer > 0.5
        return f"{self.a} is {'more' if rarer else 'less'} rare than {self.b}: {details}"

    def to_dict(self) -> dict[str, Any]:
        """The entry of ``summary.json["comparisons"]``: every field and the sentence."""
        return {**asdict(self), "sentence": self.sentence}


def _number(value: float) -> str:
    return f"{value:.3g}"


def _percent(level: float) -> str:
    return f"{100 * level:g} %"


def _in_manifold_rarity(evaluation: Evaluation) -> tuple[np.ndarray, np.ndarray]:
    inside = np.asarray(evaluation.in_manifold, dtype=bool)
    return np.asarray(evaluation.rarity, dtype=np.float64), inside


def _statistic(values: np.ndarray, inside: np.ndarray, rows: np.ndarray, how: Any) -> float:
    kept = values[rows][inside[rows]]
    return float(how(kept)) if kept.size else np.nan


def compare_rarity(
    a: tuple[str, Evaluation], b: tuple[str, Evaluation], options: StatisticsOptions
) -> RarityComparison:
    """Compare the rarity of two named evaluations (see the module). Intervals come with
    ``options.bootstrap`` resamples (none when 0); the rank test always.

    >>> rng = np.random.default_rng(0)
    >>> def made(scores):
    ...     return Evaluation.from_fields(k=1, n_real=9, dim=1, metrics=("rarity",),
    ...         rarity=scores, in_manifold=np.ones(scores.size, bool),
    ...         sphere_index=np.zeros(scores.size, int))
    >>> c = compare_rarity(("low", made(rng.normal(1.0, 0.1, 200))),
    ...                    ("high", made(rng.normal(1.2, 0.1, 200))), StatisticsOptions())
    >>> c.sentence.startswith("low is less rare than high: median -0.176"), c.p_value < 1e-6
    (True, True)
    """
    stats = require_scipy("comparing the rarity of two sets")
    (name_a, ev_a), (name_b, ev_b) = a, b
    values_a, inside_a = _in_manifold_rarity(ev_a)
    values_b, inside_b = _in_manifold_rarity(ev_b)
    kept_a, kept_b = values_a[inside_a], values_b[inside_b]
    both = kept_a.size > 0 and kept_b.size > 0
    mean = float(kept_a.mean() - kept_b.mean()) if both else None
    median = float(np.median(kept_a) - np.median(kept_b)) if both else None
    u = p = share = None
    if both:
        test = stats.mannwhitneyu(kept_a, kept_b, alternative="two-sided")
        u, p = float(test.statistic), float(test.pvalue)
        share = u / (kept_a.size * kept_b.size)
    mean_ci = median_ci = None
    enough = min(ev_a.n_fake, ev_b.n_fake) >= defaults.MIN_BOOTSTRAP_SAMPLES
    if both and options.intervals and enough:

        def differences(rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
            return np.array(
                [
                    _statistic(values_a, inside_a, rows_a, how)
                    - _statistic(values_b, inside_b, rows_b, how)
                    for how in (np.mean, np.median)
                ]
            )

        result = bootstrap(
            stats,
            (np.arange(ev_a.n_fake), np.arange(ev_b.n_fake)),
            differences,
            options,
        )
        low, high = result.confidence_interval.low, result.confidence_interval.high
        mean_ci, median_ci = (
            None if np.isnan(low[i]) or np.isnan(high[i]) else [float(low[i]), float(high[i])]
            for i in range(2)
        )
    return RarityComparison(
        a=name_a,
        b=name_b,
        n_a=int(kept_a.size),
        n_b=int(kept_b.size),
        mean_difference=mean,
        mean_difference_ci=mean_ci,
        median_difference=median,
        median_difference_ci=median_ci,
        mann_whitney_u=u,
        p_value=p,
        probability_a_rarer=share,
        level=float(options.level),
    )


def comparisons(
    named: Sequence[tuple[str, Evaluation]],
    options: StatisticsOptions,
    *,
    same_reference: bool = True,
) -> list[RarityComparison]:
    """:func:`compare_rarity` of every pair of sets ``i < j``, in the order given.

    ``same_reference`` False: each set is scored against itself (leave-one-out), so two sets
    are comparable only at equal size (k-NN radii shrink as a set grows); pairs of different
    sizes are marked with a caveat instead of a finding."""
    found = []
    for i in range(len(named)):
        for j in range(i + 1, len(named)):
            pair = compare_rarity(named[i], named[j], options)
            n_i, n_j = named[i][1].n_fake, named[j][1].n_fake
            if not same_reference and n_i != n_j:
                caveat = (
                    f"they differ in size, {n_i} and {n_j}, and k-NN radii shrink as a set "
                    f"grows; rerun with --subsample {min(n_i, n_j)}"
                )
                pair = replace(pair, caveat=caveat)
            found.append(pair)
    return found
