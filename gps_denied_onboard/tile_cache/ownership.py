"""Who may change a tile root, and the start-up reconciliation its owner runs.

One read-write store owns a tile root at a time: it holds
``<tile_root>/.tile_cache.lock`` (:mod:`gps_denied_onboard.rootlock`, the
same ``flock`` the flight recorder holds on its flight root) from before its
reconciliation until :meth:`close`. A second read-write store, in this
process or another, fails with :class:`TileRootLockedError` before it has
looked at a file. Read-only stores (operator ``dump``/``verify``, other
readers) take no lock and never reconcile, evict or delete.

Reconciliation runs only under the lock, so no writer can commit a tile
between its file scan and its row deletions. A writer killed with its COMMIT
in flight leaves a backend that may still run it: reconciliation first waits
for every transaction that wrote ``tiles`` to end
(:data:`~.queries.WAIT_FOR_WRITERS`), so such a COMMIT lands (or rolls back)
before the files are looked at.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import psycopg

from gps_denied_onboard.log import log_event
from gps_denied_onboard.rootlock import DirectoryLock, DirectoryLockedError, lock_directory
from gps_denied_onboard.tile_cache import pixels
from gps_denied_onboard.tile_cache.errors import TilePixelError, TileRootLockedError
from gps_denied_onboard.tile_cache.model import ReconcileReport, TileMetadata
from gps_denied_onboard.tile_cache.queries import SELECT_TILES, WAIT_FOR_WRITERS
from gps_denied_onboard.tile_cache.validation import sidecar_bytes

LOCK_NAME: Final = ".tile_cache.lock"
#: How long reconciliation waits for another process's write transaction
#: (a killed writer's backend finishing its COMMIT takes milliseconds); it
#: overrides the store's own lock and statement timeouts for that one wait.
WRITER_WAIT_S: Final = 30

Connect = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]


def own_tile_root(root: Path) -> DirectoryLock:
    """Take the tile root for one read-write store.

    Raises:
        TileRootLockedError: another store owns it.
        TilePixelError: the root or its lock file cannot be created.
    """
    try:
        return lock_directory(root, LOCK_NAME)
    except DirectoryLockedError as err:
        raise TileRootLockedError(
            f"tile root {root} is owned by another tile cache store"
            + (f" (pid {err.holder_pid})" if err.holder_pid is not None else ""),
            tile_root=str(root),
            holder_pid=err.holder_pid,
        ) from err
    except OSError as err:
        raise TilePixelError(f"tile root {root} is not writable: {err}", path=str(root)) from err


def tile_path(root: Path, zoom: int, x: int, tile_id: UUID, suffix: str) -> Path:
    return root / pixels.relative_dir(zoom, x) / f"{tile_id}{suffix}"


def reconcile(
    root: Path,
    connect: Connect,
    to_meta: Callable[[Any], TileMetadata],
    logger: logging.Logger,
) -> ReconcileReport:
    """Make files and rows agree after whatever happened while no owner ran:
    remove temp files and files without a row, delete rows whose JPEG is
    gone, rewrite missing sidecars. The caller holds the tile root's lock.
    First waits for any write transaction still open (see the module
    docstring); a database error or a wait over :data:`WRITER_WAIT_S` is
    raised as the ``connect`` context types it.

    Args:
        root: the tile root.
        connect: the store's connection context (errors already typed).
        to_meta: a :data:`SELECT_TILES` row as metadata.
        logger: for ``c6.store.unknown_files``.
    """
    with connect() as conn, conn.transaction():  # a dead writer's transaction ends first
        conn.execute(f"SET LOCAL lock_timeout = '{WRITER_WAIT_S}s'")
        conn.execute("SET LOCAL statement_timeout = 0")  # lock_timeout bounds this wait
        conn.execute(WAIT_FOR_WRITERS)
    jpegs: dict[UUID, Path] = {}
    sidecars: dict[UUID, Path] = {}
    temps: list[Path] = []
    others = 0
    for f in pixels.scan_tile_files(root):
        if f.kind == "tmp":
            temps.append(f.path)
        elif f.kind == "jpeg" and f.tile_id is not None:
            jpegs[f.tile_id] = f.path
        elif f.kind == "sidecar" and f.tile_id is not None:
            sidecars[f.tile_id] = f.path
        else:
            others += 1
    pixels.remove_files(temps)
    with connect() as conn:
        rows = conn.execute(
            "SELECT tile_uuid, zoom, x FROM tiles WHERE tile_uuid IS NOT NULL"
        ).fetchall()
    where: dict[UUID, tuple[int, int]] = {tid: (zoom, x) for tid, zoom, x in rows}

    def expected(tid: UUID, suffix: str) -> Path:
        zoom, x = where[tid]
        return tile_path(root, zoom, x, tid, suffix)

    found: Iterable[tuple[UUID, Path]] = [*jpegs.items(), *sidecars.items()]
    orphan_files = [
        path for tid, path in found if tid not in where or path != expected(tid, path.suffix)
    ]
    pixels.remove_files(orphan_files)
    missing = [tid for tid in where if jpegs.get(tid) != expected(tid, pixels.JPEG_SUFFIX)]
    if missing:
        with connect() as conn:
            conn.execute("DELETE FROM tiles WHERE tile_uuid = ANY(%s)", (missing,))
    lost = set(missing)
    no_sidecar = [
        tid
        for tid in where
        if tid not in lost and sidecars.get(tid) != expected(tid, pixels.SIDECAR_SUFFIX)
    ]
    if no_sidecar:
        with connect() as conn:
            full = conn.execute(
                SELECT_TILES + "WHERE t.tile_uuid = ANY(%s)", (no_sidecar,)
            ).fetchall()
        pixels.write_files_atomically(
            [
                (
                    tile_path(root, meta.zoom, meta.x, meta.tile_id, pixels.SIDECAR_SUFFIX),
                    sidecar_bytes(meta),
                )
                for meta in (to_meta(row) for row in full)
            ]
        )
    if others:
        log_event(logger, logging.WARNING, "c6.store.unknown_files", count=others)
    return ReconcileReport(
        orphan_files_removed=len(orphan_files),
        orphan_rows_removed=len(missing),
        temp_files_removed=len(temps),
        sidecars_rewritten=len(no_sidecar),
    )
