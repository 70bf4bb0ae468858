"""Take-off with real processes: the three nodes from the colcon install, the
sequencer, real DDS, real PostgreSQL, a simulated ArduPilot on UDP loopback.

These run ``python -m gps_denied_onboard takeoff`` exactly as a user would.
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcap.reader import make_reader

from gps_denied_onboard.fc_bridge.sim_fc import SimFc

pytestmark = [pytest.mark.ros, pytest.mark.slow]

TAKEOFF_TRANSITIONS = [
    ("fdr_recorder", "configure"),
    ("fdr_recorder", "activate"),
    ("fdr_recorder", "open_flight"),
    ("tile_cache", "configure"),
    ("tile_cache", "activate"),
    ("visual_nav", "configure"),
    ("visual_nav", "activate"),
    ("fc_bridge", "configure"),
    ("fc_bridge", "activate"),
]


#: take-off processes a test started: one a failed test left running would keep its
#: nodes (same names) on the DDS graph and answer the next test's calls
_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_takeoff_outlives_its_test() -> Iterator[None]:
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()  # its node processes follow (parent-death signal)
            proc.communicate()


def _start(run_dir: Path, dsn: str, fc: SimFc, *extra: str) -> subprocess.Popen[str]:
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
        "test-flight",
        "--fc-activate-timeout",
        "20",
        *extra,
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _STARTED.append(proc)
    return proc


def _wait_active(proc: subprocess.Popen[str], timeout_s: float = 120) -> dict[str, Any]:
    """Read stdout lines until the active announcement (or the process ends)."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not sel.select(timeout=1.0):
            if proc.poll() is not None:
                break
            continue
        line = proc.stdout.readline()
        if not line:
            break
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "takeoff.active":
            return dict(event)
    proc.kill()
    _out, err = proc.communicate()
    raise AssertionError(f"take-off did not become active (rc={proc.returncode}):\n{err[-4000:]}")


def _land(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Ctrl-C, delivered to a thread other than the main one (``kill`` on a thread
    id), as the kernel may do with any process-wide signal: the main thread must
    still see it (``wait_for_stop``)."""
    others = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid]
    os.kill(max(others), signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def _records(flight_dir: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for seg in sorted(flight_dir.glob("*.mcap"), key=lambda p: int(p.stem.rsplit("_", 1)[1])):
        with seg.open("rb") as f:
            for _schema, channel, message in make_reader(f).iter_messages(log_time_order=False):
                if channel.message_encoding == "json":
                    out.append(json.loads(message.data))
    return out


def test_takeoff_order_is_the_spec_order_and_landing_writes_the_footer(
    tmp_path: Path, pg_dsn: str, sim_fc: SimFc
) -> None:
    proc = _start(tmp_path / "run", pg_dsn, sim_fc)
    active = _wait_active(proc)
    assert active["flight_id"] == "test-flight"
    # the FC link is open: the simulated autopilot hears our heartbeat
    assert sim_fc.wait_for("HEARTBEAT", 1, timeout_s=10)
    rc, out, err = _land(proc)
    assert rc == 0, err[-3000:]
    landed = [json.loads(line) for line in out.splitlines() if "takeoff.landed" in line]
    assert landed and landed[0]["records_written"] > 0

    flight_dir = tmp_path / "run" / "flights" / "test-flight"
    records = _records(flight_dir)
    transitions = [
        (r["payload"]["node"], r["payload"]["transition"])
        for r in records
        if r["kind"] == "takeoff.transition"
    ]
    assert transitions[: len(TAKEOFF_TRANSITIONS)] == TAKEOFF_TRANSITIONS
    # landing: FC link first, then the estimator, then the tile cache; the recorder's
    # own come after the footer
    assert transitions[len(TAKEOFF_TRANSITIONS) :] == [
        ("fc_bridge", "deactivate"),
        ("fc_bridge", "cleanup"),
        ("visual_nav", "deactivate"),
        ("visual_nav", "cleanup"),
        ("tile_cache", "deactivate"),
        ("tile_cache", "cleanup"),
    ]
    kinds = [r["kind"] for r in records]
    log_dir = tmp_path / "run" / "log"
    # the FC bridge's link-up was recorded: the recorder was open before the link
    assert "fc.link_up" in kinds, (
        kinds,
        (log_dir / "fc_bridge.log").read_text()[-3000:],
        (log_dir / "fdr_recorder.log").read_text()[-3000:],
    )
    assert kinds.index("fc.link_up") > kinds.index("flight_header")
    # each node's tail reached the flight before its footer: a cleanup is answered
    # once the node's records are out (runner.guard_transitions)
    closed = {r["producer"] for r in records if r["kind"] == "records_closed"}
    assert {"fc_bridge", "tile_cache"} <= closed, kinds
    assert kinds[-1] == "flight_footer"
    footer = records[-1]["payload"]
    assert footer["records_written"] == landed[0]["records_written"]
    assert footer["records_dropped_overrun"] == 0
    # Ctrl-C mid-flight left a consistent flight: structure, accounting, counters
    verify = subprocess.run(
        [sys.executable, "-m", "gps_denied_onboard.fdr.tools", "verify", str(flight_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # a clean landing reads clean: the FC link closed once, and its going down
    # as asked is no warning
    fc_log = (log_dir / "fc_bridge.log").read_text()
    assert fc_log.count("fc.link_closed") == 1, fc_log[-3000:]
    assert "fc.link_down reason=closed" in fc_log
    assert not [x for x in fc_log.splitlines() if x.startswith(("[WARN]", "[ERROR]"))], fc_log


def test_locked_flight_root_exits_2_with_fatal_line_and_no_fc_link(
    tmp_path: Path, pg_dsn: str, sim_fc: SimFc
) -> None:
    flight_root = tmp_path / "run" / "flights"
    flight_root.mkdir(parents=True)
    lock = os.open(flight_root / ".fdr.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another writer holds the flight root
    try:
        proc = _start(tmp_path / "run", pg_dsn, sim_fc)
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(lock)
    assert proc.returncode == 2, err[-3000:]
    fatal = [line for line in err.splitlines() if line.startswith("FATAL: ")]
    assert fatal == [fatal[0]]
    assert fatal[0].startswith("FATAL: flight data recorder failed to open (")
    assert fatal[0].endswith("take-off aborted, FC link not opened")
    # the FATAL line names the real cause, as the recorder stated it
    assert "is locked by another flight recorder" in fatal[0], fatal[0]
    # the ERROR record was logged before the FATAL line
    error_at = err.index("takeoff.fdr_open_failed")
    assert error_at < err.index("FATAL: ")
    # the writer was stopped: the recorder went back to unconfigured
    assert "fdr_recorder.cleanup" in err or "state=unconfigured" in err
    # no FC link was opened: the simulated FC never heard from us
    assert sim_fc.received("HEARTBEAT") == []
    assert "takeoff.active" not in out


def test_unwritable_flight_root_exits_2(tmp_path: Path, pg_dsn: str, sim_fc: SimFc) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "flights").write_text("a file where the flight root should be")
    proc = _start(run_dir, pg_dsn, sim_fc)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err[-3000:]
    (fatal,) = [line for line in err.splitlines() if line.startswith("FATAL: ")]
    assert fatal.startswith("FATAL: flight data recorder failed to open (")
    assert "is not writable" in fatal, fatal
    assert sim_fc.received("HEARTBEAT") == []


def test_tile_cache_failure_aborts_and_tears_down_in_reverse(tmp_path: Path, sim_fc: SimFc) -> None:
    bad_dsn = f"host={tmp_path}/no-such-socket-dir dbname=x user=postgres connect_timeout=2"
    proc = _start(tmp_path / "run", bad_dsn, sim_fc)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-3000:]
    assert "FATAL" not in err
    assert sim_fc.received("HEARTBEAT") == []  # never reached the FC bridge
    records = _records(tmp_path / "run" / "flights" / "test-flight")
    kinds = [r["kind"] for r in records]
    assert "takeoff.aborted" in kinds
    assert kinds[-1] == "flight_footer"  # the flight was closed on the way down


def test_fc_bridge_failure_aborts_after_the_tile_cache_came_up(
    tmp_path: Path, pg_dsn: str, sim_fc: SimFc
) -> None:
    sim_fc.pause_heartbeats()  # the autopilot never answers: fc_bridge activate fails
    proc = _start(tmp_path / "run", pg_dsn, sim_fc, "--fc-activate-timeout", "3")
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-3000:]
    records = _records(tmp_path / "run" / "flights" / "test-flight")
    transitions = [
        (r["payload"]["node"], r["payload"]["transition"])
        for r in records
        if r["kind"] == "takeoff.transition"
    ]
    assert ("tile_cache", "activate") in transitions
    assert ("fc_bridge", "activate") not in transitions
    after = transitions[transitions.index(("fc_bridge", "configure")) + 1 :]
    # reverse order: whatever is left of the FC bridge first (a failed activate may
    # already have sent it back through its error path), then the estimator, then
    # the tile cache
    assert after[-4:] == [
        ("visual_nav", "deactivate"),
        ("visual_nav", "cleanup"),
        ("tile_cache", "deactivate"),
        ("tile_cache", "cleanup"),
    ]
    assert set(after[:-4]) <= {("fc_bridge", "cleanup")}
    (aborted,) = [r for r in records if r["kind"] == "takeoff.aborted"]
    assert aborted["payload"]["failed_step"] == "fc_bridge.activate"
