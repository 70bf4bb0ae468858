"""The FC's telemetry reaches the estimator whole, over real DDS, whether or not
frames come: a burst the node could not take at once is queued, not cut to the
sensor profile's 5 (attitude holes made frames ``stale_attitude`` on a loaded
machine), inputs are applied while no frame arrives (the queue of them must
not grow for ever while the camera is silent), and the altitude, which comes
unstamped, takes the FC's clock from the attitude stream, not its arrival time."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from fc_bridge.link_support import wait_until  # noqa: E402
from fc_bridge.node_support import spin_ros  # noqa: E402
from gps_denied_onboard.msg import FcAltitude, FcStatus  # noqa: E402
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Imu  # noqa: E402

from gps_denied_onboard.nodes.visual_nav_node import VisualNavNode  # noqa: E402
from gps_denied_onboard.ros_topics import TOPIC_FC_STATUS, ns_to_time_msg  # noqa: E402

#: one attitude burst: 2.4 s of ATTITUDE at 25 Hz, relayed at once
BURST = 60
T0_NS = 1_700_000_000 * 10**9
PERIOD_NS = 40_000_000


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    yield from spin_ros()


def _node(name: str, *extra: Parameter) -> VisualNavNode:
    return VisualNavNode(
        node_name=name,
        parameter_overrides=[
            *extra,
            Parameter("compressed_image_topic", value=f"/{name}_test/frames"),
            Parameter("camera_info_topic", value=f"/{name}_test/camera_info"),
            Parameter("tile_cache_node", value=f"{name}_no_tile_cache"),
        ],
    )


def _attitude(stamp_ns: int) -> Imu:
    m = Imu()
    m.header.stamp = ns_to_time_msg(stamp_ns)
    m.orientation.w = 1.0
    return m


def _bridge(ros: MultiThreadedExecutor, name: str) -> tuple[Node, Any]:
    """A publisher of /fc/imu with the FC bridge's own QoS, on its own node."""
    peer = Node(f"{name}_bridge")
    pub = peer.create_publisher(Imu, "/fc/imu", qos_profile_sensor_data)
    ros.add_node(peer)
    return peer, pub


def test_an_attitude_burst_the_node_could_not_take_at_once_reaches_the_estimator_whole(
    ros: MultiThreadedExecutor,
) -> None:
    name = f"visual_nav_{uuid.uuid4().hex[:8]}"
    node = _node(name)
    peer, imu = _bridge(ros, name)
    executor = SingleThreadedExecutor()
    try:
        node.trigger_configure()
        node.trigger_activate()
        est = node._estimator
        assert est is not None
        assert wait_until(lambda: imu.get_subscription_count() > 0, 10.0)
        # the node's executor is not spinning: the whole burst waits in its DDS queue
        for k in range(BURST):
            imu.publish(_attitude(T0_NS + k * PERIOD_NS))
        time.sleep(1.0)
        executor.add_node(node)
        end = time.monotonic() + 10.0
        while len(est.attitude) < BURST and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        # applied by the worker with no frame to wake it (see the next test)
        assert len(est.attitude) == BURST
    finally:
        node.trigger_deactivate()
        executor.shutdown()
        node.destroy_node()
        peer.destroy_node()


@contextmanager
def _active_on(
    ros: MultiThreadedExecutor, *params: Parameter
) -> Iterator[tuple[VisualNavNode, Node, Any]]:
    """An active node spun by ``ros``, and a bridge peer whose /fc/imu it hears."""
    name = f"visual_nav_{uuid.uuid4().hex[:8]}"
    node = _node(name, *params)
    peer, imu = _bridge(ros, name)
    try:
        node.trigger_configure()
        node.trigger_activate()
        ros.add_node(node)
        assert node._estimator is not None
        assert wait_until(lambda: imu.get_subscription_count() > 0, 10.0)
        yield node, peer, imu
    finally:
        node.trigger_deactivate()
        ros.remove_node(node)
        node.destroy_node()
        peer.destroy_node()


def test_inputs_are_applied_while_no_frame_comes(ros: MultiThreadedExecutor) -> None:
    with _active_on(ros) as (node, _, imu):
        est = node._estimator
        assert est is not None
        for k in range(5):
            imu.publish(_attitude(T0_NS + k * PERIOD_NS))
            time.sleep(0.02)
        # no camera frame at all: the samples still reach the estimator, and the
        # node holds nothing back for it
        assert wait_until(lambda: len(est.attitude) == 5, 10.0), len(est.attitude)
        assert wait_until(lambda: not node._inputs.pending, 5.0)


def test_body_rates_shape_the_attitude_only_where_their_variance_says_measured(
    ros: MultiThreadedExecutor,
) -> None:
    """The FC bridge's /fc/imu carries ATTITUDE's gyro rates with a variance: the
    attitude between two samples follows them. An Imu whose rates have no variance
    (0: unknown, REP 145; most publishers leave them at 0 with the rates) is slerped."""
    with _active_on(ros) as (node, _, imu):
        est = node._estimator
        assert est is not None
        for variance, base in ((1e-4, T0_NS), (0.0, T0_NS + 10 * 10**9)):
            for k in range(2):
                m = _attitude(base + k * PERIOD_NS)
                m.angular_velocity.x = 0.5 * (-1) ** k  # rolling one way, then back
                m.angular_velocity_covariance[0] = variance
                imu.publish(m)
        assert wait_until(lambda: len(est.attitude) == 4, 10.0), len(est.attitude)
        assert wait_until(lambda: not node._inputs.pending, 5.0)
        level = np.eye(3)
        # both samples level, rolling at +-0.5 rad/s: between them the curve rolls
        shaped = est.attitude.at(T0_NS + PERIOD_NS // 2)
        assert math.degrees(math.acos(min(1.0, shaped[2, 2]))) > 0.05
        # the same without a variance: level throughout
        plain = est.attitude.at(T0_NS + 10 * 10**9 + PERIOD_NS // 2)
        assert np.allclose(plain, level)


def test_an_altitude_is_taken_at_the_fc_clock_it_carries_not_its_arrival(
    ros: MultiThreadedExecutor,
) -> None:
    with _active_on(ros, Parameter("ground_elevation_msl", value=500.0)) as (node, peer, _imu):
        est = node._estimator
        assert est is not None
        alt = peer.create_publisher(FcAltitude, "/fc/altitude", qos_profile_sensor_data)
        assert wait_until(lambda: alt.get_subscription_count() > 0, 10.0)
        # the link lags: each sample reaches the node 300-400 ms after the FC sent it
        s0 = time.time_ns() - 400_000_000
        for k, amsl in enumerate((890.0, 900.0, 910.0)):
            _altitude(node, alt, s0 + k * 100_000_000, amsl)
        # 50 ms after the second FC time: carried on along the climb from the samples
        # up to it (by arrival stamps all three would lie after it, and the first answer)
        assert est.height.at(s0 + 150_000_000, tilt_cos=1.0).height_m == pytest.approx(405.0)


def _altitude(node: VisualNavNode, alt: Any, stamp_ns: int, amsl: float) -> None:
    """As the bridge relays the FC's altitude: stamped with the FC's clock."""
    est = node._estimator
    assert est is not None
    msg = FcAltitude(amsl=amsl, source="vfr_hud")
    msg.header.stamp = ns_to_time_msg(stamp_ns)
    alt.publish(msg)
    assert wait_until(lambda: est.height.altitude_msl() == amsl, 5.0)


def test_altitudes_before_the_first_status_are_not_taken_for_the_ground(
    ros: MultiThreadedExecutor,
) -> None:
    """visual_nav (re)started in flight with no ground elevation configured: the
    altitudes that come before the first /fc/status are the aircraft's, 500 m up,
    not home's (taken for it, every height would have been ~0 and every frame
    ``no_height`` for the rest of the flight). Disarmed by the FC's word, the
    altitude is home's and learned."""
    with _active_on(ros) as (node, peer, _imu):
        est = node._estimator
        assert est is not None and est.height.ground_elevation_msl is None
        alt = peer.create_publisher(FcAltitude, "/fc/altitude", qos_profile_sensor_data)
        status = peer.create_publisher(FcStatus, TOPIC_FC_STATUS, 10)
        assert wait_until(lambda: alt.get_subscription_count() > 0, 10.0)
        assert wait_until(lambda: status.get_subscription_count() > 0, 10.0)
        _altitude(node, alt, time.time_ns(), 1080.0)
        assert est.height.ground_elevation_msl is None
        msg = FcStatus()
        msg.armed = False
        status.publish(msg)
        assert wait_until(lambda: node._inputs.armed is False, 5.0)
        _altitude(node, alt, time.time_ns() + 1_000_000, 580.0)
        assert est.height.ground_elevation_msl == 580.0


def test_the_fc_home_latched_before_a_restart_becomes_the_ground(
    ros: MultiThreadedExecutor,
) -> None:
    """visual_nav restarted in flight, no ground elevation configured, no rangefinder:
    the FC bridge latched the FC's home long before. It arrives while the node is
    still inactive (configure made the subscription) and is the new estimator's
    ground from activation on (that no later disarmed altitude moves it is
    ``test_visual_nav_state``'s). A configured elevation stands over it."""
    from sensor_msgs.msg import NavSatFix

    from gps_denied_onboard.ros_topics import LATCHED_QOS, TOPIC_FC_HOME

    bridge = Node(f"fc_home_{uuid.uuid4().hex[:8]}")
    home_pub = bridge.create_publisher(NavSatFix, TOPIC_FC_HOME, LATCHED_QOS)
    home = NavSatFix()
    home.latitude, home.longitude, home.altitude = 47.9, -97.1, 575.5
    home_pub.publish(home)
    ros.add_node(bridge)
    try:
        for configured in (None, 580.0):
            name = f"visual_nav_{uuid.uuid4().hex[:8]}"
            extra = [] if configured is None else [Parameter("ground_elevation_msl", value=580.0)]
            node = _node(name, *extra)
            ros.add_node(node)
            try:
                node.trigger_configure()
                assert wait_until(lambda n=node: n._home is not None, 10.0), "no /fc/home"
                est = node._estimator
                assert est is not None and est.height.ground_elevation_msl == configured
                node.trigger_activate()
                if configured is None:
                    assert wait_until(lambda e=est: e.height.ground_elevation_msl == 575.5, 5.0)
                else:
                    assert wait_until(lambda n=node: not n._inputs.pending, 5.0)
                    assert est.height.ground_elevation_msl == 580.0
            finally:
                node.trigger_deactivate()
                ros.remove_node(node)
                node.destroy_node()
    finally:
        ros.remove_node(bridge)
        bridge.destroy_node()


def test_the_fc_ekf_position_reaches_the_prior_only_as_a_fix(ros: MultiThreadedExecutor) -> None:
    """/fc/ekf_position over DDS: a fix becomes the estimator's last-resort prior and
    the prefetch's position (no GNSS, no track, no seed: a restart in flight); one the
    EKF does not stand behind (no fix) is not taken."""
    from sensor_msgs.msg import NavSatFix, NavSatStatus

    from gps_denied_onboard.ros_topics import TOPIC_FC_EKF_POSITION

    with _active_on(ros) as (node, peer, _imu):
        est = node._estimator
        assert est is not None and node._inputs.position is None
        pub = peer.create_publisher(NavSatFix, TOPIC_FC_EKF_POSITION, qos_profile_sensor_data)
        assert wait_until(lambda: pub.get_subscription_count() > 0, 10.0)
        stamp = time.time_ns()
        msg = NavSatFix()
        msg.header.stamp = ns_to_time_msg(stamp)
        msg.latitude, msg.longitude = 47.02, -99.15
        msg.status.status = NavSatStatus.STATUS_NO_FIX
        pub.publish(msg)
        time.sleep(0.5)
        assert est.prior_at(stamp) is None and node._inputs.position is None
        msg.status.status = NavSatStatus.STATUS_FIX
        pub.publish(msg)
        assert wait_until(lambda: est.prior_at(stamp) is not None, 5.0)
        prior = est.prior_at(stamp)
        assert prior is not None and prior.source == "fc_estimate"
        assert (prior.latitude, prior.longitude) == pytest.approx((47.02, -99.15))
        assert node._inputs.position == pytest.approx((47.02, -99.15))


def test_the_bridges_latched_last_fix_is_the_track_a_restarted_node_resumes(
    ros: MultiThreadedExecutor,
) -> None:
    """visual_nav restarted in flight: the FC bridge latched the newest fix it took
    (``/fc/sent_fix``) before the restart. It arrives while the node is still
    inactive, and from activation on the estimator's track resumes from it,
    dead-reckoned with its velocity; the prefetch fetches around it. A fix whose
    covariance states nothing is not taken."""
    from gps_denied_onboard.msg import PositionFix

    from gps_denied_onboard.ros_topics import LATCHED_QOS, TOPIC_FC_SENT_FIX

    bridge = Node(f"fc_sent_{uuid.uuid4().hex[:8]}")
    pub = bridge.create_publisher(PositionFix, TOPIC_FC_SENT_FIX, LATCHED_QOS)
    ros.add_node(bridge)
    stamp = T0_NS
    fix = PositionFix()
    fix.header.stamp = ns_to_time_msg(stamp)
    fix.latitude, fix.longitude, fix.altitude_msl = 47.02, -99.15, 1080.0
    fix.velocity_enu.x, fix.velocity_enu.y, fix.velocity_valid = 20.0, 0.0, True
    fix.velocity_covariance = [0.25, 0.0, 0.0, 0.0, 0.25, 0.0, 0.0, 0.0, 0.25]
    fix.reset_counter = 9  # the bridge's relocalisations so far: our fixes carry it on
    try:
        for stated in (False, True):
            fix.position_covariance = [9.0 if stated else 0.0] * 9
            pub.publish(fix)
            name = f"visual_nav_{uuid.uuid4().hex[:8]}"
            node = _node(name)
            ros.add_node(node)
            try:
                node.trigger_configure()
                assert wait_until(lambda n=node: n._sent_fix is not None, 10.0), "no latch"
                est = node._estimator
                assert est is not None
                node.trigger_activate()
                assert wait_until(lambda n=node: not n._inputs.pending, 5.0)
                if not stated:
                    assert est.priors.track is None and node._inputs.position is None
                    assert est.reset_counter == 0
                    continue
                assert wait_until(lambda e=est: e.priors.track is not None, 5.0)
                later = est.prior_at(stamp + 10 * 10**9)
                assert later is not None and later.source == "resumed"
                # 10 s at 20 m/s east: 200 m on from the fix, its sigma grown from 3 m
                assert later.longitude > -99.15 + 0.0025 and later.sigma_m > 3.0
                assert node._inputs.position == pytest.approx((47.02, -99.15))
                assert est.reset_counter == 9
            finally:
                node.trigger_deactivate()
                ros.remove_node(node)
                node.destroy_node()
    finally:
        ros.remove_node(bridge)
        bridge.destroy_node()


def test_the_gnss_velocity_reaches_the_estimator_with_its_accuracy(
    ros: MultiThreadedExecutor,
) -> None:
    """/fc/gnss_velocity over DDS, as the FC bridge publishes it: ENU m/s with the
    accuracy's variance first in the covariance, or -1 there when the GNSS did not
    report one (the estimator's default accuracy then)."""
    from geometry_msgs.msg import TwistWithCovarianceStamped

    from gps_denied_onboard.ros_topics import TOPIC_FC_GNSS_VELOCITY

    with _active_on(ros) as (node, peer, _imu):
        est = node._estimator
        assert est is not None
        pub = peer.create_publisher(
            TwistWithCovarianceStamped, TOPIC_FC_GNSS_VELOCITY, qos_profile_sensor_data
        )
        assert wait_until(lambda: pub.get_subscription_count() > 0, 10.0)
        for k, (east, north, var) in enumerate(((12.0, 5.0, 0.09), (12.5, 4.0, -1.0))):
            msg = TwistWithCovarianceStamped()
            msg.header.stamp = ns_to_time_msg(T0_NS + k * 200_000_000)
            msg.twist.twist.linear.x, msg.twist.twist.linear.y = east, north
            msg.twist.covariance[0] = var
            pub.publish(msg)
        assert wait_until(lambda: est.correction.velocity_at(T0_NS + 200_000_000) is not None, 5.0)
        first = est.correction.velocity_at(T0_NS)
        second = est.correction.velocity_at(T0_NS + 200_000_000)
        assert first == pytest.approx((12.0, 5.0, 0.3))
        default = est.cfg.gnss_correction.default_velocity_sigma_mps
        assert second == pytest.approx((12.5, 4.0, default))
        # halfway: the two interpolated, the wider accuracy kept
        mid = est.correction.velocity_at(T0_NS + 100_000_000)
        assert mid == pytest.approx((12.25, 4.5, max(0.3, default)))
