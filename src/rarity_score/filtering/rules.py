"""The rules of ``rarity filter`` and the selection they make (nothing is written here: see
:mod:`rarity_score.filtering.write`).

Example:
    >>> import numpy as np
    >>> from rarity_score.compare import compare
    >>> import tempfile, pathlib
    >>> rng = np.random.default_rng(0)
    >>> run = compare(rng.normal(size=(60, 2)), {"gen": rng.normal(size=(30, 2))},
    ...               pathlib.Path(tempfile.mkdtemp()) / "run", k=3, report=False)
    >>> chosen = select(run.path, Rule.most_common(2))
    >>> [s.rank for s in chosen.rows], chosen.score_name
    ([1, 2], 'rarity')
    >>> print(chosen.missing_images())
    set 'gen' was scored from features, not images
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from rarity_score.io.names import printable, shorten
from rarity_score.io.run_record import IMAGE_KINDS
from rarity_score.results_dir import Results, SetResult, load_results

__all__ = ["RULES", "Rule", "Selected", "Selection", "select"]

#: The kinds of :class:`Rule`, as the command line spells them.
RULES = ("rarest", "most-common", "quantile", "out-of-manifold", "unauthentic")


def _count(value: Any, kind: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{kind}: N must be a whole number of at least 1, not {value!r}")
    return int(value)


def _fraction(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"quantile: {what} must be a number in [0, 1], not {value!r}")
    number = float(value)
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise ValueError(f"quantile: {what} must lie in [0, 1], not {value!r}")
    return number


@dataclass(frozen=True)
class Rule:
    """Which samples of a set to select, and in which order (see the module documentation).

    Build one with a class method: ``Rule.rarest(100)``, ``Rule.most_common(10)``,
    ``Rule.quantile(0.0, 0.1)``, ``Rule.out_of_manifold()``, ``Rule.unauthentic()``. A bad
    value is a ValueError naming the rule.

    >>> Rule.quantile(0.9, 1).describe()
    'the in-manifold samples with rarity between its 0.9 and 1 quantiles, most common first'
    >>> Rule.rarest(0)
    Traceback (most recent call last):
    ...
    ValueError: rarest: N must be a whole number of at least 1, not 0
    """

    kind: str
    count: int | None = None
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in RULES:
            raise ValueError(f"unknown rule {self.kind!r}; expected one of {', '.join(RULES)}")
        takes_count = self.kind in ("rarest", "most-common")
        if takes_count:
            object.__setattr__(self, "count", _count(self.count, self.kind))
        elif self.count is not None:
            raise ValueError(f"{self.kind} takes no count")
        if self.kind == "quantile":
            low, high = _fraction(self.low, "LO"), _fraction(self.high, "HI")
            if low > high:
                raise ValueError(f"quantile: LO ({low:g}) must not exceed HI ({high:g})")
            object.__setattr__(self, "low", low)
            object.__setattr__(self, "high", high)
        elif self.low is not None or self.high is not None:
            raise ValueError(f"{self.kind} takes no quantiles")

    @classmethod
    def rarest(cls, n: int) -> Rule:
        """The ``n`` in-manifold samples of largest rarity, rarest first."""
        return cls("rarest", count=n)

    @classmethod
    def most_common(cls, n: int) -> Rule:
        """The ``n`` in-manifold samples of smallest rarity, most common first."""
        return cls("most-common", count=n)

    @classmethod
    def quantile(cls, low: float, high: float) -> Rule:
        """The in-manifold samples whose rarity lies between the ``low`` and ``high`` quantiles
        of the set's in-manifold rarities (both included), most common first."""
        return cls("quantile", low=low, high=high)

    @classmethod
    def out_of_manifold(cls) -> Rule:
        """Every sample out of the manifold, farthest from the real samples first."""
        return cls("out-of-manifold")

    @classmethod
    def unauthentic(cls) -> Rule:
        """Every likely copy of a real sample (``authentic`` false), closest copies first."""
        return cls("unauthentic")

    def describe(self) -> str:
        """What the rule selects, in words."""
        if self.kind == "rarest":
            return f"the {self.count} rarest in-manifold samples, rarest first"
        if self.kind == "most-common":
            return f"the {self.count} most common in-manifold samples, most common first"
        if self.kind == "quantile":
            return (
                f"the in-manifold samples with rarity between its {self.low:g} and "
                f"{self.high:g} quantiles, most common first"
            )
        if self.kind == "out-of-manifold":
            return "the samples out of the manifold, farthest from the real samples first"
        return "the likely copies of real samples, closest copies first"

    def to_dict(self) -> dict[str, Any]:
        """The rule as ``filter.json`` records it."""
        return {"kind": self.kind, "count": self.count, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Selected:
    """One selected sample: its row in the set, its name, its score (the value it was ordered
    by; None when the order is the row order) and its rank (from 1)."""

    row: int
    name: str
    score: float | None
    rank: int


@dataclass(frozen=True)
class Selection:
    """The samples :func:`select` chose, in rank order, with what they were chosen from:
    ``score_name`` is the column they were ordered by (``"rarity"``,
    ``"nearest_real_distance"``, ``"authenticity_ratio"``; ``"row"`` for the row order)."""

    results: Results
    item: SetResult
    rule: Rule
    rows: tuple[Selected, ...]
    score_name: str

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def names(self) -> list[str]:
        """The names of the selected samples, in rank order."""
        return [s.name for s in self.rows]

    def describe(self) -> str:
        """One line: how many of the set's samples were selected, and by which rule."""
        return (
            f"{len(self.rows)} of {self.item.n} samples of set {shorten(self.item.name)!r}: "
            f"{self.rule.describe()}"
        )

    def missing_images(self) -> str | None:
        """Why the set has no image files to copy or link (its features were scored, images
        held in memory, or paths the run did not record), in words; None when it has (the
        source the run recorded: a folder, an archive, a list file, an image file)."""
        item = self.item
        what = f"set {shorten(item.name)!r}"
        if item.has_images and item.kind in IMAGE_KINDS:
            return None
        if item.kind == "paths":
            return (
                f"the run did not record where the image files of {what} are (it was given a "
                "list of paths)"
            )
        if item.kind == "array":
            return f"{what} was scored from images held in memory (an array), not image files"
        if item.kind == "features":
            return f"{what} was scored from features, not images"
        return f"the run recorded no image files for {what}"


def select(
    results: Results | str | os.PathLike[str], rule: Rule, set_name: str | None = None
) -> Selection:
    """The samples of one set of ``results`` (a loaded results directory, or its path) that
    ``rule`` selects, in rank order; nothing is written.

    ``set_name`` picks the set (as ``run.json`` names it; default: the only set). A missing one
    while there are several sets, an unknown one, or a rule that needs a column the set does
    not hold (``unauthentic`` on a ``datasets`` run) is a ValueError naming what there is.
    """
    if not isinstance(results, Results):
        results = load_results(results)
    if not isinstance(rule, Rule):
        raise TypeError(f"rule must be a Rule (Rule.rarest(n), ...), not {type(rule).__name__}")
    if set_name is not None and not isinstance(set_name, str):
        raise TypeError(f"set_name must be a set's name (a str), not {type(set_name).__name__}")
    item = _pick_set(results, set_name)
    rows = np.arange(item.n)
    rarity = np.asarray(item.rarity, dtype=np.float64)
    inside = np.asarray(item.in_manifold, dtype=bool) & np.isfinite(rarity)
    score_name = "rarity"
    if rule.kind in ("rarest", "most-common"):
        chosen, key = rows[inside], rarity[inside]
        order = _order(-key if rule.kind == "rarest" else key, chosen)
        chosen = chosen[order][: rule.count]
    elif rule.kind == "quantile":
        assert rule.low is not None and rule.high is not None
        chosen = rows[inside]
        if chosen.size:
            low, high = np.quantile(rarity[inside], [rule.low, rule.high])
            chosen = chosen[(rarity[chosen] >= low) & (rarity[chosen] <= high)]
        chosen = chosen[_order(rarity[chosen], chosen)]
    elif rule.kind == "out-of-manifold":
        chosen = rows[~inside]
        distance = item.columns.get("nearest_real_distance")
        if distance is None:
            score_name = "row"
        else:
            score_name = "nearest_real_distance"
            chosen = chosen[_order(-np.asarray(distance, dtype=np.float64)[chosen], chosen)]
    else:
        authentic = item.columns.get("authentic")
        if authentic is None:
            raise ValueError(
                f"set {shorten(item.name)!r} of {printable(str(results.root))} holds no "
                "authenticity flags (a datasets run, or one without the authenticity metric): "
                "nothing tells which samples are copies; score it against a real set with "
                "authenticity"
            )
        chosen = rows[~np.asarray(authentic, dtype=bool)]
        ratio = item.columns.get("authenticity_ratio")
        if ratio is None:
            score_name = "row"
        else:
            score_name = "authenticity_ratio"
            chosen = chosen[_order(np.asarray(ratio, dtype=np.float64)[chosen], chosen)]
    values = None if score_name == "row" else np.asarray(item.columns[score_name], np.float64)
    selected = tuple(
        Selected(
            row=int(row),
            name=item.names[int(row)],
            score=None if values is None or math.isnan(values[row]) else float(values[row]),
            rank=rank,
        )
        for rank, row in enumerate(chosen, start=1)
    )
    return Selection(results=results, item=item, rule=rule, rows=selected, score_name=score_name)


def _order(key: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions sorting ``key`` ascending, equal keys by row (the documented tie rule); NaN
    last (a damaged file: numpy sorts NaN to the end)."""
    return np.lexsort((rows, key))


def _pick_set(results: Results, set_name: str | None) -> SetResult:
    names = [item.name for item in results.sets]
    listed = ", ".join(repr(shorten(name, 60)) for name in names[:20])
    if len(names) > 20:
        listed += f" and {len(names) - 20} more"
    root = printable(str(results.root))
    if set_name is None:
        if len(results.sets) == 1:
            return results.sets[0]
        raise ValueError(
            f"{root} holds {len(names)} sets ({listed}); say which one to select from (--set NAME)"
        )
    for item in results.sets:
        if item.name == set_name:
            return item
    raise ValueError(f"{root} holds no set {shorten(set_name)!r}; its sets: {listed}")
