"""The visual_nav node through repeated lifecycle cycles, over real DDS.

Driven as the take-off sequencer drives it (change_state and get_state over DDS from
another node) while the node spins on a multi-threaded executor on its own thread.
The node once made its subscriptions and diagnostics timer at each activation and
destroyed them at each deactivation, and made two more service clients at each
configure; a transition that destroys entities while another executor thread builds
its wait set from them makes rclpy raise ``InvalidHandle`` out of ``spin_once`` (it
stopped fc_bridge, see test_fc_node_cycles).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from fc_bridge.node_support import spin_ros  # noqa: E402
from lifecycle_driver import LifecycleDriver  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CompressedImage, NavSatFix  # noqa: E402

from gps_denied_onboard.nodes.visual_nav_node import VisualNavNode  # noqa: E402
from gps_denied_onboard.ros_topics import (  # noqa: E402
    LATCHED_QOS,
    TOPIC_DIAGNOSTICS,
    ns_to_time_msg,
    time_msg_to_ns,
)

CYCLES = 6
DIAGNOSTICS_PERIOD_S = 0.05
#: each inactive spell lasts several diagnostics periods, so that a diagnostics
#: timer left publishing while inactive would show in it
INACTIVE_SPELL_S = 6 * DIAGNOSTICS_PERIOD_S
RESEND_S = 2.0
SEED = (47.3977, 8.5456)


class SeenVisualNav(VisualNavNode):
    """The node, noting each input its callbacks were handed and have finished with
    (topic, header stamp, whether the node was active when handed it)."""

    def __init__(self, **kwargs: Any) -> None:
        self.handed: list[tuple[str, int, bool]] = []
        super().__init__(**kwargs)

    def _gated(
        self, key: tuple[str, str], callback: Callable[[Any], None]
    ) -> Callable[[Any], None]:
        inner = super()._gated(key, callback)

        def noted(msg: Any) -> None:
            active = self._active
            inner(msg)
            self.handed.append((key[0], time_msg_to_ns(msg.header.stamp), active))

        return noted


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    yield from spin_ros()


def _entities(node: VisualNavNode) -> set[int]:
    """Identities of the node's publishers, subscriptions, clients and timers."""
    return {id(e) for e in (*node.publishers, *node.subscriptions, *node.clients, *node.timers)}


def test_node_answers_after_every_deactivate_and_ignores_input_while_inactive(
    ros: MultiThreadedExecutor,
) -> None:
    name = f"visual_nav_{uuid.uuid4().hex[:8]}"
    frames_topic = f"/{name}_test/frames"
    node = SeenVisualNav(
        node_name=name,
        parameter_overrides=[
            Parameter("compressed_image_topic", value=frames_topic),
            Parameter("camera_info_topic", value=f"/{name}_test/camera_info"),
            Parameter("tile_cache_node", value=f"{name}_no_tile_cache"),
            Parameter("diagnostics_period_s", value=DIAGNOSTICS_PERIOD_S),
        ],
    )
    ros.add_node(node)
    driver = LifecycleDriver(name, prefix="vn_cycle_driver")
    frames = driver.node.create_publisher(CompressedImage, frames_topic, 10)
    seed = driver.node.create_publisher(NavSatFix, f"/{name}/seed_position", LATCHED_QOS)
    diag_stamps: list[int] = []

    def on_diag(msg: Any) -> None:
        if any(s.name == "visual_nav" for s in msg.status):
            diag_stamps.append(time_msg_to_ns(msg.header.stamp))

    driver.node.create_subscription(DiagnosticArray, TOPIC_DIAGNOSTICS, on_diag, 10)
    inactive: list[tuple[int, int]] = []  # (from, to) host times when the node was inactive

    def handed(stamp: int, active: bool) -> None:
        """Publish a frame stamped ``stamp`` until the node's callback was handed it
        (again after RESEND_S without it: one is in flight at a time, so none
        arrives after the node changed state)."""

        def seen() -> bool:
            return any(t == frames_topic and s == stamp for t, s, _ in node.handed)

        end = time.monotonic() + 20.0
        while not seen() and time.monotonic() < end:
            msg = CompressedImage(format="jpeg", data=b"not a jpeg")
            msg.header.stamp = ns_to_time_msg(stamp)
            frames.publish(msg)
            driver.spin_until(seen, timeout_s=RESEND_S)
        assert (frames_topic, stamp, active) in node.handed, node.handed

    try:
        assert driver.transition(Transition.TRANSITION_CONFIGURE)
        made = _entities(node)
        # a seed published while inactive is kept, not applied until activation
        fix = NavSatFix(latitude=SEED[0], longitude=SEED[1])
        fix.header.stamp = ns_to_time_msg(1_700_000_000 * 10**9)
        seed.publish(fix)
        assert driver.spin_until(lambda: node._seed is not None)
        assert node._inputs.position is None
        stamp = 1_000
        step = 10**9  # a second apart: under frame_max_rate_hz, every frame is taken
        for cycle in range(CYCLES):
            assert driver.transition(Transition.TRANSITION_ACTIVATE), cycle
            assert node._inputs.position == SEED, cycle
            frames_before = node.stats.frames
            stamp += step
            handed(stamp, active=True)
            # the worker took it (and refused it: not an image)
            assert driver.spin_until(lambda n=frames_before: node.stats.frames == n + 1), cycle
            assert driver.transition(Transition.TRANSITION_DEACTIVATE), cycle
            # answered: LifecycleDriver raises if get_state goes unanswered
            assert driver.state() == "inactive", cycle
            since = time.time_ns()
            node._inputs.position = None  # the next activation applies the kept seed again
            stamp += step
            handed(stamp, active=False)
            assert len(node._frames) == 0, cycle  # not queued for a worker
            driver.spin(INACTIVE_SPELL_S)  # the spell a stray diagnostics message would show in
            assert driver.state() == "inactive", cycle
            assert node.stats.frames == frames_before + 1, cycle
            inactive.append((since, time.time_ns()))
        assert driver.transition(Transition.TRANSITION_CLEANUP)
        assert driver.state() == "unconfigured"
        assert driver.transition(Transition.TRANSITION_CONFIGURE)
        assert driver.transition(Transition.TRANSITION_ACTIVATE)
        up = time.time_ns()
        frames_before = node.stats.frames
        handed(stamp + step, active=True)
        assert driver.spin_until(lambda: node.stats.frames == frames_before + 1)
        assert driver.spin_until(lambda: any(s > up for s in diag_stamps))  # timer runs again
        # nothing made or destroyed by a transition: what the executor waits on stays valid
        assert _entities(node) == made
        stray = [s for s in diag_stamps if any(a < s < b for a, b in inactive)]
        assert stray == [], f"{len(stray)} diagnostics published while inactive"
    finally:
        driver.close()
        ros.remove_node(node)
        node.shutdown()
        node.destroy_node()
