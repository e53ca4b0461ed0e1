"""The images a run scored, opened again from the source its ``run.json`` records.

A results directory is untrusted input, so no image of it is read unless its source is the one
the run used: :func:`open_recorded` reopens the recorded source with
:func:`rarity_score.io.images.open_images` and refuses it (:class:`SourceRefused`) unless its
:meth:`~rarity_score.io.images.ImageCollection.fingerprint` (names, sizes, modification times)
equals the one the run recorded. A source that is not recorded, is not images, was recorded
without a fingerprint (an older version), moved, or changed is refused, never guessed at.

Within a verified source an image is found by the name the results give it
(:meth:`RecordedImages.find`), looked up among the source's own names, never used as a path
(so ``../x.png`` or an absolute path finds nothing). The names beside the scores went through
:func:`rarity_score.io.names.printable`, so they are matched in that form; two images of the
source that print alike cannot be told apart, and neither is found.

The report's thumbnails and ``rarity filter`` both read images through here.

Example:
    >>> open_recorded(ImageOrigin("", "folder", "0" * 64), "set 'gen'")
    Traceback (most recent call last):
    ...
    rarity_score.io.recorded.SourceRefused: run.json records no source for set 'gen'; score its
    images again
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from rarity_score.io.images import ImageCollection, ImageInputError, open_images
from rarity_score.io.names import one_line, printable
from rarity_score.io.run_record import IMAGE_KINDS

__all__ = ["ImageOrigin", "RecordedImages", "SourceRefused", "open_recorded"]


@dataclass(frozen=True)
class ImageOrigin:
    """An image source as a run recorded it: the source (a path; empty when not recorded), its
    kind (``"folder"``, ``"archive"``, ``"list"``, ``"image"``; None: not recorded) and the
    fingerprint of its images (None: not recorded)."""

    source: str
    kind: str | None
    fingerprint: str | None


class SourceRefused(ValueError):  # noqa: N818 (a refusal, not an error of the program)
    """A recorded source that is not opened: ``str()`` is one line naming the set and what to
    do; ``reason`` says why in one word, for callers that word it their own way (the report's
    placeholders quote nothing of the source): ``"no-source"``, ``"not-images"``,
    ``"no-fingerprint"``, ``"not-found"``, ``"unreadable"`` or ``"changed"``."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class RecordedImages:
    """A source verified against the run's fingerprint: its :attr:`collection`, and
    :meth:`find` by the name the results give an image. Close it when done (or use it in a
    ``with`` block)."""

    def __init__(self, collection: ImageCollection) -> None:
        self.collection = collection
        self._index: dict[str, int] = {}
        ambiguous: set[str] = set()
        for position, name in enumerate(collection.names):
            shown = printable(name)
            if shown in self._index:
                ambiguous.add(shown)
            self._index.setdefault(shown, position)
        for shown in ambiguous:
            del self._index[shown]

    def find(self, name: str) -> int | None:
        """The position in :attr:`collection` of the image the results name ``name``; None when
        the source holds no such image (or two that print alike)."""
        return self._index.get(name)

    def close(self) -> None:
        """Release the collection's open handles (archives)."""
        self.collection.close()

    def __enter__(self) -> RecordedImages:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def open_recorded(origin: ImageOrigin, what: str) -> RecordedImages:
    """Open the images of ``origin`` when they are still those the run scored; ``what`` names
    them in messages (``"set 'psi0.7'"``, ``"the real set"``).

    Raises :class:`SourceRefused` (a ValueError, one line) when the run recorded no source, a
    source that is not images, or no fingerprint; when the source cannot be opened; and when
    its fingerprint differs from the recorded one (images added, removed, renamed or changed).
    """
    source = origin.source
    shown = printable(source)
    if not source:
        # open_images("") would list the current folder: never guess where the images are.
        raise SourceRefused(
            f"run.json records no source for {what}; score its images again", "no-source"
        )
    if origin.kind is not None and origin.kind not in IMAGE_KINDS:
        raise SourceRefused(
            f"the source of {what} ({shown}) is {printable(origin.kind)}, not images",
            "not-images",
        )
    if origin.fingerprint is None:
        raise SourceRefused(
            f"the images of {what} ({shown}) cannot be checked: the run recorded no fingerprint "
            "of them (an older version); score them again",
            "no-fingerprint",
        )
    try:
        collection = open_images(source)
        try:
            matches = collection.fingerprint() == origin.fingerprint
        except BaseException:
            collection.close()
            raise
    except ImageInputError as error:
        raise SourceRefused(
            f"the images of {what} are not at {shown} any more (moved or removed since the "
            f"run?): {one_line(error, 200)}; put them back or score them again",
            "not-found",
        ) from error
    except OSError as error:
        raise SourceRefused(
            f"the images of {what} cannot be read at {shown}: {one_line(error, 200)}",
            "unreadable",
        ) from error
    if not matches:
        collection.close()
        raise SourceRefused(
            f"the images at {shown} are not those the run scored for {what} (fingerprint "
            "differs: images added, removed, renamed or changed since); score them again",
            "changed",
        )
    return RecordedImages(collection)
