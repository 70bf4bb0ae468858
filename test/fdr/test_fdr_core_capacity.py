"""Rotation by size and CapacityCapPolicy (AZ-293)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from fdr_core_helpers import T0, Alerts, fdr_bodies, make_recorder, read_flight, segment_paths

from gps_denied_onboard.fdr.policy import CapacityCapPolicy, SegmentInfo
from gps_denied_onboard.records import FlightRecord

KIB = 1024
PAD = {"tile_id": "t" * 180, "zoom": 17, "x": 1, "y": 2, "source": "naip", "disk_bytes": 10,
       "content_sha256": "ab"}


def _meta(flight: Path) -> dict:
    return yaml.safe_load((flight / "metadata.yaml").read_text())["rosbag2_bagfile_information"]


def test_rotation_keeps_metadata_current_and_rosbags_reads_the_split_bag(tmp_path: Path) -> None:
    from rosbags.rosbag2 import Reader

    rec = make_recorder(tmp_path, segment_size_bytes=64 * KIB, batch_size=64)
    rec.start()
    rec.open_flight("F1")
    client = rec.register_client("p")
    seen_lists = []
    for i in range(3000):
        client.emit(FlightRecord("c6.write", "p", T0 + i, PAD))
        rec.write_raw("/chatter", "std_msgs/msg/String", "string data\n",
                      b"\x00\x01\x00\x00\x02\x00\x00\x00a\x00\x00\x00", T0 + i)
        if i % 200 == 0:
            rec.flush()
            seen_lists.append(_meta(tmp_path / "F1")["relative_file_paths"])
    footer = rec.close_flight("F1")
    rec.stop()
    flight = tmp_path / "F1"
    paths = segment_paths(flight)
    assert len(paths) >= 4 and footer.segment_count == len(paths)
    assert [p.name for p in paths] == [f"F1_{i}.mcap" for i in range(len(paths))]
    # metadata.yaml followed every rotation while the flight was open
    assert any(1 < len(names) < len(paths) for names in seen_lists)
    meta = _meta(flight)
    assert meta["relative_file_paths"] == [p.name for p in paths]
    assert meta["message_count"] == 3000
    assert sum(f["message_count"] for f in meta["files"]) == 3000
    for p in paths[:-1]:
        assert p.stat().st_size >= 64 * KIB
    with Reader(flight) as bag:
        assert sum(1 for _ in bag.messages()) == 3000
    assert len([m for m in read_flight(flight) if m.topic == "/fdr/c6.write"]) == 3000
    assert footer.records_written == 6001 and client.dropped == 0


def test_cap_drops_oldest_closed_never_segment_zero_nor_open(tmp_path: Path) -> None:
    alerts = Alerts()
    rec = make_recorder(tmp_path, alerts=alerts, segment_size_bytes=64 * KIB,
                        flight_cap_bytes=5 * 64 * KIB, batch_size=32)
    rec.start()
    rec.open_flight("F1")
    client = rec.register_client("p")
    for i in range(6000):
        client.emit(FlightRecord("c6.write", "p", T0 + i, PAD))
        if i % 100 == 0:
            rec.flush()
    footer = rec.close_flight("F1")
    rec.stop()
    flight = tmp_path / "F1"
    remaining = [p.name for p in segment_paths(flight)]
    assert remaining[0] == "F1_0.mcap"
    meta = _meta(flight)
    assert meta["relative_file_paths"] == remaining
    # every drop is listed in metadata.yaml; oldest closed first, segment 0 never
    dropped = yaml.safe_load(meta["custom_data"]["fdr.dropped_segments"])
    assert len(dropped) == footer.rollover_count > 0
    assert dropped == [f"F1_{i}.mcap" for i in range(1, footer.rollover_count + 1)]
    assert not set(dropped) & set(remaining)
    assert remaining == ["F1_0.mcap"] + [f"F1_{i}.mcap" for i in
                                         range(footer.rollover_count + 1, footer.segment_count)]
    # the segment_rollover records of the drops still on disk are there, one per drop
    # (records of earlier drops were in segments that were dropped in turn)
    rollovers = [b["payload"] for b in fdr_bodies(flight, "segment_rollover")]
    assert rollovers
    assert [r["dropped_segment"] for r in rollovers] == dropped[-len(rollovers):]
    for r in rollovers:
        assert r["cap_bytes"] == 5 * 64 * KIB
        assert r["total_bytes"] <= r["cap_bytes"]
    assert sum(p.stat().st_size for p in segment_paths(flight)) <= 5 * 64 * KIB + 64 * KIB
    assert alerts.items == []  # a working cap raises no alert
    assert read_flight(flight)[0].topic == "/fdr/flight_header"


def test_cap_misconfigured_logs_error_and_alerts_once(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    alerts = Alerts()
    log = logging.getLogger("test.fdr.cap")
    rec = make_recorder(tmp_path, alerts=alerts, logger=log, segment_size_bytes=64 * KIB,
                        flight_cap_bytes=100 * KIB, batch_size=32)
    rec.start()
    with caplog.at_level(logging.ERROR, logger="test.fdr.cap"):
        rec.open_flight("F1")
        client = rec.register_client("p")
        for i in range(2000):
            client.emit(FlightRecord("c6.write", "p", T0 + i, PAD))
            if i % 100 == 0:
                rec.flush()
        rec.close_flight("F1")
    rec.stop()
    records = fdr_bodies(tmp_path / "F1", "cap_misconfigured")
    assert records and records[0]["payload"]["cap_bytes"] == 100 * KIB
    assert any("fdr.cap_misconfigured" in r.getMessage() for r in caplog.records)
    assert len(alerts.items) == 1 and "cap" in alerts.items[0][1]
    assert len(fdr_bodies(tmp_path / "F1", "gcs_alert")) == 1
    # segment 0 is still there even though the flight is over its cap
    assert (tmp_path / "F1" / "F1_0.mcap").exists()


def test_policy_unit_rules() -> None:
    policy = CapacityCapPolicy(cap_bytes=100)
    segs = [SegmentInfo(0, "s0", 40, True), SegmentInfo(1, "s1", 40, True),
            SegmentInfo(2, "s2", 40, True), SegmentInfo(3, "s3", 40, False)]
    drops, over = policy.choose_drops(segs)
    assert [d.index for d in drops] == [1, 2] and not over
    # segment 0 alone is never dropped, the open segment never
    drops, over = policy.choose_drops([SegmentInfo(0, "s0", 90, True),
                                       SegmentInfo(1, "s1", 90, False)])
    assert drops == [] and over
    assert policy.misconfigured_reason(40) is not None
    assert policy.misconfigured_reason(30) is None
