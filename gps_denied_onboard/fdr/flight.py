"""One flight on disk: its directory, its segments and what the footer will say.

:class:`Flight` is the writer thread's view of the open flight: the segment
files it created (``<flight_id>_<index>.mcap``), which one is open, which were
closed, abandoned (torn) or dropped by the capacity cap, and the running totals
the footer and ``metadata.yaml`` report. It opens, finishes and retires
segments and applies the cap's drops; *when* to do so, and what to record
about it, is the recorder's business (fdr/writer.py).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gps_denied_onboard.fdr.bag import SegmentEntry, write_metadata
from gps_denied_onboard.fdr.mcap_segment import McapSegment
from gps_denied_onboard.fdr.policy import CapacityCapPolicy, SegmentInfo
from gps_denied_onboard.fdr.segment import FileOpener


@dataclass(frozen=True)
class FlightHeader:
    """What ``open_flight`` wrote as the first message of segment 0."""

    flight_id: str
    started_at_ns: int
    schema_version: str
    segment_size_bytes: int
    flight_cap_bytes: int
    flight_dir: Path
    host: str
    software_version: str

    def payload(self) -> dict[str, Any]:
        return {
            "flight_id": self.flight_id,
            "schema_version": self.schema_version,
            "started_at_ns": self.started_at_ns,
            "segment_size_bytes": self.segment_size_bytes,
            "flight_cap_bytes": self.flight_cap_bytes,
            "host": self.host,
            "software_version": self.software_version,
        }


@dataclass(frozen=True)
class FlightFooter:
    """What ``close_flight`` wrote as the last message of the final segment.

    Attributes:
        records_written: messages that reached the flight's segments before the footer
            (header, producers' records, raw messages, the recorder's own records).
        records_dropped_overrun: sum of the counts of the flight's ``overrun`` records.
        bytes_written: segment bytes handed to the OS before the footer, dropped
            segments included.
        rollover_count: segments dropped by the capacity cap.
        segment_count: segments created.
        torn_segments: segments abandoned after a storage error.
        on_disk: False when a storage error kept the footer itself off the disk.
    """

    flight_id: str
    closed_at_ns: int
    records_written: int
    records_dropped_overrun: int
    bytes_written: int
    rollover_count: int
    segment_count: int
    torn_segments: tuple[str, ...]
    on_disk: bool = True

    def payload(self) -> dict[str, Any]:
        return {
            "flight_id": self.flight_id,
            "closed_at_ns": self.closed_at_ns,
            "records_written": self.records_written,
            "records_dropped_overrun": self.records_dropped_overrun,
            "bytes_written": self.bytes_written,
            "rollover_count": self.rollover_count,
            "segment_count": self.segment_count,
            "torn_segments": list(self.torn_segments),
        }


@dataclass(frozen=True)
class CapDrop:
    """One segment the capacity cap removed; ``total_bytes`` is the flight after it."""

    name: str
    index: int
    size_bytes: int
    total_bytes: int


@dataclass
class Flight:
    """The open flight's directory and segments (one writer thread touches it)."""

    flight_id: str
    dir: Path
    header: FlightHeader
    segments: list[SegmentEntry] = field(default_factory=list)
    seg: McapSegment | None = None
    entry: SegmentEntry | None = None
    next_index: int = 0
    dropped_overrun: int = 0
    bytes_closed: int = 0  # landed bytes of segments no longer open
    rollover_count: int = 0
    dropped_names: list[str] = field(default_factory=list)
    records_closed: int = 0  # records in segments no longer open
    cap_alerted: bool = False

    @property
    def live_segments(self) -> list[SegmentEntry]:
        return [s for s in self.segments if s.name not in self.dropped_names]

    @property
    def records_written(self) -> int:
        """Messages in the flight's segments so far, dropped ones included."""
        seg = self.seg
        return self.records_closed + (seg.fdr_records + seg.raw_messages if seg else 0)

    @property
    def bytes_written(self) -> int:
        """Segment bytes handed to the OS so far, dropped segments included."""
        seg = self.seg
        return self.bytes_closed + (seg.file.landed if seg else 0)

    def open_segment(self, opener: FileOpener) -> McapSegment:
        """Create the next segment file and push its header.

        Raises:
            OSError: the file cannot be created or written (the entry is marked torn).
        """
        index = self.next_index
        name = f"{self.flight_id}_{index}.mcap"
        path = self.dir / name
        raw = opener(path)
        self.next_index = index + 1
        entry = SegmentEntry(name, index)
        self.segments.append(entry)
        try:
            self.seg = McapSegment(path, index, raw, self.flight_id)
            self.entry = entry
            self.seg.push()
        except OSError:
            entry.torn = True
            raise
        return self.seg

    def finish_segment(self) -> None:
        """Write the open segment's summary and footer, close it, retire it."""
        seg, entry = self.seg, self.entry
        assert seg is not None and entry is not None
        seg.finish()
        self.retire(seg, entry)
        entry.closed = True

    def retire(self, seg: McapSegment, entry: SegmentEntry) -> None:
        """The segment is no longer open (finished or abandoned): fold in its totals."""
        entry.size_bytes = seg.file.landed
        self._describe(seg, entry)
        self.bytes_closed += seg.file.landed
        self.records_closed += seg.fdr_records + seg.raw_messages
        self.seg = None
        self.entry = None

    @staticmethod
    def _describe(seg: McapSegment, entry: SegmentEntry) -> None:
        entry.fdr_records = seg.fdr_records
        entry.raw_messages = seg.raw_messages
        entry.raw_topic_counts = dict(seg.raw_topic_counts)
        entry.raw_start_ns, entry.raw_end_ns = seg.raw_start_ns, seg.raw_end_ns

    def write_metadata(self, *, closed: bool = False) -> None:
        """Rewrite ``metadata.yaml`` (atomically) with every live segment, the open one too."""
        seg, entry = self.seg, self.entry
        if seg is not None and entry is not None:
            entry.size_bytes = seg.size
            self._describe(seg, entry)
        write_metadata(self.dir, self.flight_id, self.live_segments, closed=closed,
                       dropped=self.dropped_names)

    def apply_cap(self, cap: CapacityCapPolicy) -> tuple[list[CapDrop], bool, int]:
        """Delete the segments the cap chooses; ``(drops, still over the cap, total bytes)``."""
        open_seg = self.seg
        infos = [SegmentInfo(s.index, s.name,
                             open_seg.size if (open_seg and s is self.entry) else s.size_bytes,
                             s.closed or s.torn) for s in self.live_segments]
        chosen, still_over = cap.choose_drops(infos)
        total = sum(i.size_bytes for i in infos)
        drops = []
        for info in chosen:
            with contextlib.suppress(FileNotFoundError):
                (self.dir / info.name).unlink()
            total -= info.size_bytes
            self.dropped_names.append(info.name)
            self.rollover_count += 1
            drops.append(CapDrop(info.name, info.index, info.size_bytes, total))
        return drops, still_over, total
