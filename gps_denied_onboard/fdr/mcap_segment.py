"""The MCAP encoding of one segment: small chunks, message indexes, a full summary.

:class:`McapSegment` turns what the writer thread appends into MCAP records on
a :class:`~gps_denied_onboard.fdr.segment.SegmentFile`. Messages go into the
open chunk (:attr:`McapSegment.chunk`, the uncompressed chunk records) and
every :meth:`McapSegment.push` closes that chunk -- the Chunk record and one
Message Index record per channel follow each other in the data section -- and
hands it to the OS. A writer batch is therefore one small chunk on disk, so a
kill -9 loses no more than it did unchunked: what is still in the rings and
the batch being encoded. A torn segment is a sequence of whole chunks up to
an arbitrary byte, readable record by record (each chunk carries its CRC).

The Chunk Index records, per-channel message counts and the Schema, Channel
and Metadata records are kept in memory (the chunk indexes pre-encoded, about
80 bytes a chunk) and written as the summary by :meth:`McapSegment.finish`:
Schema, Channel, Statistics, Metadata Index and Chunk Index groups, Summary
Offset records and a Footer with the summary CRC. Index-based readers (the
``mcap`` Python reader's summary path, ``@mcap/core``'s McapIndexedReader that
Foxglove uses, rosbags) then open a closed segment without scanning it.
"""

from __future__ import annotations

import contextlib
import json
import struct
import sys
import zlib
from array import array
from collections.abc import Mapping
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

from mcap.data_stream import RecordBuilder
from mcap.opcode import Opcode
from mcap.records import (
    Channel,
    DataEnd,
    Footer,
    Header,
    McapRecord,
    Metadata,
    MetadataIndex,
    Schema,
    Statistics,
    SummaryOffset,
)

from gps_denied_onboard.fdr.segment import RawFile, SegmentFile
from gps_denied_onboard.record_schema import FDR_RECORD_SCHEMA_VERSION, KNOWN_KINDS

MCAP_MAGIC = b"\x89MCAP0\r\n"
#: MCAP Message record header: opcode 0x05, record length, channel id, sequence,
#: log_time, publish_time (the data follows). Same bytes as ``mcap.records.Message.write``.
MESSAGE_HEADER = struct.Struct("<BQHIQQ")
MESSAGE_OPCODE = 0x05
MESSAGE_FIXED = 22
#: Chunk record up to its records: opcode, record length, message start/end time,
#: uncompressed size, uncompressed CRC, compression (empty string), records length.
_CHUNK_HEAD = struct.Struct("<BQQQQIIQ")
_CHUNK_FIXED = _CHUNK_HEAD.size - 9 - 8  # record body before the records, minus their length
#: Message Index record up to its entries: opcode, record length, channel id, entries length.
_INDEX_HEAD = struct.Struct("<BQHI")
_CHUNK_INDEX_HEAD = struct.Struct("<BQQQQQI")
_CHUNK_INDEX_TAIL = struct.Struct("<QIQQ")
_OFFSET_ENTRY = struct.Struct("<HQ")
PROFILE = "ros2"
LIBRARY = "gps_denied_onboard.fdr"

_OFFSET = itemgetter(0)
_CHANNEL = itemgetter(1)
_LOG_TIME = itemgetter(2)
_BIG_ENDIAN = sys.byteorder == "big"


def json_schema_for(kind: str) -> str:
    """JSON schema of one FDR record kind's message body (payload keys from the schema)."""
    spec = KNOWN_KINDS.get(kind)
    payload_props: dict[str, object] = {}
    required: list[str] = []
    if spec is not None:
        payload_props = {k: {} for k in sorted(spec.known)}
        required = sorted(spec.required)
    doc = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"gps_denied_onboard/fdr/{kind}",
        "type": "object",
        "properties": {
            "kind": {"type": "string"},
            "producer": {"type": "string"},
            "stamp_ns": {"type": "integer"},
            "schema_version": {"type": "string"},
            "seq": {"type": "integer"},
            "flags": {"type": "array", "items": {"type": "string"}},
            "payload": {"type": "object", "properties": payload_props, "required": required},
        },
        "required": ["kind", "producer", "stamp_ns", "schema_version", "seq", "payload"],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def _encode(record: McapRecord) -> bytes:
    builder = RecordBuilder()
    record.write(builder)
    return bytes(builder.end())


class McapSegment:
    """One segment file being written: the open chunk, its entries, the summary to come.

    Attributes:
        chunk: records of the open chunk (Schema, Channel and Message records,
            uncompressed). The writer thread appends Message records to it directly.
        entries: one tuple per message in the open (or just closed, not yet landed)
            chunk, ``(offset in chunk, channel id, log_time, ...)``; the writer keeps
            its accounting in the items after the third. Cleared once the chunk
            reached the OS.
        entries_end: file offset just past the Chunk record holding ``entries``, once
            that chunk is closed; None while it is open.
    """

    def __init__(self, path: Path, index: int, raw: RawFile, flight_id: str) -> None:
        self.path = path
        self.index = index
        self.file = SegmentFile(raw)
        self.chunk = bytearray()
        self.entries: list[tuple[Any, ...]] = []
        self.entries_end: int | None = None
        self.fdr_channels: dict[str, int] = {}
        self.raw_channels: dict[tuple[str, str], int] = {}
        self._raw_schemas: dict[str, int] = {}
        self._schemas: list[Schema] = []
        self._channels: list[Channel] = []
        self._metadata_index: list[MetadataIndex] = []
        self._chunk_indexes = bytearray()
        self._channel_counts: dict[int, int] = {}
        self._chunk_count = 0
        self._message_count = 0
        self._start_time: int | None = None
        self._end_time = 0
        self.fdr_records = 0
        self.raw_messages = 0
        self.raw_topic_counts: dict[tuple[str, str, str], int] = {}  # (topic, type, qos)
        self.raw_start_ns: int | None = None
        self.raw_end_ns: int | None = None
        self.closed = False
        self.torn = False
        self.file.write(MCAP_MAGIC + _encode(Header(PROFILE, LIBRARY)))
        self.add_metadata(
            "gps_denied_onboard/fdr/segment",
            {
                "flight_id": flight_id,
                "index": str(index),
                "fdr_record_schema": FDR_RECORD_SCHEMA_VERSION,
            },
        )

    @property
    def size(self) -> int:
        """Bytes of the segment so far, the open chunk included."""
        return self.file.tell() + len(self.chunk)

    # ------------------------------------------------------------------ data section
    def add(self, channel_id: int, log_time: int, data: bytes, publish_time: int,
            sequence: int) -> int:
        """Append one Message record to the open chunk; returns its offset in the chunk.

        The caller appends the message's entry (``(offset, channel_id, log_time, ...)``)
        to :attr:`entries`.
        """
        chunk = self.chunk
        offset = len(chunk)
        chunk += MESSAGE_HEADER.pack(MESSAGE_OPCODE, MESSAGE_FIXED + len(data), channel_id,
                                     sequence & 0xFFFFFFFF, log_time, publish_time)
        chunk += data
        return offset

    def fdr_channel(self, kind: str) -> int:
        ch = self.fdr_channels.get(kind)
        if ch is None:
            ch = self._channel(f"/fdr/{kind}", "json", 0, {
                "schema_name": f"gps_denied_onboard/fdr/{kind}",
                "jsonschema": json_schema_for(kind),
                "fdr_record_schema": FDR_RECORD_SCHEMA_VERSION,
            })
            self.fdr_channels[kind] = ch
        return ch

    def raw_channel(self, msg_topic: str, type_name: str, msgdef: str, qos: str) -> int:
        key = (msg_topic, type_name)
        ch = self.raw_channels.get(key)
        if ch is None:
            schema_id = self._raw_schemas.get(type_name)
            if schema_id is None:
                schema_id = len(self._schemas) + 1
                schema = Schema(id=schema_id, name=type_name, encoding="ros2msg",
                                data=msgdef.encode())
                self._schemas.append(schema)
                self.chunk += _encode(schema)
                self._raw_schemas[type_name] = schema_id
            ch = self._channel(msg_topic, "cdr", schema_id, {"offered_qos_profiles": qos})
            self.raw_channels[key] = ch
        return ch

    def _channel(self, topic: str, encoding: str, schema_id: int,
                 metadata: dict[str, str]) -> int:
        """Register a channel: its record goes into the open chunk, before its messages."""
        ch = len(self._channels) + 1
        channel = Channel(id=ch, topic=topic, message_encoding=encoding, schema_id=schema_id,
                          metadata=metadata)
        self._channels.append(channel)
        self.chunk += _encode(channel)
        return ch

    def add_metadata(self, name: str, data: Mapping[str, str]) -> None:
        """Write a Metadata record (between chunks: it closes the open one)."""
        self.close_chunk()
        offset = self.file.tell()
        record = _encode(Metadata(name=name, metadata=dict(data)))
        self.file.write(record)
        self._metadata_index.append(MetadataIndex(offset=offset, length=len(record), name=name))

    def close_chunk(self) -> None:
        """Move the open chunk into the file buffer: Chunk record, then its message indexes."""
        data = self.chunk
        if not data:
            return
        entries = self.entries
        file = self.file
        out = file.buf
        start = file.landed + len(out)
        size = len(data)
        times: list[int] = []
        t0 = t1 = 0  # a chunk of Schema/Channel records only: legal, never left by the writer
        if entries:
            times = list(map(_LOG_TIME, entries))
            t0, t1 = min(times), max(times)
        out += _CHUNK_HEAD.pack(Opcode.CHUNK, _CHUNK_FIXED + 8 + size, t0, t1, size,
                                zlib.crc32(data), 0, size)
        out += data
        chunk_length = _CHUNK_HEAD.size + size
        offsets: dict[int, int] = {}
        if entries:
            counts = self._channel_counts
            channels = set(map(_CHANNEL, entries))
            groups: list[tuple[int, list[int], list[int]]]
            if len(channels) == 1:
                groups = [(channels.pop(), times, list(map(_OFFSET, entries)))]
            else:  # stable sort: each channel's entries stay in file order
                groups = []
                for ch, group in groupby(sorted(entries, key=_CHANNEL), key=_CHANNEL):
                    items = list(group)
                    groups.append((ch, list(map(_LOG_TIME, items)), list(map(_OFFSET, items))))
            for ch, group_times, offs in groups:
                n = len(offs)
                flat = [0] * (2 * n)
                flat[0::2] = group_times
                flat[1::2] = offs
                pairs = array("Q", flat)
                if _BIG_ENDIAN:
                    pairs.byteswap()
                offsets[ch] = file.landed + len(out)
                out += _INDEX_HEAD.pack(Opcode.MESSAGE_INDEX, 6 + 16 * n, ch, 16 * n)
                out += pairs.tobytes()
                counts[ch] = counts.get(ch, 0) + n
            self._message_count += len(entries)
            if self._start_time is None or t0 < self._start_time:
                self._start_time = t0
            self._end_time = max(self._end_time, t1)
        index_length = file.landed + len(out) - start - chunk_length
        offset_map = b"".join(_OFFSET_ENTRY.pack(ch, off) for ch, off in offsets.items())
        body_len = 8 * 4 + 4 + len(offset_map) + _CHUNK_INDEX_TAIL.size
        self._chunk_indexes += _CHUNK_INDEX_HEAD.pack(
            Opcode.CHUNK_INDEX, body_len, t0, t1, start, chunk_length, len(offset_map))
        self._chunk_indexes += offset_map
        self._chunk_indexes += _CHUNK_INDEX_TAIL.pack(index_length, 0, size, size)
        self._chunk_count += 1
        self.entries_end = start + chunk_length
        del data[:]  # keeps the allocation (clear() frees it, and regrowing costs)

    def push(self) -> None:
        """Close the open chunk and hand every pending byte to the OS.

        Raises:
            StorageError: the OS refused; :attr:`entries` are kept for the caller's
                accounting (the chunk holding them landed only if ``landed >=
                entries_end``).
        """
        self.close_chunk()
        self.file.push()
        self.entries.clear()
        self.entries_end = None

    # ------------------------------------------------------------------ summary
    def summary(self, summary_start: int) -> bytes:
        """The summary section (Schema ... Summary Offset groups) and the Footer record."""
        groups: list[tuple[int, bytes]] = [
            (Opcode.SCHEMA, b"".join(_encode(s) for s in self._schemas)),
            (Opcode.CHANNEL, b"".join(_encode(c) for c in self._channels)),
            (Opcode.STATISTICS, _encode(Statistics(
                message_count=self._message_count,
                schema_count=len(self._schemas),
                channel_count=len(self._channels),
                attachment_count=0,
                metadata_count=len(self._metadata_index),
                chunk_count=self._chunk_count,
                message_start_time=self._start_time or 0,
                message_end_time=self._end_time,
                channel_message_counts=dict(sorted(self._channel_counts.items())),
            ))),
            (Opcode.METADATA_INDEX, b"".join(_encode(m) for m in self._metadata_index)),
            (Opcode.CHUNK_INDEX, bytes(self._chunk_indexes)),
        ]
        body = bytearray()
        offsets = []
        for opcode, data in groups:
            if data:
                offsets.append(SummaryOffset(group_opcode=opcode,
                                             group_start=summary_start + len(body),
                                             group_length=len(data)))
                body += data
        summary_offset_start = summary_start + len(body)
        for off in offsets:
            body += _encode(off)
        crc = zlib.crc32(body)
        crc = zlib.crc32(struct.pack("<BQQQ", Opcode.FOOTER, 20, summary_start,
                                     summary_offset_start), crc)
        body += _encode(Footer(summary_start=summary_start,
                               summary_offset_start=summary_offset_start, summary_crc=crc))
        return bytes(body)

    def finish(self) -> None:
        """Close the last chunk, write DataEnd, the summary and the footer; push, sync, close."""
        self.close_chunk()
        self.file.write(_encode(DataEnd(data_section_crc=0)))
        self.file.write(self.summary(self.file.tell()) + MCAP_MAGIC)
        self.push()
        self.file.sync()
        self.file.close()
        self.closed = True

    def abandon(self) -> None:
        """Close a torn segment as it is; nothing more is ever written to it."""
        self.torn = True
        self.closed = True
        self.chunk.clear()
        self.file.buf.clear()
        with contextlib.suppress(OSError):
            self.file.close()
