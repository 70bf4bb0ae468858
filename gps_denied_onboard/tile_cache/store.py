"""``PostgresFilesystemStore``: tile metadata in PostgreSQL, JPEGs on the filesystem.

Write order (one ``put_tile``)::

    validate (ids, ranges, size, JPEG markers)  \\ no I/O at all
    sha256(data) == declared content_sha256      /
    BEGIN; INSERT tiles row                      duplicate natural key -> TileMetadataError,
                                                 nothing written, old files untouched
    JPEG + sidecar: temp, fsync, rename; fsync dir
    COMMIT                                       fails -> compensating delete of both files
    index, totals, FDR ``c6.write``; evict if over budget

A crash before COMMIT leaves files without a row (removed by the next
construction's reconciliation, i.e. the old state); after COMMIT row and
files are all durable (the new state). Eviction deletes rows first and files
after the commit, so its crash window also leaves only orphan files.

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
parameterised only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import psycopg
import psycopg_pool
from psycopg import sql

from gps_denied_onboard.clock import Clock, ns_to_datetime
from gps_denied_onboard.embedded_pg import resolve_dsn
from gps_denied_onboard.log import log_event
from gps_denied_onboard.records import FlightRecord, RecordSink
from gps_denied_onboard.rootlock import DirectoryLock
from gps_denied_onboard.tile_cache import freshness as fr
from gps_denied_onboard.tile_cache import ownership, pixels
from gps_denied_onboard.tile_cache.config import TileCacheConfig
from gps_denied_onboard.tile_cache.errors import (
    TileCacheError,
    TileMetadataError,
    TileNotFound,
    TilePixelError,
    TileStoreReadOnlyError,
    TileValidationError,
)
from gps_denied_onboard.tile_cache.geo import BBox, bbox_tile_ranges
from gps_denied_onboard.tile_cache.identity import check_zxy, derive_tile_id
from gps_denied_onboard.tile_cache.index import IndexEntry, ReadIndex
from gps_denied_onboard.tile_cache.model import (
    CacheStats,
    EvictionResult,
    ReconcileReport,
    TileMetadata,
    TileRead,
    TileWrite,
    VoteTally,
)
from gps_denied_onboard.tile_cache.queries import (
    INSERT_TILE,
    PENDING,
    SELECT_TILES,
    insert_row,
    rank_key,
    row_meta,
    tally,
)
from gps_denied_onboard.tile_cache.validation import (
    SIDECAR_FIELDS,
    Prepared,
    check_bbox,
    check_filters,
    check_flag,
    check_int,
    check_limit,
    check_name,
    check_writes,
    describe_write,
    prepare_write,
    sidecar_bytes,
    tile_uuid,
    tile_uuids,
    us_floor,
)

__all__ = [
    "EVICT_BATCH",
    "PRODUCER",
    "SIDECAR_FIELDS",
    "PostgresFilesystemStore",
    "rank_key",
    "sidecar_bytes",
]

PRODUCER: Final = "tile_cache"
EVICT_BATCH: Final = 256


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
            kwargs={"autocommit": True, "options": "-c TimeZone=UTC"},
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
        self._load_totals()
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
            self._flush_quietly()
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

    # ---------------------------------------------------------------- queries
    def query_bbox(
        self,
        bbox: BBox,
        zoom: int,
        limit: int | None = None,
        *,
        include_rejected: bool = False,
    ) -> list[TileMetadata]:
        """Tiles at ``zoom`` intersecting ``bbox``, best first: freshness, then
        quality score, then net votes, then newest capture.

        Raises:
            TileValidationError: bad zoom, limit, or a bbox wider than
                ``bbox_max_columns`` tiles.
        """
        bbox = check_bbox(bbox)
        check_zxy(zoom, 0, 0)
        limit = check_limit(limit, self.config.bbox_default_limit)
        include_rejected = check_flag(include_rejected, "include_rejected")
        xs, (y0, y1) = bbox_tile_ranges(bbox, zoom)
        if len(xs) > self.config.bbox_max_columns:
            raise TileValidationError(
                f"bbox spans {len(xs)} tile columns at zoom {zoom}, "
                f"limit {self.config.bbox_max_columns}",
                field="bbox",
            )
        with self._conn() as conn:
            rows = conn.execute(
                SELECT_TILES + "WHERE t.zoom = %s AND t.x = ANY(%s) AND t.y BETWEEN %s AND %s "
                "AND t.tile_uuid IS NOT NULL",
                (zoom, xs, y0, y1),
                binary=True,
            ).fetchall()
        now = self._clock.now_ns()
        metas = [self._row_meta(row, now)[0] for row in rows]
        if not include_rejected:
            metas = [m for m in metas if fr.RANK.get(m.freshness_status, 1) < fr.RANK[fr.REJECTED]]
        metas.sort(key=rank_key)
        return metas[:limit]

    def list_pending_uploads(self, limit: int | None = None) -> list[TileMetadata]:
        """Tiles captured in flight and not yet marked uploaded, oldest capture
        first; ``limit`` None or 0 means all.

        Raises:
            TileValidationError: a limit that is not a non-negative int.
        """
        limit = check_limit(limit, 0)
        sql = SELECT_TILES + f"WHERE {PENDING} ORDER BY t.captured_at, t.id"
        params: tuple[Any, ...] = ()
        if limit:
            sql += " LIMIT %s"
            params = (limit,)
        with self._conn() as conn:
            rows = conn.execute(sql, params).fetchall()
        now = self._clock.now_ns()
        return [self._row_meta(row, now)[0] for row in rows]

    def iter_tiles(self, where: Mapping[str, Any] | None = None) -> Iterator[TileMetadata]:
        """Every stored tile (for tools), optionally filtered on equality of
        ``zoom``, ``x``, ``y``, ``source``, ``flight_id`` or ``freshness_status``.

        Raises:
            TileValidationError: an unknown column or a malformed value (checked
                when the iterator is created, before any query).
        """
        filters = check_filters(where)
        return self._iter_tiles(filters)

    def _iter_tiles(self, filters: list[tuple[str, Any]]) -> Iterator[TileMetadata]:
        clauses = ["t.tile_uuid IS NOT NULL"]
        params: list[Any] = []
        for name, value in filters:
            if value is None:  # flight_id "" = reference imagery
                clauses.append(f"t.{name} IS NULL")
                continue
            clauses.append(f"t.{name} = %s")
            params.append(value)
        sql = SELECT_TILES + "WHERE " + " AND ".join(clauses) + " ORDER BY t.zoom, t.x, t.y, t.id"
        now = self._clock.now_ns()
        with (
            self._conn() as conn,
            conn.transaction(),
            conn.cursor(name="gdo_iter_tiles") as cur,
        ):
            cur.execute(sql, params)
            for row in cur:
                yield self._row_meta(row, now)[0]

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

    def summary(self) -> dict[str, Any]:
        """Totals straight from the database (for tools): tiles, bytes, pending,
        counts per source / zoom / persisted freshness, rows without identity."""
        with self._conn() as conn:
            row = conn.execute(
                "SELECT count(*), COALESCE(sum(disk_bytes), 0), "
                f"count(*) FILTER (WHERE {PENDING}), min(captured_at), max(captured_at) "
                "FROM tiles t WHERE t.tile_uuid IS NOT NULL"
            ).fetchone()
            assert row is not None
            groups = {
                name: {
                    str(k): int(v)
                    for k, v in conn.execute(
                        sql.SQL(
                            "SELECT {col}, count(*) FROM tiles WHERE tile_uuid IS NOT NULL "
                            "GROUP BY {col} ORDER BY {col}"
                        ).format(col=sql.Identifier(name))
                    ).fetchall()
                }
                for name in ("source", "zoom", "freshness_status")
            }
            legacy = conn.execute("SELECT count(*) FROM tiles WHERE tile_uuid IS NULL").fetchone()
        return {
            "tiles": int(row[0]),
            "disk_bytes": int(row[1]),
            "budget_bytes": self.config.disk_budget_bytes,
            "pending_upload": int(row[2]),
            "oldest_capture": None if row[3] is None else row[3].isoformat(),
            "newest_capture": None if row[4] is None else row[4].isoformat(),
            "by_source": groups["source"],
            "by_zoom": groups["zoom"],
            "by_freshness_status": groups["freshness_status"],
            "rows_without_identity": int(legacy[0]) if legacy else 0,
        }

    # ----------------------------------------------------------------- writes
    def put_tile(self, write: TileWrite) -> TileMetadata:
        """Store one tile durably (see the module docstring for the order).

        Raises:
            TileValidationError: refused before any I/O.
            TileMetadataError: duplicate natural key (nothing written) or a
                database failure (files compensated).
            TilePixelError: the files could not be written (row rolled back).
            TileStoreReadOnlyError: the store is read-only.
        """
        return self.put_tiles([write])[0]

    def put_tiles(self, writes: Sequence[TileWrite]) -> list[TileMetadata]:
        """Store several tiles in one transaction: all of them or none.

        The durability steps are shared (one commit, one fsync per directory),
        so this is the fast path for bulk loads and snapshot bursts.

        Raises:
            TileValidationError, TileMetadataError, TilePixelError: as
            :meth:`put_tile`; on any failure no tile of the batch is stored.
        """
        try:
            writes = check_writes(writes)
        except TileValidationError as err:
            self._write_failed(writes, "validation", err)
            raise
        try:
            self._writable("put_tiles")
        except TileStoreReadOnlyError as err:
            for write in writes:
                self._write_failed(write, "read_only", err)
            raise
        prepared: list[Prepared] = []
        now = self._clock.now_ns()
        for write in writes:
            try:
                prepared.append(prepare_write(write, self.config.max_tile_bytes, now))
            except TileValidationError as err:
                self._write_failed(write, "validation", err)
                raise
        if len({p.meta.tile_id for p in prepared}) != len(prepared):
            dup = TileValidationError("batch repeats a natural key", field="batch")
            for write in writes:
                self._write_failed(write, "validation", dup)
            raise dup
        if not prepared:
            return []
        with self._write_lock:
            try:
                metas = self._commit_batch(prepared)
            except TileCacheError as err:
                for write, p in zip(writes, prepared, strict=True):
                    self._write_failed(write, _reason(err), err, p.meta.tile_id)
                raise
        self._after_writes()
        return metas

    def _commit_batch(self, batch: Sequence[Prepared]) -> list[TileMetadata]:
        now = self._clock.now_ns()
        now_dt = ns_to_datetime(now)
        deadlines = [
            self._index.policy.deadlines(p.meta.captured_at_ns, p.meta.latitude, p.meta.longitude)
            for p in batch
        ]
        first = str(batch[0].meta.tile_id)
        written: list[Path] = []
        committed = False
        try:
            with self._pool.connection() as conn:
                try:
                    with conn.transaction(), conn.cursor() as cur:
                        rows = [
                            insert_row(p, d.status_at(now), now_dt)
                            for p, d in zip(batch, deadlines, strict=True)
                        ]
                        # the INSERT returns the cell's vote tally: no extra round trip
                        votes: list[tuple[int, int]] = []
                        if len(rows) == 1:
                            cur.execute(INSERT_TILE, rows[0])
                            votes.append(tally(cur.fetchone()))
                        else:  # one pipelined round trip for the whole batch
                            cur.executemany(INSERT_TILE, rows, returning=True)
                            while True:
                                votes.append(tally(cur.fetchone()))
                                if not cur.nextset():
                                    break
                        self._write_files(batch, written)
                    committed = True
                except psycopg.errors.UniqueViolation as err:
                    raise TileMetadataError(
                        f"tile already stored: {first if len(batch) == 1 else 'batch'} "
                        f"({err.diag.constraint_name or 'unique'})",
                        tile_id=first,
                        sqlstate=err.sqlstate,
                    ) from err
        except psycopg.Error as err:
            if written and not committed:
                pixels.remove_files(written)
            raise TileMetadataError(
                f"database error while storing tile: {err}",
                tile_id=first,
                sqlstate=getattr(err, "sqlstate", None),
            ) from err
        except psycopg_pool.PoolTimeout as err:
            raise TileMetadataError(f"no database connection available: {err}") from err
        metas: list[TileMetadata] = []
        with self._lock:
            for p, d, (agree, disagree) in zip(batch, deadlines, votes, strict=True):
                meta = replace(
                    p.meta,
                    freshness_status=d.status_at(now),
                    votes_agree=agree,
                    votes_disagree=disagree,
                )
                self._index_put(meta, d, now)
                self._tiles += 1
                self._disk_bytes += meta.disk_bytes
                self._pending += int(meta.pending_upload)
                self._writes += 1
                metas.append(meta)
        for meta in metas:
            payload: dict[str, Any] = {
                "tile_id": str(meta.tile_id),
                "zoom": meta.zoom,
                "x": meta.x,
                "y": meta.y,
                "source": meta.source,
                "disk_bytes": meta.disk_bytes,
                "content_sha256": meta.content_sha256,
            }
            if meta.flight_id is not None:
                payload["flight_id"] = str(meta.flight_id)
            self._emit("c6.write", payload)
        return metas

    def _write_files(self, batch: Sequence[Prepared], written: list[Path]) -> None:
        """Write every tile's JPEG and sidecar (see :func:`pixels.write_files_atomically`)."""
        files: list[tuple[Path, bytes]] = []
        try:
            for p in batch:
                m = p.meta
                directory = pixels.ensure_dir(self.root, pixels.relative_dir(m.zoom, m.x))
                files.append((directory / f"{m.tile_id}{pixels.JPEG_SUFFIX}", p.data))
                files.append((directory / f"{m.tile_id}{pixels.SIDECAR_SUFFIX}", p.sidecar))
            written.extend(path for path, _ in files)
            pixels.write_files_atomically(files)
        except OSError as err:
            pixels.remove_files(written)
            raise TilePixelError(
                f"cannot write tile files: {err}",
                tile_id=str(batch[0].meta.tile_id),
                path=getattr(err, "filename", None),
            ) from err

    def _after_writes(self) -> None:
        if self._disk_bytes > self.config.disk_budget_bytes:
            self.evict_to_budget()

    def _write_failed(
        self, write: object, reason: str, err: Exception, tile_id: UUID | None = None
    ) -> None:
        with self._lock:
            self._write_failures += 1
        payload: dict[str, Any] = describe_write(write)
        payload["reason"] = reason
        payload["error"] = f"{type(err).__name__}: {err}"[:500]
        if tile_id is not None:
            payload["tile_id"] = str(tile_id)
        self._emit("c6.write_failed", payload)
        log_event(self._log, logging.WARNING, "c6.write_failed", **payload)

    # ------------------------------------------------------------- LRU, votes
    def flush_access(self) -> int:
        """Write buffered access times in one UPDATE; returns how many tiles.

        Raises:
            TileMetadataError: the database refused (the buffer is kept).
        """
        with self._lock:
            batch, self._access = self._access, {}
        if not batch or self.read_only:
            return 0
        ids = list(batch)
        stamps = [ns_to_datetime(batch[i]) for i in ids]
        try:
            with self._conn() as conn:
                conn.execute(
                    "UPDATE tiles AS t SET accessed_at = a.at "
                    "FROM unnest(%s::uuid[], %s::timestamptz[]) AS a(id, at) "
                    "WHERE t.tile_uuid = a.id AND (t.accessed_at IS NULL OR t.accessed_at < a.at)",
                    (ids, stamps),
                )
        except TileMetadataError:
            with self._lock:
                for tid, at in batch.items():
                    self._access.setdefault(tid, at)
            raise
        return len(ids)

    def _flush_quietly(self) -> None:
        """Flush from a read: a failure keeps the buffer and is logged, never raised."""
        try:
            self.flush_access()
        except TileMetadataError as err:
            log_event(self._log, logging.WARNING, "c6.access_flush_failed", error=str(err))

    def evict_to_budget(self) -> EvictionResult:
        """Delete least recently used tiles until ``disk_bytes <= disk_budget_bytes``.
        Tiles pending upload are never evicted.

        Raises:
            TileMetadataError: the database failed.
        """
        self._writable("evict_to_budget")
        budget = self.config.disk_budget_bytes
        evicted = freed = 0
        with self._write_lock:
            self.flush_access()
            while self._disk_bytes > budget:
                need = self._disk_bytes - budget
                with self._conn() as conn, conn.transaction():
                    candidates = conn.execute(
                        "SELECT id, disk_bytes FROM tiles t WHERE t.tile_uuid IS NOT NULL "
                        f"AND NOT ({PENDING}) ORDER BY t.accessed_at, t.id LIMIT %s "
                        "FOR UPDATE",
                        (EVICT_BATCH,),
                    ).fetchall()
                    chosen: list[int] = []
                    total = 0
                    for row_id, size in candidates:
                        chosen.append(row_id)
                        total += int(size or 0)
                        if total >= need:
                            break
                    victims = conn.execute(
                        "DELETE FROM tiles WHERE id = ANY(%s) "
                        "RETURNING tile_uuid, zoom, x, disk_bytes",
                        (chosen,),
                    ).fetchall()
                if not victims:
                    log_event(
                        self._log,
                        logging.WARNING,
                        "c6.evict_blocked",
                        disk_bytes=self._disk_bytes,
                        budget_bytes=budget,
                        pending_upload=self._pending,
                    )
                    break
                files: list[Path] = []
                with self._lock:
                    for tile_id, zoom, x, size in victims:
                        self._index.drop_id(tile_id)
                        self._access.pop(tile_id, None)
                        self._tiles -= 1
                        self._disk_bytes -= int(size or 0)
                        self._evictions += 1
                        files.append(self._path(zoom, x, tile_id))
                        files.append(self._path(zoom, x, tile_id, pixels.SIDECAR_SUFFIX))
                pixels.remove_files(files)
                for tile_id, _zoom, _x, size in victims:
                    evicted += 1
                    freed += int(size or 0)
                    self._emit(
                        "c6.evict",
                        {"tile_id": str(tile_id), "disk_bytes": int(size or 0), "reason": "lru"},
                    )
        return EvictionResult(evicted, freed, self._disk_bytes, budget)

    def record_vote(self, location_hash: UUID | str, agree: bool) -> VoteTally:
        """Count one observation of a ground cell: does the stored imagery still
        match the ground? The tally ranks query results.

        Raises:
            TileValidationError: not a UUID, or ``agree`` not a bool.
            TileMetadataError: the database failed.
            TileStoreReadOnlyError: the store is read-only.
        """
        location = tile_uuid(location_hash, field="location_hash")
        agree = check_flag(agree, "agree")
        self._writable("record_vote")
        now_dt = ns_to_datetime(self._clock.now_ns())
        with self._conn() as conn:
            row = conn.execute(
                "INSERT INTO tile_votes (location_hash, agree, disagree, updated_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (location_hash) DO UPDATE SET "
                "agree = tile_votes.agree + EXCLUDED.agree, "
                "disagree = tile_votes.disagree + EXCLUDED.disagree, "
                "updated_at = EXCLUDED.updated_at RETURNING agree, disagree",
                (location, int(bool(agree)), int(not agree), now_dt),
            ).fetchone()
        assert row is not None
        tally = VoteTally(location, int(row[0]), int(row[1]))
        with self._lock:
            for tid in self._index.by_location.get(location, ()):
                self._index.update(tid, votes_agree=tally.agree, votes_disagree=tally.disagree)
        self._emit("c6.vote", {"location_hash": str(location), "agree": bool(agree)})
        return tally

    # ---------------------------------------------------------------- uploads
    def mark_uploaded(self, tile_ids: Sequence[UUID | str]) -> int:
        """Mark tiles as uploaded; returns how many were newly marked (idempotent).

        Raises:
            TileValidationError: an id is not a UUID.
            TileNotFound: an id names no stored tile (nothing is marked then).
            TileStoreReadOnlyError: the store is read-only.
        """
        ids = tile_uuids(tile_ids)
        self._writable("mark_uploaded")
        if not ids:
            return 0
        now = self._clock.now_ns()
        with self._write_lock, self._conn() as conn, conn.transaction():
            found = {
                r[0]
                for r in conn.execute(
                    "SELECT tile_uuid FROM tiles WHERE tile_uuid = ANY(%s)", (ids,)
                ).fetchall()
            }
            missing = [str(t) for t in ids if t not in found]
            if missing:
                raise TileNotFound(f"no such tiles: {missing}", tile_id=missing[0])
            marked = [
                r[0]
                for r in conn.execute(
                    "UPDATE tiles SET uploaded_at = %s, updated_at = %s "
                    "WHERE tile_uuid = ANY(%s) AND flight_id IS NOT NULL "
                    "AND uploaded_at IS NULL RETURNING tile_uuid",
                    (ns_to_datetime(now), ns_to_datetime(now), ids),
                ).fetchall()
            ]
        with self._lock:
            self._pending -= len(marked)
            for tid in marked:
                self._index.update(tid, uploaded_at_ns=us_floor(now))
        return len(marked)

    # -------------------------------------------------------------- freshness
    def reload_policy(self) -> None:
        """Re-read sectors and freshness rules (after they changed in the database)."""
        with self._conn() as conn:
            sectors = [
                fr.Sector(
                    sid,
                    cls_,
                    None
                    if None in (a, b, c, d)
                    else BBox(min_latitude=a, min_longitude=b, max_latitude=c, max_longitude=d),
                )
                for sid, cls_, a, b, c, d in conn.execute(
                    "SELECT sector_id, classification, min_latitude, min_longitude, "
                    "max_latitude, max_longitude FROM sector_classifications"
                ).fetchall()
            ]
            rules = [
                fr.FreshnessRule(c, a, int(m), int(d), float(s))
                for c, a, m, d, s in conn.execute(
                    "SELECT classification, action, "
                    "(extract(year FROM max_age) * 12 + extract(month FROM max_age))::int, "
                    "extract(day FROM max_age)::int, "
                    "(extract(hour FROM max_age) * 3600 + extract(minute FROM max_age) * 60 "
                    "+ extract(second FROM max_age))::float8 FROM tile_freshness_rules"
                ).fetchall()
            ]
        with self._lock:
            self._index.set_policy(fr.FreshnessPolicy(sectors, rules))

    def set_sector(self, sector_id: str, classification: str, bbox: BBox | None) -> None:
        """Create or update a sector, then re-evaluate freshness.

        Raises:
            TileValidationError: empty, overlong or non-printable id or
                classification, or a bbox that is not a BBox.
            TileStoreReadOnlyError: the store is read-only.
        """
        sector_id = check_name(sector_id, "sector_id")
        classification = check_name(classification, "classification")
        if bbox is not None:
            bbox = check_bbox(bbox)
        self._writable("set_sector")
        box = (
            (None, None, None, None)
            if bbox is None
            else (
                bbox.min_latitude,
                bbox.min_longitude,
                bbox.max_latitude,
                bbox.max_longitude,
            )
        )
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO sector_classifications (sector_id, classification, min_latitude, "
                "min_longitude, max_latitude, max_longitude, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (sector_id) DO UPDATE SET "
                "classification = EXCLUDED.classification, min_latitude = EXCLUDED.min_latitude, "
                "min_longitude = EXCLUDED.min_longitude, max_latitude = EXCLUDED.max_latitude, "
                "max_longitude = EXCLUDED.max_longitude, updated_at = EXCLUDED.updated_at",
                (sector_id, classification, *box, ns_to_datetime(self._clock.now_ns())),
            )
        self.reload_policy()
        self.refresh_freshness()

    def refresh_freshness(self) -> int:
        """Rewrite the persisted ``freshness_status`` of every tile whose status
        changed at the clock's current time; returns how many rows changed.

        Raises:
            TileStoreReadOnlyError: the store is read-only.
        """
        self._writable("refresh_freshness")
        now = self._clock.now_ns()
        with self._conn() as conn:
            cur = conn.execute(fr.REFRESH_SQL, {"now": ns_to_datetime(now)})
            changed = cur.rowcount
        self._last_refresh_ns = now
        return max(changed, 0)

    def maintain(self, refresh_period_ns: int = 60 * 1_000_000_000) -> None:
        """Periodic upkeep for the node: flush access times, evict over budget,
        refresh persisted freshness at most once per ``refresh_period_ns``.

        Raises:
            TileValidationError: a period that is not a non-negative int.
            TileStoreReadOnlyError: the store is read-only.
        """
        check_int(refresh_period_ns, "refresh_period_ns", 0, 1 << 62)
        self._writable("maintain")
        self.flush_access()
        if self._disk_bytes > self.config.disk_budget_bytes:
            self.evict_to_budget()
        now = self._clock.now_ns()
        if self._last_refresh_ns is None or now - self._last_refresh_ns >= refresh_period_ns:
            self.refresh_freshness()

    # --------------------------------------------------------- reconciliation
    def _load_totals(self) -> None:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT count(*), COALESCE(sum(disk_bytes), 0), "
                f"count(*) FILTER (WHERE {PENDING}) FROM tiles t WHERE t.tile_uuid IS NOT NULL"
            ).fetchone()
        assert row is not None
        with self._lock:
            self._tiles, self._disk_bytes, self._pending = int(row[0]), int(row[1]), int(row[2])


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


def _reason(err: TileCacheError) -> str:
    if isinstance(err, TileMetadataError):
        return "duplicate" if err.sqlstate == "23505" else "database"
    if isinstance(err, TilePixelError):
        return "filesystem"
    return "validation"
