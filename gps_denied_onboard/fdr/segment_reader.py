"""Reading FDR segments record by record, torn or not.

A segment cut short by a crash (kill -9, power loss) has no summary and no
footer, and its last record may be incomplete. :class:`SegmentReader` reads a
segment from the start (never through the summary), chunk by chunk (each
chunk's CRC is checked), and stops cleanly at the first record that is
incomplete, not an MCAP record, or a chunk whose CRC does not match; what lies
beyond is reported as the segment's *torn tail*. ``info``, ``verify``, ``cat``
(fdr/info.py, verify.py, cat.py through flight_scan.py) and ``recover``
(fdr/recover.py) all read through it.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

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

MCAP_MAGIC: Final = b"\x89MCAP0\r\n"
FDR_TOPIC_PREFIX: Final = "/fdr/"
#: Producer slugs of the recorder's own records and of raw topic messages (FORMAT.md).
FDR_PRODUCER: Final = "fdr"
RAW_PRODUCER: Final = "raw_topics"
SEGMENT_RE: Final = re.compile(r"^(?P<flight>.+)_(?P<index>\d+)\.mcap$")

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
        return is_fdr_channel(self.channel)

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



def flight_segments(flight_dir: Path) -> list[Path]:
    """The segment files of a flight, in index order."""
    found = []
    for p in Path(flight_dir).iterdir():
        m = SEGMENT_RE.match(p.name)
        if m and p.is_file():
            found.append((int(m["index"]), p))
    return [p for _, p in sorted(found)]



def is_fdr_channel(ch: Channel) -> bool:
    return bool(ch.topic.startswith(FDR_TOPIC_PREFIX) and ch.message_encoding == "json")

