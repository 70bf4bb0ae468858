"""Schema 0002 on a real PostgreSQL: every acceptance criterion of spec 004."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from unittest import mock

import psycopg
import pytest

from gps_denied_onboard.errors import GpsDeniedError
from gps_denied_onboard.log import parse_event
from gps_denied_onboard.tile_cache import migrations
from gps_denied_onboard.tile_cache.config import TileCacheConfig
from gps_denied_onboard.tile_cache.errors import TileCacheError
from gps_denied_onboard.tile_cache.identity import TILE_NAMESPACE_UUID
from gps_denied_onboard.tile_cache.migrations import (
    MigrationError,
    MigrationResult,
    apply_migrations,
    current_revision,
    downgrade_migrations,
    head_revision,
)

FIXTURES = Path(__file__).parent / "fixtures"
ZERO = "00000000-0000-0000-0000-000000000000"
SHAPE_TABLES = ("tiles", "sector_classifications", "tile_freshness_rules")


def schema_shape(dsn: str, tables: tuple[str, ...] = SHAPE_TABLES) -> list[str]:
    """Columns, constraints and indices of ``tables`` as sorted, diffable lines."""
    lines: list[str] = []
    with psycopg.connect(dsn) as conn:
        for table in tables:
            for name, dtype, nullable, default in conn.execute(
                "SELECT column_name, data_type, is_nullable, column_default "
                "FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
                (table,),
            ):
                lines.append(f"column {table}.{name} {dtype} null={nullable} default={default}")
            for name, definition in conn.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass",
                (table,),
            ):
                lines.append(f"constraint {table}.{name} {definition}")
            for name, definition in conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", (table,)
            ):
                lines.append(f"index {table}.{name} {definition}")
    return sorted(lines)


def insert_tile(conn: psycopg.Connection, **overrides: object) -> None:
    row: dict[str, object] = {
        "zoom": 15,
        "x": 100,
        "y": 200,
        "source": "satellite",
        "flight_id": None,
        "latitude": 48.0,
        "longitude": 11.0,
        "captured_at": "2026-01-01T00:00:00Z",
        "file_path": "a.jpg",
        "freshness_status": "fresh",
    }
    row.update(overrides)
    cols = ", ".join(row)
    params = ", ".join(f"%({k})s" for k in row)
    conn.execute(f"INSERT INTO tiles ({cols}) VALUES ({params})", row)


@pytest.fixture
def baseline_dsn(pg_dsn: str) -> str:
    apply_migrations(pg_dsn, target="0001")
    return pg_dsn


def test_ac1_apply_on_baseline_advances_to_head(baseline_dsn: str) -> None:
    assert current_revision(baseline_dsn) == "0001"
    result = apply_migrations(baseline_dsn)
    assert result.applied
    assert result.from_revision == "0001"
    assert result.to_revision == head_revision() == current_revision(baseline_dsn)


def test_ac1_apply_on_empty_database_builds_everything(pg_dsn: str) -> None:
    result = apply_migrations(TileCacheConfig(dsn=pg_dsn))
    assert (result.from_revision, result.applied) == (None, True)
    assert current_revision(pg_dsn) == head_revision()


def test_ac2_apply_at_head_is_a_noop(pg_dsn: str) -> None:
    apply_migrations(pg_dsn)
    before = schema_shape(pg_dsn)
    result = apply_migrations(pg_dsn)
    assert not result.applied
    assert result.from_revision == result.to_revision == head_revision()
    assert schema_shape(pg_dsn) == before


def test_ac3_schema_shape_matches_fixture(pg_dsn: str) -> None:
    apply_migrations(pg_dsn, target="0002")
    expected = (FIXTURES / "schema_0002.txt").read_text().splitlines()
    expected = [line for line in expected if line and not line.startswith("#")]
    assert schema_shape(pg_dsn) == sorted(expected)


def test_ac4_same_cell_in_two_flights_is_two_rows(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn) as conn:
        insert_tile(conn, flight_id=uuid.uuid4(), file_path="a")
        insert_tile(conn, flight_id=uuid.uuid4(), file_path="b")
        insert_tile(conn, flight_id=None, file_path="c")
        insert_tile(conn, source="naip", flight_id=None, file_path="d")
        (count,) = conn.execute("SELECT count(*) FROM tiles").fetchone() or (0,)
    assert count == 4


@pytest.mark.parametrize("source", ["satellite", "googlemaps"])
def test_ac4b_duplicate_natural_key_is_rejected(migrated_dsn: str, source: str) -> None:
    flight = uuid.uuid4()
    with psycopg.connect(migrated_dsn) as conn:
        insert_tile(conn, source=source, flight_id=None)
        insert_tile(conn, source=source, flight_id=flight)
        conn.commit()
        with pytest.raises(psycopg.errors.UniqueViolation, match="idx_tiles_natural_key"):
            insert_tile(conn, source=source, flight_id=None)
        conn.rollback()
        with pytest.raises(psycopg.errors.UniqueViolation, match="idx_tiles_natural_key"):
            insert_tile(conn, source=source, flight_id=flight)
        conn.rollback()
        # the zero UUID and NULL are the same key: "no flight"
        with pytest.raises(psycopg.errors.UniqueViolation, match="idx_tiles_natural_key"):
            insert_tile(conn, source=source, flight_id=uuid.UUID(ZERO))


@pytest.mark.parametrize(
    "status", ["fresh", "stale_warn", "stale_reject", "unknown", "downgraded", "rejected"]
)
def test_ac5_widened_check_accepts_the_union(migrated_dsn: str, status: str) -> None:
    with psycopg.connect(migrated_dsn) as conn:
        insert_tile(conn, freshness_status=status)


def test_ac5_check_still_rejects_other_words_and_baseline_rejected_new_ones(
    baseline_dsn: str,
) -> None:
    with psycopg.connect(baseline_dsn) as conn, pytest.raises(psycopg.errors.CheckViolation):
        insert_tile(conn, freshness_status="downgraded")
    apply_migrations(baseline_dsn)
    widened = pytest.raises(psycopg.errors.CheckViolation, match="ck_tiles_freshness_status")
    with psycopg.connect(baseline_dsn) as conn, widened:
        insert_tile(conn, freshness_status="stale")


def test_ac6_downgrade_restores_the_baseline_exactly(baseline_dsn: str) -> None:
    baseline = schema_shape(baseline_dsn, ("tiles", "sector_classifications"))
    apply_migrations(baseline_dsn)
    with psycopg.connect(baseline_dsn) as conn:
        insert_tile(conn, freshness_status="rejected", file_path="r")
        insert_tile(conn, x=101, freshness_status="downgraded", file_path="d")
    downgrade_migrations(baseline_dsn, "0001")
    assert current_revision(baseline_dsn) == "0001"
    assert schema_shape(baseline_dsn, ("tiles", "sector_classifications")) == baseline
    with psycopg.connect(baseline_dsn) as conn:
        assert conn.execute("SELECT to_regclass('tile_freshness_rules')").fetchone() == (None,)
        statuses = dict(conn.execute("SELECT file_path, freshness_status FROM tiles").fetchall())
        with pytest.raises(psycopg.errors.CheckViolation):
            insert_tile(conn, x=102, freshness_status="rejected")
    assert statuses == {"r": "stale_reject", "d": "stale_warn"}


def test_ac7_default_freshness_rules_are_seeded(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn) as conn:
        rows = conn.execute(
            "SELECT classification, action, max_age = interval '6 months', "
            "max_age = interval '12 months' FROM tile_freshness_rules ORDER BY classification"
        ).fetchall()
    assert rows == [
        ("active_conflict", "reject", True, False),
        ("stable_rear", "downgrade", False, True),
    ]


def test_ac8_info_log_on_apply_and_on_noop_carries_the_namespace(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("test.migrations")
    with caplog.at_level(logging.INFO, logger="test.migrations"):
        apply_migrations(pg_dsn, logger=logger)
        apply_migrations(pg_dsn, logger=logger)
    events = [parse_event(r.getMessage()) for r in caplog.records if r.levelno == logging.INFO]
    kinds = [kind for kind, _ in events]
    assert kinds == ["c6.migrations.apply", "c6.migrations.noop"]
    for _, fields in events:
        assert fields["namespace_uuid"] == str(TILE_NAMESPACE_UUID)
    assert events[0][1]["to_revision"] == head_revision()


def test_ac9_baseline_columns_are_untouched(baseline_dsn: str) -> None:
    def baseline_lines(dsn: str) -> list[str]:
        lines = schema_shape(dsn, ("tiles", "sector_classifications"))
        return [ln for ln in lines if not ln.startswith("constraint tiles.ck_tiles_freshness")]

    before = baseline_lines(baseline_dsn)
    apply_migrations(baseline_dsn)
    after = baseline_lines(baseline_dsn)
    assert set(before) <= set(after), sorted(set(before) - set(after))


def test_migration_result_is_frozen_and_error_is_not_a_tile_cache_error() -> None:
    result = MigrationResult("0001", "0002", True, 1)
    with pytest.raises(AttributeError):
        result.applied = False  # type: ignore[misc]
    assert result.namespace_uuid == TILE_NAMESPACE_UUID
    assert issubclass(MigrationError, GpsDeniedError)
    assert not issubclass(MigrationError, TileCacheError)


def test_missing_dsn_raises_migration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GDO_DSN", raising=False)
    with pytest.raises(MigrationError, match="no database"):
        apply_migrations(TileCacheConfig(dsn=""))


def test_dsn_falls_back_to_environment(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GDO_DSN", pg_dsn)
    assert apply_migrations(TileCacheConfig(dsn="")).applied


def _serialization_failure() -> Exception:
    import sqlalchemy.exc

    return sqlalchemy.exc.OperationalError(
        "upgrade", {}, psycopg.errors.SerializationFailure("could not serialize access")
    )


def test_serialization_failure_is_retried_once(pg_dsn: str) -> None:
    real = migrations._run_command
    calls: list[str] = []

    def flaky(dsn: str, command_name: str, revision: str) -> None:
        calls.append(revision)
        if len(calls) == 1:
            raise _serialization_failure()
        real(dsn, command_name, revision)

    with mock.patch.object(migrations, "_run_command", flaky):
        result = apply_migrations(pg_dsn)
    assert result.attempts == 2 and result.applied
    assert current_revision(pg_dsn) == head_revision()


def test_serialization_failure_twice_raises(pg_dsn: str) -> None:
    def always(dsn: str, command_name: str, revision: str) -> None:
        raise _serialization_failure()

    with (
        mock.patch.object(migrations, "_run_command", always),
        pytest.raises(MigrationError) as info,
    ):
        apply_migrations(pg_dsn)
    assert info.value.sqlstate == "40001"


def test_other_failures_are_not_retried(pg_dsn: str) -> None:
    calls = []

    def broken(dsn: str, command_name: str, revision: str) -> None:
        calls.append(1)
        raise psycopg.errors.UndefinedTable("nope")

    with mock.patch.object(migrations, "_run_command", broken), pytest.raises(MigrationError):
        apply_migrations(pg_dsn)
    assert len(calls) == 1


def test_plain_alembic_cli_upgrades_with_x_dsn(pg_dsn: str) -> None:
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    exe = shutil.which("alembic", path=str(Path(sys.executable).parent)) or "alembic"
    proc = subprocess.run(
        [exe, "-c", str(root / "db" / "alembic.ini"), "-x", f"dsn={pg_dsn}", "upgrade", "head"],
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr
    assert current_revision(pg_dsn) == head_revision()


def test_nfr_apply_under_5s_and_noop_under_100ms(pg_dsn: str) -> None:
    head_revision()  # warm imports, as a long-lived process would be
    t0 = time.perf_counter()
    apply_migrations(pg_dsn)
    t1 = time.perf_counter()
    apply_migrations(pg_dsn)
    t2 = time.perf_counter()
    assert t1 - t0 < 5.0
    assert t2 - t1 < 0.1
