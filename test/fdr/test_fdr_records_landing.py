"""A node brought down answers its ``cleanup`` once its records are out.

The take-off sequencer closes the flight right after its last cleanup was answered.
A node's record publisher holds what it emitted until it matches the recorder
(``nodes.record_sink``), and on a loaded machine discovery can take longer than a
short flight: a take-off lost ``fc.link_up`` that way, the fc_bridge's tail going
out after the footer. So a transition through ``change_state`` that brings a node
down is answered only after its ``records_closed`` tail reached the subscription,
waiting for a late one while the sequencer (``takeoff``) is on the graph; a
standalone node does not wait for a recorder that is not there.

Real DDS, in this process: the node is guarded as ``run_node`` guards it
(:func:`~gps_denied_onboard.nodes.runner.guard_transitions`) and driven through
its ``change_state`` service; the "recorder" is a bare subscription read by
``take`` without spinning, so what it holds when the answer comes is exactly what
DDS had delivered by then.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from gps_denied_onboard.msg import FdrRecord  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import State, TransitionCallbackReturn  # noqa: E402

from gps_denied_onboard.nodes.lifecycle_guard import LifecycleNodeBase  # noqa: E402
from gps_denied_onboard.nodes.record_sink import (  # noqa: E402
    RecordPublisherSink,
    msg_to_record,
)
from gps_denied_onboard.nodes.runner import MANAGER, guard_transitions  # noqa: E402
from gps_denied_onboard.records import RECORDS_CLOSED_KIND, FlightRecord  # noqa: E402
from gps_denied_onboard.ros_spin import BackgroundSpin  # noqa: E402
from gps_denied_onboard.ros_topics import RECORD_QOS  # noqa: E402

T0 = 1_778_544_000 * 1_000_000_000
#: how late the subscription comes after the cleanup was asked for
LATE_S = 1.0


class _Producer(LifecycleNodeBase):
    """A lifecycle node that emits records on ``topic`` while configured."""

    def __init__(self, topic: str) -> None:
        super().__init__(f"landing_producer_{uuid.uuid4().hex[:6]}")
        self.sink = RecordPublisherSink(self, topic=topic)

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        for i in range(5):
            self.sink.emit(FlightRecord("fc.mode_change", "landing_p", T0 + i, {"mode": f"M{i}"}))
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        return TransitionCallbackReturn.SUCCESS


def _taken(sub: Any) -> list[FlightRecord]:
    out = []
    while (got := sub.handle.take_message(FdrRecord, False)) is not None:
        out.append(msg_to_record(got[0]))
    return out


def _cleanup_with_a_late_subscription(
    managed: bool,
) -> tuple[bool, float, float | None, list[FlightRecord], _Producer]:
    """Configure (records held: nothing subscribed), ask for cleanup, subscribe
    ``LATE_S`` later. Returns (answered success, seconds to the answer, seconds to the
    subscription or None if the answer came first, what the subscription held at the
    answer, the producer)."""
    topic = f"/fdr_landing_{uuid.uuid4().hex[:6]}/records"
    producer = _Producer(topic)
    guard_transitions(producer)
    manager = rclpy.create_node(MANAGER) if managed else None
    driver = rclpy.create_node(f"landing_driver_{uuid.uuid4().hex[:6]}")
    recorder = rclpy.create_node(f"landing_recorder_{uuid.uuid4().hex[:6]}")  # never spun
    executor = MultiThreadedExecutor()  # as run_node spins it
    executor.add_node(producer)
    spun = BackgroundSpin(executor, "landing-producer")
    spun.start()
    sub = None
    try:
        client = driver.create_client(ChangeState, f"/{producer.get_name()}/change_state")
        assert client.wait_for_service(timeout_sec=20.0)
        if managed:  # the producer sees the sequencer, as a node under take-off does
            end = time.monotonic() + 20.0
            while MANAGER not in producer.get_node_names() and time.monotonic() < end:
                time.sleep(0.05)
            assert MANAGER in producer.get_node_names()
        configure = client.call_async(ChangeState.Request(transition=Transition(id=1)))
        rclpy.spin_until_future_complete(driver, configure, timeout_sec=20.0)
        assert configure.result() is not None and configure.result().success
        assert producer.sink.held == 5
        t0 = time.monotonic()
        cleanup = client.call_async(ChangeState.Request(transition=Transition(id=2)))
        subscribed_at: float | None = None
        while not cleanup.done() and time.monotonic() - t0 < 20.0:
            if sub is None and time.monotonic() - t0 >= LATE_S:
                sub = recorder.create_subscription(FdrRecord, topic, lambda _m: None, RECORD_QOS)
                subscribed_at = time.monotonic() - t0
            rclpy.spin_once(driver, timeout_sec=0.02)
        answered_at = time.monotonic() - t0
        assert cleanup.done(), "cleanup never answered"
        held = _taken(sub) if sub is not None else []
        return cleanup.result().success, answered_at, subscribed_at, held, producer
    finally:
        spun.stop()
        driver.destroy_node()
        recorder.destroy_node()
        if manager is not None:
            manager.destroy_node()
        producer.destroy_node()


def test_under_takeoff_a_cleanup_is_answered_after_the_held_tail_reached_a_late_recorder(
    ros: None,
) -> None:
    ok, answered_at, subscribed_at, held, producer = _cleanup_with_a_late_subscription(True)
    assert ok
    assert subscribed_at is not None and answered_at > subscribed_at, (
        f"answered at {answered_at:.2f} s, before the subscription ({subscribed_at})"
    )
    # everything the node emitted, then its closing record, already in the reader
    assert [r.kind for r in held] == ["fc.mode_change"] * 5 + [RECORDS_CLOSED_KIND]
    assert [r.stamp_ns for r in held[:5]] == [T0 + i for i in range(5)]
    assert held[-1].payload["records"] == 5
    assert producer.sink.held == 0


def test_a_standalone_cleanup_does_not_wait_for_a_recorder_that_is_not_there(
    ros: None,
) -> None:
    ok, answered_at, subscribed_at, held, producer = _cleanup_with_a_late_subscription(False)
    assert ok
    assert subscribed_at is None, f"waited {answered_at:.2f} s with nobody subscribed"
    assert held == []
    # still held, closing record included: a later match takes them
    assert producer.sink.held == 6
