"""Reading flights back for the recording-core tests, independently of the operator tool.

``read_segment`` walks a segment record by record with ``mcap``'s StreamReader
and stops quietly at a torn tail, so it reads finished, crashed and abandoned
segments alike.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcap.records import Channel, Message
from mcap.stream_reader import StreamReader

from gps_denied_onboard.clock import ManualClock, MonotonicClock
from gps_denied_onboard.fdr import FdrConfig, FlightRecorder

T0 = 1_778_544_000 * 1_000_000_000


@dataclass
class Msg:
    segment: str
    topic: str
    encoding: str
    log_time: int
    sequence: int
    data: bytes

    @property
    def body(self) -> dict[str, Any]:
        out = json.loads(self.data)
        assert isinstance(out, dict)
        return out


def read_segment(path: Path) -> Iterator[Msg]:
    channels: dict[int, Channel] = {}
    with path.open("rb") as fh:
        reader = StreamReader(fh, record_size_limit=None)
        try:
            for rec in reader.records:
                if isinstance(rec, Channel):
                    channels[rec.id] = rec
                elif isinstance(rec, Message):
                    ch = channels[rec.channel_id]
                    yield Msg(path.name, ch.topic, ch.message_encoding, rec.log_time,
                              rec.sequence, rec.data)
        except Exception:  # torn tail: everything before it has been yielded
            return


def segment_paths(flight_dir: Path) -> list[Path]:
    return sorted(flight_dir.glob("*.mcap"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))


def read_flight(flight_dir: Path) -> list[Msg]:
    return [m for p in segment_paths(flight_dir) for m in read_segment(p)]


def fdr_bodies(flight_dir: Path, kind: str | None = None) -> list[dict[str, Any]]:
    out = []
    for m in read_flight(flight_dir):
        if m.encoding == "json" and (kind is None or m.topic == f"/fdr/{kind}"):
            out.append(m.body)
    return out


class Alerts:
    def __init__(self) -> None:
        self.items: list[tuple[int, str]] = []

    def __call__(self, severity: int, text: str) -> None:
        self.items.append((severity, text))


def make_recorder(root: Path, *, clock: ManualClock | None = None, alerts: Alerts | None = None,
                  logger: logging.Logger | None = None, file_opener: Any = None,
                  **overrides: Any) -> FlightRecorder:
    values: dict[str, Any] = {"flight_root": root, "free_space_floor_bytes": 0}
    values.update(overrides)
    extra = {"file_opener": file_opener} if file_opener is not None else {}
    return FlightRecorder(FdrConfig(**values), clock or ManualClock(T0), MonotonicClock(),
                          alerts, logger, **extra)
