"""The fdr_recorder lifecycle node over real DDS, run as its installed executable.

A test node in this process drives the recorder's lifecycle services, publishes
FdrRecord messages and a raw topic, opens and closes the flight through the
recorder's services, and the segments are then read back with the operator tool.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from gps_denied_onboard.msg import FdrRecord  # noqa: E402
from gps_denied_onboard.srv import CloseFlight, OpenFlight  # noqa: E402
from lifecycle_driver import LifecycleDriver  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from gps_denied_onboard.fdr import tools  # noqa: E402
from gps_denied_onboard.nodes.bringup import install_prefix  # noqa: E402
from gps_denied_onboard.ros_topics import RECORD_QOS, TOPIC_FDR_RECORDS, ns_to_time_msg  # noqa: E402

# the install under test, wherever its workspace is (.colcon/install, ~/ws/install)
INSTALL_LIB = install_prefix() / "lib" / "gps_denied_onboard"


def _exe(name: str) -> str:
    path = INSTALL_LIB / name
    assert path.exists(), f"{path} missing: run scripts/bootstrap.sh (colcon build) first"
    return str(path)


class Driver(LifecycleDriver):
    """Drives one recorder node; publishes FdrRecord messages to it."""

    def __init__(self, recorder: str) -> None:
        super().__init__(recorder, prefix="fdr_test_driver")
        self.records = self.node.create_publisher(FdrRecord, TOPIC_FDR_RECORDS, RECORD_QOS)
        # made now, like take-off's: discovery matches them both ways while the
        # recorder starts, so a first open is not answered into the void
        self._client(OpenFlight, "open_flight")
        self._client(CloseFlight, "close_flight")


def _start_recorder(
    name: str, flight_root: Path, log: Path, topics: list[str], *, extra: list[str] | None = None
) -> Any:
    params = [
        "--ros-args",
        "-r",
        f"__node:={name}",
        "-p",
        f"flight_root:={flight_root}",
        "-p",
        "free_space_floor_bytes:=0",
        "-p",
        "host_health_period_s:=0.2",
    ]
    if topics:  # an empty list has no type on the command line: keep the default
        params += ["-p", f"record_topics:={json.dumps(topics)}"]
    params += extra or []
    return subprocess.Popen(
        [sys.executable, _exe("fdr_recorder_node"), *params],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _stop(proc: Any) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _record(kind: str, producer: str, payload: dict[str, Any], stamp_ns: int) -> FdrRecord:
    return FdrRecord(
        stamp=ns_to_time_msg(stamp_ns),
        kind=kind,
        producer=producer,
        schema_version="1.1.0",
        payload_json=json.dumps(payload),
    )


def test_node_records_fdr_records_and_raw_topic_refuses_camera_frames(
    ros: None, tmp_path: Path
) -> None:
    name = f"fdr_recorder_{uuid.uuid4().hex[:6]}"
    root = tmp_path / "flights"
    chatter = f"/fdr_test_{uuid.uuid4().hex[:6]}/chatter"
    camera = f"/fdr_test_{uuid.uuid4().hex[:6]}/camera/image_raw"
    log = tmp_path / "recorder.log"
    proc = _start_recorder(
        name, root, log, [f"{chatter}:std_msgs/msg/String", f"{camera}:sensor_msgs/msg/Image"]
    )
    driver = Driver(name)
    try:
        # The flight services exist from the start, before configure (take-off's
        # client has matched them long before it calls); no flight opens before
        # activation.
        for transition in (None, Transition.TRANSITION_CONFIGURE):
            if transition is not None:
                assert driver.transition(transition)
            # A refusal changes nothing, so the request may be sent again: this
            # client is new, and its first answer can be lost before discovery has
            # matched the response path.
            early = driver.call(
                OpenFlight,
                "open_flight",
                OpenFlight.Request(flight_id="early"),
                10.0,
                idempotent=True,
            )
            assert not early.success and early.error_type == "NotActive"
        assert driver.transition(Transition.TRANSITION_ACTIVATE)
        assert driver.state() == "active"

        res = driver.call(OpenFlight, "open_flight", OpenFlight.Request(flight_id="T1"))
        assert res.success, res.error
        assert Path(res.flight_dir) == root / "T1"

        raw_pub = driver.node.create_publisher(String, chatter, 10)
        img_pub = driver.node.create_publisher(Image, camera, 10)
        driver.wait_for_subscribers(driver.records)
        driver.wait_for_subscribers(raw_pub)
        t0 = 1_778_544_000 * 1_000_000_000
        for i in range(50):
            driver.records.publish(
                _record("fc.mode_change", "fc_bridge", {"mode": f"M{i}"}, t0 + i)
            )
            raw_pub.publish(String(data=f"hello {i}"))
            img_pub.publish(Image(height=1, width=1, encoding="mono8", step=1, data=[7]))
        driver.records.publish(_record("no.such_kind", "fc_bridge", {}, t0 + 99))
        driver.spin(1.5)  # let DDS deliver and a host-health tick or two happen

        # A second open while a flight is open is a typed error in the response.
        again = driver.call(OpenFlight, "open_flight", OpenFlight.Request(flight_id="T2"))
        assert not again.success and again.error_type == "FlightAlreadyOpenError"
        wrong = driver.call(CloseFlight, "close_flight", CloseFlight.Request(flight_id="nope"))
        assert not wrong.success and wrong.error_type == "FlightIdMismatchError"

        closed = driver.call(CloseFlight, "close_flight", CloseFlight.Request(flight_id="T1"))
        assert closed.success, closed.error
        assert closed.records_dropped_overrun == 0
        assert closed.records_written >= 100

        assert driver.transition(Transition.TRANSITION_DEACTIVATE)
        assert driver.transition(Transition.TRANSITION_CLEANUP)
    finally:
        driver.close()
        _stop(proc)

    flight = root / "T1"
    modes = [r["payload"]["mode"] for r in tools.iter_records(flight, kinds=["fc.mode_change"])]
    assert modes == [f"M{i}" for i in range(50)]
    raws = [r for r in tools.iter_records(flight, raw=True) if r.get("topic") == chatter]
    assert [r["message"]["data"] for r in raws] == [f"hello {i}" for i in range(50)]
    assert raws[0]["type"] == "std_msgs/msg/String"
    fs = tools.scan_flight(flight)
    assert camera not in fs.raw_topics  # refused: never recorded
    (refusal,) = list(tools.iter_records(flight, kinds=["raw_topic_refused"]))
    assert refusal["payload"]["topic"] == camera
    assert refusal["payload"]["type"] == "sensor_msgs/msg/Image"
    assert "forbidden" in refusal["payload"]["reason"]
    assert fs.kinds["host_health"] >= 1
    assert fs.kinds["no.such_kind"] == 0  # rejected by the schema, counted, not written
    verdict = tools.verify_flight(fs)
    assert verdict.ok, verdict.failures
    text = log.read_text(errors="replace")
    assert "fdr.raw_topic_refused" in text and camera in text
    assert "fdr.record_rejected" in text

    # The raw topic replays from the directory as a rosbag2 bag.
    from rosbags.highlevel import AnyReader

    with AnyReader([flight]) as bag:
        got = [bag.deserialize(raw, c.msgtype).data for c, _, raw in bag.messages()]
    assert got == [f"hello {i}" for i in range(50)]


def test_activate_fails_when_another_writer_holds_the_flight_root(
    ros: None, tmp_path: Path
) -> None:
    root = tmp_path / "flights"
    root.mkdir()
    holder = os.open(root / ".fdr.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the other recorder
    name = f"fdr_recorder_{uuid.uuid4().hex[:6]}"
    log = tmp_path / "recorder.log"
    proc = _start_recorder(name, root, log, [])
    driver = Driver(name)
    try:
        assert driver.transition(Transition.TRANSITION_CONFIGURE)
        assert not driver.transition(Transition.TRANSITION_ACTIVATE)
        assert driver.state() == "inactive"
        res = driver.call(OpenFlight, "open_flight", OpenFlight.Request(flight_id="X"))
        assert not res.success and res.error_type == "NotActive"
        # Once the other writer lets go, activation succeeds.
        os.close(holder)
        holder = -1
        assert driver.transition(Transition.TRANSITION_ACTIVATE)
    finally:
        if holder >= 0:
            os.close(holder)
        driver.close()
        _stop(proc)
    text = log.read_text(errors="replace")
    assert "fdr.open_failed" in text and "locked by another flight recorder" in text


def test_configure_fails_on_a_malformed_record_topic(ros: None, tmp_path: Path) -> None:
    name = f"fdr_recorder_{uuid.uuid4().hex[:6]}"
    proc = _start_recorder(name, tmp_path / "f", tmp_path / "log", ["no-colon-here"])
    driver = Driver(name)
    try:
        assert not driver.transition(Transition.TRANSITION_CONFIGURE)
        assert driver.state() == "unconfigured"
    finally:
        driver.close()
        _stop(proc)


def test_best_effort_publisher_is_recorded_by_adapting_the_subscription(
    ros: None, tmp_path: Path
) -> None:
    """Sensor-data topics (best effort, like /fc/navsat) are recorded too.

    A reliable subscription never matches a best-effort publisher; the recorder
    follows rosbag2's rule and re-subscribes best effort when it sees one.
    """
    from rclpy.qos import qos_profile_sensor_data

    name = f"fdr_recorder_{uuid.uuid4().hex[:6]}"
    root = tmp_path / "flights"
    navsat = f"/fdr_test_{uuid.uuid4().hex[:6]}/navsat"
    log = tmp_path / "recorder.log"
    proc = _start_recorder(name, root, log, [f"{navsat}:std_msgs/msg/String"])
    driver = Driver(name)
    try:
        assert driver.transition(Transition.TRANSITION_CONFIGURE)
        assert driver.transition(Transition.TRANSITION_ACTIVATE)
        res = driver.call(OpenFlight, "open_flight", OpenFlight.Request(flight_id="BE"))
        assert res.success, res.error
        pub = driver.node.create_publisher(String, navsat, qos_profile_sensor_data)
        # matched only once the recorder has switched to best effort
        driver.wait_for_subscribers(pub, timeout_s=20.0)
        for i in range(20):
            pub.publish(String(data=f"fix {i}"))
            driver.spin(0.02)
        driver.spin(1.0)
        closed = driver.call(CloseFlight, "close_flight", CloseFlight.Request(flight_id="BE"))
        assert closed.success, closed.error
    finally:
        driver.close()
        _stop(proc)
    got = [
        r["message"]["data"]
        for r in tools.iter_records(root / "BE", raw=True)
        if r.get("topic") == navsat
    ]
    assert got == [f"fix {i}" for i in range(20)]
    assert "fdr.raw_qos_adapted" in log.read_text()


def test_on_sim_time_no_flight_opens_before_the_first_clock(ros: None, tmp_path: Path) -> None:
    """A recorder on use_sim_time asked to open a flight before any /clock came would
    stamp its header 0 (a replay's header then differed from run to run): it answers
    ClockNotReady and opens nothing, so the same request may come again, and once
    /clock runs the flight opens at that time."""
    import time

    from rosgraph_msgs.msg import Clock

    name = f"fdr_recorder_{uuid.uuid4().hex[:6]}"
    root = tmp_path / "flights"
    proc = _start_recorder(
        name, root, tmp_path / "recorder.log", [], extra=["-p", "use_sim_time:=true"]
    )
    driver = Driver(name)
    clock = driver.node.create_publisher(Clock, "/clock", 10)
    sim_ns = 1_778_580_000 * 1_000_000_000
    try:
        assert driver.transition(Transition.TRANSITION_CONFIGURE)
        assert driver.transition(Transition.TRANSITION_ACTIVATE)
        early = driver.call(OpenFlight, "open_flight", OpenFlight.Request(flight_id="S1"), 10.0)
        assert not early.success and early.error_type == "ClockNotReady", early.error
        assert not (root / "S1").exists()
        end = time.monotonic() + 20.0
        while True:
            clock.publish(Clock(clock=ns_to_time_msg(sim_ns)))
            res = driver.call(OpenFlight, "open_flight", OpenFlight.Request(flight_id="S1"), 10.0)
            if res.success or res.error_type != "ClockNotReady" or time.monotonic() > end:
                break
            time.sleep(0.1)
        assert res.success, res.error
        closed = driver.call(CloseFlight, "close_flight", CloseFlight.Request(flight_id="S1"))
        assert closed.success, closed.error
    finally:
        driver.close()
        _stop(proc)
    (header,) = list(tools.iter_records(root / "S1", kinds=["flight_header"]))
    assert header["payload"]["started_at_ns"] == sim_ns


def test_the_open_flight_is_latched_on_fdr_flight_and_cleared_at_close(
    ros: None, tmp_path: Path
) -> None:
    """``/fdr/flight`` says which flight is open (in-flight snapshots carry it): a node
    that subscribes after the open still hears it, and "" once it is closed."""
    from gps_denied_onboard.ros_topics import LATCHED_QOS, TOPIC_FDR_FLIGHT

    name = f"fdr_recorder_{uuid.uuid4().hex[:6]}"
    root = tmp_path / "flights"
    proc = _start_recorder(name, root, tmp_path / "recorder.log", [])
    driver = Driver(name)
    try:
        assert driver.transition(Transition.TRANSITION_CONFIGURE)
        assert driver.transition(Transition.TRANSITION_ACTIVATE)
        res = driver.call(OpenFlight, "open_flight", OpenFlight.Request(flight_id="LF1"))
        assert res.success, res.error
        heard: list[str] = []
        driver.node.create_subscription(
            String, TOPIC_FDR_FLIGHT, lambda m: heard.append(m.data), LATCHED_QOS
        )
        assert driver.spin_until(lambda: heard == ["LF1"], timeout_s=20.0), heard
        closed = driver.call(CloseFlight, "close_flight", CloseFlight.Request(flight_id="LF1"))
        assert closed.success, closed.error
        assert driver.spin_until(lambda: heard == ["LF1", ""], timeout_s=20.0), heard
    finally:
        driver.close()
        _stop(proc)
