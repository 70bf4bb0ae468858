"""A link reader stalled for seconds stamps the backlog it then drains by the FC's clock.

A loaded companion computer can deschedule the bridge for seconds. The simulated
FC goes on streaming ATTITUDE at 50 Hz into the UDP socket; when the reader
resumes it reads the whole backlog at once. Each of those messages carries the
autopilot's ``time_boot_ms``: ``/fc/imu`` must be stamped from it, 20 ms apart
as the FC sent them, not with the moment the backlog was read (which put them
all at the stall's end, seconds after their capture, among the current samples
a camera frame's attitude is interpolated from).

The reader is held where a real one stalls: in its transport's read, with the
socket filling behind it.
"""

from __future__ import annotations

import sys
import threading
import time
from bisect import bisect_right
from collections.abc import Iterator

import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Imu  # noqa: E402

from gps_denied_onboard.fc_bridge.config import Endpoint  # noqa: E402
from gps_denied_onboard.fc_bridge.sim_fc import SimFc  # noqa: E402
from gps_denied_onboard.fc_bridge.transport import Transport, open_transport  # noqa: E402
from gps_denied_onboard.nodes.fc_bridge_node import FcBridgeNode  # noqa: E402
from gps_denied_onboard.ros_topics import TOPIC_FC_IMU  # noqa: E402

from .link_support import PassThroughTransport, wait_until  # noqa: E402
from .node_support import make_node, spin_ros  # noqa: E402

pytestmark = pytest.mark.ros

STALL_S = 3.0
#: ATTITUDE's interval the bridge asks for (50 Hz)
PERIOD_NS = 20_000_000


class StallingTransport(PassThroughTransport):
    """The link's real transport; once ``stall`` is set, its next read first sleeps
    ``STALL_S`` (the reader thread descheduled), the FC's datagrams queueing in the socket."""

    def __init__(self, real: Transport, stall: threading.Event, stalled: threading.Event) -> None:
        super().__init__(real)
        self._stall = stall
        self._stalled = stalled

    def read(self) -> bytes:
        if self._stall.is_set():
            self._stall.clear()
            time.sleep(STALL_S)
            self._stalled.set()
        return super().read()


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    yield from spin_ros()


@pytest.fixture
def fc() -> Iterator[SimFc]:
    # The simulated FC's sender shares this process's GIL with the bridge and the
    # executor. At the default 5 ms switch interval it woke up to 80 ms late, and a
    # sender that re-anchors after a late wake then sent ATTITUDE at about 10 Hz,
    # not 50: the bridge's handler got 205 in 20 s (this test failed 9 of 12 runs;
    # the same FC sent 200 in 4 s to a bare pymavlink peer). A real FC is its own
    # device, so a shorter switch interval is the fairer stand-in (3 of 3 passed).
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        sim = SimFc("ardupilot", heartbeat_hz=5.0).start()
        yield sim
        sim.stop()
    finally:  # the interval is the whole process's: the next tests get theirs back
        sys.setswitchinterval(switch)


def test_a_stalled_readers_backlog_is_stamped_as_the_fc_sent_it(
    ros: MultiThreadedExecutor, fc: SimFc, monkeypatch: pytest.MonkeyPatch
) -> None:
    stall, stalled = threading.Event(), threading.Event()

    def open_stalling(ep: Endpoint) -> Transport:
        return StallingTransport(open_transport(ep), stall, stalled)

    monkeypatch.setattr("gps_denied_onboard.fc_bridge.link.open_transport", open_stalling)
    node: FcBridgeNode = make_node(fc.connection)
    probe = Node("fc_stall_probe")
    imu: list[int] = []  # stamps (ns), in the order heard
    # the bridge publishes /fc/imu best effort (sensor data); a deep queue keeps the burst
    deep = QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT)
    probe.create_subscription(
        Imu,
        TOPIC_FC_IMU,
        lambda m: imu.append(m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec),
        deep,
    )
    ros.add_node(node)
    ros.add_node(probe)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        # settled: the mapping holds its window's quartiles from 101 messages on
        assert wait_until(lambda: len(imu) > 250, 20.0), (
            f"{len(imu)} /fc/imu heard in 20 s; the FC sends ATTITUDE every "
            f"{fc.intervals().get('ATTITUDE')} s"
        )
        before = len(imu)
        stall.set()
        assert stalled.wait(STALL_S + 5.0)
        assert wait_until(lambda: len(imu) > before + STALL_S * 50 + 100, 20.0)
    finally:
        ros.remove_node(node)
        ros.remove_node(probe)
        node.shutdown()
        node.destroy_node()
        probe.destroy_node()
    around = sorted(imu[before - 50 :])
    assert around == imu[before - 50 :], "stamps out of order"
    # the backlog (about 150 samples) spread over the stall as the FC sent them, never
    # bunched at the moment it was read (the FC's own thread sends 20 ms apart, give or
    # take its scheduling: at most a few within any 20 ms)
    crowd = max(bisect_right(around, t + PERIOD_NS) - i for i, t in enumerate(around))
    assert crowd <= 4, f"{crowd} stamps within {PERIOD_NS} ns"
    stalled_over = [t for t in around if around[49] < t <= around[49] + int(STALL_S * 1e9)]
    assert len(stalled_over) >= 0.8 * STALL_S * 1e9 / PERIOD_NS  # the stall's samples, in it
