"""The store's upkeep: access times, eviction, votes, upload marks, freshness.

Everything that changes stored state other than writing a tile: the buffered
access times flushed in one UPDATE, least-recently-used eviction down to the
disk budget, ground-truth votes, upload marks, the sector and freshness
policy, and the periodic :func:`maintain` the node runs. Kept apart from the
write path (:mod:`.writes`) and the reads (:mod:`.store`) because none of it
is on a hot path and all of it is driven by time or by the ground station.

Eviction deletes rows first and files after the commit, so its crash window
also leaves only orphan files (removed by the next read-write construction's
reconciliation, as a write's are).

The functions take the store, typed as
:class:`~gps_denied_onboard.tile_cache.internals.StoreInternals` so that this
module does not import :mod:`.store`, and update its index and totals under
its locks;
:class:`~gps_denied_onboard.tile_cache.store.PostgresFilesystemStore` binds the
public ones as its methods.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Final
from uuid import UUID

from gps_denied_onboard.clock import ns_to_datetime
from gps_denied_onboard.log import log_event
from gps_denied_onboard.tile_cache import freshness as fr
from gps_denied_onboard.tile_cache import pixels
from gps_denied_onboard.tile_cache.errors import TileMetadataError, TileNotFound
from gps_denied_onboard.tile_cache.geo import BBox
from gps_denied_onboard.tile_cache.internals import StoreInternals
from gps_denied_onboard.tile_cache.model import EvictionResult, VoteTally
from gps_denied_onboard.tile_cache.queries import PENDING
from gps_denied_onboard.tile_cache.validation import (
    check_bbox,
    check_flag,
    check_int,
    check_name,
    tile_uuid,
    tile_uuids,
    us_floor,
)

__all__ = [
    "EVICT_BATCH",
    "evict_to_budget",
    "flush_access",
    "flush_quietly",
    "load_totals",
    "maintain",
    "mark_uploaded",
    "record_vote",
    "refresh_freshness",
    "reload_policy",
    "set_sector",
]

EVICT_BATCH: Final = 256


# ------------------------------------------------------------- LRU, votes
def flush_access(store: StoreInternals) -> int:
    """Write buffered access times in one UPDATE; returns how many tiles.

    Raises:
        TileMetadataError: the database refused (the buffer is kept).
    """
    with store._lock:
        batch, store._access = store._access, {}
    if not batch or store.read_only:
        return 0
    ids = list(batch)
    stamps = [ns_to_datetime(batch[i]) for i in ids]
    try:
        with store._conn() as conn:
            conn.execute(
                "UPDATE tiles AS t SET accessed_at = a.at "
                "FROM unnest(%s::uuid[], %s::timestamptz[]) AS a(id, at) "
                "WHERE t.tile_uuid = a.id AND (t.accessed_at IS NULL OR t.accessed_at < a.at)",
                (ids, stamps),
            )
    except TileMetadataError:
        with store._lock:
            for tid, at in batch.items():
                store._access.setdefault(tid, at)
        raise
    return len(ids)


def flush_quietly(store: StoreInternals) -> None:
    """Flush from a read: a failure keeps the buffer and is logged, never raised."""
    try:
        store.flush_access()
    except TileMetadataError as err:
        log_event(store._log, logging.WARNING, "c6.access_flush_failed", error=str(err))


def evict_to_budget(store: StoreInternals) -> EvictionResult:
    """Delete least recently used tiles until ``disk_bytes <= disk_budget_bytes``.
    Tiles pending upload are never evicted.

    Raises:
        TileMetadataError: the database failed.
    """
    store._writable("evict_to_budget")
    budget = store.config.disk_budget_bytes
    evicted = freed = 0
    with store._write_lock:
        store.flush_access()
        while store._disk_bytes > budget:
            need = store._disk_bytes - budget
            with store._conn() as conn, conn.transaction():
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
                    "DELETE FROM tiles WHERE id = ANY(%s) RETURNING tile_uuid, zoom, x, disk_bytes",
                    (chosen,),
                ).fetchall()
            if not victims:
                log_event(
                    store._log,
                    logging.WARNING,
                    "c6.evict_blocked",
                    disk_bytes=store._disk_bytes,
                    budget_bytes=budget,
                    pending_upload=store._pending,
                )
                break
            files: list[Path] = []
            with store._lock:
                for tile_id, zoom, x, size in victims:
                    store._index.drop_id(tile_id)
                    store._access.pop(tile_id, None)
                    store._tiles -= 1
                    store._disk_bytes -= int(size or 0)
                    store._evictions += 1
                    files.append(store._path(zoom, x, tile_id))
                    files.append(store._path(zoom, x, tile_id, pixels.SIDECAR_SUFFIX))
            pixels.remove_files(files)
            for tile_id, _zoom, _x, size in victims:
                evicted += 1
                freed += int(size or 0)
                store._emit(
                    "c6.evict",
                    {"tile_id": str(tile_id), "disk_bytes": int(size or 0), "reason": "lru"},
                )
    return EvictionResult(evicted, freed, store._disk_bytes, budget)


def record_vote(store: StoreInternals, location_hash: UUID | str, agree: bool) -> VoteTally:
    """Count one observation of a ground cell: does the stored imagery still
    match the ground? The tally ranks query results.

    Raises:
        TileValidationError: not a UUID, or ``agree`` not a bool.
        TileMetadataError: the database failed.
        TileStoreReadOnlyError: the store is read-only.
    """
    location = tile_uuid(location_hash, field="location_hash")
    agree = check_flag(agree, "agree")
    store._writable("record_vote")
    now_dt = ns_to_datetime(store._clock.now_ns())
    with store._conn() as conn:
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
    with store._lock:
        for tid in store._index.by_location.get(location, ()):
            store._index.update(tid, votes_agree=tally.agree, votes_disagree=tally.disagree)
    store._emit("c6.vote", {"location_hash": str(location), "agree": bool(agree)})
    return tally


# ---------------------------------------------------------------- uploads
def mark_uploaded(store: StoreInternals, tile_ids: Sequence[UUID | str]) -> int:
    """Mark tiles as uploaded; returns how many were newly marked (idempotent).

    Raises:
        TileValidationError: an id is not a UUID.
        TileNotFound: an id names no stored tile (nothing is marked then).
        TileStoreReadOnlyError: the store is read-only.
    """
    ids = tile_uuids(tile_ids)
    store._writable("mark_uploaded")
    if not ids:
        return 0
    now = store._clock.now_ns()
    with store._write_lock, store._conn() as conn, conn.transaction():
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
    with store._lock:
        store._pending -= len(marked)
        for tid in marked:
            store._index.update(tid, uploaded_at_ns=us_floor(now))
    return len(marked)


# -------------------------------------------------------------- freshness
def reload_policy(store: StoreInternals) -> None:
    """Re-read sectors and freshness rules (after they changed in the database)."""
    with store._conn() as conn:
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
    with store._lock:
        store._index.set_policy(fr.FreshnessPolicy(sectors, rules))


def set_sector(
    store: StoreInternals, sector_id: str, classification: str, bbox: BBox | None
) -> None:
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
    store._writable("set_sector")
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
    with store._conn() as conn:
        conn.execute(
            "INSERT INTO sector_classifications (sector_id, classification, min_latitude, "
            "min_longitude, max_latitude, max_longitude, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (sector_id) DO UPDATE SET "
            "classification = EXCLUDED.classification, min_latitude = EXCLUDED.min_latitude, "
            "min_longitude = EXCLUDED.min_longitude, max_latitude = EXCLUDED.max_latitude, "
            "max_longitude = EXCLUDED.max_longitude, updated_at = EXCLUDED.updated_at",
            (sector_id, classification, *box, ns_to_datetime(store._clock.now_ns())),
        )
    store.reload_policy()
    store.refresh_freshness()


def refresh_freshness(store: StoreInternals) -> int:
    """Rewrite the persisted ``freshness_status`` of every tile whose status
    changed at the clock's current time; returns how many rows changed.

    Raises:
        TileStoreReadOnlyError: the store is read-only.
    """
    store._writable("refresh_freshness")
    now = store._clock.now_ns()
    with store._conn() as conn:
        cur = conn.execute(fr.REFRESH_SQL, {"now": ns_to_datetime(now)})
        changed = cur.rowcount
    store._last_refresh_ns = now
    return max(changed, 0)


def maintain(store: StoreInternals, refresh_period_ns: int = 60 * 1_000_000_000) -> None:
    """Periodic upkeep for the node: flush access times, evict over budget,
    refresh persisted freshness at most once per ``refresh_period_ns``.

    Raises:
        TileValidationError: a period that is not a non-negative int.
        TileStoreReadOnlyError: the store is read-only.
    """
    check_int(refresh_period_ns, "refresh_period_ns", 0, 1 << 62)
    store._writable("maintain")
    store.flush_access()
    if store._disk_bytes > store.config.disk_budget_bytes:
        store.evict_to_budget()
    now = store._clock.now_ns()
    if store._last_refresh_ns is None or now - store._last_refresh_ns >= refresh_period_ns:
        store.refresh_freshness()


# --------------------------------------------------------- reconciliation
def load_totals(store: StoreInternals) -> None:
    """Read the counters' starting totals (tiles, bytes, pending upload) from
    the rows, once at construction after reconciliation; writes, eviction and
    upload marks keep them current from then on."""
    with store._conn() as conn:
        row = conn.execute(
            "SELECT count(*), COALESCE(sum(disk_bytes), 0), "
            f"count(*) FILTER (WHERE {PENDING}) FROM tiles t WHERE t.tile_uuid IS NOT NULL"
        ).fetchone()
    assert row is not None
    with store._lock:
        store._tiles, store._disk_bytes, store._pending = int(row[0]), int(row[1]), int(row[2])
