"""Shared by the fc_bridge node tests: a spinning executor and node/message builders."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

import rclpy
from gps_denied_onboard.msg import PositionFix as PositionFixMsg
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter

from gps_denied_onboard.fc_bridge.scheduler import FixScheduler
from gps_denied_onboard.nodes.fc_bridge_node import FcBridgeNode


def spin_ros(num_threads: int | None = None) -> Iterator[MultiThreadedExecutor]:
    """Body of each module's ``ros`` fixture: rclpy up, an executor spinning on a thread
    (``num_threads`` workers; rclpy's default: one per CPU the process may run on)."""
    rclpy.init()
    executor = MultiThreadedExecutor(num_threads)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)

    t = threading.Thread(target=spin, daemon=True)
    t.start()
    try:
        yield executor
    finally:
        stop.set()
        t.join(timeout=5)
        executor.shutdown()
        rclpy.shutdown()


class HeldStatus(FcBridgeNode):
    """The node, whose status timer can be held in the middle of a status: after its
    active check and reading the link's state, before its publish (in
    ``_check_delay``), until the test lets it go (at most ``hold_s``)."""

    hold_s = 10.0

    def __init__(self, **kwargs: Any) -> None:
        self.hold = threading.Event()  # set: the next status stops in _check_delay
        self.held = threading.Event()  # one is stopped there
        self.release = threading.Event()
        self.done = threading.Event()  # the held status build returned
        self.held_too_long = False
        super().__init__(**kwargs)

    def _check_delay(self, sched: FixScheduler | None) -> str | None:
        if self.hold.is_set():
            self.hold.clear()
            self.held.set()
            self.held_too_long |= not self.release.wait(self.hold_s)
        return super()._check_delay(sched)

    def _publish_status(self) -> None:
        super()._publish_status()
        if self.held.is_set():
            self.done.set()


def make_node(
    connection: str, *, node_class: type[FcBridgeNode] = FcBridgeNode, **extra: object
) -> FcBridgeNode:
    """A ``node_class`` against ``connection`` with fast heartbeats and short timeouts."""
    params = {
        "connection": connection,
        "heartbeat_period_s": 0.2,
        "activate_timeout_s": 3.0,
        "preflight_timeout_s": 2.0,
        "publish_rate_hz": 10.0,
        # a loaded test machine can hold a fix longer than the flight's 0.5 s between
        # the probe's publish and the bridge; these tests pin what is sent (the
        # scheduler's own tests pin what is dropped as stale)
        "max_fix_age_s": 5.0,
        **extra,
    }
    return node_class(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])


def fix_msg(
    stamp_ns: int,
    lat: float,
    lon: float,
    alt: float,
    *,
    vel_enu: tuple[float, float, float] | None = None,
    pos_var_enu: tuple[float, float, float] = (4.0, 4.0, 9.0),
    yaw_enu: float | None = None,
    reset_counter: int = 0,
    quality: int = 90,
) -> PositionFixMsg:
    """A PositionFix message (ENU, diagonal covariances) stamped ``stamp_ns``."""
    msg = PositionFixMsg()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = "map"
    msg.latitude, msg.longitude, msg.altitude_msl = lat, lon, alt
    if vel_enu is not None:
        msg.velocity_enu.x, msg.velocity_enu.y, msg.velocity_enu.z = vel_enu
        msg.velocity_valid = True
        msg.velocity_covariance = [0.04, 0.0, 0.0, 0.0, 0.04, 0.0, 0.0, 0.0, 0.09]
    ve, vn, vu = pos_var_enu
    msg.position_covariance = [ve, 0.0, 0.0, 0.0, vn, 0.0, 0.0, 0.0, vu]
    if yaw_enu is not None and math.isfinite(yaw_enu):
        msg.yaw_enu, msg.yaw_valid, msg.yaw_variance = yaw_enu, True, 0.01
    msg.reset_counter, msg.quality = reset_counter, quality
    return msg


def stop_rig(ros: MultiThreadedExecutor, fc: Any, node: Any, probe: Any) -> None:
    """A node test's teardown: both nodes off the executor, the node shut down, both
    destroyed, the simulated FC stopped."""
    ros.remove_node(node)
    ros.remove_node(probe)
    node.shutdown()
    node.destroy_node()
    probe.destroy_node()
    fc.stop()
