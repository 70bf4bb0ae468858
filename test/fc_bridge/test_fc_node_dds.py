"""The fc_bridge lifecycle node against the simulated FC, over real DDS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

rclpy = pytest.importorskip("rclpy")

from gps_denied_onboard.msg import FcAltitude, FcStatus, FdrRecord, GcsAlert  # noqa: E402
from lifecycle_msgs.msg import State as StateMsg  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Imu, NavSatFix  # noqa: E402

from gps_denied_onboard.fc_bridge.sim_fc import SimFc  # noqa: E402
from gps_denied_onboard.nodes.fc_bridge_node import FcBridgeNode  # noqa: E402
from gps_denied_onboard.ros_topics import (  # noqa: E402
    RECORD_QOS,
    TOPIC_FC_ALTITUDE,
    TOPIC_FC_EKF_POSITION,
    TOPIC_FC_IMU,
    TOPIC_FC_NAVSAT,
    TOPIC_FC_STATUS,
    TOPIC_FDR_RECORDS,
    TOPIC_GCS_ALERTS,
    time_msg_to_ns,
)

from .link_support import wait_until  # noqa: E402
from .node_support import make_node, spin_ros, stop_rig  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    yield from spin_ros()


def _node(connection: str, **extra: object) -> FcBridgeNode:
    return make_node(connection, **extra)


@pytest.mark.parametrize("autopilot", ["ardupilot", "px4"])
def test_node_activates_publishes_status_and_forwards_alerts(
    ros: MultiThreadedExecutor, autopilot: str
) -> None:
    # ArduPilot plays ask-first (nothing but HEARTBEAT until asked), PX4 streams by default
    fc = SimFc(autopilot, heartbeat_hz=5.0, telemetry_hz=10.0).start()
    node = _node(fc.connection)
    probe = Node("fc_probe")
    statuses: list[FcStatus] = []
    navsats: list[NavSatFix] = []
    imus: list[Imu] = []
    alts: list[FcAltitude] = []
    ekfs: list[NavSatFix] = []
    records: list[FdrRecord] = []
    probe.create_subscription(FcStatus, TOPIC_FC_STATUS, statuses.append, 10)
    probe.create_subscription(NavSatFix, TOPIC_FC_NAVSAT, navsats.append, qos_profile_sensor_data)
    probe.create_subscription(Imu, TOPIC_FC_IMU, imus.append, qos_profile_sensor_data)
    sensor = qos_profile_sensor_data
    probe.create_subscription(FcAltitude, TOPIC_FC_ALTITUDE, alts.append, sensor)
    probe.create_subscription(NavSatFix, TOPIC_FC_EKF_POSITION, ekfs.append, sensor)
    probe.create_subscription(FdrRecord, TOPIC_FDR_RECORDS, records.append, RECORD_QOS)
    alerts = probe.create_publisher(GcsAlert, TOPIC_GCS_ALERTS, RECORD_QOS)
    ros.add_node(node)
    ros.add_node(probe)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert not fc.received()  # configure does no I/O
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS

        # the link is up at the first HEARTBEAT; SYS_STATUS and GPS_RAW_INT follow once the
        # streams are asked for (battery -1 = not heard yet): take a status that has them
        def heard(s: FcStatus) -> bool:
            return s.link_ok and s.battery_remaining_pct >= 0 and s.gnss_fix_type > 0

        assert wait_until(lambda: any(heard(s) for s in statuses), 10.0), statuses[-1:]
        st = [s for s in statuses if heard(s)][-1]
        assert st.autopilot == autopilot and st.system_id == 1
        assert st.mode == ("STABILIZE" if autopilot == "ardupilot" else "POSCTL")
        assert st.satellites_visible == 12 and st.gnss_fix_type == 3
        assert st.battery_remaining_pct == 87
        assert wait_until(lambda: bool(navsats) and bool(imus) and bool(alts), 5.0)
        assert navsats[-1].latitude == pytest.approx(47.397742)
        assert alts[-1].amsl == pytest.approx(488.0)
        # ATTITUDE's gyro rates go with the attitude, marked measured (a variance, not 0)
        assert all(m.angular_velocity_covariance[k] > 0 for m in imus[-3:] for k in (0, 4, 8))
        # stamped with the FC's clock: PX4's ALTITUDE by its own time, ArduPilot's VFR_HUD
        # (no time of its own) by the newest timed message before it on the link. PX4 streams
        # both: VFR_HUD stands in only until the first ALTITUDE is heard, never after it.
        if autopilot == "ardupilot":
            assert {a.source for a in alts} == {"vfr_hud"}
            timed = {time_msg_to_ns(m.header.stamp) for m in (*imus, *navsats, *ekfs)}
            taken = [time_msg_to_ns(a.header.stamp) in timed for a in alts]
            assert sum(taken) >= 0.8 * len(taken), (len(taken), sum(taken))
        else:
            assert wait_until(lambda: any(a.source == "altitude" for a in alts), 5.0)
            first = next(i for i, a in enumerate(alts) if a.source == "altitude")
            assert {a.source for a in alts[:first]} <= {"vfr_hud"}
            assert {a.source for a in alts[first:]} == {"altitude"}
            newest_imu = time_msg_to_ns(imus[-1].header.stamp)
            assert abs(time_msg_to_ns(alts[-1].header.stamp) - newest_imu) < 1_000_000_000
        # every requested message was asked for and honoured: no telemetry problem
        link = node._link
        assert link is not None
        assert wait_until(lambda: link.telemetry_report().ok, 5.0), link.telemetry_report()
        if autopilot == "ardupilot":
            assert fc.intervals()["ATTITUDE"] == pytest.approx(0.02)  # 50 Hz, as asked
        assert wait_until(lambda: any(r.kind == "fc.link_up" for r in records), 5.0)
        assert wait_until(lambda: alerts.get_subscription_count() > 0, 5.0)
        alerts.publish(GcsAlert(severity=GcsAlert.CRITICAL, source="fdr", text="disk full"))
        got = fc.wait_for("STATUSTEXT", 1, 5.0)
        assert got and got[0].msg.severity == GcsAlert.CRITICAL
        assert got[0].msg.text == "fdr: disk full"
        fc.update(armed=True)
        assert wait_until(lambda: any(s.armed for s in statuses), 5.0)
        assert wait_until(lambda: any(r.kind == "fc.armed" for r in records), 5.0)
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        n = len(fc.received("HEARTBEAT"))
        assert not wait_until(lambda: len(fc.received("HEARTBEAT")) > n + 1, 1.0)
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node._state_machine.current_state[0] == StateMsg.PRIMARY_STATE_UNCONFIGURED
    finally:
        stop_rig(ros, fc, node, probe)


def test_a_gnss_time_of_day_is_stamped_with_the_fc_clock_of_the_message_before_it(
    ros: MultiThreadedExecutor,
) -> None:
    """GPS_RAW_INT whose time_usec is a UNIX time (a GNSS-synchronised stack; the
    sample flight's recording) is no time on the FC's clock: /fc/navsat and
    /fc/gnss_velocity take that of the newest boot-timed message before it on the
    link, as VFR_HUD does, not the arrival (the link's lag, a replay's jitter)."""
    from geometry_msgs.msg import TwistWithCovarianceStamped

    from gps_denied_onboard.ros_topics import TOPIC_FC_GNSS_VELOCITY

    fc = SimFc("px4", heartbeat_hz=5.0, telemetry_hz=10.0)
    fc.update(gps_unix_time_at_boot_s=1_778_579_700.0, vel_ned_mps=(10.0, 0.0, 0.0))
    fc.start()
    node = _node(fc.connection)
    probe = Node("fc_gnss_time_probe")
    imus: list[Imu] = []
    ekfs: list[NavSatFix] = []
    navsats: list[NavSatFix] = []
    vels: list[TwistWithCovarianceStamped] = []
    sensor = qos_profile_sensor_data
    probe.create_subscription(Imu, TOPIC_FC_IMU, imus.append, sensor)
    probe.create_subscription(NavSatFix, TOPIC_FC_EKF_POSITION, ekfs.append, sensor)
    probe.create_subscription(NavSatFix, TOPIC_FC_NAVSAT, navsats.append, sensor)
    probe.create_subscription(
        TwistWithCovarianceStamped, TOPIC_FC_GNSS_VELOCITY, vels.append, sensor
    )
    ros.add_node(node)
    ros.add_node(probe)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert wait_until(lambda: len(navsats) >= 10 and len(vels) >= 10, 10.0), len(navsats)
        timed = {time_msg_to_ns(m.header.stamp) for m in (*imus, *ekfs)}
        taken = [time_msg_to_ns(m.header.stamp) in timed for m in navsats]
        assert sum(taken) >= 0.8 * len(taken), (len(taken), sum(taken))
        # the velocity goes with its position, stamp for stamp
        assert {time_msg_to_ns(v.header.stamp) for v in vels} <= {
            time_msg_to_ns(m.header.stamp) for m in navsats
        } | timed
    finally:
        stop_rig(ros, fc, node, probe)


def test_activate_fails_when_no_autopilot_answers(ros: MultiThreadedExecutor) -> None:
    import socket

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    node = _node(f"udpout:127.0.0.1:{silent.getsockname()[1]}", activate_timeout_s=0.5)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.FAILURE
        # back to inactive, and a later activation can still succeed
        assert node._state_machine.current_state[0] == StateMsg.PRIMARY_STATE_INACTIVE
    finally:
        node.shutdown()
        node.destroy_node()
        silent.close()


def test_bad_parameters_fail_configure(ros: MultiThreadedExecutor) -> None:
    node = _node("bogus")
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    finally:
        node.destroy_node()


@pytest.mark.parametrize("fc_signs", [True, False])
def test_signed_link_and_the_preflight_line_about_the_autopilot(
    ros: MultiThreadedExecutor, tmp_path: object, fc_signs: bool
) -> None:
    import os
    from pathlib import Path

    from diagnostic_msgs.msg import DiagnosticArray

    from gps_denied_onboard.clock import SystemClock
    from gps_denied_onboard.ros_topics import TOPIC_DIAGNOSTICS

    key = bytes(range(32))
    path = Path(str(tmp_path)) / "mavlink.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, key)
    os.close(fd)
    # signing timestamps count from 2015 on both sides: the FC on the wall clock, as the
    # node's ROS clock is (a monotonic clock's would read as a stream from 2015, too old)
    fc = SimFc(
        "ardupilot",
        heartbeat_hz=5.0,
        signing_key=key if fc_signs else None,
        clock=SystemClock(),
    ).start()
    node = _node(fc.connection, signing_key_file=str(path))
    probe = Node("fc_probe")
    diags: list[DiagnosticArray] = []
    probe.create_subscription(DiagnosticArray, TOPIC_DIAGNOSTICS, diags.append, 10)
    ros.add_node(node)
    ros.add_node(probe)

    def values() -> dict[str, str]:
        for array in reversed(diags):
            for status in array.status:
                if status.name == "fc_bridge":
                    return {kv.key: kv.value for kv in status.values}
        return {}

    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert wait_until(lambda: "signing" in values(), 5.0)
        got = fc.received()
        assert got and all(r.msg.get_header().incompat_flags & 1 for r in got)  # all signed
        v = values()
        if fc_signs:
            assert v["signing"] == "signing on: the autopilot signs its messages with our key"
            assert "signing" not in v.get("preflight", "")
        else:
            assert "arrive unsigned" in v["signing"]
            assert "SETUP_SIGNING" in v["preflight"]  # named as a preflight problem
            assert int(v["link.rx_unverified_accepted"]) > 0
    finally:
        stop_rig(ros, fc, node, probe)


@pytest.mark.parametrize("sensor_time_ms", [None, 0, 100_000_000])
def test_a_downward_rangefinder_is_published_as_range(
    ros: MultiThreadedExecutor, sensor_time_ms: int | None
) -> None:
    """DISTANCE_SENSOR (asked for when SYS_STATUS reports one) -> /fc/rangefinder in
    metres, stamped with its own boot time on the FC clock's mapping. A sensor that
    sends time 0 (a driver's, another clock) is stamped as an untimed message, and
    the mapping the attitude is stamped with is never reset by it."""
    from sensor_msgs.msg import Range

    from gps_denied_onboard.ros_topics import TOPIC_FC_RANGEFINDER

    fc = SimFc("ardupilot", heartbeat_hz=5.0, telemetry_hz=10.0, rangefinder=True)
    fc.update(rel_alt_m=35.5, rangefinder_time_boot_ms=sensor_time_ms)
    fc.start()
    node = _node(fc.connection)
    probe = Node("fc_range_probe")
    ranges: list[Range] = []
    imus: list[Imu] = []
    probe.create_subscription(Range, TOPIC_FC_RANGEFINDER, ranges.append, qos_profile_sensor_data)
    probe.create_subscription(Imu, TOPIC_FC_IMU, imus.append, qos_profile_sensor_data)
    ros.add_node(node)
    ros.add_node(probe)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert wait_until(lambda: len(ranges) >= 5, 10.0), "no /fc/rangefinder"
        r = ranges[-1]
        assert (r.min_range, r.max_range) == pytest.approx((0.2, 40.0))
        assert r.range == pytest.approx(35.5, abs=0.01)
        newest_imu = time_msg_to_ns(imus[-1].header.stamp)
        assert abs(time_msg_to_ns(r.header.stamp) - newest_imu) < 1_000_000_000
        telemetry = node._telemetry
        assert telemetry is not None and telemetry.fc_time.resets == 0
    finally:
        stop_rig(ros, fc, node, probe)


@pytest.mark.parametrize("strict", [True, False])
def test_a_misconfigured_autopilot_fails_activation_only_with_preflight_strict(
    ros: MultiThreadedExecutor, strict: bool
) -> None:
    """Whatever the link's signing says (here: none, no problem), preflight_strict is
    enforced and the problems are named; without it the bridge flies on and says so."""
    from gps_denied_onboard.fc_bridge.sim_fc import ARDUPILOT_DEFAULT_PARAMS

    params = dict(ARDUPILOT_DEFAULT_PARAMS)
    params["GPS1_TYPE"] = 1.0  # not MAV: the autopilot would ignore every GPS_INPUT
    fc = SimFc("ardupilot", heartbeat_hz=5.0, params=params).start()
    node = _node(fc.connection, preflight_strict=strict)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        want = TransitionCallbackReturn.FAILURE if strict else TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == want
        assert node._preflight is not None and not node._preflight.ok
        assert [p.name for p in node._preflight.problems] == ["GPS1_TYPE"]
        assert any("GPS1_TYPE" in line for line in node._preflight_lines)
        if strict:  # back to inactive, the link closed
            assert node._state_machine.current_state[0] == StateMsg.PRIMARY_STATE_INACTIVE
        else:
            assert node._state_machine.current_state[0] == StateMsg.PRIMARY_STATE_ACTIVE
            assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    finally:
        node.shutdown()
        node.destroy_node()
        fc.stop()


@pytest.mark.parametrize("autopilot", ["ardupilot", "px4"])
def test_the_ekf_position_is_a_fix_only_while_the_ekf_holds_an_absolute_one(
    ros: MultiThreadedExecutor, autopilot: str
) -> None:
    """GLOBAL_POSITION_INT -> /fc/ekf_position: a fix while the EKF status says it
    holds an absolute horizontal position, no fix once it says it does not (the
    estimator searches around it only when it is a fix)."""
    from sensor_msgs.msg import NavSatStatus

    from gps_denied_onboard.ros_topics import TOPIC_FC_EKF_POSITION

    fc = SimFc(autopilot, heartbeat_hz=5.0, telemetry_hz=10.0)
    fc.update(lat_deg=47.02, lon_deg=-99.15)
    fc.start()
    node = _node(fc.connection)
    probe = Node(f"fc_ekf_probe_{autopilot}")
    got: list[NavSatFix] = []
    probe.create_subscription(NavSatFix, TOPIC_FC_EKF_POSITION, got.append, qos_profile_sensor_data)
    ros.add_node(node)
    ros.add_node(probe)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert wait_until(
            lambda: any(m.status.status == NavSatStatus.STATUS_FIX for m in got), 10.0
        ), "no fix on /fc/ekf_position"
        fix = next(m for m in got if m.status.status == NavSatStatus.STATUS_FIX)
        assert (fix.latitude, fix.longitude) == pytest.approx((47.02, -99.15), abs=1e-6)
        assert fix.header.frame_id == "fc_ekf"
        # no absolute horizontal position; constant-position mode (no source at all)
        for flags in (0x37F & ~16, 0x37F | 128):
            fc.update(ekf_flags=flags)
            got.clear()
            assert wait_until(lambda: len(got) >= 10, 10.0)
            assert got[-1].status.status == NavSatStatus.STATUS_NO_FIX, hex(flags)
    finally:
        stop_rig(ros, fc, node, probe)
