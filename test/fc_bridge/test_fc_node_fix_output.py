"""Position fixes through the active fc_bridge node to the simulated FC, over real DDS.

A probe node publishes ``PositionFix`` on ``/nav/position_fix``; the assertions are on
the decoded MAVLink fields the simulated FC (the edge fake, ``SimFc``) received:
ArduPilot GPS_INPUT, PX4 ODOMETRY with the EKF origin set from the first fix or
reported by the FC, ArduPilot VISION_POSITION_ESTIMATE with an explicit origin, and
the scheduler's rate/jitter in the node's diagnostics.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from gps_denied_onboard.msg import FcStatus, FdrRecord  # noqa: E402
from gps_denied_onboard.msg import PositionFix as PositionFixMsg  # noqa: E402
from pymavlink.dialects.v20 import ardupilotmega as mavlink2  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.node import Node  # noqa: E402

from gps_denied_onboard.fc_bridge.geodesy import LocalOrigin, ned_to_geodetic  # noqa: E402
from gps_denied_onboard.fc_bridge.sim_fc import SimFc  # noqa: E402
from gps_denied_onboard.nodes.fc_bridge_node import FcBridgeNode  # noqa: E402
from gps_denied_onboard.ros_topics import (  # noqa: E402
    LATCHED_QOS,
    RECORD_QOS,
    TOPIC_DIAGNOSTICS,
    TOPIC_FC_SENT_FIX,
    TOPIC_FC_STATUS,
    TOPIC_FDR_RECORDS,
    TOPIC_POSITION_FIX,
)

from .link_support import wait_until  # noqa: E402
from .node_support import fix_msg, make_node, spin_ros  # noqa: E402

pytestmark = pytest.mark.ros

LAT, LON, ALT = 47.3977419, 8.5455938, 488.25
VEL_ENU = (1.5, -2.0, 0.5)  # east, north, up (m/s)


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    yield from spin_ros()


class Rig:
    """SimFc + the active node + a probe (fix publisher, records, diagnostics, status)."""

    def __init__(self, ros: MultiThreadedExecutor, fc: SimFc, node: FcBridgeNode) -> None:
        self.ros, self.fc, self.node = ros, fc, node
        self.probe = Node("fc_fix_probe")
        self.records: list[FdrRecord] = []
        self.diags: list[DiagnosticArray] = []
        self.statuses: list[FcStatus] = []
        self.pub = self.probe.create_publisher(PositionFixMsg, TOPIC_POSITION_FIX, 10)
        self.probe.create_subscription(
            FdrRecord, TOPIC_FDR_RECORDS, self.records.append, RECORD_QOS
        )
        self.probe.create_subscription(DiagnosticArray, TOPIC_DIAGNOSTICS, self.diags.append, 10)
        self.probe.create_subscription(FcStatus, TOPIC_FC_STATUS, self.statuses.append, 10)
        ros.add_node(node)
        ros.add_node(self.probe)

    def activate(self) -> None:
        assert self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert wait_until(lambda: self.pub.get_subscription_count() > 0, 5.0)

    def now_ns(self) -> int:
        return int(self.node.get_clock().now().nanoseconds)

    def publish(self, msg: PositionFixMsg) -> None:
        self.pub.publish(msg)

    def wait_for(self, msg_type: str, pred: Any, timeout_s: float = 5.0) -> Any:
        """The first message of ``msg_type`` at the FC for which ``pred(msg)`` holds."""
        found: list[Any] = []

        def check() -> bool:
            found[:] = [r.msg for r in self.fc.received(msg_type) if pred(r.msg)]
            return bool(found)

        assert wait_until(check, timeout_s), f"no matching {msg_type} at the FC"
        return found[0]

    def diag_values(self) -> dict[str, str]:
        for array in reversed(self.diags):
            for status in array.status:
                if status.name == "fc_bridge":
                    return {kv.key: kv.value for kv in status.values}
        return {}

    def close(self) -> None:
        self.ros.remove_node(self.node)
        self.ros.remove_node(self.probe)
        self.node.shutdown()
        self.node.destroy_node()
        self.probe.destroy_node()
        self.fc.stop()


@pytest.fixture
def rig_factory(ros: MultiThreadedExecutor) -> Iterator[Any]:
    rigs: list[Rig] = []

    def make(autopilot: str, *, gnss: bool = True, **params: object) -> Rig:
        fc = SimFc(autopilot, heartbeat_hz=5.0, telemetry_hz=10.0)
        if not gnss:
            fc.update(fix_type=0, satellites=0, h_acc_mm=0, eph_cm=65535)
        fc.start()
        rig = Rig(ros, fc, make_node(fc.connection, **params))
        rigs.append(rig)
        return rig

    try:
        yield make
    finally:
        for rig in rigs:
            rig.close()


def test_ardupilot_gps_input_carries_the_fix_in_wire_units(rig_factory: Any) -> None:
    rig = rig_factory("ardupilot")
    rig.activate()
    stamp = rig.now_ns()
    # yaw ENU 0 = facing east = NED 90 deg; velocity ENU (1.5, -2.0, 0.5) = NED (-2, 1.5, -0.5)
    rig.publish(fix_msg(stamp, LAT, LON, ALT, vel_enu=VEL_ENU, yaw_enu=0.0))
    m = rig.wait_for("GPS_INPUT", lambda m: m.time_usec == stamp // 1000)
    assert (m.lat, m.lon) == (round(LAT * 1e7), round(LON * 1e7))
    assert m.alt == pytest.approx(ALT, abs=1e-4)  # metres MSL
    assert (m.vn, m.ve, m.vd) == pytest.approx((-2.0, 1.5, -0.5), abs=1e-6)
    assert m.yaw == 9000  # centidegrees, 0 would mean unknown
    assert m.horiz_accuracy == pytest.approx(2.0, abs=1e-6)  # sqrt(4 m^2)
    assert m.vert_accuracy == pytest.approx(3.0, abs=1e-6)  # sqrt(9 m^2)
    assert m.fix_type == mavlink2.GPS_FIX_TYPE_3D_FIX and m.satellites_visible == 10
    assert m.ignore_flags & mavlink2.GPS_INPUT_IGNORE_FLAG_VEL_HORIZ == 0
    assert m.time_week > 2000 and 0 <= m.time_week_ms < 604_800_000
    # a second fix facing north: NED yaw 0 goes out as 36000, never as "unknown"
    stamp2 = rig.now_ns()
    rig.publish(fix_msg(stamp2, LAT + 1e-5, LON, ALT, vel_enu=VEL_ENU, yaw_enu=math.pi / 2))
    m2 = rig.wait_for("GPS_INPUT", lambda m: m.time_usec == stamp2 // 1000)
    assert m2.yaw == 36000 and m2.lat == round((LAT + 1e-5) * 1e7)
    # GPS_INPUT is a global output: no EKF origin is ever sent
    assert not rig.fc.received("SET_GPS_GLOBAL_ORIGIN")
    # the scheduler's achieved rate and jitter are in the diagnostics with the link stats
    assert wait_until(lambda: int(rig.diag_values().get("fix.sent", "0")) >= 2, 5.0)
    values = rig.diag_values()
    assert values["fix.output"] == "gps_input" and values["fix.target_rate_hz"] == "10.0"
    assert float(values["fix.achieved_rate_hz"]) > 0.0
    for key in ("fix.jitter_ms", "fix.gap_max_ms", "fix.gap_p99_ms", "link.rx_messages"):
        assert key in values, key
    assert "origin.source" not in values  # no origin rule for a global output


def test_px4_odometry_is_relative_to_an_origin_set_from_the_first_fix(rig_factory: Any) -> None:
    rig = rig_factory("px4", gnss=False)
    rig.activate()
    # at activation the node asks the FC for its own origin (MAV_CMD_REQUEST_MESSAGE 49)
    # (the bridge also asks for HOME_POSITION, 242: home.py)
    req = rig.wait_for(
        "COMMAND_LONG",
        lambda m: (
            m.command == mavlink2.MAV_CMD_REQUEST_MESSAGE
            and m.param1 == mavlink2.MAVLINK_MSG_ID_GPS_GLOBAL_ORIGIN
        ),
    )
    assert req.target_system == 1
    stamp = rig.now_ns()
    rig.publish(fix_msg(stamp, LAT, LON, ALT, vel_enu=VEL_ENU, yaw_enu=0.0, reset_counter=3))
    origin_msg = rig.wait_for("SET_GPS_GLOBAL_ORIGIN", lambda m: True)
    assert (origin_msg.latitude, origin_msg.longitude) == (round(LAT * 1e7), round(LON * 1e7))
    assert origin_msg.altitude == round(ALT * 1000)  # mm MSL
    assert origin_msg.target_system == 1
    assert not rig.fc.received("SET_HOME_POSITION")  # PX4 sets home itself at arming
    first = rig.wait_for("ODOMETRY", lambda m: m.time_usec == stamp // 1000)
    # the origin reached the FC before the first position relative to it
    t_origin = rig.fc.received("SET_GPS_GLOBAL_ORIGIN")[0].recv_ns
    t_odom = next(r.recv_ns for r in rig.fc.received("ODOMETRY") if r.msg is first)
    assert t_origin <= t_odom
    # the origin is the degE7/mm-quantised first fix: within a centimetre of it
    assert (first.x, first.y, first.z) == pytest.approx((0.0, 0.0, 0.0), abs=0.01)
    assert first.frame_id == first.child_frame_id == mavlink2.MAV_FRAME_LOCAL_NED
    assert (first.vx, first.vy, first.vz) == pytest.approx((-2.0, 1.5, -0.5), abs=1e-6)
    assert first.reset_counter == 3 and first.quality == 90
    assert first.estimator_type == mavlink2.MAV_ESTIMATOR_TYPE_VISION
    # 10 m north, 5 m east, 2 m up of the origin the FC holds
    held = LocalOrigin(origin_msg.latitude / 1e7, origin_msg.longitude / 1e7, ALT)
    lat2, lon2, alt2 = ned_to_geodetic(10.0, 5.0, -2.0, held)
    stamp2 = rig.now_ns()
    rig.publish(fix_msg(stamp2, lat2, lon2, alt2, vel_enu=VEL_ENU, yaw_enu=0.0))
    m = rig.wait_for("ODOMETRY", lambda m: m.time_usec == stamp2 // 1000)
    assert (m.x, m.y, m.z) == pytest.approx((10.0, 5.0, -2.0), abs=1e-3)
    assert len(rig.fc.received("SET_GPS_GLOBAL_ORIGIN")) == 1  # set once, not per fix
    # the FDR record and the diagnostics say where the origin came from
    assert wait_until(lambda: any(r.kind == "fc.origin_set" for r in rig.records), 5.0)
    rec = next(r for r in rig.records if r.kind == "fc.origin_set")
    assert json.loads(rec.payload_json) == {
        "latitude": 47.3977419,
        "longitude": 8.5455938,
        "altitude_msl": 488.25,
    }
    assert wait_until(lambda: rig.diag_values().get("origin.source") == "first_fix", 5.0)
    values = rig.diag_values()
    assert values["fix.output"] == "odometry" and float(values["origin.latitude"]) == 47.3977419


def test_px4_with_gnss_uses_the_origin_the_fc_reports(rig_factory: Any) -> None:
    rig = rig_factory("px4", gnss=True)
    rig.activate()
    assert wait_until(lambda: any(s.gnss_healthy for s in rig.statuses), 5.0)
    stamp = rig.now_ns()
    rig.publish(fix_msg(stamp, LAT, LON, ALT))
    # healthy FC GNSS: we do not impose our origin, and cannot place the fix yet
    assert wait_until(lambda: rig.diag_values().get("origin.source") == "waiting", 5.0)
    assert wait_until(lambda: int(rig.diag_values().get("fix.not_encodable", "0")) >= 1, 5.0)
    assert not rig.fc.received("ODOMETRY")
    fc_origin = LocalOrigin(47.3970000, 8.5450000, 480.0)
    rig.fc.send_message(
        mavlink2.MAVLink_gps_global_origin_message(
            latitude=round(fc_origin.latitude_deg * 1e7),
            longitude=round(fc_origin.longitude_deg * 1e7),
            altitude=round(fc_origin.altitude_msl_m * 1000),
            time_usec=0,
        )
    )
    assert wait_until(lambda: rig.diag_values().get("origin.source") == "fc", 5.0)
    lat2, lon2, alt2 = ned_to_geodetic(-20.0, 30.0, -8.0, fc_origin)
    stamp2 = rig.now_ns()
    rig.publish(fix_msg(stamp2, lat2, lon2, alt2))
    m = rig.wait_for("ODOMETRY", lambda m: m.time_usec == stamp2 // 1000)
    assert (m.x, m.y, m.z) == pytest.approx((-20.0, 30.0, -8.0), abs=1e-3)
    assert not rig.fc.received("SET_GPS_GLOBAL_ORIGIN")


def test_ardupilot_vision_position_estimate_with_an_explicit_origin(rig_factory: Any) -> None:
    origin = LocalOrigin(47.3975, 8.5452, 470.5)
    rig = rig_factory(
        "ardupilot",
        output="vision_position_estimate",
        origin_latitude_deg=origin.latitude_deg,
        origin_longitude_deg=origin.longitude_deg,
        origin_altitude_msl_m=origin.altitude_msl_m,
    )
    rig.activate()
    # sent at activation, before any fix; ArduPilot also gets home at the same point
    sent = rig.wait_for("SET_GPS_GLOBAL_ORIGIN", lambda m: True)
    assert (sent.latitude, sent.longitude, sent.altitude) == (473975000, 85452000, 470500)
    home = rig.wait_for("SET_HOME_POSITION", lambda m: True)
    assert (home.latitude, home.longitude, home.altitude) == (473975000, 85452000, 470500)
    assert not [
        r
        for r in rig.fc.received("COMMAND_LONG")
        if r.msg.command == mavlink2.MAV_CMD_REQUEST_MESSAGE
        and r.msg.param1 == mavlink2.MAVLINK_MSG_ID_GPS_GLOBAL_ORIGIN
    ]
    lat, lon, alt = ned_to_geodetic(12.0, -7.0, -15.0, origin)
    stamp = rig.now_ns()
    rig.publish(fix_msg(stamp, lat, lon, alt, yaw_enu=math.pi))  # facing west: NED yaw 270
    m = rig.wait_for("VISION_POSITION_ESTIMATE", lambda m: m.usec == stamp // 1000)
    assert (m.x, m.y, m.z) == pytest.approx((12.0, -7.0, -15.0), abs=1e-3)
    assert math.remainder(m.yaw - math.radians(270.0), 2 * math.pi) == pytest.approx(0.0, abs=1e-6)
    assert (m.roll, m.pitch) == (0.0, 0.0)
    assert wait_until(lambda: rig.diag_values().get("origin.source") == "param", 5.0)


def test_capture_to_send_age_is_reported_and_a_far_off_gps_delay_is_named(
    rig_factory: Any,
) -> None:
    # the simulated ArduPilot has GPS1_DELAY_MS=0 (= 200 ms); fixes are published 20 ms
    # after capture and reach the bridge after the executor's own latency
    rig = rig_factory("ardupilot")
    rig.activate()
    for _ in range(26):
        time.sleep(0.1)  # one fix per GPS_INPUT period: each goes out on arrival
        stamp = rig.now_ns() - 20_000_000
        rig.publish(fix_msg(stamp, LAT, LON, ALT, vel_enu=VEL_ENU))
        wait_until(
            lambda s=stamp: any(r.msg.time_usec == s // 1000 for r in rig.fc.received("GPS_INPUT")),
            1.0,
        )
    assert wait_until(lambda: "preflight.delay" in rig.diag_values(), 5.0), rig.diag_values()
    values = rig.diag_values()
    # fixes with velocity go out 3D, which ArduPilot times by their GPS time: the least
    # capture-to-send age is the delay to set (preflight._DELAY)
    age = float(values["fix.new_fix_age_min_ms"])
    assert 20.0 <= age <= float(values["fix.new_fix_age_median_ms"]) < 170.0
    advised = max(1, round(age / 10.0) * 10)
    assert values["preflight.delay"].startswith(
        "GPS1_DELAY_MS=0 (0 = 200 ms) but fixes reach the FC at the least"
    )
    assert values["preflight.delay"].endswith(f"set GPS1_DELAY_MS={advised}")


M_LAT = 1.0 / 111_195.0  # degrees of latitude per metre


def _stream(rig: Rig, north_m: float, *, counter: int, quality: int = 90, n: int = 3) -> list[int]:
    """Publish ``n`` fixes 100 ms apart at ``north_m`` of LAT; returns their stamps."""
    stamps = []
    for _ in range(n):
        stamp = rig.now_ns()
        rig.publish(
            fix_msg(
                stamp,
                LAT + north_m * M_LAT,
                LON,
                ALT,
                vel_enu=(0.0, 0.0, 0.0),
                reset_counter=counter,
                quality=quality,
            )
        )
        stamps.append(stamp)
        time.sleep(0.1)
    return stamps


def test_ardupilot_relocalisation_resets_ekf3_through_a_source_set_switch(
    rig_factory: Any,
) -> None:
    rig = rig_factory("ardupilot")
    rig.activate()
    _stream(rig, 0.0, counter=0)
    rig.wait_for("GPS_INPUT", lambda m: True)
    # a sure 30 m relocalisation
    jumped = _stream(rig, 30.0, counter=1, n=4)
    new_lat = round((LAT + 30.0 * M_LAT) * 1e7)
    rig.wait_for("GPS_INPUT", lambda m: m.time_usec == jumped[-1] // 1000)
    assert wait_until(lambda: rig.fc.source_set == 1 and len(_switches(rig)) == 2, 5.0)
    # on the wire, in order: source set 2, GPS_INPUT at the new position (twice), set 1
    seq = [
        (r.msg.get_type(), r.msg.param1 if r.msg.get_type() == "COMMAND_LONG" else r.msg.lat)
        for r in rig.fc.received()
        if r.msg.get_type() == "GPS_INPUT"
        or (
            r.msg.get_type() == "COMMAND_LONG"
            and r.msg.command == mavlink2.MAV_CMD_SET_EKF_SOURCE_SET
        )
    ]
    i = seq.index(("COMMAND_LONG", 2.0))
    j = seq.index(("COMMAND_LONG", 1.0), i)
    assert all(lat != new_lat for kind, lat in seq[:i] if kind == "GPS_INPUT")
    # set 1 comes after two GPS_INPUT at the new position; a fix taken before the jump
    # may still leave in between (on a loaded machine one did), which source set 2
    # ignores and the switch does not count (EkfSourceSwitch)
    between = seq[i + 1 : j]
    assert [m for m in between if m[1] == new_lat] == [("GPS_INPUT", new_lat)] * 2
    assert all(kind == "GPS_INPUT" for kind, _ in between)
    rec = _reloc_records(rig)
    assert rec and rec[0]["accepted"] is True and rec[0]["method"] == "ekf_source_switch"
    assert abs(rec[0]["jump_m"] - 30.0) < 0.5
    # preflight checked source set 2 (all set on the simulated FC): no problem
    assert "preflight" not in rig.diag_values()


def test_an_unsure_relocalisation_is_held_back_until_confirmed(rig_factory: Any) -> None:
    rig = rig_factory("px4", gnss=False)  # ODOMETRY, origin from the first fix
    rig.activate()
    _stream(rig, 0.0, counter=5)
    rig.wait_for("ODOMETRY", lambda m: True)
    unsure = _stream(rig, 40.0, counter=6, quality=20, n=2)
    time.sleep(0.3)
    held = [r.msg for r in rig.fc.received("ODOMETRY") if r.msg.time_usec * 1000 in unsure]
    assert held == []  # nothing of the unsure jump reached the autopilot
    confirming = _stream(rig, 40.0, counter=6, quality=20, n=1)
    m = rig.wait_for("ODOMETRY", lambda m: m.time_usec == confirming[0] // 1000)
    before = [r.msg.reset_counter for r in rig.fc.received("ODOMETRY")][:-1]
    assert set(before) == {5}  # the wire counter started at the estimator's
    assert m.reset_counter == 6  # bumped once, for the accepted jump
    assert abs(m.x - 40.0) < 0.5  # NED north, from the origin at the first fix
    recs = _reloc_records(rig, count=2)
    assert [(r["accepted"], r["reason"]) for r in recs] == [(False, "unsure"), (True, "confirmed")]
    assert recs[1]["method"] == "reset_counter"


def test_the_newest_fix_taken_is_latched_for_a_restarted_estimator(rig_factory: Any) -> None:
    """``/fc/sent_fix`` (transient local) holds the newest fix the bridge took: a
    subscriber that joins later (a visual_nav restarted in flight) gets it; a jump
    held back as unsure is not taken, so not latched either."""
    rig = rig_factory("px4", gnss=False)
    rig.activate()
    taken = _stream(rig, 0.0, counter=5, n=2)
    rig.wait_for("ODOMETRY", lambda m: m.time_usec == taken[-1] // 1000)
    unsure = _stream(rig, 40.0, counter=6, quality=20, n=1)
    time.sleep(0.3)
    got: list[PositionFixMsg] = []
    late = Node("restarted_estimator_probe")
    late.create_subscription(PositionFixMsg, TOPIC_FC_SENT_FIX, got.append, LATCHED_QOS)
    rig.ros.add_node(late)
    try:
        assert wait_until(lambda: bool(got), 10.0), "no latched /fc/sent_fix"
        msg = got[-1]
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        assert stamp == taken[-1] and stamp not in unsure
        assert (msg.latitude, msg.longitude, msg.reset_counter) == (LAT, LON, 5)
        assert msg.velocity_valid and msg.position_covariance[0] == 4.0
    finally:
        rig.ros.remove_node(late)
        late.destroy_node()


def _switches(rig: Rig) -> list[float]:
    return [
        r.msg.param1
        for r in rig.fc.received("COMMAND_LONG")
        if r.msg.command == mavlink2.MAV_CMD_SET_EKF_SOURCE_SET
    ]


def _reloc_records(rig: Rig, count: int = 1) -> list[dict[str, Any]]:
    """The bridge's ``fc.relocalisation`` records, once ``count`` have arrived: they
    come over DDS, after the MAVLink message they describe may have reached the FC."""

    def got() -> int:
        return sum(r.kind == "fc.relocalisation" for r in rig.records)

    assert wait_until(lambda: got() >= count, 5.0)
    return [json.loads(r.payload_json) for r in rig.records if r.kind == "fc.relocalisation"]


def test_the_fcs_gnss_reporting_our_own_fixes_back_is_not_a_healthy_gnss(rig_factory: Any) -> None:
    """ArduPilot with GPS1_TYPE=14 reports the GPS_INPUT it gets as its GPS_RAW_INT
    (seen against SITL). Here the simulated FC's GNSS sits at exactly the position
    we then send: once it went out, the FC's report of it is our echo, and the
    bridge says so (``own_fixes``) instead of calling the GNSS healthy."""
    rig = rig_factory("ardupilot")
    rig.fc.update(lat_deg=LAT, lon_deg=LON)
    rig.activate()

    def reason() -> str:
        return rig.statuses[-1].gnss_health_reason if rig.statuses else ""

    assert wait_until(lambda: reason() == "ok", 5.0), reason()  # a GNSS we never sent
    stamp = rig.now_ns()
    rig.publish(fix_msg(stamp, LAT, LON, ALT, vel_enu=VEL_ENU))
    rig.wait_for("GPS_INPUT", lambda m: m.time_usec == stamp // 1000)
    assert wait_until(lambda: reason() == "own_fixes", 5.0), reason()
    assert not rig.statuses[-1].gnss_healthy
    assert wait_until(
        lambda: any(
            r.kind == "fc.gnss_health" and '"own_fixes"' in r.payload_json for r in rig.records
        ),
        5.0,
    )
    # the FC's GNSS moves off our fixes (a real receiver again): healthy again
    rig.fc.update(lat_deg=LAT + 1e-4)
    assert wait_until(lambda: reason() == "ok", 5.0), reason()
