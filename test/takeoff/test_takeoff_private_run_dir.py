"""``python -m gps_denied_onboard takeoff --run-dir DIR`` on the embedded cluster
with DIR under a private directory, as ``mktemp -d`` makes it (mode 0700).

As root the server runs as ``postgres``, which cannot traverse that directory:
the cluster must live in a per-run directory outside it, named in the run
directory's ``embedded_pg.json`` and gone after landing. As an unprivileged user
the server runs as that user, in ``<run dir>/pg``. Real processes, real DDS,
real PostgreSQL, a simulated ArduPilot on UDP loopback.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_takeoff_bringup import _land, _records, _wait_active
from unprivileged import as_user, private_dir_of, unprivileged_user, why_not_runnable

from gps_denied_onboard.embedded_pg import CLUSTER_REPORT, ClusterHome
from gps_denied_onboard.fc_bridge.sim_fc import SimFc

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _takeoff_argv(run_dir: Path, fc: SimFc) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gps_denied_onboard",
        "takeoff",
        "--run-dir",
        str(run_dir),
        "--dsn",
        "",  # the embedded cluster
        "--fc-connection",
        fc.connection,
        "--flight-id",
        "private-run",
        "--fc-activate-timeout",
        "20",
    ]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GDO_DSN"}
    return {**env, **extra}


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


def _server_uid(data_dir: Path) -> int:
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    return Path(f"/proc/{pid}").stat().st_uid


def _fly(argv: Sequence[str], env: dict[str, str], run_dir: Path, cwd: Path) -> dict[str, Any]:
    """Take off, check the cluster in flight, land; what was seen, for the test to judge."""
    proc = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd
    )
    try:
        active = _wait_active(proc)
        in_flight = json.loads((run_dir / CLUSTER_REPORT).read_text())
        data_dir = Path(in_flight["data_dir"])
        seen: dict[str, Any] = {
            "active": active,
            "in_flight": in_flight,
            "server_uid": _server_uid(data_dir),
            "run_dir_entries": sorted(p.name for p in run_dir.iterdir()),
        }
        # the tile cache's database is in that cluster, migrated
        dsn = f"host={in_flight['socket_dir']} port=5432 user=postgres dbname=gps_denied"
        with psycopg.connect(dsn) as conn:
            seen["alembic"] = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        per_run = in_flight["per_run_dir"]
        if per_run is not None:
            st = Path(per_run).stat()
            seen["per_run_owner_mode"] = (st.st_uid, st.st_mode & 0o777)
        rc, out, err = _land(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    seen.update(rc=rc, err=err)
    events = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    # the landing line carries the report: {"event": "embedded_pg.landed", **report}
    seen["landed"] = [
        {k: v for k, v in e.items() if k != "event"}
        for e in events
        if e.get("event") == "embedded_pg.landed"
    ]
    seen["after"] = json.loads((run_dir / CLUSTER_REPORT).read_text())
    return seen


@pytest.mark.skipif(os.geteuid() != 0, reason="root's case: the server runs as postgres")
def test_root_takes_off_with_its_run_dir_in_a_0700_directory(sim_fc: SimFc) -> None:
    private = Path(tempfile.mkdtemp(prefix="gdo-takeoff-"))
    assert private.stat().st_mode & 0o777 == 0o700
    run_dir = private / "run"
    postgres = pwd.getpwnam("postgres")
    seen: dict[str, Any] = {}
    try:
        seen = _fly(_takeoff_argv(run_dir, sim_fc), _env(), run_dir, Path.cwd())
        assert seen["rc"] == 0, seen["err"][-3000:]
        in_flight = seen["in_flight"]
        data_dir, per_run = Path(in_flight["data_dir"]), Path(in_flight["per_run_dir"])
        # the cluster lived outside the run directory, in a directory postgres owns
        assert not data_dir.is_relative_to(private)
        assert data_dir.parent == per_run
        assert Path(in_flight["socket_dir"]).is_relative_to(per_run)
        assert in_flight["server_user"] == "postgres"
        assert in_flight["state"] == "in use"
        assert seen["per_run_owner_mode"] == (postgres.pw_uid, 0o700)
        assert seen["server_uid"] == postgres.pw_uid
        assert seen["alembic"] != []
        # only what must be there is in the run directory
        assert "pg" not in seen["run_dir_entries"]
        assert {"flights", "log", CLUSTER_REPORT} <= set(seen["run_dir_entries"])
        assert (run_dir / "flights" / "private-run").is_dir()
        # landed: the report names where it lived; nothing of it is left
        assert seen["landed"] == [seen["after"]]
        assert seen["after"]["data_dir"] == str(data_dir)
        assert seen["after"]["state"] == "removed at landing"
        assert not per_run.exists()
        assert _processes_mentioning(data_dir) == []
    finally:
        per_run_dir = seen.get("in_flight", {}).get("per_run_dir")
        if per_run_dir and Path(per_run_dir).exists():  # a failed run: do not leak it
            ClusterHome(Path(per_run_dir) / "data", Path(per_run_dir), "postgres").remove()
        shutil.rmtree(private, ignore_errors=True)


def test_unprivileged_user_takes_off_with_its_run_dir_in_a_0700_directory(
    sim_fc: SimFc,
) -> None:
    pw, why = unprivileged_user()
    if pw is None:
        pytest.skip(why)
    private = private_dir_of(pw, "gdo-takeoff-unpriv-")
    try:
        run_dir = private / "run"
        env = _env(HOME=str(private), ROS_LOG_DIR=str(private / "ros_log"))
        probe = [sys.executable, "-c", "import rclpy, gps_denied_onboard.nodes.bringup"]
        reason = why_not_runnable(pw, probe, env)
        if reason is not None:
            venv = Path(sys.prefix) / "pyvenv.cfg"
            unreadable = why_not_runnable(pw, ["test", "-r", str(venv)], env) is not None
            pytest.skip(
                f"user {pw.pw_name!r} cannot import rclpy and the package with "
                f"{sys.executable} ({reason})"
                + (f"; it cannot read {venv}" if unreadable else "")
                + " (a venv that user can read, GDO_VENV, would run this case)"
            )
        seen = _fly(as_user(pw, _takeoff_argv(run_dir, sim_fc)), env, run_dir, private)
        assert seen["rc"] == 0, seen["err"][-3000:]
        in_flight = seen["in_flight"]
        data_dir = run_dir / "pg"
        assert in_flight["data_dir"] == str(data_dir)
        assert in_flight["per_run_dir"] is None
        assert in_flight["server_user"] == pw.pw_name
        assert seen["server_uid"] == pw.pw_uid
        assert seen["alembic"] != []
        assert seen["after"]["state"] == "kept in the run directory"
        assert seen["landed"] == [seen["after"]]
        # the cluster is stopped: no process, no pid file, no socket or its lock
        assert not (data_dir / "postmaster.pid").exists()
        assert not list(data_dir.glob(".s.PGSQL.*"))
        assert _processes_mentioning(data_dir) == []
    finally:
        shutil.rmtree(private, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="root's case: the server runs as postgres")
def test_root_aborted_takeoff_leaves_nothing_of_the_cluster(sim_fc: SimFc) -> None:
    sim_fc.pause_heartbeats()  # the autopilot never answers: fc_bridge activate fails
    private = Path(tempfile.mkdtemp(prefix="gdo-takeoff-abort-"))
    run_dir = private / "run"
    try:
        argv = [*_takeoff_argv(run_dir, sim_fc), "--fc-activate-timeout", "3"]
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=_env(), timeout=180, check=False
        )
        assert proc.returncode == 1, proc.stderr[-3000:]
        report = json.loads((run_dir / CLUSTER_REPORT).read_text())
        # the cluster was up (the tile cache came up on it) before the abort
        records = _records(run_dir / "flights" / "private-run")
        transitions = [
            (r["payload"]["node"], r["payload"]["transition"])
            for r in records
            if r["kind"] == "takeoff.transition"
        ]
        assert ("tile_cache", "activate") in transitions
        assert [r["payload"]["failed_step"] for r in records if r["kind"] == "takeoff.aborted"] == [
            "fc_bridge.activate"
        ]
        assert report["state"] == "removed at landing"
        assert not Path(report["per_run_dir"]).exists()
        assert _processes_mentioning(Path(report["data_dir"])) == []
    finally:
        shutil.rmtree(private, ignore_errors=True)
