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
- :func:`shorten` cuts a long name for a one-line message.
"""

from __future__ import annotations

import re

__all__ = ["FORMULA_PREFIXES", "csv_cell", "printable", "shorten", "uncsv_cell"]

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
