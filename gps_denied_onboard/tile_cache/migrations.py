"""Schema migrations: drive the Alembic environment in ``db/`` from code.

The take-off sequencer (and the ``tile_cache`` node, unless told not to)
calls :func:`apply_migrations` before the store is built. It upgrades to
head in one transaction under an advisory lock (see ``db/migrations/env.py``),
retries once when PostgreSQL reports a serialization failure (SQLSTATE
40001), and logs one structured INFO line, ``c6.migrations.apply`` or
``c6.migrations.noop``, carrying :data:`TILE_NAMESPACE_UUID` so that a build
with a drifted namespace shows up in the first log of every flight.

There is no back-off sleep before the retry: migrations run before the
injected clock exists, and the retry opens a fresh connection anyway.

:class:`MigrationError` is a start-up failure, not a run-time tile cache
error, so it sits directly under :class:`~gps_denied_onboard.errors.GpsDeniedError`.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final
from uuid import UUID

import psycopg

from gps_denied_onboard.embedded_pg import resolve_dsn
from gps_denied_onboard.errors import GpsDeniedError
from gps_denied_onboard.log import log_event
from gps_denied_onboard.tile_cache.config import TileCacheConfig
from gps_denied_onboard.tile_cache.identity import TILE_NAMESPACE_UUID

if TYPE_CHECKING:
    from alembic.config import Config

SERIALIZATION_FAILURE: Final = "40001"
_LOG = logging.getLogger("gps_denied_onboard.tile_cache.migrations")


class MigrationError(GpsDeniedError):
    """The schema could not be brought to the wanted revision.

    Attributes:
        sqlstate: PostgreSQL SQLSTATE of the underlying failure, if any.
    """

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@dataclass(frozen=True)
class MigrationResult:
    """What :func:`apply_migrations` did.

    Attributes:
        from_revision: revision before the call (None: empty database).
        to_revision: revision after the call.
        applied: False when the database already was at the target (a no-op).
        attempts: 1, or 2 after a serialization-failure retry.
        namespace_uuid: the tile namespace this build derives tile ids with.
    """

    from_revision: str | None
    to_revision: str
    applied: bool
    attempts: int
    namespace_uuid: UUID = TILE_NAMESPACE_UUID


def migrations_dir() -> Path:
    """Directory of ``alembic.ini`` (``db/``): ``$GDO_DB_DIR``, the source tree,
    or the installed share directory.

    Raises:
        MigrationError: none of them holds ``alembic.ini``.
    """
    candidates: list[Path] = []
    env = os.environ.get("GDO_DB_DIR", "").strip()
    if env:
        candidates.append(Path(env))
    candidates.append(Path(__file__).resolve().parents[2] / "db")
    for prefix in [*os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep), sys.prefix]:
        if prefix:
            candidates.append(Path(prefix) / "share" / "gps_denied_onboard" / "db")
    for cand in candidates:
        if (cand / "alembic.ini").is_file() and (cand / "migrations" / "env.py").is_file():
            return cand
    raise MigrationError(f"alembic.ini not found in any of {[str(c) for c in candidates]}")


def alembic_config() -> Config:
    """An Alembic :class:`~alembic.config.Config` for ``db/``, logging left to the caller."""
    from alembic.config import Config

    root = migrations_dir()
    cfg = Config(str(root / "alembic.ini"))
    cfg.set_main_option("script_location", str(root / "migrations"))
    cfg.attributes["configure_logger"] = False
    return cfg


def _dsn_of(config: TileCacheConfig | str) -> str:
    configured = config if isinstance(config, str) else config.dsn
    dsn = resolve_dsn(configured)
    if dsn is None:
        raise MigrationError(
            "no database to migrate: configure a DSN or set GDO_DSN "
            "(start the embedded cluster first and pass its DSN)"
        )
    return dsn


def _sqlstate(err: BaseException) -> str | None:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        state = getattr(current, "sqlstate", None)
        if isinstance(state, str):
            return state
        current = getattr(current, "orig", None) or current.__cause__
    return None


def current_revision(dsn: str) -> str | None:
    """The database's Alembic revision; None when it was never migrated.

    Raises:
        MigrationError: the database cannot be reached.
    """
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
            if not row or not row[0]:
                return None
            version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            return None if version is None else str(version[0])
    except psycopg.Error as err:
        raise MigrationError(
            f"cannot read the schema revision: {err}", sqlstate=err.sqlstate
        ) from err


def _run_command(dsn: str, command_name: str, revision: str) -> str | None:
    """Run one Alembic command in one transaction; returns the revision the
    database was at once the migration lock was held (None: empty)."""
    import sqlalchemy as sa
    from alembic import command
    from sqlalchemy.pool import NullPool

    cfg = alembic_config()
    engine = sa.create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(dsn), poolclass=NullPool
    )
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            getattr(command, command_name)(cfg, revision)
    finally:
        engine.dispose()
    found = cfg.attributes.get("revision_under_lock")
    return None if found is None else str(found)


def head_revision() -> str:
    """The newest revision in ``db/migrations/versions``."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise MigrationError("db/migrations has no revisions")
    return head


def _resolve(revision: str) -> str:
    if revision == "head":
        return head_revision()
    from alembic.script import ScriptDirectory

    try:
        script = ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except Exception as err:  # alembic raises several unrelated types here
        raise MigrationError(f"unknown revision {revision!r}: {err}") from err
    if script is None:
        raise MigrationError(f"unknown revision {revision!r}")
    return str(script.revision)


def apply_migrations(
    config: TileCacheConfig | str,
    *,
    target: str = "head",
    logger: logging.Logger | None = None,
) -> MigrationResult:
    """Upgrade the database to ``target`` (default head).

    Args:
        config: the tile cache config (its ``dsn``, else ``$GDO_DSN``) or a DSN.
        target: revision to reach; only upgrades are done here.
        logger: where the INFO line goes (default this module's logger).

    Raises:
        MigrationError: no DSN, unknown revision, the database refused a
            migration, or a serialization failure persisted after one retry.
    """
    log = logger or _LOG
    dsn = _dsn_of(config)
    wanted = _resolve(target)
    attempts = 0
    while True:
        attempts += 1
        before = current_revision(dsn)
        if before == wanted:
            log_event(
                log,
                logging.INFO,
                "c6.migrations.noop",
                revision=wanted,
                namespace_uuid=str(TILE_NAMESPACE_UUID),
                attempts=attempts,
            )
            return MigrationResult(before, wanted, False, attempts)
        try:
            found = _run_command(dsn, "upgrade", wanted)
        except Exception as err:  # sqlalchemy / alembic / psycopg, classified below
            state = _sqlstate(err)
            if state == SERIALIZATION_FAILURE and attempts == 1:
                log_event(
                    log, logging.WARNING, "c6.migrations.retry", sqlstate=state, error=str(err)
                )
                continue
            raise MigrationError(
                f"migration {before or 'empty'} -> {wanted} failed: {err}", sqlstate=state
            ) from err
        if found == wanted:  # another migrator got there while we waited for the lock
            log_event(
                log,
                logging.INFO,
                "c6.migrations.noop",
                revision=wanted,
                namespace_uuid=str(TILE_NAMESPACE_UUID),
                attempts=attempts,
                raced=True,
            )
            return MigrationResult(found, wanted, False, attempts)
        before = found
        after = current_revision(dsn) or wanted
        log_event(
            log,
            logging.INFO,
            "c6.migrations.apply",
            from_revision=before or "empty",
            to_revision=after,
            namespace_uuid=str(TILE_NAMESPACE_UUID),
            attempts=attempts,
        )
        return MigrationResult(before, after, True, attempts)


def downgrade_migrations(config: TileCacheConfig | str, target: str) -> None:
    """Downgrade to ``target`` (``base`` removes everything). For operators and tests.

    Raises:
        MigrationError: no DSN or the database refused.
    """
    dsn = _dsn_of(config)
    try:
        _run_command(dsn, "downgrade", target)
    except Exception as err:  # sqlalchemy / alembic / psycopg
        raise MigrationError(
            f"downgrade to {target} failed: {err}", sqlstate=_sqlstate(err)
        ) from err
