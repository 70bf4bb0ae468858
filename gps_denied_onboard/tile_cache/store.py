"""``PostgresFilesystemStore``: tile metadata in PostgreSQL, JPEGs on the filesystem.

The class and the concerns it is made of, one module each:

* here: construction, start-up checks, the connection pool, close, and the
  single-tile reads that the read index serves;
* :mod:`.writes`: ``put_tile`` / ``put_tiles`` and their write order (row,
  durable files, commit), which is what makes a crash leave the old state
  or the new one;
* :mod:`.listing`: multi-tile database queries (bbox, pending uploads, tool
  listings and summary);
* :mod:`.upkeep`: access-time flushes, eviction, votes, upload marks,
  freshness policy and the periodic ``maintain``.

Those modules hold plain functions taking the store; the class binds them as
its methods, so callers see one class with one API. They type the store as
:class:`~.internals.StoreInternals` (what they need of it), so none of them
imports this module.

A crash leaves at most files without a row (a write before its COMMIT, an
eviction after its commit): the next read-write construction's reconciliation
removes them.

Ownership: a read-write store holds ``<tile_root>/.tile_cache.lock`` for its
lifetime (:mod:`.ownership`), so it is the only writer of its tile root and
database rows, and its start-up reconciliation cannot race another writer. A
second read-write store fails with ``TileRootLockedError``. A read-only store
(``read_only=True``: operator tools, other readers) takes no lock, never
reconciles, and refuses every write with ``TileStoreReadOnlyError``.

Inputs: every public method checks its arguments once, first, through
:mod:`.validation`; anything malformed is a ``TileValidationError``.

Reads: the store is the only writer, so an in-process LRU index (:mod:`.index`) of recently
used tiles (kept coherent on write, eviction, votes and uploads) serves
``get_tile`` without a database round trip; freshness is a comparison of the
injected clock against deadlines computed once per entry. Access times are
buffered and written in one UPDATE per ``access_flush_batch`` reads.
Everything else goes through a ``psycopg_pool`` connection pool, with SQL
parameterised only; its connections bound every statement's lock wait and run
time (``lock_timeout_s``, ``statement_timeout_s``: :func:`session_options`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import psycopg
import psycopg_pool

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.embedded_pg import resolve_dsn
from gps_denied_onboard.log import log_event
from gps_denied_onboard.records import FlightRecord, RecordSink
from gps_denied_onboard.rootlock import DirectoryLock
from gps_denied_onboard.tile_cache import freshness as fr
from gps_denied_onboard.tile_cache import listing, ownership, pixels, upkeep, writes
from gps_denied_onboard.tile_cache.config import TileCacheConfig
from gps_denied_onboard.tile_cache.errors import (
    TileCacheError,
    TileMetadataError,
    TileNotFound,
    TilePixelError,
    TileStoreReadOnlyError,
)
from gps_denied_onboard.tile_cache.identity import derive_tile_id
from gps_denied_onboard.tile_cache.index import IndexEntry, ReadIndex
from gps_denied_onboard.tile_cache.model import (
    CacheStats,
    ReconcileReport,
    TileMetadata,
    TileRead,
)
from gps_denied_onboard.tile_cache.queries import SELECT_TILES, rank_key, row_meta
from gps_denied_onboard.tile_cache.upkeep import EVICT_BATCH
from gps_denied_onboard.tile_cache.validation import SIDECAR_FIELDS, sidecar_bytes, tile_uuid

__all__ = [
    "EVICT_BATCH",
    "PRODUCER",
    "SIDECAR_FIELDS",
    "PostgresFilesystemStore",
    "rank_key",
    "session_options",
    "sidecar_bytes",
]

PRODUCER: Final = "tile_cache"


class PostgresFilesystemStore:
    """The tile store. Build it with :meth:`from_config`; close it with :meth:`close`.

    Thread-safe: reads run concurrently, writes (put, evict, mark) are serialised.

    Attributes:
        read_only: opened for reading only (no tile root lock, no reconcile,
            writes refused).
    """

    def __init__(
        self,
        config: TileCacheConfig,
        clock: Clock,
        sink: RecordSink,
        logger: logging.Logger,
        pool: psycopg_pool.ConnectionPool,
        *,
        read_only: bool = False,
    ) -> None:
        self.config = config
        self.read_only = read_only
        self._root_lock: DirectoryLock | None = None
        self.root = Path(config.tile_root).absolute()
        self._clock = clock
        self._sink = sink
        self._log = logger
        self._pool = pool
        self._lock = threading.Lock()  # index, counters, access buffer
        self._write_lock = threading.RLock()  # one writer at a time
        self._index = ReadIndex(config.index_capacity)
        self._access: dict[UUID, int] = {}
        self._tiles = 0
        self._disk_bytes = 0
        self._pending = 0
        self._hits = 0
        self._misses = 0
        self._writes = 0
        self._write_failures = 0
        self._evictions = 0
        self._last_refresh_ns: int | None = None
        self._closed = False
        self.reconcile_report = ReconcileReport()

    # ------------------------------------------------------------------ build
    @classmethod
    def from_config(
        cls,
        config: TileCacheConfig,
        clock: Clock,
        sink: RecordSink,
        logger: logging.Logger,
        *,
        read_only: bool = False,
        reconcile: bool = True,
    ) -> PostgresFilesystemStore:
        """Open the pool, check the schema, take the tile root (read-write
        only), load sectors and rules, reconcile files against rows (read-write
        only) and log ``c6.store.construct``.

        Args:
            read_only: open for reading: no lock, no reconcile, writes refused
                (operator tools, readers beside the node). ``reconcile=False``
                is the older spelling of the same thing.

        Raises:
            TileRootLockedError: another read-write store owns ``tile_root``.
            TileMetadataError: no DSN, database unreachable, schema not at head.
            TilePixelError: the tile root cannot be created or locked.
        """
        read_only = read_only or not reconcile
        dsn = resolve_dsn(config.dsn)
        if dsn is None:
            raise TileMetadataError(
                "no database: configure dsn, set GDO_DSN, or start the embedded cluster "
                "and pass its DSN"
            )
        pool = psycopg_pool.ConnectionPool(
            dsn,
            min_size=config.pool_min,
            max_size=config.pool_max,
            timeout=config.pool_timeout_s,
            kwargs={"autocommit": True, "options": session_options(config)},
            open=False,
            name="tile_cache",
        )
        try:
            pool.open(wait=config.pool_min > 0, timeout=config.pool_timeout_s)
        except psycopg_pool.PoolTimeout as err:
            pool.close()
            raise TileMetadataError(f"cannot connect to the tile database: {err}") from err
        store = cls(config, clock, sink, logger, pool, read_only=read_only)
        try:
            store._start()
        except BaseException:
            store._closed = True
            pool.close()
            store._release_root()
            raise
        return store

    def _start(self) -> None:
        reconcile = not self.read_only
        from gps_denied_onboard.tile_cache.migrations import MigrationError, head_revision

        try:
            head = head_revision()
        except MigrationError as err:
            raise TileMetadataError(f"cannot determine the schema head: {err}") from err
        with self._conn() as conn:
            exists = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
            row = (
                conn.execute("SELECT version_num FROM alembic_version").fetchone()
                if exists and exists[0]
                else None
            )
        revision = row[0] if row else None
        if revision != head:
            raise TileMetadataError(
                f"tile database schema is at {revision or 'nothing'}, expected {head}: "
                "apply migrations first"
            )
        if reconcile:
            self._root_lock = ownership.own_tile_root(self.root)
            try:
                pixels.ensure_dir(self.root, pixels.TILES_DIR)
            except OSError as err:
                raise TilePixelError(
                    f"cannot create tile root {self.root}: {err}", path=str(self.root)
                ) from err
        self.reload_policy()
        if reconcile:
            self.reconcile_report = ownership.reconcile(
                self.root, self._conn, self._reconcile_meta, self._log
            )
        upkeep.load_totals(self)
        if reconcile:
            self.refresh_freshness()
        report = self.reconcile_report
        fields = {
            "tiles": self._tiles,
            "disk_bytes": self._disk_bytes,
            "orphan_files_removed": report.orphan_files_removed,
            "orphan_rows_removed": report.orphan_rows_removed,
            "temp_files_removed": report.temp_files_removed,
            "sidecars_rewritten": report.sidecars_rewritten,
            "pending_upload": self._pending,
            "budget_bytes": self.config.disk_budget_bytes,
        }
        log_event(self._log, logging.INFO, "c6.store.construct", read_only=self.read_only, **fields)
        self._emit("c6.store.construct", fields)

    def close(self) -> None:
        """Flush buffered access times, close the pool, release the tile root.
        Idempotent."""
        if self._closed:
            return
        with suppress(TileCacheError):
            self.flush_access()
        self._closed = True
        try:
            self._pool.close()
        finally:
            self._release_root()

    def _release_root(self) -> None:
        lock, self._root_lock = self._root_lock, None
        if lock is not None:
            lock.release()

    def _writable(self, what: str) -> None:
        """Refuse a write on a read-only store."""
        if self.read_only:
            raise TileStoreReadOnlyError(
                f"{what} refused: store on {self.root} is read-only", tile_root=str(self.root)
            )

    def __enter__(self) -> PostgresFilesystemStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- helpers
    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        if self._closed:
            raise TileMetadataError("store is closed")
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg_pool.PoolTimeout as err:
            raise TileMetadataError(f"no database connection available: {err}") from err
        except psycopg.Error as err:
            raise TileMetadataError(f"database error: {err}", sqlstate=err.sqlstate) from err

    def _emit(self, kind: str, payload: Mapping[str, Any]) -> None:
        try:
            self._sink.emit(FlightRecord(kind, PRODUCER, self._clock.now_ns(), payload))
        except Exception as err:  # a record sink must never fail the store
            log_event(self._log, logging.ERROR, "c6.record_failed", kind=kind, error=repr(err))

    def _path(self, zoom: int, x: int, tile_id: UUID, suffix: str = pixels.JPEG_SUFFIX) -> Path:
        return self.root / pixels.relative_dir(zoom, x) / f"{tile_id}{suffix}"

    def _row_meta(self, row: Sequence[Any], now_ns: int) -> tuple[TileMetadata, fr.Deadlines]:
        return row_meta(row, self._index.policy, now_ns)

    def _reconcile_meta(self, row: Sequence[Any]) -> TileMetadata:
        return self._row_meta(row, self._clock.now_ns())[0]

    # ------------------------------------------------------------------ reads
    def get_tile(
        self, zoom: int, x: int, y: int, source: str, flight_id: UUID | str | None = None
    ) -> TileRead:
        """The tile's metadata and JPEG bytes; no database round trip when indexed.

        Raises:
            TileValidationError: malformed address, source or flight id.
            TileNotFound: no such tile.
            TileMetadataError: the database failed on an index miss.
        """
        key = (zoom, x, y, source, flight_id)
        with self._lock:
            # a key enters the index only after derive_tile_id checked it, so
            # a hit is a valid address: the hot path skips the checks
            entry = self._index.by_key.get(key) if _plain_key(key) else None
            self._hits += entry is not None
        if entry is None:
            entry = self._entry(derive_tile_id(zoom, x, y, source, flight_id), key)
        return self._serve(entry)

    def read_tile(self, tile_id: UUID | str) -> TileRead:
        """Like :meth:`get_tile`, by tile id.

        Raises:
            TileValidationError: not a UUID.
            TileNotFound: no such tile.
        """
        return self._serve(self._entry(tile_uuid(tile_id)))

    def _entry(self, tile_id: UUID, key: tuple[Any, ...] | None = None) -> IndexEntry:
        """The index entry of ``tile_id``, loaded on a miss; ``key`` becomes an alias."""
        with self._lock:
            entry = self._index.by_id.get(tile_id)
            self._hits += entry is not None
        if entry is None:
            entry = self._load_entry(tile_id, self._clock.now_ns())
        if key is not None:
            with self._lock:
                self._index.alias(key, entry)
        return entry

    def _serve(self, entry: IndexEntry) -> TileRead:
        """Current metadata and the JPEG bytes; buffers the access time."""
        now = self._clock.now_ns()
        tile_id = entry.meta.tile_id
        with self._lock:
            self._index.touch(entry)
            meta = self._index.current(entry, now)
            if not self.read_only:
                self._access[tile_id] = now
            flush = len(self._access) >= self.config.access_flush_batch
        data = self._read_file(entry.path, tile_id)
        if flush:
            upkeep.flush_quietly(self)
        return TileRead(meta, data)

    def get_metadata(self, tile_id: UUID | str) -> TileMetadata:
        """Metadata only (no file read, no access-time touch).

        Raises:
            TileNotFound: no such tile.
        """
        tid = tile_uuid(tile_id)
        now = self._clock.now_ns()
        with self._lock:
            entry = self._index.by_id.get(tid)
            if entry is not None:
                return self._index.current(entry, now)
        return self._load_entry(tid, now).meta

    def find(
        self, zoom: int, x: int, y: int, source: str, flight_id: UUID | str | None = None
    ) -> TileMetadata | None:
        """Metadata of the tile with this natural key, or None.

        Raises:
            TileValidationError: malformed address, source or flight id.
        """
        try:
            return self.get_metadata(derive_tile_id(zoom, x, y, source, flight_id))
        except TileNotFound:
            return None

    def open_pixels(self, tile_id: UUID | str) -> pixels.MmapTilePixelHandle:
        """A read-only mmap handle on the tile's JPEG (use it as a context manager).

        Raises:
            TileNotFound: no such tile.
            TilePixelError: the file cannot be mapped.
        """
        meta = self.get_metadata(tile_id)
        handle = pixels.MmapTilePixelHandle(
            self._path(meta.zoom, meta.x, meta.tile_id), tile_id=str(meta.tile_id)
        )
        if not self.read_only:
            with self._lock:
                self._access[meta.tile_id] = self._clock.now_ns()
        return handle.open()

    def _load_entry(self, tile_id: UUID, now_ns: int) -> IndexEntry:
        with self._conn() as conn:
            row = conn.execute(SELECT_TILES + "WHERE t.tile_uuid = %s", (tile_id,)).fetchone()
        if row is None:
            raise TileNotFound(f"no tile {tile_id}", tile_id=str(tile_id))
        meta, deadlines = self._row_meta(row, now_ns)
        with self._lock:
            self._misses += 1
            existing = self._index.by_id.get(tile_id)
            if existing is not None:  # loaded concurrently
                return existing
            return self._index_put(meta, deadlines, now_ns)

    def _index_put(self, meta: TileMetadata, deadlines: fr.Deadlines, now_ns: int) -> IndexEntry:
        """Index ``meta``; caller holds ``self._lock``."""
        path = str(self._path(meta.zoom, meta.x, meta.tile_id))
        return self._index.put(meta, deadlines, path, now_ns)

    def _read_file(self, path: str, tile_id: UUID) -> bytes:
        try:
            with open(path, "rb", buffering=0) as fh:
                return fh.read()
        except FileNotFoundError as err:
            with self._lock:
                self._index.drop_id(tile_id)
            raise TileNotFound(f"tile {tile_id} has no file", tile_id=str(tile_id)) from err
        except OSError as err:
            raise TilePixelError(
                f"cannot read {path}: {err}", tile_id=str(tile_id), path=path
            ) from err

    # ------------------------------------------------------------------ stats
    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                tiles=self._tiles,
                disk_bytes=self._disk_bytes,
                budget_bytes=self.config.disk_budget_bytes,
                pending_upload=self._pending,
                index_entries=len(self._index),
                index_hits=self._hits,
                index_misses=self._misses,
                writes=self._writes,
                write_failures=self._write_failures,
                evictions=self._evictions,
            )

    # --------------------------------------------- bound from the concern modules
    # writes: the batch write path
    put_tile = writes.put_tile
    put_tiles = writes.put_tiles
    # listing: multi-tile database queries
    query_bbox = listing.query_bbox
    list_pending_uploads = listing.list_pending_uploads
    iter_tiles = listing.iter_tiles
    summary = listing.summary
    # upkeep: LRU, votes, uploads, freshness
    flush_access = upkeep.flush_access
    evict_to_budget = upkeep.evict_to_budget
    record_vote = upkeep.record_vote
    mark_uploaded = upkeep.mark_uploaded
    reload_policy = upkeep.reload_policy
    set_sector = upkeep.set_sector
    refresh_freshness = upkeep.refresh_freshness
    maintain = upkeep.maintain


def session_options(config: TileCacheConfig) -> str:
    """libpq ``options`` of every pooled connection: UTC, and the bounded waits.

    Each statement of the store waits at most ``lock_timeout_s`` for a lock and runs
    at most ``statement_timeout_s``; over either, PostgreSQL cancels it (SQLSTATE
    55P03 or 57014) and the call fails with a ``TileMetadataError`` carrying that
    SQLSTATE (a write's files are removed, as for any database failure). So a lock
    held by another session (psql, a stuck migration, ``VACUUM FULL``) never blocks a
    store call, nor the node's deactivate that waits for the calls, for ever.
    Migrations connect on their own and are not bounded; the start-up wait for open
    writers sets its own bound (:func:`.ownership.reconcile`).
    """
    return (
        "-c TimeZone=UTC"
        f" -c lock_timeout={_ms(config.lock_timeout_s)}"
        f" -c statement_timeout={_ms(config.statement_timeout_s)}"
    )


def _ms(seconds: float) -> int:
    """Whole milliseconds, at least 1 (0 would mean "no limit" to PostgreSQL)."""
    return max(1, math.ceil(seconds * 1000))


def _plain_key(key: tuple[Any, ...]) -> bool:
    """Exact builtin types: ``True == 1`` and ``1.0 == 1`` would otherwise hit
    another tile's index entry without being checked."""
    zoom, x, y, source, flight = key
    return (
        type(zoom) is int
        and type(x) is int
        and type(y) is int
        and type(source) is str
        and (flight is None or type(flight) in (str, UUID))
    )
