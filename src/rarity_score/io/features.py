"""Feature files in and out: ``.npy``, ``.npz`` and ``.pt`` / ``.pth``.

A feature file holds one 2-D array, one row per sample and one column per feature dimension.
Every problem with a file raises :class:`FeatureFileError`, a :class:`ValueError` whose message
names the file and says what to do.

``.npy`` files, and ``.npz`` members stored uncompressed (as ``np.savez`` and ``rarity features``
write them), are memory-mapped read-only rather than read: an array larger than memory can be
scored, its pages are read from the file as the sweep reaches them (file-backed page cache, which
the system reclaims, not a second copy), and every check of its values reads it a block of rows
at a time. Nothing is ever written into the file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import struct
import warnings
import weakref
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rarity_score._validation import (
    check_exact,
    check_fits_in_memory,
    finite_rows,
    row_blocks,
    tensor_features,
)
from rarity_score.io.atomic import atomic_write_bytes
from rarity_score.io.names import printable
from rarity_score.io.npz import npz_bytes

__all__ = [
    "FEATURE_SUFFIXES",
    "FeatureFileError",
    "features_fingerprint",
    "load_features",
    "open_npz",
    "read_npz_array",
    "save_features",
    "split_key",
]

logger = logging.getLogger(__name__)

#: File name endings :func:`load_features` reads.
FEATURE_SUFFIXES: tuple[str, ...] = (".npy", ".npz", ".pt", ".pth")

_KEYED_SUFFIXES = (".npz", ".pt", ".pth")


class FeatureFileError(ValueError):
    """A feature file is missing, unreadable, or does not hold a 2-D numeric array."""


def split_key(path: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """Split the ``file.npz:name`` syntax into the file and the array name.

    Only a suffix after ``.npz``, ``.pt`` or ``.pth`` counts as a key, so ordinary paths (and
    Windows drive letters) pass through unchanged.

    >>> split_key("feats.npz:fake")
    (PosixPath('feats.npz'), 'fake')
    >>> split_key("feats.npy")
    (PosixPath('feats.npy'), None)
    """
    text = os.fspath(path)
    if not Path(text).exists() and ":" in text:
        head, _, key = text.rpartition(":")
        if key and head.lower().endswith(_KEYED_SUFFIXES):
            return Path(head), key
    return Path(text), None


def load_features(path: str | os.PathLike[str], key: str | None = None) -> np.ndarray:
    """Load a 2-D feature array (samples x features) from ``.npy``, ``.npz``, ``.pt`` or ``.pth``.

    ``.npz`` files and ``.pt`` files holding a dict may contain several arrays: choose one with
    ``key`` or with the ``path.npz:name`` syntax. A file with exactly one array needs no key.
    ``.pt`` / ``.pth`` files are read with ``torch.load(..., weights_only=True)`` (no code runs
    from the file); they need torch installed. The array is returned with its stored dtype.

    A ``.npy`` file, or an ``.npz`` member stored uncompressed, comes back as a read-only
    :class:`numpy.memmap` of the file (after its header has been checked against the file's
    size), so that no copy of it is made in memory; compressed members and torch files are read
    into memory. The values are checked (finite, exactly convertible) a block of rows at a time.
    A mapped file must not change while it is in use: the array shows the file's current bytes,
    so values written into it later reach the computation unchecked, and a file truncated while
    mapped kills the process with SIGBUS when a page beyond its new end is read. Replace such a
    file by renaming a new one over it (the mapping keeps the old one), never rewrite it in place.

    Raises :class:`FeatureFileError` for a missing file, an unknown extension, an ambiguous or
    unknown key, an array that is not 2-D, a non-numeric dtype, no rows, or non-finite values.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "f.npz"
    >>> np.savez(p, real=np.zeros((4, 2)), fake=np.ones((3, 2)))
    >>> load_features(f"{p}:fake").shape
    (3, 2)
    >>> load_features(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rarity_score.io.features.FeatureFileError: ...f.npz holds several arrays (fake, real): ...
    """
    file, path_key = split_key(path)
    if key is not None and path_key is not None and key != path_key:
        raise FeatureFileError(
            f"{file}: two different array names given ({path_key!r} in the path, {key!r} as key); "
            "give only one"
        )
    key = key if key is not None else path_key
    if not file.exists():
        raise FeatureFileError(f"feature file not found: {file}")
    if file.is_dir():
        raise FeatureFileError(f"{file} is a directory; give a .npy, .npz, .pt or .pth file")
    if not file.is_file():  # a FIFO or a device named x.npy would block or never end
        raise FeatureFileError(f"{file} is not a regular file; give a .npy, .npz, .pt or .pth file")
    suffix = file.suffix.lower()
    if suffix == ".npy":
        if key is not None:
            raise FeatureFileError(f"{file}: a .npy file holds one array; drop the key {key!r}")
        array = _load_npy(file)
    elif suffix == ".npz":
        array = _load_npz(file, key)
    elif suffix in (".pt", ".pth"):
        array = _load_torch(file, key)
    else:
        raise FeatureFileError(
            f"{file}: unknown feature file type {suffix or '(no extension)'!r}; "
            f"use one of {', '.join(FEATURE_SUFFIXES)}"
        )
    _check_array(array, file)
    logger.debug("loaded %s: shape %s, dtype %s", file, array.shape, array.dtype)
    return array


def save_features(path: str | os.PathLike[str], array: Any, *, key: str = "features") -> Path:
    """Save a 2-D feature array atomically as ``.npy`` or ``.npz`` (under the name ``key``).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.npy"
    >>> _ = save_features(p, np.eye(3, dtype=np.float32))
    >>> load_features(p).dtype
    dtype('float32')
    """
    path = Path(path)
    array = np.asarray(array)
    _check_array(array, path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        data = buffer.getvalue()
    elif suffix == ".npz":
        data = npz_bytes(**{key: array})
    else:
        raise FeatureFileError(
            f"{path}: cannot save features as {suffix or '(no extension)'!r}; use .npy or .npz"
        )
    return atomic_write_bytes(path, data)


def features_fingerprint(array: np.ndarray) -> str:
    """A short content hash of a feature array (shape, dtype and values), to record which real
    reference set scores were measured against: scores are only comparable for the same one.

    The values are hashed in C order; an array in another layout (a Fortran-order file) is
    hashed a block of rows at a time, so a memory-mapped one is never copied whole.

    >>> features_fingerprint(np.zeros((2, 3))) == features_fingerprint(np.zeros((2, 3)))
    True
    """
    array = np.asarray(array)
    if array.ndim == 0:
        array = array.reshape(1)  # as np.ascontiguousarray gives it: fingerprints stay the same
    digest = hashlib.sha256()
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    if array.flags.c_contiguous:
        digest.update(array.data)
    else:
        for _, block in row_blocks(array):
            digest.update(np.ascontiguousarray(block).data)
    return "sha256:" + digest.hexdigest()[:16]


def _load_npy(file: Path) -> np.ndarray:
    try:
        # Opened by name (not io.files.open_regular's descriptor): np.memmap records the path of
        # a named file, which a Dask worker maps again.
        with open(file, "rb") as handle:
            where = str(file)
            declared = _check_declared(handle, os.fstat(handle.fileno()).st_size, where, fits=False)
            # The handle whose header was checked is the one mapped: a file renamed over this
            # path in between is not the one read.
            mapped = _map(handle, handle.tell(), declared)
            if mapped is not None:
                return mapped
            check_fits_in_memory(declared.shape, declared.dtype.itemsize, where)
            handle.seek(0)
            return _read_array(handle, declared, where)
    except FeatureFileError:
        raise
    except ValueError as error:  # object arrays need pickle, which is refused
        raise FeatureFileError(
            f"{file}: cannot read as a numeric array ({error}); save features with "
            "np.save(path, array) from a float array"
        ) from error
    except (OSError, EOFError) as error:
        raise FeatureFileError(f"{file}: not a readable .npy file ({error})") from error


def _load_npz(file: Path, key: str | None) -> np.ndarray:
    try:
        with open_npz(file) as archive:
            names = sorted(archive.files)
            name = _choose(file, names, key)
            mapped = _map_member(archive, name, file)
            if mapped is not None:
                return mapped
            return read_npz_array(archive, name, file)
    except FeatureFileError:
        raise
    except (ValueError, zipfile.BadZipFile) as error:
        raise FeatureFileError(
            f"{file}: cannot read as a numeric array ({error}); store a float array"
        ) from error
    except (RuntimeError, NotImplementedError) as error:  # zipfile: encrypted, unknown method
        raise FeatureFileError(
            f"{file}: cannot read its array ({error}); write it again with np.savez"
        ) from error
    except (OSError, EOFError) as error:
        raise FeatureFileError(f"{file}: not a readable .npz file ({error})") from error


def open_npz(file: str | os.PathLike[str]) -> Any:
    """``np.load`` of an ``.npz`` archive, pickles off, for use in a ``with``; FeatureFileError
    naming ``file`` when it holds something else (an ``.npy`` array saved under an .npz name)."""
    # Told from the first bytes: np.load would take anything else for a pickle and suggest
    # unpickling it, which a file from elsewhere must never be.
    with open(file, "rb") as handle:
        magic = handle.read(6)
    if magic.startswith(np.lib.format.MAGIC_PREFIX):
        raise FeatureFileError(
            f"{os.fspath(file)}: not an .npz archive (it holds one .npy array); rename it .npy"
        )
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise FeatureFileError(f"{os.fspath(file)}: not an .npz archive (not a zip file)")
    loaded = np.load(file, allow_pickle=False)
    assert isinstance(loaded, np.lib.npyio.NpzFile)  # a zip file always loads as one
    return loaded


def read_npz_array(archive: Any, name: str, file: Path, *, numeric: bool = True) -> np.ndarray:
    """The array ``name`` of an open ``.npz`` (``np.load``'s ``NpzFile``), read only after its
    header has been checked against the member's size: a damaged or hostile header cannot make
    it allocate more than the archive holds. ``numeric``: refuse other dtypes (text, records)
    from the header alone. Raises :class:`FeatureFileError` naming ``file:name``, or MemoryError
    naming it when the array does not fit in memory."""
    member = _member(archive, name)
    size = archive.zip.getinfo(member).file_size
    where = f"{file}:{name}"
    try:
        with archive.zip.open(member) as handle:
            declared = _check_declared(handle, size, where, numeric=numeric)
            handle.seek(0)
            return _read_array(handle, declared, where)
    except (FeatureFileError, MemoryError):
        raise
    except (ValueError, EOFError, zipfile.BadZipFile) as error:
        raise FeatureFileError(
            f"{where}: cannot read as a numeric array ({error}); store a float array"
        ) from error


def _member(archive: Any, name: str) -> str:
    """The zip member of the array ``name`` of an open ``.npz``."""
    members = archive.zip.namelist()
    return f"{name}.npy" if f"{name}.npy" in members else name


class _Declared(NamedTuple):
    """What an ``.npy`` header declares."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool


def _check_declared(
    handle: Any, size: int, where: str, *, numeric: bool = True, fits: bool = True
) -> _Declared:
    """Read the ``.npy`` header at the start of ``handle`` (``size`` bytes in all) and refuse,
    before anything is allocated, an array the bytes cannot hold, one that needs unpickling, or
    (``fits``: for one to be read into memory) one that does not fit in memory. Returns what the
    header declares; ``handle`` is left at the first byte of the data."""
    fmt = np.lib.format
    version = fmt.read_magic(handle)
    if version == (1, 0):
        shape, fortran_order, dtype = fmt.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, fortran_order, dtype = fmt.read_array_header_2_0(handle)
    else:  # (3, 0): utf-8 field names of a record dtype, which is refused below anyway
        read_header = getattr(fmt, "_read_array_header", None)
        if read_header is None:
            raise FeatureFileError(f"{where}: .npy format version {version} is not read here")
        shape, fortran_order, dtype = read_header(handle, version)
    shape = tuple(int(n) for n in shape)
    if dtype.hasobject:
        raise FeatureFileError(
            f"{where}: holds Python objects (dtype {dtype}), which cannot be read without "
            "unpickling (never done here); save features with np.save(path, array) from a "
            "float array"
        )
    if numeric:
        _check_dtype(dtype, where)
    needed = math.prod(shape) * dtype.itemsize
    present = size - handle.tell()
    if needed > present:
        raise FeatureFileError(
            f"{where}: its header declares an array of shape {shape} ({dtype}, {needed} bytes) "
            f"but only {max(present, 0)} bytes of data follow; the file is truncated or damaged: "
            "write it again"
        )
    if fits:
        check_fits_in_memory(shape, dtype.itemsize, where)
    return _Declared(shape, dtype, bool(fortran_order))


#: What identifies the version of a file, as a shared file system shows it to every host: inode,
#: size and modification time (the device number is each host's own).
FileIdentity = tuple[int, int, int]

#: The file each map made here maps, by the map's id while it lives: whoever maps the path again
#: (a Dask worker) must find that very file, not one renamed over the path since.
_MAPPED_FROM: dict[int, tuple[weakref.ref[np.memmap], FileIdentity]] = {}


def file_identity(status: os.stat_result) -> FileIdentity:
    """:data:`FileIdentity` of a file's status."""
    return (status.st_ino, status.st_size, status.st_mtime_ns)


def mapped_identity(array: np.memmap) -> FileIdentity | None:
    """The identity of the file that ``array`` (a map returned by :func:`load_features`) was
    made from, when it was made; None for any other array."""
    known = _MAPPED_FROM.get(id(array))
    if known is None or known[0]() is not array:
        return None
    return known[1]


def _map(handle: Any, offset: int, declared: _Declared) -> np.memmap | None:
    """A read-only map of the array whose data starts at byte ``offset`` of the open file
    ``handle`` (its size already checked), or None where it cannot be mapped: no bytes to map,
    a file system or platform without mmap, or a 32-bit address space too small."""
    shape, dtype, fortran_order = declared
    if math.prod(shape) * dtype.itemsize == 0:
        return None  # mmap cannot map zero bytes; the empty array is read (and refused)
    try:
        # mode "r": the pages are mapped read-only; the array cannot be made writeable.
        mapped = np.memmap(
            handle,
            dtype=dtype,
            mode="r",
            offset=offset,
            shape=shape,
            order="F" if fortran_order else "C",
        )
        identity = file_identity(os.fstat(handle.fileno()))
    except (OSError, ValueError, OverflowError, io.UnsupportedOperation):
        return None
    key = id(mapped)
    _MAPPED_FROM[key] = (weakref.ref(mapped), identity)
    weakref.finalize(mapped, _MAPPED_FROM.pop, key, None)
    return mapped


#: A zip local file header: signature, version, flags, method, time, date, CRC-32, compressed
#: size, size, name length, extra field length (APPNOTE.TXT 4.3.7).
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"
#: Bytes read at once when a mapped member's CRC-32 is checked.
_CRC_BLOCK = 16 * 2**20


def _map_member(archive: Any, name: str, file: Path) -> np.memmap | None:
    """The array ``name`` of an open ``.npz`` as a read-only map of the archive, when its member
    is stored uncompressed and unencrypted; None otherwise (it is then read). The member's
    header is checked as :func:`read_npz_array` checks it, and its CRC-32 as zipfile would
    (reading the member through once, a block at a time)."""
    zip_file = archive.zip
    info = zip_file.getinfo(_member(archive, name))
    if (
        info.compress_type != zipfile.ZIP_STORED
        or info.flag_bits & 0x1
        or info.compress_size != info.file_size
    ):
        return None
    where = f"{file}:{name}"
    try:
        with zip_file.open(info) as handle:  # checks the local header's name against the entry
            declared = _check_declared(handle, info.file_size, where, fits=False)
            header = handle.tell()
        raw = zip_file.fp
        raw.seek(info.header_offset)
        local = raw.read(_LOCAL_HEADER.size)
    except FeatureFileError:
        raise
    except (ValueError, EOFError, OSError, zipfile.BadZipFile):
        return None  # read_npz_array reads it, and says what is wrong with it
    if len(local) != _LOCAL_HEADER.size or local[:4] != _LOCAL_SIGNATURE:
        return None
    *_, name_length, extra_length = _LOCAL_HEADER.unpack(local)
    start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    whole = _map(raw, start, _Declared((info.file_size,), np.dtype(np.uint8), False))
    mapped = _map(raw, start + header, declared)
    if whole is None or mapped is None:
        return None
    crc = 0
    for begin in range(0, info.file_size, _CRC_BLOCK):
        crc = zlib.crc32(whole[begin : begin + _CRC_BLOCK].data, crc)
    del whole
    if crc != info.CRC:
        raise FeatureFileError(
            f"{where}: its bytes do not match the archive's CRC-32 checksum; the file is "
            "damaged: write it again"
        )
    return mapped


def _read_array(handle: Any, declared: _Declared, where: str) -> np.ndarray:
    try:
        return np.asarray(np.lib.format.read_array(handle, allow_pickle=False))
    except MemoryError as error:
        shape, dtype, _ = declared
        raise MemoryError(
            f"{where}: not enough memory to read its array of shape {shape} ({dtype})"
        ) from error


def _load_torch(file: Path, key: str | None) -> np.ndarray:
    try:
        import torch
    except ImportError as error:
        raise FeatureFileError(
            f"{file}: reading .pt/.pth files needs torch, which is not installed; "
            "install it (pip install 'rarity-score[torch]') or save the features as .npy"
        ) from error
    try:
        with warnings.catch_warnings():
            # torch warns while it validates sparse tensors; the features are checked below.
            warnings.simplefilter("ignore")
            obj = torch.load(file, map_location="cpu", weights_only=True)
    except MemoryError as error:
        raise MemoryError(f"{file}: not enough memory to read it with torch.load") from error
    except Exception as error:  # torch raises many types (pickle, zip, runtime)
        raise FeatureFileError(
            f"{file}: cannot read with torch.load(weights_only=True) ({error}); save a tensor "
            "or a dict of tensors with torch.save"
        ) from error
    where = str(file)
    if isinstance(obj, Mapping):
        arrays = {str(name): value for name, value in obj.items() if _is_array(value, torch)}
        name = _choose(file, sorted(arrays), key)
        obj = arrays[name]
        where = f"{file}:{name}" if len(arrays) > 1 else where
    elif key is not None:
        raise FeatureFileError(f"{file} holds a single tensor, not a dict; drop the key {key!r}")
    if isinstance(obj, torch.Tensor):
        try:
            return np.asarray(tensor_features(obj, where, floats=False))
        except ValueError as error:
            raise FeatureFileError(str(error)) from error
    if isinstance(obj, np.ndarray):
        return obj
    raise FeatureFileError(
        f"{file} holds a {type(obj).__name__}, not a tensor; save a 2-D tensor "
        "(or a dict of tensors) with torch.save"
    )


def _is_array(value: object, torch: Any) -> bool:
    return isinstance(value, (torch.Tensor, np.ndarray))


def _choose(file: Path, names: list[str], key: str | None) -> str:
    if key is not None:
        if key not in names:
            raise FeatureFileError(
                f"{file} has no array named {key!r}; available arrays: {_listed(names)}"
            )
        return key
    if len(names) == 1:
        return names[0]
    if not names:
        raise FeatureFileError(f"{file} holds no arrays")
    raise FeatureFileError(
        f"{file} holds several arrays ({_listed(names)}): choose one with "
        f"{file}:NAME (for example {file}:{names[0]})"
    )


#: Array names a message lists before it only counts the others.
_LISTED_NAMES = 10


def _listed(names: list[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(printable(n) for n in names[:_LISTED_NAMES])
    more = len(names) - _LISTED_NAMES
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _check_dtype(dtype: np.dtype, where: str) -> None:
    # By kind, not issubdtype: numpy counts timedelta64 as an integer.
    if dtype.kind not in "iuf":
        raise FeatureFileError(
            f"{where}: features must be a real numeric array, got dtype {dtype}; "
            "convert it with array.astype(np.float32)"
        )


def _check_array(array: np.ndarray, file: Path) -> None:
    _check_dtype(array.dtype, str(file))
    if array.ndim != 2:
        hint = (
            "for one sample use array.reshape(1, -1)"
            if array.ndim == 1
            else "flatten each sample with array.reshape(len(array), -1)"
            if array.ndim > 2
            else "store one row per sample"
        )
        raise FeatureFileError(
            f"{file}: expected a 2-D array (samples x features), got shape {array.shape}; {hint}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise FeatureFileError(f"{file}: the feature array is empty (shape {array.shape})")
    try:
        # Refused here, naming the file, rather than later when the engine converts them; the
        # check reads blocks of rows and keeps no conversion.
        check_exact(array, str(file))
    except ValueError as error:
        raise FeatureFileError(str(error)) from error
    if array.dtype.kind == "f":
        finite = finite_rows(array)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            shown = ", ".join(str(i) for i in bad[:5]) + (", ..." if len(bad) > 5 else "")
            raise FeatureFileError(
                f"{file}: {len(bad)} row(s) contain NaN or infinite values (rows {shown}); "
                "remove or recompute them"
            )
