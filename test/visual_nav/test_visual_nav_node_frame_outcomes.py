"""The visual_nav node over real DDS: every camera frame ends in one ``FrameOutcome``,
frames over ``frame_max_rate_hz`` are decimated, and a worker that fell behind lets the
frames too late to matter go rather than matching the whole queue in order."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from fc_bridge.link_support import wait_until  # noqa: E402
from fc_bridge.node_support import spin_ros  # noqa: E402
from gps_denied_onboard.msg import FrameOutcome  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402

from gps_denied_onboard.nodes.visual_nav_node import VisualNavNode  # noqa: E402
from gps_denied_onboard.ros_topics import ns_to_time_msg, time_msg_to_ns  # noqa: E402

NS = 1_000_000_000
T0 = 1_000 * NS


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    yield from spin_ros()


def _stack(
    ros: MultiThreadedExecutor, *params: Parameter
) -> tuple[VisualNavNode, Node, object, list[FrameOutcome]]:
    name = f"visual_nav_{uuid.uuid4().hex[:8]}"
    node = VisualNavNode(
        node_name=name,
        parameter_overrides=[
            *params,
            Parameter("compressed_image_topic", value=f"/{name}_test/frames"),
            Parameter("camera_info_topic", value=f"/{name}_test/camera_info"),
            Parameter("tile_cache_node", value=f"{name}_no_tile_cache"),
        ],
    )
    peer = Node(f"{name}_camera")
    frames = peer.create_publisher(CompressedImage, f"/{name}_test/frames", 100)
    outcomes: list[FrameOutcome] = []
    peer.create_subscription(FrameOutcome, f"/{name}/frame_outcome", outcomes.append, 100)
    node.trigger_configure()
    node.trigger_activate()
    ros.add_node(node)
    ros.add_node(peer)
    assert wait_until(lambda: frames.get_subscription_count() > 0, 10.0)
    assert wait_until(lambda: node.count_subscribers(f"/{name}/frame_outcome") > 0, 10.0)
    return node, peer, frames, outcomes


def _close(ros: MultiThreadedExecutor, node: VisualNavNode, peer: Node) -> None:
    node.trigger_deactivate()
    for n in (node, peer):
        ros.remove_node(n)
        n.destroy_node()


def _frame(stamp: int) -> CompressedImage:
    msg = CompressedImage(format="jpeg", data=b"not a jpeg")
    msg.header.stamp = ns_to_time_msg(stamp)
    return msg


def test_a_10_hz_camera_is_matched_at_2_hz_and_every_frame_answered(
    ros: MultiThreadedExecutor,
) -> None:
    # the 3 s of stamps go out faster than a camera's, so the lag rule (by stamps: a frame
    # over frame_max_lag_s older than the newest waiting is let go) would drop a frame the
    # worker took 0.1 s to reach (1 run in 5 here: the 1.0 s frame went "late"); it has
    # its own test below, and this one pins the decimation. Each frame goes out once the
    # one before is answered: a burst of 30 in 0.3 s outran the best-effort camera
    # queue (FRAME_QOS, 10 deep) on a loaded machine, and lost frames never reach the node
    node, peer, frames, outcomes = _stack(ros, Parameter("frame_max_lag_s", value=0.0))
    try:
        stamps = [T0 + k * NS // 10 for k in range(30)]  # 3 s of a 10 Hz camera
        for k, s in enumerate(stamps):
            frames.publish(_frame(s))  # type: ignore[attr-defined]
            assert wait_until(lambda k=k: len(outcomes) > k, 10.0), (k, len(outcomes))
        time.sleep(0.2)  # nothing more comes: one outcome a frame
        assert len(outcomes) == len(stamps), len(outcomes)
        by_stamp = {time_msg_to_ns(o.header.stamp): (o.outcome, o.reason) for o in outcomes}
        assert sorted(by_stamp) == stamps  # one outcome each
        matched = sorted(s for s, (o, _) in by_stamp.items() if o == "reject")
        assert matched == [T0 + k * NS // 2 for k in range(6)]  # 2 Hz
        assert {by_stamp[s] for s in matched} == {("reject", "corrupt_image")}
        others = {by_stamp[s] for s in stamps if s not in matched}
        assert others == {("decimated", "")}
        stats = node.stats.as_dict()
        assert (stats["frames"], stats["frames_decimated"]) == (6, 24)
    finally:
        _close(ros, node, peer)


def test_a_worker_behind_lets_the_late_frames_go_and_catches_up_with_the_camera(
    ros: MultiThreadedExecutor,
) -> None:
    """Each frame waits a second for an attitude that never comes (a worker slower
    than the camera); a burst of 12 frames half a second apart arrives meanwhile.
    The worker takes the first, then skips to those within ``frame_max_lag_s`` of the
    newest: matching all 12 in order would have put the last fix 12 s late."""
    node, peer, frames, outcomes = _stack(
        ros,
        Parameter("attitude_wait_s", value=1.0),
        Parameter("frame_max_lag_s", value=1.0),
        Parameter("queue_depth", value=16),  # none dropped as busy
    )
    try:
        stamps = [T0 + k * NS // 2 for k in range(12)]
        for s in stamps:
            frames.publish(_frame(s))  # type: ignore[attr-defined]
            time.sleep(0.02)  # (a burst past the subscription's depth is lost in DDS)
        assert wait_until(lambda: len(outcomes) == len(stamps), 30.0), str(
            [((time_msg_to_ns(o.header.stamp) - T0) / NS, o.outcome, o.reason) for o in outcomes]
        )
        by_stamp = {time_msg_to_ns(o.header.stamp): (o.outcome, o.reason) for o in outcomes}
        assert sorted(by_stamp) == stamps  # one outcome each
        late = [s for s, v in by_stamp.items() if v == ("dropped", "late")]
        matched = sorted(s for s, (o, _) in by_stamp.items() if o == "reject")
        assert len(late) >= 6, by_stamp
        assert matched[0] == stamps[0] and matched[-1] == stamps[-1]
        assert len(matched) + len(late) == len(stamps)
        assert node.stats.as_dict()["dropped_late"] == len(late)
    finally:
        _close(ros, node, peer)


def test_a_late_stamping_driver_is_moved_back_to_the_exposure(
    ros: MultiThreadedExecutor,
) -> None:
    """``camera_time_offset_s``: a driver that stamps frames 50 ms after the exposure.
    The estimator, the fix and the frame's outcome all take the exposure time."""
    node, peer, frames, outcomes = _stack(ros, Parameter("camera_time_offset_s", value=-0.05))
    try:
        frames.publish(_frame(T0))  # type: ignore[attr-defined]
        assert wait_until(lambda: len(outcomes) == 1, 20.0)
        assert time_msg_to_ns(outcomes[0].header.stamp) == T0 - 50_000_000
        assert (outcomes[0].outcome, outcomes[0].reason) == ("reject", "corrupt_image")
    finally:
        _close(ros, node, peer)


def test_unstamped_frames_are_timed_on_arrival_not_taken_as_one_repeated_frame(
    ros: MultiThreadedExecutor,
) -> None:
    """A driver that leaves ``header.stamp`` zero: each frame is timed when it arrives
    (the node's clock), so they are matched at the rate cap like stamped ones. Taken
    at stamp 0, the first was refused for an attitude 50 years old and every later one
    decimated as its repeat: no fix at all."""
    node, peer, frames, outcomes = _stack(ros)
    try:
        sent = []
        for _ in range(5):
            sent.append(node.get_clock().now().nanoseconds)
            frames.publish(_frame(0))  # type: ignore[attr-defined]
            time.sleep(0.6)  # a 1.7 Hz camera: under frame_max_rate_hz (2), none decimated
        assert wait_until(lambda: len(outcomes) == 5, 20.0), len(outcomes)
        stamps = sorted(time_msg_to_ns(o.header.stamp) for o in outcomes)
        for s, at in zip(stamps, sorted(sent), strict=True):
            assert 0 <= s - at < NS // 2, (s - at) / NS  # its arrival, not 0
        assert {(o.outcome, o.reason) for o in outcomes} == {("reject", "corrupt_image")}
        assert node.stats.as_dict()["frames_unstamped"] == 5
    finally:
        _close(ros, node, peer)


@pytest.mark.parametrize("offset", [1.5, -2.0, float("nan")])
def test_a_camera_time_offset_past_a_second_is_a_config_error(offset: float) -> None:
    from gps_denied_onboard.errors import ConfigError
    from gps_denied_onboard.visual_nav.config import VisualNavConfig

    with pytest.raises(ConfigError) as err:
        VisualNavConfig(camera_time_offset_s=offset)
    assert err.value.key == "camera_time_offset_s"


def test_a_camera_publishing_best_effort_reaches_the_node(ros: MultiThreadedExecutor) -> None:
    """A driver on the sensor-data profile (best effort): a reliable subscription never
    matched it, and no frame came."""
    from rclpy.qos import qos_profile_sensor_data

    node, peer, _, outcomes = _stack(ros)
    try:
        name = node.get_name()
        frames = peer.create_publisher(
            CompressedImage, f"/{name}_test/frames", qos_profile_sensor_data
        )
        assert wait_until(lambda: frames.get_subscription_count() > 0, 10.0)
        frames.publish(_frame(T0))
        assert wait_until(lambda: len(outcomes) == 1, 20.0)
        assert (outcomes[0].outcome, outcomes[0].reason) == ("reject", "corrupt_image")
    finally:
        _close(ros, node, peer)
