"""Images in: folders, archives, list files, lists of paths and array batches.

:func:`open_images` turns any supported input into an :class:`ImageCollection`: an ordered,
picklable sequence of :class:`ImageItem` (a name users see in outputs and a fingerprint that
changes when the content may have changed) with :meth:`ImageCollection.load`, which decodes one
image to an RGB ``PIL.Image.Image``.

Inputs
    * a folder: searched recursively for ``.png .jpg .jpeg .webp .bmp .tif .tiff`` files (any
      letter case), in the order of their relative POSIX paths; hidden files and folders (names
      starting with ``.``) are skipped, other files are ignored (listed in a DEBUG log);
      results directories of this package (a ``run.json`` of ``rarity-score/results``) are
      skipped with a warning, and given as the folder itself they are refused (their
      thumbnails and plots are not images of the set; the same holds inside archives);
    * a ``.zip`` or ``.tar`` archive (also ``.tar.gz``/``.tgz``, ``.tar.bz2``, ``.tar.xz``): the
      members with image extensions, nested folders included, sorted by member name; hidden
      members and ``__MACOSX/`` are skipped;
    * a ``.txt`` file listing one image path per line, relative to the list file's folder (or
      absolute); blank lines and lines starting with ``#`` are ignored, the order is kept;
    * a single image file, or a Python sequence of paths (order kept);
    * a numpy array or torch tensor holding a batch of images: ``uint8`` (0-255) or floating point
      with values in [0, 1] (rounded to ``uint8``); channels last (N, H, W, C) or first
      (N, C, H, W), told apart by which axis has size 1, 3 or 4 (if both do, the shape is
      ambiguous and refused); a 3-D array is a grayscale batch (N, H, W).

Decoding
    Every image comes out RGB: grayscale and palette images are expanded, alpha (RGBA, LA, PA,
    palette or colour-key transparency) is composited over white, CMYK uses Pillow's conversion,
    16-bit images (``I;16``, ``I``) keep their top 8 bits (``value >> 8``), float images (``F``)
    are read as [0, 1] when all values lie there and as 0-255 otherwise. EXIF orientation and
    ICC profiles are not applied (as ``Image.open(path).convert("RGB")`` in the paper's code).
    Only the first frame of multi-frame files is read.

Bad files
    A file that cannot be decoded (zero bytes, truncated, corrupt, not an image, too large to
    decode safely) raises :class:`UnreadableImage` from ``load``, never another exception, so the
    caller can skip it and go on. A file or archive member is read only after its first MiB
    shows an image whose size can need its bytes (at most 16 bytes a pixel plus 16 MiB), so a
    decompression bomb or a huge non-image is refused unread and memory stays near that of the
    image; reads never go past the stated size. Problems with the input as a whole (a missing
    path, a folder without images, an unsupported input) raise :class:`ImageInputError` from
    :func:`open_images`.

Only numpy is needed to import this module and to list inputs; decoding needs Pillow, torch
tensors need torch (imported only when given one).
"""

from __future__ import annotations

import bz2
import functools
import gzip
import hashlib
import io
import json
import logging
import lzma
import os
import posixpath
import re
import sys
import tarfile
import tempfile
import threading
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol, Union, overload

import numpy as np

from rarity_score._errors import MissingDependency
from rarity_score.io.features import FEATURE_SUFFIXES, split_key
from rarity_score.io.files import NotRegularFileError, open_regular
from rarity_score.io.names import printable
from rarity_score.io.run_record import FORMAT as RESULTS_FORMAT

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageCollection",
    "ImageInputError",
    "ImageItem",
    "UnreadableImage",
    "is_feature_file",
    "is_results_dir",
    "open_images",
]

logger = logging.getLogger(__name__)

#: File name endings read as images (compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

#: Archive name endings read as archives of images.
ARCHIVE_EXTENSIONS: tuple[str, ...] = (
    ".zip",
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz2",
    ".tar.xz",
    ".txz",
)

#: Largest image decoded, in pixels (16384 x 16384). Pillow's own decompression-bomb limit
#: (``PIL.Image.MAX_IMAGE_PIXELS``, about 89.5 million pixels by default) applies as well.
MAX_PIXELS: int = 16384 * 16384

# A file or archive member larger than this is not read into memory (no real image under
# MAX_PIXELS needs it; a zip bomb would).
_MAX_FILE_BYTES = 2 * 2**30

# The first bytes of a file, read before the rest: enough for the header (the dimensions) of
# every format read here, so a file far larger than its image can be refused unread.
_HEADER_BYTES = 2**20

# A file whose dimensions are not in its first _HEADER_BYTES (a TIFF may keep its directory at
# the end) is read only up to this size.
_UNCHECKED_BYTES = 256 * 2**20

# The largest file an image of N pixels can need: 16 bytes a pixel (16-bit RGBA is 8, stored
# uncompressed, plus format overhead) and room for metadata (ICC profiles, EXIF, thumbnails).
_BYTES_PER_PIXEL = 16
_METADATA_BYTES = 16 * 2**20

# Results directories of this package hold a run.json of this format; they are never read as
# images (their thumbnails and plots would join the image set). Read only to skip a folder.
_RESULTS_MARKER = "run.json"
_MAX_MARKER_BYTES = 2**20

# A list file larger than this is refused unread (a million paths take some 100 MB).
_MAX_LIST_BYTES = 256 * 2**20

# Tar extended headers (pax records, GNU long names) are read whole by tarfile; a real one is
# a few hundred bytes, so one larger than this is refused before it is read.
_MAX_TAR_HEADER_BYTES = 2**20

# Reads of the content hash (see ImageCollection.content_fingerprint).
_HASH_CHUNK = 2**20
_HASH_THREADS = 8

# The Pillow formats tried. Restricting them keeps, say, an EPS file renamed to .png from
# being handed to Ghostscript. (Camera JPEGs that Pillow calls MPO open through "JPEG".)
_PIL_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")

_SHOWN = 20  # file names shown in messages and DEBUG logs before "... and N more"


class ImageInputError(ValueError):
    """The input as a whole is unusable: missing path, no images in it, unsupported type..."""


class UnreadableImage(Exception):  # noqa: N818 (the contract's name)
    """One image cannot be decoded; ``name`` says which and ``reason`` why, in a few words."""

    def __init__(self, name: str, reason: str = "unreadable") -> None:
        super().__init__(name, reason)  # args kept so the exception pickles across processes
        self.name = name
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


@dataclass(frozen=True)
class ImageItem:
    """One image of a collection.

    ``name`` is what outputs show: the path relative to the folder, the archive member, the path
    as listed, or ``#i`` for the i-th image of an array. ``fingerprint`` changes whenever the
    content may have changed: ``size:mtime_ns`` for files, ``size:crc32`` for zip members,
    ``size:mtime`` for tar members, a sha256 of the pixels for arrays.
    """

    name: str
    fingerprint: str


ImageSource = Union[
    str,
    "os.PathLike[str]",
    Sequence[Union[str, "os.PathLike[str]"]],
    np.ndarray,
    "torch.Tensor",
    "ImageCollection",
]


def is_feature_file(path: object) -> bool:
    """Whether ``path`` names a feature file (``.npy``, ``.npz``, ``.pt``, ``.pth``).

    The ``file.npz:name`` syntax counts. Only the name is looked at; the file need not exist.

    >>> is_feature_file("feats.npz:real"), is_feature_file("images/"), is_feature_file("a.PT")
    (True, False, True)
    """
    if not isinstance(path, (str, os.PathLike)):
        return False
    file, _ = split_key(os.fspath(path))
    return file.suffix.lower() in FEATURE_SUFFIXES


class ImageCollection(Sequence[ImageItem]):
    """An ordered, picklable sequence of images; build one with :func:`open_images`.

    ``kind`` is ``"folder"``, ``"archive"``, ``"list"``, ``"paths"`` or ``"array"``; ``source``
    describes the input as given. ``load(i)`` decodes image ``i`` to RGB.
    """

    kind: str
    source: str

    def __init__(self, kind: str, source: str, items: Sequence[ImageItem]) -> None:
        self.kind = kind
        self.source = source
        self._items: tuple[ImageItem, ...] = tuple(items)

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> ImageItem: ...

    @overload
    def __getitem__(self, index: slice) -> list[ImageItem]: ...

    def __getitem__(self, index: int | slice) -> ImageItem | list[ImageItem]:
        if isinstance(index, slice):
            return list(self._items[index])
        return self._items[index]

    def __iter__(self) -> Iterator[ImageItem]:
        return iter(self._items)

    def __repr__(self) -> str:
        return f"<ImageCollection {self.kind} {self.source!r}: {len(self)} images>"

    @property
    def names(self) -> list[str]:
        """The names of all images, in order."""
        return [item.name for item in self._items]

    def fingerprint(self) -> str:
        """A sha256 over the kind and every (name, item fingerprint), in order.

        It changes when an image is added, removed, renamed, reordered or (as far as sizes,
        modification times, checksums or pixel hashes tell) modified. Cheap, but metadata can
        be equal for other content: the feature cache uses :meth:`content_fingerprint`.
        """
        digest = hashlib.sha256()
        digest.update(self.kind.encode() + b"\0")
        for item in self._items:
            # NUL cannot occur in paths, so the concatenation is unambiguous.
            digest.update(item.name.encode("utf-8", "surrogateescape") + b"\0")
            digest.update(item.fingerprint.encode() + b"\0")
        return digest.hexdigest()

    def content_fingerprint(self) -> str:
        """A sha256 over the kind, every name and the bytes of every image: what the feature
        cache is keyed by.

        Unlike :meth:`fingerprint`, it trusts no metadata: sizes, modification times and zip
        checksums can be equal for different content (``tar --mtime``, ``touch -d``), so this
        reads every file once (a folder, a list or paths: each image file; an archive: the whole
        archive file). The same bytes under the same names give the same value wherever they
        lie (a copied folder); other bytes give another. Images loaded afterwards are checked
        against what was hashed: one that changed in between is unreadable, never read as the
        hashed one.
        """
        parts = self._content_digests()
        digest = hashlib.sha256()
        digest.update(f"rarity-score/content\0{self.kind}\0{len(self._items)}\0".encode())
        for item in self._items:
            digest.update(item.name.encode("utf-8", "surrogateescape") + b"\0")
        for part in parts:
            digest.update(part.encode() + b"\0")
        return digest.hexdigest()

    def _content_digests(self) -> list[str]:
        """What stands for the content in :meth:`content_fingerprint` (recorded for ``load``)."""
        return [item.fingerprint for item in self._items]  # arrays: a sha256 of the pixels

    def load(self, i: int) -> Image.Image:
        """Decode image ``i`` and return it as an RGB ``PIL.Image.Image``.

        Raises :class:`UnreadableImage` (with the image's name and a short reason) when the file
        cannot be read or decoded, and :class:`MissingDependency` when Pillow is not installed.
        """
        item = self._items[i]
        pil = _pil()
        source = self._open_source(_index(i, len(self._items)), item.name)
        return _decode(source, item.name, pil)

    def read_bytes(self, i: int) -> bytes:
        """The bytes of image ``i`` as stored: the file, or the archive member, unchanged (what
        :meth:`load` decodes), read with the same checks: a regular file only (a pipe or device
        put in its place is refused, never waited on), no more than its stated size, a header
        that shows an image needing that many bytes. A file must still have the size and
        modification time it was listed with (:attr:`ImageItem.fingerprint`), before and after
        the read. Raises :class:`UnreadableImage` (also for an array: no stored bytes).

        >>> import numpy as np
        >>> open_images(np.zeros((1, 8, 8, 3), dtype=np.uint8)).read_bytes(0)
        Traceback (most recent call last):
        ...
        rarity_score.io.images.UnreadableImage: #0: images held in memory have no file bytes
        """
        item = self._items[i]
        data = self._open_source(_index(i, len(self._items)), item.name)
        if not isinstance(data, bytes):
            raise UnreadableImage(item.name, "images held in memory have no file bytes")
        return data

    def path(self, i: int) -> str | None:
        """The absolute path of the file image ``i`` is (a folder, a list file or paths); None
        for an archive member or an array image. Nothing is checked: see :meth:`check_file`.

        >>> import numpy as np
        >>> print(open_images(np.zeros((1, 8, 8, 3), dtype=np.uint8)).path(0))
        None
        """
        return None

    def check_file(self, i: int) -> str:
        """The path of the file image ``i`` is, checked now: still a regular file with the size
        and modification time it was listed with. :class:`UnreadableImage` otherwise, and for
        an archive member or an array image (no file of its own)."""
        item = self._items[i]
        raise UnreadableImage(item.name, f"not a file of its own (an image of {self.kind} input)")

    def close(self) -> None:
        """Release open archive handles (they are reopened if the collection is used again)."""

    def _open_source(self, i: int, name: str) -> bytes | np.ndarray:
        raise NotImplementedError


def open_images(source: ImageSource) -> ImageCollection:
    """Open an image input: a folder, archive, list file, image file, sequence of paths or batch.

    See the module documentation for what each input means and how it is ordered. Nothing is
    decoded here; folders and archives are listed and files are stat'ed for their fingerprints.

    Raises :class:`ImageInputError` for a missing path, an input that holds no images, a listed
    file that does not exist, an array of the wrong shape or value range, or an unsupported type.

    >>> import numpy as np
    >>> images = open_images(np.zeros((2, 8, 8, 3), dtype=np.uint8))
    >>> images.kind, images.names, images.load(1).size
    ('array', ['#0', '#1'], (8, 8))
    """
    if isinstance(source, ImageCollection):
        return source
    if isinstance(source, np.ndarray) or _is_tensor(source):
        return _open_array(source)
    if isinstance(source, (str, os.PathLike)):
        return _open_path(source)
    if isinstance(source, (bytes, bytearray)):
        raise ImageInputError("give paths as str or pathlib.Path, not bytes")
    if isinstance(source, Sequence):
        return _open_paths(source)
    raise ImageInputError(
        f"unsupported image input of type {type(source).__name__}; give a folder, a .zip/.tar "
        "archive, a .txt list of image paths, a list of paths, or a numpy array / torch tensor "
        "of images"
    )


# ----------------------------------------------------------------------------------------------
# Paths


def _open_path(source: str | os.PathLike[str]) -> ImageCollection:
    text = os.fspath(source)
    path = Path(text)
    if not path.exists():
        if is_feature_file(text):
            raise ImageInputError(f"{text} is a feature file, not images (and it does not exist)")
        raise ImageInputError(
            f"not found: {text} (expected a folder of images, a .zip or .tar archive of images, "
            "a .txt file listing image paths, or an image file)"
        )
    if path.is_dir():
        return _open_folder(path, text)
    if not path.is_file():  # reading a pipe or device would block or never end
        raise ImageInputError(f"{text} is not a regular file (a pipe or device?); give a file")
    lower = path.name.lower()
    if lower.endswith(ARCHIVE_EXTENSIONS):
        return _open_zip(path, text) if lower.endswith(".zip") else _open_tar(path, text)
    if lower.endswith(".txt"):
        return _open_list_file(path, text)
    if lower.endswith(IMAGE_EXTENSIONS):
        return _open_paths([text])
    if is_feature_file(text):
        raise ImageInputError(
            f"{text} is a feature file, not images; load it with rarity_score.io.load_features"
        )
    raise ImageInputError(
        f"{text}: unsupported file type {path.suffix or '(no extension)'!r}; give a folder, an "
        f"archive ({', '.join(ARCHIVE_EXTENSIONS)}), a .txt list of image paths, or an image "
        f"({', '.join(IMAGE_EXTENSIONS)})"
    )


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _file_fingerprint(stat: os.stat_result) -> str:
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _shown(names: Sequence[str]) -> str:
    text = ", ".join(printable(name) for name in names[:_SHOWN])  # names from disk: one line
    return text + (f", ... and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _no_images_message(what: str, others: Sequence[str], hidden: int) -> str:
    found = f"found {_count(len(others), 'other file')}"
    if others:
        suffixes = sorted({posixpath.splitext(name)[1].lower() or "(none)" for name in others})
        found += f" (extensions: {', '.join(suffixes[:_SHOWN])})"
    if hidden:
        found += f" and {_count(hidden, 'hidden entry', 'hidden entries')} (skipped)"
    return f"no images in {what}: {found}; supported extensions: {', '.join(IMAGE_EXTENSIONS)}"


def _log_ignored(what: str, others: Sequence[str], hidden: int) -> None:
    if others or hidden:
        logger.debug(
            "%s: ignored %s without an image extension%s%s",
            what,
            _count(len(others), "file"),
            f" ({_shown(others)})" if others else "",
            f"; skipped {_count(hidden, 'hidden entry', 'hidden entries')}" if hidden else "",
        )


def _open_folder(root: Path, text: str) -> ImageCollection:
    found: list[tuple[str, os.stat_result | None]] = []
    others: list[str] = []
    results: list[str] = []
    hidden = 0
    if is_results_dir(str(root)):
        raise ImageInputError(
            f"{text} is a results directory of rarity-score (it holds a run.json of "
            f"{RESULTS_FORMAT}), not a folder of images; give the folder of the images"
        )
    root_stat = root.stat()
    seen = {(root_stat.st_dev, root_stat.st_ino)}  # symlinked folders are followed, loops not
    stack: list[tuple[str, str]] = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as scan:
                entries = list(scan)
        except OSError as error:
            logger.warning("%s: cannot list %s (%s); its images are left out", text, folder, error)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                hidden += 1
                continue
            name = prefix + entry.name
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                try:
                    stat = entry.stat()
                except OSError:
                    continue
                key = (stat.st_dev, stat.st_ino)
                if key in seen:
                    logger.debug("%s: %s was already visited (symlink loop); skipped", text, name)
                    continue
                seen.add(key)
                if is_results_dir(entry.path):
                    results.append(name)
                    continue
                stack.append((entry.path, name + "/"))
            elif _is_image_name(entry.name):
                try:
                    stat = entry.stat()
                except OSError:  # a dangling symlink: kept, so load() reports it
                    found.append((name, None))
                    continue
                if S_ISREG(stat.st_mode):
                    found.append((name, stat))
                else:  # a pipe or device would block or never end when read
                    others.append(name)
            else:
                others.append(name)
    if results:
        # Said every time: images the user may have expected are left out.
        logger.warning(
            "%s: skipped %s of rarity-score (%s); results are never read as images",
            text,
            _count(len(results), "results directory", "results directories"),
            _shown(sorted(results)),
        )
    if not found:
        raise ImageInputError(_no_images_message(f"folder {text}", sorted(others), hidden))
    _log_ignored(f"folder {text}", sorted(others), hidden)
    # Sorted by the whole relative path (not folder by folder), so the order is simple to state.
    found.sort(key=lambda pair: pair[0])
    base = os.path.abspath(root)
    items = [ImageItem(n, _file_fingerprint(s) if s else "missing") for n, s in found]
    paths = [os.path.join(base, *n.split("/")) for n, _ in found]
    return _FileCollection("folder", text, items, paths)


def is_results_dir(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a run.json marking an output of this package (a results
    directory or a spaces output).

    Only ever used to leave a folder out or to refuse one, so a marker that says so is
    enough; a marker that cannot be read (missing, too large, not JSON, a pipe) says nothing.
    """
    try:
        with open_regular(os.path.join(folder, _RESULTS_MARKER)) as file:
            return _is_results_record(file.read(_MAX_MARKER_BYTES + 1))
    except OSError:
        return False


# How the package's own writer starts a run.json: enough to recognise one too large to parse
# (thousands of skipped images are listed in it).
_RESULTS_HEAD = re.compile(
    rb'\A\s*\{\s*"format"\s*:\s*"' + re.escape(RESULTS_FORMAT.encode()) + rb'"'
)


def _is_results_record(content: bytes) -> bool:
    """Whether ``content`` (a run.json, or its first ``_MAX_MARKER_BYTES + 1`` bytes) marks a
    results directory."""
    if len(content) > _MAX_MARKER_BYTES:
        return _RESULTS_HEAD.match(content) is not None
    try:
        record = json.loads(content.decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    return isinstance(record, dict) and record.get("format") == RESULTS_FORMAT


def _results_members(
    text: str, names: Iterable[str], markers: Mapping[str, Callable[[], bytes]]
) -> set[str]:
    """The members of an archive that lie in a results directory (a folder whose run.json,
    read by ``markers[name]()``, says so), logged in one line; a results directory as the
    archive's root is refused."""
    folders = []
    for marker, read in markers.items():
        try:
            if _is_results_record(read()):
                folders.append(posixpath.dirname(marker))
        except Exception:  # an unreadable marker says nothing
            continue
    if "" in folders:
        raise ImageInputError(
            f"{text} holds a results directory of rarity-score (its run.json is of "
            f"{RESULTS_FORMAT}), not images; give the archive of the images"
        )
    if not folders:
        return set()
    dropped = {n for n in names if any(n.startswith(folder + "/") for folder in folders)}
    logger.warning(
        "%s: skipped %s of rarity-score (%s); results are never read as images",
        text,
        _count(len(folders), "results directory", "results directories"),
        _shown(sorted(folders)),
    )
    return dropped


def _is_marker(name: str) -> bool:
    return posixpath.basename(name) == _RESULTS_MARKER


def _open_list_file(path: Path, text: str) -> ImageCollection:
    try:
        size = path.stat().st_size
        if size > _MAX_LIST_BYTES:
            raise ImageInputError(
                f"{text}: {_mib(size)} is too large for a list of image paths (the limit is "
                f"{_mib(_MAX_LIST_BYTES)}); is it the right file?"
            )
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ImageInputError(f"{text}: cannot read the list of image paths ({error})") from error
    base = path.parent
    items: list[ImageItem] = []
    paths: list[str] = []
    problems: list[tuple[int, str]] = []
    for line_number, line in enumerate(content.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        listed = Path(os.path.expanduser(entry))
        full = listed if listed.is_absolute() else base / listed
        try:
            stat = full.stat()
        except OSError:
            problems.append((line_number, f"{entry} not found (looked for {full})"))
            continue
        if not S_ISREG(stat.st_mode):
            what = "a folder" if S_ISDIR(stat.st_mode) else "not a regular file"
            problems.append((line_number, f"{entry} is {what}, not an image"))
            continue
        items.append(ImageItem(entry, _file_fingerprint(stat)))
        paths.append(os.path.abspath(full))
    if problems:
        (line_number, problem), rest = problems[0], [str(n) for n, _ in problems[1:]]
        more = f" (and {_count(len(rest), 'more line')}: {_shown(rest)})" if rest else ""
        raise ImageInputError(
            f"{text}, line {line_number}: {problem}{more}; paths in a list file are relative "
            "to its folder"
        )
    if not items:
        raise ImageInputError(f"{text} lists no image paths (one path per line)")
    return _FileCollection("list", text, items, paths)


def _open_paths(source: Sequence[Any]) -> ImageCollection:
    items: list[ImageItem] = []
    paths: list[str] = []
    problems: list[str] = []
    for position, entry in enumerate(source):
        if not isinstance(entry, (str, os.PathLike)):
            raise ImageInputError(
                f"item {position} of the list of paths is a {type(entry).__name__}, not a path"
            )
        text = os.fspath(entry)
        try:
            stat = os.stat(text)
        except OSError:
            problems.append(f"{text} not found (item {position})")
            continue
        if not S_ISREG(stat.st_mode):
            what = "a folder" if S_ISDIR(stat.st_mode) else "not a regular file"
            problems.append(f"{text} is {what}, not an image (item {position})")
            continue
        items.append(ImageItem(text, _file_fingerprint(stat)))
        paths.append(os.path.abspath(text))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ImageInputError(f"image {problems[0]}{more}")
    if not items:
        raise ImageInputError("the list of image paths is empty")
    described = os.fspath(source[0]) if len(source) == 1 else f"<list of {len(source)} paths>"
    return _FileCollection("paths", described, items, paths)


class _FileCollection(ImageCollection):
    """Images that are files on disk (folder, list file, paths)."""

    def __init__(
        self, kind: str, source: str, items: Sequence[ImageItem], paths: Sequence[str]
    ) -> None:
        super().__init__(kind, source, items)
        self._paths = tuple(paths)
        self._digests: tuple[str, ...] | None = None  # set by content_fingerprint

    def _content_digests(self) -> list[str]:
        if len(self._paths) < 2 * _HASH_THREADS:
            digests = [_file_digest(path) for path in self._paths]
        else:
            # Reading is the cost; hashlib releases the GIL, so threads overlap the reads.
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(_HASH_THREADS) as pool:
                digests = list(pool.map(_file_digest, self._paths, chunksize=64))
        self._digests = tuple(digests)
        return digests

    def path(self, i: int) -> str | None:
        return self._paths[i]

    def check_file(self, i: int) -> str:
        item = self._items[i]
        try:
            info = os.stat(self._paths[i])
        except OSError as error:
            raise _unreadable_file(item.name, error) from error
        if not S_ISREG(info.st_mode) or _file_fingerprint(info) != item.fingerprint:
            raise UnreadableImage(item.name, LISTED_CHANGED_REASON)
        return self._paths[i]

    def read_bytes(self, i: int) -> bytes:
        i = _index(i, len(self._items))
        return self._read(i, self._items[i].name, self._items[i].fingerprint)

    def _open_source(self, i: int, name: str) -> bytes:
        return self._read(i, name, None)

    def _read(self, i: int, name: str, listed: str | None) -> bytes:
        """The file's bytes; with ``listed`` (its item's fingerprint), refused unless the file
        has that size and modification time before and after the read."""
        try:
            with _open_regular(self._paths[i], name) as file:
                before = os.fstat(file.fileno())
                if listed is not None and _file_fingerprint(before) != listed:
                    raise UnreadableImage(name, LISTED_CHANGED_REASON)
                data = _read_image(file, before.st_size, name, bounded=False)
                if listed is not None and _file_fingerprint(os.fstat(file.fileno())) != listed:
                    raise UnreadableImage(name, LISTED_CHANGED_REASON)
        except OSError as error:
            raise _unreadable_file(name, error) from error
        hashed = self._digests[i] if self._digests is not None else None
        if hashed is not None and hashed.startswith("sha256:") and hashed != _digest(data):
            raise UnreadableImage(name, CHANGED_REASON)
        return data


def _unreadable_file(name: str, error: OSError) -> UnreadableImage:
    if isinstance(error, FileNotFoundError):
        return UnreadableImage(name, "file not found (removed since it was listed?)")
    return UnreadableImage(name, f"cannot read the file ({error.strerror or error})")


#: The reason given for a file that changed between the content hash and its reading.
CHANGED_REASON = "the file changed while the run was going (run again)"

#: The reason given for a file whose size or modification time is no longer the listed one.
LISTED_CHANGED_REASON = (
    "changed since its source was listed (size or modification time differs); run again"
)


def _open_regular(path: str, name: str) -> IO[bytes]:
    """Open a regular file for reading (:func:`~rarity_score.io.files.open_regular`); a pipe or
    device put in its place is an unreadable image named ``name``."""
    try:
        return open_regular(path)
    except NotRegularFileError as error:
        raise UnreadableImage(name, str(error.strerror)) from error


def _stamp(path: str) -> tuple[int, int, int] | None:
    """Inode, size and modification time: what a shared file system shows every host alike (the
    device number is each host's own, and a Dask worker elsewhere must see the same stamp)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _file_digest(path: str) -> str:
    """``sha256:<hex>`` of a file's bytes, streamed; or why ``load`` will refuse the file unread
    (what it says then depends on this, so it stands for the content just as well)."""
    try:
        with _open_regular(path, path) as file:
            size = os.fstat(file.fileno()).st_size
            if size > _MAX_FILE_BYTES:
                return f"over:{size}"
            digest = hashlib.sha256()
            while chunk := file.read(_HASH_CHUNK):
                digest.update(chunk)
    except UnreadableImage:
        return "not-regular"
    except OSError as error:
        return f"unreadable:{error.errno}"
    return "sha256:" + digest.hexdigest()


def _mib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"


class _Readable(Protocol):
    def read(self, n: int, /) -> bytes: ...


_TRUNCATED = "the file ends early (truncated, or changed while read)"


def _read_image(
    stream: _Readable, size: int, name: str, *, bounded: bool, truncated: str = _TRUNCATED
) -> bytes:
    """The bytes of one image file of ``size`` bytes (its stat or declared size), read only
    when its header shows an image that can need them: memory stays near that of the image.

    ``bounded``: the stream ends after ``size`` bytes by itself (an archive member); otherwise
    one byte more is asked for, so a file that grows (or lies about its size) is refused
    instead of read without limit.
    """
    if size > _MAX_FILE_BYTES:
        raise UnreadableImage(name, f"file too large for an image ({_mib(size)})")
    extra = 0 if bounded else 1
    if size + extra <= _HEADER_BYTES:
        data = stream.read(size + extra)
    else:
        head = stream.read(_HEADER_BYTES)
        if len(head) == _HEADER_BYTES:
            _check_header(head, size, name)
        data = head + stream.read(size + extra - len(head))
    if len(data) > size:
        raise UnreadableImage(name, "the file grew while it was read (changed during the run?)")
    if len(data) < size:
        raise UnreadableImage(name, truncated)
    return data


def _check_header(head: bytes, size: int, name: str) -> None:
    """Refuse, from its first bytes, a file much larger than the image its header describes
    (a decompression bomb, or junk after an image), or one that is not an image at all."""
    pil = _pil()
    formats = _formats(pil)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a header cut short warns; the decode will tell
            warnings.simplefilter("error", pil.DecompressionBombWarning)
            with pil.open(io.BytesIO(head), formats=formats) as image:
                width, height = image.size
    except (pil.DecompressionBombError, pil.DecompressionBombWarning) as error:
        raise UnreadableImage(name, _bomb_reason(error)) from error
    except Exception as error:  # the header does not fit in the first bytes, or is not one
        if not any(accept is None or accept(head[:16]) for accept in _acceptors(pil)):
            raise UnreadableImage(name, _NOT_AN_IMAGE) from error
        if size > _UNCHECKED_BYTES:
            raise UnreadableImage(
                name,
                f"{_mib(size)}, and no image size in its first {_mib(_HEADER_BYTES)}: too large "
                "to read without one",
            ) from error
        return
    _check_pixels(width, height, name)
    if size > _BYTES_PER_PIXEL * width * height + _METADATA_BYTES:
        raise UnreadableImage(
            name,
            f"{_mib(size)} for a {width} x {height} image, far more than such an image needs "
            "(a decompression bomb, or data appended to an image)",
        )


def _acceptors(pil: Any) -> list[Any]:
    """The magic-number tests of the formats read here (Pillow's ``OPEN`` registry)."""
    return [pil.OPEN[name][1] for name in _formats(pil)]


# ----------------------------------------------------------------------------------------------
# Archives


def _member_name(raw: str) -> str:
    """The name shown for an archive member: its path without a leading ``./`` or ``/``."""
    name = raw
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def _is_hidden_member(name: str) -> bool:
    parts = [part for part in name.split("/") if part not in ("", ".")]
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


class _ArchiveCollection(ImageCollection):
    """An archive whose file is opened lazily, once per process (handles are not pickled)."""

    def __init__(self, kind: str, source: str, items: Sequence[ImageItem], path: str) -> None:
        super().__init__(kind, source, items)
        self._path = path
        self._handle: Any = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._hashed_stamp: tuple[int, int, int] | None = None  # see _content_digests

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_handle=None, _pid=None, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _process_lock(self) -> threading.Lock:
        """The lock guarding this process's handle; take it before ``_process_handle``."""
        if self._pid != os.getpid():
            # Nothing inherited through fork is reused: the file offset would be shared with the
            # parent, and the lock may have been held by a thread that does not exist here.
            self._handle = None
            self._lock = threading.Lock()
            self._pid = os.getpid()
        return self._lock

    def _content_digests(self) -> list[str]:
        # The archive file's own bytes: names, sizes, dates and CRCs of members can all be
        # equal in archives of other content. Its stat is kept to notice a later replacement.
        before = _stamp(self._path)
        digest = _file_digest(self._path)
        self._hashed_stamp = before if before == _stamp(self._path) else None
        return [digest]

    def _process_handle(self, name: str) -> Any:
        """This process's open archive, opened on first use (call with the lock held)."""
        if self._handle is None:
            hashed = self._hashed_stamp
            handle = self._open_handle()
            if hashed is not None and _stamp(self._path) != hashed:
                handle.close()
                raise UnreadableImage(name, CHANGED_REASON)
            self._handle = handle
        return self._handle

    def _open_handle(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        """Close this process's archive handle; the next ``load`` reopens it."""
        handle, self._handle = self._handle, None
        if handle is not None and self._pid == os.getpid():
            handle.close()


def _open_zip(path: Path, text: str) -> ImageCollection:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise ImageInputError(f"{text}: not a readable zip archive ({error})") from error
    chosen: dict[str, tuple[int, zipfile.ZipInfo]] = {}
    others: list[str] = []
    hidden = 0
    for position, info in enumerate(infos):
        if info.is_dir():
            continue
        name = _member_name(info.filename)
        if _is_hidden_member(name):
            hidden += 1
        elif _is_image_name(name):
            chosen[name] = (position, info)  # a repeated name: the last copy wins, as in unzip
        else:
            others.append(name)
    markers = {
        name: info
        for info in infos
        if not info.is_dir()
        and _is_marker(name := _member_name(info.filename))
        and not _is_hidden_member(name)
    }
    if markers:
        with zipfile.ZipFile(path) as archive:

            def reader(info: zipfile.ZipInfo) -> Callable[[], bytes]:
                def read() -> bytes:
                    with archive.open(info) as member:
                        return member.read(_MAX_MARKER_BYTES + 1)

                return read

            for name in _results_members(text, chosen, {n: reader(i) for n, i in markers.items()}):
                del chosen[name]
    if not chosen:
        raise ImageInputError(_no_images_message(f"archive {text}", sorted(others), hidden))
    _log_ignored(f"archive {text}", sorted(others), hidden)
    names = sorted(chosen)
    items = [ImageItem(n, f"{chosen[n][1].file_size}:{chosen[n][1].CRC:08x}") for n in names]
    members = [(chosen[n][0], chosen[n][1].filename) for n in names]
    return _ZipCollection(text, items, os.path.abspath(path), members)


class _ZipCollection(_ArchiveCollection):
    def __init__(
        self, source: str, items: Sequence[ImageItem], path: str, members: Sequence[tuple[int, str]]
    ) -> None:
        super().__init__("archive", source, items, path)
        self._members = tuple(members)  # (position in the zip's directory, raw member name)

    def _open_handle(self) -> zipfile.ZipFile:
        return zipfile.ZipFile(self._path)

    def _open_source(self, i: int, name: str) -> bytes:
        position, raw = self._members[i]
        try:
            with self._process_lock():
                archive = self._process_handle(name)
                infos = archive.infolist()
                if position >= len(infos) or infos[position].filename != raw:
                    raise UnreadableImage(name, "the archive changed since it was opened")
                info = infos[position]
                # The declared size first, then the header; zipfile stops at the declared size
                # (and checks the CRC), so a lying header cannot make it read more.
                with archive.open(info) as member:
                    return _read_image(member, info.file_size, name, bounded=True)
        except UnreadableImage:
            raise
        except Exception as error:  # zipfile raises many types: BadZipFile, RuntimeError, ...
            self.close()
            raise UnreadableImage(name, f"cannot read the archive member ({error})") from error


_TAR_MODES: dict[str | None, Literal["r:", "r:gz", "r:bz2", "r:xz"]] = {
    None: "r:",
    "gz": "r:gz",
    "bz2": "r:bz2",
    "xz": "r:xz",
}


def _compression(path: str) -> str | None:
    """The compression of a tar file from its first bytes: "gz", "bz2", "xz" or None."""
    with open(path, "rb") as file:
        head = file.read(6)
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return None


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo whose extended headers are size-checked before tarfile reads them whole."""

    def _check_extended(self) -> None:
        if self.size > _MAX_TAR_HEADER_BYTES:
            raise tarfile.ReadError(
                f"an extended header of {_mib(self.size)} at byte {self.offset}, far larger "
                "than any real one"
            )

    def _proc_pax(self, tarfile: tarfile.TarFile) -> tarfile.TarInfo:
        self._check_extended()
        return super()._proc_pax(tarfile)  # type: ignore[misc]

    def _proc_gnulong(self, tarfile: tarfile.TarFile) -> tarfile.TarInfo:
        self._check_extended()
        return super()._proc_gnulong(tarfile)  # type: ignore[misc]


def _open_tar(path: Path, text: str) -> ImageCollection:
    regular: dict[str, tarfile.TarInfo] = {}
    links: dict[str, tarfile.TarInfo] = {}
    every: dict[str, tarfile.TarInfo] = {}  # all files and links, for resolving links
    others: list[str] = []
    hidden = 0
    try:
        compression = _compression(str(path))
        mode = _TAR_MODES[compression]  # "r:*" would try each and report four errors
        with tarfile.open(path, mode, tarinfo=_BoundedTarInfo) as archive:
            for info in archive:
                name = _member_name(info.name)
                if info.isdir():
                    continue
                every[posixpath.normpath(name)] = info
                if _is_hidden_member(name):
                    hidden += 1
                elif not _is_image_name(name):
                    others.append(name)
                elif info.isreg():
                    regular[name] = info  # a repeated name: the last copy wins, as in tar -x
                    links.pop(name, None)
                elif info.islnk() or info.issym():
                    links[name] = info
                    regular.pop(name, None)
                else:
                    others.append(name)
        markers = {
            name: info
            for name, info in every.items()
            if info.isreg() and _is_marker(name) and not _is_hidden_member(name)
        }
        if markers:
            with tarfile.open(path, mode, tarinfo=_BoundedTarInfo) as archive:

                def reader(info: tarfile.TarInfo) -> Callable[[], bytes]:
                    def read() -> bytes:
                        with archive.extractfile(info) as member:  # type: ignore[union-attr]
                            return member.read(_MAX_MARKER_BYTES + 1)

                    return read

                readers = {name: reader(info) for name, info in markers.items()}
                for name in _results_members(text, {*regular, *links}, readers):
                    regular.pop(name, None)
                    links.pop(name, None)
    except (tarfile.TarError, OSError, EOFError, ValueError, zlib.error) as error:
        raise ImageInputError(
            f"{text}: not a readable tar archive, or damaged ({error}); re-create or re-download it"
        ) from error
    if not regular and not links:
        raise ImageInputError(_no_images_message(f"archive {text}", sorted(others), hidden))
    _log_ignored(f"archive {text}", sorted(others), hidden)
    names = sorted({*regular, *links})
    items: list[ImageItem] = []
    members: list[tuple[int, int, bool] | str] = []
    for name in names:
        target = regular.get(name) or _resolve_link(links[name], every)
        if isinstance(target, str):  # a link whose target is not a file in the archive
            items.append(ImageItem(name, f"link:{links[name].linkname}"))
            members.append(target)
        else:
            items.append(ImageItem(name, f"{target.size}:{target.mtime}"))
            members.append((target.offset_data, target.size, target.issparse()))
    return _TarCollection(text, items, os.path.abspath(path), members, compression)


def _resolve_link(
    link: tarfile.TarInfo, every: dict[str, tarfile.TarInfo]
) -> tarfile.TarInfo | str:
    """The regular member a hard or symbolic link points to, or the reason it has none."""
    current = link
    for _ in range(8):  # a few hops of links to links; more is almost surely a loop
        if current.islnk():
            target = posixpath.normpath(_member_name(current.linkname))
        else:
            folder = posixpath.dirname(_member_name(current.name))
            target = posixpath.normpath(posixpath.join(folder, current.linkname))
        found = every.get(target)
        if found is None or not (found.isreg() or found.islnk() or found.issym()):
            return f"a link to {current.linkname}, which is not a file in the archive"
        if found.isreg():
            return found
        current = found
    return f"a chain of links starting at {link.linkname}"


def _open_decompressed(path: str, compression: str | None) -> IO[bytes]:
    if compression == "gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if compression == "bz2":
        return bz2.open(path, "rb")
    if compression == "xz":
        return lzma.open(path, "rb")
    return open(path, "rb")


class _TarCollection(_ArchiveCollection):
    """Tar members read at their recorded offsets in the (decompressed) stream.

    A compressed stream can only seek forward cheaply; at the first backward seek (member order
    differs from sorted order) the image members are decompressed once into an anonymous
    temporary file, which is then read at random; other members are skipped, not copied (a small
    archive may inflate to terabytes of non-images). An uncompressed tar is read in place.
    """

    def __init__(
        self,
        source: str,
        items: Sequence[ImageItem],
        path: str,
        members: Sequence[tuple[int, int, bool] | str],
        compression: str | None,
    ) -> None:
        super().__init__("archive", source, items, path)
        self._members = tuple(members)  # (data offset, size, sparse) or why it has no data
        self._compression = compression
        self._spooled = False
        self._spool_offsets: dict[int, int] = {}  # member index -> its offset in the spool

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_spooled"] = False
        state["_spool_offsets"] = {}
        return state

    def _open_handle(self) -> IO[bytes]:
        self._spooled = False
        return _open_decompressed(self._path, self._compression)

    def _spool(self) -> IO[bytes]:
        spool = tempfile.TemporaryFile()  # noqa: SIM115 (it becomes the handle, kept open)
        wanted = sorted(
            (member[0], i, min(member[1], _MAX_FILE_BYTES + 1))
            for i, member in enumerate(self._members)
            if not isinstance(member, str) and not member[2]
        )
        offsets: dict[int, int] = {}
        copied: dict[int, int] = {}  # archive offset -> spool offset (links share their data)
        try:
            with _open_decompressed(self._path, self._compression) as stream:
                position = 0
                for offset, i, size in wanted:
                    if offset in copied:
                        offsets[i] = copied[offset]
                        continue
                    if offset < position:  # tar members never overlap: a damaged archive
                        continue
                    _skip(stream, offset - position)
                    offsets[i] = copied[offset] = spool.tell()
                    window = _Window(stream, size)
                    while chunk := window.read(2**20):
                        spool.write(chunk)
                    position = offset + size
        except BaseException:
            spool.close()
            raise
        self._spool_offsets = offsets
        logger.debug("%s: decompressed into a temporary file for random access", self._path)
        self.close()
        self._handle, self._spooled = spool, True
        return spool

    def _open_source(self, i: int, name: str) -> bytes:
        member = self._members[i]
        if isinstance(member, str):
            raise UnreadableImage(name, member)
        offset, size, sparse = member
        if sparse:
            raise UnreadableImage(name, "a sparse tar member (not supported)")
        if size > _MAX_FILE_BYTES:
            raise UnreadableImage(name, f"archive member too large ({_mib(size)})")
        try:
            with self._process_lock():
                handle = self._process_handle(name)
                if self._compression and not self._spooled and offset < handle.tell():
                    handle = self._spool()
                if self._spooled:
                    if i not in self._spool_offsets:
                        raise UnreadableImage(name, "the archive ends inside this member")
                    offset = self._spool_offsets[i]
                handle.seek(offset)
                return _read_image(
                    _Window(handle, size),
                    size,
                    name,
                    bounded=True,
                    truncated="the archive ends inside this member (truncated archive)",
                )
        except UnreadableImage:
            raise
        except Exception as error:  # gzip / lzma / bz2 / OS errors while reading the stream
            self.close()
            raise UnreadableImage(name, f"cannot read the archive member ({error})") from error


def _skip(stream: IO[bytes], count: int) -> None:
    """Read and drop the next ``count`` bytes of a stream that cannot seek cheaply."""
    while count > 0:
        chunk = stream.read(min(count, 2**20))
        if not chunk:
            return
        count -= len(chunk)


class _Window:
    """The next ``size`` bytes of a stream, as a stream that ends there."""

    def __init__(self, stream: IO[bytes], size: int) -> None:
        self._stream = stream
        self._left = size

    def read(self, n: int) -> bytes:
        data = self._stream.read(max(0, min(n, self._left)))
        self._left -= len(data)
        return data


# ----------------------------------------------------------------------------------------------
# Arrays

_LAYOUT = (
    "image batches are (N, H, W, C) or (N, C, H, W) with C = 1, 3 or 4 (the channel axis is the "
    "one of size 1, 3 or 4), or (N, H, W) for grayscale"
)


def _is_tensor(value: object) -> bool:
    # A tensor can only exist if torch is already imported, so this never imports torch.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _to_numpy(source: Any) -> np.ndarray:
    if isinstance(source, np.ndarray):
        return source
    import torch

    tensor = source.detach()
    if tensor.dtype in (torch.bfloat16, torch.float16):  # numpy lacks bfloat16; float32 is exact
        tensor = tensor.float()
    return np.asarray(tensor.cpu().numpy())


def _canonical_batch(array: np.ndarray) -> np.ndarray:
    """The batch as a C-contiguous uint8 (N, H, W, C) array with C in 1, 3, 4 (always a copy)."""
    shape = array.shape
    if array.ndim == 3:
        if shape[2] in (3, 4):
            raise ImageInputError(
                f"ambiguous image array of shape {shape}: a 3-D array is read as a grayscale "
                f"batch (N, H, W), but its last axis has size {shape[2]}, like the channels of "
                "one colour image; for one image add a batch axis (array[None]). " + _LAYOUT
            )
        array = array[..., None]
    elif array.ndim == 4:
        first, last = shape[1] in (1, 3, 4), shape[3] in (1, 3, 4)
        if first and last:
            raise ImageInputError(
                f"ambiguous image array of shape {shape}: both axis 1 and axis 3 could be the "
                f"channels; {_LAYOUT}. Move the channels last (array.transpose(0, 2, 3, 1)) "
                "and make sure the width is not 1, 3 or 4"
            )
        if not first and not last:
            raise ImageInputError(f"image array of shape {shape} has no channel axis; {_LAYOUT}")
        if first:
            array = array.transpose(0, 2, 3, 1)
    else:
        raise ImageInputError(f"image array of shape {shape} has {array.ndim} axes; {_LAYOUT}")
    if 0 in array.shape:
        raise ImageInputError(f"the image array is empty (shape {shape})")
    dtype = array.dtype
    if dtype == np.uint8:
        return np.array(array, order="C", copy=True)
    if np.issubdtype(dtype, np.floating):
        values = array.astype(np.float32) if dtype.itemsize < 4 else array
        if not np.isfinite(values).all():
            raise ImageInputError("the image array contains NaN or infinite values")
        low, high = float(values.min()), float(values.max())
        if low < 0.0 or high > 1.0:
            raise ImageInputError(
                f"float image arrays must hold values in [0, 1]; this one spans "
                f"[{low:g}, {high:g}]. Divide 0-255 data by 255 or convert it to uint8"
            )
        return np.ascontiguousarray(np.rint(values * 255.0).astype(np.uint8))
    raise ImageInputError(
        f"image arrays must be uint8 (0-255) or float (0-1), got dtype {dtype}; "
        "convert with array.astype(np.uint8) or array / 255.0"
    )


def _open_array(source: Any) -> ImageCollection:
    raw = _to_numpy(source)
    description = f"{type(source).__name__} of shape {tuple(raw.shape)}, dtype {raw.dtype}"
    batch = _canonical_batch(raw)
    header = "x".join(str(n) for n in batch.shape[1:]).encode()
    items = [
        ImageItem(f"#{i}", hashlib.sha256(header + b"\0" + batch[i].tobytes()).hexdigest())
        for i in range(len(batch))
    ]
    return _ArrayCollection(description, items, batch)


class _ArrayCollection(ImageCollection):
    """Images held in memory as a uint8 (N, H, W, C) array (a private copy of the input)."""

    def __init__(self, source: str, items: Sequence[ImageItem], batch: np.ndarray) -> None:
        super().__init__("array", source, items)
        self._batch = batch

    def _open_source(self, i: int, name: str) -> np.ndarray:
        image = self._batch[i]
        return image[..., 0] if image.shape[2] == 1 else image


# ----------------------------------------------------------------------------------------------
# Decoding


def _pil() -> Any:
    """The ``PIL.Image`` module, or a clear MissingDependency when Pillow is not installed."""
    try:
        from PIL import Image
    except ImportError as error:
        raise MissingDependency(
            "loading images needs pillow: pip install 'rarity-score[images]'"
        ) from error
    return Image


@functools.cache
def _formats(pil: Any) -> tuple[str, ...]:
    """The formats of _PIL_FORMATS this Pillow can open (a build may lack WebP, say)."""
    pil.init()  # registers every plugin, so OPEN is complete
    return tuple(name for name in _PIL_FORMATS if name in pil.OPEN)


def _index(i: int, n: int) -> int:
    return i + n if i < 0 else i


_BOMB_NUMBERS = re.compile(r"\((\d+) pixels\) exceeds limit of (\d+)")


def _decode(source: bytes | np.ndarray, name: str, pil: Any) -> Image.Image:
    """Decode bytes (or wrap an array) into an RGB image, or raise UnreadableImage."""
    if isinstance(source, np.ndarray):
        return _to_rgb(pil.fromarray(source), pil, name)
    if not source:
        raise UnreadableImage(name, "empty file (0 bytes)")
    from PIL import ImageFile, UnidentifiedImageError

    truncated_allowed = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        # A user's LOAD_TRUNCATED_IMAGES = True would fill missing data with grey and hide a
        # broken file; it is switched off only around this decode (it is off by default).
        if truncated_allowed:
            ImageFile.LOAD_TRUNCATED_IMAGES = False
        with warnings.catch_warnings():
            warnings.simplefilter("error", pil.DecompressionBombWarning)
            with pil.open(io.BytesIO(source), formats=_formats(pil)) as image:
                width, height = image.size
                _check_pixels(width, height, name)
                image.load()
                return _to_rgb(image, pil, name)
    except UnreadableImage:
        raise
    except (pil.DecompressionBombError, pil.DecompressionBombWarning) as error:
        raise UnreadableImage(name, _bomb_reason(error)) from error
    except UnidentifiedImageError as error:
        raise UnreadableImage(name, _NOT_AN_IMAGE) from error
    except Exception as error:  # Pillow's decoders raise OSError, ValueError, SyntaxError...
        raise UnreadableImage(name, _reason(error)) from error
    finally:
        if truncated_allowed:
            ImageFile.LOAD_TRUNCATED_IMAGES = True


_NOT_AN_IMAGE = "not an image, or not a format read here (PNG, JPEG, WebP, BMP, TIFF)"


def _check_pixels(width: int, height: int, name: str) -> None:
    if width * height > MAX_PIXELS:
        raise UnreadableImage(
            name,
            f"too large to decode safely ({width} x {height} pixels; the limit is 16384 x 16384)",
        )


def _bomb_reason(error: Exception) -> str:
    match = _BOMB_NUMBERS.search(str(error))
    detail = (
        f"{int(match[1]):,} pixels, over Pillow's limit of {int(match[2]):,}"
        if match
        else "over Pillow's MAX_IMAGE_PIXELS"
    )
    return f"too large to decode safely ({detail})"


def _reason(error: Exception) -> str:
    message = str(error).strip() or type(error).__name__
    lower = message.lower()
    if "truncated" in lower or "broken data stream" in lower or isinstance(error, EOFError):
        return "truncated file"
    if len(message) > 120:
        message = message[:117] + "..."
    return f"corrupt or unsupported image data ({message})"


def _to_rgb(image: Image.Image, pil: Any, name: str) -> Image.Image:
    """Convert any Pillow mode to RGB: alpha over white, 16-bit scaled, float as documented."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.int64)
        # Pillow's own I;16 -> L conversion clips at 255; the top byte keeps the full range.
        eight_bit = (np.clip(values, 0, 65535) >> 8).astype(np.uint8)
        return pil.fromarray(eight_bit).convert("RGB")
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        scale = 255.0 if values.size and values.min() >= 0.0 and values.max() <= 1.0 else 1.0
        eight_bit = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        return pil.fromarray(eight_bit).convert("RGB")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        white = pil.new("RGBA", rgba.size, (255, 255, 255, 255))
        return pil.alpha_composite(white, rgba).convert("RGB")
    if mode == "RGB":
        return image.copy()  # detached from the file object that is about to close
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise UnreadableImage(name, f"colour mode {mode} cannot be converted to RGB") from error
