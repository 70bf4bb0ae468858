"""What ``/fc/status`` says after a deactivate and an activate, over real DDS.

The status reads the link of the current activation: its autopilot, mode and link
state, and what its reader has heard of GNSS, EKF and battery. Once activated again the
node has a new link, which has heard the autopilot's HEARTBEAT (the activate waited for
it) but maybe no telemetry yet. Until it has, the status says "no data" in each field's
own terms (GPS_FIX_TYPE 0 with no satellites, HDOP and battery NaN, battery -1 %,
GNSS health ``no_data``, no EKF flag), never the previous link's last values as if
current; and once the new link hears telemetry, the status carries what it heard.

A status being built when the deactivate lands describes the old link: it does not go
out, neither while inactive nor once activated again (the transitions run on another
thread than the status timer: ``trigger_*``, ``run_node``'s shutdown).

The simulated FC speaks real MAVLink on UDP loopback; between the two activations its
telemetry goes silent (HEARTBEAT goes on) and its state changes, so that the old
link's values, the "no data" fields and the new link's values are told apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

rclpy = pytest.importorskip("rclpy")

from gps_denied_onboard.msg import FcStatus  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.node import Node  # noqa: E402

from gps_denied_onboard.fc_bridge.sim_fc import SimFc  # noqa: E402
from gps_denied_onboard.nodes.fc_bridge_node import FcBridgeNode  # noqa: E402
from gps_denied_onboard.ros_topics import TOPIC_FC_STATUS, time_msg_to_ns  # noqa: E402

from . import node_support  # noqa: E402
from .link_support import wait_until  # noqa: E402
from .node_support import make_node, spin_ros, stop_rig  # noqa: E402

pytestmark = pytest.mark.ros

#: statuses heard from the new link while its FC sends no telemetry (several periods)
SILENT_STATUSES = 5
#: the most a held status build waits for the test to let it go (it is let go once the
#: node was activated again; waiting this long means a transition waited for it)
HOLD_S = 15.0


class HeldStatus(node_support.HeldStatus):
    hold_s = HOLD_S


class StampingPublisher:
    """The node's status publisher, noting the stamp of each status it publishes."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.stamps: list[int] = []

    def publish(self, msg: FcStatus) -> None:
        self.stamps.append(time_msg_to_ns(msg.header.stamp))
        self._real.publish(msg)


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    yield from spin_ros()


def _no_telemetry(st: FcStatus) -> bool:
    """Every GNSS, EKF and battery field says 'no data'."""
    return bool(
        st.gnss_fix_type == 0
        and st.satellites_visible == 0
        and math.isnan(st.hdop)
        and not st.gnss_healthy
        and st.gnss_health_reason == "no_data"
        and st.ekf_flags == 0
        and math.isnan(st.battery_voltage)
        and math.isnan(st.battery_current)
        and st.battery_remaining_pct == -1
    )


@contextmanager
def _status_rig(
    ros: MultiThreadedExecutor, node_class: type[FcBridgeNode]
) -> Iterator[tuple[SimFc, FcBridgeNode, list[FcStatus]]]:
    """A simulated ArduPilot, a ``node_class`` bridge to it, and the statuses it publishes."""
    fc = SimFc("ardupilot", heartbeat_hz=5.0, telemetry_hz=10.0).start()
    node = make_node(fc.connection, node_class=node_class)
    probe = Node("fc_reactivate_probe")
    statuses: list[FcStatus] = []
    probe.create_subscription(FcStatus, TOPIC_FC_STATUS, statuses.append, 10)
    ros.add_node(node)
    ros.add_node(probe)
    try:
        yield fc, node, statuses
    finally:
        if isinstance(node, HeldStatus):
            node.release.set()
        stop_rig(ros, fc, node, probe)


def test_status_after_reactivation_is_the_new_links_or_no_data_never_the_old_links(
    ros: MultiThreadedExecutor,
) -> None:
    with _status_rig(ros, FcBridgeNode) as (fc, node, statuses):
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS

        def old(st: FcStatus) -> bool:  # the first link's telemetry, as the FC sends it
            return bool(st.satellites_visible == 12 and st.battery_remaining_pct == 87)

        assert wait_until(lambda: any(old(s) for s in statuses), 10.0), statuses[-1:]
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        fc.silent = frozenset(fc.messages())  # HEARTBEAT only, from now on
        fc.update(mode="LOITER", satellites=9, battery_remaining_pct=55, ekf_flags=0x0A7)
        heard = len(statuses)
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert wait_until(lambda: len(statuses) >= heard + SILENT_STATUSES, 10.0)
        silent = statuses[heard:]
        # the new link's own state: the autopilot it detected, the mode it heard
        assert all(s.autopilot == "ardupilot" and s.system_id == 1 for s in silent), silent
        assert all(s.mode == "LOITER" and s.link_ok for s in silent), silent
        assert all(_no_telemetry(s) for s in silent), silent

        fc.silent = frozenset()

        def new(st: FcStatus) -> bool:  # the new link's telemetry, as the FC now sends it
            return bool(
                st.satellites_visible == 9
                and st.gnss_fix_type == 3
                and st.gnss_healthy
                and st.battery_remaining_pct == 55
                and st.ekf_flags == 0x0A7
            )

        assert wait_until(lambda: any(new(s) for s in statuses[heard:]), 10.0), statuses[-1:]
        after = statuses[heard:]
        assert not any(old(s) for s in after), "a status after re-activation had the old values"
        assert all(s.mode == "LOITER" and s.link_ok for s in after)
        # each field: "no data" until the new link heard it, then the new value
        for s in after:
            assert (s.satellites_visible, s.gnss_fix_type) in ((0, 0), (9, 3)), s
            assert s.battery_remaining_pct in (-1, 55) and s.ekf_flags in (0, 0x0A7), s


def test_a_status_built_from_the_old_link_does_not_go_out_after_the_next_activate(
    ros: MultiThreadedExecutor,
) -> None:
    """The status timer has read the link's state (the FC's telemetry: 12 satellites,
    87 %) and not yet published when the node is deactivated and activated again from
    another thread (the FC now silent but for its HEARTBEAT); then it goes on: what it
    built is not published, the node being active again with another link."""
    with _status_rig(ros, HeldStatus) as (fc, node, statuses):
        assert isinstance(node, HeldStatus)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        stamping = StampingPublisher(node._pubs["status"])
        node._pubs["status"] = stamping
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS

        def old(st: FcStatus) -> bool:
            return bool(st.satellites_visible == 12 and st.battery_remaining_pct == 87)

        assert wait_until(lambda: any(old(s) for s in statuses), 10.0), statuses[-1:]
        node.hold.set()
        assert node.held.wait(5.0)  # a status of the old link is built, not yet published
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        before = set(stamping.stamps)  # every status published before the deactivate
        fc.silent = frozenset(fc.messages())
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        node.release.set()
        assert node.done.wait(10.0)
        assert not node.held_too_long, "a transition waited for the status being built"
        # statuses of the new link are heard (one writer: heard in the order published,
        # and the held one, had it gone out, went out before them)
        assert wait_until(
            lambda: sum(_no_telemetry(s) for s in statuses) >= SILENT_STATUSES, 10.0
        ), statuses[-1:]
        stray = [s for s in statuses if time_msg_to_ns(s.header.stamp) not in before and old(s)]
        assert stray == [], "a status of the old link went out after the next activate"
