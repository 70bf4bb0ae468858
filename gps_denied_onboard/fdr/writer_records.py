"""The writer thread's record layer: records, gaps and losses into the open segment.

:class:`RecordWriter` holds the recorder's state and writes what the rings hand
it into the open chunk of the open segment: producers' records and raw
messages (:meth:`RecordWriter._write_items`, the hot loop), the recorder's own
records (producer ``fdr``), and ``overrun`` records for every gap; while no
segment can take them, it counts each loss per producer instead
(``storage_unavailable``). The storage layer
(:mod:`~gps_denied_onboard.fdr.writer_storage`) and the recorder's API and loop
(:mod:`~gps_denied_onboard.fdr.writer`) build on it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from itertools import repeat, starmap
from typing import Any

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.fdr.client import FdrClient, RawMessage, WakeSignal
from gps_denied_onboard.fdr.config import FdrConfig
from gps_denied_onboard.fdr.flight import Flight
from gps_denied_onboard.fdr.mcap_segment import (
    MESSAGE_FIXED,
    MESSAGE_HEADER,
    MESSAGE_OPCODE,
    McapSegment,
)
from gps_denied_onboard.fdr.policy import (
    RATE_CAPPED_KINDS,
    CapacityCapPolicy,
    Gap,
    RecordKindPolicy,
)
from gps_denied_onboard.fdr.record_body import FastPayloadError, RecordBodyEncoder, fast_payload
from gps_denied_onboard.fdr.segment import FileOpener, OsFile
from gps_denied_onboard.log import RateLimitedLog, log_event
from gps_denied_onboard.record_schema import FDR_RECORD_SCHEMA_VERSION
from gps_denied_onboard.records import FlightRecord
from gps_denied_onboard.rootlock import DirectoryLock

#: MAVLink MAV_SEVERITY values used by the recorder's alerts.
SEVERITY_CRITICAL = 2
SEVERITY_ERROR = 3
SEVERITY_WARNING = 4

#: Callable the recorder raises GCS alerts through: ``alert_sink(severity, text)``.
AlertSink = Callable[[int, str], None]

FDR_PRODUCER = "fdr"
RAW_PRODUCER = "raw_topics"
_SEQ_MASK = 0xFFFFFFFF
_OWN_BACKLOG_MAX = 10_000
NS_PER_S = 1_000_000_000


def batch_of(ring: deque[Any], limit: int) -> tuple[int, bool]:
    """How many items of ``ring`` one writer pass takes, and whether that is a full batch."""
    n = len(ring)
    return (limit, True) if n >= limit else (n, False)


class RecordWriter:
    """The recorder's state and its record layer (see the module docstring)."""

    def __init__(self, config: FdrConfig, clock: Clock, monotonic: Clock,
                 alert_sink: AlertSink | None = None, logger: logging.Logger | None = None,
                 *, file_opener: FileOpener = OsFile) -> None:
        self.config = config
        self._clock = clock
        self._mono = monotonic
        self._alert_sink = alert_sink
        self._log = logger or logging.getLogger("gps_denied_onboard.fdr")
        self._errlog = RateLimitedLog(self._log, NS_PER_S)
        self._open_file = file_opener
        self.policy = RecordKindPolicy(config.thumbnail_window_ns)
        self._cap = CapacityCapPolicy(config.flight_cap_bytes)
        self._clients: tuple[FdrClient, ...] = ()
        self._clients_lock = threading.Lock()
        self._own = FdrClient(FDR_PRODUCER, 1, self.policy)
        self._raw_client: FdrClient | None = None
        self._cmds: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._wake = WakeSignal()
        self._stop_flag = False
        self._thread: threading.Thread | None = None
        self._root_lock: DirectoryLock | None = None
        self._flight: Flight | None = None
        self._own_backlog: list[tuple[str, dict[str, Any], int]] = []
        self._degraded = False
        self._degraded_reason: str | None = None
        self._degraded_since = 0
        self._last_sync = 0
        self._last_retry = 0
        self._last_tick = 0
        #: the writer's housekeeping period (gap accounting, push; fdatasync each second)
        self._tick_period_ns = min(config.fsync_period_ns, 100_000_000)
        self._last_space_check: int | None = None
        self._free_bytes: int | None = None
        self._alerts = 0
        self._last_progress = 0
        self._rate = (0.0, 0.0)
        self._rate_base: tuple[int, int, int] | None = None
        self._bodies = RecordBodyEncoder()
        self._torn_all: list[str] = []
        self._lag_max = 0  # since start
        self._lag_max_taken = 0  # since the last take_lag_max_ns()
        self._shed_lag = 0

    def _write_items(self, flight: Flight, client: FdrClient,
                     ring: deque[tuple[int, Any, tuple[str, ...], int]], n: int,
                     now: int) -> None:
        """Write the next ``n`` ring items into the open chunk (the writer's hot loop)."""
        seg = flight.seg
        assert seg is not None
        buf = seg.chunk
        pack = MESSAGE_HEADER.pack
        pending = seg.entries
        channels = seg.fdr_channels
        producer = client.producer
        body_of = self._bodies.body
        enc = fast_payload
        heads = self._bodies.heads_by_producer.setdefault(producer, {})
        gate = self.policy.gate_for_writer
        debug = self.config.debug_log_per_record
        start = len(pending)
        raw = own = 0
        # The previous record's kind, channel and body head: a producer's records mostly
        # come in runs of one kind, and two dict lookups a record are a tenth of its cost.
        last_kind: str | None = None
        ch = 0
        head: bytes | None = None
        for seq, item, flags, _offered in starmap(ring.popleft, repeat((), n)):
            cls = item.__class__
            if cls is Gap:
                before = len(pending)
                self._write_gap(client, item)
                own += len(pending) - before  # the overrun record is the recorder's own
                continue
            if cls is RawMessage:
                key = (item.topic, item.type_name, item.qos)
                rch = seg.raw_channels.get(key[:2])
                if rch is None:
                    rch = seg.raw_channel(item.topic, item.type_name, item.msgdef, item.qos)
                off = seg.add(rch, item.stamp_ns, item.cdr, now, seq)
                pending.append((off, rch, item.stamp_ns, client, seq, None, key))
                self._count_raw(seg, key, item.stamp_ns, 1)
                raw += 1
                continue
            kind = item.kind
            stamp = item.stamp_ns
            if kind is not last_kind:
                if kind in RATE_CAPPED_KINDS:
                    last_kind = None  # gated record by record
                    if not gate(producer, kind, stamp, seq):
                        continue
                else:
                    last_kind = kind
                ch = channels.get(kind) or seg.fdr_channel(kind)
                head = heads.get(kind)
            if head is None or flags or item.schema_version != FDR_RECORD_SCHEMA_VERSION:
                body = body_of(producer, item, seq, flags)
                head = heads.get(kind)
            else:  # the common case, inlined: known head, no flags
                # FlightRecord.payload is a mappingproxy over a dict: its copy()
                # is that dict's C copy, ten times cheaper than dict(proxy).
                try:
                    payload: bytes | None = enc(item.payload.copy())
                except FastPayloadError:  # orjson cannot write it as json does
                    payload = None
                # may hold NaN/inf; find, not `in`: bytes.__contains__ tries the operand as
                # an int first and raises and clears a TypeError, a tenth of a record's cost
                if payload is None or payload.find(b"null") >= 0:
                    body = body_of(producer, item, seq, flags)
                else:
                    body = b'%s%d,"seq":%d,"payload":%s}' % (head, stamp, seq, payload)
            pending.append((len(buf), ch, stamp, client, seq, None, None))
            buf += pack(MESSAGE_OPCODE, MESSAGE_FIXED + len(body), ch, seq & _SEQ_MASK, stamp,
                        now)
            buf += body
            if debug:
                log_event(self._log, logging.DEBUG, "fdr.record", kind=kind,
                          producer=producer, seq=seq)
        written = len(pending) - start - own
        client.written += written
        seg.fdr_records += written - raw

    @staticmethod
    def _count_raw(seg: McapSegment, key: tuple[str, str, str], stamp: int, n: int) -> None:
        seg.raw_messages += n
        seg.raw_topic_counts[key] = seg.raw_topic_counts.get(key, 0) + n
        if n > 0:
            if seg.raw_start_ns is None or stamp < seg.raw_start_ns:
                seg.raw_start_ns = stamp
            if seg.raw_end_ns is None or stamp > seg.raw_end_ns:
                seg.raw_end_ns = stamp

    def _write_own(self, kind: str, payload: dict[str, Any], stamp: int | None = None) -> None:
        """Write one of the recorder's own records (producer ``fdr``), or keep it for later."""
        stamp = self._clock.now_ns() if stamp is None else stamp
        flight = self._flight
        seg = flight.seg if flight is not None else None
        if seg is None or self._degraded:
            if len(self._own_backlog) < _OWN_BACKLOG_MAX:
                self._own_backlog.append((kind, payload, stamp))
            else:
                self._lose(self._own, self._own._seq, stamp, 1)
                self._own._seq += 1
            return
        own = self._own
        seq = own._seq
        own._seq = seq + 1
        rec = FlightRecord(kind, FDR_PRODUCER, stamp, payload)
        body = self._bodies.body(FDR_PRODUCER, rec, seq, self.policy.enforce_or_raise(rec))
        ch = seg.fdr_channel(kind)
        off = seg.add(ch, stamp, body, self._clock.now_ns(), seq)
        seg.entries.append((off, ch, stamp, own, seq, None, None))
        own.written += 1
        seg.fdr_records += 1

    def _write_gap(self, client: FdrClient, gap: Gap) -> None:
        """Write an overrun record for ``gap`` (records ``client`` lost)."""
        flight = self._flight
        if flight is None or flight.seg is None or self._degraded:
            self._lose_gap(client, gap)
            return
        own = self._own
        seg = flight.seg
        seq = own._seq
        own._seq = seq + 1
        stamp = self._clock.now_ns()
        rec = FlightRecord("overrun", FDR_PRODUCER, stamp, gap.payload())
        ch = seg.fdr_channel("overrun")
        off = seg.add(ch, stamp, self._bodies.body(FDR_PRODUCER, rec, seq, ()), stamp, seq)
        seg.entries.append((off, ch, stamp, own, seq, gap, client))
        own.written += 1
        seg.fdr_records += 1
        client.dropped += gap.count
        flight.dropped_overrun += gap.count

    def _lose(self, client: FdrClient, seq: int, stamp: int, count: int = 1) -> None:
        loss = client.pending_loss
        if loss is None:
            client.pending_loss = Gap(client.producer, count, stamp, stamp, seq, seq,
                                      "storage_unavailable")
        else:
            loss.add(seq, stamp, count)

    def _lose_gap(self, client: FdrClient, gap: Gap) -> None:
        loss = client.pending_loss
        if loss is None:
            client.pending_loss = Gap(client.producer, gap.count, gap.first_stamp_ns,
                                      gap.last_stamp_ns, gap.first_seq, gap.last_seq,
                                      "storage_unavailable")
        else:
            loss.merge(gap)

    def _drain_lost(self) -> bool:
        """Degraded: empty the rings so producers never block; account every item lost."""
        busy = False
        batch = self.config.batch_size
        for client in self._clients:
            ring = client._ring
            n, full = batch_of(ring, batch)
            if n == 0:
                continue
            busy = busy or full
            for _ in range(n):
                seq, item, _flags, _offered = ring.popleft()
                if item.__class__ is Gap:
                    self._lose_gap(client, item)
                else:
                    self._lose(client, seq, item.stamp_ns)
        return busy

    def _account_gaps(self, flight: Flight, *, final: bool) -> None:
        """Write overrun records for gaps no later record has closed yet."""
        for client in self._clients:
            if client.depth == 0:
                gap = client._take_gap()
                if gap is not None:
                    self._write_gap(client, gap)
        now = None if final else self._clock.now_ns()
        by_name = {c.producer: c for c in self._clients}
        for gap in self.policy.take_closed_windows(now):
            owner = by_name.get(gap.producer)
            if owner is not None:
                self._write_gap(owner, gap)
