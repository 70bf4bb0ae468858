"""The recorder node's raw-topic QoS at start, and its Humble callback fallback.

Real DDS: the recorder runs as its installed executable (QoS tests) or in this
process (the fallback test, so the fallback can be forced on Jazzy's rclpy).

"Matched before the first sample" is checked from the publisher's side: a
publisher that meets a subscription with incompatible QoS gets an
``incompatible_qos`` event (rclpy's default handler logs the WARN the issue
counted six of). None may arrive, and every sample from the first is recorded.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from gps_denied_onboard.msg import FdrRecord  # noqa: E402
from gps_denied_onboard.srv import CloseFlight, OpenFlight  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from rclpy.event_handler import PublisherEventCallbacks  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from test_fdr_node import Driver, _record, _start_recorder, _stop  # noqa: E402

from gps_denied_onboard.fdr import tools  # noqa: E402
from gps_denied_onboard.nodes import fdr_recorder_node  # noqa: E402
from gps_denied_onboard.ros_topics import RECORD_QOS, TOPIC_FDR_RECORDS  # noqa: E402

INCOMPATIBLE_WARNING = "incompatible QoS"
SUCCESS = TransitionCallbackReturn.SUCCESS


class CountingPublisher:
    """A sensor-data publisher that counts incompatible-QoS events instead of logging."""

    def __init__(self, driver: Driver, topic: str) -> None:
        self.incompatible = 0
        self.pub = driver.node.create_publisher(
            String,
            topic,
            qos_profile_sensor_data,
            event_callbacks=PublisherEventCallbacks(incompatible_qos=self._on_incompatible),
        )

    def _on_incompatible(self, _event: Any) -> None:
        self.incompatible += 1


def _recorded(flight: Path, topic: str) -> list[str]:
    return [
        r["message"]["data"]
        for r in tools.iter_records(flight, raw=True)
        if r.get("topic") == topic
    ]


def _fly(driver: Driver, flight_id: str, pub: CountingPublisher, n: int) -> None:
    """Open a flight, publish ``n`` samples from the first match, close the flight."""
    res = driver.call(OpenFlight, "open_flight", OpenFlight.Request(flight_id=flight_id))
    assert res.success, res.error
    driver.wait_for_subscribers(pub.pub, timeout_s=20.0)
    for i in range(n):
        pub.pub.publish(String(data=f"fix {i}"))
        driver.spin(0.01)
    driver.spin(1.5)  # past the 1 Hz re-check: a late switch would show as an event
    closed = driver.call(CloseFlight, "close_flight", CloseFlight.Request(flight_id=flight_id))
    assert closed.success, closed.error


def test_override_matches_a_late_best_effort_publisher_before_its_first_sample(
    ros: None, tmp_path: Path
) -> None:
    """The take-off order: recorder active first, the FC bridge's sensor topics later."""
    name = f"fdr_recorder_{uuid.uuid4().hex[:6]}"
    root = tmp_path / "flights"
    navsat = f"/fdr_qos_{uuid.uuid4().hex[:6]}/navsat"
    log = tmp_path / "recorder.log"
    proc = _start_recorder(
        name,
        root,
        log,
        [f"{navsat}:std_msgs/msg/String"],
        extra=["-p", f"raw_qos_overrides:={json.dumps([f'{navsat}:best_effort'])}"],
    )
    driver = Driver(name)
    try:
        assert driver.transition(Transition.TRANSITION_CONFIGURE)
        assert driver.transition(Transition.TRANSITION_ACTIVATE)
        pub = CountingPublisher(driver, navsat)  # appears after the recorder subscribed
        _fly(driver, "OV", pub, 20)
    finally:
        driver.close()
        _stop(proc)
    assert pub.incompatible == 0
    assert _recorded(root / "OV", navsat) == [f"fix {i}" for i in range(20)]
    text = log.read_text(errors="replace")
    assert INCOMPATIBLE_WARNING not in text
    assert "fdr.raw_qos_adapted" not in text  # subscribed right the first time


def test_publishers_present_at_activation_decide_the_qos(ros: None, tmp_path: Path) -> None:
    """No override: the publishers discovered when the recorder subscribes decide."""
    name = f"fdr_recorder_{uuid.uuid4().hex[:6]}"
    root = tmp_path / "flights"
    imu = f"/fdr_qos_{uuid.uuid4().hex[:6]}/imu"
    log = tmp_path / "recorder.log"
    proc = _start_recorder(name, root, log, [f"{imu}:std_msgs/msg/String"])
    driver = Driver(name)
    try:
        pub = CountingPublisher(driver, imu)  # before the recorder exists
        assert driver.transition(Transition.TRANSITION_CONFIGURE)
        # discovery: the recorder must see the publisher before it subscribes
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            infos = driver.node.get_publishers_info_by_topic(imu)
            if infos:
                break
            driver.spin(0.05)
        driver.spin(0.5)
        assert driver.transition(Transition.TRANSITION_ACTIVATE)
        _fly(driver, "PUB", pub, 20)
    finally:
        driver.close()
        _stop(proc)
    assert pub.incompatible == 0
    assert _recorded(root / "PUB", imu) == [f"fix {i}" for i in range(20)]
    assert INCOMPATIBLE_WARNING not in log.read_text(errors="replace")


def test_unconfigured_late_best_effort_topic_adapts_without_a_warning(
    ros: None, tmp_path: Path
) -> None:
    """No override, publisher after activation: the recorder switches on the event.

    The publisher side (another process in flight) sees one incompatible event
    before the switch; the recorder itself logs no WARN about it.
    """
    name = f"fdr_recorder_{uuid.uuid4().hex[:6]}"
    root = tmp_path / "flights"
    alt = f"/fdr_qos_{uuid.uuid4().hex[:6]}/altitude"
    log = tmp_path / "recorder.log"
    proc = _start_recorder(name, root, log, [f"{alt}:std_msgs/msg/String"])
    driver = Driver(name)
    try:
        assert driver.transition(Transition.TRANSITION_CONFIGURE)
        assert driver.transition(Transition.TRANSITION_ACTIVATE)
        pub = CountingPublisher(driver, alt)
        _fly(driver, "AD", pub, 20)
    finally:
        driver.close()
        _stop(proc)
    assert _recorded(root / "AD", alt) == [f"fix {i}" for i in range(20)]
    text = log.read_text(errors="replace")
    assert "fdr.raw_qos_incompatible_publisher" in text
    assert "fdr.raw_qos_adapted" in text
    assert INCOMPATIBLE_WARNING not in text


@contextmanager
def _recorder_in_process(
    tmp_path: Path,
    flight_id: str,
    *,
    message_info: bool = True,
    record_topics: list[str] | None = None,
) -> Iterator[tuple[Any, Any, Any, Any]]:
    """A recorder node in this process (``message_info`` False: Humble's one-argument
    callbacks forced), active with ``flight_id`` open, spun only when the test spins
    it; and a records publisher on a peer node, matched with it. Yields (node,
    executor, publisher, peer); the node is brought down after."""
    params = [
        rclpy.parameter.Parameter("flight_root", value=str(tmp_path / "flights")),
        rclpy.parameter.Parameter("free_space_floor_bytes", value=0),
    ]
    if record_topics:
        params.append(rclpy.parameter.Parameter("record_topics", value=record_topics))
    node = fdr_recorder_node.FdrRecorderNode(
        message_info=message_info,
        node_name=f"fdr_recorder_{uuid.uuid4().hex[:6]}",
        parameter_overrides=params,
    )
    peer = rclpy.create_node(f"fdr_peer_{uuid.uuid4().hex[:6]}")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        assert node.trigger_configure() == SUCCESS
        assert node.trigger_activate() == SUCCESS
        node._recorder.open_flight(flight_id)
        records = peer.create_publisher(FdrRecord, TOPIC_FDR_RECORDS, RECORD_QOS)
        end = time.monotonic() + 20.0
        while records.get_subscription_count() == 0 and time.monotonic() < end:
            time.sleep(0.05)
        executor.spin_once(timeout_sec=0.2)  # discovery events, if any
        yield node, executor, records, peer
        assert node.trigger_deactivate() == SUCCESS
        assert node.trigger_cleanup() == SUCCESS
    finally:
        executor.shutdown()
        peer.destroy_node()
        node.destroy_node()


def test_humble_fallback_one_argument_callbacks_record_everything(
    ros: None, tmp_path: Path
) -> None:
    """Humble's rclpy calls subscription callbacks with the message alone.

    The node is built in this process with the fallback forced; rclpy (Jazzy here)
    then sees one-argument callbacks, exactly what Humble would call.
    """
    from rclpy.subscription import Subscription

    root = tmp_path / "flights"
    chatter = f"/fdr_hb_{uuid.uuid4().hex[:6]}/chatter"
    topics = [f"{chatter}:std_msgs/msg/String"]
    with _recorder_in_process(tmp_path, "HB", message_info=False, record_topics=topics) as (
        node,
        executor,
        records,
        peer,
    ):

        def spin(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.01)

        for sub in [node._records_sub, *node._raw_subs.subscriptions()]:
            assert sub._callback_type == Subscription.CallbackType.MessageOnly
        raw = peer.create_publisher(String, chatter, 10)
        end = time.monotonic() + 20.0
        while raw.get_subscription_count() == 0 and time.monotonic() < end:
            spin(0.05)
        t0 = 1_778_544_000 * 1_000_000_000
        for i in range(30):
            records.publish(_record("fc.mode_change", "fc_bridge", {"mode": f"M{i}"}, t0 + i))
            raw.publish(String(data=f"hello {i}"))
            spin(0.005)
        spin(1.0)
        node._recorder.close_flight("HB")
    flight = root / "HB"
    modes = [r["payload"]["mode"] for r in tools.iter_records(flight, kinds=["fc.mode_change"])]
    assert modes == [f"M{i}" for i in range(30)]
    raws = [r for r in tools.iter_records(flight, raw=True) if r.get("topic") == chatter]
    assert [r["message"]["data"] for r in raws] == [f"hello {i}" for i in range(30)]


def test_records_callback_drains_every_queued_sample_in_one_executor_turn(
    ros: None, tmp_path: Path
) -> None:
    """The /fdr/records callback takes what DDS holds, not one message per wait-set cycle.

    300 records wait in the recorder's reader; a handful of executor turns (timers may
    take some) must hand all of them to the recorder. One message per turn, as rclpy's
    executor alone does, would take 300 turns: that capped the node near 2k records/s.
    """
    with _recorder_in_process(tmp_path, "DR") as (node, executor, records, _peer):
        t0 = 1_778_544_000 * 1_000_000_000
        for i in range(300):
            records.publish(_record("fc.mode_change", "drain_p", {"mode": f"M{i}"}, t0 + i))
        time.sleep(1.0)  # delivered into the reader's queue, the node not spinning
        turns = 0
        while turns < 5:
            executor.spin_once(timeout_sec=0.5)
            turns += 1
            client = node._intake.client("drain_p")
            if client is not None and client.offered == 300:
                break
        client = node._intake.client("drain_p")
        assert client is not None and client.offered == 300, (
            f"{0 if client is None else client.offered} of 300 taken in {turns} turns"
        )
        node._recorder.close_flight("DR")
    modes = [
        r["payload"]["mode"]
        for r in tools.iter_records(tmp_path / "flights" / "DR", kinds=["fc.mode_change"])
    ]
    assert modes == [f"M{i}" for i in range(300)]


def test_close_flight_writes_the_records_delivered_before_it_ahead_of_the_footer(
    ros: None, tmp_path: Path
) -> None:
    """A producer's tail acknowledged by the recorder's reader before take-off asks for
    the close is in the flight, even if the records callback had no turn in between:
    the close takes what DDS holds first, then writes the footer."""
    with _recorder_in_process(tmp_path, "CL") as (node, _executor, records, _peer):
        t0 = 1_778_544_000 * 1_000_000_000
        for i in range(50):
            records.publish(_record("fc.mode_change", "close_p", {"mode": f"M{i}"}, t0 + i))
        # in the recorder's reader: acknowledged, the node not spinning
        assert records.wait_for_all_acked(rclpy.duration.Duration(seconds=10))
        res = node._on_close_flight(CloseFlight.Request(flight_id="CL"), CloseFlight.Response())
        assert res.success, res.error
    flight = tmp_path / "flights" / "CL"
    kinds = [r["kind"] for r in tools.iter_records(flight)]
    modes = [r["payload"]["mode"] for r in tools.iter_records(flight, kinds=["fc.mode_change"])]
    assert modes == [f"M{i}" for i in range(50)]
    assert kinds[-1] == "flight_footer"
