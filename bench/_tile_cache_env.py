"""Shared by the tile cache benchmarks: a private PostgreSQL and a store on it."""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gps_denied_onboard.clock import SystemClock
from gps_denied_onboard.embedded_pg import EmbeddedPostgres
from gps_denied_onboard.records import MemorySink
from gps_denied_onboard.tile_cache.config import TileCacheConfig
from gps_denied_onboard.tile_cache.migrations import apply_migrations
from gps_denied_onboard.tile_cache.store import PostgresFilesystemStore

LOG = logging.getLogger("bench.tile_cache")


@contextmanager
def embedded_pg() -> Iterator[tuple[EmbeddedPostgres, Path]]:
    """A throw-away cluster under /tmp (its parents must be traversable by
    the server user when we run as root)."""
    base = Path(tempfile.mkdtemp(prefix="gdo-bench-tc-"))
    base.chmod(0o755)
    pg = EmbeddedPostgres(base / "pg")
    pg.start()
    try:
        yield pg, base
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def store_on(
    pg: EmbeddedPostgres, base: Path, name: str, *, reconcile: bool = True, **overrides: object
) -> Iterator[PostgresFilesystemStore]:
    dsn = pg.create_database(name)
    apply_migrations(dsn, logger=LOG)
    config = TileCacheConfig(dsn=dsn, tile_root=base / name, **overrides)  # type: ignore[arg-type]
    store = PostgresFilesystemStore.from_config(
        config, SystemClock(), MemorySink(), LOG, reconcile=reconcile
    )
    try:
        yield store
    finally:
        store.close()


def jpeg_bytes(seed: int, size: int = 16_384) -> bytes:
    """Bytes with JPEG markers, the size of a typical 256 px tile."""
    block = hashlib.sha256(seed.to_bytes(8, "little")).digest()
    body = (block * (size // len(block) + 1))[: size - 6]
    return b"\xff\xd8\xff\xe0" + body + b"\xff\xd9"
