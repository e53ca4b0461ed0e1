"""Lining up the sets and samples of several results directories, one per feature space.

- Sets are matched by set name: those present in every directory, in the first directory's
  order. None in common is an error; the sets missing somewhere are left out with one warning
  (logged) that names them.
- Samples are matched by image name when every space's set has unique names that are not the
  ``"#i"`` placeholders of unnamed features, each space's rows reordered to the first space's
  order; the names must then be the same in every space. Otherwise they are matched by row, and
  the counts must agree (and the names, row by row, between two spaces that both hold real
  names).
  Matching by row while some space does name its samples is said in one warning per set: the
  rows must then be the same images in the same order, which nothing can check.
- The real sets must agree too: the same count, and the same names (in any order) between two
  spaces that both saved them all (a warning when only some did: checked by count only). A
  directory that scored a random subset of the real set (``--subsample``: its ``run.json``
  records ``subsampled_from``) may differ in count from another of the same real set (the
  same count before the subset; the subset's names among the whole set's, where both saved
  them): then one warning (logged, and kept in :attr:`Aligned.warnings` for the output to
  show) names the directories and their reference sizes, as k-NN radii shrink as the
  reference set grows and rarity is comparable only at equal reference size.
- Where two directories record the ``images_fingerprint`` of a set (or of the real set) and
  the two differ, one warning names the set and both directories: the spaces may not have
  scored the same images (the fingerprint covers the files' names, sizes and modification
  times, so a copy of the same images differs too). ``same_images`` records it: True when
  every space records one and they agree, False when two differ, None when not every space
  records one.

Every mismatch is a ValueError of one line naming the two directories, the set and up to three
differing names. A ``datasets`` results directory (each set its own reference) is refused: the
spaces are compared on generated sets scored against one real set.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rarity_score.io.names import printable, shorten
from rarity_score.results_dir.read import Results, SetResult
from rarity_score.spaces.agreement import percentiles

__all__ = [
    "Aligned",
    "AlignedSet",
    "align",
    "is_placeholder",
    "real_count",
    "reference_sizes",
    "subsampled_from",
]

logger = logging.getLogger(__name__)

_SHOWN = 3  # differing names a message shows


@dataclass(frozen=True)
class AlignedSet:
    """One set as every space sees it, rows in the first space's order.

    ``rows[s][i]`` is the row of sample ``i`` in space ``s``'s own set (its results directory's
    arrays); ``rarity``, ``percentile``, ``in_manifold`` and ``nearest_real_index`` are (n,
    spaces), column ``s`` from space ``s``. ``nearest_real_index`` counts rows of space ``s``'s
    own real set (-1: not saved, or out of range); ``source``, ``kind`` and
    ``images_fingerprint`` are those of the first space whose set has images (else the first
    space's).
    """

    name: str
    names: list[str]
    matched_by: str
    rows: tuple[np.ndarray, ...] = field(repr=False)
    rarity: np.ndarray = field(repr=False)
    percentile: np.ndarray = field(repr=False)
    in_manifold: np.ndarray = field(repr=False)
    nearest_real_index: np.ndarray = field(repr=False)
    source: str | None = None
    kind: str | None = None
    images_fingerprint: str | None = None
    #: The set in each space's results directory, in the order of the spaces.
    items: tuple[SetResult, ...] = field(default=(), repr=False)
    #: Whether the spaces' directories record the same images for the set (see the module).
    same_images: bool | None = None

    @property
    def n(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class Aligned:
    """The spaces (names and results directories, in order) and their sets in common."""

    spaces: tuple[str, ...]
    results: tuple[Results, ...] = field(repr=False)
    sets: tuple[AlignedSet, ...]
    #: Set name -> the spaces whose directory lacks it, for the sets left out.
    left_out: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: How the real sets were checked: ``"name"`` (every space saved their names) or ``"row"``.
    real_matched_by: str = "row"
    #: Whether the spaces' directories record the same real images (see the module).
    real_same_images: bool | None = None
    #: What the output shows as warnings: the reference sizes when they differ.
    warnings: tuple[str, ...] = ()


def is_placeholder(names: Sequence[str]) -> bool:
    """Whether ``names`` are the ``"#i"`` stand-ins of unnamed rows (``"#0"``, ``"#1"``, ...),
    which say nothing about which image a row is.

    >>> is_placeholder(["#0", "#1"]), is_placeholder(["a.png", "b.png"]), is_placeholder([])
    (True, False, True)
    """
    return all(name == f"#{i}" for i, name in enumerate(names))


def _named(names: Sequence[str]) -> bool:
    """Names that identify the samples: unique, and not the placeholders."""
    return not is_placeholder(names) and len(set(names)) == len(names)


def _dir(results: Results) -> str:
    return shorten(str(results.root), 120)


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(repr(shorten(name, 60)) for name in names[:_SHOWN])
    more = len(names) - _SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _mismatch(first: Results, other: Results, what: str, detail: str) -> ValueError:
    return ValueError(
        f"{_dir(first)} and {_dir(other)} do not hold the same samples in {what}: {detail}"
    )


def align(named: Sequence[tuple[str, Results]]) -> Aligned:
    """Match the sets and samples of the results directories ``named`` (space name, loaded
    directory), in the order given (the first space's order wins); see the module's
    documentation for the rules. Raises ValueError (one line) on any mismatch.

    >>> import numpy as np, tempfile, pathlib
    >>> from rarity_score.compare import compare
    >>> from rarity_score.features.pipeline import FeatureSet
    >>> from rarity_score.results_dir import load_results
    >>> rng = np.random.default_rng(0)
    >>> real, fake = rng.normal(size=(60, 3)), rng.normal(size=(20, 3))
    >>> names = [f"img{i}.png" for i in range(20)]
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> a = compare(real, {"s": FeatureSet(fake, names)}, folder / "a", report=False).path
    >>> b = compare(2 * real, {"s": FeatureSet(2 * fake[::-1], names[::-1])}, folder / "b",
    ...             report=False).path
    >>> aligned = align([("A", load_results(a)), ("B", load_results(b))])
    >>> item = aligned.sets[0]
    >>> item.matched_by, item.rarity.shape, bool(np.array_equal(item.rows[1], np.arange(20)[::-1]))
    ('name', (20, 2), True)
    """
    if len(named) < 2:
        raise ValueError(f"give at least two spaces to compare, not {len(named)}")
    spaces = tuple(name for name, _ in named)
    everything = tuple(results for _, results in named)
    for results in everything:
        if results.datasets_mode:
            raise ValueError(
                f"{_dir(results)} is a datasets results directory (each set scored against "
                "itself); give results directories of rarity compare or rarity score --report, "
                "which score generated sets against one real set"
            )
    real_by = _check_reals(everything)
    real_prints = [
        (results.run.get("real") or {}).get("images_fingerprint") for results in everything
    ]
    real_same = _same_images("the real set", everything, real_prints)
    by_name = [_sets_by_name(results) for results in everything]
    common = [name for name in by_name[0] if all(name in sets for sets in by_name[1:])]
    left_out: dict[str, tuple[str, ...]] = {}
    for name in dict.fromkeys(n for sets in by_name for n in sets):
        lacking = tuple(s for s, sets in zip(spaces, by_name, strict=True) if name not in sets)
        if lacking:
            left_out[name] = lacking
    if not common:
        listed = "; ".join(
            f"{_dir(results)}: {_listed(list(sets))}"
            for results, sets in zip(everything, by_name, strict=True)
        )
        raise ValueError(f"the results directories have no set in common ({listed})")
    if left_out:
        logger.warning(
            "sets not in every results directory are left out: %s",
            "; ".join(
                f"{shorten(name, 60)!r} (not in {', '.join(shorten(s, 60) for s in lacking)})"
                for name, lacking in left_out.items()
            ),
        )
    sets = tuple(
        _align_set(name, everything, tuple(sets[name] for sets in by_name)) for name in common
    )
    sizes = reference_sizes(spaces, everything)
    if sizes is not None:
        logger.warning("%s", sizes)
    return Aligned(
        spaces=spaces,
        results=everything,
        sets=sets,
        left_out=left_out,
        real_matched_by=real_by,
        real_same_images=real_same,
        warnings=() if sizes is None else (sizes,),
    )


def subsampled_from(results: Results) -> int | None:
    """The size of the real set before the random subset a results directory scored
    (``--subsample``; None: the whole set, or not recorded)."""
    real = results.run.get("real")
    return None if real is None else real["subsampled_from"]  # checked by the reader


def reference_sizes(spaces: Sequence[str], everything: Sequence[Results]) -> str | None:
    """The warning (one line) that the results directories scored against real sets of
    different sizes, naming each space, its size (``20 of 24``: a subset) and directory;
    None when the sizes recorded are the same.

    >>> import numpy as np, tempfile, pathlib
    >>> from rarity_score.compare import compare
    >>> from rarity_score.results_dir import load_results
    >>> rng = np.random.default_rng(0)
    >>> real, fake = rng.normal(size=(40, 3)), rng.normal(size=(10, 3))
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> a = load_results(compare(real, {"s": fake}, folder / "a", report=False).path)
    >>> b = load_results(compare(real[:30], {"s": fake}, folder / "b", report=False).path)
    >>> reference_sizes(["A", "A again"], [a, a]) is None
    True
    >>> reference_sizes(["A", "B"], [a, b]).startswith("the real sets differ in size (A: 40")
    True
    """
    counts = [real_count(results) for results in everything]
    if len({n for n in counts if n is not None}) < 2:
        return None
    parts = []
    for space, results, n in zip(spaces, everything, counts, strict=True):
        whole = subsampled_from(results)
        size = "not recorded" if n is None else f"{n}" + (f" of {whole}" if whole else "")
        parts.append(f"{shorten(printable(space), 40)}: {size} in {_dir(results)}")
    return (
        f"the real sets differ in size ({'; '.join(parts)}): k-NN radii shrink as the reference "
        "set grows, so rarity is comparable only at equal reference size, and the agreement of "
        "these spaces mixes their difference with the reference sizes'; score every space "
        "with the same real set (the same --subsample)"
    )


def _same_images(
    what: str, everything: Sequence[Results], fingerprints: Sequence[str | None]
) -> bool | None:
    """Whether the directories record the same images for ``what`` (see the module); one
    warning, naming the first two that differ, when they do not."""
    recorded = [
        (results, value) for results, value in zip(everything, fingerprints, strict=True) if value
    ]
    for results, value in recorded[1:]:
        first, expected = recorded[0]
        if value != expected:
            logger.warning(
                "%s: %s and %s record different image fingerprints: the spaces may not have "
                "scored the same images",
                what,
                _dir(first),
                _dir(results),
            )
            return False
    return True if len(recorded) == len(everything) else None


def _sets_by_name(results: Results) -> dict[str, SetResult]:
    out: dict[str, SetResult] = {}
    for item in results.sets:
        if item.name in out:
            raise ValueError(
                f"{_dir(results)}: two sets are named {shorten(item.name, 60)!r}; a results "
                "directory holds each set once"
            )
        out[item.name] = item
    return out


def real_count(results: Results) -> int | None:
    """The number of real samples a results directory scored against (``run.json``, else its
    saved reference curve); None when it records neither."""
    real = results.run.get("real") or {}
    n = real.get("n")
    if n is None and results.reference_rarity is not None:
        n = int(results.reference_rarity.size)
    return None if n is None else int(n)


def _full_names(results: Results, n: int | None) -> list[str] | None:
    """The real set's names, when all of them are saved and they name the images."""
    names = results.real_names
    if names is None or n is None or len(names) != n or "" in names or not _named(names):
        return None
    return names


def _check_reals(everything: Sequence[Results]) -> str:
    first = everything[0]
    n_first = real_count(first)
    names_first = _full_names(first, n_first)
    unnamed = [] if names_first is not None else [first]
    for other in everything[1:]:
        n_other = real_count(other)
        names_other = _full_names(other, n_other)
        if names_other is None:
            unnamed.append(other)
        if n_first is not None and n_other is not None and n_first != n_other:
            if not _subsets_of_one(first, other):
                raise _mismatch(
                    first, other, "the real set", f"{n_first} and {n_other} real samples"
                )
            if names_first is not None and names_other is not None:
                _check_within(first, other, names_first, names_other)
            continue
        if names_first is not None and names_other is not None:
            _check_same_names(first, other, "the real set", names_first, names_other)
    if unnamed and len(unnamed) < len(everything):
        logger.warning(
            "the real set: matched by row, by its count only, as %s saves no unique names of its "
            "real samples; the real sets must be the same images",
            ", ".join(_dir(results) for results in unnamed),
        )
    return "row" if unnamed else "name"


def _whole(results: Results) -> int | None:
    """The size of a directory's real set before any subset of it was scored."""
    whole = subsampled_from(results)
    return whole if whole is not None else real_count(results)


def _subsets_of_one(first: Results, other: Results) -> bool:
    """Whether two real sets of different counts may be one real set, one or both of them a
    random subset of it (``--subsample``): one is recorded as a subset, of the same size."""
    return (subsampled_from(first) is not None or subsampled_from(other) is not None) and (
        _whole(first) == _whole(other)
    )


def _check_within(
    first: Results, other: Results, names: Sequence[str], others: Sequence[str]
) -> None:
    """A subset's real names among those of the whole set (when one of the two is whole)."""
    if subsampled_from(first) is None:
        whole, part, part_results = names, others, other
    elif subsampled_from(other) is None:
        whole, part, part_results = others, names, first
    else:
        return  # two subsets of other sizes: nothing to compare them by
    held = set(whole)
    missing = [name for name in part if name not in held]
    if missing:
        raise _mismatch(
            first,
            other,
            "the real set",
            f"{_dir(part_results)} scored a subset of real samples not in the other's: "
            f"{_listed(missing)}",
        )


def _check_same_names(
    first: Results, other: Results, what: str, names: Sequence[str], others: Sequence[str]
) -> None:
    """The same names (as multisets), else a mismatch naming up to three of the differences."""
    mine, theirs = Counter(names), Counter(others)
    only_first = [name for name in mine if mine[name] > theirs.get(name, 0)]
    only_other = [name for name in theirs if theirs[name] > mine.get(name, 0)]
    if only_first or only_other:
        parts = []
        if only_first:
            parts.append(f"only in the first: {_listed(only_first)}")
        if only_other:
            parts.append(f"only in the second: {_listed(only_other)}")
        raise _mismatch(first, other, what, "; ".join(parts))


def _align_set(name: str, everything: Sequence[Results], items: Sequence[SetResult]) -> AlignedSet:
    what = f"set {shorten(name, 60)!r}"
    for results, item in zip(everything, items, strict=True):
        _check_flags(results, item)
    first_results, first = everything[0], items[0]
    rows: list[np.ndarray] = []
    if all(_named(item.names) for item in items):
        matched_by = "name"
        for results, item in zip(everything, items, strict=True):
            if item is not first:
                _check_same_names(first_results, results, what, first.names, item.names)
            position = {sample: row for row, sample in enumerate(item.names)}
            rows.append(np.array([position[sample] for sample in first.names], dtype=np.int64))
    else:
        matched_by = "row"
        if not all(is_placeholder(item.names) for item in items):
            logger.warning(
                "%s: samples matched by row, as %s; the rows must be the same images in the "
                "same order",
                what,
                "; ".join(
                    f"{_dir(results)} "
                    + ("names none of them" if is_placeholder(item.names) else "repeats names")
                    for results, item in zip(everything, items, strict=True)
                    if not _named(item.names)
                ),
            )
        for results, item in zip(everything, items, strict=True):
            if item.n != first.n:
                raise _mismatch(
                    first_results,
                    results,
                    what,
                    f"{first.n} and {item.n} samples, matched by row (not every space names its "
                    "samples uniquely)",
                )
            if not is_placeholder(first.names) and not is_placeholder(item.names):
                differing = [
                    i
                    for i, (a, b) in enumerate(zip(first.names, item.names, strict=True))
                    if a != b
                ]
                if differing:
                    shown = ", ".join(
                        f"row {i}: {shorten(first.names[i], 40)!r} / {shorten(item.names[i], 40)!r}"
                        for i in differing[:_SHOWN]
                    )
                    more = len(differing) - _SHOWN
                    raise _mismatch(
                        first_results,
                        results,
                        what,
                        f"names differ by row ({shown}{f' and {more} more' if more > 0 else ''})",
                    )
            rows.append(np.arange(item.n, dtype=np.int64))
    rarity = np.stack([item.rarity[r] for item, r in zip(items, rows, strict=True)], axis=1)
    in_manifold = np.stack(
        [item.in_manifold[r] for item, r in zip(items, rows, strict=True)], axis=1
    )
    nearest = np.stack(
        [
            _nearest(results, item)[r]
            for results, item, r in zip(everything, items, rows, strict=True)
        ],
        axis=1,
    )
    pictured = next((i for i in items if i.has_images and i.images_fingerprint), first)
    return AlignedSet(
        name=name,
        names=[printable(sample) for sample in first.names],
        matched_by=matched_by,
        rows=tuple(rows),
        rarity=np.asarray(rarity, dtype=np.float64).reshape(first.n, len(items)),
        percentile=percentiles(np.asarray(rarity, dtype=np.float64).reshape(first.n, len(items))),
        in_manifold=np.asarray(in_manifold, dtype=bool).reshape(first.n, len(items)),
        nearest_real_index=np.asarray(nearest, dtype=np.int64).reshape(first.n, len(items)),
        source=pictured.source,
        kind=pictured.kind,
        images_fingerprint=pictured.images_fingerprint,
        items=tuple(items),
        same_images=_same_images(what, everything, [item.images_fingerprint for item in items]),
    )


def _check_flags(results: Results, item: SetResult) -> None:
    """The in-manifold flags are the finite rarities (what the statistics count on)."""
    rarity = np.asarray(item.rarity, dtype=np.float64)
    if np.isinf(rarity).any():
        raise ValueError(f"{item.source_file or _dir(results)}: rarity holds an infinite value")
    if not np.array_equal(np.asarray(item.in_manifold, dtype=bool), np.isfinite(rarity)):
        raise ValueError(
            f"{item.source_file or _dir(results)}: in_manifold does not match the finite "
            "rarity scores (a damaged or edited file)"
        )


def _nearest(results: Results, item: SetResult) -> np.ndarray:
    """The set's nearest real rows (-1 where not saved or not a row of the real set)."""
    values = item.columns.get("nearest_real_index")
    if values is None:
        return np.full(item.n, -1, dtype=np.int64)
    out = np.asarray(values, dtype=np.int64).copy()
    n_real = real_count(results)
    if n_real is not None:
        out[(out < 0) | (out >= n_real)] = -1
    return out
