"""Per-producer rings: where producers hand records to the writer thread.

An :class:`FdrClient` is a bounded single-producer/single-consumer ring. The
producer's ``emit`` never blocks and never touches the disk: it checks the
record at the call site, stamps it with the producer's next sequence number
and appends it to the ring, or, when the ring is full, counts it as dropped.
When a run of drops ends (the ring has room again), the producer puts one gap
marker into the ring ahead of its next record, so the writer writes the
``overrun`` record exactly where the records went missing. A gap that is
still open when the writer looks (a producer that went quiet while its ring
was full) is taken by the writer itself (:meth:`FdrClient._take_gap`).

The ring is a :class:`collections.deque`: under CPython's GIL ``append`` and
``popleft`` are atomic, so one producer thread and the writer thread need no
lock on the fast path. A client registered with ``multi_producer=True`` (the
raw-topic client, fed from several subscription callbacks) takes a lock in
``emit``.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from gps_denied_onboard.fdr.policy import Gap, RecordKindPolicy
from gps_denied_onboard.records import FlightRecord

#: Ring item for an FDR record: (seq, record, flags, offered_ns).
#: Ring item for a raw CDR message: (seq, RawMessage, (), offered_ns).
#: Ring item for a gap marker: (first_seq, Gap, (), offered_ns).
#: ``offered_ns`` is the recorder's monotonic clock when the item entered the ring: the
#: writer sheds what waited longer than its lag bound (``overrun``, reason ``lag``).


class WakeSignal:
    """Wakes the writer thread: ``set()`` from any thread, ``wait(timeout)`` in the writer.

    A :class:`threading.Event` with its clear folded into the wait, on one bare lock
    (held = not signalled): ``wait`` is one C-level ``acquire`` with a timeout, where
    ``Event.wait`` runs a Python ``Condition`` (a fresh lock and several Python
    frames per call). The writer waits 20 times a second at low rates; at 500 KB/s
    that difference is a tenth of its CPU.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        with contextlib.suppress(RuntimeError):  # RuntimeError: already signalled
            self._lock.release()

    def wait(self, timeout: float) -> bool:
        """Sleep until signalled or ``timeout`` s; consumes the signal. True if signalled."""
        return self._lock.acquire(True, timeout)

    def is_set(self) -> bool:
        return not self._lock.locked()


class RawMessage:
    """A ROS message to record as rosbag2 writes it (CDR bytes + ros2msg definition)."""

    __slots__ = ("cdr", "msgdef", "qos", "stamp_ns", "topic", "type_name")

    def __init__(self, topic: str, type_name: str, msgdef: str, cdr: bytes, stamp_ns: int,
                 *, qos: str = ""
    ) -> None:
        self.topic = topic
        self.type_name = type_name
        self.msgdef = msgdef
        self.cdr = cdr
        self.stamp_ns = stamp_ns
        self.qos = qos


class FdrClient:
    """One producer's handle on the recorder; implements ``RecordSink``.

    Attributes:
        producer: the producer slug written into every record and overrun.
        capacity: ring size in records.
    """

    def __init__(
        self,
        producer: str,
        capacity: int,
        policy: RecordKindPolicy,
        *,
        multi_producer: bool = False,
        wake: WakeSignal | None = None,
        wake_depth: int = 256,
        monotonic: Callable[[], int] | None = None,
    ) -> None:
        if not producer:
            raise ValueError("producer slug must not be empty")
        if capacity <= 0:
            raise ValueError("ring capacity must be positive")
        self.producer = producer
        self.capacity = capacity
        self._policy = policy
        self._ring: deque[tuple[int, Any, tuple[str, ...], int]] = deque()
        self._now: Callable[[], int] = monotonic if monotonic is not None else _zero
        self._seq = 0  # next seq == records offered so far
        self._gap: Gap | None = None  # open run of ring-full drops
        self._gap_lock = threading.Lock()
        self._emit_lock = threading.Lock() if multi_producer else None
        self.high_water = 0
        self._wake = wake
        self.wake_depth = wake_depth
        # Writer-thread-only accounting.
        self.written = 0
        self.dropped = 0  # dropped and accounted in an overrun record on disk
        self.pending_loss: Gap | None = None  # lost to storage, overrun not yet written

    # -- producer side -------------------------------------------------------
    @property
    def offered(self) -> int:
        """Records offered so far (emitted, dropped or not)."""
        return self._seq

    @property
    def depth(self) -> int:
        return len(self._ring)

    def emit(self, record: FlightRecord) -> None:
        """Hand ``record`` to the writer; never blocks on the disk.

        Raises:
            RawFrameWriteForbiddenError: raw camera frame kinds (call-site prohibition).
            RecordSchemaError: unknown kind or missing required payload keys.
        """
        flags = self._policy.enforce_or_raise(record)
        if self._emit_lock is None:
            self._offer(record, record.stamp_ns, flags)
        else:
            with self._emit_lock:
                self._offer(record, record.stamp_ns, flags)

    def _emit_raw(self, raw: RawMessage) -> None:
        if self._emit_lock is None:
            self._offer(raw, raw.stamp_ns, ())
        else:
            with self._emit_lock:
                self._offer(raw, raw.stamp_ns, ())

    def _offer(self, item: Any, stamp_ns: int, flags: tuple[str, ...]) -> None:
        seq = self._seq
        self._seq = seq + 1
        ring = self._ring
        depth = len(ring)
        if depth >= self.capacity:
            with self._gap_lock:
                gap = self._gap
                if gap is None:
                    self._gap = Gap(self.producer, 1, stamp_ns, stamp_ns, seq, seq, "ring_full")
                else:
                    gap.add(seq, stamp_ns)
            return
        if self._gap is not None:
            with self._gap_lock:
                gap, self._gap = self._gap, None
            if gap is not None:
                ring.append((gap.first_seq, gap, (), self._now()))
        ring.append((seq, item, flags, self._now()))
        if depth == self.wake_depth and self._wake is not None:
            self._wake.set()  # a batch is waiting: do not let the writer sleep on it
        if depth >= self.high_water:
            self.high_water = depth + 1

    def oldest_offered_ns(self) -> int | None:
        """When the oldest item still in the ring was offered (monotonic), or ``None``."""
        try:
            return self._ring[0][3]
        except IndexError:
            return None

    # -- writer side ---------------------------------------------------------
    def _take_gap(self) -> Gap | None:
        """Take the open run of drops (writer thread, when the ring is empty)."""
        if self._gap is None:
            return None
        with self._gap_lock:
            gap, self._gap = self._gap, None
        return gap


def _zero() -> int:
    return 0
