"""What a node's record publisher sends, and when: nothing goes out to nobody.

DDS delivers a VOLATILE sample only to the subscriptions its publisher has matched
when it publishes, so records a node emits before its publisher has matched the
recorder's subscription went nowhere (seen: a take-off whose ``fc_bridge`` publisher
never matched before landing, ``fc.link_up`` missing from the flight). A
:class:`RecordGate` holds what is emitted while no subscription is matched, in order,
and lets it out, ahead of anything newer and with its original stamps, as soon as one
is (:meth:`RecordGate.emit` with ``matched``, or :meth:`RecordGate.release`).

The hold is bounded (:data:`HOLD_LIMIT`): past it the oldest held record is dropped,
and what was dropped goes out first at the release, as one ``overrun`` record per
producer slug (reason :data:`UNMATCHED`, under the slug itself, with no seq range),
so the flight accounts for it like any other loss. The ``records_closed`` record that
closes a slug (:meth:`RecordGate.close`) says what left this publisher: ``published``
= records published before it (its own DDS sequence number less one), ``records`` =
records under the slug that left since its previous ``records_closed`` did, published
or dropped from the hold: both are filled in when it goes out, not when it is made.

ROS-free: ``nodes/record_sink.py`` tells it whether DDS has a subscription matched
and publishes what it returns, in that order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from gps_denied_onboard.records import RECORDS_CLOSED_KIND, FlightRecord

__all__ = ["HOLD_LIMIT", "UNMATCHED", "RecordGate"]

#: Most records held while no subscription is matched (the publisher's own DDS
#: history is as deep: ``ros_topics.RECORD_QOS``, so a release fits in it).
HOLD_LIMIT: Final = 1000
#: ``overrun`` reason of records dropped from the hold (nothing was matched).
UNMATCHED: Final = "unmatched"


@dataclass
class _Dropped:
    count: int
    first_stamp_ns: int
    last_stamp_ns: int


class RecordGate:
    """Holds records while nothing is matched; says what to publish, in order.

    Not thread-safe: the sink calls it under its lock. Every list it returns must be
    published in full and in order (its counts assume so).
    """

    def __init__(self, limit: int = HOLD_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"hold limit must be >= 1, got {limit}")
        self._limit = limit
        self._held: deque[FlightRecord] = deque()
        self._dropped: dict[str, _Dropped] = {}  # slug -> dropped, not yet reported
        self._emitted: dict[str, int] = {}  # slug -> records emitted since the last close
        self._left: dict[str, int] = {}  # slug -> records that left since its records_closed
        self.published = 0
        self.dropped_total = 0

    @property
    def limit(self) -> int:
        """Most records held."""
        return self._limit

    @property
    def held(self) -> int:
        """Records waiting for a subscription."""
        return len(self._held)

    @property
    def unclosed(self) -> bool:
        """Records were emitted since the last :meth:`close`."""
        return bool(self._emitted)

    def emitted(self) -> dict[str, int]:
        """Records emitted per slug since the last :meth:`close`."""
        return dict(self._emitted)

    def emit(self, record: FlightRecord, matched: bool) -> list[FlightRecord]:
        """One record: what to publish now (what was held first, then it), or hold it."""
        producer = record.producer
        self._emitted[producer] = self._emitted.get(producer, 0) + 1
        return self._offer(record, matched)

    def release(self) -> list[FlightRecord]:
        """A subscription is matched: everything held, in order, after one ``overrun``
        per slug that lost records from the hold."""
        out = [
            self._send(
                FlightRecord(
                    "overrun",
                    producer,
                    d.last_stamp_ns,
                    {
                        "producer": producer,
                        "count": d.count,
                        "first_stamp_ns": d.first_stamp_ns,
                        "last_stamp_ns": d.last_stamp_ns,
                        "reason": UNMATCHED,
                    },
                )
            )
            for producer, d in self._dropped.items()
        ]
        self._dropped.clear()
        held, self._held = self._held, deque()
        out.extend(self._send(r) for r in held)
        return out

    def close(self, stamp_ns: int, node: str, matched: bool) -> list[FlightRecord]:
        """A ``records_closed`` record per slug emitted since the last close (held like
        any record while nothing is matched); nothing when none was."""
        emitted, self._emitted = self._emitted, {}
        out: list[FlightRecord] = []
        for producer in emitted:
            closing = FlightRecord(
                RECORDS_CLOSED_KIND, producer, stamp_ns, {"published": 0, "node": node}
            )
            out.extend(self._offer(closing, matched))
        return out

    def _offer(self, record: FlightRecord, matched: bool) -> list[FlightRecord]:
        if not matched:
            self._hold(record)
            return []
        out = self.release() if self._held else []
        out.append(self._send(record))
        return out

    def _hold(self, record: FlightRecord) -> None:
        self._held.append(record)
        if len(self._held) <= self._limit:
            return
        old = self._held.popleft()
        self.dropped_total += 1
        producer = old.producer
        if old.kind != RECORDS_CLOSED_KIND:
            self._left[producer] = self._left.get(producer, 0) + 1
        d = self._dropped.get(producer)
        if d is None:
            self._dropped[producer] = _Dropped(1, old.stamp_ns, old.stamp_ns)
        else:
            d.count += 1
            d.first_stamp_ns = min(d.first_stamp_ns, old.stamp_ns)
            d.last_stamp_ns = max(d.last_stamp_ns, old.stamp_ns)

    def _send(self, record: FlightRecord) -> FlightRecord:
        producer = record.producer
        if record.kind == RECORDS_CLOSED_KIND:
            payload = dict(record.payload)
            payload["published"] = self.published
            payload["records"] = self._left.pop(producer, 0)
            record = FlightRecord(
                record.kind, producer, record.stamp_ns, payload, record.schema_version
            )
        else:
            self._left[producer] = self._left.get(producer, 0) + 1
        self.published += 1
        return record
