"""MAVLink telemetry logs (``.tlog``): read and write, no pymavlink needed.

The format MAVProxy and Mission Planner write, and pymavlink reads with
``mavutil.mavlink_connection("x.tlog")``: each MAVLink frame (v1 or v2,
unchanged bytes) is preceded by its receive time as an 8-byte big-endian
count of microseconds since the Unix epoch.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAVLINK1_STX = 0xFE
MAVLINK2_STX = 0xFD
_SIGNED = 0x01


@dataclass(frozen=True)
class TlogFrame:
    """One frame: receive time (ns since epoch, microsecond resolution) and raw bytes."""

    time_ns: int
    frame: bytes

    @property
    def msgid(self) -> int:
        """MAVLink message id of the frame."""
        if self.frame[0] == MAVLINK2_STX:
            return int.from_bytes(self.frame[7:10], "little")
        return self.frame[5]


def frame_length(buf: bytes, offset: int = 0) -> int:
    """Length of the MAVLink frame starting at ``buf[offset]``.

    Raises:
        ValueError: no MAVLink start byte there.
    """
    stx = buf[offset]
    payload = buf[offset + 1]
    if stx == MAVLINK2_STX:
        signed = buf[offset + 2] & _SIGNED
        return 10 + payload + 2 + (13 if signed else 0)
    if stx == MAVLINK1_STX:
        return 6 + payload + 2
    raise ValueError(f"no MAVLink start byte at offset {offset} (0x{stx:02x})")


def read_tlog(path: str | Path) -> Iterator[TlogFrame]:
    """The frames of a tlog in file order; a truncated last frame is dropped."""
    data = Path(path).read_bytes()
    pos = 0
    while pos + 8 + 2 <= len(data):
        (usec,) = struct.unpack(">Q", data[pos:pos + 8])
        length = frame_length(data, pos + 8)
        end = pos + 8 + length
        if end > len(data):
            return
        yield TlogFrame(usec * 1000, data[pos + 8:end])
        pos = end


def write_tlog(path: str | Path, frames: Iterable[TlogFrame]) -> int:
    """Write ``frames``; return how many."""
    count = 0
    with Path(path).open("wb") as fh:
        for f in frames:
            fh.write(struct.pack(">Q", f.time_ns // 1000))
            fh.write(f.frame)
            count += 1
    return count
