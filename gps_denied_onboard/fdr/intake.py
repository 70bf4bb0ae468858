"""Records that reach the recorder from other processes: routing, rejects, DDS loss.

The ``fdr_recorder`` node hands every ``/fdr/records`` sample (as a
:class:`~gps_denied_onboard.records.FlightRecord`) and every raw-topic sample's
publication sequence number to one :class:`RecordIntake`. It routes each record to
the recorder client (ring) of its producer slug, refuses what the recorder must not
take (its own slugs, records that fail their schema: counted and logged at most once
a second), and turns records lost in DDS before they reached the node into
``overrun`` records (:class:`DdsGapTracker`). ROS-free, so the accounting is pinned
in-process; the node only translates messages.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.errors import RecordSchemaError
from gps_denied_onboard.fdr.client import FdrClient
from gps_denied_onboard.fdr.writer import FDR_PRODUCER, RAW_PRODUCER, FlightRecorder
from gps_denied_onboard.log import RateLimitedLog
from gps_denied_onboard.records import RECORDS_CLOSED_KIND, FlightRecord

__all__ = ["DDS_LOSS", "DdsGapTracker", "RecordIntake"]

#: ``overrun`` reason of records lost in DDS on ``/fdr/records`` (``dds_loss:<topic>``
#: for a raw topic).
DDS_LOSS: Final = "dds_loss"


class DdsGapTracker:
    """Counts records lost in DDS from the publication sequence numbers.

    DDS numbers every sample a publisher writes (1, 2, 3...); a subscriber
    that receives 7 after 4 from the same publisher lost 5 and 6 (a reliable
    KEEP_LAST queue overwrote them). rclpy reports the number but not the
    publisher, so samples are grouped by producer slug: the project's nodes
    publish records through one publisher each, under their own slug. A number
    that goes backwards (the publisher restarted, or two publishers share a
    slug) resets the baseline and is counted, never reported as loss.

    With ``from_one`` (the ``/fdr/records`` publishers, which publish nothing but
    records), a publisher's first sample seen counts every earlier number as lost
    too: numbering starts at 1, so a first sample numbered 40 means 39 records that
    never reached the recorder (published before it matched, or overwritten in its
    queue before it took them) -- a head no earlier number could reveal.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int]] = {}  # producer -> (pub seq, stamp_ns)
        self._received: dict[str, tuple[int, int]] = {}  # producer -> (count, last stamp_ns)
        self.lost_total = 0
        self.resets = 0

    def count(
        self, producer: str, kind: str, payload: Mapping[str, Any], stamp_ns: int
    ) -> tuple[int, int] | None:
        """Feed one sample that came without a sequence number (Humble's callbacks).

        Counts the producer's records; its publisher's ``records_closed`` record
        says how many it sent under this slug (``records``): fewer received is
        loss, returned as ``(lost, last_seen_stamp_ns)``. The count starts again
        for the slug's next publisher. An ``overrun`` the publisher sent about its own
        slug (records it dropped before it could publish them, reason ``unmatched``:
        ``record_gate``) accounts for its count: those are not lost here again.
        """
        if kind != RECORDS_CLOSED_KIND:
            n, _ = self._received.get(producer, (0, stamp_ns))
            n += 1
            if kind == "overrun" and payload.get("producer") == producer:
                count = payload.get("count")
                n += count if isinstance(count, int) and count > 0 else 0
            self._received[producer] = (n, stamp_ns)
            return None
        got, since = self._received.pop(producer, (0, stamp_ns))
        sent = payload.get("records", payload.get("published"))
        if not isinstance(sent, int) or sent <= got:
            return None
        self.lost_total += sent - got
        return sent - got, since

    def observe(
        self, producer: str, pub_seq: int | None, stamp_ns: int, *, from_one: bool = False
    ) -> tuple[int, int] | None:
        """Feed one received sample; returns ``(lost, last_seen_stamp_ns)`` on a gap."""
        if not pub_seq:
            return None
        last = self._last.get(producer)
        self._last[producer] = (pub_seq, stamp_ns)
        if last is None or pub_seq <= last[0]:
            if last is not None:
                self.resets += 1
            if from_one and pub_seq > 1:
                self.lost_total += pub_seq - 1
                return pub_seq - 1, stamp_ns
            return None
        lost = pub_seq - last[0] - 1
        if lost <= 0:
            return None
        self.lost_total += lost
        return lost, last[1]


class RecordIntake:
    """Routes other processes' records into the recorder and accounts for what is lost.

    Lives as long as the node (its counts survive a reconfigure); :meth:`attach`
    binds the recorder of the current configuration, :meth:`detach` lets it go.
    Until attached every record is refused.

    Args:
        producer: the recorder node's own slug (refused from outside, like
            ``FDR_PRODUCER``); its ``overrun`` records are written under it.
        clock: stamps ``overrun`` records (the ROS clock in the node).
        log: where refusals go, at most one line per ``log_period_ns`` of ``log_clock``.
    """

    def __init__(
        self,
        producer: str,
        clock: Clock,
        log: logging.Logger,
        log_clock: Clock,
        log_period_ns: int = 1_000_000_000,
    ) -> None:
        self._producer = producer
        self._clock = clock
        self._log_clock = log_clock
        self._reject_log = RateLimitedLog(log, log_period_ns)
        self._recorder: FlightRecorder | None = None
        self._own: FdrClient | None = None
        self._clients: dict[str, FdrClient] = {}
        self.dds = DdsGapTracker()
        self.rejected = 0

    def attach(self, recorder: FlightRecorder, own: FdrClient) -> None:
        """Route into ``recorder``; ``own`` is its client for the node's own records."""
        self._recorder, self._own, self._clients = recorder, own, {}

    def detach(self) -> None:
        self._recorder, self._own, self._clients = None, None, {}

    def client(self, producer: str) -> FdrClient | None:
        """The recorder client records from ``producer`` go to, once one arrived."""
        return self._clients.get(producer)

    def take(self, record: FlightRecord, pub_seq: int | None, *, numbered: bool = True) -> None:
        """One record from ``/fdr/records``.

        ``numbered``: the sample came with its message info, so ``pub_seq`` (its
        publication sequence number, possibly unknown) shows gaps; without it
        (Humble) the producer's closing ``records_closed`` record tells what it sent.
        """
        producer = record.producer
        if numbered:
            gap = self.dds.observe(producer, pub_seq, record.stamp_ns, from_one=True)
        else:
            gap = self.dds.count(producer, record.kind, record.payload, record.stamp_ns)
        self._write_loss(producer, gap, record.stamp_ns, DDS_LOSS)
        client = self._clients.get(producer)
        if client is None:
            if producer in (FDR_PRODUCER, self._producer) or self._recorder is None:
                self.reject(producer, record.kind, "producer slug reserved for the recorder")
                return
            client = self._recorder.register_client(producer)
            self._clients[producer] = client
        try:
            client.emit(record)
        except RecordSchemaError as err:
            self.reject(producer, record.kind, str(err))

    def raw_seen(self, topic: str, pub_seq: int | None, stamp_ns: int) -> None:
        """A raw-topic sample numbered ``pub_seq`` arrived: account for those DDS lost
        before it (raw topics are numbered per topic: one publisher each)."""
        key, reason = f"topic:{topic}", f"{DDS_LOSS}:{topic}"
        self._write_loss(key, self.dds.observe(key, pub_seq, stamp_ns), stamp_ns, reason)

    def reject(self, producer: str, kind: str, reason: str) -> None:
        """Count and log (rate-limited) a record the recorder will not take."""
        self.rejected += 1
        self._reject_log.log(
            self._log_clock.now_ns(),
            logging.ERROR,
            "fdr.record_rejected",
            producer=producer,
            record_kind=kind,
            reason=reason,
            rejected_total=self.rejected,
        )

    def _write_loss(
        self, key: str, gap: tuple[int, int] | None, stamp_ns: int, reason: str
    ) -> None:
        if gap is None or self._own is None:
            return
        lost, since = gap
        payload = {
            "producer": RAW_PRODUCER if reason != DDS_LOSS else key,
            "count": lost,
            "first_stamp_ns": since,
            "last_stamp_ns": stamp_ns,
            "reason": reason,
        }
        self._own.emit(FlightRecord("overrun", self._producer, self._clock.now_ns(), payload))
