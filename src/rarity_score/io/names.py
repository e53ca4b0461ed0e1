"""Names from untrusted sources (file names, set names) made safe to write and to show.

A name reaches the package from a file system (possibly not UTF-8: Python then holds the bad
bytes as lone surrogates, see :pep:`383`), from a command line or from a results directory. Every
name the package writes into a CSV, JSON, NPZ or markdown file, or puts into a message, passes
through one of these functions, so that writing can never fail on a name and a spreadsheet never
executes one.

- :func:`printable` escapes what is not printable text: a byte that is not UTF-8 becomes ``\\xNN``
  (its value in hex, 80 to ff), a control character below U+0080 (newline, tab, ...) ``\\xNN``
  (00 to 1f, 7f), any other control character or lone surrogate ``\\uXXXX``. Printable text,
  including any backslash, is kept as it is; a name that is already printable is unchanged.
- :func:`csv_cell` additionally neutralises a text cell a spreadsheet would read as a formula
  (one that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) by putting an
  apostrophe in front; a cell that already begins with an apostrophe gets one too, so removing
  exactly one leading apostrophe from every such cell gives the original text back.
- :func:`shorten` cuts a long name for a one-line message, :func:`one_line` a whole message.
- :func:`slugs` makes file names of set names (``sets/<slug>.csv``, the report's files).
- :func:`csv_value` and :func:`csv_text` are the one way the package writes a CSV cell and a
  CSV table.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "FORMULA_PREFIXES",
    "csv_cell",
    "csv_text",
    "csv_value",
    "one_line",
    "printable",
    "shorten",
    "slugs",
    "uncsv_cell",
]

#: First characters that make a spreadsheet treat a cell as a formula (OWASP "CSV injection"),
#: their full-width forms (which some spreadsheets read as the same), and the apostrophe itself
#: so that the neutralisation can be undone without ambiguity. Leading spaces do not hide them.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "'", "\uff1d", "\uff0b", "\uff0d", "\uff20")

# Lone surrogates (PEP 383 holds undecodable bytes as U+DC80..U+DCFF) and control characters.
_UNPRINTABLE = re.compile("[\ud800-\udfff\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name: show the byte
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x80:  # C0 controls and DEL (a \\x escape of 80 or more is always a byte)
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def printable(name: str) -> str:
    """Return ``name`` as printable, valid UTF-8 text (unprintable characters escaped).

    A name read from a file system that is not UTF-8 holds the bad bytes as lone surrogates and
    cannot be encoded; each such byte is written as ``\\xNN``. Control characters are escaped the
    same way, so a name always stays on one line.

    >>> printable("cat.png")
    'cat.png'
    >>> printable(b"caf\\xe9.png".decode("utf-8", "surrogateescape"))
    'caf\\\\xe9.png'
    >>> printable("two\\nlines")
    'two\\\\x0alines'
    >>> printable("caf\\u00e9 \\u732b")
    'café 猫'
    """
    if _UNPRINTABLE.search(name) is None:
        return name
    return _UNPRINTABLE.sub(_escape, name)


def csv_cell(text: str) -> str:
    """Return the text cell ``text`` safe for a CSV file opened in a spreadsheet.

    The text is made :func:`printable`; a cell that a spreadsheet would run as a formula, or
    one that already begins with an apostrophe, gets a leading apostrophe. Use it for text
    (names) only, never for numbers: ``-1.5`` must stay a number.

    >>> csv_cell("=HYPERLINK(\\"http://x\\")")
    '\\'=HYPERLINK("http://x")'
    >>> csv_cell("-rare.png"), csv_cell("'quoted"), csv_cell(" =1+1"), csv_cell("plain.png")
    ("'-rare.png", "''quoted", "' =1+1", 'plain.png')
    """
    text = printable(text)
    if _looks_like_formula(text):
        return "'" + text
    return text


def _looks_like_formula(text: str) -> bool:
    return text.lstrip(" ").startswith(FORMULA_PREFIXES)


def uncsv_cell(cell: str) -> str:
    """Undo :func:`csv_cell`'s neutralisation: remove exactly one leading apostrophe.

    >>> uncsv_cell(csv_cell("=1+1")), uncsv_cell(csv_cell("'a")), uncsv_cell("b")
    ('=1+1', "'a", 'b')
    """
    if cell.startswith("'") and _looks_like_formula(cell[1:]):
        return cell[1:]
    return cell


def shorten(text: str, limit: int = 80) -> str:
    """Return ``text`` made :func:`printable` and cut to about ``limit`` characters for a message.

    >>> shorten("short")
    'short'
    >>> shorten("x" * 10_000, limit=20)
    'xxxxxxxxxxxxxxxxxxx… (10000 characters)'
    """
    text = printable(text)
    if len(text) <= limit:
        return text
    return f"{text[: max(limit - 1, 1)]}… ({len(text)} characters)"


#: Characters of one word of a message (a path, a name) kept before it is cut.
LONGEST_WORD = 160


def one_line(message: object, limit: int | None = None) -> str:
    """``message`` (a text or an exception) as one printable line for the user: white space
    folded, each over-long word (a 10,000-character path or name) cut, and the whole cut to
    ``limit`` characters when given. An exception without a message gives its type's name.

    >>> one_line(ValueError("two\\nlines  and " + "x" * 300))[:24]
    'two lines and xxxxxxxxxx'
    >>> one_line(KeyError())
    'KeyError'
    """
    words = " ".join(shorten(word, LONGEST_WORD) for word in str(message).split())
    if not words and isinstance(message, BaseException):
        words = type(message).__name__
    return shorten(words, limit) if limit is not None else words


#: Longest slug kept as it is; a longer one is cut and given a hash of the whole name, so that
#: ``sets/<slug>.csv`` stays far below the 255-byte limit of a file name.
_SLUG_LIMIT = 100

#: File names Windows reserves whatever their extension.
_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"] + [f"{port}{i}" for port in ("com", "lpt") for i in range(1, 10)]
)


def slugs(names: Iterable[str]) -> list[str]:
    """File-safe, unique (also ignoring case) slugs of at most about 110 characters, one per
    name: letters, digits and ``._-``, never hidden, empty or a name Windows reserves. A long
    name keeps its first 100 characters and a hash of all.

    The writer of a results directory names the per-set files with them, and the reader makes
    the recorded slugs (untrusted) safe with them again; a slug it wrote comes back unchanged.

    >>> slugs(["psi=0.7", "PSI=0.7", "con", "../x", ""])
    ['psi_0.7', 'PSI_0.7-2', '_con', 'x', 'set']
    >>> len(slugs(["x" * 10_000])[0])
    111
    """
    out: list[str] = []
    taken: set[str] = set()
    for name in names:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "set"
        if len(base) > _SLUG_LIMIT and not _is_cut(base):
            whole = name.encode("utf-8", "surrogatepass")
            base = f"{base[:_SLUG_LIMIT].rstrip('._-')}-{hashlib.sha256(whole).hexdigest()[:10]}"
        if base.split(".")[0].lower() in _RESERVED:
            base = f"_{base}"
        slug, i = base, 2
        while slug.lower() in taken:
            slug, i = f"{base}-{i}", i + 1
        taken.add(slug.lower())
        out.append(slug)
    return out


def _is_cut(slug: str) -> bool:
    """Whether ``slug`` is already a cut one (its first characters and a hash): read back from a
    results directory, it stays as it was written."""
    return len(slug) <= _SLUG_LIMIT + 11 and re.fullmatch(r".+-[0-9a-f]{10}", slug) is not None


def csv_value(value: Any) -> str:
    """One CSV cell of the package's tables: empty for None and NaN, ``true``/``false`` for
    booleans, floats by ``repr`` (the shortest text that reads back to the same float64; +inf
    is ``inf``), integers as they are (``-1.5`` stays a number), and text through
    :func:`csv_cell`.

    >>> [csv_value(v) for v in (None, float("nan"), True, 0.1, float("inf"), -3, "=x")]
    ['', '', 'true', '0.1', 'inf', '-3', "'=x"]
    """
    if value is None:
        return ""
    if hasattr(value, "item") and not isinstance(value, str):  # a numpy scalar
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    return csv_cell(str(value))


def csv_text(header: Sequence[str], rows: Iterable[Mapping[str, str]]) -> str:
    """A CSV table (``\\n`` line ends, on every platform) of ``rows`` whose cells are already
    text (see :func:`csv_value`), with the columns of ``header`` in that order.

    >>> print(csv_text(["a", "b"], [{"a": "1", "b": "x,y"}]), end="")
    a,b
    1,"x,y"
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(header), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
