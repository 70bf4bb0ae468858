"""MidFlightTileSnapshotSink (AZ-294): atomic tile files, pointer records, eviction."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fdr_core_helpers import T0, fdr_bodies, make_recorder

from gps_denied_onboard.clock import ManualClock, MonotonicClock
from gps_denied_onboard.fdr.tiles import MidFlightTileSnapshotSink

KIB = 1024


def _jpeg(n: int, fill: int) -> bytes:
    return b"\xff\xd8" + bytes([fill]) * (n - 4) + b"\xff\xd9"


def test_snapshots_are_written_pointed_at_and_evicted_oldest_first(tmp_path: Path) -> None:
    rec = make_recorder(tmp_path)
    rec.start()
    rec.open_flight("F1")
    sink = MidFlightTileSnapshotSink(rec, rec.register_client("tile_snapshots"),
                                     ManualClock(T0), MonotonicClock(), cap_bytes=100 * KIB)
    tiles = {f"z17_{i}": _jpeg(30 * KIB, i) for i in range(5)}
    for i, (tile_id, data) in enumerate(tiles.items()):
        assert sink.snapshot(tile_id, data, frame_id=f"frame{i}" if i % 2 == 0 else None,
                             zoom=17, x=i, y=0)
    rec.close_flight("F1")
    rec.stop()
    tiles_dir = tmp_path / "F1" / "tiles"
    on_disk = sorted(p.stem for p in tiles_dir.glob("*.jpg"))
    assert on_disk == ["z17_2", "z17_3", "z17_4"]  # 3 x 30 KiB fits under 100 KiB
    assert not list(tiles_dir.glob(".*"))  # no temporary files left behind
    assert sink.total_bytes == 90 * KIB
    records = [b["payload"] for b in fdr_bodies(tmp_path / "F1", "mid_flight_tile_snapshot")]
    assert [r["tile_id"] for r in records] == list(tiles)
    for r in records:
        assert r["path"] == f"tiles/{r['tile_id']}.jpg"
        assert r["sha256"] == hashlib.sha256(tiles[r["tile_id"]]).hexdigest()
        assert r["bytes"] == 30 * KIB
    assert records[0]["frame_id"] == "frame0" and "frame_id" not in records[1]
    assert records[3]["evicted"] == ["z17_0"] and records[4]["evicted"] == ["z17_1"]
    for tile_id in on_disk:
        assert (tiles_dir / f"{tile_id}.jpg").read_bytes() == tiles[tile_id]


def test_bad_tile_ids_and_no_flight(tmp_path: Path) -> None:
    rec = make_recorder(tmp_path)
    rec.start()
    client = rec.register_client("tile_snapshots")
    sink = MidFlightTileSnapshotSink(rec, client, ManualClock(T0), MonotonicClock())
    with pytest.raises(ValueError):
        sink.snapshot("../evil", b"x")
    assert not sink.snapshot("t1", b"\xff\xd8\xff\xd9")  # no flight open: recorded as failure
    rec.open_flight("F1")
    rec.close_flight("F1")
    rec.stop()
    failed = fdr_bodies(tmp_path / "F1", "failed_tile_thumbnail")
    assert failed and failed[0]["payload"]["reason"] == "no flight open"
