"""Thumbnails of the few images a report shows, made from the saved image sources.

Images are found again through the sources recorded in ``run.json`` and the per-sample names,
with :func:`rarity_score.io.images.open_images`; a name is looked up, never trusted as a path.
Thumbnail files are named by set and row number, so no user-given name reaches the file system.
A source that moved or an image that no longer decodes gives a placeholder with the reason, not
a failed report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rarity_score.io.images import ImageCollection, ImageInputError, UnreadableImage, open_images

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["Thumb", "ThumbnailMaker"]

logger = logging.getLogger(__name__)

#: Longest side of a thumbnail, in pixels.
THUMB_SIZE = 96


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
    source: str
    name: str


class _Lookup:
    """One image source, opened once, that finds images by name."""

    def __init__(self, source: str) -> None:
        self.error: str | None = None
        self.collection: ImageCollection | None = None
        self.index: dict[str, int] = {}
        self.folder: Path | None = None
        if os.path.isdir(source):
            # A folder's names are paths relative to it: open just the files shown instead of
            # listing (and stat'ing) a folder of 100,000 images.
            self.folder = Path(source)
            return
        try:
            self.collection = open_images(source)
        except ImageInputError as error:
            self.error = f"images not found ({error})"
            return
        except OSError as error:
            self.error = f"images not readable ({error})"
            return
        for position, name in enumerate(self.collection.names):
            self.index.setdefault(name, position)

    def load(self, name: str) -> Image.Image:
        """Decode image ``name``; raises :class:`UnreadableImage` or :class:`LookupError`."""
        if self.folder is not None:
            # A name from the results must not lead out of its folder ("../", absolute paths);
            # symbolic links inside it are followed, as open_images does when listing.
            parts = name.split("/")
            windows_separator = os.sep == "\\" and "\\" in name
            if (
                name.startswith("/")
                or windows_separator
                or any(p in ("", ".", "..") for p in parts)
            ):
                raise LookupError(name)
            path = self.folder.joinpath(*parts)
            if not path.is_file():
                raise LookupError(name)
            return open_images([path]).load(0)
        if self.collection is None:
            raise LookupError(name)
        position = self.index.get(name)
        if position is None:
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
        self._requests: dict[tuple[str, str, str], _Request] = {}
        self._files: dict[tuple[str, str, str], str] = {}
        self._done: dict[tuple[str, str, str], Thumb] = {}
        self._lookups: dict[str, _Lookup] = {}

    def request(self, group: str, source: str, name: str, row: int) -> tuple[str, str, str]:
        """Ask for the thumbnail of image ``name`` of ``source``; ``row`` names its file."""
        key = (group, source, name)
        if key not in self._requests:
            self._requests[key] = _Request(group, source, name)
            self._files[key] = f"thumbs/{group}/{row}.jpg"
        return key

    def get(self, key: tuple[str, str, str]) -> Thumb:
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
        for source in {self._requests[key].source for key in keys}:
            if source not in self._lookups:
                self._lookups[source] = _Lookup(source)
        workers = workers or min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for key, thumb in zip(keys, pool.map(self._make_one, keys), strict=True):
                self._done[key] = thumb
        for lookup in self._lookups.values():
            if lookup.collection is not None:
                lookup.collection.close()

    def _make_one(self, key: tuple[str, str, str]) -> Thumb:
        request = self._requests[key]
        lookup = self._lookups[request.source]
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
