"""The replay's lockstep with the estimator over real DDS: a frame the estimator held
when it restarted is written off at once, not waited for.

The estimator is the real ``visual_nav`` lifecycle node, driven through its
transitions here as the take-off sequencer drives a respawned one; its
``transition_event`` reaches the lockstep's :class:`EstimatorWatch` over DDS. The
lockstep's inner sink mostly keeps what it is given (publishing frames onto DDS is
the replay publisher's concern, ``test_replay_dds.py``); one test's publishes the
frames to the node, whose every frame's ``FrameOutcome`` is the answer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from fc_bridge.link_support import wait_until  # noqa: E402
from fc_bridge.node_support import spin_ros  # noqa: E402
from gps_denied_onboard.msg import FrameOutcome, PositionFix  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402

from gps_denied_onboard.nodes.visual_nav_node import VisualNavNode  # noqa: E402
from gps_denied_onboard.replay.estimator_lockstep import (  # noqa: E402
    EstimatorLockstepSink,
    EstimatorWatch,
)
from gps_denied_onboard.ros_topics import (  # noqa: E402
    RECORD_QOS,
    TOPIC_POSITION_FIX,
    ns_to_time_msg,
)

CAMERA = "/camera/image_raw/compressed"
#: longer than any test here runs: a wait that ends did not end by timing out
NEVER_S = 600.0


class KeptSink:
    """The lockstep's inner sink: keeps what it is asked to publish."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    def publish(self, topic: str, data: bytes) -> None:
        self.published.append((topic, data))

    def publish_clock(self, sim_ns: int) -> None:
        pass


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    yield from spin_ros()


@pytest.fixture
def stack(ros: MultiThreadedExecutor) -> Iterator[tuple[Node, VisualNavNode, EstimatorWatch]]:
    watcher = Node("lockstep_watcher")
    watch = EstimatorWatch(watcher)
    estimator = VisualNavNode()
    ros.add_node(watcher)
    ros.add_node(estimator)
    topic = "/visual_nav/transition_event"
    assert wait_until(lambda: watcher.count_publishers(topic) >= 1, 20.0)
    assert wait_until(lambda: estimator.count_subscribers(topic) >= 1, 20.0)
    try:
        yield watcher, estimator, watch
    finally:
        for node in (estimator, watcher):
            ros.remove_node(node)
            node.destroy_node()


def _finish_in_thread(lockstep: EstimatorLockstepSink) -> threading.Thread:
    t = threading.Thread(target=lockstep.finish, daemon=True)
    t.start()
    return t


def test_a_frame_held_when_the_estimator_reactivates_is_written_off_not_waited_for(
    stack: tuple[Node, VisualNavNode, EstimatorWatch],
) -> None:
    _, estimator, watch = stack
    lockstep = EstimatorLockstepSink(KeptSink(), watch, lambda t: t == CAMERA, NEVER_S)
    assert estimator.trigger_configure() == TransitionCallbackReturn.SUCCESS  # not active: no epoch
    lockstep.publish(CAMERA, b"frame 1")
    waiting = _finish_in_thread(lockstep)
    waiting.join(timeout=2.0)
    assert waiting.is_alive(), "the lockstep stopped waiting with nothing answered"
    assert watch.epoch == 0

    assert (
        estimator.trigger_activate() == TransitionCallbackReturn.SUCCESS
    )  # a respawned estimator's
    waiting.join(timeout=60.0)
    assert not waiting.is_alive(), "the lockstep still waits for a frame the estimator lost"
    assert watch.epoch == 1
    assert (lockstep.unanswered, lockstep.lost_to_restart) == (1, 1)
    assert "1 held by the estimator when it restarted" in lockstep.describe()

    # a deactivation drops the node's queue too
    lockstep.publish(CAMERA, b"frame 2")
    waiting = _finish_in_thread(lockstep)
    assert estimator.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    waiting.join(timeout=60.0)
    assert not waiting.is_alive()
    assert (lockstep.unanswered, lockstep.lost_to_restart) == (2, 2)
    assert [d for _, d in lockstep.inner.published] == [b"frame 1", b"frame 2"]


def test_a_frame_sent_after_the_restart_is_waited_for_and_counted_answered(
    ros: MultiThreadedExecutor, stack: tuple[Node, VisualNavNode, EstimatorWatch]
) -> None:
    watcher, estimator, watch = stack
    answers = watcher.create_publisher(PositionFix, TOPIC_POSITION_FIX, RECORD_QOS)
    outcomes = watcher.create_publisher(FrameOutcome, "/visual_nav/frame_outcome", 10)
    assert wait_until(lambda: answers.get_subscription_count() >= 1, 20.0)
    assert wait_until(lambda: outcomes.get_subscription_count() >= 1, 20.0)
    lockstep = EstimatorLockstepSink(KeptSink(), watch, lambda t: t == CAMERA, NEVER_S)
    assert estimator.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert estimator.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert wait_until(lambda: watch.epoch == 1, 20.0)

    lockstep.publish(CAMERA, b"frame 1")  # after the restart: its answer is awaited
    waiting = _finish_in_thread(lockstep)
    waiting.join(timeout=2.0)
    assert waiting.is_alive(), "a frame sent after the restart was written off"
    outcomes.publish(FrameOutcome(outcome="fix"))
    waiting.join(timeout=2.0)
    assert waiting.is_alive(), "a fix's outcome was taken before its PositionFix came"
    answers.publish(PositionFix())
    waiting.join(timeout=60.0)
    assert not waiting.is_alive()
    assert (lockstep.unanswered, lockstep.lost_to_restart) == (0, 0)
    assert len(watch.fixes) == 1


def test_the_watch_follows_the_node_it_is_told_to(ros: MultiThreadedExecutor) -> None:
    watcher = Node("lockstep_watcher_named")
    EstimatorWatch(watcher, estimator_node="/air/visual_nav/")
    ros.add_node(watcher)
    try:
        topics: dict[str, Any] = dict(
            watcher.get_subscriber_names_and_types_by_node("lockstep_watcher_named", "/")
        )
        assert "/air/visual_nav/transition_event" in topics
    finally:
        ros.remove_node(watcher)
        watcher.destroy_node()


class DdsSink(KeptSink):
    """The lockstep's inner sink, publishing camera frames to the node over DDS."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.pub = node.create_publisher(CompressedImage, CAMERA, 10)

    def publish(self, topic: str, data: bytes) -> None:
        super().publish(topic, data)
        self.pub.publish(deserialize_message(data, CompressedImage))


def test_a_fast_camera_replayed_in_lockstep_is_answered_frame_by_frame(
    stack: tuple[Node, VisualNavNode, EstimatorWatch],
) -> None:
    """A 10 Hz camera: 4 frames in 5 over the node's frame_max_rate_hz (2) are
    answered as decimated, the others as rejects (not an image). Two rejects
    half a second apart used to leave the second unanswered (its ``vnav.reject``
    record was rate-capped), each such frame waited out for the whole answer
    timeout."""
    watcher, estimator, watch = stack
    sink = DdsSink(watcher)
    lockstep = EstimatorLockstepSink(sink, watch, lambda t: t == CAMERA, 15.0)
    assert estimator.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert estimator.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert wait_until(lambda: watch.epoch == 1, 20.0)
    assert wait_until(lambda: sink.pub.get_subscription_count() >= 1, 20.0)
    for k in range(20):
        frame = CompressedImage(format="jpeg", data=b"not a jpeg")
        frame.header.stamp = ns_to_time_msg(1_000 * 10**9 + k * 100_000_000)
        lockstep.publish(CAMERA, serialize_message(frame))
    lockstep.finish()
    assert lockstep.unanswered == 0, lockstep.describe()
    assert [r for _, r in watch.rejects] == ["corrupt_image"] * 4
    assert [r for _, r in watch.let_go] == ["decimated"] * 16
    assert sorted(s for s, _ in watch.rejects) == [
        1_000 * 10**9 + k * 500_000_000 for k in range(4)
    ]
    assert estimator.stats.as_dict()["frames_decimated"] == 16
