"""GCS alerts -> MAVLink STATUSTEXT, with the alert's severity.

A STATUSTEXT carries 50 characters. Longer texts are split into chunks that
share a non-zero ``id`` and carry ``chunk_seq`` 0, 1, 2... (MAVLink 2
extension fields); a text whose last chunk is exactly 50 characters is
followed by an empty chunk, so the receiver sees the terminating NUL the
protocol uses to mark the end. A text of 50 characters or less goes as one
message with ``id`` 0 (not chunked). Text is sent as UTF-8, never splitting a
character; characters outside it are replaced.
"""

from __future__ import annotations

import threading
from typing import Any, Final

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.fc_bridge.link import FcLink
from gps_denied_onboard.fc_bridge.link_inbound import PRODUCER
from gps_denied_onboard.records import FlightRecord, RecordSink

STATUSTEXT_LEN: Final = 50
MAX_CHUNKS: Final = 255

SEVERITY_NAMES: Final = {
    0: "EMERGENCY",
    1: "ALERT",
    2: "CRITICAL",
    3: "ERROR",
    4: "WARNING",
    5: "NOTICE",
    6: "INFO",
    7: "DEBUG",
}


def split_utf8(text: str, size: int = STATUSTEXT_LEN) -> list[bytes]:
    """Split ``text`` into UTF-8 chunks of at most ``size`` bytes, whole characters only."""
    data = text.encode("utf-8", errors="replace")
    chunks: list[bytes] = []
    start = 0
    while start < len(data):
        end = min(start + size, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # continuation byte
            end -= 1
        chunks.append(data[start:end])
        start = end
    return chunks or [b""]


class StatusTextEncoder:
    """Builds STATUSTEXT messages; keeps the rolling chunk-group ``id`` (1..65535)."""

    def __init__(self, mav: Any) -> None:
        self._mav = mav
        self._lock = threading.Lock()
        self._next_id = 1

    def _new_id(self) -> int:
        with self._lock:
            value = self._next_id
            self._next_id = value % 0xFFFF + 1
            return value

    def encode(self, severity: int, text: str) -> list[Any]:
        """STATUSTEXT messages for one alert (one, or a chunked group).

        Raises:
            ValueError: severity outside MAV_SEVERITY (0..7).
        """
        if severity not in SEVERITY_NAMES:
            raise ValueError(f"severity {severity} is not a MAV_SEVERITY (0..7)")
        chunks = split_utf8(text)
        if len(chunks) == 1 and len(chunks[0]) < STATUSTEXT_LEN:
            return [self._mav.statustext_encode(severity, chunks[0], 0, 0)]
        if len(chunks[-1]) == STATUSTEXT_LEN:
            chunks.append(b"")
        chunks = chunks[:MAX_CHUNKS]
        group = self._new_id()
        return [
            self._mav.statustext_encode(severity, chunk, group, seq)
            for seq, chunk in enumerate(chunks)
        ]


def reassemble(messages: list[Any]) -> dict[int, str]:
    """Receiver side (tests, tools): ``id -> text`` from STATUSTEXT messages; id 0 alone."""
    groups: dict[int, dict[int, bytes]] = {}
    singles: dict[int, str] = {}
    for i, m in enumerate(messages):
        raw = m.text.encode("utf-8") if isinstance(m.text, str) else bytes(m.text)
        if m.id == 0:
            singles[-(i + 1)] = raw.decode("utf-8", errors="replace")
            continue
        groups.setdefault(m.id, {})[m.chunk_seq] = raw
    out = {k: v for k, v in singles.items()}
    for gid, parts in groups.items():
        out[gid] = b"".join(parts[k] for k in sorted(parts)).decode("utf-8", errors="replace")
    return out


class AlertForwarder:
    """Sends GCS alerts on the link as STATUSTEXT and records each forwarded alert."""

    def __init__(self, link: FcLink, clock: Clock, sink: RecordSink) -> None:
        self._link = link
        self._clock = clock
        self._sink = sink
        self._encoder = StatusTextEncoder(link.mav)

    def forward(self, severity: int, text: str, source: str = "") -> int:
        """Send one alert; returns how many STATUSTEXT messages went out.

        Raises:
            ValueError: severity outside MAV_SEVERITY.
        """
        full = f"{source}: {text}" if source else text
        sent = 0
        for msg in self._encoder.encode(severity, full):
            if self._link.send(msg) is not None:
                sent += 1
        self._sink.emit(
            FlightRecord(
                "fc.statustext_forwarded",
                PRODUCER,
                self._clock.now_ns(),
                {"severity": severity, "text": full, "source": source, "messages": sent},
            )
        )
        return sent


__all__ = [
    "SEVERITY_NAMES",
    "STATUSTEXT_LEN",
    "AlertForwarder",
    "StatusTextEncoder",
    "reassemble",
    "split_utf8",
]
