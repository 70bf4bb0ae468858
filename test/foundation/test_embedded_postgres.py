"""The private PostgreSQL cluster: starts, serves, stops without leftovers."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from signal_storm import storm_until_exit
from unprivileged import as_user, private_dir_of, unprivileged_user, why_not_runnable

from gps_denied_onboard.embedded_pg import (
    EmbeddedPostgres,
    cluster_home,
    find_pg_bindir,
    resolve_dsn,
    traversable_by,
)
from gps_denied_onboard.errors import EmbeddedPostgresError


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="gdo-pg-unit-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _postgres_pids_for(data_dir: Path) -> list[str]:
    out = subprocess.run(
        ["pgrep", "-f", f"-D {data_dir}"], capture_output=True, text=True, check=False
    ).stdout
    more = subprocess.run(
        ["pgrep", "-f", str(data_dir)], capture_output=True, text=True, check=False
    ).stdout
    return sorted(set(out.split()) | set(more.split()))


def _no_postgres_left(data_dir: Path, wait_s: float = 10.0) -> list[str]:
    """The processes still running for ``data_dir`` once they had ``wait_s`` to exit.

    ``pg_ctl stop -w`` returns when the postmaster removed its pid file, a
    moment before the process itself is gone.
    """
    deadline = time.monotonic() + wait_s
    while (pids := _postgres_pids_for(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pids


def test_start_stop_twice_leaves_no_process_and_no_lock_file(scratch_dir: Path) -> None:
    data = scratch_dir / "data"
    for round_ in range(2):
        with EmbeddedPostgres(data) as pg:
            dsn = pg.create_database("gdo")
            with psycopg.connect(dsn) as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS t (i int)")
                conn.execute("INSERT INTO t VALUES (%s)", (round_,))
                rows = conn.execute("SELECT i FROM t ORDER BY i").fetchall()
            assert rows == [(i,) for i in range(round_ + 1)]  # data survives a restart
            assert (data / "postmaster.pid").exists()
        assert not (data / "postmaster.pid").exists()
        assert not list(data.glob(".s.PGSQL.*")), "socket or socket lock file left behind"
        assert _postgres_pids_for(data) == []


def test_cluster_listens_on_no_tcp_port(scratch_dir: Path) -> None:
    with EmbeddedPostgres(scratch_dir / "data") as pg, psycopg.connect(pg.dsn()) as conn:
        (addresses,) = conn.execute("SHOW listen_addresses").fetchone()  # type: ignore[misc]
        assert addresses == ""


def test_configured_dsn_wins_over_environment_and_embedded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GDO_DSN", "host=/env")
    assert resolve_dsn("host=/configured") == "host=/configured"
    assert resolve_dsn("  ") == "host=/env"
    monkeypatch.delenv("GDO_DSN")
    assert resolve_dsn("") is None


# -- where a run's cluster lives (issue 16: --run-dir under a 0700 directory) --------

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="the per-run directory is root's case (the server runs as postgres)"
)


@pytest.fixture
def runtime_base() -> Iterator[Path]:
    """A base for per-run cluster directories (what /var/lib/... is in production)."""
    base = Path(tempfile.mkdtemp(prefix="gdo-pg-base-"))
    base.chmod(0o755)
    yield base / "embedded-pg"
    for pid_file in base.glob("embedded-pg/*/data/postmaster.pid"):  # a failed test's server
        EmbeddedPostgres(pid_file.parent).stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def private_run_dir() -> Iterator[Path]:
    """What ``mktemp -d`` gives: a 0700 directory only its owner can traverse."""
    base = Path(tempfile.mkdtemp(prefix="gdo-run-"))
    assert base.stat().st_mode & 0o777 == 0o700
    yield base / "run"
    shutil.rmtree(base, ignore_errors=True)


@needs_root
def test_a_0700_run_directory_is_refused_as_a_data_directory_parent(
    private_run_dir: Path,
) -> None:
    # the failure issue 16 reported, at its source: postgres cannot reach <run>/pg
    with pytest.raises(EmbeddedPostgresError, match="not traversable by user 'postgres'"):
        EmbeddedPostgres(private_run_dir / "pg").start()


@needs_root
def test_root_cluster_lives_in_a_per_run_directory_postgres_owns_and_is_removed(
    private_run_dir: Path, runtime_base: Path
) -> None:
    home = cluster_home(private_run_dir / "pg", base=runtime_base)
    postgres = pwd.getpwnam("postgres")
    assert home.server_user == "postgres"
    assert home.per_run_dir is not None and home.per_run_dir.parent == runtime_base
    assert not home.data_dir.is_relative_to(private_run_dir)
    st = home.per_run_dir.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (postgres.pw_uid, 0o700)
    assert runtime_base.stat().st_mode & 0o777 == 0o755
    with home.cluster() as pg, psycopg.connect(pg.create_database("gdo")) as conn:
        (data_directory,) = conn.execute("SHOW data_directory").fetchone()  # type: ignore[misc]
        assert Path(data_directory) == home.data_dir
        assert list(home.socket_dir.glob(".s.PGSQL.*"))
    home.remove()
    assert not home.per_run_dir.exists()
    assert _no_postgres_left(home.data_dir) == []
    assert list(runtime_base.iterdir()) == []


@needs_root
def test_removing_a_per_run_home_stops_a_server_still_running_there(
    private_run_dir: Path, runtime_base: Path
) -> None:
    home = cluster_home(private_run_dir / "pg", base=runtime_base)
    pg = home.cluster()
    pg.start()  # and never stopped: a take-off that died mid-flight
    assert _postgres_pids_for(home.data_dir) != []
    home.remove()
    assert home.per_run_dir is not None and not home.per_run_dir.exists()
    assert _no_postgres_left(home.data_dir) == []


@needs_root
def test_homes_of_runs_that_died_are_swept_live_ones_kept(
    private_run_dir: Path, runtime_base: Path
) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    postgres = pwd.getpwnam("postgres")
    runtime_base.mkdir(parents=True)
    runtime_base.chmod(0o755)
    stale = runtime_base / f"run-{dead.pid}-abc123"
    (stale / "data").mkdir(parents=True)
    # a run killed in flight: its maker is gone, its server still runs
    orphaned = runtime_base / f"run-{dead.pid}-ghi789"
    orphaned.mkdir(mode=0o700)
    os.chown(orphaned, postgres.pw_uid, postgres.pw_gid)
    EmbeddedPostgres(orphaned / "data").start()
    assert _postgres_pids_for(orphaned / "data") != []
    live = runtime_base / f"run-{os.getpid()}-def456"
    live.mkdir()
    unrelated = runtime_base / "not-ours"
    unrelated.mkdir()
    home = cluster_home(private_run_dir / "pg", base=runtime_base)
    assert not stale.exists()
    assert not orphaned.exists()
    assert _no_postgres_left(orphaned / "data") == []
    assert live.exists() and unrelated.exists()
    home.remove()


def test_traversal_honours_owner_group_and_other_bits(scratch_dir: Path) -> None:
    me = pwd.getpwuid(os.geteuid())
    d = scratch_dir / "d"
    d.mkdir(mode=0o700)
    d.chmod(0o700)
    assert traversable_by(d, me)  # the owner's x bit
    d.chmod(0o600)
    assert not traversable_by(d, me)
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        d.chmod(0o700)
        assert not traversable_by(d, postgres)  # root's private directory
        os.chown(d, postgres.pw_uid, postgres.pw_gid)
        assert traversable_by(d, postgres)


def test_not_root_the_cluster_stays_in_the_run_directory(
    private_run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    home = cluster_home(private_run_dir / "pg")
    assert (home.data_dir, home.per_run_dir, home.server_user) == (
        (private_run_dir / "pg").absolute(),
        None,
        None,
    )
    home.remove()  # the run directory is the user's: nothing is deleted
    assert home.report(landed=True)["state"] == "kept in the run directory"


def test_an_overlong_socket_path_is_refused_before_initdb(scratch_dir: Path) -> None:
    data = scratch_dir / ("d" * 100)
    with pytest.raises(EmbeddedPostgresError, match="longer than the 107 bytes"):
        EmbeddedPostgres(data).start()
    assert not (data / "PG_VERSION").exists()


_AS_USER_SCRIPT = """
import json, os, subprocess, sys
from pathlib import Path
from gps_denied_onboard.embedded_pg import cluster_home, find_pg_bindir

run = Path(sys.argv[1])
run.mkdir()
home = cluster_home(run / "pg")
with home.cluster() as pg:
    pid = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
    uid = Path(f"/proc/{pid}").stat().st_uid
    psql = [str(find_pg_bindir() / "psql"), "-X", "-At", "-h", str(pg.socket_dir)]
    answer = subprocess.run(
        [*psql, "-p", "5432", "-U", "postgres", "-c", "SHOW data_directory"],
        capture_output=True, text=True, check=True, cwd="/",
    ).stdout.strip()
home.remove()
print(json.dumps({"data_dir": str(home.data_dir), "per_run_dir": home.per_run_dir,
                  "server_uid": uid, "answer": answer, "pid": pid}))
"""


def test_unprivileged_user_runs_the_cluster_in_its_own_0700_run_directory() -> None:
    """As ``nobody`` when we are root: the cluster in ``<run>/pg``, no switch of user."""
    pw, why = unprivileged_user()
    if pw is None:
        pytest.skip(why)
    import gps_denied_onboard.embedded_pg as module

    # the package's stdlib-only module, from wherever it is installed; any
    # interpreter the user can run does (the venv may sit in root's home)
    src = str(Path(module.__file__).parents[1])
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": src, "HOME": "/"}
    pythons = [sys.executable, "/usr/bin/python3"]
    usable = [p for p in pythons if why_not_runnable(pw, [p, "-c", "import pwd"], env) is None]
    if not usable:
        pytest.skip(f"user {pw.pw_name!r} can run none of {pythons}")
    home = private_dir_of(pw, "gdo-unpriv-")
    try:
        proc = subprocess.run(
            as_user(pw, [usable[0], "-c", _AS_USER_SCRIPT, str(home / "run")]),
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
            env=env,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        data_dir = home / "run" / "pg"
        assert got["data_dir"] == str(data_dir)
        assert got["per_run_dir"] is None
        assert got["server_uid"] == pw.pw_uid  # the server ran as that user itself
        assert got["answer"] == str(data_dir)
        assert not (data_dir / "postmaster.pid").exists()
        assert not list(data_dir.glob(".s.PGSQL.*"))
        assert _no_postgres_left(data_dir) == []
    finally:
        shutil.rmtree(home, ignore_errors=True)


# A Ctrl-C storm (test_takeoff_operator's, faster) at a process that brings a
# cluster up and down: every helper it runs sits in a session of its own, so
# the storm must reach none of them, however it falls.
_UNDER_STORM_SCRIPT = """
import sys
from pathlib import Path
from gps_denied_onboard.embedded_pg import EmbeddedPostgres
from gps_denied_onboard.errors import EmbeddedPostgresError
from gps_denied_onboard.stop_signals import install_early
signals = install_early()
print("ready", flush=True)
pg = EmbeddedPostgres(Path(sys.argv[1]))
failures = []
for _ in range(int(sys.argv[2])):
    try:
        pg.start()
        pg.stop()
    except EmbeddedPostgresError as err:
        failures.append(str(err))
print(repr(failures), len(signals.received) > 0, flush=True)
"""


def test_a_sigint_storm_at_our_process_group_fails_no_start_or_stop_and_leaves_no_server(
    scratch_dir: Path,
) -> None:
    """Before: ``initdb failed (exit -2)`` or ``pg_ctl failed (exit -2)`` in most
    runs, CPython's vforked child having died of the SIGINT before its setsid()."""
    data = scratch_dir / "data"
    proc = subprocess.Popen(
        [sys.executable, "-c", _UNDER_STORM_SCRIPT, str(data), "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        sent = storm_until_exit(proc, 0.001)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        EmbeddedPostgres(data).stop()  # a failed run's server
    assert sent > 0
    # the script itself lost its handlers at exit; its last line was printed before
    assert out.strip().splitlines()[-1] == "[] True", (out, err[-3000:])
    assert not (data / "postmaster.pid").exists()
    assert _no_postgres_left(data) == []


def test_a_status_query_that_dies_does_not_read_as_a_stopped_server(
    scratch_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pg_ctl status`` killed (exit by a signal, not 3) says nothing of the server:
    before, ``stop`` took it for "not running" and left the postmaster running."""
    data = scratch_dir / "data"
    real = EmbeddedPostgres(data)
    real.start()
    try:
        fake = scratch_dir / "bin"
        fake.mkdir()
        fake.chmod(0o755)
        bindir = find_pg_bindir()
        (fake / "initdb").symlink_to(bindir / "initdb")
        (fake / "pg_ctl").write_text(
            f'#!/bin/sh\n[ "$1" = status ] && kill -s INT $$\nexec {bindir / "pg_ctl"} "$@"\n'
        )
        (fake / "pg_ctl").chmod(0o755)
        monkeypatch.setenv("GDO_PG_BINDIR", str(fake))
        pg = EmbeddedPostgres(data)
        assert pg.is_running()
        pg.stop()
        assert not pg.is_running()
        assert not (data / "postmaster.pid").exists()
        assert _no_postgres_left(data) == []
    finally:
        real.stop()
