"""FileFdrWriter lifecycle (AZ-291/292): lock, flight header/footer, typed errors,
segment format as FORMAT.md states it, read back with mcap and with rosbags."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from fdr_core_helpers import T0, Alerts, fdr_bodies, make_recorder, read_flight
from mcap.reader import make_reader

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.errors import RecordSchemaError
from gps_denied_onboard.fdr import (
    FdrError,
    FdrOpenError,
    FlightAlreadyOpenError,
    FlightIdMismatchError,
    FlightNotOpenError,
    RawFrameWriteForbiddenError,
)
from gps_denied_onboard.record_schema import FDR_KINDS, FDR_RECORD_SCHEMA_VERSION
from gps_denied_onboard.records import FlightRecord

C6 = {"tile_id": "t1", "zoom": 17, "x": 1, "y": 2, "source": "naip", "disk_bytes": 10,
      "content_sha256": "ab"}
STRING_DEF = "string data\n"


def cdr_string(text: str) -> bytes:
    raw = text.encode() + b"\x00"
    body = len(raw).to_bytes(4, "little") + raw
    return b"\x00\x01\x00\x00" + body + b"\x00" * (-len(body) % 4)


@pytest.fixture
def recorder(tmp_path: Path):
    rec = make_recorder(tmp_path)
    rec.start()
    yield rec
    rec.stop()


def test_construction_does_no_io(tmp_path: Path) -> None:
    root = tmp_path / "not_yet"
    make_recorder(root)
    assert not root.exists()


def test_second_writer_in_the_same_process_gets_fdr_open_error(tmp_path: Path) -> None:
    first = make_recorder(tmp_path)
    first.start()
    try:
        with pytest.raises(FdrOpenError, match="locked"):
            make_recorder(tmp_path).start()
    finally:
        first.stop()
    again = make_recorder(tmp_path)
    again.start()  # the lock is released by stop()
    again.stop()


def test_second_writer_in_another_process_gets_fdr_open_error(tmp_path: Path) -> None:
    first = make_recorder(tmp_path)
    first.start()
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from fdr_core_helpers import make_recorder
        from gps_denied_onboard.fdr import FdrOpenError
        from pathlib import Path
        try:
            make_recorder(Path({str(tmp_path)!r})).start()
        except FdrOpenError as err:
            print("FdrOpenError", err)
            sys.exit(3)
        sys.exit(0)
    """)
    try:
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=60, check=False)
    finally:
        first.stop()
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "locked by another flight recorder" in proc.stdout


def test_unwritable_flight_root_is_fdr_open_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FdrOpenError):
        make_recorder(blocker / "root").start()


def test_header_first_footer_last_and_counters(recorder, tmp_path: Path) -> None:
    header = recorder.open_flight("F1")
    assert header.flight_id == "F1" and header.schema_version == FDR_RECORD_SCHEMA_VERSION
    client = recorder.register_client("tile_cache")
    for i in range(50):
        client.emit(FlightRecord("c6.write", "tile_cache", T0 + i, C6))
    footer = recorder.close_flight("F1")
    assert footer.records_written == 51  # header + 50
    assert footer.records_dropped_overrun == 0 and footer.rollover_count == 0
    msgs = read_flight(tmp_path / "F1")
    assert msgs[0].topic == "/fdr/flight_header" and msgs[-1].topic == "/fdr/flight_footer"
    body = msgs[-1].body["payload"]
    for key in ("records_written", "records_dropped_overrun", "bytes_written",
                "rollover_count"):
        assert body[key] == getattr(footer, key)
    # bytes_written counts every byte before the footer: the chunk holding it starts there
    # (Chunk record up to its records: opcode, length, start/end time, size, CRC,
    # compression, records length = 49 bytes), and the footer's channel record opens that
    # chunk (opcode 1 + length 8 + channel id 2 + schema id 2 + topic length 4, the topic).
    data = (tmp_path / "F1" / "F1_0.mcap").read_bytes()
    assert data[footer.bytes_written] == 0x06
    assert footer.bytes_written == data.index(b"/fdr/flight_footer") - 49 - 17
    seqs = [m.body["seq"] for m in msgs if m.topic == "/fdr/c6.write"]
    assert seqs == list(range(50))
    assert client.offered == client.written == 50


def test_flight_state_errors_are_typed(recorder) -> None:
    with pytest.raises(FlightNotOpenError):
        recorder.close_flight("F1")
    recorder.open_flight("F1")
    with pytest.raises(FlightAlreadyOpenError):
        recorder.open_flight("F2")
    with pytest.raises(FlightIdMismatchError) as info:
        recorder.close_flight("F2")
    assert info.value.expected == "F1" and info.value.got == "F2"
    recorder.close_flight("F1")
    with pytest.raises(FdrOpenError, match="already exists"):
        recorder.open_flight("F1")
    with pytest.raises(FdrOpenError, match="invalid flight id"):
        recorder.open_flight("../escape")


def test_calls_before_start_are_errors(tmp_path: Path) -> None:
    with pytest.raises(FdrError):
        make_recorder(tmp_path).open_flight("F1")


def test_unknown_kind_rejected_and_unknown_keys_flagged(recorder, tmp_path: Path) -> None:
    recorder.open_flight("F1")
    client = recorder.register_client("tile_cache")
    with pytest.raises(RecordSchemaError):
        client.emit(FlightRecord("no.such.kind", "tile_cache", T0, {}))
    with pytest.raises(RecordSchemaError):
        client.emit(FlightRecord("c6.write", "tile_cache", T0, {"tile_id": "x"}))
    client.emit(FlightRecord("c6.write", "tile_cache", T0, {**C6, "brand_new": 1}))
    client.emit(FlightRecord("c6.write", "tile_cache", T0, {**C6, "nan": float("nan")}))
    recorder.close_flight("F1")
    bodies = fdr_bodies(tmp_path / "F1", "c6.write")
    assert bodies[0]["flags"] == ["unknown_payload_key:brand_new"]
    assert bodies[0]["payload"]["brand_new"] == 1
    assert "non_finite:nan" in bodies[1]["flags"] and bodies[1]["payload"]["nan"] is None
    assert client.offered == 2  # rejected records were never offered


@pytest.mark.parametrize("kind", ["raw_nav_frame", "raw_ai_cam_frame"])
def test_raw_frame_kinds_raise_at_the_call_site(recorder, kind: str) -> None:
    client = recorder.register_client("nav")
    with pytest.raises(RawFrameWriteForbiddenError) as info:
        client.emit(FlightRecord(kind, "nav", T0, {}))
    assert isinstance(info.value, RecordSchemaError)
    assert client.offered == 0 and client.depth == 0


@pytest.mark.parametrize("type_name", ["sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"])
def test_raw_camera_topics_are_refused(recorder, type_name: str) -> None:
    with pytest.raises(RawFrameWriteForbiddenError):
        recorder.write_raw("/camera/image", type_name, "", b"", T0)


def test_segment_format_channels_and_rosbags_readback(recorder, tmp_path: Path) -> None:
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    recorder.open_flight("F1")
    client = recorder.register_client("tile_cache")
    for i in range(5):
        client.emit(FlightRecord("c6.write", "tile_cache", T0 + i, C6))
        recorder.write_raw("/chatter", "std_msgs/msg/String", STRING_DEF, cdr_string(f"m{i}"),
                           T0 + i)
    recorder.close_flight("F1")
    flight = tmp_path / "F1"
    with (flight / "F1_0.mcap").open("rb") as fh:
        reader = make_reader(fh)
        summary = reader.get_summary()
        assert summary is not None
        assert reader.get_header().profile == "ros2"
        by_topic = {c.topic: c for c in summary.channels.values()}
        fdr = by_topic["/fdr/c6.write"]
        assert fdr.message_encoding == "json" and fdr.schema_id == 0
        assert fdr.metadata["schema_name"] == "gps_denied_onboard/fdr/c6.write"
        schema = json.loads(fdr.metadata["jsonschema"])
        assert set(schema["properties"]["payload"]["properties"]) >= set(C6)
        raw = by_topic["/chatter"]
        assert raw.message_encoding == "cdr"
        raw_schema = summary.schemas[raw.schema_id]
        assert (raw_schema.encoding, raw_schema.name) == ("ros2msg", "std_msgs/msg/String")
        assert raw_schema.data.decode() == STRING_DEF
        logs = [(c.topic, m.log_time) for _, c, m in reader.iter_messages(log_time_order=False)
                if c.topic == "/fdr/c6.write"]
        assert [t for _, t in logs] == [T0 + i for i in range(5)]
    meta = yaml.safe_load((flight / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["relative_file_paths"] == ["F1_0.mcap"]
    assert meta["custom_data"]["fdr.closed"] == "true"
    store = get_typestore(Stores.ROS2_JAZZY)
    with Reader(flight) as bag:
        assert [c.topic for c in bag.connections] == ["/chatter"]
        texts = [store.deserialize_cdr(d, c.msgtype).data for c, _, d in bag.messages()]
        stamps = [t for _, t, _ in bag.messages()]
    assert texts == [f"m{i}" for i in range(5)] and stamps == [T0 + i for i in range(5)]


def test_every_fdr_kind_has_a_json_schema(recorder, tmp_path: Path) -> None:
    from gps_denied_onboard.fdr.mcap_segment import json_schema_for

    for kind, spec in FDR_KINDS.items():
        doc = json.loads(json_schema_for(kind))
        assert set(doc["properties"]["payload"]["properties"]) == set(spec.known)


def test_stop_closes_an_open_flight_with_a_footer(tmp_path: Path) -> None:
    rec = make_recorder(tmp_path)
    rec.start()
    rec.open_flight("F1")
    footer = rec.stop()
    assert footer is not None and footer.flight_id == "F1"
    assert read_flight(tmp_path / "F1")[-1].topic == "/fdr/flight_footer"


def test_records_before_open_land_after_the_header(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    rec = make_recorder(tmp_path, clock=clock, alerts=Alerts())
    rec.start()
    client = rec.register_client("early")
    client.emit(FlightRecord("c6.write", "early", T0, C6))
    rec.open_flight("F1")
    rec.close_flight("F1")
    rec.stop()
    topics = [m.topic for m in read_flight(tmp_path / "F1")]
    assert topics == ["/fdr/flight_header", "/fdr/c6.write", "/fdr/flight_footer"]
