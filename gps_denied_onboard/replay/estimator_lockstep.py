"""Replay in lockstep with the visual estimator: no camera frame is ever dropped.

An engineer re-running a flight on the ground wants the fixes the aircraft
would have computed, whatever the ground machine's speed. A plain replay at a
rate the estimator cannot keep up with makes the node let frames go (it says so:
``vnav.frame_dropped reason=busy`` or ``late``), and the fixes then differ from
the flight's. In lockstep, frame k+1 is not published until the estimator has
answered frame k: its ``FrameOutcome`` on ``/visual_nav/frame_outcome`` (a fix,
whose ``/nav/position_fix`` is awaited too; a reject; a frame over the node's
``frame_max_rate_hz``, decimated as the aircraft's own node would). The
``vnav.reject`` records do not serve: they are rate-capped, and two rejects
within a second used to leave the second frame unanswered, the replay stalled
for the whole answer timeout. Meanwhile the player is paused, so its timeline
(and ``/clock``) stands still. A slow machine makes the replay slower, never
lossy. A frame not answered within ``answer_timeout_s`` is counted as
unanswered and reported.

An estimator that leaves or (re-)enters its active state (its lifecycle
``transition_event``) will never answer the frames it held: a process killed
in flight and respawned comes up with an empty queue, a deactivated one drops
its queue. The lockstep stops waiting for them then, counts them unanswered
(``lost_to_restart``) and goes on: the replay stands still for the time the
estimator was away, not for the whole answer timeout (in the main job with
visual_nav killed by SIGKILL, a 20 s hole in the fixes the FC got where the
node itself was back in under 6 s).

This is the thin rclpy side; the main job (``nodes/demo.py``) and
``gdo-replay --wait-for-estimator`` both use it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

#: message types that carry camera frames
CAMERA_TYPES = frozenset(
    {
        "sensor_msgs/msg/CompressedImage",
        "sensor_msgs/msg/Image",
        "sensor_msgs/CompressedImage",
        "sensor_msgs/Image",
    }
)


#: the estimator node whose lifecycle the lockstep follows
ESTIMATOR_NODE = "/visual_nav"


class EstimatorWatch:
    """What the estimator answered, frame by frame: fixes (``/nav/position_fix``),
    rejects, frames it let go (decimated, dropped) and latencies (its
    ``~/frame_outcome``), counted for the lockstep; and how often it entered or left
    its active state (:attr:`epoch`)."""

    def __init__(self, node: Any, estimator_node: str = ESTIMATOR_NODE) -> None:
        from lifecycle_msgs.msg import State, TransitionEvent
        from rclpy.qos import QoSProfile

        from gps_denied_onboard.msg import FrameOutcome, PositionFix
        from gps_denied_onboard.ros_topics import RECORD_QOS, TOPIC_POSITION_FIX

        self.fixes: list[Any] = []
        self.rejects: list[tuple[int, str]] = []
        #: frames the estimator took no fix or reject from: (stamp, "decimated" or why
        #: dropped: "busy", "late", "stopped")
        self.let_go: list[tuple[int, str]] = []
        self.latency_ms: dict[int, float] = {}
        self._fix_outcomes = 0
        #: transitions of the estimator into or out of its active state seen so far
        self.epoch = 0
        self._active_id = State.PRIMARY_STATE_ACTIVE
        self._cond = threading.Condition()
        node.create_subscription(PositionFix, TOPIC_POSITION_FIX, self._on_fix, RECORD_QOS)
        node.create_subscription(
            FrameOutcome,
            f"{estimator_node.rstrip('/')}/frame_outcome",
            self._on_outcome,
            QoSProfile(depth=100),
        )
        # rcl_lifecycle publishes every transition here (reliable, volatile, depth 10),
        # on Humble as on Jazzy, whoever drives the node
        node.create_subscription(
            TransitionEvent,
            f"{estimator_node.rstrip('/')}/transition_event",
            self._on_transition,
            QoSProfile(depth=10),
        )

    @property
    def answers(self) -> int:
        """Frames answered: a fix counts once its ``PositionFix`` has come too."""
        return min(self._fix_outcomes, len(self.fixes)) + len(self.rejects) + len(self.let_go)

    def _on_fix(self, msg: Any) -> None:
        with self._cond:
            self.fixes.append(msg)
            self._cond.notify_all()

    def _on_outcome(self, msg: Any) -> None:
        from gps_denied_onboard.ros_topics import time_msg_to_ns

        stamp = time_msg_to_ns(msg.header.stamp)
        with self._cond:
            if msg.outcome == "fix":
                self._fix_outcomes += 1
                self.latency_ms[stamp] = float(msg.latency_ms)
            elif msg.outcome == "reject":
                self.rejects.append((stamp, str(msg.reason)))
                self.latency_ms[stamp] = float(msg.latency_ms)
            else:
                self.let_go.append((stamp, str(msg.reason or msg.outcome)))
            self._cond.notify_all()

    def _on_transition(self, msg: Any) -> None:
        if self._active_id in (msg.start_state.id, msg.goal_state.id):
            with self._cond:
                self.epoch += 1
                self._cond.notify_all()

    def wait_answers(self, count: int, timeout_s: float, epoch: int | None = None) -> bool:
        """Wait until ``count`` answers came, or (``epoch`` given) the estimator entered
        or left its active state since ``epoch``; False when ``timeout_s`` passed first."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self.answers >= count or (epoch is not None and self.epoch != epoch),
                timeout_s,
            )


class EstimatorLockstepSink:
    """Replay sink that lets no camera frame out before the estimator answered the last.

    While the estimator works on frame k the replay goes on (the FC stream, the
    clock); frame k+1 waits until frame k is answered, with the player paused
    meanwhile, so its timeline (and ``/clock``, and the FC stream that follows
    it) stands still. Every frame is matched, at any replay rate: a machine that
    cannot keep up makes the replay slower, never drops a frame.
    """

    def __init__(
        self,
        inner: Any,
        watch: EstimatorWatch,
        is_camera: Callable[[str], bool],
        answer_timeout_s: float = 20.0,
    ) -> None:
        self._inner = inner
        self._watch = watch
        self._is_camera = is_camera
        self._timeout = answer_timeout_s
        self.player: Any = None
        self.frames = 0
        self.unanswered = 0
        #: of the unanswered, frames the estimator held when it left or re-entered its
        #: active state (killed and respawned, deactivated)
        self.lost_to_restart = 0
        self._epoch = watch.epoch  # the estimator's epoch when the last frame went out

    @property
    def inner(self) -> Any:
        """The sink this one wraps."""
        return self._inner

    def publish(self, topic: str, data: bytes) -> None:
        if self._is_camera(topic):
            self.finish()
            self.frames += 1
            self._epoch = self._watch.epoch
        self._inner.publish(topic, data)

    def finish(self) -> None:
        """Wait (player paused) until every frame sent so far was answered, or the
        estimator left or re-entered its active state since the last one went out
        (those it held are lost: counted unanswered, and :attr:`lost_to_restart`)."""
        want = self.frames - self.unanswered
        if self._watch.answers >= want:
            return
        if self.player is not None:
            self.player.pause()
        if not self._watch.wait_answers(want, self._timeout, self._epoch):
            self.unanswered += 1
        elif (lost := want - self._watch.answers) > 0:
            self.unanswered += lost
            self.lost_to_restart += lost
        if self.player is not None:
            self.player.resume()

    def publish_clock(self, sim_ns: int) -> None:
        self._inner.publish_clock(sim_ns)

    def wait_until_matched(self, node: Any, clock: Any, timeout_s: float) -> bool:
        """Wait until the estimator subscribes to every camera topic and answers on ours.

        A frame published before DDS matched the estimator's subscription is never
        delivered (volatile durability), and the lockstep would wait out its whole
        answer timeout for it. ``clock``: the host clock (``now_ns``).
        """
        from gps_denied_onboard.ros_topics import TOPIC_POSITION_FIX

        deadline = clock.now_ns() + int(timeout_s * 1e9)
        while clock.now_ns() < deadline:
            counts = self._inner.subscriber_counts()
            cameras = [n for n in counts if self._is_camera(n)]
            if (
                cameras
                and all(counts[n] > 0 for n in cameras)
                and node.count_publishers(TOPIC_POSITION_FIX) > 0
            ):
                return True
            threading.Event().wait(0.05)
        return False

    def describe(self) -> str:
        """One line for the operator: frames, answers, and what was not answered."""
        w = self._watch
        return (
            f"estimator lockstep: {self.frames} camera frames, {len(w.fixes)} fixes, "
            f"{len(w.rejects)} rejects, {len(w.let_go)} let go (decimated, dropped), "
            f"{self.unanswered} unanswered "
            f"(within {self._timeout:g} s each; {self.lost_to_restart} held by the "
            f"estimator when it restarted)"
        )
