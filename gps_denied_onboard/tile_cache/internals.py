"""What the store's concern modules need of the store: :class:`StoreInternals`.

:mod:`.writes`, :mod:`.listing` and :mod:`.upkeep` hold plain functions that
:class:`~gps_denied_onboard.tile_cache.store.PostgresFilesystemStore` binds as
its methods. They type their ``store`` argument with this protocol instead of
the class, so none of them imports :mod:`.store` (which imports all three).

The members are the store's own: its public configuration, the public methods
the concern modules call back, and the internal state and helpers they share
with the store's reads (the locks, the read index, the running totals). The
leading underscore keeps them out of the store's public API; this protocol is
for the store's own modules, not for callers (see :mod:`.protocols` for the
faces callers and test doubles implement).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import psycopg
import psycopg_pool

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.tile_cache import freshness as fr
from gps_denied_onboard.tile_cache.config import TileCacheConfig
from gps_denied_onboard.tile_cache.index import IndexEntry, ReadIndex
from gps_denied_onboard.tile_cache.model import EvictionResult, TileMetadata, TileWrite

__all__ = ["StoreInternals"]


class StoreInternals(Protocol):
    """The store as its concern modules see it.

    Read-only members are properties; the access buffer and the running totals
    are attributes, which the concern modules update under ``_lock``.
    """

    # public configuration
    @property
    def config(self) -> TileCacheConfig: ...

    @property
    def read_only(self) -> bool: ...

    @property
    def root(self) -> Path: ...

    # public methods the concern modules call back (bound from them)
    def put_tiles(self, writes: Sequence[TileWrite]) -> list[TileMetadata]: ...

    def flush_access(self) -> int: ...

    def evict_to_budget(self) -> EvictionResult: ...

    def reload_policy(self) -> None: ...

    def refresh_freshness(self) -> int: ...

    # collaborators injected at construction
    @property
    def _clock(self) -> Clock: ...

    @property
    def _log(self) -> logging.Logger: ...

    @property
    def _pool(self) -> psycopg_pool.ConnectionPool: ...

    # concurrency: _lock guards the index, totals and access buffer;
    # _write_lock serialises writers
    @property
    def _lock(self) -> threading.Lock: ...

    @property
    def _write_lock(self) -> threading.RLock: ...

    # state shared with the store's reads
    @property
    def _index(self) -> ReadIndex: ...

    _access: dict[UUID, int]
    _tiles: int
    _disk_bytes: int
    _pending: int
    _writes: int
    _write_failures: int
    _evictions: int
    _last_refresh_ns: int | None

    # helpers
    def _conn(self) -> AbstractContextManager[psycopg.Connection[Any]]: ...

    def _emit(self, kind: str, payload: Mapping[str, Any]) -> None: ...

    def _writable(self, what: str) -> None: ...

    def _path(self, zoom: int, x: int, tile_id: UUID, suffix: str = ...) -> Path: ...

    def _row_meta(self, row: Sequence[Any], now_ns: int) -> tuple[TileMetadata, fr.Deadlines]: ...

    def _index_put(
        self, meta: TileMetadata, deadlines: fr.Deadlines, now_ns: int
    ) -> IndexEntry: ...
