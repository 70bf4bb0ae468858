"""Alembic environment for the tile cache schema (online mode only).

Where the connection comes from, first match wins:

1. ``config.attributes["connection"]``: a SQLAlchemy connection handed in by
   :func:`gps_denied_onboard.tile_cache.migrations.apply_migrations`;
2. ``-x dsn=...`` on the ``alembic`` command line;
3. ``$GDO_DSN``.

A DSN is a libpq string (``host=/run/pg port=5432 dbname=x`` or
``postgresql://...``); psycopg parses it, SQLAlchemy only wraps the
connection (``postgresql+psycopg://`` with a ``creator``), so no DSN is ever
rewritten into a URL. Migrations use ``op.*`` directly; there are no ORM
models, hence no ``target_metadata``.

All revisions run in one transaction under an advisory lock, so two
processes upgrading the same database at once serialise instead of racing.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

import psycopg
import sqlalchemy as sa
from alembic import context
from sqlalchemy.pool import NullPool

#: pg_advisory_xact_lock key: "GDO" "MIGR" as an int64.
MIGRATION_LOCK_KEY = 0x47444F4D494752

config = context.config


def _dsn() -> str:
    x_args = context.get_x_argument(as_dictionary=True)
    dsn = (x_args.get("dsn") or os.environ.get("GDO_DSN") or "").strip()
    if not dsn:
        raise SystemExit(
            "no database: pass -x dsn='host=... dbname=...' or set GDO_DSN "
            "(a libpq connection string)"
        )
    return dsn


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
    with context.begin_transaction():
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        # the revision as found once we hold the lock: another migrator may have
        # brought the database to head while we waited (apply_migrations then
        # reports a no-op, not an upgrade it did not do)
        config.attributes["revision_under_lock"] = context.get_context().get_current_revision()
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    if config.config_file_name is not None and config.attributes.get("configure_logger", True):
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    dsn = _dsn()
    engine = sa.create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(dsn), poolclass=NullPool
    )
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported: run against a database")
run_migrations_online()
