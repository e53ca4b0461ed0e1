"""Atomic file writing: a reader sees either the old file or the complete new one, never a part.

Every writer of the package (CSV, JSON, feature files) goes through :func:`atomic_write_bytes`:
the data is written to a temporary file in the destination's directory, flushed and fsynced, then
moved over the destination with :func:`os.replace` (atomic on POSIX and Windows). When anything
fails, the temporary file is removed and the old destination file is left untouched.

Errors name the destination, never the temporary file: a full disk (or quota, or an I/O error)
raises :class:`StorageFullError`, a problem of the machine (an ``OSError`` that is also a
``RuntimeError``); any other failure the ``OSError`` of its kind (``PermissionError``, ...) with
the message ``cannot write PATH: REASON``. :func:`check_writable` finds an unusable destination
before any work starts.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

__all__ = [
    "StorageFullError",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_writable",
    "is_machine_failure",
    "write_error",
]

#: errno values that mean the machine, not the input, is at fault: nothing to fix in the command.
_MACHINE_ERRNOS = frozenset(
    code
    for code in (
        errno.ENOSPC,
        getattr(errno, "EDQUOT", None),
        errno.EIO,
        errno.EFBIG,
    )
    if code is not None
)


class StorageFullError(OSError, RuntimeError):
    """Writing failed because of the machine (disk full, quota, I/O error), not the input.

    An ``OSError`` (callers that tolerate a failing write, like the feature cache, still catch
    it) and a ``RuntimeError`` (the command line maps it to exit status 1, not 2).
    """


def is_machine_failure(error: BaseException) -> bool:
    """Whether ``error`` is the machine's (disk full, quota, I/O error), not the input's.

    >>> is_machine_failure(OSError(28, "No space left on device"))
    True
    >>> is_machine_failure(FileNotFoundError(2, "No such file or directory"))
    False
    """
    return isinstance(error, StorageFullError) or (
        isinstance(error, OSError) and error.errno in _MACHINE_ERRNOS
    )


def write_error(path: str | os.PathLike[str], error: OSError) -> OSError:
    """``error`` (raised while writing ``path``) as one that names ``path``, not a temporary
    file: :class:`StorageFullError` for a full disk, else an ``OSError`` of the same kind.

    >>> e = write_error("out.csv", PermissionError(13, "Permission denied", ".out.csv.1.tmp"))
    >>> type(e).__name__, str(e), e.errno
    ('PermissionError', 'cannot write out.csv: Permission denied', 13)
    >>> isinstance(write_error("x", OSError(28, "No space left on device")), RuntimeError)
    True
    """
    reason = error.strerror or str(error) or type(error).__name__
    message = f"cannot write {os.fspath(path)}: {reason}"
    kind: type[OSError]
    if error.errno in _MACHINE_ERRNOS:
        kind = StorageFullError
    elif type(error) is StorageFullError or not isinstance(error, OSError):
        kind = OSError
    else:
        kind = type(error)
    try:
        out = kind(message)
    except TypeError:  # an OSError subclass with another constructor
        out = OSError(message)
    out.errno = error.errno  # (strerror stays unset: it would replace the message in str())
    return out


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Refuse, before any work, a file ``path`` that cannot be written; return it as a Path.

    The folder must exist and accept a new file (tried for real: a temporary file is created
    and removed again, so read-only mounts and access lists count); ``path`` must not be a
    folder. Raises ValueError naming ``path`` (bad input) or :class:`StorageFullError`.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> check_writable(d / "scores.csv") == d / "scores.csv", sorted(d.iterdir())
    (True, [])
    >>> check_writable(d / "no" / "scores.csv")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: cannot write .../no/scores.csv: folder .../no does not exist
    """
    path = Path(path)
    directory = path.absolute().parent
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder; give a file name")
    if not directory.is_dir():
        problem = "is not a folder" if directory.exists() else "does not exist"
        raise ValueError(f"cannot write {path}: folder {directory} {problem}")
    try:
        fd, tmp = _create_temporary(path)
    except OSError as error:
        mapped = write_error(path, error)
        if isinstance(mapped, StorageFullError):
            raise mapped from error
        raise ValueError(f"{mapped}; give a path in a folder you can write to") from error
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    return path


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new, empty temporary file next to ``path``: its descriptor and its path."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.parent / f".{path.name[:200]}.{secrets.token_hex(6)}.tmp"
        try:
            # Mode 0o666 filtered by the umask: the same permissions as an ordinary new file.
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path.

    The temporary file is created next to ``path`` (same file system, so the final rename is
    atomic) with the permissions a plain ``open(path, "wb")`` would give. The parent directory
    must exist.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_bytes(d / "a.bin", b"new").read_bytes()
    b'new'
    >>> sorted(p.name for p in d.iterdir())
    ['a.bin']
    """
    path = Path(path)
    directory = path.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"cannot write {path}: directory {directory} does not exist")
    try:
        fd, tmp = _create_temporary(path)
    except OSError as error:
        raise write_error(path, error) from error
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(error, OSError):
            raise write_error(path, error) from error
        raise
    _fsync_directory(directory)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`) and return the path.

    Newlines are written as given (no platform translation), so CSV and JSON files are identical
    on every platform.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
    >>> _ = atomic_write_text(p, "old\\n")
    >>> _ = atomic_write_text(p, "new\\n")
    >>> p.read_text()
    'new\\n'
    """
    return atomic_write_bytes(path, text.encode(encoding))


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable where the platform allows it (best effort, POSIX only)."""
    if os.name != "posix":  # pragma: no cover
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)
