"""The words of a spaces output: what ``rarity spaces`` prints (:func:`run_text`, with the
table of :func:`format_table`), ``summary.md`` (:func:`markdown`) and the notes ``run.json``
keeps (:data:`NOTES`)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from rarity_score.io.names import printable
from rarity_score.io.run_record import COMPARABILITY
from rarity_score.spaces.agreement import FRACTION

__all__ = [
    "COUNTS",
    "METHOD",
    "NOTES",
    "format_table",
    "interval_words",
    "markdown",
    "run_text",
    "size_words",
    "warnings_of",
]

#: ``run.json["method"]`` of a spaces output.
METHOD = "the rarity of the same samples in several feature spaces, compared by rank"

#: The keys of a summary row that count samples.
COUNTS = ("n", "n_in_both", "in_in", "in_out", "out_in", "out_out")

#: ``run.json["notes"]``: the conventions of the output in words.
NOTES = {
    "ranks": (
        "scores in different feature spaces have different units: spaces are compared by the "
        "ranks of rarity (Spearman, Kendall tau-b) over the samples in the manifold in both, "
        "by the agreement of the in-manifold flags (2 x 2 counts, Cohen's kappa), and by the "
        "overlap (Jaccard) of the rarest and of the most common samples in both"
    ),
    "jaccard": (
        "with m = ceil(fraction * n_in_both), the rarest samples of a space are every sample in "
        "the manifold in both spaces whose rarity there is at least the m-th largest of theirs "
        "(ties at that boundary all in, so there may be more than m; the row order never "
        "matters); the most common likewise, at most the m-th smallest"
    ),
    "percentile": (
        "within one space, over the set's in-manifold samples: 0 the most common, 100 the "
        "rarest (50 when only one is in); empty / NaN out of the manifold"
    ),
    "undefined": (
        "a correlation or a Jaccard index is null with fewer than 2 samples in both manifolds "
        "or a side constant over them; kappa is null when both flag arrays are constant and "
        "equal"
    ),
    "comparability": COMPARABILITY,
}


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if key in COUNTS:
        return str(int(value))
    return f"{float(value):.3f}"


#: The printed and Markdown tables: (heading, key) after the set and the pair.
_SHOWN = (
    ("n in both", "n_in_both"),
    ("spearman", "spearman"),
    ("kendall", "kendall"),
    ("kappa", "kappa"),
    ("in/in", "in_in"),
    ("in/out", "in_out"),
    ("out/in", "out_in"),
    ("out/out", "out_out"),
    ("jaccard rarest", "jaccard_rarest"),
    ("jaccard common", "jaccard_common"),
)


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The summary rows as an aligned text table (what ``rarity spaces`` prints): per set, one
    line per pair of spaces; undefined values are ``n/a``. in/out counts the samples in the
    manifold of the first space and out of the second.

    >>> rows = [{"set": "s", "space_a": "A", "space_b": "B", "n": 10, "n_in_both": 8,
    ...          "spearman": 0.9, "kendall": 0.75, "in_in": 8, "in_out": 1, "out_in": 0,
    ...          "out_out": 1, "kappa": 0.6, "jaccard_rarest": 1.0, "jaccard_common": None}]
    >>> print(format_table(rows), end="")  # doctest: +NORMALIZE_WHITESPACE
    set  spaces  n in both  spearman  kendall  kappa  in/in  in/out  out/in  out/out
         jaccard rarest  jaccard common
    s    A vs B          8     0.900    0.750  0.600      8       1       0        1
                  1.000             n/a
    """
    table = [["set", "spaces", *(heading for heading, _ in _SHOWN)]]
    for row in rows:
        pair = f"{printable(str(row['space_a']))} vs {printable(str(row['space_b']))}"
        cells = [_cell(key, row.get(key)) for _, key in _SHOWN]
        table.append([printable(str(row["set"])), pair, *cells])
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    lines = []
    for line in table:
        cells = [line[0].ljust(widths[0]), line[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(line[2:], widths[2:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    out = []
    for char in text:
        out.append("\\" + char if char in "\\`*_{}[]<>|" else char)
    return "".join(out)


def _space_words(space: Mapping[str, Any], dim_before: str) -> str:
    """A space's extractor, dimension and k (``dim_before`` opens the dimension's part), its
    real set's size when that is a random subset, and the bootstrap intervals its results
    directory holds."""
    extractor = space.get("extractor") or "unknown (precomputed features)"
    details = []
    if space.get("dim") is not None:
        details.append(f"{space['dim']}-d")
    if space.get("k") is not None:
        details.append(f"k = {space['k']}")
    whole = _count(space.get("n_real_subsampled_from"))
    if whole is not None and _count(space.get("n_real")) is not None:
        details.append(f"{space['n_real']} of {whole} real samples, a random subset")
    words = f"{extractor}{dim_before}{', '.join(details)})" if details else str(extractor)
    intervals = interval_words(space.get("bootstrap"))
    return f"{words}; {intervals} in its results directory" if intervals else words


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def interval_words(bootstrap: Any) -> str | None:
    """``95 % bootstrap intervals (200 resamples)`` of a space's ``bootstrap`` entry (None:
    no intervals).

    >>> interval_words({"resamples": 200, "level": 0.95}), interval_words(None)
    ('95 % bootstrap intervals (200 resamples)', None)
    """
    if not isinstance(bootstrap, Mapping):
        return None
    resamples, level = _count(bootstrap.get("resamples")), bootstrap.get("level")
    if resamples is None or not isinstance(level, (int, float)) or isinstance(level, bool):
        return None
    return f"{100 * float(level):g} % bootstrap intervals ({resamples} resamples)"


def size_words(entry: Mapping[str, Any]) -> str:
    """A set's size as shown: ``40 samples``, or ``40 samples (a random subset of 100)``."""
    words = f"{entry.get('n')} samples"
    whole = _count(entry.get("subsampled_from"))
    return f"{words} (a random subset of {whole})" if whole is not None else words


def warnings_of(run: Mapping[str, Any]) -> list[str]:
    """The warnings an output records (``run.json["warnings"]``; none in an older one)."""
    found = run.get("warnings")
    if not isinstance(found, list):
        return []
    return [printable(text) for text in found if isinstance(text, str) and text]


def _different_ks(run: Mapping[str, Any]) -> bool:
    return len({space.get("k") for space in run.get("spaces") or []}) > 1


def markdown(rows: Sequence[Mapping[str, Any]], run: Mapping[str, Any]) -> str:
    """``summary.md``: the spaces compared and the summary table in Markdown."""
    fraction = float(run.get("fraction") or FRACTION)
    lines = ["# Rarity across feature spaces", ""]
    if run.get("k") is not None:
        lines.append(f"- k: {run['k']}")
    elif _different_ks(run):
        lines.append("- k: **not the same in every space** (see each space)")
    for space in run.get("spaces") or []:
        words = _space_words(space, " (")
        lines.append(f"- space {_md_escape(str(space['name']))}: {_md_escape(words)}")
    for entry in run.get("sets") or []:
        if entry.get("same_images") is False:
            lines.append(
                f"- set {_md_escape(str(entry['name']))}: **the spaces' directories record "
                "different images**"
            )
    if run.get("real_same_images") is False:
        lines.append("- the real set: **the spaces' directories record different images**")
    for entry in run.get("sets") or []:
        if _count(entry.get("subsampled_from")) is not None:
            lines.append(f"- set {_md_escape(str(entry['name']))}: {_md_escape(size_words(entry))}")
    for warning in warnings_of(run):
        lines.append(f"- **warning**: {_md_escape(warning)}")
    lines += [
        "- correlations are over the samples in the manifold in both spaces; the Jaccard "
        f"columns compare the rarest and the most common {100 * fraction:g} % of them (ties "
        "at the boundary all in)",
        "",
        "| "
        + " | ".join(["set", "space a", "space b", *(heading for heading, _ in _SHOWN)])
        + " |",
        "|" + "|".join(["---"] * 3 + ["---:"] * len(_SHOWN)) + "|",
    ]
    for row in rows:
        cells = [_md_escape(str(row[key])) for key in ("set", "space_a", "space_b")]
        cells += [_cell(key, row.get(key)) for _, key in _SHOWN]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_text(run: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    """What ``rarity spaces`` (and ``rarity report`` of its output) prints: the spaces (each
    with its k), how the samples were matched, the agreement table and the note on what is
    compared.

    >>> run = {"k": 3, "spaces": [{"name": "A", "extractor": "pixels", "dim": 3072, "k": 3},
    ...                           {"name": "B", "extractor": None, "dim": 8, "k": 3}],
    ...        "sets": [{"name": "s", "n": 10, "matched_by": "name"}]}
    >>> print("\\n".join(run_text(run, []).splitlines()[:5]))
    Method: the rarity of the same samples in several feature spaces, compared by rank
    k = 3
    Space A: pixels (3072-d, k = 3)
    Space B: unknown (precomputed features) (8-d, k = 3)
    Set s: 10 samples, matched by image name
    """
    lines = [f"Method: {run.get('method') or METHOD}"]
    if run.get("k") is not None:
        lines.append(f"k = {run['k']}")
    elif _different_ks(run):
        lines.append("k: not the same in every space (scores of each space use its own k)")
    for space in run.get("spaces") or []:
        words = printable(_space_words(space, " ("))
        lines.append(f"Space {printable(str(space['name']))}: {words}")
    for entry in run.get("sets") or []:
        how = "image name" if entry.get("matched_by") == "name" else "row"
        line = f"Set {printable(str(entry['name']))}: {size_words(entry)}, matched by {how}"
        if entry.get("same_images") is False:
            line += " (the spaces' directories record different images of it)"
        lines.append(line)
    if run.get("real_same_images") is False:
        lines.append("Real set: the spaces' directories record different images of it")
    for entry in run.get("left_out") or []:
        missing = ", ".join(printable(str(name)) for name in entry.get("missing_in") or [])
        lines.append(f"Left out: set {printable(str(entry['name']))} (not in {missing})")
    for warning in warnings_of(run):
        lines.append(textwrap.fill(f"Warning: {warning}", width=88, subsequent_indent="  "))
    fraction = float(run.get("fraction") or FRACTION)
    note = (
        f"{NOTES['ranks'][0].upper()}{NOTES['ranks'][1:]}. The Jaccard columns compare the "
        f"rarest and the most common {100 * fraction:g} % (ties at the boundary all in); "
        "in/out counts samples in the manifold of the first space and out of the second; n/a: "
        "undefined."
    )
    return (
        "\n".join(lines) + "\n\n" + format_table(rows) + "\n" + textwrap.fill(note, width=88) + "\n"
    )
