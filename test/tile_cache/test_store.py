"""PostgresFilesystemStore against a real PostgreSQL and a real filesystem."""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from dataclasses import fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gps_denied_onboard.clock import ManualClock, datetime_to_ns
from gps_denied_onboard.log import parse_event
from gps_denied_onboard.records import MemorySink
from gps_denied_onboard.tile_cache import pixels
from gps_denied_onboard.tile_cache.config import TileCacheConfig
from gps_denied_onboard.tile_cache.errors import (
    TileMetadataError,
    TileNotFound,
    TilePixelError,
    TileValidationError,
)
from gps_denied_onboard.tile_cache.geo import BBox, tile_bbox, tile_center
from gps_denied_onboard.tile_cache.identity import derive_location_hash, derive_tile_id
from gps_denied_onboard.tile_cache.migrations import downgrade_migrations
from gps_denied_onboard.tile_cache.model import (
    TileMetadata,
    TileWrite,
    quality_score,
    tile_metadata,
)
from gps_denied_onboard.tile_cache.protocols import TileMetadataStore, TilePixelStore
from gps_denied_onboard.tile_cache.store import PostgresFilesystemStore

from .conftest import make_jpeg, sha

FLIGHT = "6f1c2a7e-93b4-4d0a-9e51-0c8d2f4b7a13"
DAY_NS = 86_400 * 1_000_000_000
Z = 15
META_SAMPLE = TileMetadata(
    tile_id=uuid.uuid4(),
    zoom=Z,
    x=1,
    y=2,
    source="satellite",
    flight_id=None,
    latitude=47.0,
    longitude=8.0,
    captured_at_ns=10**18,
    freshness_status="fresh",
    content_sha256="ab" * 32,
    disk_bytes=10,
    location_hash=uuid.uuid4(),
    quality={"score": 0.25},
    uploaded_at_ns=None,
    votes_agree=1,
    votes_disagree=2,
    quality_score=0.25,
)


def tile(
    x: int = 17437, y: int = 11371, *, seed: int = 0, source: str = "satellite", **kw: Any
) -> TileWrite:
    data = kw.pop("data", None) or make_jpeg(seed)
    return TileWrite(
        zoom=kw.pop("zoom", Z),
        x=x,
        y=y,
        source=source,
        data=data,
        content_sha256=kw.pop("content_sha256", None) or sha(data),
        **kw,
    )


def files_under(root: Path) -> dict[str, bytes]:
    """Every tile file under ``root`` (the owner's lock file is not a tile file)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".tile_cache.lock"
    }


def count_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM tiles").fetchone()
    return int(row[0]) if row else 0


def ns(*args: int) -> int:
    return datetime_to_ns(datetime(*args, tzinfo=timezone.utc))  # type: ignore[misc]


# ---------------------------------------------------------------- basics
def test_store_implements_both_protocols(store: PostgresFilesystemStore) -> None:
    assert isinstance(store, TileMetadataStore)
    assert isinstance(store, TilePixelStore)


def test_put_then_get_round_trips_bytes_metadata_and_sidecar(
    store: PostgresFilesystemStore, sink: MemorySink, manual_clock: ManualClock
) -> None:
    write = tile(seed=1, quality={"score": 0.8, "gsd_m": 0.3})
    meta = store.put_tile(write)
    assert meta.tile_id == derive_tile_id(Z, 17437, 11371, "satellite")
    assert meta.location_hash == derive_location_hash(Z, 17437, 11371)
    assert (meta.latitude, meta.longitude) == tile_center(Z, 17437, 11371)
    assert meta.freshness_status == "fresh" and not meta.pending_upload
    got = store.get_tile(Z, 17437, 11371, "satellite")
    assert got.data == write.data
    assert got.meta == meta
    jpeg = store.root / "tiles" / str(Z) / "17437" / f"{meta.tile_id}.jpg"
    sidecar = json.loads(jpeg.with_suffix(".json").read_text())
    assert jpeg.read_bytes() == write.data
    assert sidecar["content_sha256"] == write.content_sha256
    assert sidecar["tile_quality_metadata"] == {"score": 0.8, "gsd_m": 0.3}
    assert meta.disk_bytes == jpeg.stat().st_size + jpeg.with_suffix(".json").stat().st_size
    (record,) = sink.of_kind("c6.write")
    assert record.payload["tile_id"] == str(meta.tile_id)
    assert record.stamp_ns == manual_clock.now_ns()
    assert store.stats().tiles == 1 and store.stats().disk_bytes == meta.disk_bytes


def test_read_by_id_metadata_and_find(store: PostgresFilesystemStore) -> None:
    meta = store.put_tile(tile(seed=2))
    assert store.read_tile(str(meta.tile_id)).data == make_jpeg(2)
    assert store.get_metadata(meta.tile_id) == meta
    assert store.find(Z, 17437, 11371, "satellite") == meta
    assert store.find(Z, 17437, 11371, "naip") is None
    with pytest.raises(TileNotFound):
        store.get_tile(Z, 1, 1, "satellite")
    with pytest.raises(TileNotFound):
        store.read_tile(uuid.uuid4())


def test_hot_reads_make_no_database_round_trip(store: PostgresFilesystemStore) -> None:
    store.put_tile(tile(seed=3))
    store.get_tile(Z, 17437, 11371, "satellite")

    def no_db(*a: object, **k: object) -> None:
        raise AssertionError("database touched on the read-hot path")

    real = store._pool.connection
    store._pool.connection = no_db  # type: ignore[method-assign]
    try:
        for _ in range(50):
            assert store.get_tile(Z, 17437, 11371, "satellite").data == make_jpeg(3)
    finally:
        store._pool.connection = real  # type: ignore[method-assign]
    assert store.stats().index_hits >= 50


def test_mmap_handle_is_read_only_and_closes(store: PostgresFilesystemStore) -> None:
    meta = store.put_tile(tile(seed=4))
    with store.open_pixels(meta.tile_id) as handle:
        assert bytes(handle.view) == make_jpeg(4)
        assert len(handle) == len(make_jpeg(4))
        with pytest.raises(TypeError):
            handle.view[0] = 0
    with pytest.raises(TilePixelError):
        _ = handle.view


def test_same_cell_in_two_flights_and_two_sources_are_four_tiles(
    store: PostgresFilesystemStore,
) -> None:
    ids = {
        store.put_tile(tile(seed=5, source="satellite")).tile_id,
        store.put_tile(tile(seed=6, source="naip")).tile_id,
        store.put_tile(tile(seed=7, source="in_flight", flight_id=FLIGHT)).tile_id,
        store.put_tile(tile(seed=8, source="in_flight", flight_id=str(uuid.uuid4()))).tile_id,
    }
    assert len(ids) == 4
    assert store.get_tile(Z, 17437, 11371, "in_flight", FLIGHT).data == make_jpeg(7)


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"content_sha256": "0" * 64}, "content_sha256"),
        ({"content_sha256": "nothex"}, "content_sha256"),
        ({"data": b"GIF89a not a jpeg at all"}, "data"),
        ({"data": b"\xff\xd8\xff\xe0truncated"}, "data"),
        ({"zoom": 25}, "zoom"),
        ({"x": 1 << 15}, "x"),
        ({"y": -1}, "y"),
        ({"source": "../../etc"}, "source"),
        ({"source": "sat/../../x"}, "source"),
        ({"flight_id": "../../../etc/passwd"}, "flight_id"),
        ({"latitude": 10.0, "longitude": 10.0}, "latlon"),
        ({"latitude": 10.0}, "latlon"),
        ({"captured_at_ns": -5}, "captured_at_ns"),
    ],
)
def test_bad_input_is_refused_before_any_io(
    store: PostgresFilesystemStore,
    tile_config: TileCacheConfig,
    sink: MemorySink,
    change: dict[str, Any],
    field: str,
) -> None:
    write = tile(seed=9)
    if "data" in change and "content_sha256" not in change:
        change = {**change, "content_sha256": sha(change["data"])}
    bad = replace(write, **change)
    before = files_under(store.root)
    with pytest.raises(TileValidationError) as info:
        store.put_tile(bad)
    assert info.value.field == field
    assert files_under(store.root) == before
    assert count_rows(tile_config.dsn) == 0
    (failed,) = sink.of_kind("c6.write_failed")
    assert failed.payload["reason"] == "validation"


def test_oversize_tile_is_refused(migrated_dsn: str, tmp_path: Path, store_factory: Any) -> None:
    small = store_factory(
        TileCacheConfig(dsn=migrated_dsn, tile_root=tmp_path, max_tile_bytes=1000)
    )
    with pytest.raises(TileValidationError, match="limit 1000"):
        small.put_tile(tile(data=make_jpeg(1, size=2000)))


def test_duplicate_natural_key_writes_nothing_and_keeps_old_files(
    store: PostgresFilesystemStore, sink: MemorySink
) -> None:
    first = store.put_tile(tile(seed=10))
    before = files_under(store.root)
    stat_before = {p: p.stat().st_mtime_ns for p in store.root.rglob("*") if p.is_file()}
    with pytest.raises(TileMetadataError, match="already stored") as info:
        store.put_tile(tile(seed=11))
    assert info.value.sqlstate == "23505"
    assert files_under(store.root) == before
    assert {p: p.stat().st_mtime_ns for p in store.root.rglob("*") if p.is_file()} == stat_before
    assert store.get_tile(Z, 17437, 11371, "satellite").data == make_jpeg(10)
    assert store.stats().tiles == 1
    (failed,) = sink.of_kind("c6.write_failed")
    assert failed.payload["reason"] == "duplicate"
    assert failed.payload["tile_id"] == str(first.tile_id)


def test_commit_failure_after_the_write_is_compensated(
    store: PostgresFilesystemStore, tile_config: TileCacheConfig, sink: MemorySink
) -> None:
    # A deferred constraint trigger fails at COMMIT, after the files were written.
    with psycopg.connect(tile_config.dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'injected commit failure'; END $$"
        )
        conn.execute(
            "CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT ON tiles "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_at_commit()"
        )
    with pytest.raises(TileMetadataError, match="injected commit failure"):
        store.put_tile(tile(seed=12))
    assert files_under(store.root) == {}
    assert count_rows(tile_config.dsn) == 0
    assert store.stats().tiles == 0
    assert sink.of_kind("c6.write_failed")[0].payload["reason"] == "database"


def test_unwritable_tile_root_rolls_the_row_back(
    store: PostgresFilesystemStore, tile_config: TileCacheConfig
) -> None:
    if os.geteuid() == 0:
        blocker = store.root / "tiles" / str(Z)
        blocker.write_bytes(b"a file where a directory must go")
    else:  # pragma: no cover - non-root machines
        (store.root / "tiles").chmod(0o500)
    with pytest.raises(TilePixelError):
        store.put_tile(tile(seed=13))
    assert count_rows(tile_config.dsn) == 0


def test_a_failed_directory_fsync_takes_the_committed_tile_back(
    store: PostgresFilesystemStore,
    tile_config: TileCacheConfig,
    sink: MemorySink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the COMMIT is on its way while the directory is fsync'ed: when that fsync
    # fails, the committed row and the files are removed again
    def failing(paths: Any) -> None:
        raise OSError(5, "injected directory fsync failure")

    monkeypatch.setattr(pixels, "sync_dirs", failing)
    with pytest.raises(TilePixelError, match="injected directory fsync failure"):
        store.put_tile(tile(seed=14))
    monkeypatch.undo()
    assert files_under(store.root) == {}
    assert count_rows(tile_config.dsn) == 0
    assert store.stats().tiles == 0
    assert sink.of_kind("c6.write_failed")[0].payload["reason"] == "filesystem"
    store.put_tile(tile(seed=14))  # and the connection is fit for the next write
    assert count_rows(tile_config.dsn) == 1


def test_a_failed_rename_leaves_neither_files_nor_row(
    store: PostgresFilesystemStore, tile_config: TileCacheConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the JPEG is renamed into place, the sidecar's rename fails: both go
    real_rename = os.rename
    calls: list[str] = []

    def rename(src: Any, dst: Any) -> None:
        calls.append(str(dst))
        if len(calls) == 2:
            raise OSError(28, "injected rename failure", str(dst))
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(TilePixelError, match="injected rename failure"):
        store.put_tile(tile(seed=18))
    monkeypatch.undo()
    assert calls[0].endswith(".jpg") and calls[1].endswith(".json")
    assert files_under(store.root) == {}
    assert count_rows(tile_config.dsn) == 0
    assert store.stats().tiles == 0


def test_a_duplicate_row_without_files_leaves_no_file(
    store: PostgresFilesystemStore, tile_config: TileCacheConfig
) -> None:
    # no file in the way, so the new files are renamed into place before the
    # database's verdict comes back; the duplicate then removes them
    first = store.put_tile(tile(seed=15))
    for path in store.root.rglob(f"{first.tile_id}.*"):
        path.unlink()
    with pytest.raises(TileMetadataError, match="already stored") as info:
        store.put_tile(tile(seed=16))
    assert info.value.sqlstate == "23505"
    assert files_under(store.root) == {}
    assert count_rows(tile_config.dsn) == 1


def test_batch_is_all_or_nothing(
    store: PostgresFilesystemStore, tile_config: TileCacheConfig
) -> None:
    store.put_tile(tile(x=2, seed=1))
    batch = [tile(x=1, seed=2), tile(x=2, seed=3), tile(x=3, seed=4)]
    with pytest.raises(TileMetadataError):
        store.put_tiles(batch)
    assert count_rows(tile_config.dsn) == 1
    assert sorted(p.name for p in store.root.rglob("*.jpg")) == [
        f"{derive_tile_id(Z, 2, 11371, 'satellite')}.jpg"
    ]
    metas = store.put_tiles([tile(x=1, seed=2), tile(x=3, seed=4), tile(x=4, y=1, seed=5)])
    assert [m.x for m in metas] == [1, 3, 4]
    assert store.stats().tiles == 4


# -------------------------------------------------------------- queries
def test_bbox_query_returns_intersecting_tiles_best_first(
    store: PostgresFilesystemStore, manual_clock: ManualClock
) -> None:
    x0, y0 = 17437, 11371
    now = manual_clock.now_ns()
    low = store.put_tile(tile(x0, y0, seed=1, quality={"score": 0.2}))
    high = store.put_tile(tile(x0 + 1, y0, seed=2, quality={"score": 0.9}))
    voted = store.put_tile(tile(x0, y0 + 1, seed=3, quality={"score": 0.2}))
    older = store.put_tile(
        tile(x0 + 1, y0 + 1, seed=4, quality={"score": 0.2}, captured_at_ns=now - DAY_NS)
    )
    store.put_tile(tile(x0 + 5, y0, seed=5))  # outside
    store.put_tile(tile(x0 // 2, y0 // 2, seed=6, zoom=14))  # other zoom
    store.record_vote(voted.location_hash, agree=True)
    a, b = tile_bbox(Z, x0, y0), tile_bbox(Z, x0 + 1, y0 + 1)
    box = BBox(
        b.min_latitude + 1e-7, a.min_longitude + 1e-7, a.max_latitude - 1e-7, b.max_longitude - 1e-7
    )
    got = store.query_bbox(box, Z)
    assert [m.tile_id for m in got] == [high.tile_id, voted.tile_id, low.tile_id, older.tile_id]
    assert got[1].votes_agree == 1
    assert [m.tile_id for m in store.query_bbox(box, Z, limit=2)] == [high.tile_id, voted.tile_id]
    assert store.query_bbox(box, 16) == []


@pytest.mark.parametrize(
    "quality",
    [{}, {"score": 0.3}, {"score": 1.7}, {"score": -3}, {"score": "high"}, {"score": True}],
)
def test_database_reads_give_back_exactly_what_the_write_returned(
    store_factory: Any, tile_config: TileCacheConfig, quality: dict[str, Any]
) -> None:
    # the query path builds metadata from SQL-side values (the ranking score
    # clamped and defaulted in SQL, no per-field dataclass __init__): it must
    # equal what put_tile computed in Python, field for field
    writer = store_factory(tile_config)
    put = writer.put_tile(tile(seed=17, quality=quality, flight_id=FLIGHT))
    assert put.quality_score == quality_score(quality.get("score"))
    writer.close()
    reader = store_factory(replace(tile_config, pool_max=1))  # a cold index: SQL only
    (found,) = reader.query_bbox(tile_bbox(Z, 17437, 11371), Z)
    for meta in (found, reader.get_metadata(put.tile_id), *reader.list_pending_uploads()):
        assert replace(meta, quality=dict(meta.quality)) == replace(put, quality=dict(quality))


def test_tile_metadata_is_the_dataclass_built_faster() -> None:
    values = [getattr(META_SAMPLE, f.name) for f in fields(TileMetadata)]
    built = tile_metadata(*values)
    assert type(built) is TileMetadata
    assert built == TileMetadata(*values) == META_SAMPLE
    with pytest.raises(ValueError):
        tile_metadata(*values[:-1])
    with pytest.raises(AttributeError):
        built.zoom = 3  # type: ignore[misc]


def test_bbox_query_rejects_absurd_requests(store: PostgresFilesystemStore) -> None:
    with pytest.raises(TileValidationError):
        store.query_bbox(BBox(-80.0, -179.0, 80.0, 179.0), 20)
    with pytest.raises(TileValidationError):
        store.query_bbox(BBox(0.0, 0.0, 1.0, 1.0), 30)


def test_votes_are_tallied_per_cell_and_reach_the_hot_path(
    store: PostgresFilesystemStore, sink: MemorySink
) -> None:
    sat = store.put_tile(tile(seed=1))
    naip = store.put_tile(tile(seed=2, source="naip"))
    store.get_tile(Z, 17437, 11371, "satellite")  # now indexed
    store.record_vote(sat.location_hash, agree=True)
    tally = store.record_vote(str(sat.location_hash), agree=False)
    assert (tally.agree, tally.disagree) == (1, 1)
    store.record_vote(sat.location_hash, agree=True)
    assert store.get_tile(Z, 17437, 11371, "satellite").meta.votes_agree == 2
    assert store.get_metadata(naip.tile_id).votes_disagree == 1
    assert len(sink.of_kind("c6.vote")) == 3


# ------------------------------------------------------------ freshness
def test_freshness_follows_sector_rules_and_the_injected_clock(
    store: PostgresFilesystemStore, manual_clock: ManualClock, tile_config: TileCacheConfig
) -> None:
    manual_clock.set_ns(ns(2026, 5, 12))
    captured = ns(2026, 1, 1)
    front = store.put_tile(tile(1000, 1000, seed=1, captured_at_ns=captured))
    rear = store.put_tile(tile(2000, 2000, seed=2, captured_at_ns=captured))
    elsewhere = store.put_tile(tile(3000, 3000, seed=3, captured_at_ns=captured))
    store.get_tile(Z, 1000, 1000, "satellite")  # index it before the sector exists
    store.set_sector("front", "active_conflict", tile_bbox(Z, 1000, 1000))
    store.set_sector("rear", "stable_rear", tile_bbox(Z, 2000, 2000))

    def statuses() -> tuple[str, str, str]:
        return (
            store.get_tile(Z, 1000, 1000, "satellite").meta.freshness_status,
            store.get_metadata(rear.tile_id).freshness_status,
            store.get_metadata(elsewhere.tile_id).freshness_status,
        )

    assert statuses() == ("fresh", "fresh", "fresh")
    manual_clock.set_ns(ns(2026, 7, 1))  # exactly six calendar months
    assert statuses() == ("rejected", "fresh", "fresh")
    assert store.query_bbox(tile_bbox(Z, 1000, 1000), Z) == []
    assert [
        m.tile_id for m in store.query_bbox(tile_bbox(Z, 1000, 1000), Z, include_rejected=True)
    ] == [front.tile_id]
    manual_clock.set_ns(ns(2027, 1, 1))
    assert statuses() == ("rejected", "downgraded", "fresh")
    # the persisted column agrees with the in-memory evaluation
    assert store.refresh_freshness() == 2
    with psycopg.connect(tile_config.dsn) as conn:
        persisted = dict(conn.execute("SELECT tile_uuid, freshness_status FROM tiles").fetchall())
    assert persisted == {
        front.tile_id: "rejected",
        rear.tile_id: "downgraded",
        elsewhere.tile_id: "fresh",
    }


# ------------------------------------------------------------ LRU, uploads
def test_lru_eviction_keeps_recent_and_pending_tiles(
    tile_config: TileCacheConfig,
    store_factory: Any,
    manual_clock: ManualClock,
    sink: MemorySink,
) -> None:
    store = store_factory(tile_config)
    pending = store.put_tile(tile(1, 1, seed=1, source="in_flight", flight_id=FLIGHT))
    manual_clock.advance_s(1)
    old = store.put_tile(tile(2, 2, seed=2))
    manual_clock.advance_s(1)
    used = store.put_tile(tile(3, 3, seed=3))
    manual_clock.advance_s(1)
    fourth = store.put_tile(tile(4, 4, seed=4))
    manual_clock.advance_s(1)
    store.get_tile(Z, 3, 3, "satellite")  # touch: "used" is now newer than "fourth"
    manual_clock.advance_s(1)
    store.put_tile(tile(5, 5, seed=5))
    total = store.stats().disk_bytes
    store.close()  # flushes the buffered access time
    # the budget shrinks across a restart: exactly "old" must go, then "fourth"
    smaller = replace(tile_config, disk_budget_bytes=total - old.disk_bytes)
    store = store_factory(smaller)
    result = store.evict_to_budget()
    assert (result.evicted, result.freed_bytes) == (1, old.disk_bytes)
    assert store.find(Z, 2, 2, "satellite") is None
    assert not (store.root / "tiles" / str(Z) / "2" / f"{old.tile_id}.jpg").exists()
    manual_clock.advance_s(1)
    store.put_tile(tile(6, 6, seed=6))  # over budget again: evicts the next LRU tile
    assert store.stats().disk_bytes <= smaller.disk_budget_bytes
    assert store.find(Z, 4, 4, "satellite") is None
    assert store.find(Z, 3, 3, "satellite") == used
    assert store.get_metadata(pending.tile_id).pending_upload
    evicted = [uuid.UUID(r.payload["tile_id"]) for r in sink.of_kind("c6.evict")]
    assert evicted == [old.tile_id, fourth.tile_id]
    assert store.stats().evictions == 2  # counted since this construction


def test_pending_tiles_are_never_evicted_even_over_budget(
    migrated_dsn: str, tmp_path: Path, store_factory: Any
) -> None:
    store = store_factory(
        TileCacheConfig(dsn=migrated_dsn, tile_root=tmp_path / "t", disk_budget_bytes=100)
    )
    for i in range(3):
        store.put_tile(tile(i, i, seed=i, source="in_flight", flight_id=FLIGHT))
    result = store.evict_to_budget()
    assert result.evicted == 0 and store.stats().tiles == 3


def test_access_times_are_written_in_batches(
    migrated_dsn: str, tmp_path: Path, store_factory: Any, manual_clock: ManualClock
) -> None:
    cfg = TileCacheConfig(dsn=migrated_dsn, tile_root=tmp_path / "t", access_flush_batch=10)
    store = store_factory(cfg)
    metas = [store.put_tile(tile(i, 0, seed=i)) for i in range(10)]
    inserted = manual_clock.now_ns()

    def accessed() -> list[int]:
        with psycopg.connect(migrated_dsn) as conn:
            rows = conn.execute("SELECT accessed_at FROM tiles ORDER BY x").fetchall()
        return [datetime_to_ns(r[0]) for r in rows]

    manual_clock.advance_s(1)
    for m in metas[:9]:
        for _ in range(3):  # repeated reads of one tile buffer one entry
            store.get_tile(Z, m.x, 0, "satellite")
    assert accessed() == [inserted] * 10  # nothing written yet
    store.get_tile(Z, 9, 0, "satellite")  # the tenth distinct tile: one UPDATE for all
    assert accessed() == [manual_clock.now_ns()] * 10


def test_upload_bookkeeping_is_idempotent(store: PostgresFilesystemStore) -> None:
    reference = store.put_tile(tile(1, 1, seed=1))
    a = store.put_tile(tile(2, 2, seed=2, source="in_flight", flight_id=FLIGHT))
    b = store.put_tile(tile(3, 3, seed=3, source="in_flight", flight_id=FLIGHT, captured_at_ns=1))
    assert [m.tile_id for m in store.list_pending_uploads()] == [b.tile_id, a.tile_id]
    assert [m.tile_id for m in store.list_pending_uploads(limit=1)] == [b.tile_id]
    assert store.stats().pending_upload == 2
    assert store.mark_uploaded([a.tile_id, str(reference.tile_id)]) == 1
    assert store.mark_uploaded([a.tile_id]) == 0
    assert store.get_metadata(a.tile_id).uploaded_at_ns is not None
    assert [m.tile_id for m in store.list_pending_uploads()] == [b.tile_id]
    with pytest.raises(TileNotFound):
        store.mark_uploaded([b.tile_id, uuid.uuid4()])
    assert store.get_metadata(b.tile_id).pending_upload  # nothing marked on error
    assert store.stats().pending_upload == 1


# ------------------------------------------------------- construction
def test_construction_reconciles_files_and_rows(
    store_factory: Any,
    tile_config: TileCacheConfig,
    caplog: pytest.LogCaptureFixture,
    sink: MemorySink,
) -> None:
    store = store_factory(tile_config)
    kept = store.put_tile(tile(1, 1, seed=1))
    lost = store.put_tile(tile(2, 2, seed=2))
    no_sidecar = store.put_tile(tile(3, 3, seed=3))
    store.close()
    root = tile_config.tile_root
    (root / "tiles" / str(Z) / "2" / f"{lost.tile_id}.jpg").unlink()
    (root / "tiles" / str(Z) / "3" / f"{no_sidecar.tile_id}.json").unlink()
    stray = root / "tiles" / str(Z) / "9" / f"{uuid.uuid4()}.jpg"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(make_jpeg(9))
    temp = root / "tiles" / str(Z) / "1" / f".{kept.tile_id}.jpg.tmp-deadbeef"
    temp.write_bytes(b"\xff\xd8half")
    with caplog.at_level(logging.INFO, logger="test.tile_cache"):
        again = store_factory(tile_config)
    assert not stray.exists() and not temp.exists()
    assert again.find(Z, 2, 2, "satellite") is None
    assert again.get_tile(Z, 3, 3, "satellite").data == make_jpeg(3)
    sidecar = root / "tiles" / str(Z) / "3" / f"{no_sidecar.tile_id}.json"
    assert json.loads(sidecar.read_text())["tile_id"] == str(no_sidecar.tile_id)
    (line,) = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("c6.store.construct")
    ]
    _, fields = parse_event(line)
    assert fields["orphan_files_removed"] == 1
    assert fields["orphan_rows_removed"] == 1
    assert fields["temp_files_removed"] == 1
    assert fields["sidecars_rewritten"] == 1
    assert fields["tiles"] == 2
    assert sink.of_kind("c6.store.construct")[-1].payload["tiles"] == 2


def test_schema_not_at_head_is_refused(tile_config: TileCacheConfig, store_factory: Any) -> None:
    downgrade_migrations(tile_config.dsn, "0002")
    with pytest.raises(TileMetadataError, match="apply migrations"):
        store_factory(tile_config)


def test_no_dsn_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, store_factory: Any
) -> None:
    monkeypatch.delenv("GDO_DSN", raising=False)
    with pytest.raises(TileMetadataError, match="no database"):
        store_factory(TileCacheConfig(dsn="", tile_root=tmp_path))


def test_concurrent_readers_and_a_writer(store: PostgresFilesystemStore) -> None:
    for i in range(5):
        store.put_tile(tile(i, 0, seed=i))
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for n in range(200):
                i = n % 5
                assert store.get_tile(Z, i, 0, "satellite").data == make_jpeg(i)
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(5, 25):
        store.put_tile(tile(i, 0, seed=i))
    for t in threads:
        t.join()
    assert errors == []
    assert store.stats().tiles == 25


def test_every_record_fits_the_flight_record_schema(
    migrated_dsn: str, tmp_path: Path, store_factory: Any, sink: MemorySink
) -> None:
    from gps_denied_onboard.record_schema import check_payload

    store = store_factory(TileCacheConfig(dsn=migrated_dsn, tile_root=tmp_path / "t"))
    a = store.put_tile(tile(1, 1, seed=1, source="in_flight", flight_id=FLIGHT))
    store.put_tile(tile(2, 2, seed=2))
    with pytest.raises(TileValidationError):
        store.put_tile(tile(3, 3, seed=3, content_sha256="0" * 64))
    with pytest.raises(TileMetadataError):
        store.put_tile(tile(2, 2, seed=4))
    store.record_vote(a.location_hash, agree=False)
    store.close()
    smaller = TileCacheConfig(dsn=migrated_dsn, tile_root=tmp_path / "t", disk_budget_bytes=1)
    store_factory(smaller).evict_to_budget()
    kinds = {r.kind for r in sink.records}
    assert kinds == {"c6.store.construct", "c6.write", "c6.write_failed", "c6.vote", "c6.evict"}
    for record in sink.records:
        assert check_payload(record.kind, record.payload) == frozenset(), record


def _end_store_backends(dsn: str) -> int:
    """A database outage, for real: PostgreSQL ends every other backend of the
    database (the store's pooled connections among them)."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return sum(1 for (ended,) in rows if ended)


def test_the_store_recovers_after_its_backends_are_terminated(
    migrated_dsn: str,
    tmp_path: Path,
    store_factory: Any,
    sink: MemorySink,
    manual_clock: ManualClock,
) -> None:
    cfg = TileCacheConfig(
        dsn=migrated_dsn, tile_root=tmp_path / "t", access_flush_batch=1, pool_min=2, pool_max=2
    )
    store = store_factory(cfg)
    store.put_tile(tile(seed=1))
    store.get_tile(Z, 17437, 11371, "satellite")
    assert _end_store_backends(migrated_dsn) >= 1
    read_at = manual_clock.advance_ns(DAY_NS)
    # the hot read needs no database, and its failed access flush never fails it
    assert store.get_tile(Z, 17437, 11371, "satellite").data == make_jpeg(1)
    # every database operation either works on a fresh connection or fails typed;
    # none is left failing: the pool replaces the dead connections
    outcomes: list[str] = []
    for attempt in range(6):
        try:
            store.put_tile(tile(100 + attempt, 1, seed=10 + attempt))
            outcomes.append("stored")
        except TileMetadataError:
            outcomes.append("refused")
    assert outcomes[-3:] == ["stored"] * 3, outcomes
    stored = outcomes.count("stored")
    assert count_rows(cfg.dsn) == 1 + stored  # a refused write left no row...
    tile_files = [p for p in Path(cfg.tile_root).rglob("*.jpg")]
    assert len(tile_files) == 1 + stored  # ...and no file
    refused = outcomes.count("refused")
    failed = [r for r in sink.of_kind("c6.write_failed") if r.payload["reason"] == "database"]
    assert len(failed) == refused
    # the access time of the read while the database was away was kept and is
    # written now (or was, by a later flush)
    store.flush_access()
    with psycopg.connect(cfg.dsn) as conn:
        row = conn.execute("SELECT accessed_at FROM tiles WHERE x = 17437 AND y = 11371").fetchone()
    assert row is not None and datetime_to_ns(row[0]) >= read_at
    # reads and queries that need the database work again
    box = tile_bbox(Z, 17437, 11371)
    assert [m.x for m in store.query_bbox(box, Z)] == [17437]
    assert store.summary()["tiles"] == 1 + stored


@pytest.mark.parametrize("batched", [False, True])
def test_a_new_tile_carries_its_cells_existing_votes(
    store: PostgresFilesystemStore, batched: bool
) -> None:
    store.record_vote(derive_location_hash(Z, 5, 5), agree=False)
    store.record_vote(derive_location_hash(Z, 5, 5), agree=True)
    store.record_vote(derive_location_hash(Z, 5, 5), agree=True)
    writes = [tile(5, 5, seed=1), tile(6, 6, seed=2)]
    metas = store.put_tiles(writes) if batched else [store.put_tile(w) for w in writes]
    assert [(m.votes_agree, m.votes_disagree) for m in metas] == [(2, 1), (0, 0)]
