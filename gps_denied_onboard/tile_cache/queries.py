"""The store's SQL and the conversions between its rows and the model.

Everything here is pure: statements as constants, rows in, values out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from psycopg.types.json import Jsonb

from gps_denied_onboard.clock import ns_to_datetime
from gps_denied_onboard.tile_cache import freshness as fr
from gps_denied_onboard.tile_cache.model import JsonObject, TileMetadata, quality_score
from gps_denied_onboard.tile_cache.validation import Prepared

# Times come back as epoch microseconds and the quality JSON as text: both are
# several times cheaper to load than datetimes and parsed jsonb (bbox hot path).
SELECT_TILES: Final = (
    "SELECT t.tile_uuid, t.zoom, t.x, t.y, t.source, t.flight_id, t.latitude, t.longitude, "
    "(extract(epoch FROM t.captured_at) * 1000000)::int8, t.tile_quality_metadata::text, "
    "t.content_sha256, t.disk_bytes, t.location_hash, "
    "(extract(epoch FROM t.uploaded_at) * 1000000)::int8, "
    "COALESCE(v.agree, 0), COALESCE(v.disagree, 0), "
    "CASE WHEN jsonb_typeof(t.tile_quality_metadata -> 'score') = 'number' "
    "THEN (t.tile_quality_metadata ->> 'score')::float8 END "
    "FROM tiles t LEFT JOIN tile_votes v ON v.location_hash = t.location_hash "
)
INSERT_TILE: Final = (
    "INSERT INTO tiles (zoom, x, y, source, flight_id, latitude, longitude, captured_at, "
    "freshness_status, tile_quality_metadata, file_path, created_at, updated_at, tile_uuid, "
    "location_hash, content_sha256, disk_bytes, accessed_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "RETURNING (SELECT ARRAY[v.agree, v.disagree] FROM tile_votes v "
    "WHERE v.location_hash = tiles.location_hash)"
)
PENDING: Final = "t.flight_id IS NOT NULL AND t.uploaded_at IS NULL"
#: Waits (in a transaction) until every transaction that wrote ``tiles`` has
#: ended: SHARE conflicts with the ROW EXCLUSIVE lock each write holds until
#: it commits or rolls back.
WAIT_FOR_WRITERS: Final = "LOCK TABLE tiles IN SHARE MODE"


def row_meta(
    row: Sequence[Any], policy: fr.FreshnessPolicy, now_ns: int
) -> tuple[TileMetadata, fr.Deadlines]:
    """A :data:`SELECT_TILES` row as metadata (freshness at ``now_ns``) and
    the tile's freshness deadlines under ``policy``."""
    captured = row[8] * 1_000
    deadlines = policy.deadlines(captured, row[6], row[7])
    meta = TileMetadata(
        tile_id=row[0],
        zoom=row[1],
        x=row[2],
        y=row[3],
        source=row[4],
        flight_id=row[5],
        latitude=row[6],
        longitude=row[7],
        captured_at_ns=captured,
        freshness_status=deadlines.status_at(now_ns),
        quality=JsonObject(row[9]),
        content_sha256=row[10],
        disk_bytes=int(row[11] or 0),
        location_hash=row[12],
        uploaded_at_ns=None if row[13] is None else row[13] * 1_000,
        votes_agree=int(row[14]),
        votes_disagree=int(row[15]),
        quality_score=quality_score(row[16]),
    )
    return meta, deadlines


def tally(row: Sequence[Any] | None) -> tuple[int, int]:
    """(agree, disagree) from the INSERT's RETURNING (NULL: no votes yet)."""
    pair = row[0] if row else None
    return (int(pair[0]), int(pair[1])) if pair else (0, 0)


def insert_row(p: Prepared, status: str, now: datetime) -> tuple[Any, ...]:
    """Parameters of :data:`INSERT_TILE` for one prepared tile."""
    m = p.meta
    return (
        m.zoom,
        m.x,
        m.y,
        m.source,
        m.flight_id,
        m.latitude,
        m.longitude,
        ns_to_datetime(m.captured_at_ns),
        status,
        Jsonb(dict(m.quality)),
        p.rel_jpeg,
        now,
        now,
        m.tile_id,
        m.location_hash,
        m.content_sha256,
        m.disk_bytes,
        now,
    )


def rank_key(meta: TileMetadata) -> tuple[int, float, int, int, int]:
    """Best first: freshness, quality score, net votes, newest capture, id."""
    return (
        fr.RANK.get(meta.freshness_status, 1),
        -meta.quality_score,
        meta.votes_disagree - meta.votes_agree,
        -meta.captured_at_ns,
        meta.tile_id.int,
    )
