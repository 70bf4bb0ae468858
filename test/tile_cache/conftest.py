"""Tile cache fixtures: a migrated database, a tile root, a store, JPEG bytes."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.records import MemorySink
from gps_denied_onboard.tile_cache.config import TileCacheConfig
from gps_denied_onboard.tile_cache.migrations import apply_migrations


def make_jpeg(seed: int = 0, size: int = 2048) -> bytes:
    """Bytes that pass the store's JPEG check (SOI ... EOI), distinct per seed."""
    body = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    return b"\xff\xd8\xff\xe0" + body[:size] + b"\xff\xd9"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def migrated_dsn(pg_dsn: str) -> str:
    apply_migrations(pg_dsn)
    return pg_dsn


@pytest.fixture
def tile_config(migrated_dsn: str, tmp_path: Path) -> TileCacheConfig:
    return TileCacheConfig(
        dsn=migrated_dsn,
        tile_root=tmp_path / "tiles",
        disk_budget_bytes=1 << 30,
        pool_min=1,
        pool_max=2,
    )


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def store_factory(
    manual_clock: ManualClock, sink: MemorySink
) -> Iterator[Callable[[TileCacheConfig], object]]:
    from gps_denied_onboard.tile_cache.store import PostgresFilesystemStore

    opened: list[PostgresFilesystemStore] = []

    def _make(config: TileCacheConfig) -> PostgresFilesystemStore:
        store = PostgresFilesystemStore.from_config(
            config, manual_clock, sink, logging.getLogger("test.tile_cache")
        )
        opened.append(store)
        return store

    yield _make
    for store in opened:
        store.close()


@pytest.fixture
def store(store_factory: Callable[[TileCacheConfig], object], tile_config: TileCacheConfig):  # type: ignore[no-untyped-def]
    return store_factory(tile_config)
