"""The private PostgreSQL cluster: starts, serves, stops without leftovers."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from gps_denied_onboard.embedded_pg import EmbeddedPostgres, resolve_dsn


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
