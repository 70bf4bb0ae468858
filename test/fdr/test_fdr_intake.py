"""Records from other processes into a real recorder: routing per producer, refusals,
and DDS loss written in-band as ``overrun`` records (fdr/intake.py, no ROS)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fdr_core_helpers import T0, fdr_bodies, make_recorder

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.fdr.intake import RecordIntake
from gps_denied_onboard.fdr.writer import FDR_PRODUCER
from gps_denied_onboard.records import RECORDS_CLOSED_KIND, FlightRecord

C6 = {"tile_id": "t1", "zoom": 17, "x": 1, "y": 2, "source": "naip", "disk_bytes": 10,
      "content_sha256": "ab"}


def _flight(tmp_path: Path) -> tuple[RecordIntake, object]:
    rec = make_recorder(tmp_path)
    rec.start()
    rec.open_flight("F1")
    intake = RecordIntake("fdr_recorder", ManualClock(T0), logging.getLogger("t"), ManualClock(0))
    intake.attach(rec, rec.register_client("fdr_recorder", multi_producer=True))
    return intake, rec


def _close(rec: object, tmp_path: Path) -> list[dict[str, object]]:
    rec.close_flight("F1")  # type: ignore[attr-defined]
    rec.stop()  # type: ignore[attr-defined]
    return fdr_bodies(tmp_path / "F1")


def test_a_sequence_gap_becomes_an_overrun_record_and_the_head_counts_from_one(
        tmp_path: Path) -> None:
    intake, rec = _flight(tmp_path)
    for seq in (3, 4, 7):  # 1-2 never arrived (head), 5-6 lost between
        intake.take(FlightRecord("c6.write", "tiles", T0 + seq, C6), seq)
    bodies = _close(rec, tmp_path)
    assert [b["seq"] for b in bodies if b["producer"] == "tiles"] == [0, 1, 2]
    lost = [b["payload"] for b in bodies if b["kind"] == "overrun"]
    assert [(p["producer"], p["count"], p["reason"]) for p in lost] == [
        ("tiles", 2, "dds_loss"), ("tiles", 2, "dds_loss")]
    assert lost[1]["first_stamp_ns"] == T0 + 4 and lost[1]["last_stamp_ns"] == T0 + 7
    assert intake.dds.lost_total == 4


def test_without_sequence_numbers_the_closing_record_tells_the_loss(tmp_path: Path) -> None:
    intake, rec = _flight(tmp_path)
    for i in range(3):
        intake.take(FlightRecord("c6.write", "tiles", T0 + i, C6), None, numbered=False)
    closed = FlightRecord(RECORDS_CLOSED_KIND, "tiles", T0 + 9, {"records": 5, "acked": True})
    intake.take(closed, None, numbered=False)
    lost = [b["payload"] for b in _close(rec, tmp_path) if b["kind"] == "overrun"]
    assert [(p["producer"], p["count"]) for p in lost] == [("tiles", 2)]


@pytest.mark.parametrize("slug", [FDR_PRODUCER, "fdr_recorder"])
def test_the_recorders_own_slugs_are_refused_from_outside(tmp_path: Path, slug: str) -> None:
    intake, rec = _flight(tmp_path)
    intake.take(FlightRecord("c6.write", slug, T0, C6), 1)
    intake.reject("nav", "vnav.fix", "bad payload_json: x")
    bodies = _close(rec, tmp_path)
    assert intake.rejected == 2
    assert not [b for b in bodies if b["kind"] == "c6.write"]


def test_a_detached_intake_refuses_everything_and_writes_no_loss(tmp_path: Path) -> None:
    intake, rec = _flight(tmp_path)
    intake.detach()
    intake.take(FlightRecord("c6.write", "tiles", T0, C6), 5)
    intake.raw_seen("/fc/status", 9, T0)
    bodies = _close(rec, tmp_path)
    assert intake.rejected == 1
    assert intake.dds.lost_total == 4  # still counted; with no recorder, nothing written
    assert not [b for b in bodies if b["kind"] in ("overrun", "c6.write")]
