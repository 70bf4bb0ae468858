"""The executor the visual estimator's node spins on: the events executor where rclpy
has one (Jazzy), the single-threaded one where it has not (Humble), and either
runs a lifecycle node on simulated time as the node needs."""

from __future__ import annotations

import sys
import threading
import time
import uuid

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time as TimeMsg  # noqa: E402
from lifecycle_msgs.srv import GetState  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.lifecycle import Node as LifecycleNode  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402

from gps_denied_onboard.nodes.executors import (  # noqa: E402
    EVENTS_EXECUTOR_MODULE,
    lean_executor,
)
from gps_denied_onboard.ros_spin import BackgroundSpin  # noqa: E402


def test_lean_executor_falls_back_to_single_threaded_where_rclpy_has_no_events_executor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rclpy.init()
    try:
        # Humble: no rclpy.experimental at all (None in sys.modules makes the import fail)
        monkeypatch.setitem(sys.modules, EVENTS_EXECUTOR_MODULE, None)
        executor = lean_executor()
        assert type(executor) is SingleThreadedExecutor
        executor.shutdown()
    finally:
        rclpy.shutdown()


def test_lean_executor_is_the_events_executor_where_rclpy_has_one() -> None:
    pytest.importorskip(EVENTS_EXECUTOR_MODULE)
    rclpy.init()
    try:
        executor = lean_executor()
        # rclpy.experimental.EventsExecutor is a factory of the C++ class of that name
        assert type(executor).__name__ == "EventsExecutor"
        executor.shutdown()
    finally:
        rclpy.shutdown()


def test_lean_executor_runs_sim_time_timers_and_lifecycle_services() -> None:
    rclpy.init()
    name = f"lean_{uuid.uuid4().hex[:8]}"
    node = LifecycleNode(name, parameter_overrides=[Parameter("use_sim_time", value=True)])
    ticks: list[int] = []
    node.create_timer(0.5, lambda: ticks.append(node.get_clock().now().nanoseconds))
    executor = lean_executor()
    executor.add_node(node)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    peer = rclpy.create_node(f"{name}_peer")
    clock = peer.create_publisher(Clock, "/clock", 10)
    client = peer.create_client(GetState, f"/{name}/get_state")
    try:
        assert client.wait_for_service(timeout_sec=10.0)
        deadline = time.monotonic() + 10.0
        while clock.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        for tenth in range(1, 31):  # /clock from 0.1 s to 3.0 s of simulated time
            clock.publish(Clock(clock=TimeMsg(sec=tenth // 10, nanosec=(tenth % 10) * 10**8)))
            time.sleep(0.02)
        deadline = time.monotonic() + 10.0
        while len(ticks) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        # a 0.5 s timer on simulated time fires at each half second of /clock, and no more
        assert ticks[:6] == [k * 500_000_000 for k in range(1, 7)]
        future = client.call_async(GetState.Request())
        rclpy.spin_until_future_complete(peer, future, timeout_sec=10.0)
        assert future.result() is not None
        assert future.result().current_state.label == "unconfigured"
    finally:
        stop.set()
        spinner.join(5.0)
        executor.shutdown()
        node.destroy_node()
        peer.destroy_node()
        rclpy.shutdown()
    assert not spinner.is_alive()


def test_background_spin_stops_after_the_callback_in_flight_and_before_the_shutdown() -> None:
    """``stop`` while a callback runs: it waits for that callback, the spinning
    thread is gone, the executor is shut down, and no exception left any thread
    (Jazzy's ``Executor.shutdown`` destroys its guard condition without waiting, and
    a handler triggering it afterwards raised InvalidHandle out of ``spin``)."""
    rclpy.init()
    node = rclpy.create_node(f"spin_{uuid.uuid4().hex[:8]}")
    entered, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow() -> None:
        calls.append("begin")
        entered.set()
        release.wait(5.0)
        calls.append("end")

    node.create_timer(0.01, slow)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    escaped: list[BaseException | None] = []
    hook = threading.excepthook
    threading.excepthook = lambda args: escaped.append(args.exc_value)
    try:
        spin = BackgroundSpin(executor, "test-spin")
        spin.start()
        assert entered.wait(5.0)
        threading.Timer(0.3, release.set).start()
        assert spin.stop(timeout_s=5.0)  # the thread ended within the wait
        assert calls[-1] == "end"  # after the callback in flight, not during it
        ended = len(calls)
        time.sleep(0.1)
        assert len(calls) == ended  # nothing spins any more
        assert spin.stop(timeout_s=0.1)  # a second stop is harmless
    finally:
        threading.excepthook = hook
        release.set()
        node.destroy_node()
        rclpy.shutdown()
    assert escaped == []
