"""Thumbnails of the few images a report shows, made from the saved image sources.

A results directory is untrusted input, so no image is opened unless its source is the one the
run used (:func:`rarity_score.io.recorded.open_recorded`: the recorded source reopened, its
fingerprint compared with the recorded one, images found by their printed names among the
source's own, never used as paths). A source without a recorded fingerprint (written by an
older version) or whose fingerprint differs gives placeholders saying so, not thumbnails.
Thumbnail files are named by set and row number, so no user-given name reaches the file
system. A source that moved or an image that no longer decodes gives a placeholder with the
reason, not a failed report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rarity_score.io.images import ImageInputError, UnreadableImage
from rarity_score.io.names import printable, shorten
from rarity_score.io.recorded import ImageOrigin, RecordedImages, SourceRefused, open_recorded

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["ImageOrigin", "Thumb", "ThumbnailMaker"]

logger = logging.getLogger(__name__)

#: Longest side of a thumbnail, in pixels.
THUMB_SIZE = 96

#: Placeholder texts of images that are not shown because their source is not verified.
NO_FINGERPRINT = "not shown: the run recorded no fingerprint of these images"
CHANGED = "not shown: these are not the images the run used (fingerprint differs)"

#: The placeholder of each :attr:`~rarity_score.io.recorded.SourceRefused.reason`. The
#: refusal's own message is not shown: it may quote what the source holds (a list file's
#: lines), and the source is the results directory's word, not the run's.
_REFUSED = {
    "no-source": "not shown: the run recorded no source of these images",
    "no-fingerprint": NO_FINGERPRINT,
    "not-found": "images not found at the recorded source",
    "unreadable": "images not readable at the recorded source",
    "changed": CHANGED,
}


@dataclass(frozen=True)
class Thumb:
    """A thumbnail made (``path`` relative to the report folder, with its size) or the reason
    why there is none (``error``)."""

    path: str | None = None
    width: int = 0
    height: int = 0
    error: str | None = None


@dataclass(frozen=True)
class _Request:
    group: str  # a file-safe folder name under thumbs/
    origin: ImageOrigin
    name: str


_Key = tuple[str, ImageOrigin, str]


def _open(origin: ImageOrigin) -> RecordedImages | str:
    """The verified source of ``origin``, or the placeholder text saying why there is none."""
    try:
        return open_recorded(origin, "the images")
    except SourceRefused as refused:
        if refused.reason == "not-images":
            return f"not shown: the source is {shorten(printable(origin.kind or ''))}, not images"
        return _REFUSED.get(refused.reason, "images not readable at the recorded source")


class ThumbnailMaker:
    """Collects the images a report needs, then makes their thumbnails in one parallel pass.

    ``request`` returns a key; after :meth:`make`, :meth:`get` gives the :class:`Thumb` of that
    key. The same image asked for twice is made once.
    """

    def __init__(self, folder: Path, *, size: int = THUMB_SIZE) -> None:
        self.folder = folder
        self.size = size
        self._requests: dict[_Key, _Request] = {}
        self._files: dict[_Key, str] = {}
        self._done: dict[_Key, Thumb] = {}
        self._lookups: dict[ImageOrigin, RecordedImages | str] = {}

    def request(self, group: str, origin: ImageOrigin, name: str, row: int) -> _Key:
        """Ask for the thumbnail of image ``name`` of ``origin``; ``row`` names its file."""
        key = (group, origin, name)
        if key not in self._requests:
            self._requests[key] = _Request(group, origin, name)
            self._files[key] = f"thumbs/{group}/{row}.jpg"
        return key

    def refused(self) -> dict[str, str]:
        """Source -> why none of its images is shown, for the sources that were not verified
        or could not be opened (after :meth:`make`)."""
        return {
            origin.source: lookup
            for origin, lookup in self._lookups.items()
            if isinstance(lookup, str)
        }

    def get(self, key: _Key) -> Thumb:
        """The thumbnail made for ``key`` (or why there is none)."""
        return self._done.get(key, Thumb(error="not made"))

    def make(self, workers: int | None = None) -> None:
        """Decode and shrink every requested image (threads: Pillow releases the GIL)."""
        keys = [key for key in self._requests if key not in self._done]
        if not keys:
            return
        try:
            import PIL.Image  # noqa: F401  (only to tell a missing Pillow apart)
        except ImportError:
            for key in keys:
                reason = "Pillow is not installed: pip install 'rarity-score[images]'"
                self._done[key] = Thumb(error=reason)
            return
        for origin in dict.fromkeys(self._requests[key].origin for key in keys):
            if origin not in self._lookups:
                self._lookups[origin] = _open(origin)
        workers = workers or min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for key, thumb in zip(keys, pool.map(self._make_one, keys), strict=True):
                self._done[key] = thumb
        for lookup in self._lookups.values():
            if not isinstance(lookup, str):
                lookup.close()

    def _make_one(self, key: _Key) -> Thumb:
        request = self._requests[key]
        lookup = self._lookups[request.origin]
        if isinstance(lookup, str):
            return Thumb(error=lookup)
        position = lookup.find(request.name)
        if position is None:
            return Thumb(error="no longer in its source")
        try:
            image = lookup.collection.load(position)
        except (UnreadableImage, ImageInputError) as error:
            return Thumb(error=getattr(error, "reason", "unreadable"))
        image.thumbnail((self.size, self.size))  # keeps the aspect ratio, never enlarges
        relative = self._files[key]
        target = self.folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, "JPEG", quality=88)
        return Thumb(path=relative, width=image.width, height=image.height)


def unique(values: Iterable[int]) -> list[int]:
    """``values`` without repeats, first occurrence kept."""
    return list(dict.fromkeys(values))
