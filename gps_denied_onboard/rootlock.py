"""One owner per directory: an exclusive ``flock`` held for the owner's lifetime.

The flight recorder holds ``<flight_root>/.fdr.lock`` and the tile cache
``<tile_root>/.tile_cache.lock`` this way. ``flock`` is released by the kernel
when the holder's descriptor is closed, so a process that dies (kill -9
included) never leaves a stale lock behind; the file itself stays and holds the
last owner's pid, for the operator.

Callers map the two failures to their own typed errors:
:class:`DirectoryLockedError` (another owner holds the lock) and ``OSError``
(the directory or the lock file cannot be created or written).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType


class DirectoryLockedError(Exception):
    """Another process (or another owner in this one) holds the directory's lock.

    Attributes:
        path: the lock file.
        holder_pid: the pid the holder wrote into the lock file, when readable.
    """

    def __init__(self, path: Path, holder_pid: int | None) -> None:
        holder = f" (held by pid {holder_pid})" if holder_pid is not None else ""
        super().__init__(f"{path} is locked{holder}")
        self.path = path
        self.holder_pid = holder_pid


class DirectoryLock:
    """A held lock; :meth:`release` (or leaving the ``with`` block) lets it go."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Release the lock. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # releases the flock

    def __enter__(self) -> DirectoryLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def lock_directory(directory: Path, lock_name: str) -> DirectoryLock:
    """Create ``directory`` if needed and take ``directory/lock_name`` exclusively.

    Never blocks: a lock held elsewhere fails at once. Two opens of the same
    lock file in one process are two owners (``flock`` is per open file
    description), so a second store in the same process is refused too.

    Raises:
        DirectoryLockedError: another owner holds it.
        OSError: the directory or the lock file cannot be created or written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / lock_name
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        holder = _holder(fd)
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise DirectoryLockedError(path, holder) from err
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        os.close(fd)
        raise
    return DirectoryLock(path, fd)
