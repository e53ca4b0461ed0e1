"""Thumbnails of the few images a report shows, made from the saved image sources.

A results directory is untrusted input, so no image is opened unless its source is the one the
run used: the source recorded in ``run.json`` is reopened with
:func:`rarity_score.io.images.open_images` and its
:meth:`~rarity_score.io.images.ImageCollection.fingerprint` must equal the ``images_fingerprint``
the run recorded, before any image is read. A source without a recorded fingerprint (written by
an older version) or whose fingerprint differs gives placeholders saying so, not thumbnails.
Within a matching source, a per-sample name is looked up among the source's own names (never
used as a path), so ``../x.png`` or an absolute path finds nothing. Thumbnail files are named by
set and row number, so no user-given name reaches the file system. A source that moved or an
image that no longer decodes gives a placeholder with the reason, not a failed report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rarity_score.io.images import ImageCollection, ImageInputError, UnreadableImage, open_images
from rarity_score.io.names import printable, shorten
from rarity_score.io.run_record import IMAGE_KINDS

if TYPE_CHECKING:
    from pathlib import Path

    from PIL import Image

__all__ = ["ImageOrigin", "Thumb", "ThumbnailMaker"]

logger = logging.getLogger(__name__)

#: Longest side of a thumbnail, in pixels.
THUMB_SIZE = 96

#: Placeholder texts of images that are not shown because their source is not verified.
NO_FINGERPRINT = "not shown: the run recorded no fingerprint of these images"
CHANGED = "not shown: these are not the images the run used (fingerprint differs)"


@dataclass(frozen=True)
class ImageOrigin:
    """An image source as the run recorded it: the source, its kind and its fingerprint."""

    source: str
    kind: str | None
    fingerprint: str | None


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


class _Lookup:
    """One image source, opened once and checked against the run's fingerprint, that finds
    images by name."""

    def __init__(self, origin: ImageOrigin) -> None:
        self.error: str | None = None
        self.collection: ImageCollection | None = None
        self.index: dict[str, int] = {}
        if origin.kind is not None and origin.kind not in IMAGE_KINDS:
            self.error = f"not shown: the source is {shorten(printable(origin.kind))}, not images"
            return
        if origin.fingerprint is None:
            self.error = NO_FINGERPRINT
            return
        try:
            collection = open_images(origin.source)
            try:
                matches = collection.fingerprint() == origin.fingerprint
            except BaseException:
                collection.close()
                raise
        # The reason is not shown: it may quote what the source holds (a list file's lines),
        # and the source is the results directory's word, not the run's.
        except ImageInputError:
            self.error = "images not found at the recorded source"
            return
        except OSError:
            self.error = "images not readable at the recorded source"
            return
        if not matches:
            collection.close()
            self.error = CHANGED
            return
        self.collection = collection
        # Names beside the scores were written through io.names.printable; two names of the
        # source that print alike cannot be told apart, so neither is found.
        ambiguous: set[str] = set()
        for position, name in enumerate(collection.names):
            shown = printable(name)
            if shown in self.index:
                ambiguous.add(shown)
            self.index.setdefault(shown, position)
        for shown in ambiguous:
            del self.index[shown]

    def load(self, name: str) -> Image.Image:
        """Decode image ``name``; raises :class:`UnreadableImage` or :class:`LookupError`."""
        position = self.index.get(name)
        if self.collection is None or position is None:
            raise LookupError(name)
        return self.collection.load(position)


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
        self._lookups: dict[ImageOrigin, _Lookup] = {}

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
            origin.source: lookup.error
            for origin, lookup in self._lookups.items()
            if lookup.error is not None
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
                self._lookups[origin] = _Lookup(origin)
        workers = workers or min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for key, thumb in zip(keys, pool.map(self._make_one, keys), strict=True):
                self._done[key] = thumb
        for lookup in self._lookups.values():
            if lookup.collection is not None:
                lookup.collection.close()

    def _make_one(self, key: _Key) -> Thumb:
        request = self._requests[key]
        lookup = self._lookups[request.origin]
        if lookup.error is not None:
            return Thumb(error=lookup.error)
        try:
            image = lookup.load(request.name)
        except LookupError:
            return Thumb(error="no longer in its source")
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
