"""Reading bags: rosbag2 sqlite3 and MCAP with rosbags, FDR flight dirs with mcap."""

from __future__ import annotations

from pathlib import Path

import pytest

from gps_denied_onboard.replay.bag import McapDirSource, RosbagsSource, open_bag
from gps_denied_onboard.replay.errors import BagOpenError

from .bags import T0, write_fdr_like_dir, write_rosbag


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_rosbag_roundtrip_keeps_order_bytes_types_and_qos(tmp_path: Path, storage: str) -> None:
    written = write_rosbag(tmp_path / "bag", storage)
    source = open_bag(tmp_path / "bag")
    assert isinstance(source, RosbagsSource)
    assert set(source.topics) == {"/chatter", "/fix"}
    assert source.topics["/chatter"].msgtype == "std_msgs/msg/String"
    assert source.topics["/fix"].msgtype == "gps_denied_onboard/msg/PositionFix"
    assert source.topics["/chatter"].count == 20
    assert source.topics["/fix"].count == 10
    chatter_qos = source.topics["/chatter"].qos
    assert (chatter_qos.reliability, chatter_qos.durability, chatter_qos.depth) == (
        "reliable", "volatile", 100)
    fix_qos = source.topics["/fix"].qos
    assert (fix_qos.reliability, fix_qos.depth) == ("best_effort", 500)
    assert source.start_ns == T0
    assert source.end_ns == T0 + 19 * 100_000_000
    got = [(m.topic, m.timestamp_ns, m.data) for m in source.messages()]
    assert got == written
    only = [m.topic for m in source.messages(["/fix"], start_ns=T0 + 1_000_000_000)]
    assert only == ["/fix"] * 5
    source.close()


def test_single_storage_file_opens_too(tmp_path: Path) -> None:
    write_rosbag(tmp_path / "bag", "mcap")
    (mcap_file,) = (tmp_path / "bag").glob("*.mcap")
    source = open_bag(mcap_file)
    assert source.topics["/chatter"].count == 20


def test_fdr_flight_dir_replays_cdr_channels_and_notes_the_rest(tmp_path: Path) -> None:
    written = write_fdr_like_dir(tmp_path / "flight1", torn=True)
    source = open_bag(tmp_path / "flight1")
    assert isinstance(source, McapDirSource)
    assert list(source.topics) == ["/chatter"]
    got = [(m.topic, m.timestamp_ns, m.data) for m in source.messages()]
    assert got == written
    assert len(got) == 10  # the torn segment's CDR records before the cut are kept
    notes = "\n".join(source.skipped)
    assert "/fdr/fc.link_up" in notes and "json" in notes
    assert "flight1_1.mcap: read stopped early" in notes


def test_rosbags_refusal_falls_back_to_mcap_reader(tmp_path: Path) -> None:
    write_fdr_like_dir(tmp_path / "flight1", torn=True)
    meta = tmp_path / "flight1" / "metadata.yaml"
    meta.write_text(meta.read_text().replace("fdr.flight_id", "something.else"))
    with pytest.raises(BagOpenError):
        RosbagsSource(tmp_path / "flight1")  # torn segment: no footer
    source = open_bag(tmp_path / "flight1")
    assert isinstance(source, McapDirSource)
    assert "rosbags refused" in source.skipped[0]
    assert source.topics["/chatter"].count == 10


def test_missing_bag_is_a_bag_open_error(tmp_path: Path) -> None:
    with pytest.raises(BagOpenError, match="does not exist"):
        open_bag(tmp_path / "nope")
