"""Read-hot path: ``get_tile`` (pixels + metadata) against a bare ``open().read()``
of the same file. Target: p50 <= 2x, p99 <= 5x the bare read."""

from __future__ import annotations

import hashlib
import random
from typing import Any

from _tile_cache_env import embedded_pg, jpeg_bytes, store_on
from harness import figure, interleaved, percentile

from gps_denied_onboard.tile_cache import pixels
from gps_denied_onboard.tile_cache.identity import derive_tile_id
from gps_denied_onboard.tile_cache.model import TileWrite

ZOOM = 17


def run(quick: bool) -> list[dict[str, Any]]:
    tiles = 300 if quick else 1000
    reads = 3000 if quick else 20000
    with embedded_pg() as (pg, base), store_on(pg, base, "read") as store:
        keys = [(70000 + i % 40, 45000 + i // 40) for i in range(tiles)]
        payloads = [jpeg_bytes(i) for i in range(tiles)]
        writes = [
            TileWrite(
                zoom=ZOOM,
                x=x,
                y=y,
                source="satellite",
                data=data,
                content_sha256=hashlib.sha256(data).hexdigest(),
            )
            for (x, y), data in zip(keys, payloads, strict=True)
        ]
        for i in range(0, tiles, 100):
            store.put_tiles(writes[i : i + 100])
        paths = {
            (x, y): str(
                store.root
                / pixels.relative_jpeg_path(ZOOM, x, derive_tile_id(ZOOM, x, y, "satellite"))
            )
            for x, y in keys
        }
        rng = random.Random(1)
        order = [rng.choice(keys) for _ in range(reads)]
        for k in keys:  # warm the index and the page cache alike
            store.get_tile(ZOOM, k[0], k[1], "satellite")
        it_a = iter(order)
        it_b = iter(order)

        def via_store() -> object:
            x, y = next(it_a)
            return store.get_tile(ZOOM, x, y, "satellite")

        def bare() -> object:
            with open(paths[next(it_b)], "rb") as fh:
                return fh.read()

        t_store, t_bare = interleaved(via_store, bare, reads)
        stats = store.stats()
    p50s, p50b = percentile(t_store, 50) * 1e6, percentile(t_bare, 50) * 1e6
    p99s, p99b = percentile(t_store, 99) * 1e6, percentile(t_bare, 99) * 1e6
    extra = {
        "tiles": tiles,
        "reads": reads,
        "tile_bytes": len(jpeg_bytes(0)),
        "index_hits": stats.index_hits,
    }
    return [
        figure(
            "tile_cache_read_hot_p50",
            p50s,
            "us",
            p50b,
            "<= 2x bare open().read()",
            p50s <= 2 * p50b,
            **extra,
        ),
        figure(
            "tile_cache_read_hot_p99",
            p99s,
            "us",
            p99b,
            "<= 5x bare open().read()",
            p99s <= 5 * p99b,
            **extra,
        ),
    ]
