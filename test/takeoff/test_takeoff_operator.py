"""Take-off and landing under an impatient operator (issue #12): Ctrl-C again
and again to the whole process group while landing, and Ctrl-C while a node is
still starting. Real processes, real DDS, real PostgreSQL, a simulated
ArduPilot on UDP loopback."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from signal_storm import storm_until_exit
from test_takeoff_bringup import _records, _wait_active

from gps_denied_onboard.embedded_pg import CLUSTER_REPORT
from gps_denied_onboard.fc_bridge.sim_fc import SimFc
from gps_denied_onboard.nodes.bringup import PACKAGE, install_prefix
from gps_denied_onboard.stop_signals import EXIT_INTERRUPTED
from gps_denied_onboard.takeoff.sequence import EXIT_FDR_OPEN_FAILURE

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _processes_mentioning(path: Path, wait_s: float = 10.0) -> list[str]:
    """Processes whose command line names ``path``, once they had ``wait_s`` to exit."""
    deadline = time.monotonic() + wait_s
    while True:
        pids = subprocess.run(
            ["pgrep", "-f", str(path)], capture_output=True, text=True, check=False
        ).stdout.split()
        if not pids or time.monotonic() >= deadline:
            return pids
        time.sleep(0.1)


def _lock_is_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("storm_from", ["in_flight", "taking_off"])
def test_sigint_storm_to_the_process_group_leaves_nothing_behind(
    tmp_path: Path, sim_fc: SimFc, storm_from: str
) -> None:
    """SIGINT to the whole process group every 20 ms until the process exits,
    from the moment the stack is up (the whole landing under fire), or from
    the moment the flight is open, when the sequencer runs initdb and starts
    the embedded cluster (take-off under fire: it completes, then lands)."""
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "GDO_DSN"}
    argv = [
        sys.executable,
        "-m",
        "gps_denied_onboard",
        "takeoff",
        "--run-dir",
        str(run_dir),
        "--dsn",
        "",  # the embedded cluster: pg_ctl runs in the landing path
        "--fc-connection",
        sim_fc.connection,
        "--flight-id",
        "storm",
        "--fc-activate-timeout",
        "20",
    ]
    # its own process group, as a terminal's foreground job is: killpg below is
    # what a terminal does on every Ctrl-C
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        if storm_from == "in_flight":
            _wait_active(proc)
        else:
            deadline = time.monotonic() + 120
            while not (run_dir / "flights" / "storm").exists():
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.005)
        cluster = json.loads((run_dir / CLUSTER_REPORT).read_text())
        data_dir = Path(cluster["data_dir"])
        sent = storm_until_exit(proc, 0.02, timeout_s=240)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert sent >= 20, sent  # the landing took a while under the storm
    assert "Traceback" not in err, err[-4000:]
    assert "teardown_failed" not in err, err[-4000:]
    assert proc.returncode == 0, err[-4000:]
    # the flight was closed in order: footer last, counters printed
    records = _records(run_dir / "flights" / "storm")
    assert records[-1]["kind"] == "flight_footer"
    landed = [json.loads(x) for x in out.splitlines() if '"takeoff.landed"' in x]
    assert landed[0]["records_written"] == records[-1]["payload"]["records_written"]
    if storm_from == "taking_off":  # the cluster was made and started under fire
        assert "takeoff.active" in err, err[-4000:]
    # no process and no lock left: server stopped, nodes gone, roots free
    assert not (data_dir / "postmaster.pid").exists()
    assert _processes_mentioning(data_dir) == []
    assert _processes_mentioning(run_dir) == []
    assert _lock_is_free(run_dir / "flights" / ".fdr.lock")
    assert _lock_is_free(run_dir / "tiles" / ".tile_cache.lock")
    pg_landed = [json.loads(x) for x in out.splitlines() if '"embedded_pg.landed"' in x]
    assert pg_landed and pg_landed[0]["state"] != "left behind", pg_landed


def _rclpy_loaded(pid: int) -> bool:
    try:
        return "_rclpy_pybind11" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.parametrize("executable", ["takeoff_sequencer", "tile_cache_node"])
def test_sigint_while_a_node_is_starting_exits_quietly(executable: str) -> None:
    exe = install_prefix() / "lib" / PACKAGE / executable
    outcomes: list[int] = []
    for delay_s in (0.0, 0.05, 0.15, 0.3, 0.6):
        proc = subprocess.Popen(
            [sys.executable, str(exe), "--ros-args", "-p", "service_timeout_s:=2.0"]
            if executable == "takeoff_sequencer"
            else [sys.executable, str(exe)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not _rclpy_loaded(proc.pid) and proc.poll() is None:
                assert time.monotonic() < deadline, "rclpy never loaded"
                time.sleep(0.005)
            time.sleep(delay_s)
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
        # stopped while starting (130), or already up: a lifecycle node stops
        # cleanly (0); the sequencer was already taking off, with no recorder to
        # find (2, the FATAL line)
        up = 0 if executable == "tile_cache_node" else EXIT_FDR_OPEN_FAILURE
        assert proc.returncode in (up, EXIT_INTERRUPTED), (delay_s, proc.returncode, err[-2000:])
        outcomes.append(proc.returncode)
    # at least one Ctrl-C landed inside the start-up window
    assert EXIT_INTERRUPTED in outcomes, outcomes
