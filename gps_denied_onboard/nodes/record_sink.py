"""Flight records on ``/fdr/records``: the publisher sink every producing node
emits through (holding what is emitted before a subscription matched), its close
(the ``records_closed`` tail, acknowledged), and the
``FdrRecord`` <-> :class:`~gps_denied_onboard.records.FlightRecord` translation."""

from __future__ import annotations

import threading
import time
import weakref
from typing import Final

from rclpy.node import Node

from gps_denied_onboard.msg import FdrRecord
from gps_denied_onboard.nodes.ros_clock import RosClock
from gps_denied_onboard.record_gate import HOLD_LIMIT, RecordGate
from gps_denied_onboard.records import FlightRecord
from gps_denied_onboard.ros_topics import (
    RECORD_QOS,
    TOPIC_FDR_RECORDS,
    ns_to_time_msg,
    time_msg_to_ns,
)


def record_to_msg(record: FlightRecord) -> FdrRecord:
    return FdrRecord(
        stamp=ns_to_time_msg(record.stamp_ns),
        kind=record.kind,
        producer=record.producer,
        schema_version=record.schema_version,
        payload_json=record.payload_json(),
    )


def msg_to_record(msg: FdrRecord) -> FlightRecord:
    return FlightRecord.from_json_payload(
        msg.kind, msg.producer, time_msg_to_ns(msg.stamp), msg.payload_json, msg.schema_version
    )


#: How long a closing record publisher waits for the recorder to acknowledge its records.
#: Acknowledgements come with the writer's periodic heartbeat (Fast DDS: every 3 s; a
#: node's exit waited 2.8 s for it over real DDS here), so less than that is not enough;
#: and under ``ros2 launch`` a node must be gone within its 5 s ``sigterm_timeout``.
RECORDS_CLOSE_TIMEOUT_S: Final = 4.0
#: How often a closing record publisher looks for the acknowledgement.
_ACK_POLL_S: Final = 0.02
#: How often a record publisher holding records looks for a matched subscription.
MATCH_POLL_S: Final = 0.1


class RecordPublisherSink:
    """A :class:`~gps_denied_onboard.records.RecordSink` that publishes ``FdrRecord``.

    The schema is checked at the call site by the recorder's policy on the
    other side; here the record is only translated. Publishing never blocks
    on the recorder (DDS queues), and the recorder accounts any loss it can see:
    a gap in the publication sequence numbers (DDS numbers a publisher's samples
    1, 2, 3...) is written as an ``overrun`` record with reason ``dds_loss``.

    Nothing is published to nobody: DDS gives a sample only to the subscriptions
    matched when it is written, and a node's first records (on configure, ``fc.link_up``)
    often come before discovery has matched the recorder. While no subscription is
    matched, records are held (:class:`~gps_denied_onboard.record_gate.RecordGate`: in
    order, at most ``hold_limit``, the oldest dropped and reported as an ``overrun``
    with reason ``unmatched``) and go out with their own stamps, before anything newer,
    once one is: seen at the next emit, or by a steady-clock timer on the node every
    :data:`MATCH_POLL_S`. The first matched subscription takes them, whoever it is; if
    that is an echo tool rather than the recorder, the recorder finds the publisher's
    first number above 1 and counts the head as ``dds_loss``.

    A tail lost when the node goes down has no later number to reveal it, so
    :meth:`close` (:func:`~gps_denied_onboard.nodes.runner.run_node` calls it when a
    lifecycle node is brought down, and at exit) publishes a ``records_closed`` record
    per producer slug, whose ``published`` is how many records this publisher sent
    before it (its final sequence number) and ``records`` how many under that slug left
    it (published, or dropped from the hold) since the previous one, and then waits for
    every reliable subscription to acknowledge everything (``wait_for_all_acked``). The
    recorder counts what it lost before that record as ``dds_loss``; a close whose
    acknowledgement timed out is logged (``fdr.records_unacked``), and one that leaves
    records held because nothing ever matched (``fdr.records_unmatched``) too. A node
    brought up again keeps its sink: records emitted after a close are covered by the
    next one.
    """

    def __init__(
        self, node: Node, topic: str = TOPIC_FDR_RECORDS, hold_limit: int = HOLD_LIMIT
    ) -> None:
        from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
        from rclpy.clock import Clock, ClockType

        self._node = node
        self._topic = topic
        self._pub = node.create_publisher(FdrRecord, topic, RECORD_QOS)
        self._lock = threading.Lock()
        self._gate = RecordGate(hold_limit)
        self._drop_logged = False
        # steady: a paused (or not yet started) /clock must not keep records held
        self._match_timer = node.create_timer(
            MATCH_POLL_S,
            self.flush_if_matched,
            callback_group=MutuallyExclusiveCallbackGroup(),
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        _SINKS.setdefault(node, []).append(self)
        _CLOSE_LOCKS.setdefault(node, threading.Lock())  # made with the node's first sink

    @property
    def unclosed(self) -> bool:
        """Records were emitted since the last :meth:`close`."""
        return self._gate.unclosed

    @property
    def published(self) -> int:
        """Records published so far (the publisher's last publication sequence number)."""
        return self._gate.published

    @property
    def held(self) -> int:
        """Records waiting for a subscription to match."""
        return self._gate.held

    @property
    def dropped_unmatched(self) -> int:
        """Records dropped from the hold so far (reported as ``overrun``, ``unmatched``)."""
        return self._gate.dropped_total

    def subscription_count(self) -> int:
        """How many subscriptions (the recorder, echo tools) are matched."""
        return int(self._pub.get_subscription_count())

    def emit(self, record: FlightRecord) -> None:
        with self._lock:
            self._publish(self._gate.emit(record, self._pub.get_subscription_count() > 0))
            if self._gate.dropped_total and not self._drop_logged:
                self._drop_logged = True
                self._node.get_logger().warning(
                    f"fdr.records_held_dropped limit={self._gate.limit} "
                    "no subscription matched: dropping the oldest held records "
                    "(reported as overrun reason=unmatched when one matches)"
                )

    def flush_if_matched(self) -> None:
        """Publish what is held if a subscription has matched (the timer's look)."""
        if not self._gate.held:
            return
        with self._lock:
            if self._gate.held and self._pub.get_subscription_count() > 0:
                self._publish(self._gate.release())

    def _publish(self, records: list[FlightRecord]) -> None:
        for record in records:
            self._pub.publish(record_to_msg(record))

    def close(
        self,
        stamp_ns: int | None = None,
        timeout_s: float = RECORDS_CLOSE_TIMEOUT_S,
        *,
        expect_subscriber: bool = False,
    ) -> bool:
        """Publish the ``records_closed`` record(s), then wait for acknowledgement.

        Sends nothing when no record was emitted since the previous close. While
        records are held, waits (within ``timeout_s``) for a subscription to match and
        publishes them, unless no subscription to the topic is known at all and
        ``expect_subscriber`` is false (a standalone node is not held up by a recorder
        that is not there). Returns True when every record reached every subscription
        within ``timeout_s`` (or there was nothing to send).
        """
        stamp = RosClock(self._node).now_ns() if stamp_ns is None else stamp_ns
        node = self._node.get_fully_qualified_name()
        with self._lock:
            counts = self._gate.emitted()
            self._publish(self._gate.close(stamp, node, self._pub.get_subscription_count() > 0))
        if not counts and not self._gate.held:
            return True
        acked, held, waited = self._wait_out(timeout_s, expect_subscriber)
        line = (
            f"node={node} published={self._gate.published} "
            f"subscriptions={self.subscription_count()} held={held} "
            f"dropped_unmatched={self._gate.dropped_total} waited_s={waited:.3f} "
            f"timeout_s={timeout_s} " + " ".join(f"records.{p}={n}" for p, n in counts.items())
        )
        if held:  # never matched: these reached nobody (yet)
            self._node.get_logger().error(f"fdr.records_unmatched {line}")
        elif acked:
            self._node.get_logger().info(f"fdr.records_closed {line}")
        else:  # the recorder may miss the tail: say so where the operator looks
            self._node.get_logger().error(f"fdr.records_unacked {line}")
        return acked  # only ever true with nothing held (the loop's first branch)

    def flush(self, timeout_s: float, *, expect_subscriber: bool = False) -> bool:
        """Wait (within ``timeout_s``) until what was emitted so far has reached every
        matched subscription: held records go out once one matches (waited for as
        :meth:`close` does), then their acknowledgement. True when acknowledged."""
        acked, _held, _waited = self._wait_out(timeout_s, expect_subscriber)
        return acked

    def _wait_out(self, timeout_s: float, expect_subscriber: bool) -> tuple[bool, int, float]:
        """Release what is held once a subscription matches, then wait for every
        reliable subscription to acknowledge everything. Returns (acknowledged,
        records still held, seconds waited)."""
        from rclpy.duration import Duration

        # rclpy's wait_for_all_acked holds the GIL while it waits (measured: a 3 s wait
        # froze every other thread of the process), and the acknowledgement can take a
        # DDS heartbeat period: so look without waiting, and sleep between looks, so
        # that the node keeps answering (the take-off sequencer reads its state).
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        now_ack = Duration(nanoseconds=0)
        acked = False
        while True:
            self.flush_if_matched()
            held = self._gate.held
            if not held:
                acked = bool(self._pub.wait_for_all_acked(now_ack))
                if acked:
                    break
            elif not expect_subscriber and self._node.count_subscribers(self._topic) == 0:
                break  # nobody to wait for: no subscription on the graph at all
            if time.monotonic() >= deadline:
                break
            time.sleep(_ACK_POLL_S)
        return acked, held, time.monotonic() - t0


_SINKS: weakref.WeakKeyDictionary[Node, list[RecordPublisherSink]] = weakref.WeakKeyDictionary()
_CLOSE_LOCKS: weakref.WeakKeyDictionary[Node, threading.Lock] = weakref.WeakKeyDictionary()


def close_record_sinks(
    node: Node, timeout_s: float = RECORDS_CLOSE_TIMEOUT_S, *, expect_subscriber: bool = False
) -> bool:
    """Close every record publisher created on ``node`` (see :meth:`RecordPublisherSink.close`).

    One close at a time per node: a second caller (the runner's closer thread and a
    cleanup being answered, say) waits for the first, then finds nothing left to close
    unless records are still held (which it then waits out in turn). Returns False if
    a close was not acknowledged in time; never raises (it runs on the way down).
    """
    lock = _CLOSE_LOCKS.get(node)
    if lock is None:
        return True  # no record publisher on this node
    with lock:
        ok = True
        for sink in list(_SINKS.get(node, ())):
            try:
                ok = sink.close(timeout_s=timeout_s, expect_subscriber=expect_subscriber) and ok
            except Exception as err:  # shutting down: log, never raise
                node.get_logger().error(f"fdr.records_close_failed error={err!r}")
                ok = False
        return ok


def has_held_records(node: Node) -> bool:
    """A record publisher on ``node`` holds records no subscription has matched yet."""
    return any(sink.held for sink in _SINKS.get(node, ()))


def has_unclosed_records(node: Node) -> bool:
    """A record publisher on ``node`` emitted records since its last close."""
    return any(sink.unclosed for sink in _SINKS.get(node, ()))
