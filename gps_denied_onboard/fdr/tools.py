"""Operator tool for flight recordings: ``info``, ``cat``, ``verify``, ``recover``.

Runs without ROS: it reads the MCAP segments with the ``mcap`` package and
needs nothing else from the aircraft image::

    python -m gps_denied_onboard.fdr.tools info    FLIGHT_DIR
    python -m gps_denied_onboard.fdr.tools cat     FLIGHT_DIR --kind overrun --producer fc_bridge
    python -m gps_denied_onboard.fdr.tools verify  FLIGHT_DIR
    python -m gps_denied_onboard.fdr.tools recover FLIGHT_DIR

A segment cut short by a crash (kill -9, power loss) has no summary and no
footer, and its last record may be incomplete. Every command reads segments
record by record from the start (never through the summary) and stops
cleanly at the first record that is incomplete or not an MCAP record; what
lies beyond is reported as the segment's *torn tail*.

The layout read here is the one the recorder writes (``fdr/FORMAT.md``):
segments ``<flight_id>_<index>.mcap`` in the flight directory, FDR records as
JSON on ``/fdr/<kind>`` channels with a body
``{"kind", "producer", "stamp_ns", "schema_version", "seq", "payload", "flags"?}``
(``seq`` counts, per producer, every record offered to the recorder over its
life, so a record that was dropped leaves a hole in it; a flight's first seq
is wherever the previous flight of the same recorder stopped), raw ROS topics as CDR with
``ros2msg`` schemas.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Final

import yaml
from mcap.data_stream import ReadDataStream
from mcap.exceptions import McapError
from mcap.opcode import Opcode
from mcap.records import (
    Attachment,
    AttachmentIndex,
    Channel,
    Chunk,
    ChunkIndex,
    DataEnd,
    Footer,
    Header,
    McapRecord,
    Message,
    MessageIndex,
    Metadata,
    MetadataIndex,
    Schema,
    Statistics,
    SummaryOffset,
)
from mcap.stream_reader import breakup_chunk

from gps_denied_onboard.durable import fsync_dir

MCAP_MAGIC: Final = b"\x89MCAP0\r\n"
FDR_TOPIC_PREFIX: Final = "/fdr/"
#: Producer slugs of the recorder's own records and of raw topic messages (FORMAT.md).
FDR_PRODUCER: Final = "fdr"
RAW_PRODUCER: Final = "raw_topics"
SEGMENT_RE: Final = re.compile(r"^(?P<flight>.+)_(?P<index>\d+)\.mcap$")
RECOVERY_REPORT: Final = "recovery.json"

_RECORD_TYPES: Final[dict[int, Any]] = {
    Opcode.HEADER: Header,
    Opcode.FOOTER: Footer,
    Opcode.SCHEMA: Schema,
    Opcode.CHANNEL: Channel,
    Opcode.MESSAGE: Message,
    Opcode.CHUNK: Chunk,
    Opcode.MESSAGE_INDEX: MessageIndex,
    Opcode.CHUNK_INDEX: ChunkIndex,
    Opcode.ATTACHMENT: Attachment,
    Opcode.ATTACHMENT_INDEX: AttachmentIndex,
    Opcode.STATISTICS: Statistics,
    Opcode.METADATA: Metadata,
    Opcode.METADATA_INDEX: MetadataIndex,
    Opcode.SUMMARY_OFFSET: SummaryOffset,
    Opcode.DATA_END: DataEnd,
}


class FdrToolError(Exception):
    """The tool cannot do what was asked (no such flight, nothing to read)."""


# --- segment level -------------------------------------------------------------


@dataclass(frozen=True)
class TornTail:
    """Where a segment stops being readable, and why.

    Attributes:
        offset: bytes from the start of the file that are readable.
        file_bytes: size of the file when it was read.
        reason: what was found at ``offset``.
    """

    offset: int
    file_bytes: int
    reason: str

    @property
    def lost_bytes(self) -> int:
        return self.file_bytes - self.offset


@dataclass
class SegmentScan:
    """What a pass over one segment found."""

    path: Path
    index: int | None
    file_bytes: int = 0
    profile: str | None = None
    library: str | None = None
    complete: bool = False
    torn: TornTail | None = None
    messages: int = 0
    first_log_ns: int | None = None
    last_log_ns: int | None = None
    last_message_end: int = 0  # byte offset just after the last complete message
    late_channels: bool = False  # messages came before the Channel records they use
    schemas: dict[int, Schema] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    channel_counts: Counter[int] = field(default_factory=Counter)


@dataclass(frozen=True)
class SegmentMessage:
    """One message with its channel and schema resolved."""

    segment: SegmentScan
    channel: Channel
    schema: Schema | None
    message: Message

    @property
    def is_fdr(self) -> bool:
        return _is_fdr_channel(self.channel)

    def fdr_body(self) -> dict[str, Any]:
        """The FDR record body (JSON channels only).

        Raises:
            ValueError: the message is not a JSON object.
        """
        body = json.loads(self.message.data)
        if not isinstance(body, dict):
            raise ValueError("FDR record body is not a JSON object")
        return body


class SegmentReader:
    """Reads one MCAP segment record by record, stopping cleanly at a torn tail.

    Iterating :meth:`messages` fills :attr:`scan` as it goes; once the
    iteration ends, ``scan`` is complete (torn or not). Chunked and unchunked
    segments both work; a chunk whose CRC does not match ends the readable
    part, as an incomplete record does.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        m = SEGMENT_RE.match(self.path.name)
        self.scan = SegmentScan(path=self.path, index=int(m["index"]) if m else None)

    def records(self) -> Iterator[tuple[int, int, McapRecord]]:
        """Yield ``(start_offset, end_offset, record)`` for each readable record."""
        scan = self.scan
        with self.path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            scan.file_bytes = size
            magic = f.read(len(MCAP_MAGIC))
            if magic != MCAP_MAGIC:
                scan.torn = TornTail(0, size, "no MCAP magic" if magic else "empty file")
                return
            yield from self._records_after_magic(f, size)

    def _records_after_magic(self, f: BinaryIO, size: int) -> Iterator[tuple[int, int, McapRecord]]:
        scan = self.scan
        pos = len(MCAP_MAGIC)
        while True:
            head = f.read(9)
            if len(head) < 9:
                reason = "end of file" if not head else "incomplete record header"
                scan.torn = TornTail(pos, size, f"{reason} (no footer)")
                return
            opcode = head[0]
            length = int.from_bytes(head[1:], "little")
            cls = _RECORD_TYPES.get(opcode)
            if cls is None:
                scan.torn = TornTail(pos, size, f"not an MCAP record (opcode 0x{opcode:02x})")
                return
            if length > size - pos - 9:
                scan.torn = TornTail(
                    pos,
                    size,
                    f"incomplete {Opcode(opcode).name} record "
                    f"(needs {length} bytes, {size - pos - 9} left)",
                )
                return
            body = f.read(length)
            end = pos + 9 + length
            try:
                record = _parse(cls, body)
            except (McapError, ValueError, UnicodeDecodeError) as err:
                scan.torn = TornTail(pos, size, f"unreadable {Opcode(opcode).name} record: {err}")
                return
            if isinstance(record, Chunk):
                try:
                    inner = breakup_chunk(record, validate_crc=True)
                except (McapError, ValueError) as err:
                    scan.torn = TornTail(pos, size, f"unreadable chunk: {err}")
                    return
                for item in inner:
                    yield pos, end, item
            else:
                yield pos, end, record
            pos = end
            if isinstance(record, Footer):
                tail = f.read(len(MCAP_MAGIC))
                if tail == MCAP_MAGIC:
                    scan.complete = True
                else:
                    scan.torn = TornTail(pos, size, "footer not followed by MCAP magic")
                return

    def messages(self) -> Iterator[SegmentMessage]:
        """Yield every readable message in file order (data section only)."""
        scan = self.scan
        in_summary = False
        looked_ahead = False
        for start, end, record in self.records():
            if isinstance(record, Header):
                scan.profile, scan.library = record.profile, record.library
            elif isinstance(record, DataEnd):
                in_summary = True
            elif in_summary:
                continue
            elif isinstance(record, Schema):
                scan.schemas.setdefault(record.id, record)
            elif isinstance(record, Channel):
                scan.channels.setdefault(record.id, record)
            elif isinstance(record, Message):
                channel = scan.channels.get(record.channel_id)
                if channel is None and not looked_ahead:
                    # Not valid MCAP (a Channel must precede its messages), but the
                    # definitions may still be further on: take them from there.
                    looked_ahead = True
                    self._look_ahead()
                    channel = scan.channels.get(record.channel_id)
                    if channel is not None:
                        scan.late_channels = True
                if channel is None:
                    scan.torn = TornTail(
                        start,
                        scan.file_bytes,
                        f"message on channel {record.channel_id}, which the file never defines",
                    )
                    return
                scan.messages += 1
                scan.channel_counts[record.channel_id] += 1
                if scan.first_log_ns is None:
                    scan.first_log_ns = record.log_time
                scan.last_log_ns = record.log_time
                scan.last_message_end = end
                yield SegmentMessage(scan, channel, scan.schemas.get(channel.schema_id), record)

    def _look_ahead(self) -> None:
        """Collect every Schema and Channel record anywhere in the file."""
        other = SegmentReader(self.path)
        for _s, _e, record in other.records():
            if isinstance(record, Schema):
                self.scan.schemas.setdefault(record.id, record)
            elif isinstance(record, Channel):
                self.scan.channels.setdefault(record.id, record)


def _parse(cls: Any, body: bytes) -> McapRecord:
    stream = ReadDataStream(io.BytesIO(body))
    if cls is Message:
        return Message.read(stream, len(body))
    if cls is Chunk:
        record = Chunk.read(stream)
        if stream.count != len(body):
            raise ValueError("chunk length does not match its record length")
        return record
    return cls.read(stream)


# --- flight level ---------------------------------------------------------------


def flight_segments(flight_dir: Path) -> list[Path]:
    """The segment files of a flight, in index order."""
    found = []
    for p in Path(flight_dir).iterdir():
        m = SEGMENT_RE.match(p.name)
        if m and p.is_file():
            found.append((int(m["index"]), p))
    return [p for _, p in sorted(found)]


@dataclass
class ProducerTally:
    """Per-producer accounting as the in-band records show it.

    Written seqs are kept as runs ``[first, last, first_segment, last_segment]``;
    overrun records contribute ``(first_seq, last_seq, segment)`` ranges. After
    the scan, :meth:`settle` merges both and finds what no record accounts for.
    """

    written: int = 0
    dropped_overrun: int = 0
    dropped_upstream: int = 0
    overrun_records: int = 0
    runs: list[list[int]] = field(default_factory=list)
    overrun_ranges: list[tuple[int, int, int]] = field(default_factory=list)
    unsequenced: int = 0
    # filled by settle()
    min_seq: int | None = None
    max_seq: int | None = None
    silent_gaps: list[tuple[int, int]] = field(default_factory=list)
    rollover_gaps: list[tuple[int, int]] = field(default_factory=list)
    overlaps: list[tuple[int, int]] = field(default_factory=list)
    bad_overrun_counts: int = 0

    def add_written(self, seq: int, segment: int) -> None:
        self.written += 1
        runs = self.runs
        if runs and seq == runs[-1][1] + 1:
            runs[-1][1] = seq
            runs[-1][3] = segment
        else:
            runs.append([seq, seq, segment, segment])

    def add_overrun(self, first: Any, last: Any, count: int, segment: int) -> None:
        self.overrun_records += 1
        if not (isinstance(first, int) and isinstance(last, int)):
            # Lost before the recorder numbered them (e.g. in DDS): not in the seq space.
            self.dropped_upstream += count
            return
        self.dropped_overrun += count
        self.overrun_ranges.append((first, last, segment))
        if last - first + 1 != count:
            self.bad_overrun_counts += 1

    def settle(self, missing_between: Any) -> None:
        """Merge written runs and overrun ranges; classify what is left uncovered.

        ``missing_between(a, b)`` returns the segment indices strictly between
        two segments that are not on disk (dropped by the capacity cap).
        """
        spans = [(r[0], r[1], r[2], r[3]) for r in self.runs]
        spans += [(a, b, seg, seg) for a, b, seg in self.overrun_ranges]
        if not spans:
            return
        spans.sort()
        self.max_seq = max(b for _, b, _, _ in spans)
        # A recorder numbers a producer's records over its whole life, so a flight
        # after the first starts wherever the previous one stopped: the lowest seq
        # the flight shows is its start (what came before is in earlier flights).
        self.min_seq = spans[0][0]
        covered_to = self.min_seq - 1
        seg_at_cover = spans[0][2]
        for a, b, seg_a, seg_b in spans:
            if a <= covered_to:
                self.overlaps.append((a, min(b, covered_to)))
            elif a > covered_to + 1:
                hole = (covered_to + 1, a - 1)
                dropped = missing_between(seg_at_cover, seg_a)
                (self.rollover_gaps if dropped else self.silent_gaps).append(hole)
            if b > covered_to:
                covered_to, seg_at_cover = b, seg_b

    @property
    def offered(self) -> int | None:
        """Records offered as far as the flight still shows (cap-dropped ranges excluded)."""
        if self.max_seq is None or self.min_seq is None:
            return None
        return self.max_seq - self.min_seq + 1 - sum(b - a + 1 for a, b in self.rollover_gaps)


@dataclass
class FlightScan:
    """Everything ``info`` and ``verify`` report about one flight directory."""

    flight_dir: Path
    flight_id: str | None = None
    segments: list[SegmentScan] = field(default_factory=list)
    header: dict[str, Any] | None = None
    header_position: tuple[int | None, int] | None = None  # (segment index, message number)
    footer: dict[str, Any] | None = None
    footer_position: tuple[int | None, int] | None = None
    kinds: Counter[str] = field(default_factory=Counter)
    raw_topics: Counter[str] = field(default_factory=Counter)
    producers: dict[str, ProducerTally] = field(default_factory=lambda: defaultdict(ProducerTally))
    overruns: list[dict[str, Any]] = field(default_factory=list)
    rollovers: list[dict[str, Any]] = field(default_factory=list)
    present_indices: set[int] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    fdr_records: int = 0
    raw_messages: int = 0

    @property
    def torn(self) -> list[SegmentScan]:
        return [s for s in self.segments if s.torn is not None]

    @property
    def missing_segment_indices(self) -> list[int]:
        """Segment indices below the highest one that are not on disk."""
        if not self.present_indices:
            return []
        return [i for i in range(max(self.present_indices)) if i not in self.present_indices]

    def segments_missing_between(self, a: int | None, b: int | None) -> list[int]:
        """Indices strictly between segments ``a`` and ``b`` that are not on disk."""
        if a is None or b is None:
            return []
        return [i for i in range(a + 1, b) if i not in self.present_indices]


def scan_flight(flight_dir: Path) -> FlightScan:
    """Read every segment of a flight once and tally what ``info``/``verify`` need.

    Raises:
        FdrToolError: the directory does not exist or holds no segments.
    """
    flight_dir = Path(flight_dir)
    if not flight_dir.is_dir():
        raise FdrToolError(f"{flight_dir} is not a directory")
    paths = flight_segments(flight_dir)
    if not paths:
        raise FdrToolError(f"no segments (<flight_id>_<index>.mcap) in {flight_dir}")
    fs = FlightScan(flight_dir)
    fs.present_indices = {int(m["index"]) for p in paths if (m := SEGMENT_RE.match(p.name))}
    ids = {m["flight"] for p in paths if (m := SEGMENT_RE.match(p.name))}
    fs.flight_id = ids.pop() if len(ids) == 1 else None
    if ids:
        fs.problems.append(f"segments of more than one flight in {flight_dir}")
    raw_seq = -1
    for path in paths:
        reader = SegmentReader(path)
        position = 0
        for item in reader.messages():
            if item.is_fdr:
                try:
                    body = item.fdr_body()
                except ValueError:
                    fs.problems.append(
                        f"{path.name}: unreadable FDR record on {item.channel.topic}"
                    )
                    continue
                _tally(fs, body, reader.scan.index or 0, position)
            else:
                fs.raw_messages += 1
                fs.raw_topics[item.channel.topic] += 1
                raw_seq = _unwrap(raw_seq, item.message.sequence)
                fs.producers[RAW_PRODUCER].add_written(raw_seq, reader.scan.index or 0)
            position += 1
        fs.segments.append(reader.scan)
    for tally in fs.producers.values():
        tally.settle(fs.segments_missing_between)
    return fs


def _unwrap(previous: int, sequence: int) -> int:
    """Full seq from an MCAP ``sequence`` (the seq mod 2^32), given the previous full seq."""
    base = max(previous, 0) & ~0xFFFFFFFF
    value = base | (sequence & 0xFFFFFFFF)
    if previous >= 0 and value < previous - (1 << 31):
        value += 1 << 32
    return value


def _tally(fs: FlightScan, body: dict[str, Any], segment: int, position: int) -> None:
    kind = str(body.get("kind"))
    producer = str(body.get("producer"))
    raw_payload = body.get("payload")
    payload: dict[str, Any] = raw_payload if isinstance(raw_payload, dict) else {}
    fs.fdr_records += 1
    fs.kinds[kind] += 1
    if kind == "flight_header":
        if fs.header is not None:
            fs.problems.append("more than one flight_header")
        fs.header = payload
        fs.header_position = (segment, position)
    elif kind == "flight_footer":
        if fs.footer is not None:
            fs.problems.append("more than one flight_footer")
        fs.footer = payload
        fs.footer_position = (segment, position)
    elif kind == "overrun":
        fs.overruns.append(
            {**payload, "segment": segment, "stamp_ns": body.get("stamp_ns"), "by": producer}
        )
        count = payload.get("count")
        fs.producers[str(payload.get("producer", producer))].add_overrun(
            payload.get("first_seq"),
            payload.get("last_seq"),
            count if isinstance(count, int) else 0,
            segment,
        )
    elif kind == "segment_rollover":
        fs.rollovers.append(dict(payload))
    seq = body.get("seq")
    tally = fs.producers[producer]
    if isinstance(seq, int) and not isinstance(seq, bool):
        tally.add_written(seq, segment)
    else:
        tally.written += 1
        tally.unsequenced += 1


# --- verify -------------------------------------------------------------------


@dataclass
class Verdict:
    """``verify``'s findings: failures make the exit status non-zero."""

    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def verify_flight(fs: FlightScan) -> Verdict:
    """Structure, accounting identity and torn tails of a scanned flight."""
    v = Verdict()
    v.failures.extend(fs.problems)
    if not fs.segments:
        v.failures.append("no segments")
        return v
    # structure
    for s in fs.segments:
        if s.torn is not None:
            v.failures.append(
                f"{s.path.name}: torn tail at byte {s.torn.offset} of {s.torn.file_bytes} "
                f"({s.torn.reason}); run `recover`"
            )
        if s.late_channels:
            v.failures.append(
                f"{s.path.name}: channel defined after messages that use it (not valid MCAP; "
                "a torn copy of such a segment cannot be attributed to topics)"
            )
        if s.profile is not None and s.profile != "ros2":
            v.failures.append(f"{s.path.name}: MCAP profile {s.profile!r}, expected 'ros2'")
        for ch in s.channels.values():
            schema = s.schemas.get(ch.schema_id)
            if ch.topic.startswith(FDR_TOPIC_PREFIX):
                # FORMAT.md: schemaless JSON, the JSON schema in the channel metadata.
                json_schema = ch.metadata.get("jsonschema") or (
                    schema.data.decode() if schema and schema.encoding == "jsonschema" else ""
                )
                if ch.message_encoding != "json" or not json_schema:
                    v.failures.append(
                        f"{s.path.name}: {ch.topic} is not a JSON channel with a JSON schema"
                    )
            elif ch.message_encoding != "cdr" or schema is None or schema.encoding != "ros2msg":
                v.failures.append(f"{s.path.name}: raw topic {ch.topic} is not CDR with ros2msg")
    v.checks.append(f"{len(fs.segments)} segments read, {len(fs.torn)} torn")
    missing = [i for i in fs.missing_segment_indices if i != 0 or not fs.rollovers]
    if missing and len(fs.rollovers) < len(fs.missing_segment_indices):
        v.failures.append(
            f"segments {missing} are missing and only {len(fs.rollovers)} segment_rollover "
            "records account for dropped segments"
        )
    if fs.header is None:
        v.failures.append("no flight_header record")
    elif fs.header_position != (fs.segments[0].index, 0):
        v.failures.append(
            f"flight_header is not the first record of segment 0 ({fs.header_position})"
        )
    elif fs.flight_id is not None and fs.header.get("flight_id") != fs.flight_id:
        v.failures.append(
            f"flight_header names flight {fs.header.get('flight_id')!r}, files say {fs.flight_id!r}"
        )
    last = fs.segments[-1]
    if fs.footer is None:
        v.failures.append("no flight_footer record (flight not closed, or its tail was lost)")
    elif fs.footer_position != (last.index, last.messages - 1):
        v.failures.append("flight_footer is not the last record of the last segment")
    # accounting: for each producer, written seqs + overrun ranges cover 0..max exactly
    for producer, t in sorted(fs.producers.items()):
        if t.silent_gaps:
            n = sum(b - a + 1 for a, b in t.silent_gaps)
            v.failures.append(
                f"{producer}: {n} records missing from the sequence with no overrun record "
                f"(silent gaps {t.silent_gaps[:5]}{' ...' if len(t.silent_gaps) > 5 else ''})"
            )
        if t.overlaps:
            v.failures.append(f"{producer}: seqs written or dropped twice {t.overlaps[:5]}")
        if t.bad_overrun_counts:
            v.failures.append(
                f"{producer}: {t.bad_overrun_counts} overrun records whose count does not "
                "match their seq range"
            )
        if t.unsequenced:
            v.failures.append(f"{producer}: {t.unsequenced} records without a seq")
        offered = t.offered
        if offered is not None and offered != t.written + t.dropped_overrun:
            v.failures.append(
                f"{producer}: offered {offered} != written {t.written} + "
                f"dropped_overrun {t.dropped_overrun}"
            )
        v.checks.append(
            f"{producer}: offered={offered} written={t.written} dropped_overrun={t.dropped_overrun}"
        )
    if fs.footer is not None:
        own = sum(int(o.get("count", 0)) for o in fs.overruns if o.get("by") == FDR_PRODUCER)
        want = fs.footer.get("records_dropped_overrun")
        if isinstance(want, int) and want != own:
            v.failures.append(
                f"footer records_dropped_overrun={want} but the recorder's overrun records "
                f"sum to {own}"
            )
        written = fs.footer.get("records_written")
        seen = fs.fdr_records + fs.raw_messages - 1  # everything before the footer
        if isinstance(written, int) and not fs.missing_segment_indices and written != seen:
            v.failures.append(
                f"footer records_written={written} but the segments hold {seen} records "
                "before the footer"
            )
        rollovers = fs.footer.get("rollover_count")
        if isinstance(rollovers, int) and rollovers != len(fs.rollovers):
            v.failures.append(
                f"footer rollover_count={rollovers} but there are {len(fs.rollovers)} "
                "segment_rollover records"
            )
    return v


def _is_fdr_channel(ch: Channel) -> bool:
    return bool(ch.topic.startswith(FDR_TOPIC_PREFIX) and ch.message_encoding == "json")


# --- recover ------------------------------------------------------------------


@dataclass
class SegmentRecovery:
    """What ``recover`` did to one torn segment and what was lost."""

    segment: str
    torn_reason: str
    file_bytes: int
    kept_bytes: int
    kept_messages: int
    last_log_ns: int | None
    kept_original_as: str | None
    last_seq: dict[str, int] = field(default_factory=dict)

    @property
    def lost_bytes(self) -> int:
        return self.file_bytes - self.kept_bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "torn_reason": self.torn_reason,
            "file_bytes": self.file_bytes,
            "kept_bytes": self.kept_bytes,
            "lost_bytes": self.lost_bytes,
            "kept_messages": self.kept_messages,
            "last_log_ns": self.last_log_ns,
            "kept_original_as": self.kept_original_as,
            "last_seq_by_producer": dict(sorted(self.last_seq.items())),
        }


def recover_segment(path: Path, *, keep_original: bool = True) -> SegmentRecovery | None:
    """Rewrite a torn segment as a complete MCAP file holding its readable part.

    The new file is written beside the segment, fsynced, then renamed over it,
    so the segment path always names either the torn or the recovered file.
    The torn original is kept as ``<segment>.torn`` unless ``keep_original``
    is false. A segment that is not torn is left alone.

    Returns:
        What was kept and lost, or ``None`` when the segment was not torn.
    """
    from mcap.writer import CompressionType
    from mcap.writer import Writer as McapWriter

    path = Path(path)
    probe = SegmentReader(path)
    for _ in probe.messages():
        pass
    if probe.scan.torn is None:
        return None
    reader = SegmentReader(path)
    tmp = path.with_name(path.name + ".recover.tmp")
    last_seq: dict[str, int] = {}
    with tmp.open("wb") as out:
        writer = McapWriter(out, compression=CompressionType.NONE)
        started = False
        schema_ids: dict[int, int] = {}
        channel_ids: dict[int, int] = {}
        fdr_channels: set[int] = set()

        def start(profile: str = "ros2", library: str = "") -> None:
            nonlocal started
            if not started:
                lib = "gps_denied_onboard.fdr.tools recover" + (
                    f" (from {library})" if library else ""
                )
                writer.start(profile=profile, library=lib)
                started = True

        in_summary = False
        for _s, _e, record in reader.records():
            if isinstance(record, Header):
                start(record.profile, record.library)
                continue
            start()
            if isinstance(record, DataEnd):
                in_summary = True
            if in_summary:
                continue
            if isinstance(record, Schema):
                schema_ids[record.id] = writer.register_schema(
                    record.name, record.encoding, record.data
                )
            elif isinstance(record, Channel):
                fdr_channels.discard(record.id)
                if _is_fdr_channel(record):
                    fdr_channels.add(record.id)
                channel_ids[record.id] = writer.register_channel(
                    record.topic,
                    record.message_encoding,
                    schema_ids.get(record.schema_id, 0),
                    dict(record.metadata),
                )
            elif isinstance(record, Message) and record.channel_id in channel_ids:
                writer.add_message(
                    channel_ids[record.channel_id],
                    record.log_time,
                    record.data,
                    record.publish_time,
                    record.sequence,
                )
                if record.channel_id in fdr_channels:
                    _note_seq(record.data, last_seq)
            elif isinstance(record, Metadata):
                writer.add_metadata(record.name, dict(record.metadata))
            elif isinstance(record, Attachment):
                writer.add_attachment(
                    record.create_time, record.log_time, record.name, record.media_type, record.data
                )
        start()
        writer.finish()
        out.flush()
        os.fsync(out.fileno())
    torn = probe.scan.torn
    kept_as: str | None = None
    if keep_original:
        original = path.with_name(path.name + ".torn")
        if not original.exists():
            os.link(path, original)
        kept_as = original.name
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return SegmentRecovery(
        segment=path.name,
        torn_reason=torn.reason,
        file_bytes=torn.file_bytes,
        kept_bytes=torn.offset,
        kept_messages=probe.scan.messages,
        last_log_ns=probe.scan.last_log_ns,
        kept_original_as=kept_as,
        last_seq=last_seq,
    )


def _note_seq(data: bytes, last_seq: dict[str, int]) -> None:
    try:
        body = json.loads(data)
    except ValueError:
        return
    if isinstance(body, dict) and isinstance(body.get("seq"), int):
        last_seq[str(body.get("producer"))] = int(body["seq"])


def rebuild_bag_metadata(flight_dir: Path) -> None:
    """Rewrite ``metadata.yaml`` from the segments on disk (after a crash or ``recover``).

    Uses the recorder's own writer (:func:`gps_denied_onboard.fdr.bag.write_metadata`),
    so a rebuilt file reads exactly like one the recorder wrote. The names of
    segments dropped by the capacity cap and of segments abandoned after a
    storage error are carried over from the previous ``metadata.yaml`` (they
    cannot be seen on disk); a segment ``recover`` rewrote is listed as torn.
    """
    from gps_denied_onboard.fdr.bag import SegmentEntry, write_metadata

    flight_dir = Path(flight_dir)
    custom = _previous_custom_data(flight_dir / "metadata.yaml")
    dropped = _json_list(custom.get("fdr.dropped_segments"))
    torn_before = set(_json_list(custom.get("fdr.torn_segments")))
    entries = []
    closed = False
    flight_id = ""
    for path in flight_segments(flight_dir):
        reader = SegmentReader(path)
        entry = SegmentEntry(name=path.name, index=reader.scan.index or 0)
        for item in reader.messages():
            if item.is_fdr:
                entry.fdr_records += 1
                if item.channel.topic == FDR_TOPIC_PREFIX + "flight_footer":
                    closed = True
                continue
            t = item.message.log_time
            entry.raw_messages += 1
            entry.raw_start_ns = t if entry.raw_start_ns is None else min(entry.raw_start_ns, t)
            entry.raw_end_ns = t if entry.raw_end_ns is None else max(entry.raw_end_ns, t)
            key = (
                item.channel.topic,
                item.schema.name if item.schema else "",
                item.channel.metadata.get("offered_qos_profiles", ""),
            )
            entry.raw_topic_counts[key] = entry.raw_topic_counts.get(key, 0) + 1
        entry.size_bytes = reader.scan.file_bytes
        entry.closed = reader.scan.complete
        entry.torn = path.name in torn_before or path.with_name(path.name + ".torn").exists()
        m = SEGMENT_RE.match(path.name)
        flight_id = m["flight"] if m else flight_id
        entries.append(entry)
    write_metadata(flight_dir, flight_id, entries, closed=closed, dropped=dropped)


def _previous_custom_data(meta_path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(meta_path.read_text()) or {}
        info = loaded.get("rosbag2_bagfile_information") or {}
        custom = info.get("custom_data") or {}
        return dict(custom) if isinstance(custom, dict) else {}
    except (OSError, yaml.YAMLError, AttributeError):
        return {}


def _json_list(text: Any) -> list[str]:
    try:
        value = json.loads(text) if isinstance(text, str) else []
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


@dataclass
class FlightRecovery:
    """``recover``'s result for a flight directory."""

    flight_dir: Path
    segments: list[SegmentRecovery]
    metadata_rebuilt: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "flight_dir": str(self.flight_dir),
            "recovered": [s.as_dict() for s in self.segments],
            "lost_bytes": sum(s.lost_bytes for s in self.segments),
            "metadata_rebuilt": self.metadata_rebuilt,
        }


def recover_flight(flight_dir: Path, *, keep_original: bool = True) -> FlightRecovery:
    """Recover every torn segment of a flight, rebuild ``metadata.yaml``, log the result.

    The report is also appended to ``recovery.json`` in the flight directory,
    so an investigator later sees that the flight was recovered and what was lost.

    Raises:
        FdrToolError: the directory holds no segments.
    """
    flight_dir = Path(flight_dir)
    paths = flight_segments(flight_dir) if flight_dir.is_dir() else []
    if not paths:
        raise FdrToolError(f"no segments (<flight_id>_<index>.mcap) in {flight_dir}")
    done = [r for p in paths if (r := recover_segment(p, keep_original=keep_original))]
    rebuild_bag_metadata(flight_dir)
    result = FlightRecovery(flight_dir, done, metadata_rebuilt=True)
    if done:
        log_path = flight_dir / RECOVERY_REPORT
        history: list[Any] = []
        if log_path.exists():
            try:
                loaded = json.loads(log_path.read_text())
                history = loaded if isinstance(loaded, list) else [loaded]
            except (OSError, ValueError):
                history = []
        history.append(result.as_dict())
        tmp = log_path.with_name(log_path.name + ".tmp")
        tmp.write_text(json.dumps(history, indent=2) + "\n")
        os.replace(tmp, log_path)
    return result


# --- info / cat -----------------------------------------------------------------


def flight_info(fs: FlightScan) -> dict[str, Any]:
    """``info`` as a JSON-able dict: flight, segments, counters, kinds, gaps, torn tails."""
    return {
        "flight_dir": str(fs.flight_dir),
        "flight_id": fs.flight_id,
        "header": fs.header,
        "footer": fs.footer,
        "closed": fs.footer is not None,
        "segments": [
            {
                "file": s.path.name,
                "index": s.index,
                "bytes": s.file_bytes,
                "messages": s.messages,
                "first_log_ns": s.first_log_ns,
                "last_log_ns": s.last_log_ns,
                "complete": s.complete,
                "torn": None
                if s.torn is None
                else {
                    "at_byte": s.torn.offset,
                    "lost_bytes": s.torn.lost_bytes,
                    "reason": s.torn.reason,
                },
            }
            for s in fs.segments
        ],
        "missing_segments": fs.missing_segment_indices,
        "fdr_records": fs.fdr_records,
        "raw_messages": fs.raw_messages,
        "kinds": dict(sorted(fs.kinds.items())),
        "raw_topics": dict(sorted(fs.raw_topics.items())),
        "producers": {
            p: {
                "written": t.written,
                "dropped_overrun": t.dropped_overrun,
                "dropped_upstream": t.dropped_upstream,
                "offered": t.offered,
                "silent_gaps": [list(g) for g in t.silent_gaps],
                "rollover_gaps": [list(g) for g in t.rollover_gaps],
            }
            for p, t in sorted(fs.producers.items())
        },
        "gaps": {
            "overrun": fs.overruns,
            "segment_rollover": fs.rollovers,
            "missing_seq": {
                p: [list(g) for g in t.silent_gaps]
                for p, t in sorted(fs.producers.items())
                if t.silent_gaps
            },
        },
        "problems": fs.problems,
    }


def _render_info(info: dict[str, Any]) -> str:
    lines = [f"flight {info['flight_id']}  ({info['flight_dir']})"]
    header = info["header"] or {}
    footer = info["footer"]
    lines.append(
        f"  started_at_ns {header.get('started_at_ns')}  "
        + ("closed" if footer else "NOT CLOSED (no flight_footer)")
    )
    if footer:
        lines.append(
            "  counters: "
            + "  ".join(
                f"{k}={footer.get(k)}"
                for k in (
                    "records_written",
                    "records_dropped_overrun",
                    "bytes_written",
                    "rollover_count",
                )
            )
        )
    lines.append(f"  segments ({len(info['segments'])}):")
    for s in info["segments"]:
        state = "ok" if s["complete"] else "TORN"
        lines.append(f"    {s['file']}  {s['bytes']} B  {s['messages']} msgs  {state}")
        if s["torn"]:
            t = s["torn"]
            lines.append(
                f"      torn at byte {t['at_byte']}: {t['reason']} ({t['lost_bytes']} B lost)"
            )
    if info["missing_segments"]:
        lines.append(f"  missing segments: {info['missing_segments']}")
    lines.append(f"  records: {info['fdr_records']} FDR, {info['raw_messages']} raw")
    for kind, n in info["kinds"].items():
        lines.append(f"    {kind:<28} {n}")
    for topic, n in info["raw_topics"].items():
        lines.append(f"    {topic:<28} {n} (raw)")
    lines.append("  producers:")
    for p, t in info["producers"].items():
        lines.append(
            f"    {p:<20} written={t['written']} dropped_overrun={t['dropped_overrun']} "
            f"offered={t['offered']}"
        )
    gaps = info["gaps"]
    if gaps["overrun"] or gaps["missing_seq"] or gaps["segment_rollover"]:
        lines.append("  gaps:")
        for o in gaps["overrun"]:
            lines.append(
                f"    overrun {o.get('producer')}: {o.get('count')} records "
                f"{o.get('first_stamp_ns')}..{o.get('last_stamp_ns')}"
                + (f" ({o['reason']})" if o.get("reason") else "")
            )
        for p, ranges in gaps["missing_seq"].items():
            lines.append(f"    missing seq {p}: {ranges}")
        for r in gaps["segment_rollover"]:
            lines.append(f"    segment dropped for capacity: {r.get('dropped_segment')}")
    else:
        lines.append("  gaps: none")
    for p in info["problems"]:
        lines.append(f"  PROBLEM: {p}")
    return "\n".join(lines)


def iter_records(
    flight_dir: Path,
    *,
    kinds: Sequence[str] = (),
    producers: Sequence[str] = (),
    since_ns: int | None = None,
    until_ns: int | None = None,
    raw: bool = False,
) -> Iterator[dict[str, Any]]:
    """FDR records (and, with ``raw``, raw topic messages) of a flight as dicts, in file order.

    Time filters apply to the record's ``stamp_ns`` (the producer's clock);
    raw messages are filtered on their log time.
    """
    decoders: dict[int, Any] = {}
    for path in flight_segments(Path(flight_dir)):
        reader = SegmentReader(path)
        for item in reader.messages():
            if item.is_fdr:
                try:
                    body = item.fdr_body()
                except ValueError:
                    continue
                stamp = body.get("stamp_ns")
                if kinds and body.get("kind") not in kinds:
                    continue
                if producers and body.get("producer") not in producers:
                    continue
                if not _in_window(stamp, since_ns, until_ns):
                    continue
                yield {**body, "segment": reader.scan.index, "log_time_ns": item.message.log_time}
            elif raw and not kinds and not producers:
                if not _in_window(item.message.log_time, since_ns, until_ns):
                    continue
                yield {
                    "topic": item.channel.topic,
                    "type": item.schema.name if item.schema else None,
                    "segment": reader.scan.index,
                    "log_time_ns": item.message.log_time,
                    "bytes": len(item.message.data),
                    "message": _decode_raw(item, decoders),
                }


def _in_window(stamp: Any, since_ns: int | None, until_ns: int | None) -> bool:
    if since_ns is None and until_ns is None:
        return True
    if not isinstance(stamp, int):
        return False
    return (since_ns is None or stamp >= since_ns) and (until_ns is None or stamp <= until_ns)


def _decode_raw(item: SegmentMessage, cache: dict[int, Any]) -> Any:
    if item.schema is None or item.schema.encoding != "ros2msg":
        return None
    decode: Any = cache.get(item.schema.id)
    if decode is None:
        try:
            from mcap_ros2.decoder import DecoderFactory

            decode = DecoderFactory().decoder_for("cdr", item.schema)
        except Exception:  # a schema the decoder cannot parse: report the size only
            decode = False
        cache[item.schema.id] = decode
    if not decode:
        return None
    try:
        return _plain(decode(item.message.data))
    except Exception:  # malformed CDR: size only
        return None


def _plain(value: Any) -> Any:
    if hasattr(value, "__slots__") and not isinstance(value, (str, bytes)):
        return {k: _plain(getattr(value, k)) for k in value.__slots__}
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": len(value)} if len(value) > 64 else value.hex()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def parse_time(text: str) -> int:
    """Epoch nanoseconds from an integer or an ISO-8601 time with a zone."""
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give a time zone (e.g. Z)")
    from gps_denied_onboard.clock import datetime_to_ns

    return datetime_to_ns(value)


# --- command line -----------------------------------------------------------------


def _flight_dir(path: Path) -> Path:
    path = Path(path)
    return path.parent if path.is_file() else path


def _cmd_info(args: argparse.Namespace) -> int:
    fs = scan_flight(_flight_dir(args.flight))
    info = flight_info(fs)
    print(json.dumps(info, indent=2, default=str) if args.json else _render_info(info))
    return 0


def _cmd_cat(args: argparse.Namespace) -> int:
    out = sys.stdout
    for rec in iter_records(
        _flight_dir(args.flight),
        kinds=args.kind or (),
        producers=args.producer or (),
        since_ns=args.since,
        until_ns=args.until,
        raw=args.raw,
    ):
        out.write(json.dumps(rec, sort_keys=True, default=str) + "\n")
    out.flush()
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    fs = scan_flight(_flight_dir(args.flight))
    verdict = verify_flight(fs)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": verdict.ok,
                    "failures": verdict.failures,
                    "warnings": verdict.warnings,
                    "checks": verdict.checks,
                },
                indent=2,
            )
        )
    else:
        for line in verdict.checks:
            print(f"ok    {line}")
        for line in verdict.warnings:
            print(f"warn  {line}")
        for line in verdict.failures:
            print(f"FAIL  {line}")
        print("verify: " + ("OK" if verdict.ok else f"FAILED ({len(verdict.failures)})"))
    return 0 if verdict.ok else 1


def _cmd_recover(args: argparse.Namespace) -> int:
    result = recover_flight(_flight_dir(args.flight), keep_original=not args.discard_torn)
    report = result.as_dict()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        if not result.segments:
            print("no torn segments; metadata.yaml rebuilt")
        for s in report["recovered"]:
            print(
                f"recovered {s['segment']}: kept {s['kept_messages']} messages "
                f"({s['kept_bytes']} B), lost {s['lost_bytes']} B at the tail "
                f"({s['torn_reason']}); "
                f"last readable log time {s['last_log_ns']}; last seq per producer "
                f"{s['last_seq_by_producer']}"
                + (f"; original kept as {s['kept_original_as']}" if s["kept_original_as"] else "")
            )
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m gps_denied_onboard.fdr.tools",
        description="Inspect, check and repair flight data recordings (no ROS needed).",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="flight, segments, counters, per-kind counts, gaps, torn tails")
    p.add_argument("flight", type=Path, help="flight directory (or one of its segments)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("cat", help="records as JSON lines, filtered")
    p.add_argument("flight", type=Path)
    p.add_argument("--kind", action="append", help="only this kind (repeatable)")
    p.add_argument("--producer", action="append", help="only this producer (repeatable)")
    p.add_argument("--since", type=parse_time, help="stamp_ns or ISO time, inclusive")
    p.add_argument("--until", type=parse_time, help="stamp_ns or ISO time, inclusive")
    p.add_argument("--raw", action="store_true", help="include raw topic messages (decoded)")
    p.set_defaults(func=_cmd_cat)
    p = sub.add_parser(
        "verify", help="structure, accounting identity, torn tails; exit 1 on failure"
    )
    p.add_argument("flight", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_verify)
    p = sub.add_parser("recover", help="rewrite torn segments readable, rebuild metadata.yaml")
    p.add_argument("flight", type=Path)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--discard-torn", action="store_true", help="do not keep the torn original as <seg>.torn"
    )
    p.set_defaults(func=_cmd_recover)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m gps_denied_onboard.fdr.tools`` (and ``gdo-fdr``)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except FdrToolError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... cat | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
