"""The fc_bridge node through repeated lifecycle cycles, over real DDS.

Driven as the take-off sequencer drives it: change_state and get_state over DDS from
another node, while the node's executor spins on its own thread (``run_node``'s
loop). The node once destroyed its timer and subscriptions inside on_deactivate; the
executor, walking the node's entities from another thread, then raised out of
``spin_once`` and the node answered nothing more (take-off's landing failed with
``/fc_bridge/get_state did not answer``). The simulated FC speaks real MAVLink on
UDP loopback.

The status timer checks that the node is active and then builds and publishes a status:
a deactivate that lands in between must not let it go out after the deactivate
returned (``test_no_status_goes_out_after_a_deactivate_returned``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from gps_denied_onboard.msg import FcStatus  # noqa: E402
from gps_denied_onboard.msg import PositionFix as PositionFixMsg  # noqa: E402
from lifecycle_driver import LifecycleDriver  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.node import Node  # noqa: E402

from gps_denied_onboard.fc_bridge.sim_fc import SimFc  # noqa: E402
from gps_denied_onboard.nodes.fc_bridge_node import FcBridgeNode  # noqa: E402
from gps_denied_onboard.ros_topics import (  # noqa: E402
    TOPIC_DIAGNOSTICS,
    TOPIC_FC_STATUS,
    TOPIC_POSITION_FIX,
    time_msg_to_ns,
)

from . import node_support  # noqa: E402
from .link_support import wait_until  # noqa: E402
from .node_support import fix_msg, make_node, spin_ros, stop_rig  # noqa: E402

pytestmark = pytest.mark.ros

CYCLES = 8
PUBLISH_RATE_HZ = 10.0
#: how long each inactive spell lasts: several status periods, so that a status
#: timer left publishing while inactive would show in it
INACTIVE_SPELL_S = 4 / PUBLISH_RATE_HZ
LAT, LON, ALT = 47.3977419, 8.5455938, 488.25
HELD_CYCLES = 4
#: the most a held status build waits for the test to let it go (it is let go as soon
#: as the deactivate returned; waiting this long means the deactivate waited for it)
HOLD_S = 10.0


class HeldStatus(node_support.HeldStatus):
    hold_s = HOLD_S


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    yield from spin_ros()


def _entities(node: FcBridgeNode) -> set[int]:
    """Identities of the node's publishers, subscriptions and timers."""
    return {id(e) for e in (*node.publishers, *node.subscriptions, *node.timers)}


def test_node_answers_after_every_deactivate_and_is_silent_while_inactive(
    ros: MultiThreadedExecutor,
) -> None:
    fc = SimFc("ardupilot", heartbeat_hz=5.0).start()
    node = make_node(fc.connection, publish_rate_hz=PUBLISH_RATE_HZ)
    probe = Node("fc_cycle_probe")
    status_stamps: list[int] = []

    def on_status(msg: FcStatus) -> None:
        status_stamps.append(time_msg_to_ns(msg.header.stamp))

    probe.create_subscription(FcStatus, TOPIC_FC_STATUS, on_status, 10)
    fixes = probe.create_publisher(PositionFixMsg, TOPIC_POSITION_FIX, 10)
    ros.add_node(node)
    ros.add_node(probe)
    driver = LifecycleDriver("fc_bridge", prefix="fc_cycle_driver")
    inactive: list[tuple[int, int]] = []  # (from, to) host times when the node was inactive

    def fix_reaches_the_fc() -> bool:
        """A fix published now goes out as GPS_INPUT (published again until it does)."""
        stamp = time.time_ns()
        fixes.publish(fix_msg(stamp, LAT, LON, ALT))
        return wait_until(
            lambda: any(r.msg.time_usec == stamp // 1000 for r in fc.received("GPS_INPUT")), 1.0
        )

    try:
        assert driver.transition(Transition.TRANSITION_CONFIGURE)
        made = _entities(node)
        for cycle in range(CYCLES):
            assert driver.transition(Transition.TRANSITION_ACTIVATE), cycle
            assert wait_until(fix_reaches_the_fc, 10.0, step_s=0.0), cycle
            assert driver.transition(Transition.TRANSITION_DEACTIVATE), cycle
            since = time.time_ns()
            # answered at once: LifecycleDriver raises if get_state goes unanswered
            assert driver.state() == "inactive", cycle
            time.sleep(INACTIVE_SPELL_S)  # the spell a stray status would show in
            assert driver.state() == "inactive", cycle
            inactive.append((since, time.time_ns()))
        assert driver.transition(Transition.TRANSITION_CLEANUP)
        assert driver.state() == "unconfigured"
        assert driver.transition(Transition.TRANSITION_CONFIGURE)
        assert driver.transition(Transition.TRANSITION_ACTIVATE)
        up = time.time_ns()
        assert wait_until(lambda: any(s > up for s in status_stamps), 5.0)  # publishing again
        assert wait_until(fix_reaches_the_fc, 10.0, step_s=0.0)
        # nothing made or destroyed by a transition: what the executor waits on stays valid
        assert _entities(node) == made
        stray = [s for s in status_stamps if any(a < s < b for a, b in inactive)]
        assert stray == [], f"{len(stray)} FcStatus published while inactive"
    finally:
        driver.close()
        stop_rig(ros, fc, node, probe)


def test_no_status_goes_out_after_a_deactivate_returned(ros: MultiThreadedExecutor) -> None:
    """A deactivate lands while the status timer is between its active check and its
    publish; what it was building does not go out after the deactivate returned, and
    the deactivate does not wait for it.

    Through the lifecycle services this cannot happen: they are in the node's default
    (mutually exclusive) callback group with the timer. A transition run on another
    thread can: ``trigger_deactivate`` (here, from the test thread), or ``run_node``'s
    ``shutdown`` while an executor worker is still in the timer.
    """
    fc = SimFc("ardupilot", heartbeat_hz=5.0).start()
    node = make_node(fc.connection, node_class=HeldStatus, publish_rate_hz=PUBLISH_RATE_HZ)
    assert isinstance(node, HeldStatus)
    probe = Node("fc_held_probe")
    stamps: list[int] = []  # of each FcStatus and fc_bridge diagnostics message

    def on_status(msg: FcStatus) -> None:
        stamps.append(time_msg_to_ns(msg.header.stamp))

    def on_diag(msg: DiagnosticArray) -> None:
        if any(s.name == "fc_bridge" for s in msg.status):
            stamps.append(time_msg_to_ns(msg.header.stamp))

    probe.create_subscription(FcStatus, TOPIC_FC_STATUS, on_status, 10)
    probe.create_subscription(DiagnosticArray, TOPIC_DIAGNOSTICS, on_diag, 10)
    ros.add_node(node)
    ros.add_node(probe)
    inactive: list[tuple[int, int]] = []  # (from, to) host times when the node was inactive
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        for cycle in range(HELD_CYCLES):
            assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS, cycle
            up = time.time_ns()
            # the probe hears the node (so that a stray message would be heard too)
            assert wait_until(lambda up=up: any(s > up for s in stamps), 5.0), cycle
            node.held.clear()
            node.release.clear()
            node.hold.set()
            assert node.held.wait(5.0), cycle  # a status is being built, not yet published
            assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS, cycle
            since = time.time_ns()
            node.release.set()
            time.sleep(INACTIVE_SPELL_S)  # the spell the held status would show in
            inactive.append((since, time.time_ns()))
        assert not node.held_too_long, "a deactivate waited for the status being built"
        stray = [s for s in stamps if any(a < s < b for a, b in inactive)]
        assert stray == [], f"{len(stray)} status messages published after a deactivate returned"
    finally:
        node.release.set()
        stop_rig(ros, fc, node, probe)
