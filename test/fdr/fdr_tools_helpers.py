"""Build flight directories the way fdr/FORMAT.md lays them out, for the tool tests.

:class:`FlightBuilder` writes segments with the ``mcap`` Writer directly
(unchunked, like the recorder), so the tool tests can make flights with
exactly the gaps, overruns, drops and tears a test needs, including ones the
real writer would never produce (silent gaps). Flights from the real writer
are tested in ``test_fdr_tools_writer.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO

from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter

from gps_denied_onboard.fdr.bag import SegmentEntry, write_metadata
from gps_denied_onboard.record_schema import FDR_RECORD_SCHEMA_VERSION

STRING_MSGDEF = "string data\n"
T0 = 1_778_544_000 * 1_000_000_000


def encode_string(text: str) -> bytes:
    """CDR bytes of a ``std_msgs/msg/String``."""
    from mcap_ros2._dynamic import serialize_dynamic

    return bytes(
        serialize_dynamic("std_msgs/msg/String", STRING_MSGDEF)["std_msgs/msg/String"](
            {"data": text}
        )
    )


class FlightBuilder:
    """Writes a flight directory record by record."""

    def __init__(self, flight_root: Path, flight_id: str = "F1") -> None:
        self.flight_id = flight_id
        self.dir = Path(flight_root) / flight_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.index = -1
        self.seq: dict[str, int] = {}
        self.now = T0
        self.counts = {"records_written": 0, "records_dropped_overrun": 0, "rollovers": 0}
        self.raw_seq = 0
        self._file: BinaryIO | None = None
        self._writer: McapWriter | None = None
        self._channels: dict[str, int] = {}
        self.entries: list[SegmentEntry] = []
        self.rotate()

    # --- segments ---
    def rotate(self) -> None:
        self._finish_segment()
        self.index += 1
        path = self.dir / f"{self.flight_id}_{self.index}.mcap"
        self._file = path.open("wb")
        self._writer = McapWriter(self._file, use_chunking=False, compression=CompressionType.NONE)
        self._writer.start(profile="ros2", library="test FlightBuilder")
        self._writer.add_metadata(
            "gps_denied_onboard/fdr/segment",
            {
                "flight_id": self.flight_id,
                "index": str(self.index),
                "fdr_record_schema": FDR_RECORD_SCHEMA_VERSION,
            },
        )
        self._channels = {}
        self.entries.append(SegmentEntry(name=path.name, index=self.index))

    def _finish_segment(self) -> None:
        if self._writer is not None and self._file is not None:
            self._writer.finish()
            self._file.close()
            self.entries[-1].closed = True
            self.entries[-1].size_bytes = Path(self._file.name).stat().st_size
        self._writer = None
        self._file = None

    @property
    def segment_path(self) -> Path:
        return self.dir / f"{self.flight_id}_{self.index}.mcap"

    # --- records ---
    def _channel(self, topic: str, encoding: str, schema_id: int, meta: dict[str, str]) -> int:
        assert self._writer is not None
        if topic not in self._channels:
            self._channels[topic] = self._writer.register_channel(topic, encoding, schema_id, meta)
        return self._channels[topic]

    def record(
        self,
        kind: str,
        producer: str,
        payload: dict[str, Any] | None = None,
        *,
        stamp_ns: int | None = None,
    ) -> int:
        """Write one FDR record with the producer's next seq; returns the seq."""
        assert self._writer is not None
        seq = self.seq.get(producer, 0)
        self.seq[producer] = seq + 1
        self.now += 1_000_000
        stamp = self.now if stamp_ns is None else stamp_ns
        body = {
            "kind": kind,
            "producer": producer,
            "stamp_ns": stamp,
            "schema_version": FDR_RECORD_SCHEMA_VERSION,
            "seq": seq,
            "payload": payload or {},
        }
        meta = {
            "schema_name": f"gps_denied_onboard/fdr/{kind}",
            "jsonschema": json.dumps({"type": "object", "title": kind}),
            "fdr_record_schema": FDR_RECORD_SCHEMA_VERSION,
        }
        ch = self._channel(f"/fdr/{kind}", "json", 0, meta)
        self._writer.add_message(ch, stamp, json.dumps(body).encode(), self.now, seq % 2**32)
        self.counts["records_written"] += 1
        if kind == "segment_rollover":
            self.counts["rollovers"] += 1
        self.entries[-1].fdr_records += 1
        return seq

    def header(self) -> None:
        self.record(
            "flight_header",
            "fdr",
            {
                "flight_id": self.flight_id,
                "schema_version": FDR_RECORD_SCHEMA_VERSION,
                "started_at_ns": T0,
                "segment_size_bytes": 1 << 20,
                "flight_cap_bytes": 1 << 36,
            },
        )

    def footer(self) -> None:
        self.record(
            "flight_footer",
            "fdr",
            {
                "flight_id": self.flight_id,
                "closed_at_ns": self.now,
                "records_written": self.counts["records_written"],
                "records_dropped_overrun": self.counts["records_dropped_overrun"],
                "bytes_written": 0,
                "rollover_count": self.counts["rollovers"],
            },
        )

    def drop(self, producer: str, n: int, *, accounted: bool = True) -> None:
        """Lose ``n`` records of ``producer``; with ``accounted`` write the overrun record."""
        first = self.seq.get(producer, 0)
        self.seq[producer] = first + n
        if accounted:
            self.counts["records_dropped_overrun"] += n
            self.record(
                "overrun",
                "fdr",
                {
                    "producer": producer,
                    "count": n,
                    "first_stamp_ns": self.now,
                    "last_stamp_ns": self.now,
                    "first_seq": first,
                    "last_seq": first + n - 1,
                    "reason": "ring_full",
                },
            )

    def raw(self, topic: str, text: str) -> None:
        assert self._writer is not None
        if topic not in self._channels:
            schema = self._writer.register_schema(
                "std_msgs/msg/String", "ros2msg", STRING_MSGDEF.encode()
            )
            self._channel(topic, "cdr", schema, {"offered_qos_profiles": ""})
        self.now += 1_000_000
        self._writer.add_message(
            self._channels[topic], self.now, encode_string(text), self.now, self.raw_seq
        )
        self.raw_seq += 1
        self.counts["records_written"] += 1
        e = self.entries[-1]
        e.raw_messages += 1
        e.raw_start_ns = e.raw_start_ns or self.now
        e.raw_end_ns = self.now
        key = (topic, "std_msgs/msg/String", "")
        e.raw_topic_counts[key] = e.raw_topic_counts.get(key, 0) + 1

    def close(self, *, footer: bool = True) -> Path:
        if footer:
            self.footer()
        self._finish_segment()
        write_metadata(self.dir, self.flight_id, self.entries, closed=footer, dropped=[])
        return self.dir

    def crash(self) -> Path:
        """Stop as kill -9 would: no footer, no summary, the tail of the buffer unflushed."""
        assert self._file is not None
        self._file.flush()
        self._file.close()
        self._writer = None
        self._file = None
        write_metadata(self.dir, self.flight_id, self.entries, closed=False, dropped=[])
        return self.dir


def simple_flight(root: Path, flight_id: str = "F1") -> FlightBuilder:
    """Header, a few records from two producers, one accounted overrun, a raw topic."""
    fb = FlightBuilder(root, flight_id)
    fb.header()
    for i in range(5):
        fb.record("fc.mode_change", "fc_bridge", {"mode": f"M{i}"})
    fb.drop("fc_bridge", 3)
    fb.record("fc.armed", "fc_bridge")
    fb.raw("/chatter", "hello")
    fb.record("c6.evict", "tile_cache", {"tile_id": "t1", "disk_bytes": 10})
    fb.rotate()
    fb.raw("/chatter", "world")
    fb.record("fc.disarmed", "fc_bridge")
    return fb
