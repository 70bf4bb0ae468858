"""One MCAP segment file: the byte path from the writer thread to the disk.

:class:`SegmentFile` is the file the ``mcap`` Writer writes into. It buffers
in memory and reaches the OS only when the writer thread says so
(:meth:`SegmentFile.push`, after every batch and whenever 64 KiB is
pending), so a kill -9 loses at most one batch, and a storage error is seen
at a known place, with exactly how many bytes landed. It never seeks and
never rewrites: a segment abandoned after an error is closed as it is.

:class:`OsFile` is the raw descriptor underneath; tests substitute their own
(a stalling or failing file) through the recorder's ``file_opener``.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from mcap.data_stream import RecordBuilder
from mcap.records import Channel, McapRecord, Schema
from mcap.writer import CompressionType, Writer

from gps_denied_onboard.record_schema import FDR_RECORD_SCHEMA_VERSION, KNOWN_KINDS

PUSH_THRESHOLD = 64 * 1024
#: MCAP Message record header: opcode 0x05, record length, channel id, sequence,
#: log_time, publish_time (the data follows). Same bytes as ``mcap.records.Message.write``.
MESSAGE_HEADER = struct.Struct("<BQHIQQ")
MESSAGE_OPCODE = 0x05
MESSAGE_FIXED = 22
PROFILE = "ros2"
LIBRARY = "gps_denied_onboard.fdr"


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
    """Append-only buffered stream handed to ``mcap.writer.Writer``."""

    def __init__(self, raw: RawFile) -> None:
        self._raw = raw
        self.buf = bytearray()
        self.landed = 0  # bytes accepted by the OS
        self.synced = 0  # bytes covered by the last fdatasync
        self.broken = False

    # file protocol used by mcap.Writer
    def write(self, data: bytes) -> int:
        self.buf += data
        return len(data)

    def tell(self) -> int:
        return self.landed + len(self.buf)

    def flush(self) -> None:
        """Part of the file protocol; bytes move only on :meth:`push`."""

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


class McapSegment:
    """The mcap Writer on one :class:`SegmentFile`, with the channels it has registered."""

    def __init__(self, path: Path, index: int, raw: RawFile, flight_id: str) -> None:
        self.path = path
        self.index = index
        self.file = SegmentFile(raw)
        # The Writer frames the file (header, schemas, channels, metadata, summary, footer);
        # message records go straight into the buffer (see add), four times cheaper than
        # Writer.add_message. The summary therefore carries no Statistics record:
        # readers that need counts scan the (unchunked) data section, as they must anyway.
        self.writer = Writer(self.file, use_chunking=False, compression=CompressionType.NONE,
                             use_statistics=False)
        self.fdr_channels: dict[str, int] = {}
        self.raw_channels: dict[tuple[str, str], int] = {}
        self._raw_schemas: dict[str, int] = {}
        self.fdr_records = 0
        self.raw_messages = 0
        self.raw_topic_counts: dict[tuple[str, str, str], int] = {}  # (topic, type, qos)
        self.raw_start_ns: int | None = None
        self.raw_end_ns: int | None = None
        self.closed = False
        self.torn = False
        self.writer.start(PROFILE, LIBRARY)
        self.writer.add_metadata(
            "gps_denied_onboard/fdr/segment",
            {
                "flight_id": flight_id,
                "index": str(index),
                "fdr_record_schema": FDR_RECORD_SCHEMA_VERSION,
            },
        )

    @property
    def size(self) -> int:
        return self.file.tell()

    def add(self, channel_id: int, log_time: int, data: bytes, publish_time: int,
            sequence: int) -> None:
        """Append one MCAP Message record (unchunked data section)."""
        buf = self.file.buf
        buf += MESSAGE_HEADER.pack(MESSAGE_OPCODE, MESSAGE_FIXED + len(data), channel_id,
                                   sequence & 0xFFFFFFFF, log_time, publish_time)
        buf += data

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
            schema = self._raw_schemas.get(type_name)
            if schema is None:
                data = msgdef.encode()
                schema = self.writer.register_schema(type_name, "ros2msg", data)
                self._inband(Schema(id=schema, name=type_name, encoding="ros2msg", data=data))
                self._raw_schemas[type_name] = schema
            ch = self._channel(msg_topic, "cdr", schema, {"offered_qos_profiles": qos})
            self.raw_channels[key] = ch
        return ch

    def _channel(self, topic: str, encoding: str, schema_id: int,
                 metadata: dict[str, str]) -> int:
        ch: int = self.writer.register_channel(topic, encoding, schema_id, metadata)
        self._inband(Channel(id=ch, topic=topic, message_encoding=encoding, schema_id=schema_id,
                             metadata=metadata))
        return ch

    def _inband(self, record: McapRecord) -> None:
        """Write a Schema/Channel record into the data section now.

        In unchunked mode the Writer keeps registered schemas and channels in its record
        builder until its next flush; messages bypass the Writer (see ``add``), so the
        record goes in-band here, where a reader of a torn file needs it. The Writer's own
        copy, identical, follows at its next flush (the MCAP spec allows identical
        duplicates) and feeds the summary.
        """
        builder = RecordBuilder()
        record.write(builder)
        self.file.write(builder.end())

    def add_metadata(self, name: str, data: Mapping[str, str]) -> None:
        self.writer.add_metadata(name, dict(data))

    def finish(self) -> None:
        """Write the MCAP summary and footer, push, fdatasync, close."""
        self.writer.finish()
        self.file.push()
        self.file.sync()
        self.file.close()
        self.closed = True

    def abandon(self) -> None:
        """Close a torn segment as it is; nothing more is ever written to it."""
        self.torn = True
        self.closed = True
        self.file.buf.clear()
        with contextlib.suppress(OSError):
            self.file.close()
