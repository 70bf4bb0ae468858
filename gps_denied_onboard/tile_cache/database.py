"""Which PostgreSQL the tile cache uses: a configured DSN, ``$GDO_DSN``, or the
embedded cluster under ``pg_data_dir`` (database ``gps_denied``)."""

from __future__ import annotations

from dataclasses import dataclass

from gps_denied_onboard.embedded_pg import EmbeddedPostgres, resolve_dsn
from gps_denied_onboard.tile_cache.config import TileCacheConfig

EMBEDDED_DBNAME = "gps_denied"


@dataclass
class Database:
    """A resolved DSN and, when we started it, the embedded cluster to stop."""

    dsn: str
    started: EmbeddedPostgres | None = None

    def close(self) -> None:
        """Stop the embedded cluster if this process started it."""
        if self.started is not None:
            self.started.stop()
            self.started = None


def open_database(config: TileCacheConfig) -> Database:
    """Resolve the DSN, starting the embedded cluster when none is configured.

    A cluster that is already running (another process started it) is used
    and left running.

    Raises:
        EmbeddedPostgresError: the embedded cluster could not start.
    """
    dsn = resolve_dsn(config.dsn)
    if dsn is not None:
        return Database(dsn)
    pg = EmbeddedPostgres(config.embedded_data_dir)
    was_running = pg.is_running()
    pg.start()
    return Database(pg.create_database(EMBEDDED_DBNAME), None if was_running else pg)
