"""What a demo run measured: the trends of the truncation comparison and the dataset ordering,
read from the summary rows of its two runs (nothing assumed), and the same in words.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["describe_findings", "findings"]

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


def findings(truncation: Any, datasets: Any) -> dict[str, Any]:
    """What the two runs of a demo show, measured.

    Args:
        truncation, datasets: the runs (:class:`~rarity_score.results_dir.RunResult`, whose
            ``rows`` are read) or their summary rows (one mapping per set, in run order, as in
            ``summary.json``).

    Returns:
        ``truncation``: per psi (in run order, highest first) the summary numbers, and for each
        of mean and median rarity, fraction in the manifold, precision, recall, density and
        coverage whether it ``falls`` or ``rises`` strictly from level to level (else
        ``"neither"``). ``datasets``: the dataset whose median leave-one-out rarity is larger
        (``right``: its histogram sits to the right), the other (``left``), and the ratios of
        their medians and means.
    """
    rows = _rows(truncation)
    trend = {}
    for key in _TRENDS:
        values = [row[key] for row in rows]
        trend[key] = {"values": values, "as_psi_falls": _direction(values)}
    ds_rows = sorted(_rows(datasets), key=lambda row: row["rarity_median"])
    left, right = ds_rows[0], ds_rows[-1]
    return {
        "truncation": {"sets": [row["name"] for row in rows], "trend": trend},
        "datasets": {
            "right": right["name"],
            "left": left["name"],
            "median": {right["name"]: right["rarity_median"], left["name"]: left["rarity_median"]},
            "mean": {right["name"]: right["rarity_mean"], left["name"]: left["rarity_mean"]},
            "median_ratio": right["rarity_median"] / left["rarity_median"],
            "mean_ratio": right["rarity_mean"] / left["rarity_mean"],
        },
    }


def describe_findings(found: dict[str, Any]) -> list[str]:
    """:func:`findings` in words, one line each (what ``rarity demo`` prints).

    >>> found = {"truncation": {"sets": ["psi=1", "psi=0.4"], "trend": {
    ...     "rarity_mean": {"values": [2.0, 1.5], "as_psi_falls": "falls"}}},
    ...     "datasets": {"right": "A", "left": "B", "median": {"A": 3.0, "B": 2.0},
    ...                  "mean": {"A": 3.0, "B": 2.5}, "median_ratio": 1.5, "mean_ratio": 1.2}}
    >>> print("\\n".join(describe_findings(found)))
    Truncation (psi=1 -> psi=0.4):
      mean rarity            falls  2 > 1.5
    Datasets: A sits to the right of B (median rarity 3 vs 2, x1.5; mean 3 vs 2.5, x1.2)
    """
    truncation = found["truncation"]
    lines = [f"Truncation ({' -> '.join(truncation['sets'])}):"]
    for key, entry in truncation["trend"].items():
        direction = entry["as_psi_falls"]
        sign = {"falls": " > ", "rises": " < "}.get(direction, ", ")
        values = sign.join("n/a" if v is None else f"{v:.4g}" for v in entry["values"])
        lines.append(f"  {_TRENDS.get(key, key):<22} {direction:<6} {values}")
    ds = found["datasets"]
    right, left = ds["right"], ds["left"]
    lines.append(
        f"Datasets: {right} sits to the right of {left} (median rarity "
        f"{ds['median'][right]:.4g} vs {ds['median'][left]:.4g}, x{ds['median_ratio']:.3g}; "
        f"mean {ds['mean'][right]:.4g} vs {ds['mean'][left]:.4g}, x{ds['mean_ratio']:.3g})"
    )
    return lines


def _rows(run: Any) -> list[Mapping[str, Any]]:
    """The summary rows of ``run``: its ``rows`` attribute, or ``run`` itself."""
    rows: Iterable[Mapping[str, Any]] = getattr(run, "rows", run)
    return list(rows)


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
