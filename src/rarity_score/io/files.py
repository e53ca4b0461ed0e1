"""Opening a file that is untrusted input (an image, a ``run.json``): regular files only.

A pipe or a device put where a file is expected would make ``open()`` or ``read()`` wait for
ever (a FIFO named ``run.json`` in a results directory, say); it is refused instead.
"""

from __future__ import annotations

import errno
import os
from stat import S_ISREG
from typing import IO

__all__ = ["NotRegularFileError", "open_regular"]


class NotRegularFileError(OSError):
    """What :func:`open_regular` raises for a pipe, a device or a socket."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.EINVAL, "not a regular file (a pipe or device?)", path)


def open_regular(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open ``path`` for reading in binary mode; :class:`NotRegularFileError` unless it is a
    regular file (O_NONBLOCK keeps ``open()`` itself from blocking on a FIFO).

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as file, open_regular(file.name) as opened:
    ...     opened.read()
    b''
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        if not S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFileError(os.fsdecode(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
