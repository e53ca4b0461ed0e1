"""What a demo run measured: the trends of the truncation comparison and the dataset ordering,
read from the summary rows of its two runs (nothing assumed), and each pairwise comparison of
their sets (``summary.json["comparisons"]``: difference of mean and median rarity with its
bootstrap interval, Mann-Whitney U on the in-manifold rarities) checked as a finding; the
agreement of the feature spaces, read from the summary rows of the spaces run; what the filter
example copied; and the same in words.

A comparison's finding **holds** when the rank test rejects equal rarity at the comparison's
level (p below 1 - level: 0.05) in the expected direction, the median difference has that sign
and its bootstrap interval (where the run resampled) excludes 0; it is **reversed** when the
same holds the other way; **unclear** when the test rejects but the median or its interval
disagrees; else **not significant** (:func:`check_comparison`). Expected: for truncation, the
set of the higher psi is the rarer (the paper's finding); for the datasets, the more diverse
one, named in advance (``findings(..., more_diverse=)``: MNIST in the demo), else the one whose
median is the larger.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rarity_score.spaces import ROW_KEYS

__all__ = [
    "check_comparison",
    "describe_findings",
    "describe_rarest",
    "describe_spaces",
    "findings",
    "rarest_findings",
    "spaces_findings",
]

#: The keys of a spaces summary row that ``demo.json`` keeps for each pair of spaces: all but
#: the set, which ``demo.json`` names once.
_PAIR_KEYS = tuple(key for key in ROW_KEYS if key != "set")

#: The files of a filter output folder that are not the selected images.
_FILTER_OWN = ("selection.csv", "filter.json")

#: The summary values whose trend over psi the demo reports, with their names in words.
_TRENDS = {
    "rarity_mean": "mean rarity",
    "rarity_median": "median rarity",
    "fraction_in_manifold": "fraction in manifold",
    "precision": "precision",
    "recall": "recall",
    "density": "density",
    "coverage": "coverage",
}


#: The fields of a comparison entry (``summary.json["comparisons"]``) that ``demo.json`` keeps.
_COMPARISON_KEYS = (
    "a",
    "b",
    "n_a",
    "n_b",
    "mean_difference",
    "mean_difference_ci",
    "median_difference",
    "median_difference_ci",
    "p_value",
    "probability_a_rarer",
    "level",
    "caveat",
    "sentence",
)

#: The verdicts of a checked comparison (see the module).
HOLDS, REVERSED, UNCLEAR, NOT_SIGNIFICANT, NOT_COMPARED = (
    "holds",
    "reversed",
    "unclear",
    "not significant",
    "not compared",
)


def findings(truncation: Any, datasets: Any, *, more_diverse: str | None = None) -> dict[str, Any]:
    """What the two runs of a demo show, measured.

    Args:
        truncation, datasets: the runs (:class:`~rarity_score.results_dir.RunResult`, whose
            ``rows`` and ``comparisons`` are read; or :class:`~rarity_score.results_dir.
            Results`, its ``summary`` and ``comparisons``), a ``summary.json`` as read (its
            ``sets`` and ``comparisons``), or only the summary rows (one mapping per set, in run
            order; then no comparison is checked).

    Returns:
        ``truncation``: per psi (in run order, highest first) the summary numbers, and for each
        of mean and median rarity, fraction in the manifold, precision, recall, density and
        coverage whether it ``falls`` or ``rises`` strictly from level to level (else
        ``"neither"``). ``datasets``: the dataset whose median leave-one-out rarity is larger
        (``right``: its histogram sits to the right), the other (``left``), and the ratios of
        their medians and means. Each has ``comparisons``: every pair of its sets compared
        (:func:`check_comparison`), with the set expected to be the rarer: of two truncation
        levels the higher psi (read from the names ``psi=X``, else the earlier in run order),
        of the datasets ``more_diverse`` (the one the paper's finding expects to sit to the
        right, named in advance: then the check can come out reversed), else ``right``.

    >>> rows = [{"name": n, "rarity_mean": m, "rarity_median": m} for n, m in (("A", 2), ("B", 3))]
    >>> pair = {"a": "A", "b": "B", "n_a": 9, "n_b": 9, "median_difference": -1.0,
    ...         "median_difference_ci": [-1.5, -0.5], "p_value": 0.001,
    ...         "probability_a_rarer": 0.2, "level": 0.95, "sentence": "A is less rare than B"}
    >>> found = findings([], {"sets": rows, "comparisons": [pair]})
    >>> found["datasets"]["right"], found["datasets"]["comparisons"][0]["verdict"]
    ('B', 'holds')
    """
    rows, pairs = _rows(truncation), _comparisons(truncation)
    trend = {}
    for key in _TRENDS:
        values = [row.get(key) for row in rows]
        trend[key] = {"values": values, "as_psi_falls": _direction(values)}
    names = [row["name"] for row in rows]
    found: dict[str, Any] = {
        "truncation": {
            "sets": names,
            "trend": trend,
            "comparisons": [
                check_comparison(
                    pair, _higher_psi(pair["a"], pair["b"], names), _resampled(truncation)
                )
                for pair in pairs
            ],
        }
    }
    ds_rows = sorted(_rows(datasets), key=lambda row: row["rarity_median"])
    if not ds_rows:
        return found
    left, right = ds_rows[0], ds_rows[-1]
    found["datasets"] = {
        "right": right["name"],
        "left": left["name"],
        "median": {right["name"]: right["rarity_median"], left["name"]: left["rarity_median"]},
        "mean": {right["name"]: right["rarity_mean"], left["name"]: left["rarity_mean"]},
        "median_ratio": right["rarity_median"] / left["rarity_median"],
        "mean_ratio": right["rarity_mean"] / left["rarity_mean"],
        "comparisons": [
            check_comparison(pair, more_diverse or right["name"], _resampled(datasets))
            for pair in _comparisons(datasets)
            if {pair["a"], pair["b"]} == {right["name"], left["name"]}
        ],
    }
    return found


def _resampled(run: Any) -> bool:
    """Whether ``run`` (a RunResult or Results) was bootstrapped: then a comparison without an
    interval has none because its resamples could not give one, not because none was asked."""
    record = getattr(run, "run", None)
    statistics = record.get("statistics") if isinstance(record, Mapping) else None
    return isinstance(statistics, Mapping) and isinstance(statistics.get("bootstrap"), Mapping)


def check_comparison(
    pair: Mapping[str, Any], rarer: str, resampled: bool = False
) -> dict[str, Any]:
    """A comparison entry (``summary.json["comparisons"]``) checked as the finding that
    ``rarer`` (``pair["a"]`` or ``pair["b"]``) is the rarer set: its kept fields, ``expected``
    (the finding in words) and ``verdict``:

    * ``"holds"`` / ``"reversed"``: the rank test says the sets differ (p < 1 - level), and the
      median difference, the rank effect (P(a rarer) against 1/2) and, when there is one, the
      median difference's interval all point the expected way (the other way);
    * ``"unclear"``: the rank test says they differ but those disagree, or the run was
      bootstrapped (``resampled``) and the pair has no interval (its resamples could not
      give one: too few samples in the manifold);
    * ``"not significant"``: p >= 1 - level;
    * ``"not compared"``: a set with no sample in the manifold, or a pair the run marked as not
      comparable (``caveat``: datasets of different sizes).

    >>> pair = {"a": "psi=1.0", "b": "psi=0.4", "median_difference": 0.8,
    ...         "median_difference_ci": [0.4, 1.2], "p_value": 1e-6,
    ...         "probability_a_rarer": 0.6, "level": 0.95}
    >>> checked = check_comparison(pair, "psi=1.0")
    >>> checked["expected"], checked["verdict"]
    ('psi=0.4 less rare than psi=1.0', 'holds')
    >>> check_comparison(pair, "psi=0.4")["verdict"]
    'reversed'
    >>> check_comparison({**pair, "median_difference_ci": [-0.1, 1.2]}, "psi=1.0")["verdict"]
    'unclear'
    >>> check_comparison({**pair, "p_value": 0.2}, "psi=1.0")["verdict"]
    'not significant'
    >>> check_comparison({**pair, "median_difference_ci": None}, "psi=1.0", True)["verdict"]
    'unclear'
    >>> check_comparison({**pair, "caveat": "they differ in size"}, "psi=1.0")["verdict"]
    'not compared'
    """
    if rarer not in (pair["a"], pair["b"]):
        raise ValueError(f"{rarer!r} is not one of the sets compared ({pair['a']}, {pair['b']})")
    other = pair["b"] if rarer == pair["a"] else pair["a"]
    kept = {key: pair.get(key) for key in _COMPARISON_KEYS}
    sign = 1.0 if rarer == pair["a"] else -1.0  # the expected sign of the differences a - b
    p, median = pair.get("p_value"), pair.get("median_difference")
    share, interval = pair.get("probability_a_rarer"), pair.get("median_difference_ci")
    if p is None or median is None or share is None or pair.get("caveat"):
        verdict = NOT_COMPARED
    elif p >= 1 - pair["level"]:
        verdict = NOT_SIGNIFICANT
    elif interval is None and resampled:
        verdict = UNCLEAR
    else:
        verdict = UNCLEAR
        for direction, outcome in ((sign, HOLDS), (-sign, REVERSED)):
            clear = (
                direction * median > 0
                and direction * (share - 0.5) > 0
                and (interval is None or min(direction * interval[0], direction * interval[1]) > 0)
            )
            if clear:
                verdict = outcome
    return {**kept, "expected": f"{other} less rare than {rarer}", "verdict": verdict}


def describe_findings(found: dict[str, Any]) -> list[str]:
    """:func:`findings` in words, one line each (what ``rarity demo`` prints).

    >>> found = {"truncation": {"sets": ["psi=1", "psi=0.4"], "trend": {
    ...     "rarity_mean": {"values": [2.0, 1.5], "as_psi_falls": "falls"}}},
    ...     "datasets": {"right": "A", "left": "B", "median": {"A": 3.0, "B": 2.0},
    ...                  "mean": {"A": 3.0, "B": 2.5}, "median_ratio": 1.5, "mean_ratio": 1.2}}
    >>> found["datasets"]["comparisons"] = [{"expected": "B less rare than A",
    ...     "verdict": "holds", "sentence": "A is more rare than B: median 1, p = 0.001"}]
    >>> print("\\n".join(describe_findings(found)))
    Truncation (psi=1 -> psi=0.4):
      mean rarity            falls  2 > 1.5
    Datasets: A sits to the right of B (median rarity 3 vs 2, x1.5; mean 3 vs 2.5, x1.2)
      B less rare than A: holds
        A is more rare than B: median 1, p = 0.001
    """
    truncation = found["truncation"]
    lines = [f"Truncation ({' -> '.join(truncation['sets'])}):"]
    for key, entry in truncation["trend"].items():
        direction = entry["as_psi_falls"]
        sign = {"falls": " > ", "rises": " < "}.get(direction, ", ")
        values = sign.join("n/a" if v is None else f"{v:.4g}" for v in entry["values"])
        lines.append(f"  {_TRENDS.get(key, key):<22} {direction:<6} {values}")
    lines += _describe_comparisons(truncation.get("comparisons", ()))
    ds = found.get("datasets")
    if ds is None:
        return lines
    right, left = ds["right"], ds["left"]
    lines.append(
        f"Datasets: {right} sits to the right of {left} (median rarity "
        f"{ds['median'][right]:.4g} vs {ds['median'][left]:.4g}, x{ds['median_ratio']:.3g}; "
        f"mean {ds['mean'][right]:.4g} vs {ds['mean'][left]:.4g}, x{ds['mean_ratio']:.3g})"
    )
    lines += _describe_comparisons(ds.get("comparisons", ()))
    return lines


def _describe_comparisons(checked: Iterable[Mapping[str, Any]]) -> list[str]:
    """Each checked comparison: the finding and its verdict, then the run's sentence."""
    lines = []
    for entry in checked:
        lines.append(f"  {entry['expected']}: {entry['verdict']}")
        lines.append(f"    {entry['sentence']}")
    return lines


def spaces_findings(
    rows: Iterable[Mapping[str, Any]],
    set_name: str,
    spaces: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The agreement of the feature spaces on one set, as the spaces run measured it.

    Args:
        rows: the summary rows of a ``rarity spaces`` output (``summary.json``: one per set and
            pair of spaces).
        set_name: the set whose rows are kept.
        spaces: what to record of each space (its name first), in run order.

    Returns:
        ``set``, ``spaces`` (as given) and ``pairs``: per pair of spaces, in the run's order,
        the counts, Spearman and Kendall rank correlations over the samples in the manifold in
        both, the 2 x 2 in-manifold counts, Cohen's kappa and the Jaccard overlaps of the
        rarest and the most common 10 % (None where undefined).

    >>> row = dict.fromkeys(_PAIR_KEYS, 1) | {"set": "s", "space_a": "A", "space_b": "B"}
    >>> found = spaces_findings([row, {**row, "set": "other"}], "s", [{"name": "A"}])
    >>> len(found["pairs"]), found["pairs"][0]["space_b"]
    (1, 'B')
    """
    pairs = [{key: row.get(key) for key in _PAIR_KEYS} for row in rows if row["set"] == set_name]
    if not pairs:
        raise ValueError(f"the spaces summary has no rows for the set {set_name!r}")
    return {"set": set_name, "spaces": [dict(space) for space in spaces], "pairs": pairs}


def describe_spaces(found: Mapping[str, Any]) -> list[str]:
    """:func:`spaces_findings` in words: one line per space, then a table of the pairs.

    >>> pair = {"space_a": "pixels", "space_b": "head", "n": 10, "n_in_both": 8,
    ...         "spearman": 0.5, "kendall": 0.4, "kappa": None, "in_in": 8, "in_out": 1,
    ...         "out_in": 1, "out_out": 0, "jaccard_rarest": 1.0, "jaccard_common": 0.0}
    >>> spaces = [{"name": "pixels", "input_size": 28, "dim": 2352,
    ...            "fraction_in_manifold": 0.9}]
    >>> print("\\n".join(describe_spaces({"set": "s", "spaces": spaces, "pairs": [pair]})))
    Feature spaces (s, 10 samples):
      pixels   28 px  2352-d  in manifold 90.0 %
      pair           in both  Spearman  Kendall  kappa  Jaccard rarest 10 %  common 10 %
      pixels / head        8     0.500    0.400    n/a                 1.00         0.00
    """
    pairs = found["pairs"]
    n = pairs[0]["n"] if pairs else 0
    lines = [f"Feature spaces ({found['set']}, {n} samples):"]
    width = max((len(str(space["name"])) for space in found["spaces"]), default=0)
    for space in found["spaces"]:
        fraction = _percent(space.get("fraction_in_manifold"))
        lines.append(
            f"  {space['name']:<{width}}  {space.get('input_size', '?'):>3} px  "
            f"{space.get('dim', '?'):>4}-d  in manifold {fraction}"
        )
    labels = [f"{pair['space_a']} / {pair['space_b']}" for pair in pairs]
    width = max((len(label) for label in labels), default=0)
    lines.append(
        f"  {'pair':<{width}}  in both  Spearman  Kendall  kappa  Jaccard rarest 10 %  common 10 %"
    )
    for label, pair in zip(labels, pairs, strict=True):
        lines.append(
            f"  {label:<{width}}  {pair['n_in_both']:>7}  {_number(pair['spearman'], 3):>8}  "
            f"{_number(pair['kendall'], 3):>7}  {_number(pair['kappa'], 2):>5}  "
            f"{_number(pair['jaccard_rarest'], 2):>19}  {_number(pair['jaccard_common'], 2):>11}"
        )
    return lines


def rarest_findings(selection: Any, folder: str | Path) -> dict[str, Any]:
    """What the filter example selected and what its folder holds.

    Args:
        selection: the :class:`~rarity_score.filtering.Selection` (its ``item`` names the set,
            its ``rule`` the count asked for, its ``rows`` the samples in rank order).
        folder: the folder :func:`~rarity_score.filtering.write_selection` wrote.

    Returns:
        ``set``, ``rule``, ``asked`` (the count), ``copied`` (the image files in the folder),
        ``score`` (what the rule orders by: ``rarity``) and ``selected``: per sample its rank,
        name and score, in rank order.
    """
    copied = [
        path for path in Path(folder).iterdir() if path.is_file() and path.name not in _FILTER_OWN
    ]
    return {
        "set": selection.item.name,
        "rule": selection.rule.kind,
        "asked": selection.rule.count,
        "copied": len(copied),
        "score": selection.score_name,
        "selected": [
            {"rank": row.rank, "name": row.name, "score": row.score} for row in selection.rows
        ],
    }


def describe_rarest(found: Mapping[str, Any], folder: str | Path) -> str:
    """:func:`rarest_findings` in one line.

    >>> found = {"set": "psi=1.0", "rule": "rarest", "asked": 2, "copied": 2, "score": "rarity",
    ...          "selected": [{"rank": 1, "name": "a.png", "score": 3.5},
    ...                       {"rank": 2, "name": "b.png", "score": 3.0}]}
    >>> print(describe_rarest(found, "out"))
    Filter: the 2 rarest in-manifold samples of psi=1.0 (rarity 3.5 down to 3), copied to out
    """
    scores = [row["score"] for row in found["selected"] if row["score"] is not None]
    span = f" ({found['score']} {scores[0]:.4g} down to {scores[-1]:.4g})" if scores else ""
    return (
        f"Filter: the {found['copied']} {found['rule']} in-manifold samples of {found['set']}"
        f"{span}, copied to {folder}"
    )


def _number(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _rows(run: Any) -> list[Mapping[str, Any]]:
    """The summary rows of ``run``: its ``rows`` (a run) or ``summary`` (a results directory
    read) attribute, the ``sets`` of a ``summary.json``, or ``run`` itself."""
    if isinstance(run, Mapping):
        return list(run["sets"])
    rows: Iterable[Mapping[str, Any]] = getattr(run, "rows", None) or getattr(run, "summary", run)
    return list(rows)


def _comparisons(run: Any) -> list[Mapping[str, Any]]:
    """The comparison entries of ``run`` (see :func:`_rows`); none for bare rows."""
    if isinstance(run, Mapping):
        return list(run.get("comparisons") or ())
    return list(getattr(run, "comparisons", None) or ())


_PSI = re.compile(r"psi=([0-9]*\.?[0-9]+)")


def _higher_psi(a: str, b: str, names: Sequence[str]) -> str:
    """Of two truncation levels, the one of the higher psi (from the names ``psi=X``), else the
    earlier in run order (the demo's order: highest psi first)."""
    found = [_PSI.fullmatch(name) for name in (a, b)]
    if found[0] and found[1]:
        return a if float(found[0].group(1)) >= float(found[1].group(1)) else b
    order = {name: i for i, name in enumerate(names)}
    return a if order.get(a, 0) <= order.get(b, 0) else b


def _direction(values: Sequence[float | None]) -> str:
    """``"falls"`` / ``"rises"`` when strictly monotone along ``values``, else ``"neither"``."""
    if any(v is None for v in values) or len(values) < 2:
        return "neither"
    pairs = list(itertools.pairwise(values))
    if all(a > b for a, b in pairs):  # type: ignore[operator]
        return "falls"
    if all(a < b for a, b in pairs):  # type: ignore[operator]
        return "rises"
    return "neither"
