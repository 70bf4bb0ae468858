"""/fc/gnss_velocity from the fc_bridge node against the simulated FC, over UDP and real
DDS: GPS_RAW_INT's speed and course over ground as an ENU twist, stamped as the
/fc/navsat from the same message. (The decoding: ``test_fc_telemetry_decode.py``.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

rclpy = pytest.importorskip("rclpy")

from geometry_msgs.msg import TwistWithCovarianceStamped  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import NavSatFix  # noqa: E402

from gps_denied_onboard.fc_bridge.sim_fc import SimFc  # noqa: E402
from gps_denied_onboard.nodes.fc_bridge_node import FcBridgeNode  # noqa: E402
from gps_denied_onboard.ros_topics import TOPIC_FC_GNSS_VELOCITY, TOPIC_FC_NAVSAT  # noqa: E402

from .link_support import wait_until  # noqa: E402
from .node_support import make_node, spin_ros, stop_rig  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    yield from spin_ros()


def _stamp_ns(msg: NavSatFix | TwistWithCovarianceStamped) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def _rig(
    ros: MultiThreadedExecutor, fc: SimFc, name: str
) -> tuple[FcBridgeNode, Node, list[NavSatFix], list[TwistWithCovarianceStamped]]:
    """The node, and a probe subscribed to /fc/navsat and /fc/gnss_velocity before the
    node is even configured (no message lost to discovery after it goes live)."""
    node = make_node(fc.connection)
    probe = Node(name)
    navsats: list[NavSatFix] = []
    twists: list[TwistWithCovarianceStamped] = []
    probe.create_subscription(NavSatFix, TOPIC_FC_NAVSAT, navsats.append, qos_profile_sensor_data)
    probe.create_subscription(
        TwistWithCovarianceStamped, TOPIC_FC_GNSS_VELOCITY, twists.append, qos_profile_sensor_data
    )
    ros.add_node(node)
    ros.add_node(probe)
    return node, probe, navsats, twists


def test_gnss_velocity_is_published_in_enu_with_the_fix_stamp(
    ros: MultiThreadedExecutor,
) -> None:
    """The sim flies 12 m/s east and 5 m/s north, climbing at 1 m/s: GPS_RAW_INT says
    13 m/s at course 67.38 deg, vel_acc 300 mm/s. The twist: x east, y north, z 0 with
    a huge variance (GPS_RAW_INT has no vertical velocity), east/north variance 0.3^2,
    in ``fc_gnss``, stamped exactly as the NavSatFix from the same GPS_RAW_INT."""
    fc = SimFc("ardupilot", heartbeat_hz=5.0, telemetry_hz=10.0)
    fc.update(vel_ned_mps=(5.0, 12.0, -1.0))
    fc.start()
    node, probe, navsats, twists = _rig(ros, fc, "fc_gnss_velocity_probe")

    def paired() -> list[tuple[NavSatFix, TwistWithCovarianceStamped]]:
        fixes = {_stamp_ns(n): n for n in list(navsats)}
        return [(fixes[_stamp_ns(t)], t) for t in list(twists) if _stamp_ns(t) in fixes]

    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert wait_until(lambda: len(paired()) >= 3, 15.0), (len(navsats), len(twists))
        pairs = paired()
        # one twist per GPS_RAW_INT: distinct stamps, each a NavSatFix's to the nanosecond
        assert len({_stamp_ns(t) for _, t in pairs}) == len(pairs)
        for fix, tw in pairs:
            assert tw.header.stamp == fix.header.stamp
            assert tw.header.frame_id == "fc_gnss" == fix.header.frame_id
            lin, ang = tw.twist.twist.linear, tw.twist.twist.angular
            # 1 cm/s speed and 0.01 deg course on the wire: within 1 cm/s on each axis
            assert lin.x == pytest.approx(12.0, abs=0.01)  # east
            assert lin.y == pytest.approx(5.0, abs=0.01)  # north
            assert lin.z == 0.0
            assert (ang.x, ang.y, ang.z) == (0.0, 0.0, 0.0)
            cov = [float(v) for v in tw.twist.covariance]
            assert cov[0] == pytest.approx(0.09) and cov[7] == pytest.approx(0.09)
            assert [cov[14], cov[21], cov[28], cov[35]] == [pytest.approx(1e6)] * 4
            assert sum(abs(v) for v in cov) == pytest.approx(0.18 + 4e6)  # diagonal only
    finally:
        stop_rig(ros, fc, node, probe)


def test_gnss_velocity_waits_for_a_3d_fix(ros: MultiThreadedExecutor) -> None:
    """With a 2D fix the FC's NavSatFix goes out and no velocity does; once the fix is
    3D, the velocity follows (here 3 m/s south, 4 m/s east)."""
    fc = SimFc("ardupilot", heartbeat_hz=5.0, telemetry_hz=10.0)
    fc.update(vel_ned_mps=(-3.0, 4.0, 0.0), fix_type=2)
    fc.start()
    node, probe, navsats, twists = _rig(ros, fc, "fc_gnss_velocity_2d_probe")
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert wait_until(lambda: len(navsats) >= 6, 15.0), len(navsats)
        assert twists == []  # only 2D fixes so far, however many went out
        fc.update(fix_type=3)
        assert wait_until(lambda: bool(twists), 10.0), "no /fc/gnss_velocity after a 3D fix"
        lin = twists[-1].twist.twist.linear
        assert lin.x == pytest.approx(4.0, abs=0.01)  # east
        assert lin.y == pytest.approx(-3.0, abs=0.01)  # north
    finally:
        stop_rig(ros, fc, node, probe)
