"""Flight records on ``/fdr/records``: the publisher sink every producing node
emits through, its close (the ``records_closed`` tail, acknowledged), and the
``FdrRecord`` <-> :class:`~gps_denied_onboard.records.FlightRecord` translation."""

from __future__ import annotations

import threading
import time
import weakref
from typing import Final

from rclpy.node import Node

from gps_denied_onboard.msg import FdrRecord
from gps_denied_onboard.nodes.ros_clock import RosClock
from gps_denied_onboard.records import RECORDS_CLOSED_KIND, FlightRecord
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


class RecordPublisherSink:
    """A :class:`~gps_denied_onboard.records.RecordSink` that publishes ``FdrRecord``.

    The schema is checked at the call site by the recorder's policy on the
    other side; here the record is only translated. Publishing never blocks
    on the recorder (DDS queues), and the recorder accounts any loss it can see:
    a gap in the publication sequence numbers (DDS numbers a publisher's samples
    1, 2, 3...) is written as an ``overrun`` record with reason ``dds_loss``.

    A tail lost when the node goes down has no later number to reveal it, so
    :meth:`close` (:func:`~gps_denied_onboard.nodes.runner.run_node` calls it when a
    lifecycle node is brought down, and at exit) publishes a ``records_closed`` record
    per producer slug, whose ``published`` is how many records this publisher sent
    before it (its final sequence number) and ``records`` how many under that slug since
    the previous close, and then waits for every reliable subscription to acknowledge
    everything (``wait_for_all_acked``). The recorder counts what it lost before that
    record as ``dds_loss``; a close whose acknowledgement timed out is logged
    (``fdr.records_unacked``). A node brought up again keeps its sink: records emitted
    after a close are covered by the next one.
    """

    def __init__(self, node: Node, topic: str = TOPIC_FDR_RECORDS) -> None:
        self._node = node
        self._pub = node.create_publisher(FdrRecord, topic, RECORD_QOS)
        self._lock = threading.Lock()
        self._published = 0
        self._since_close: dict[str, int] = {}  # producer slug -> records since the last close
        _SINKS.setdefault(node, []).append(self)

    @property
    def unclosed(self) -> bool:
        """Records were emitted since the last :meth:`close`."""
        return bool(self._since_close)

    @property
    def published(self) -> int:
        """Records published so far (the publisher's last publication sequence number)."""
        return self._published

    def subscription_count(self) -> int:
        """How many subscriptions (the recorder, echo tools) are matched."""
        return int(self._pub.get_subscription_count())

    def emit(self, record: FlightRecord) -> None:
        msg = record_to_msg(record)
        with self._lock:
            self._pub.publish(msg)
            self._published += 1
            producer = record.producer
            self._since_close[producer] = self._since_close.get(producer, 0) + 1

    def close(
        self, stamp_ns: int | None = None, timeout_s: float = RECORDS_CLOSE_TIMEOUT_S
    ) -> bool:
        """Publish the ``records_closed`` record(s), then wait for acknowledgement.

        Sends nothing when no record was emitted since the previous close. Returns
        True when every subscription acknowledged everything within ``timeout_s``
        (or there was nothing to send).
        """
        from rclpy.duration import Duration

        stamp = RosClock(self._node).now_ns() if stamp_ns is None else stamp_ns
        node = self._node.get_fully_qualified_name()
        with self._lock:
            counts, self._since_close = self._since_close, {}
            for producer, records in counts.items():
                self._pub.publish(
                    record_to_msg(
                        FlightRecord(
                            RECORDS_CLOSED_KIND,
                            producer,
                            stamp,
                            {"published": self._published, "records": records, "node": node},
                        )
                    )
                )
                self._published += 1
            published = self._published
        if not counts:
            return True
        # rclpy's wait_for_all_acked holds the GIL while it waits (measured: a 3 s wait
        # froze every other thread of the process), and the acknowledgement can take a
        # DDS heartbeat period: so look without waiting, and sleep between looks, so
        # that the node keeps answering (the take-off sequencer reads its state).
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        now_ack = Duration(nanoseconds=0)
        while True:
            acked = bool(self._pub.wait_for_all_acked(now_ack))
            if acked or time.monotonic() >= deadline:
                break
            time.sleep(_ACK_POLL_S)
        waited = time.monotonic() - t0
        line = (
            f"node={node} published={published} "
            f"subscriptions={self.subscription_count()} waited_s={waited:.3f} "
            f"timeout_s={timeout_s} " + " ".join(f"records.{p}={n}" for p, n in counts.items())
        )
        if acked:
            self._node.get_logger().info(f"fdr.records_closed {line}")
        else:  # the recorder may miss the tail: say so where the operator looks
            self._node.get_logger().error(f"fdr.records_unacked {line}")
        return acked


_SINKS: weakref.WeakKeyDictionary[Node, list[RecordPublisherSink]] = weakref.WeakKeyDictionary()


def close_record_sinks(node: Node, timeout_s: float = RECORDS_CLOSE_TIMEOUT_S) -> bool:
    """Close every record publisher created on ``node`` (see :meth:`RecordPublisherSink.close`).

    Returns False if a close was not acknowledged in time; never raises (it runs
    on the way down).
    """
    ok = True
    for sink in list(_SINKS.get(node, ())):
        try:
            ok = sink.close(timeout_s=timeout_s) and ok
        except Exception as err:  # shutting down: log, never raise
            node.get_logger().error(f"fdr.records_close_failed error={err!r}")
            ok = False
    return ok


def has_unclosed_records(node: Node) -> bool:
    """A record publisher on ``node`` emitted records since its last close."""
    return any(sink.unclosed for sink in _SINKS.get(node, ()))
