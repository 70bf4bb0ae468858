"""Real DDS: the replay command publishes a bag into a use_sim_time subscriber.

The replay runs as ``python -m gps_denied_onboard.replay`` in its own process;
the subscriber is an rclpy node in this process with ``use_sim_time`` on, on
this run's private ROS_DOMAIN_ID.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gps_denied_onboard.nodes.service_calls import call_service

from .bags import T0, write_rosbag

pytestmark = pytest.mark.ros


class Listener:
    """A use_sim_time node taking raw bytes on /chatter, /fix and /clock."""

    def __init__(self, name: str) -> None:
        import rclpy
        from gps_denied_onboard.msg import PositionFix
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock
        from std_msgs.msg import String

        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(
            name,
            context=self.context,
            parameter_overrides=[Parameter("use_sim_time", Parameter.Type.BOOL, True)],
        )
        self.lock = threading.Lock()
        self.got: list[tuple[str, bytes, int]] = []
        self.clocks: list[int] = []
        reliable = QoSProfile(depth=1000)
        best_effort = QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.node.create_subscription(String, "/chatter", self._on("/chatter"), reliable, raw=True)
        self.node.create_subscription(PositionFix, "/fix", self._on("/fix"), best_effort, raw=True)
        self.node.create_subscription(Clock, "/clock", self._on_clock, QoSProfile(depth=10000))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on(self, topic: str) -> Any:
        def cb(data: bytes) -> None:
            with self.lock:
                self.got.append((topic, bytes(data), self.node.get_clock().now().nanoseconds))

        return cb

    def _on_clock(self, msg: Any) -> None:
        with self.lock:
            self.clocks.append(msg.clock.sec * 1_000_000_000 + msg.clock.nanosec)

    def sim_now(self) -> int:
        return int(self.node.get_clock().now().nanoseconds)

    def wait_for(self, pred: Any, timeout: float = 20.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if pred(self):
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def listener() -> Iterator[Listener]:
    node = Listener("replay_test_listener")
    try:
        yield node
    finally:
        node.close()


def _unpad(data: bytes) -> bytes:
    """The CDR bytes without trailing alignment zeros.

    The DDS layer pads a serialized payload to a multiple of 4 bytes; rosbags
    writes it unpadded. The replay publishes the recorded bytes unchanged.
    """
    return data.rstrip(b"\x00")


def _replay(bag: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gps_denied_onboard.replay",
            str(bag),
            "--no-progress",
            "--delay",
            "2.0",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _hold(pause_cli: Any, timeout_s: float = 30.0) -> Any:
    """Ask the replay to hold until it answers as a player (``success``); its services
    exist before the player is attached and answer ``no replay running`` until then
    (``ReplayControlServices``): on a loaded machine the bag can still be opening when
    the service is discovered. Holding a replay started ``--paused`` changes nothing."""
    from std_srvs.srv import SetBool

    deadline = time.monotonic() + timeout_s
    while True:
        got = call_service(pause_cli, SetBool.Request(data=True), 20.0, idempotent=True)
        if (got is not None and got.result().success) or time.monotonic() > deadline:
            return None if got is None else got.result()
        time.sleep(0.05)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_replay_publishes_recorded_bytes_in_order_and_drives_sim_time(
    tmp_path: Path, listener: Listener, storage: str
) -> None:
    from std_srvs.srv import SetBool

    written = write_rosbag(tmp_path / "bag", storage)
    # start paused and play once this listener has discovered all three publishers: on a
    # loaded machine discovery can outlast --delay, and a volatile reader matched late
    # misses what was published before (CI once got 0 of 30 this way)
    proc = _replay(tmp_path / "bag", "--rate", "4", "--clock-hz", "20", "--paused")
    node = listener.node
    pause_cli = node.create_client(SetBool, "/gdo_replay/pause")
    try:
        assert listener.wait_for(
            lambda s: all(node.count_publishers(t) >= 1 for t in ("/chatter", "/fix", "/clock")), 30
        ), "replay publishers never discovered"
        assert pause_cli.wait_for_service(timeout_sec=20)
        held = _hold(pause_cli)
        assert held is not None and held.message == "paused"
        # paused, the replay keeps publishing /clock at the bag start: the listener's ROS
        # clock reads it before any message is played, so every message below arrives
        # with sim time set (/clock and the messages are separate readers; without the
        # held clock, the first message could be taken before the first tick, at time 0)
        assert listener.wait_for(lambda s: s.sim_now() == T0, 20), listener.sim_now()
        assert listener.got == []
        played = call_service(pause_cli, SetBool.Request(data=False), 20.0, idempotent=True)
        assert played is not None and played.result().message == "playing"
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert listener.wait_for(lambda s: len(s.got) >= len(written), 10), (len(listener.got), out)
    with listener.lock:
        got = list(listener.got)
        clocks = list(listener.clocks)
    chatter = [_unpad(d) for t, d, _ in got if t == "/chatter"]
    assert chatter == [_unpad(d) for t, _s, d in written if t == "/chatter"]
    fixes = [_unpad(d) for t, d, _ in got if t == "/fix"]
    assert fixes == [_unpad(d) for t, _s, d in written if t == "/fix"]
    # /clock: monotonic, at the 20 Hz sim cadence from the bag start, ending at the last message
    assert clocks == sorted(clocks)
    assert clocks[0] == T0
    last = max(s for _t, s, _d in written)
    assert clocks[-1] == last
    assert {T0 + k * 50_000_000 for k in range(39)} <= set(clocks)
    # the subscriber's ROS clock follows /clock
    assert listener.wait_for(lambda s: s.sim_now() == last, 5)
    assert all(T0 <= now <= last for _t, _d, now in got)
    assert "/chatter" in out and "20 msgs" in out


def test_pause_service_and_play_next_step_the_replay(tmp_path: Path, listener: Listener) -> None:
    from std_srvs.srv import SetBool, Trigger

    write_rosbag(tmp_path / "bag", "mcap", n=6)
    proc = _replay(
        tmp_path / "bag", "--paused", "--topics", "/chatter", "--remap", "/chatter:=/chatter"
    )
    node = listener.node
    next_cli = node.create_client(Trigger, "/gdo_replay/play_next")
    pause_cli = node.create_client(SetBool, "/gdo_replay/pause")
    try:
        assert next_cli.wait_for_service(timeout_sec=20)
        assert pause_cli.wait_for_service(timeout_sec=20)
        time.sleep(2.5)  # past --delay: the player is now waiting, paused
        assert listener.got == []
        # the service is discovered before its answers can reach us (Fast DDS matches the
        # response reader later; on a loaded machine the first answer was lost and the
        # step below timed out): ask what changes nothing until it is answered, then step
        held = _hold(pause_cli)
        assert held is not None and held.message == "paused"

        def call(cli: Any, req: Any) -> Any:
            fut = cli.call_async(req)
            end = time.monotonic() + 10
            while not fut.done() and time.monotonic() < end:
                time.sleep(0.02)
            assert fut.done()
            return fut.result()

        assert call(next_cli, Trigger.Request()).success
        assert call(next_cli, Trigger.Request()).success
        assert listener.wait_for(lambda s: len(s.got) == 2, 10)
        time.sleep(0.5)
        assert len(listener.got) == 2
        assert listener.sim_now() == T0 + 100_000_000
        resp = call(pause_cli, SetBool.Request(data=False))
        assert resp.success and resp.message == "playing"
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert listener.wait_for(lambda s: len(s.got) == 6, 10)
    finally:
        if proc.poll() is None:
            proc.kill()
