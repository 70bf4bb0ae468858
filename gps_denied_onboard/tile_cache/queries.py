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
from gps_denied_onboard.tile_cache.model import JsonObject, TileMetadata, tile_metadata
from gps_denied_onboard.tile_cache.validation import Prepared

# Times come back as epoch microseconds, the quality JSON as text and its
# ranking score ready (model.quality_score: clamped to 0..1, 0.5 when missing
# or not a number): all several times cheaper to load than datetimes, parsed
# jsonb and per-row Python (bbox hot path).
SELECT_TILES: Final = (
    "SELECT t.tile_uuid, t.zoom, t.x, t.y, t.source, t.flight_id, t.latitude, t.longitude, "
    "(extract(epoch FROM t.captured_at) * 1000000)::int8, t.tile_quality_metadata::text, "
    "t.content_sha256, COALESCE(t.disk_bytes, 0), t.location_hash, "
    "(extract(epoch FROM t.uploaded_at) * 1000000)::int8, "
    "COALESCE(v.agree, 0), COALESCE(v.disagree, 0), "
    "COALESCE(CASE WHEN jsonb_typeof(t.tile_quality_metadata -> 'score') = 'number' "
    "THEN least(greatest((t.tile_quality_metadata ->> 'score')::float8, 0), 1) END, 0.5) "
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
    uploaded = row[13]
    deadlines = policy.deadlines(captured, row[6], row[7])
    meta = tile_metadata(  # TileMetadata's fields, in order
        row[0],  # tile_id
        row[1],  # zoom
        row[2],  # x
        row[3],  # y
        row[4],  # source
        row[5],  # flight_id
        row[6],  # latitude
        row[7],  # longitude
        captured,  # captured_at_ns
        deadlines.status_at(now_ns),  # freshness_status
        row[10],  # content_sha256
        row[11],  # disk_bytes
        row[12],  # location_hash
        JsonObject(row[9]),  # quality
        None if uploaded is None else uploaded * 1_000,  # uploaded_at_ns
        row[14],  # votes_agree
        row[15],  # votes_disagree
        row[16],  # quality_score
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
