"""A link reader thread that a deactivate left behind publishes, records and logs
nothing after it.

``FcLink.close`` waits a bounded time for its reader thread; one that does not stop in
time is left behind (``fc.link_thread_stuck``) and goes on when whatever held it lets
go: it dispatches what it had read to the node's handlers, which publish telemetry, and to
the link, which records and logs what changed (``fc.link_up``, ``fc.mode_change``).
The deactivate must not wait for it, and nothing it does may go out after the
deactivate returned, neither while the node is inactive nor once it was activated
again with a new link.

The reader is held where a real one stalls: in its transport's read, with the bytes
read (the transport is wrapped as ``open_transport`` makes it), or between a handler's
active check and its publish (in the attitude conversion, on the reader thread). The
message held is the only one the simulated FC ever sent with its value (a latitude,
a yaw, a flight mode), so the probe can tell it from every other one.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

rclpy = pytest.importorskip("rclpy")

from gps_denied_onboard.msg import FdrRecord  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Imu, NavSatFix  # noqa: E402

from gps_denied_onboard.fc_bridge import telemetry as tm  # noqa: E402
from gps_denied_onboard.fc_bridge.autopilot import mode_name  # noqa: E402
from gps_denied_onboard.fc_bridge.config import Endpoint  # noqa: E402
from gps_denied_onboard.fc_bridge.link import mavlink2  # noqa: E402
from gps_denied_onboard.fc_bridge.sim_fc import SimFc  # noqa: E402
from gps_denied_onboard.fc_bridge.transport import Transport, open_transport  # noqa: E402
from gps_denied_onboard.nodes.fc_bridge_node import FcBridgeNode  # noqa: E402
from gps_denied_onboard.ros_topics import (  # noqa: E402
    RECORD_QOS,
    TOPIC_FC_IMU,
    TOPIC_FC_NAVSAT,
    TOPIC_FDR_RECORDS,
)

from .link_support import PassThroughTransport, wait_until  # noqa: E402
from .node_support import make_node, spin_ros  # noqa: E402

pytestmark = pytest.mark.ros

#: the most a held reader waits for the test to let it go (it is let go once the node
#: was deactivated; waiting this long means the deactivate waited for it)
HOLD_S = 15.0
#: the spell a stray message would be heard in, once the held reader has finished
DELIVERY_SPELL_S = 0.5
#: values the simulated FC sends exactly once, in the message held
HELD_LAT_DEG = -33.8688
HELD_YAW_RAD = 1.2345
HELD_MODE = "LOITER"


class Hold:
    """One reader-thread hold: set ``armed``; the first call that qualifies stops
    (``held`` set, ``thread`` noted) until ``release``."""

    def __init__(self) -> None:
        self.armed = threading.Event()
        self.held = threading.Event()
        self.release = threading.Event()
        self.thread: threading.Thread | None = None
        self.held_too_long = False

    def stop_here(self) -> None:
        self.armed.clear()
        self.thread = threading.current_thread()
        self.held.set()
        self.held_too_long |= not self.release.wait(HOLD_S)

    def finished(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()


def held_gps_raw_int(msg: Any) -> bool:
    return bool(msg.get_type() == "GPS_RAW_INT" and msg.lat == round(HELD_LAT_DEG * 1e7))


def held_heartbeat(msg: Any) -> bool:
    return bool(msg.get_type() == "HEARTBEAT" and mode_name(msg) == HELD_MODE)


class HeldReadTransport(PassThroughTransport):
    """A link's real transport whose read, once armed, stops with the bytes read when
    they hold a message that ``held`` picks (a GPS_RAW_INT at ``HELD_LAT_DEG``)."""

    def __init__(
        self, real: Transport, hold: Hold, held: Callable[[Any], bool] = held_gps_raw_int
    ) -> None:
        super().__init__(real)
        self._hold = hold
        self._held = held
        self._parser = mavlink2.MAVLink(None)
        self._parser.robust_parsing = True

    def read(self) -> bytes:
        data = super().read()
        if self._hold.armed.is_set() and any(
            self._held(m) for m in self._parser.parse_buffer(data) or ()
        ):
            self._hold.stop_here()
        return data


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    yield from spin_ros()


@pytest.fixture
def fc() -> Iterator[SimFc]:
    sim = SimFc("ardupilot", heartbeat_hz=5.0).start()
    yield sim
    sim.stop()


@pytest.fixture
def hold() -> Iterator[Hold]:
    made = Hold()
    yield made
    made.release.set()


class Probe:
    """Hears the node's NavSatFix, Imu, flight records and log lines (``/rosout``)."""

    def __init__(self) -> None:
        self.node = Node("fc_stuck_probe")
        self.navsat: list[NavSatFix] = []
        self.imu: list[Imu] = []
        self.records: list[FdrRecord] = []
        self.lines: list[str] = []  # the fc_bridge node's, in /rosout
        self.node.create_subscription(
            NavSatFix, TOPIC_FC_NAVSAT, self.navsat.append, qos_profile_sensor_data
        )
        self.node.create_subscription(Imu, TOPIC_FC_IMU, self.imu.append, qos_profile_sensor_data)
        self.node.create_subscription(FdrRecord, TOPIC_FDR_RECORDS, self.records.append, RECORD_QOS)
        rosout = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(Log, "/rosout", self._on_log, rosout)

    def _on_log(self, msg: Log) -> None:
        if msg.name == "fc_bridge":
            self.lines.append(msg.msg)


@pytest.fixture
def up(ros: MultiThreadedExecutor, fc: SimFc) -> Iterator[tuple[FcBridgeNode, Probe]]:
    """The node (configured, not active) against ``fc``, and a probe, both spinning."""
    node = make_node(fc.connection)
    probe = Probe()
    ros.add_node(node)
    ros.add_node(probe.node)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    yield node, probe
    ros.remove_node(node)
    ros.remove_node(probe.node)
    node.shutdown()
    node.destroy_node()
    probe.node.destroy_node()


def send_once(fc: SimFc, name: str, **state: Any) -> None:
    """``name`` sent once with ``state``, the FC's telemetry paused meanwhile (so no other
    message carries it); the state is put back and telemetry resumed by the caller."""
    fc.pause_heartbeats(telemetry_too=True)
    fc.update(**state)
    fc.send_message(fc.heartbeat() if name == "HEARTBEAT" else fc.build(name))


def deactivate_while_held(
    node: FcBridgeNode,
    fc: SimFc,
    hold: Hold,
    caplog: pytest.LogCaptureFixture,
    heard: Callable[[], bool],
    name: str,
    held: dict[str, Any],
    after: dict[str, Any],
) -> None:
    """Activate, wait until the probe ``heard`` the node, hold the reader on ``name``
    sent once with ``held``, put the FC back to ``after``, then deactivate: the
    deactivate returns without the held reader and says so (``fc.link_thread_stuck``)."""
    caplog.set_level(logging.ERROR)
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert wait_until(heard, 10.0)  # the probe hears the node
    hold.armed.set()
    send_once(fc, name, **held)
    assert hold.held.wait(5.0)
    fc.update(**after)
    fc.resume_heartbeats()
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert hold.thread is not None and hold.thread.is_alive()  # returned without it
    assert "fc.link_thread_stuck" in caplog.text


def test_a_reader_stuck_in_a_read_publishes_nothing_once_the_node_was_deactivated(
    up: tuple[FcBridgeNode, Probe],
    fc: SimFc,
    hold: Hold,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The reader has read a GPS_RAW_INT and stalls before dispatching it; the node is
    deactivated (without waiting for it) and activated again with a new link; then the
    old reader goes on: its GPS_RAW_INT is not published (as it would have been, the
    node being active again)."""
    node, probe = up

    def open_held(ep: Endpoint) -> Transport:
        return HeldReadTransport(open_transport(ep), hold)

    # what FcLink opens (and reopens) its transport with
    monkeypatch.setattr("gps_denied_onboard.fc_bridge.link.open_transport", open_held)
    deactivate_while_held(
        node,
        fc,
        hold,
        caplog,
        lambda: len(probe.navsat) > 0,
        "GPS_RAW_INT",
        held={"lat_deg": HELD_LAT_DEG},
        after={"lat_deg": 47.397742},
    )
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    heard = len(probe.navsat)
    assert wait_until(lambda: len(probe.navsat) > heard, 10.0)  # the new link publishes
    hold.release.set()
    assert wait_until(hold.finished, 10.0)
    time.sleep(DELIVERY_SPELL_S)
    assert not hold.held_too_long
    stray = [m for m in probe.navsat if abs(m.latitude - HELD_LAT_DEG) < 1e-6]
    assert stray == [], "the stuck reader's GPS_RAW_INT was published after the deactivate"


def test_telemetry_being_published_when_a_deactivate_lands_does_not_go_out_after_it(
    up: tuple[FcBridgeNode, Probe],
    fc: SimFc,
    hold: Hold,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The reader is inside the ATTITUDE handler, past its active check and before its
    publish, when the node is deactivated (without waiting for it); then it goes on: its
    Imu is not published."""
    node, probe = up
    real_quaternion = tm.attitude_to_enu_flu_quaternion
    held_yaw: list[tuple[float, float, float, float]] = []

    def held_quaternion(att: tm.Attitude) -> tuple[float, float, float, float]:
        quaternion = real_quaternion(att)
        if hold.armed.is_set() and math.isclose(att.yaw, HELD_YAW_RAD, abs_tol=1e-4):
            held_yaw.append(quaternion)
            hold.stop_here()
        return quaternion

    # the node's handler looks the conversion up in the telemetry module at each call
    monkeypatch.setattr(tm, "attitude_to_enu_flu_quaternion", held_quaternion)
    deactivate_while_held(
        node,
        fc,
        hold,
        caplog,
        lambda: len(probe.imu) > 0,
        "ATTITUDE",
        held={"yaw_rad": HELD_YAW_RAD},
        after={"yaw_rad": 0.0},
    )
    hold.release.set()
    assert wait_until(hold.finished, 10.0)
    time.sleep(DELIVERY_SPELL_S)
    assert not hold.held_too_long
    (x, y, z, w) = held_yaw[0]
    stray = [
        m
        for m in probe.imu
        if all(
            math.isclose(a, b, abs_tol=1e-6)
            for a, b in zip(
                (m.orientation.x, m.orientation.y, m.orientation.z, m.orientation.w),
                (x, y, z, w),
                strict=True,
            )
        )
    ]
    assert stray == [], "the Imu being built when the deactivate landed went out after it"


def test_a_reader_stuck_in_a_read_records_and_logs_nothing_once_the_node_was_deactivated(
    up: tuple[FcBridgeNode, Probe],
    fc: SimFc,
    hold: Hold,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The reader has read a HEARTBEAT in a new flight mode and stalls before dispatching
    it; the node is deactivated (without waiting for it; the close took its link down)
    and activated again with a new link; then the old reader goes on and handles it:
    its link comes up in that mode. Neither its ``fc.link_up`` nor its ``fc.mode_change``
    is recorded (``/fdr/records``) or logged (``/rosout``), as they would have been, the
    node being active again."""
    node, probe = up

    def open_held(ep: Endpoint) -> Transport:
        return HeldReadTransport(open_transport(ep), hold, held_heartbeat)

    monkeypatch.setattr("gps_denied_onboard.fc_bridge.link.open_transport", open_held)
    old_link = node._link
    assert old_link is not None
    deactivate_while_held(
        node,
        fc,
        hold,
        caplog,
        lambda: any(r.kind == "fc.link_up" for r in probe.records),
        "HEARTBEAT",
        held={"mode": HELD_MODE},
        after={"mode": "STABILIZE"},
    )
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    # the probe hears the new link's records and lines
    ups = sum(r.kind == "fc.link_up" for r in probe.records)
    assert wait_until(lambda: sum(r.kind == "fc.link_up" for r in probe.records) > 1, 10.0)
    assert ups >= 1 and wait_until(lambda: any("fc.active" in m for m in probe.lines), 10.0)
    hold.release.set()
    assert wait_until(hold.finished, 10.0)
    time.sleep(DELIVERY_SPELL_S)
    assert not hold.held_too_long
    # the old reader did handle the held HEARTBEAT (what it would record and log)
    assert old_link.mode == HELD_MODE and old_link.link_ok
    records = [f"{r.kind} {r.payload_json}" for r in probe.records if HELD_MODE in r.payload_json]
    lines = [m for m in probe.lines if HELD_MODE in m]
    assert (records, lines) == ([], []), "the stuck reader recorded or logged after the deactivate"
