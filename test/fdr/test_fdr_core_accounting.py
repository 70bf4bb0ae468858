"""Exact accounting: offered = written + dropped for every producer, every gap in-band
(overrun records), the failed_tile_thumbnail rate cap (AZ-295), live status."""

from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path

from fdr_core_helpers import T0, fdr_bodies, make_recorder, read_flight

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.fdr.policy import RecordKindPolicy
from gps_denied_onboard.records import FlightRecord

C6 = {"tile_id": "t1", "zoom": 17, "x": 1, "y": 2, "source": "naip", "disk_bytes": 10,
      "content_sha256": "ab"}


def check_identity(flight_dir: Path, offered: dict[str, int]) -> None:
    """Per producer: written seqs + overrun counts == offered; gaps (ring/storage) exact."""
    written: dict[str, list[int]] = defaultdict(list)
    dropped: dict[str, int] = defaultdict(int)
    for m in read_flight(flight_dir):
        if m.encoding != "json":
            continue
        body = m.body
        if body["producer"] == "fdr":
            if body["kind"] == "overrun":
                p = body["payload"]
                dropped[p["producer"]] += p["count"]
                if p["reason"] != "rate_cap":
                    assert p["count"] == p["last_seq"] - p["first_seq"] + 1
            continue
        written[body["producer"]].append(body["seq"])
    for producer, n in offered.items():
        seqs = written[producer]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert len(seqs) + dropped[producer] == n, (producer, len(seqs), dropped[producer], n)
        missing = set(range(n)) - set(seqs)
        assert len(missing) == dropped[producer]


def test_overrun_is_counted_and_written_in_band(tmp_path: Path) -> None:
    rec = make_recorder(tmp_path, ring_capacity=100, poll_period_ns=50_000_000)
    rec.start()
    rec.open_flight("F1")
    client = rec.register_client("burst")
    for i in range(1000):  # far faster than one writer poll: the ring overflows
        client.emit(FlightRecord("c6.write", "burst", T0 + i, C6))
    rec.flush()
    for i in range(1000, 1010):
        client.emit(FlightRecord("c6.write", "burst", T0 + i, C6))
    footer = rec.close_flight("F1")
    rec.stop()
    assert client.offered == 1010
    assert client.written + client.dropped == 1010
    assert client.dropped > 0 and footer.records_dropped_overrun == client.dropped
    overruns = fdr_bodies(tmp_path / "F1", "overrun")
    assert overruns and all(o["payload"]["producer"] == "burst" for o in overruns)
    assert all(o["payload"]["reason"] == "ring_full" for o in overruns)
    first = overruns[0]["payload"]
    assert first["first_stamp_ns"] == T0 + first["first_seq"]
    assert first["last_stamp_ns"] == T0 + first["last_seq"]
    check_identity(tmp_path / "F1", {"burst": 1010})
    # the overrun record sits exactly where the records went missing
    seqs = [m.body["seq"] if m.body["kind"] == "c6.write" else ("gap", m.body["payload"])
            for m in read_flight(tmp_path / "F1") if m.topic in ("/fdr/c6.write", "/fdr/overrun")]
    for i, item in enumerate(seqs):
        if isinstance(item, tuple):
            gap = item[1]
            assert seqs[i - 1] == gap["first_seq"] - 1
            if i + 1 < len(seqs):
                assert seqs[i + 1] == gap["last_seq"] + 1


def test_many_producer_threads_identity_holds(tmp_path: Path) -> None:
    rec = make_recorder(tmp_path, ring_capacity=64, batch_size=16)
    rec.start()
    rec.open_flight("F1")
    clients = [rec.register_client(f"p{i}") for i in range(4)]

    def produce(client) -> None:
        for i in range(5000):
            client.emit(FlightRecord("c6.write", client.producer, T0 + i, C6))

    threads = [threading.Thread(target=produce, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    footer = rec.close_flight("F1")
    rec.stop()
    check_identity(tmp_path / "F1", {c.producer: c.offered for c in clients})
    assert footer.records_dropped_overrun == sum(c.dropped for c in clients)
    for c in clients:
        assert c.offered == c.written + c.dropped == 5000


def test_failed_tile_thumbnail_rate_cap_coalesces_into_overrun(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    rec = make_recorder(tmp_path, clock=clock)
    rec.start()
    rec.open_flight("F1")
    client = rec.register_client("tile_cache")
    # 30 s of thumbnails at 2 Hz: three 10 s windows, one record each.
    for i in range(60):
        client.emit(FlightRecord("failed_tile_thumbnail", "tile_cache",
                                 T0 + i * 500_000_000, {"tile_id": f"t{i}", "reason": "x"}))
        client.emit(FlightRecord("c6.write", "tile_cache", T0 + i * 500_000_000, C6))
    rec.close_flight("F1")
    rec.stop()
    thumbs = fdr_bodies(tmp_path / "F1", "failed_tile_thumbnail")
    assert [t["payload"]["tile_id"] for t in thumbs] == ["t0", "t20", "t40"]
    overruns = [o["payload"] for o in fdr_bodies(tmp_path / "F1", "overrun")]
    assert all(o["reason"] == "rate_cap" and o["kind"] == "failed_tile_thumbnail"
               and o["producer"] == "tile_cache" for o in overruns)
    assert sum(o["count"] for o in overruns) == 57
    assert len(fdr_bodies(tmp_path / "F1", "c6.write")) == 60
    check_identity(tmp_path / "F1", {"tile_cache": 120})


def test_gate_for_writer_tumbling_windows() -> None:
    policy = RecordKindPolicy(window_ns=10)
    kind = "failed_tile_thumbnail"
    decisions = [policy.gate_for_writer("p", kind, t, t) for t in (0, 5, 9, 10, 19, 35)]
    assert decisions == [True, False, False, True, False, True]
    gaps = policy.take_closed_windows(40)
    assert sorted(g.count for g in gaps) == [1, 2]
    assert policy.gate_for_writer("p", "c6.write", 36, 36)


def test_status_snapshot(tmp_path: Path) -> None:
    rec = make_recorder(tmp_path, ring_capacity=10, poll_period_ns=200_000_000)
    rec.start()
    rec.open_flight("F1")
    client = rec.register_client("p")
    for i in range(25):
        client.emit(FlightRecord("c6.write", "p", T0 + i, C6))
    rec.flush()
    st = rec.status()
    assert st.running and st.flight_id == "F1" and not st.degraded
    assert st.current_segment == "F1_0.mcap" and st.segment_index == 0
    prod = {p.producer: p for p in st.producers}["p"]
    assert prod.offered == 25 and prod.ring_high_water == 10 and prod.ring_capacity == 10
    assert prod.offered == prod.written + prod.dropped
    assert st.records_dropped == prod.dropped == 15
    assert st.free_bytes is not None and st.free_bytes > 0
    assert st.bytes_written > 0 and st.last_progress_ns > 0
    rec.close_flight("F1")
    rec.stop()
