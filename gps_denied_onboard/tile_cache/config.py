"""``TileCacheConfig``: the tile cache's parameters (ROS parameter names)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gps_denied_onboard.errors import ConfigError

MIB = 1 << 20
GIB = 1 << 30


@dataclass(frozen=True)
class TileCacheConfig:
    """Parameters of the store, its node and its tools.

    Attributes:
        dsn: libpq connection string; "" means ``$GDO_DSN`` or, failing that,
            the embedded cluster under ``pg_data_dir``.
        tile_root: directory that holds the JPEGs and their JSON sidecars.
        pg_data_dir: data directory of the embedded cluster; "" means
            ``<tile_root>/../pg``.
        apply_migrations: the node upgrades the schema to head on configure
            (a no-op when the take-off sequencer already did).
        disk_budget_bytes: LRU eviction keeps the sum of ``disk_bytes`` below this.
        max_tile_bytes: a larger JPEG is refused.
        pool_min, pool_max: connection pool size.
        pool_timeout_s: how long a caller waits for a pooled connection.
        lock_timeout_s: the longest any statement of the store waits for a
            PostgreSQL lock (``lock_timeout`` of its pooled connections); another
            session holding ``tiles`` (psql, a stuck migration, ``VACUUM FULL``)
            then costs a call a ``TileMetadataError`` (SQLSTATE 55P03), not a hang.
        statement_timeout_s: the longest any statement of the store runs, lock
            waits included (``statement_timeout``; SQLSTATE 57014 when over).
            Migrations use connections of their own and are not bounded by either;
            start-up reconciliation's wait for open writers has its own 30 s.
        index_capacity: tiles kept in the in-process read index.
        access_flush_batch: reads buffered before ``accessed_at`` is written in one go.
        bbox_default_limit: results of a bbox query when the caller gives no limit.
        bbox_max_columns: widest bbox (in tile columns) a query may span.
        maintenance_period_s: the node flushes access times, refreshes freshness
            and evicts on this period.
        diagnostics_period_s: the node publishes cache stats on this period.
    """

    dsn: str = ""
    tile_root: Path = Path("var/tiles")
    pg_data_dir: str = ""
    apply_migrations: bool = True
    disk_budget_bytes: int = 8 * GIB
    max_tile_bytes: int = 4 * MIB
    pool_min: int = 1
    pool_max: int = 4
    pool_timeout_s: float = 5.0
    lock_timeout_s: float = 2.0
    statement_timeout_s: float = 10.0
    index_capacity: int = 65536
    access_flush_batch: int = 256
    bbox_default_limit: int = 100
    bbox_max_columns: int = 4096
    maintenance_period_s: float = 5.0
    diagnostics_period_s: float = 2.0

    def __post_init__(self) -> None:
        positive = (
            "disk_budget_bytes",
            "max_tile_bytes",
            "pool_max",
            "index_capacity",
            "access_flush_batch",
            "bbox_default_limit",
            "bbox_max_columns",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}", key=name)
        if not 0 <= self.pool_min <= self.pool_max:
            raise ConfigError(
                f"pool_min must be within 0..pool_max ({self.pool_max}), got {self.pool_min}",
                key="pool_min",
            )
        timeouts = (
            "pool_timeout_s",
            "lock_timeout_s",
            "statement_timeout_s",
            "maintenance_period_s",
            "diagnostics_period_s",
        )
        for name in timeouts:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}", key=name)
        if not str(self.tile_root).strip():
            raise ConfigError("tile_root must not be empty", key="tile_root")

    @property
    def embedded_data_dir(self) -> Path:
        """Where the embedded cluster lives when no DSN is configured."""
        if self.pg_data_dir.strip():
            return Path(self.pg_data_dir).absolute()
        return (Path(self.tile_root).absolute().parent / "pg").absolute()
