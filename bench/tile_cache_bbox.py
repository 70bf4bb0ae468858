"""Spatial query: a bbox returning ~100 tiles (10 x 10 at zoom 16) out of 10k,
100k and 1M rows. Target at every size above 10k: p50 <= 2 ms and <= 2x the 10k p50 (the
same-run baseline; the 10k figure itself is a report). ``--quick`` stops at
100k rows (the figure names say which sizes ran).

Rows are bulk-inserted with SQL (the query reads rows only, so the store is
opened without reconciliation, which would drop rows that have no files).
"""

from __future__ import annotations

import math
import random
from typing import Any

from _tile_cache_env import embedded_pg, store_on
from harness import figure, percentile, report, time_each

from gps_denied_onboard.tile_cache.geo import BBox, tile_bbox

ZOOM = 16
SIDE_TILES = 10  # a 10 x 10 tile box: 100 results
FILL = """
INSERT INTO tiles (zoom, x, y, source, flight_id, latitude, longitude, captured_at,
    freshness_status, tile_quality_metadata, file_path, tile_uuid, location_hash,
    content_sha256, disk_bytes, accessed_at)
SELECT %(z)s, %(x0)s + g %% %(side)s, %(y0)s + g / %(side)s, 'satellite', NULL,
    degrees(atan(sinh(pi() * (1 - 2 * ((%(y0)s + g / %(side)s) + 0.5) / %(n)s::float8)))),
    ((%(x0)s + g %% %(side)s) + 0.5) / %(n)s::float8 * 360 - 180,
    now() - (g %% 1000) * interval '1 hour', 'fresh',
    jsonb_build_object('score', (g %% 97) / 97.0), 'bench', gen_random_uuid(),
    gen_random_uuid(), md5(g::text) || md5((g + 1)::text), 16384, now()
FROM generate_series(0, %(rows)s - 1) AS g
"""


def _label(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows >= 1_000_000 else f"{rows // 1000}k"


def run(quick: bool) -> list[dict[str, Any]]:
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    queries = 200 if quick else 500
    p50: dict[int, float] = {}
    p99: dict[int, float] = {}
    total = 0
    with embedded_pg() as (pg, base), store_on(pg, base, "bbox", reconcile=False) as store:
        import psycopg

        x_origin = 1000
        for rows in sizes:
            side = math.ceil(math.sqrt(rows))
            x0, y0 = x_origin, 1000
            x_origin += side + 10
            with psycopg.connect(store.config.dsn, autocommit=True) as conn:
                conn.execute(
                    FILL,
                    {"z": ZOOM, "x0": x0, "y0": y0, "side": side, "rows": rows, "n": 1 << ZOOM},
                )
                conn.execute("VACUUM ANALYZE tiles")
            total += rows
            rng = random.Random(rows)
            full_rows = rows // side

            def one(
                rng: random.Random = rng,
                x0: int = x0,
                y0: int = y0,
                side: int = side,
                full_rows: int = full_rows,
            ) -> int:
                x = x0 + rng.randrange(side - SIDE_TILES)
                y = y0 + rng.randrange(full_rows - SIDE_TILES)
                nw = tile_bbox(ZOOM, x, y)
                se = tile_bbox(ZOOM, x + SIDE_TILES - 1, y + SIDE_TILES - 1)
                eps = 1e-9
                box = BBox(
                    se.min_latitude + eps,
                    nw.min_longitude + eps,
                    nw.max_latitude - eps,
                    se.max_longitude - eps,
                )
                found = store.query_bbox(box, ZOOM, limit=100)
                assert len(found) == SIDE_TILES * SIDE_TILES, len(found)
                return len(found)

            time_each(one, 20)  # warm: plan cache, prepared statement, buffers
            samples = time_each(one, queries)
            p50[rows] = percentile(samples, 50) * 1e3
            p99[rows] = percentile(samples, 99) * 1e3
    small = sizes[0]
    out = [
        report(
            f"tile_cache_bbox_p50_{_label(small)}",
            p50[small],
            "ms",
            None,
            "reference size: the same-run baseline of the larger tables' figures",
            rows_in_table=small,
            p99_ms=round(p99[small], 4),
            results=100,
        )
    ]
    for rows in sizes[1:]:
        growth = p50[rows] / p50[small]
        out.append(
            figure(
                f"tile_cache_bbox_p50_{_label(rows)}",
                p50[rows],
                "ms",
                p50[small],
                f"p50 <= 2 ms and <= 2x the {_label(small)}-row p50",
                p50[rows] <= 2.0 and growth <= 2.0,
                rows_in_table=sum(s for s in sizes if s <= rows),
                p99_ms=round(p99[rows], 4),
                results=100,
            )
        )
    return out
