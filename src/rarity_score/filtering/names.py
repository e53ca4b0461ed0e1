"""The file names of an output folder of ``rarity filter``: the rank zero-padded to the width of
the count, ``_``, then the original's base name made a safe file name (no folder separators, no
control or format characters, at most 150 bytes of UTF-8; a longer name keeps its extension and
a hash of the whole name)."""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Sequence

from rarity_score.filtering.rules import Selection
from rarity_score.io.names import printable

__all__ = ["file_names"]

#: Longest base name kept (bytes of UTF-8), below the 255-byte limit of a file name with room
#: for the rank.
_MAX_BASE_BYTES = 150

_FORBIDDEN = re.compile(r'[\\/:*?"<>|]')


def _unsafe(char: str) -> bool:
    """Control, format (bidirectional overrides), private-use and unassigned characters, and
    line or paragraph separators: nothing a file name should hold."""
    category = unicodedata.category(char)
    return category[0] == "C" or category in ("Zl", "Zp")


def _safe_base(name: str) -> str:
    """The base name of ``name`` made a safe file name: the part after the last ``/`` (names
    are POSIX paths; a backslash, which :func:`~rarity_score.io.names.printable` escapes use, is
    no separator but is replaced), printable, without reserved punctuation, control or format
    characters, at most :data:`_MAX_BASE_BYTES` bytes (a longer one keeps its extension and a
    hash of the name)."""
    base = name.rsplit("/", 1)[-1]
    text = printable(base)  # control characters and undecodable bytes become \\xNN
    text = "".join("_" if _unsafe(char) else char for char in _FORBIDDEN.sub("_", text))
    text = text.rstrip(" .") or "image"  # Windows drops trailing dots and spaces
    if len(text.encode("utf-8")) <= _MAX_BASE_BYTES:
        return text
    stem, suffix = os.path.splitext(text)
    if len(suffix.encode("utf-8")) > 16:
        stem, suffix = text, ""
    whole = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    room = _MAX_BASE_BYTES - len(suffix.encode("utf-8")) - len(whole) - 1
    cut = stem.encode("utf-8")[:room].decode("utf-8", "ignore")  # never half a character
    return f"{cut}-{whole}{suffix}"


def file_names(selection: Selection) -> list[str]:
    """The file names of the selected samples in an output folder: the rank zero-padded to the
    width of the count, ``_``, the original's base name made safe. Distinct by their rank.

    >>> _ranked([(7, "sub/00123_digit4.png"), (100, "../x\\nevil.png")], width=3)
    ['007_00123_digit4.png', '100_x_x0aevil.png']
    """
    width = len(str(len(selection.rows)))
    return _ranked([(s.rank, s.name) for s in selection.rows], width)


def _ranked(pairs: Sequence[tuple[int, str]], width: int) -> list[str]:
    return [f"{rank:0{width}d}_{_safe_base(name)}" for rank, name in pairs]
