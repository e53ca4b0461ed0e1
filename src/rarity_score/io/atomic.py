"""Atomic file writing: a reader sees either the old file or the complete new one, never a part.

Every writer of the package (CSV, JSON, feature files) goes through :func:`atomic_write_bytes`:
the data is written to a temporary file in the destination's directory, flushed and fsynced, then
moved over the destination with :func:`os.replace` (atomic on POSIX and Windows). When anything
fails, the temporary file is removed and the old destination file is left untouched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text"]


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
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            # Mode 0o666 filtered by the umask: the same permissions as an ordinary new file.
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue
        break
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
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
