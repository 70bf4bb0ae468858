"""Shared fixtures: one PostgreSQL cluster per test session, a database per test,
a private DDS domain per run, and a manual clock.

The cluster is the project's own embedded one (``gps_denied_onboard.embedded_pg``)
unless ``GDO_TEST_DSN`` points at a server to use instead. Database tests never
skip silently: no server means they fail with the reason.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# A private DDS domain per test run, chosen before anything imports rclpy, so
# parallel runs on one machine never see each other's nodes.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.embedded_pg import (
    DEFAULT_RUNTIME_BASES,
    RUNTIME_DIR_ENV,
    EmbeddedPostgres,
    EmbeddedPostgresError,
    sweep_stale_homes,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


class PgServer:
    """Where test databases are created: the embedded cluster or GDO_TEST_DSN."""

    def __init__(self, embedded: EmbeddedPostgres | None, admin_dsn: str) -> None:
        self.embedded = embedded
        self.admin_dsn = admin_dsn

    def create_database(self, name: str) -> str:
        import psycopg
        from psycopg import conninfo, sql

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return conninfo.make_conninfo(self.admin_dsn, dbname=name)

    def drop_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="module")
def ros() -> Iterator[None]:
    """rclpy initialised for one test module's in-process nodes, shut down after it
    (a module whose tests share an executor defines its own ``ros``)."""
    rclpy = pytest.importorskip("rclpy")
    rclpy.init()
    try:
        yield
    finally:
        rclpy.shutdown()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the whole session."""
    external = os.environ.get("GDO_TEST_DSN", "").strip()
    if external:
        yield PgServer(None, external)
        return
    data_dir = Path(tempfile.mkdtemp(prefix="gdo-test-pg-"))
    pg = EmbeddedPostgres(data_dir / "data")
    data_dir.chmod(0o755)
    pg.start()
    try:
        yield PgServer(pg, pg.dsn())
    finally:
        pg.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database for one test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = pg_server.create_database(name)
    try:
        yield dsn
    finally:
        pg_server.drop_database(name)


def _running_clusters_under(root: Path) -> list[Path]:
    """Data directories under ``root`` whose postmaster is still running."""
    found = []
    for pid_file in root.rglob("postmaster.pid"):
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            continue
        if Path(f"/proc/{pid}").exists():
            found.append(pid_file.parent)
    return found


@pytest.fixture(autouse=True)
def _no_embedded_cluster_outlives_its_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """A take-off that ended without stopping its embedded cluster leaves a server
    that nothing stops: the next take-off sweeps it on an aircraft, but on CI it
    keeps the job alive to its time limit. Stop it here, and fail the test that
    left it (autouse: set up first, torn down after every other fixture)."""
    yield
    left: list[str] = []
    # root: per-run clusters under the runtime base, their maker (pid in the name) gone
    env = os.environ.get(RUNTIME_DIR_ENV, "").strip()
    for base in [Path(env)] if env else DEFAULT_RUNTIME_BASES:
        if base.is_dir():
            left += [str(p) for p in sweep_stale_homes(base)]
    # not root: the cluster lives in the test's run directory
    tmp = request.node.funcargs.get("tmp_path")
    if isinstance(tmp, Path) and tmp.is_dir():
        for data_dir in _running_clusters_under(tmp):
            with contextlib.suppress(EmbeddedPostgresError):  # the failure says it
                EmbeddedPostgres(data_dir).stop()
            left.append(str(data_dir))
    if left:
        pytest.fail(f"the test left a running embedded PostgreSQL cluster behind: {left}")


@pytest.fixture
def manual_clock() -> ManualClock:
    """A clock at 2026-05-12T00:00:00Z that moves only when the test says so."""
    return ManualClock(start_ns=1_778_544_000 * 1_000_000_000)
