"""The store's write path: ``put_tile`` and ``put_tiles``, one transaction per batch.

Write order (one ``put_tile``; a batch does each step for all of its tiles)::

    validate (ids, ranges, size, JPEG markers)  \\ no I/O at all
    sha256(data) == declared content_sha256      /
    BEGIN; INSERT tiles row                      sent, not awaited (pipeline mode): the
                                                 server runs them while the files are written
    JPEG + sidecar: temp, write, fsync           bytes durable, under temporary names
    rename both over their final names           only once the database said "no such
                                                 tile" if a final name is already taken
    COMMIT                                       sent, not awaited
    fsync dir                                    while the server flushes the COMMIT
    read every result                            duplicate natural key -> TileMetadataError,
                                                 the files are removed, old files untouched;
                                                 a failed COMMIT -> the files are removed
    index, totals, FDR ``c6.write``; evict if over budget

Each flush waits for what must be durable before it and no more: the files'
bytes before their names can exist (a name that survives a crash always has
its whole file) and before the COMMIT is sent (a committed row never points
at bytes that a power loss could take back); the directory fsync and the
COMMIT's WAL flush are independent and overlap. One round trip in all: the
results are read once, after the directory fsync.

A crash before the COMMIT is durable leaves files (or temporaries) without a
row: the next construction's reconciliation removes them, i.e. the old state.
After it, the row and the files' bytes are durable; a JPEG name that the
directory fsync did not make durable before a power loss makes a row without
its JPEG, which reconciliation removes (the old state again), and a lost
sidecar name is rewritten from the row (the new state). ``put_tile`` returns
only after both the COMMIT and the directory fsync: the new state.

Reconciliation waits for every open transaction that wrote ``tiles``
(:data:`~.queries.WAIT_FOR_WRITERS`) before it looks at a file, so the COMMIT
of a writer killed with it in flight lands before reconciliation looks, never
after it removed that writer's files.

Why a module of its own: this order is what makes a crash leave only the old
state or the new one; kept together it can be read and checked in one place.
Every refused or failed write emits one ``c6.write_failed`` record naming its
reason.

The functions take the store (the only writer of its tile root and rows),
typed as :class:`~gps_denied_onboard.tile_cache.internals.StoreInternals` so
that this module does not import :mod:`.store`, and update its index and
totals under its locks;
:class:`~gps_denied_onboard.tile_cache.store.PostgresFilesystemStore` binds
``put_tile`` and ``put_tiles`` as its methods.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import psycopg_pool

from gps_denied_onboard.clock import ns_to_datetime
from gps_denied_onboard.log import log_event
from gps_denied_onboard.tile_cache import pixels
from gps_denied_onboard.tile_cache.errors import (
    LOCK_NOT_AVAILABLE,
    QUERY_CANCELED,
    TileCacheError,
    TileMetadataError,
    TilePixelError,
    TileStoreReadOnlyError,
    TileValidationError,
)
from gps_denied_onboard.tile_cache.internals import StoreInternals
from gps_denied_onboard.tile_cache.model import TileMetadata, TileWrite
from gps_denied_onboard.tile_cache.queries import INSERT_TILE, insert_row, tally
from gps_denied_onboard.tile_cache.validation import (
    Prepared,
    check_writes,
    describe_write,
    prepare_write,
)

__all__ = ["put_tile", "put_tiles"]


def put_tile(store: StoreInternals, write: TileWrite) -> TileMetadata:
    """Store one tile durably (see the module docstring for the order).

    Raises:
        TileValidationError: refused before any I/O.
        TileMetadataError: duplicate natural key (no file changed) or a
            database failure (files compensated).
        TilePixelError: the files could not be written (row rolled back).
        TileStoreReadOnlyError: the store is read-only.
    """
    return store.put_tiles([write])[0]


def put_tiles(store: StoreInternals, writes: Sequence[TileWrite]) -> list[TileMetadata]:
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
        _write_failed(store, writes, "validation", err)
        raise
    try:
        store._writable("put_tiles")
    except TileStoreReadOnlyError as err:
        for write in writes:
            _write_failed(store, write, "read_only", err)
        raise
    prepared: list[Prepared] = []
    now = store._clock.now_ns()
    for write in writes:
        try:
            prepared.append(prepare_write(write, store.config.max_tile_bytes, now))
        except TileValidationError as err:
            _write_failed(store, write, "validation", err)
            raise
    if len({p.meta.tile_id for p in prepared}) != len(prepared):
        dup = TileValidationError("batch repeats a natural key", field="batch")
        for write in writes:
            _write_failed(store, write, "validation", dup)
        raise dup
    if not prepared:
        return []
    with store._write_lock:
        try:
            metas = _commit_batch(store, prepared)
        except TileCacheError as err:
            for write, p in zip(writes, prepared, strict=True):
                _write_failed(store, write, _reason(err), err, p.meta.tile_id)
            raise
    _after_writes(store)
    return metas


def _commit_batch(store: StoreInternals, batch: Sequence[Prepared]) -> list[TileMetadata]:
    now = store._clock.now_ns()
    now_dt = ns_to_datetime(now)
    deadlines = [
        store._index.policy.deadlines(p.meta.captured_at_ns, p.meta.latitude, p.meta.longitude)
        for p in batch
    ]
    rows = [insert_row(p, d.status_at(now), now_dt) for p, d in zip(batch, deadlines, strict=True)]
    first = str(batch[0].meta.tile_id)
    files = _tile_files(store, batch)
    try:
        with store._pool.connection() as conn:
            try:
                votes = _store(conn, rows, files, [p.meta.tile_id for p in batch])
            except psycopg.errors.UniqueViolation as err:
                raise TileMetadataError(
                    f"tile already stored: {first if len(batch) == 1 else 'batch'} "
                    f"({err.diag.constraint_name or 'unique'})",
                    tile_id=first,
                    sqlstate=err.sqlstate,
                ) from err
    except psycopg.Error as err:
        raise TileMetadataError(
            f"database error while storing tile: {err}",
            tile_id=first,
            sqlstate=getattr(err, "sqlstate", None),
        ) from err
    except psycopg_pool.PoolTimeout as err:
        raise TileMetadataError(f"no database connection available: {err}") from err
    metas: list[TileMetadata] = []
    with store._lock:
        for p, d, (agree, disagree) in zip(batch, deadlines, votes, strict=True):
            meta = replace(
                p.meta,
                freshness_status=d.status_at(now),
                votes_agree=agree,
                votes_disagree=disagree,
            )
            store._index_put(meta, d, now)
            store._tiles += 1
            store._disk_bytes += meta.disk_bytes
            store._pending += int(meta.pending_upload)
            store._writes += 1
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
        store._emit("c6.write", payload)
    return metas


def _tile_files(store: StoreInternals, batch: Sequence[Prepared]) -> list[tuple[Path, bytes]]:
    """Every tile's JPEG and sidecar as ``(final path, bytes)``; creates (durably)
    the tile directories that do not exist yet."""
    files: list[tuple[Path, bytes]] = []
    try:
        for p in batch:
            m = p.meta
            directory = pixels.ensure_dir(store.root, pixels.relative_dir(m.zoom, m.x))
            files.append((directory / f"{m.tile_id}{pixels.JPEG_SUFFIX}", p.data))
            files.append((directory / f"{m.tile_id}{pixels.SIDECAR_SUFFIX}", p.sidecar))
    except OSError as err:
        raise _pixel_error(err, batch[0].meta.tile_id) from err
    return files


def _store(
    conn: psycopg.Connection[Any],
    rows: Sequence[tuple[Any, ...]],
    files: Sequence[tuple[Path, bytes]],
    tile_ids: Sequence[UUID],
) -> list[tuple[int, int]]:
    """Insert the rows and write the files in the module docstring's order, in
    one transaction on ``conn``; the cells' vote tallies (one per row).

    Raises:
        psycopg.Error: the database refused or failed; no file is left.
        TilePixelError: the filesystem failed; no file and no row are left.
    """
    staged: list[pixels.Staged] = []
    published = False
    dir_error: OSError | None = None
    try:
        with conn.pipeline() as pipe:
            conn.execute("BEGIN")
            # the INSERT returns the cell's vote tally: no extra round trip
            cursors = [conn.execute(INSERT_TILE, row) for row in rows]
            try:
                staged = pixels.stage_files(files)
            except OSError as err:
                raise _pixel_error(err, tile_ids[0]) from err
            if any(s.final.exists() for s in staged):
                pipe.sync()  # the database's verdict before a file in place is replaced
            try:
                pixels.publish_files(staged)
            except OSError as err:
                raise _pixel_error(err, tile_ids[0]) from err
            published = True
            conn.execute("COMMIT")
            try:
                pixels.sync_dirs(s.final for s in staged)
            except OSError as err:
                dir_error = err  # the COMMIT's outcome decides what to undo
        # leaving the pipeline read every result: an error of any statement raises here
    except BaseException:
        pixels.remove_files([s.final if published else s.tmp for s in staged])
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        raise
    if dir_error is not None:
        # committed, but a power loss could take the names back: take the tiles back
        pixels.remove_files([s.final for s in staged])
        with contextlib.suppress(psycopg.Error):
            conn.execute("DELETE FROM tiles WHERE tile_uuid = ANY(%s)", (list(tile_ids),))
        raise _pixel_error(dir_error, tile_ids[0]) from dir_error
    return [tally(cur.fetchone()) for cur in cursors]


def _pixel_error(err: OSError, tile_id: UUID) -> TilePixelError:
    return TilePixelError(
        f"cannot write tile files: {err}",
        tile_id=str(tile_id),
        path=getattr(err, "filename", None),
    )


def _after_writes(store: StoreInternals) -> None:
    if store._disk_bytes > store.config.disk_budget_bytes:
        store.evict_to_budget()


def _write_failed(
    store: StoreInternals,
    write: object,
    reason: str,
    err: Exception,
    tile_id: UUID | None = None,
) -> None:
    with store._lock:
        store._write_failures += 1
    payload: dict[str, Any] = describe_write(write)
    payload["reason"] = reason
    payload["error"] = f"{type(err).__name__}: {err}"[:500]
    if tile_id is not None:
        payload["tile_id"] = str(tile_id)
    store._emit("c6.write_failed", payload)
    log_event(store._log, logging.WARNING, "c6.write_failed", **payload)


#: ``c6.write_failed`` reasons of a database refusal, by SQLSTATE (else ``database``)
_METADATA_REASONS = {
    "23505": "duplicate",
    LOCK_NOT_AVAILABLE: "lock_timeout",
    QUERY_CANCELED: "statement_timeout",
}


def _reason(err: TileCacheError) -> str:
    if isinstance(err, TileMetadataError):
        # a write that waited out lock_timeout_s / statement_timeout_s says so: the
        # database was busy (a maintenance lock, a slow disk), not broken
        return _METADATA_REASONS.get(err.sqlstate or "", "database")
    if isinstance(err, TilePixelError):
        return "filesystem"
    return "validation"
