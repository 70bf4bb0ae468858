"""Migrations racing, for real (issue #14): two migrator processes against one
database at once serialise on the advisory lock, and a real serialization
failure from PostgreSQL is retried once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from gps_denied_onboard.tile_cache.migrations import (
    apply_migrations,
    current_revision,
    downgrade_migrations,
    head_revision,
)

ENV_PY = Path(__file__).resolve().parents[2] / "db" / "migrations" / "env.py"


def _lock_key() -> int:
    """The advisory lock key, read from db/migrations/env.py (not a copy of it)."""
    for line in ENV_PY.read_text().splitlines():
        if line.startswith("MIGRATION_LOCK_KEY ="):
            return int(line.split("=", 1)[1].split("#")[0].strip(), 0)
    raise AssertionError("MIGRATION_LOCK_KEY not found in env.py")


def _migrator(dsn: str) -> subprocess.Popen[str]:
    """A migrator in its own process, as a second node or an operator would run it."""
    script = textwrap.dedent(
        f"""
        import json
        from gps_denied_onboard.tile_cache.migrations import apply_migrations
        r = apply_migrations({dsn!r})
        print(json.dumps({{"from": r.from_revision, "to": r.to_revision,
                          "applied": r.applied, "attempts": r.attempts}}))
        """
    )
    return subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _waiting(dsn: str, query_like: str) -> int:
    """How many backends wait on a lock while running a statement like ``query_like``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            (query_like,),
        ).fetchone()
    return int(row[0]) if row else 0


def _wait_until(predicate: object, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _result(proc: subprocess.Popen[str]) -> dict[str, object]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_two_migrator_processes_at_once_serialise_on_the_advisory_lock(pg_dsn: str) -> None:
    key = _lock_key()
    # hold the lock so that both migrators are inside their transactions, waiting
    # on it, before either may start: a true race for the same lock
    with psycopg.connect(pg_dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (key,))
        procs = [_migrator(pg_dsn), _migrator(pg_dsn)]
        try:
            _wait_until(lambda: _waiting(pg_dsn, "%pg_advisory_xact_lock%") == 2)
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (key,))
        results = [_result(p) for p in procs]
    head = head_revision()
    assert current_revision(pg_dsn) == head
    # one upgraded the empty database, the other found it at head once it held the lock
    assert sorted(r["applied"] for r in results) == [False, True], results  # type: ignore[type-var]
    (did,) = [r for r in results if r["applied"]]
    assert did["from"] is None and did["to"] == head
    (noop,) = [r for r in results if not r["applied"]]
    assert noop["from"] == head and noop["to"] == head
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM tile_freshness_rules").fetchone() == (2,)


def test_a_real_serialization_failure_is_retried_once(pg_dsn: str) -> None:
    apply_migrations(pg_dsn)
    head = head_revision()
    downgrade_migrations(pg_dsn, "-1")
    previous = current_revision(pg_dsn)
    assert previous is not None and previous != head
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        dbname = admin.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        # a deployment whose sessions default to REPEATABLE READ: a migration that
        # meets a concurrent update of the version row fails with 40001
        admin.execute(
            f"ALTER DATABASE \"{dbname}\" SET default_transaction_isolation = 'repeatable read'"
        )
    with psycopg.connect(pg_dsn) as other:
        # another session touches the version row and keeps its transaction open
        other.execute("UPDATE alembic_version SET version_num = version_num")
        proc = _migrator(pg_dsn)
        try:
            _wait_until(lambda: _waiting(pg_dsn, "UPDATE alembic_version%") == 1)
        finally:
            other.commit()  # the migrator's snapshot now predates a committed update
        result = _result(proc)
    assert result == {"from": previous, "to": head, "applied": True, "attempts": 2}
    assert current_revision(pg_dsn) == head


@pytest.mark.parametrize("runs", [3])
def test_many_migrators_at_once_leave_one_head(pg_dsn: str, runs: int) -> None:
    procs = [_migrator(pg_dsn) for _ in range(runs)]
    results = [_result(p) for p in procs]
    assert sum(bool(r["applied"]) for r in results) == 1, results
    assert current_revision(pg_dsn) == head_revision()
