"""Durable writes: ``put_tile`` / ``put_tiles`` against a bare loop of the same
bytes written to a temp file, fsync'ed and renamed. Target: >= 50% of the bare
loop's throughput.

The store does more per tile than the bare loop (a JSON sidecar with its own
fsync, a directory fsync, a PostgreSQL commit); ``put_tiles`` shares the
directory fsyncs and the commit across a batch, which is how reference
imagery is bulk-loaded. Tiles come as 16-tile column strips (a region in
x-major order), so a batch of 32 touches two tile directories.

The bare loop's renames are not durable (no directory fsync), the store's
are: each figure also gives the ratio to a bare loop that fsyncs the directory
after each rename (``durable_baseline``, ``ratio_durable_baseline``), the
same durability for the JPEG alone. ``ok`` stays against the bare loop.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from _tile_cache_env import embedded_pg, jpeg_bytes, store_on
from harness import figure

from gps_denied_onboard.durable import fsync_dir
from gps_denied_onboard.tile_cache.model import TileWrite

ZOOM = 17
BATCH = 32


def bare_loop(directory: Path, payloads: list[bytes], *, durable_rename: bool = False) -> float:
    """write + fsync + rename per file (then fsync the directory with
    ``durable_rename``); returns seconds."""
    directory.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for i, data in enumerate(payloads):
        tmp = directory / f".{i}.jpg.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, directory / f"{i}.jpg")
        if durable_rename:
            fsync_dir(directory)
    return time.perf_counter() - t0


def writes(payloads: list[bytes], x0: int) -> list[TileWrite]:
    return [
        TileWrite(
            zoom=ZOOM,
            x=x0 + i // 16,
            y=50_000 + i % 16,
            source="satellite",
            data=data,
            content_sha256=hashlib.sha256(data).hexdigest(),
        )
        for i, data in enumerate(payloads)
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    n = 256 if quick else 1024
    payloads = [jpeg_bytes(i) for i in range(n)]
    with embedded_pg() as (pg, base), store_on(pg, base, "write") as store:
        single = writes(payloads, 70_000)
        batched = writes(payloads, 71_000)
        t_bare_1 = bare_loop(base / "bare1", payloads)
        t_durable_1 = bare_loop(base / "durable1", payloads, durable_rename=True)
        t0 = time.perf_counter()
        for w in single:
            store.put_tile(w)
        t_single = time.perf_counter() - t0
        t_durable_2 = bare_loop(base / "durable2", payloads, durable_rename=True)
        t_bare_2 = bare_loop(base / "bare2", payloads)
        t0 = time.perf_counter()
        for i in range(0, n, BATCH):
            store.put_tiles(batched[i : i + BATCH])
        t_batch = time.perf_counter() - t0
        assert store.stats().tiles == 2 * n
    bare = n / ((t_bare_1 + t_bare_2) / 2)
    durable = n / ((t_durable_1 + t_durable_2) / 2)
    single_rate, batch_rate = n / t_single, n / t_batch
    extra = {"tiles": n, "tile_bytes": len(payloads[0]), "durable_baseline": round(durable, 6)}
    return [
        figure(
            "tile_cache_write_put_tile_throughput",
            single_rate,
            "tiles/s",
            bare,
            ">= 0.5x bare write+fsync+rename",
            single_rate >= 0.5 * bare,
            ratio_durable_baseline=round(single_rate / durable, 4),
            **extra,
        ),
        figure(
            f"tile_cache_write_put_tiles_batch{BATCH}_throughput",
            batch_rate,
            "tiles/s",
            bare,
            ">= 0.5x bare write+fsync+rename",
            batch_rate >= 0.5 * bare,
            ratio_durable_baseline=round(batch_rate / durable, 4),
            **extra,
        ),
    ]
