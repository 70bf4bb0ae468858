"""The store's database queries: bbox, pending uploads, tool listings, summary.

Reads of many tiles at once, straight from the database: they never use or
fill the read index that serves single tiles (:mod:`.store`), and they never
buffer access times. Kept apart from the single-tile reads because their cost
is the query, not the lookup: each is one parameterised statement (a named
server-side cursor for :func:`iter_tiles`) whose rows become metadata through
:func:`~gps_denied_onboard.tile_cache.queries.row_meta`.

The functions take the store, typed as
:class:`~gps_denied_onboard.tile_cache.internals.StoreInternals` so that this
module does not import :mod:`.store`;
:class:`~gps_denied_onboard.tile_cache.store.PostgresFilesystemStore` binds
them as its methods.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from psycopg import sql

from gps_denied_onboard.tile_cache import freshness as fr
from gps_denied_onboard.tile_cache.errors import TileValidationError
from gps_denied_onboard.tile_cache.geo import BBox, bbox_tile_ranges
from gps_denied_onboard.tile_cache.identity import check_zxy
from gps_denied_onboard.tile_cache.internals import StoreInternals
from gps_denied_onboard.tile_cache.model import TileMetadata
from gps_denied_onboard.tile_cache.queries import PENDING, SELECT_TILES, rank_key
from gps_denied_onboard.tile_cache.validation import (
    check_bbox,
    check_filters,
    check_flag,
    check_limit,
)

__all__ = ["iter_tiles", "list_pending_uploads", "query_bbox", "summary"]


def query_bbox(
    store: StoreInternals,
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
    limit = check_limit(limit, store.config.bbox_default_limit)
    include_rejected = check_flag(include_rejected, "include_rejected")
    xs, (y0, y1) = bbox_tile_ranges(bbox, zoom)
    if len(xs) > store.config.bbox_max_columns:
        raise TileValidationError(
            f"bbox spans {len(xs)} tile columns at zoom {zoom}, "
            f"limit {store.config.bbox_max_columns}",
            field="bbox",
        )
    with store._conn() as conn:
        rows = conn.execute(
            SELECT_TILES + "WHERE t.zoom = %s AND t.x = ANY(%s) AND t.y BETWEEN %s AND %s "
            "AND t.tile_uuid IS NOT NULL",
            (zoom, xs, y0, y1),
            binary=True,
        ).fetchall()
    now = store._clock.now_ns()
    metas = [store._row_meta(row, now)[0] for row in rows]
    if not include_rejected:
        metas = [m for m in metas if fr.RANK.get(m.freshness_status, 1) < fr.RANK[fr.REJECTED]]
    metas.sort(key=rank_key)
    return metas[:limit]


def list_pending_uploads(store: StoreInternals, limit: int | None = None) -> list[TileMetadata]:
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
    with store._conn() as conn:
        rows = conn.execute(sql, params).fetchall()
    now = store._clock.now_ns()
    return [store._row_meta(row, now)[0] for row in rows]


def iter_tiles(
    store: StoreInternals, where: Mapping[str, Any] | None = None
) -> Iterator[TileMetadata]:
    """Every stored tile (for tools), optionally filtered on equality of
    ``zoom``, ``x``, ``y``, ``source``, ``flight_id`` or ``freshness_status``.

    Raises:
        TileValidationError: an unknown column or a malformed value (checked
            when the iterator is created, before any query).
    """
    filters = check_filters(where)
    return _iter_tiles(store, filters)


def _iter_tiles(store: StoreInternals, filters: list[tuple[str, Any]]) -> Iterator[TileMetadata]:
    clauses = ["t.tile_uuid IS NOT NULL"]
    params: list[Any] = []
    for name, value in filters:
        if value is None:  # flight_id "" = reference imagery
            clauses.append(f"t.{name} IS NULL")
            continue
        clauses.append(f"t.{name} = %s")
        params.append(value)
    sql = SELECT_TILES + "WHERE " + " AND ".join(clauses) + " ORDER BY t.zoom, t.x, t.y, t.id"
    now = store._clock.now_ns()
    with (
        store._conn() as conn,
        conn.transaction(),
        conn.cursor(name="gdo_iter_tiles") as cur,
    ):
        cur.execute(sql, params)
        for row in cur:
            yield store._row_meta(row, now)[0]


def summary(store: StoreInternals) -> dict[str, Any]:
    """Totals straight from the database (for tools): tiles, bytes, pending,
    counts per source / zoom / persisted freshness, rows without identity."""
    with store._conn() as conn:
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
        "budget_bytes": store.config.disk_budget_bytes,
        "pending_upload": int(row[2]),
        "oldest_capture": None if row[3] is None else row[3].isoformat(),
        "newest_capture": None if row[4] is None else row[4].isoformat(),
        "by_source": groups["source"],
        "by_zoom": groups["zoom"],
        "by_freshness_status": groups["freshness_status"],
        "rows_without_identity": int(legacy[0]) if legacy else 0,
    }
