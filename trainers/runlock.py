"""One writer per run folder: an exclusive ``flock`` on a lock file inside it.

Two ``signscope train`` processes writing one folder interleave their metrics and level files
into a run that no single configuration produced. The lock is held for the whole of training
(or of an import) and released by the kernel when the process ends, however it ends, so a
SIGKILL never leaves a stale lock behind. The holder writes its process id into the file so
that the process turned away can name it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from signscope.errors import SignscopeError
from signscope.runformat import LOCK_FILE

try:
    import fcntl
except ImportError:  # Windows: no flock; training there runs without the lock
    fcntl = None


@contextlib.contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold the lock of ``folder`` (which must exist) while the block runs; a SignscopeError
    naming the holder when another process has it."""
    if fcntl is None:
        yield
        return
    path = folder / LOCK_FILE
    fd = _acquire(folder, path)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        yield
    finally:
        # Removed while still held: a process that opened the old file before this point
        # finds it unlinked after taking the lock, and tries again (see _acquire).
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def _acquire(folder: Path, path: Path) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SignscopeError(
                f"--out {folder}: cannot write into this folder ({exc.strerror})"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise SignscopeError(
                f"--out {folder}: another process is writing a run into this folder "
                f"({holder}); wait for it to end or stop it"
            ) from None
        if _same_file(fd, path):
            return fd
        os.close(fd)  # the previous holder removed the file we locked: lock the current one


def _holder(fd: int) -> str:
    text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    return text or "a process that has just started"


def _same_file(fd: int, path: Path) -> bool:
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino)
