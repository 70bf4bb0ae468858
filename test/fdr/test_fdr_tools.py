"""The operator tool on flights built to FORMAT.md: info, cat, verify, recover, torn tails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fdr_tools_helpers import T0, FlightBuilder, simple_flight

import gps_denied_onboard
from gps_denied_onboard.fdr import tools

PKG_PARENT = str(Path(gps_denied_onboard.__file__).parents[1])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": PKG_PARENT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "gps_denied_onboard.fdr.tools", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )


def test_info_reports_flight_segments_counters_kinds_and_gaps(tmp_path: Path) -> None:
    flight = simple_flight(tmp_path).close()
    info = tools.flight_info(tools.scan_flight(flight))
    assert info["flight_id"] == "F1"
    assert [s["file"] for s in info["segments"]] == ["F1_0.mcap", "F1_1.mcap"]
    assert all(s["complete"] and s["torn"] is None for s in info["segments"])
    assert info["footer"]["records_dropped_overrun"] == 3
    assert info["kinds"]["fc.mode_change"] == 5
    assert info["kinds"]["overrun"] == 1
    assert info["raw_topics"] == {"/chatter": 2}
    fc = info["producers"]["fc_bridge"]
    assert fc == {
        "written": 7,
        "dropped_overrun": 3,
        "dropped_upstream": 0,
        "offered": 10,
        "silent_gaps": [],
        "rollover_gaps": [],
    }
    (overrun,) = info["gaps"]["overrun"]
    assert overrun["producer"] == "fc_bridge" and overrun["count"] == 3
    assert overrun["first_seq"] == 5 and overrun["last_seq"] == 7


def test_info_cli_renders_text_and_json(tmp_path: Path) -> None:
    flight = simple_flight(tmp_path).close()
    text = _cli("info", str(flight))
    assert text.returncode == 0, text.stderr
    assert "flight F1" in text.stdout and "overrun fc_bridge: 3 records" in text.stdout
    as_json = json.loads(_cli("info", "--json", str(flight)).stdout)
    assert as_json["closed"] is True


def test_cat_filters_by_kind_producer_and_time(tmp_path: Path) -> None:
    fb = simple_flight(tmp_path)
    flight = fb.close()
    out = _cli("cat", str(flight), "--kind", "fc.mode_change")
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["payload"]["mode"] for r in rows] == ["M0", "M1", "M2", "M3", "M4"]
    assert {r["segment"] for r in rows} == {0}

    rows = list(tools.iter_records(flight, producers=["tile_cache"]))
    assert [r["kind"] for r in rows] == ["c6.evict"]

    stamps = [r["stamp_ns"] for r in tools.iter_records(flight, producers=["fc_bridge"])]
    window = list(tools.iter_records(flight, since_ns=stamps[1], until_ns=stamps[3]))
    assert [r["stamp_ns"] for r in window] == stamps[1:4]
    iso = _cli(
        "cat",
        str(flight),
        "--since",
        "2026-05-12T00:00:00.002Z",
        "--until",
        "2026-05-12T00:00:00.003Z",
    )
    assert [json.loads(x)["stamp_ns"] for x in iso.stdout.splitlines()] == [
        T0 + 2_000_000,
        T0 + 3_000_000,
    ]


def test_cat_raw_decodes_cdr_messages(tmp_path: Path) -> None:
    flight = simple_flight(tmp_path).close()
    raws = [r for r in tools.iter_records(flight, raw=True) if "topic" in r]
    assert [(r["topic"], r["type"], r["message"]) for r in raws] == [
        ("/chatter", "std_msgs/msg/String", {"data": "hello"}),
        ("/chatter", "std_msgs/msg/String", {"data": "world"}),
    ]


def test_verify_passes_a_clean_flight(tmp_path: Path) -> None:
    flight = simple_flight(tmp_path).close()
    out = _cli("verify", str(flight))
    assert out.returncode == 0, out.stdout
    assert "fc_bridge: offered=10 written=7 dropped_overrun=3" in out.stdout
    assert out.stdout.strip().endswith("verify: OK")


def test_verify_fails_on_a_silent_gap(tmp_path: Path) -> None:
    fb = simple_flight(tmp_path)
    fb.drop("tile_cache", 4, accounted=False)
    fb.record("c6.evict", "tile_cache", {"tile_id": "t2", "disk_bytes": 1})
    flight = fb.close()
    out = _cli("verify", str(flight))
    assert out.returncode == 1
    assert "tile_cache: 4 records missing from the sequence with no overrun record" in out.stdout
    info = tools.flight_info(tools.scan_flight(flight))
    assert info["gaps"]["missing_seq"] == {"tile_cache": [[1, 4]]}


def test_verify_fails_when_the_footer_is_missing_or_misplaced(tmp_path: Path) -> None:
    fb = simple_flight(tmp_path)
    flight = fb.close(footer=False)
    verdict = tools.verify_flight(tools.scan_flight(flight))
    assert not verdict.ok
    assert any("no flight_footer" in f for f in verdict.failures)

    fb2 = simple_flight(tmp_path, "F2")
    fb2.footer()
    fb2.record("fc.armed", "fc_bridge")
    flight2 = fb2.close(footer=False)
    verdict2 = tools.verify_flight(tools.scan_flight(flight2))
    assert "flight_footer is not the last record of the last segment" in verdict2.failures


def test_verify_fails_on_a_footer_whose_overrun_total_disagrees(tmp_path: Path) -> None:
    fb = simple_flight(tmp_path)
    fb.counts["records_dropped_overrun"] += 1  # footer claims one drop with no record
    flight = fb.close()
    verdict = tools.verify_flight(tools.scan_flight(flight))
    assert any("footer records_dropped_overrun=4" in f for f in verdict.failures)


def test_segment_dropped_by_capacity_cap_is_not_a_silent_gap(tmp_path: Path) -> None:
    fb = FlightBuilder(tmp_path, "F3")
    fb.header()
    fb.record("fc.armed", "fc_bridge")
    fb.rotate()
    for _ in range(3):
        fb.record("fc.armed", "fc_bridge")
    fb.rotate()
    fb.record(
        "segment_rollover",
        "fdr",
        {"dropped_segment": "F3_1.mcap", "dropped_bytes": 1, "total_bytes": 2, "cap_bytes": 2},
    )
    fb.record("fc.disarmed", "fc_bridge")
    flight = fb.close()
    (flight / "F3_1.mcap").unlink()
    fs = tools.scan_flight(flight)
    fc = fs.producers["fc_bridge"]
    assert fc.silent_gaps == [] and fc.rollover_gaps == [(1, 3)]
    assert fc.offered == 2 == fc.written
    verdict = tools.verify_flight(fs)
    assert verdict.ok, verdict.failures


def test_segment_missing_without_a_rollover_record_fails(tmp_path: Path) -> None:
    fb = FlightBuilder(tmp_path, "F4")
    fb.header()
    fb.rotate()
    fb.record("fc.armed", "fc_bridge")
    fb.rotate()
    flight = fb.close()
    (flight / "F4_1.mcap").unlink()
    verdict = tools.verify_flight(tools.scan_flight(flight))
    assert any("segments [1] are missing" in f for f in verdict.failures)


@pytest.mark.parametrize("cut", [1, 5, 30])
def test_torn_tail_mid_record_is_read_up_to_the_last_whole_record(tmp_path: Path, cut: int) -> None:
    fb = simple_flight(tmp_path)
    for i in range(20):
        fb.record("fc.mode_change", "fc_bridge", {"mode": f"late{i}"})
    flight = fb.crash()
    seg = fb.segment_path
    size = seg.stat().st_size
    os.truncate(seg, size - cut)
    fs = tools.scan_flight(flight)
    scan = fs.segments[-1]
    assert scan.torn is not None and not scan.complete
    assert "incomplete" in scan.torn.reason
    assert scan.torn.offset == scan.last_message_end
    modes = [r["payload"]["mode"] for r in tools.iter_records(flight, kinds=["fc.mode_change"])]
    assert modes == [f"M{i}" for i in range(5)] + [f"late{i}" for i in range(19)]
    verdict = tools.verify_flight(fs)
    assert any("torn tail" in f for f in verdict.failures)
    assert _cli("verify", str(flight)).returncode == 1


def test_garbage_after_the_last_record_ends_the_readable_part(tmp_path: Path) -> None:
    fb = simple_flight(tmp_path)
    flight = fb.crash()
    with fb.segment_path.open("ab") as f:
        f.write(b"\x00" * 4096)  # zero-filled blocks, as after a power cut
    scan = tools.scan_flight(flight).segments[-1]
    assert scan.torn is not None and "opcode 0x00" in scan.torn.reason
    assert scan.torn.lost_bytes == 4096


def test_empty_and_magic_only_segments_are_torn_not_errors(tmp_path: Path) -> None:
    fb = simple_flight(tmp_path)
    flight = fb.close()
    (flight / "F1_2.mcap").write_bytes(b"")
    (flight / "F1_3.mcap").write_bytes(b"\x89MCAP0\r\n")
    scans = tools.scan_flight(flight).segments
    assert scans[2].torn is not None and scans[2].torn.reason == "empty file"
    assert scans[3].torn is not None and "no footer" in scans[3].torn.reason


def test_recover_rewrites_torn_segment_rebuilds_metadata_and_reports_loss(
    tmp_path: Path,
) -> None:
    fb = simple_flight(tmp_path)
    for i in range(10):
        fb.record("fc.mode_change", "fc_bridge", {"mode": f"late{i}"})
    flight = fb.crash()
    seg = fb.segment_path
    torn_size = seg.stat().st_size - 7
    os.truncate(seg, torn_size)
    before = [r for r in tools.iter_records(flight, raw=True)]

    out = _cli("recover", "--json", str(flight))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    (rec,) = report["recovered"]
    assert rec["segment"] == "F1_1.mcap"
    assert rec["lost_bytes"] > 0 and rec["kept_bytes"] + rec["lost_bytes"] == torn_size
    assert rec["last_seq_by_producer"]["fc_bridge"] == 18  # late8; late9 was cut
    assert rec["kept_original_as"] == "F1_1.mcap.torn"
    assert (flight / "F1_1.mcap.torn").stat().st_size == torn_size
    assert json.loads((flight / "recovery.json").read_text())[0]["recovered"][0] == rec

    # The recovered segment is a complete MCAP file (summary and footer) ...
    from mcap.reader import make_reader

    with seg.open("rb") as f:
        reader = make_reader(f)
        assert reader.get_summary() is not None
        assert sum(1 for _ in reader.iter_messages()) == len(
            [r for r in before if r["segment"] == 1]
        )
    # ... holding exactly what was readable before,
    after = [r for r in tools.iter_records(flight, raw=True)]
    assert after == before
    fs = tools.scan_flight(flight)
    assert fs.torn == []
    # and the directory opens as a rosbag2 bag with the raw topic.
    from rosbags.highlevel import AnyReader

    with AnyReader([flight]) as bag:
        msgs = [bag.deserialize(raw, conn.msgtype).data for conn, _, raw in bag.messages()]
    assert msgs == ["hello", "world"]
    # A second recover finds nothing torn.
    again = json.loads(_cli("recover", "--json", str(flight)).stdout)
    assert again["recovered"] == []


def test_recover_of_a_flight_never_closed_still_reports_no_footer(tmp_path: Path) -> None:
    fb = simple_flight(tmp_path)
    flight = fb.crash()
    tools.recover_flight(flight)
    verdict = tools.verify_flight(tools.scan_flight(flight))
    assert not any("torn tail" in f for f in verdict.failures)
    assert any("no flight_footer" in f for f in verdict.failures)
    meta = (flight / "metadata.yaml").read_text()
    assert "F1_1.mcap" in meta and "fdr.closed: 'false'" in meta


_CRASH_WRITER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from mcap.writer import CompressionType, Writer
    path = Path(sys.argv[1])
    f = path.open("wb")  # buffered: the OS sees the file in 8 KiB pieces, cut anywhere
    w = Writer(f, use_chunking=False, compression=CompressionType.NONE)
    w.start(profile="ros2", library="crash-writer")
    ch = w.register_channel("/fdr/fc.mode_change", "json", 0, {"jsonschema": "{}"})
    seq = 0
    while True:
        body = {"kind": "fc.mode_change", "producer": "fc_bridge", "stamp_ns": seq,
                "schema_version": "1.1.0", "seq": seq, "payload": {"mode": "x" * 150}}
        w.add_message(ch, seq, json.dumps(body).encode(), seq, seq)
        if seq == 2000:
            print("running", flush=True)
        seq += 1
        if seq % 500 == 0:
            time.sleep(0.001)
    """
)


def test_real_kill_9_torn_segment_reads_and_recovers(tmp_path: Path) -> None:
    """A writer process killed with SIGKILL mid-stream leaves a real torn segment."""
    flight = tmp_path / "K1"
    flight.mkdir()
    seg = flight / "K1_0.mcap"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASH_WRITER, str(seg)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "running"
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    fs = tools.scan_flight(flight)
    scan = fs.segments[0]
    assert scan.torn is not None and not scan.complete
    assert scan.messages > 2000
    seqs = [r["seq"] for r in tools.iter_records(flight)]
    assert seqs == list(range(len(seqs)))  # every whole record up to the tear, in order
    result = tools.recover_flight(flight)
    (rec,) = result.segments
    assert rec.kept_messages == len(seqs)
    assert rec.last_seq == {"fc_bridge": len(seqs) - 1}
    assert tools.scan_flight(flight).segments[0].complete


def test_unknown_flight_dir_is_a_clean_error(tmp_path: Path) -> None:
    out = _cli("info", str(tmp_path / "nope"))
    assert out.returncode == 2 and "error:" in out.stderr
    (tmp_path / "empty").mkdir()
    assert _cli("verify", str(tmp_path / "empty")).returncode == 2


def test_python_dash_m_package_runs_the_tool(tmp_path: Path) -> None:
    flight = simple_flight(tmp_path).close()
    env = {**os.environ, "PYTHONPATH": PKG_PARENT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-m", "gps_denied_onboard.fdr", "verify", str(flight)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_dds_loss_overrun_is_counted_upstream_not_in_the_seq_identity(tmp_path: Path) -> None:
    fb = simple_flight(tmp_path)
    fb.record(
        "overrun",
        "fdr_recorder",
        {
            "producer": "tile_cache",
            "count": 12,
            "first_stamp_ns": 1,
            "last_stamp_ns": 2,
            "reason": "dds_loss",
        },
    )
    flight = fb.close()
    fs = tools.scan_flight(flight)
    assert fs.producers["tile_cache"].dropped_upstream == 12
    assert fs.producers["tile_cache"].dropped_overrun == 0
    verdict = tools.verify_flight(fs)
    assert verdict.ok, verdict.failures
    info = tools.flight_info(fs)
    assert info["producers"]["tile_cache"]["dropped_upstream"] == 12


def test_raw_messages_are_accounted_under_the_raw_producer(tmp_path: Path) -> None:
    fb = simple_flight(tmp_path)
    fb.raw_seq += 5  # five raw messages lost without an overrun record
    fb.raw("/chatter", "again")
    flight = fb.close()
    fs = tools.scan_flight(flight)
    raw = fs.producers[tools.RAW_PRODUCER]
    assert raw.written == 3 and raw.silent_gaps == [(2, 6)]
    assert not tools.verify_flight(fs).ok


def test_channel_defined_after_its_messages_is_read_but_fails_verify(tmp_path: Path) -> None:
    """A segment whose Channel records follow the messages (not valid MCAP) still reads."""
    import struct

    fb = simple_flight(tmp_path)
    flight = fb.close()
    seg = flight / "F1_1.mcap"
    data = seg.read_bytes()
    reader = tools.SegmentReader(seg)
    spans = [(s, e, r) for s, e, r in reader.records()]
    channels = [(s, e) for s, e, r in spans if type(r).__name__ == "Channel" and s < len(data)]
    first_msg = next(s for s, e, r in spans if type(r).__name__ == "Message")
    c_start, c_end = channels[0]
    assert c_end <= first_msg
    # move the first Channel record behind the first message
    m_end = next(e for s, e, r in spans if s == first_msg)
    moved = data[:c_start] + data[c_end:m_end] + data[c_start:c_end] + data[m_end:]
    seg.write_bytes(moved)
    assert struct.unpack("<B", moved[c_start : c_start + 1])[0] == 5  # a Message now comes first
    fs = tools.scan_flight(flight)
    assert fs.segments[1].late_channels and fs.segments[1].torn is None
    assert fs.raw_topics["/chatter"] == 2
    verdict = tools.verify_flight(fs)
    assert any("channel defined after messages" in f for f in verdict.failures)


@pytest.mark.parametrize(("said", "warned"), [(6, False), (9, True)])
def test_verify_checks_a_producers_records_closed_against_what_the_flight_holds(
    tmp_path: Path, said: int, warned: bool
) -> None:
    """The publisher's closing count = its records on disk + those accounted lost (here
    2 in a DDS-loss overrun); more than that is a warning (sent before the flight opened,
    or a tail lost without a trace), never a failure."""
    fb = simple_flight(tmp_path)
    for i in range(4):
        fb.record("fc.mode_change", "nav", {"mode": f"M{i}"})
    fb.record(
        "overrun",
        "fdr_recorder",
        {
            "producer": "nav",
            "count": 2,
            "first_stamp_ns": 1,
            "last_stamp_ns": 2,
            "reason": "dds_loss",
        },
    )
    fb.record("records_closed", "nav", {"published": said, "records": said, "node": "nav"})
    verdict = tools.verify_flight(tools.scan_flight(fb.close()))
    assert verdict.ok, verdict.failures
    line = f"nav: its publisher sent {said} (records_closed x1), the flight holds 6"
    if warned:
        assert [w for w in verdict.warnings if w.startswith(line)] == [
            f"{line} (written, dropped_overrun, dds_loss): 3 unaccounted (sent before the "
            "flight opened, or lost without a trace)"
        ]
    else:
        assert f"{line} (written, dropped_overrun, dds_loss)" in verdict.checks
        assert not verdict.warnings


def _takeoff_flight(tmp_path: Path, closes: dict[str, str]) -> tools.FlightScan:
    """A flight take-off opened on ``rec``, with ``rec``, ``/air/nav`` and ``fc`` up;
    ``closes``: producer slug -> the node its ``records_closed`` names."""
    fb = simple_flight(tmp_path)
    fb.record(
        "takeoff.transition",
        "takeoff",
        {"node": "rec", "state": "recording", "step": 3, "transition": "open_flight"},
    )
    fb.record("takeoff.active", "takeoff", {"nodes": ["rec", "/air/nav", "fc"]})
    for slug, node in closes.items():
        fb.record("records_closed", slug, {"published": 0, "records": 0, "node": node})
    return tools.scan_flight(fb.close())


def test_verify_warns_of_a_node_take_off_brought_up_that_the_flight_never_heard(
    tmp_path: Path,
) -> None:
    """A node whose record publisher never matched the recorder leaves nothing, not even
    its records_closed; the recorder (which take-off opened the flight on) writes its
    own records and is not asked for one."""
    verdict = tools.verify_flight(_takeoff_flight(tmp_path, {"visual_nav": "/air/nav"}))
    assert verdict.ok, verdict.failures
    assert [w for w in verdict.warnings if "takeoff.active" in w] == [
        "fc: brought up by take-off (takeoff.active) but nothing in the flight is of it: no "
        "records_closed names it and no producer carries its name (its records reached no "
        "recorder, or it went down without closing)"
    ]
    assert "/air/nav: heard in the flight" in verdict.checks
    assert not [c for c in verdict.checks if c.startswith("rec:")]


def test_verify_hears_a_node_by_its_close_or_by_a_producer_of_its_name(tmp_path: Path) -> None:
    fs = _takeoff_flight(tmp_path / "a", {"visual_nav": "/air/nav", "fc_bridge": "/fc/"})
    verdict = tools.verify_flight(fs)
    assert not [w for w in verdict.warnings if "takeoff.active" in w]
    fb = simple_flight(tmp_path / "b")
    fb.record("takeoff.active", "takeoff", {"nodes": ["fc_bridge"]})
    fb.record("fc.link_up", "fc_bridge", {})
    verdict = tools.verify_flight(tools.scan_flight(fb.close()))
    assert "fc_bridge: heard in the flight" in verdict.checks
