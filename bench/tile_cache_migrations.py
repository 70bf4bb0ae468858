"""Schema migrations: apply every revision to an empty database (< 5 s) and the
no-op at head (< 100 ms). The baseline is one connect + ``SELECT 1`` round trip,
the least any migration check can cost."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from _tile_cache_env import LOG, embedded_pg
from harness import figure, percentile

from gps_denied_onboard.tile_cache.migrations import apply_migrations, head_revision


def _connect_select(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT 1").fetchone()


def run(quick: bool) -> list[dict[str, Any]]:
    rounds = 3 if quick else 10
    head_revision()  # imports and script parsing, as in a running process
    apply_s: list[float] = []
    noop_s: list[float] = []
    base_s: list[float] = []
    with embedded_pg() as (pg, _base):
        for i in range(rounds):
            dsn = pg.create_database(f"mig{i}")
            t0 = time.perf_counter()
            result = apply_migrations(dsn, logger=LOG)
            t1 = time.perf_counter()
            assert result.applied
            for _ in range(10):
                t2 = time.perf_counter()
                assert not apply_migrations(dsn, logger=LOG).applied
                t3 = time.perf_counter()
                _connect_select(dsn)
                t4 = time.perf_counter()
                noop_s.append(t3 - t2)
                base_s.append(t4 - t3)
            apply_s.append(t1 - t0)
    apply_p50 = percentile(apply_s, 50) * 1e3
    noop_p50 = percentile(noop_s, 50) * 1e3
    base_p50 = percentile(base_s, 50) * 1e3
    return [
        figure(
            "tile_cache_migrations_apply_empty",
            apply_p50,
            "ms",
            base_p50,
            "< 5000 ms",
            max(apply_s) * 1e3 < 5000,
            worst_ms=round(max(apply_s) * 1e3, 3),
            rounds=rounds,
        ),
        figure(
            "tile_cache_migrations_noop_at_head",
            noop_p50,
            "ms",
            base_p50,
            "< 100 ms",
            max(noop_s) * 1e3 < 100,
            worst_ms=round(max(noop_s) * 1e3, 3),
            calls=len(noop_s),
        ),
    ]
