"""The FC's home: asked for with MAV_CMD_REQUEST_MESSAGE until it comes, passed on when
it changes; over real MAVLink bytes against the simulated FC, and latched on /fc/home
by the node over real DDS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from gps_denied_onboard.clock import ManualClock, MonotonicClock
from gps_denied_onboard.fc_bridge.home import Home, HomeWatcher, home_from_msg

from .link_support import linked, wait_until

NS = 1_000_000_000
HOME = (47.397742, 8.545594, 488.25)


def _home_msg(lat_e7: int, lon_e7: int, alt_mm: int) -> Any:
    return mavlink2.MAVLink_home_position_message(
        lat_e7, lon_e7, alt_mm, 0.0, 0.0, 0.0, [1.0, 0.0, 0.0, 0.0], 0.0, 0.0, 0.0, 0
    )


def test_a_home_position_is_read_in_degrees_and_metres_msl() -> None:
    home = home_from_msg(_home_msg(473977420, 85455940, 488250))
    assert home == Home(47.397742, 8.545594, 488.25)


@pytest.mark.parametrize(
    ("lat_e7", "lon_e7", "alt_mm"),
    [
        (0, 0, 0),  # what some stacks send before home is set
        (910000000, 85455940, 488250),  # latitude past the pole
        (473977420, 1810000000, 488250),  # longitude past 180
        (473977420, 85455940, 20_000_000),  # 20 km above sea level
        (473977420, 85455940, -900_000),  # 900 m below it
    ],
)
def test_a_home_that_cannot_be_one_is_refused(lat_e7: int, lon_e7: int, alt_mm: int) -> None:
    assert home_from_msg(_home_msg(lat_e7, lon_e7, alt_mm)) is None
    got: list[Home] = []
    watcher = HomeWatcher(lambda _m: None, lambda: 0, lambda: (1, 1), lambda h, _t: got.append(h))
    watcher.on_message(_home_msg(lat_e7, lon_e7, alt_mm), 0)
    assert got == [] and watcher.home is None


def test_the_watcher_asks_once_a_period_until_a_home_comes_then_stops() -> None:
    clock = ManualClock(5 * NS)
    sent: list[Any] = []
    got: list[Home] = []
    target: list[tuple[int, int] | None] = [None]
    watcher = HomeWatcher(
        sent.append, clock.now_ns, lambda: target[0], lambda h, _t: got.append(h), period_s=2.0
    )
    watcher.poll()
    assert sent == []  # no autopilot heard yet: nobody to ask
    target[0] = (7, 1)
    watcher.poll()
    watcher.poll()
    assert len(sent) == 1
    cmd = sent[0]
    assert cmd.command == mavlink2.MAV_CMD_REQUEST_MESSAGE
    assert cmd.param1 == mavlink2.MAVLINK_MSG_ID_HOME_POSITION
    assert (cmd.target_system, cmd.target_component) == (7, 1)
    clock.advance_s(1.9)
    watcher.poll()
    assert len(sent) == 1
    clock.advance_s(0.1)
    watcher.poll()
    assert len(sent) == 2
    watcher.on_message(_home_msg(473977420, 85455940, 488250), clock.now_ns())
    assert got == [Home(47.397742, 8.545594, 488.25)]
    clock.advance_s(60.0)
    watcher.poll()
    assert len(sent) == 2 and watcher.asks == 2


def test_a_moved_home_is_passed_on_and_the_same_one_is_not() -> None:
    got: list[tuple[Home, int]] = []
    watcher = HomeWatcher(
        lambda _m: None, lambda: 0, lambda: (1, 1), lambda h, t: got.append((h, t))
    )
    watcher.on_message(_home_msg(473977420, 85455940, 488250), 10)
    watcher.on_message(_home_msg(473977420, 85455940, 488250), 20)
    watcher.on_message(_home_msg(473977420, 85455940, 490000), 30)  # re-armed on a roof
    assert [(h.altitude_msl_m, t) for h, t in got] == [(488.25, 10), (490.0, 30)]


def test_a_watcher_that_must_not_ask_only_listens() -> None:
    sent: list[Any] = []
    watcher = HomeWatcher(sent.append, lambda: 0, lambda: (1, 1), lambda h, t: None, ask=False)
    watcher.poll()
    assert sent == []


def test_a_period_that_is_not_positive_is_a_typed_error() -> None:
    with pytest.raises(ValueError):
        HomeWatcher(lambda _m: None, lambda: 0, lambda: None, lambda h, t: None, period_s=0.0)


@pytest.mark.parametrize("autopilot", ["ardupilot", "px4"])
def test_over_mavlink_the_home_comes_once_the_fc_has_one(autopilot: str) -> None:
    """Real bytes over UDP: while the FC has no home it accepts the request and sends
    nothing (ArduPilot's behaviour), and is asked again a period later; once it has
    one, the next ask brings it."""
    with linked(autopilot) as (fc, link, _sink):
        got: list[Home] = []
        ap = link.wait_for_autopilot(5.0)
        watcher = HomeWatcher(
            link.send,
            MonotonicClock().now_ns,
            lambda: (ap.sysid, ap.compid),
            lambda h, _t: got.append(h),
            period_s=0.2,
        )
        link.add_handler("HOME_POSITION", watcher.on_message)
        link.add_idle_hook(watcher.poll)
        assert wait_until(lambda: watcher.asks >= 3, 5.0)

        def asked() -> list[Any]:
            return [
                r.msg
                for r in fc.received("COMMAND_LONG")
                if r.msg.command == mavlink2.MAV_CMD_REQUEST_MESSAGE
            ]

        # the third ask may still be on its way over UDP when the watcher counts it
        assert wait_until(lambda: len(asked()) >= 3, 2.0), len(asked())
        assert all(round(m.param1) == mavlink2.MAVLINK_MSG_ID_HOME_POSITION for m in asked())
        assert got == []
        fc.update(home=HOME)
        assert wait_until(lambda: bool(got), 5.0)
        assert got[0] == Home(*HOME)
        asks = watcher.asks
        assert not wait_until(lambda: watcher.asks > asks, 0.6)  # held: no more asking


rclpy = pytest.importorskip("rclpy")


@pytest.fixture
def ros() -> Iterator[Any]:
    from .node_support import spin_ros

    yield from spin_ros()


@pytest.mark.ros
def test_the_node_latches_the_fc_home_on_fc_home(ros: Any) -> None:
    """A subscriber that joins after the home came (visual_nav restarted in flight)
    still gets it: /fc/home is latched."""
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.node import Node
    from sensor_msgs.msg import NavSatFix

    from gps_denied_onboard.fc_bridge.sim_fc import SimFc
    from gps_denied_onboard.ros_topics import LATCHED_QOS, TOPIC_FC_HOME

    from .node_support import make_node, stop_rig

    fc = SimFc("ardupilot", heartbeat_hz=5.0, telemetry_hz=10.0)
    fc.update(home=HOME)
    fc.start()
    node = make_node(fc.connection)
    probe = Node("fc_home_probe")
    ros.add_node(node)
    ros.add_node(probe)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert wait_until(lambda: _answered(fc), 10.0)
        # published before anyone listened
        assert wait_until(lambda: node._telemetry is not None and node._telemetry._home, 10.0)
        homes: list[NavSatFix] = []
        probe.create_subscription(NavSatFix, TOPIC_FC_HOME, homes.append, LATCHED_QOS)
        assert wait_until(lambda: bool(homes), 10.0), "no /fc/home"
        h = homes[-1]
        assert (h.latitude, h.longitude) == pytest.approx(HOME[:2], abs=1e-7)
        assert h.altitude == pytest.approx(HOME[2], abs=1e-3)
        assert h.header.frame_id == "fc_home"
    finally:
        stop_rig(ros, fc, node, probe)


def _answered(fc: Any) -> bool:
    """The simulated FC was asked for its home (and so sent it)."""
    return any(
        r.msg.command == mavlink2.MAV_CMD_REQUEST_MESSAGE
        and round(r.msg.param1) == mavlink2.MAVLINK_MSG_ID_HOME_POSITION
        for r in fc.received("COMMAND_LONG")
    )
