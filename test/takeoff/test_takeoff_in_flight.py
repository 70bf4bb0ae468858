"""Take-off in flight (issue #14): the latched ``/takeoff/is_active``, the GCS
alert when the recorder dies, landing on SIGTERM. Real processes
(``python -m gps_denied_onboard takeoff``), real DDS, real PostgreSQL, a
simulated ArduPilot on UDP loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool
from test_takeoff_bringup import TAKEOFF_TRANSITIONS, _records, _wait_active

from gps_denied_onboard.fc_bridge.sim_fc import SimFc

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _start(run_dir: Path, dsn: str, fc: SimFc, flight_id: str) -> subprocess.Popen[str]:
    argv = [
        sys.executable,
        "-m",
        "gps_denied_onboard",
        "takeoff",
        "--run-dir",
        str(run_dir),
        "--dsn",
        dsn,
        "--fc-connection",
        fc.connection,
        "--flight-id",
        flight_id,
        "--fc-activate-timeout",
        "20",
    ]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _node_pid(name: str, mentioning: Path) -> int:
    """The pid of the node process ``name`` whose command line names ``mentioning``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if f"__node:={name}" in words and any(str(mentioning) in w for w in words):
            return int(proc.name)
    raise AssertionError(f"no {name} process naming {mentioning}")


def test_late_subscriber_gets_the_latched_is_active_and_sigterm_lands(
    ros: None, tmp_path: Path, pg_dsn: str, sim_fc: SimFc
) -> None:
    run_dir = tmp_path / "run"
    proc = _start(run_dir, pg_dsn, sim_fc, "latched")
    node = Node(f"late_{uuid.uuid4().hex[:8]}")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        _wait_active(proc)
        # subscribed only now, long after the sequencer published True at take-off
        seen: list[bool] = []
        latched = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        node.create_subscription(Bool, "/takeoff/is_active", lambda m: seen.append(m.data), latched)
        deadline = time.monotonic() + 20
        while not seen and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert seen[:1] == [True], seen
        # landing on SIGTERM, as a service manager stops us
        proc.send_signal(signal.SIGTERM)
        while proc.poll() is None and time.monotonic() < deadline + 120:
            executor.spin_once(timeout_sec=0.1)
        out, err = proc.communicate(timeout=60)
        for _ in range(20):
            executor.spin_once(timeout_sec=0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        executor.shutdown()
        node.destroy_node()
    assert proc.returncode == 0, err[-3000:]
    assert seen[-1] is False, seen  # the sequencer said so as soon as landing began
    records = _records(run_dir / "flights" / "latched")
    transitions = [
        (r["payload"]["node"], r["payload"]["transition"])
        for r in records
        if r["kind"] == "takeoff.transition"
    ]
    assert transitions[len(TAKEOFF_TRANSITIONS) :] == [
        ("fc_bridge", "deactivate"),
        ("fc_bridge", "cleanup"),
        ("visual_nav", "deactivate"),
        ("visual_nav", "cleanup"),
        ("tile_cache", "deactivate"),
        ("tile_cache", "cleanup"),
    ]
    assert records[-1]["kind"] == "flight_footer"
    landed = [json.loads(x) for x in out.splitlines() if '"takeoff.landed"' in x]
    assert landed and landed[0]["records_written"] == records[-1]["payload"]["records_written"]


def test_recorder_killed_in_flight_raises_a_gcs_alert_at_the_autopilot(
    tmp_path: Path, pg_dsn: str, sim_fc: SimFc
) -> None:
    run_dir = tmp_path / "run"
    proc = _start(run_dir, pg_dsn, sim_fc, "recorder-dies")
    try:
        _wait_active(proc)
        recorder = _node_pid("fdr_recorder", run_dir.absolute() / "flights")
        os.kill(recorder, signal.SIGKILL)

        def lost() -> list[str]:
            texts = [str(r.msg.text).rstrip("\0") for r in sim_fc.received("STATUSTEXT")]
            return [t for t in texts if "FDR recorder lost" in t]

        deadline = time.monotonic() + 60
        while not lost() and time.monotonic() < deadline:
            sim_fc.wait_for("STATUSTEXT", len(sim_fc.received("STATUSTEXT")) + 1, timeout_s=1.0)
        alerts = lost()
        (alert,) = [r for r in sim_fc.received("STATUSTEXT") if "FDR recorder lost" in r.msg.text]
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert alerts == ["takeoff: FDR recorder lost: flight not recorded"], alerts  # one, sourced
    assert alert.msg.severity <= 2  # MAV_SEVERITY_CRITICAL or worse
    assert "takeoff.recorder_lost" in err
    # landed as far as it could: the flight could not be closed by a dead recorder
    assert proc.returncode == 1, err[-3000:]
    assert "close_flight" in err


def _child_pid(parent: int, name: str) -> int | None:
    """The pid of ``parent``'s child process that runs the node ``name``, if any."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and f"__node:={name}".encode() in argv:
            return int(proc.name)
    return None


def test_visual_nav_killed_in_flight_is_started_again_and_brought_back_up(
    ros: None, tmp_path: Path, pg_dsn: str, sim_fc: SimFc
) -> None:
    """kill -9 of the estimator in flight: the bring-up starts its process again and
    the sequencer configures and activates it (``takeoff.node_revived`` in the
    flight record); the landing then brings it down like the others, exit 0."""
    from lifecycle_msgs.srv import GetState

    run_dir = tmp_path / "run"
    proc = _start(run_dir, pg_dsn, sim_fc, "estimator-dies")
    node = Node(f"revive_probe_{uuid.uuid4().hex[:8]}")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    get_state = node.create_client(GetState, "/visual_nav/get_state")
    try:
        _wait_active(proc)
        first = _child_pid(proc.pid, "visual_nav")
        assert first is not None
        os.kill(first, signal.SIGKILL)

        def state() -> str:
            if not get_state.wait_for_service(timeout_sec=0.5):
                return ""
            future = get_state.call_async(GetState.Request())
            executor.spin_until_future_complete(future, timeout_sec=2.0)
            return str(future.result().current_state.label) if future.done() else ""

        deadline = time.monotonic() + 90
        again = None
        while time.monotonic() < deadline:
            again = _child_pid(proc.pid, "visual_nav")
            if again not in (None, first) and state() == "active":
                break
            time.sleep(0.5)
        assert again not in (None, first), "visual_nav was not started again"
        assert state() == "active"
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        executor.shutdown()
        node.destroy_node()
    assert proc.returncode == 0, err[-3000:]
    assert '"node.respawned", "node": "visual_nav"' in err
    records = _records(run_dir / "flights" / "estimator-dies")
    revived = [r["payload"] for r in records if r["kind"] == "takeoff.node_revived"]
    assert revived == [{"node": "visual_nav", "from_state": "unconfigured"}]
    # up at take-off, up again after the kill, down at the landing
    steps = [
        r["payload"]["transition"]
        for r in records
        if r["kind"] == "takeoff.transition" and r["payload"]["node"] == "visual_nav"
    ]
    assert steps == ["configure", "activate"] * 2 + ["deactivate", "cleanup"], steps
