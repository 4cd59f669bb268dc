"""Opening the files a run is read from: only regular files are checkpoints or manifests.

A FIFO named like a checkpoint blocks ``open()`` until some writer appears, and a device
never ends, so a plain ``open`` can hang a command forever. Files are opened without blocking
and refused unless the descriptor turns out to be a regular file (symbolic links to regular
files are followed, as everywhere else).
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from signscope.errors import RunFormatError

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """``path`` opened for binary reading; RunFormatError unless it is a regular file.

    OSErrors of the open itself (missing file, permissions) reach the caller unchanged, so
    that it can word them for the file it expected.
    """
    nonblock = getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, os.O_RDONLY | nonblock | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise RunFormatError(f"{path}: is {kind_of(mode)}, not a file")
        if nonblock:  # regular files ignore it; cleared so the file object behaves as usual
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
