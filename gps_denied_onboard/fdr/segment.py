"""One segment file: the byte path from the writer thread to the disk.

:class:`SegmentFile` is what :class:`~gps_denied_onboard.fdr.mcap_segment.McapSegment`
encodes into. It buffers in memory and reaches the OS only when the writer
thread says so (:meth:`SegmentFile.push`, after every batch and whenever
64 KiB is pending), so a kill -9 loses at most one batch, and a storage error
is seen at a known place, with exactly how many bytes landed. It never seeks
and never rewrites: a segment abandoned after an error is closed as it is.

:class:`OsFile` is the raw descriptor underneath; tests substitute their own
(a stalling or failing file) through the recorder's ``file_opener``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

#: The writer thread pushes (closes the open chunk and hands it to the OS) at the end of
#: every batch and as soon as the open chunk reaches this size.
PUSH_THRESHOLD = 64 * 1024


class StorageError(OSError):
    """Writing a segment failed; ``landed`` bytes of the segment are on the OS."""

    def __init__(self, err: OSError, landed: int) -> None:
        super().__init__(err.errno, err.strerror or str(err))
        self.cause = err
        self.landed = landed


class RawFile(Protocol):
    """What a segment needs from a file: append, sync, close."""

    def write(self, data: memoryview) -> int: ...
    def sync(self) -> None: ...
    def close(self) -> None: ...


class OsFile:
    """A new file opened for appending (O_EXCL: a segment is never reopened)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)

    def write(self, data: memoryview) -> int:
        return os.write(self._fd, data)

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


FileOpener = Callable[[Path], RawFile]


class SegmentFile:
    """Append-only buffered stream of one segment's bytes."""

    def __init__(self, raw: RawFile) -> None:
        self._raw = raw
        self.buf = bytearray()
        self.landed = 0  # bytes accepted by the OS
        self.synced = 0  # bytes covered by the last fdatasync
        self.broken = False

    def write(self, data: bytes) -> int:
        self.buf += data
        return len(data)

    def tell(self) -> int:
        return self.landed + len(self.buf)

    def push(self) -> None:
        """Hand every pending byte to the OS.

        Raises:
            StorageError: the OS refused; ``landed`` tells how far the file got.
        """
        buf = self.buf
        if not buf:
            return
        done = 0
        failure: OSError | None = None
        with memoryview(buf) as view:
            while done < len(view):
                with view[done:] as part:
                    try:
                        n = self._raw.write(part)
                    except OSError as err:
                        failure = err
                        break
                if n <= 0:
                    failure = OSError(5, "write returned 0")
                    break
                done += n
        self.landed += done
        del buf[:done]
        if failure is not None:
            self.broken = True
            raise StorageError(failure, self.landed) from failure

    def sync(self) -> None:
        if self.synced == self.landed:
            return
        try:
            self._raw.sync()
        except OSError as err:
            self.broken = True
            raise StorageError(err, self.landed) from err
        self.synced = self.landed

    def close(self) -> None:
        self._raw.close()
