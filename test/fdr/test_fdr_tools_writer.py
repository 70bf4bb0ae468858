"""The operator tool on flights written by the real recorder (FlightRecorder).

Includes a recorder process killed with SIGKILL mid-flight: the torn segment is
read up to its last whole record, ``verify`` fails on it, ``recover`` makes it
readable and ``metadata.yaml`` describes it again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gps_denied_onboard
from gps_denied_onboard.clock import ManualClock, MonotonicClock
from gps_denied_onboard.fdr import tools
from gps_denied_onboard.fdr.config import FdrConfig
from gps_denied_onboard.fdr.writer import FlightRecorder
from gps_denied_onboard.records import FlightRecord

T0 = 1_778_544_000 * 1_000_000_000
PKG_PARENT = str(Path(gps_denied_onboard.__file__).parents[1])


def _recorder(root: Path, **overrides: int) -> FlightRecorder:
    values: dict[str, object] = {"flight_root": root, "free_space_floor_bytes": 0}
    values.update(overrides)
    return FlightRecorder(FdrConfig(**values), ManualClock(T0), MonotonicClock())  # type: ignore[arg-type]


def test_clean_flight_with_ring_overruns_and_rotation_verifies(tmp_path: Path) -> None:
    rec = _recorder(tmp_path, segment_size_bytes=64 * 1024, ring_capacity=64)
    rec.start()
    try:
        rec.open_flight("W1")
        fc = rec.register_client("fc_bridge", 64)
        for i in range(3000):  # paced: all written, across several segments
            fc.emit(FlightRecord("fc.mode_change", "fc_bridge", T0 + i, {"mode": "x" * 40}))
            if i % 50 == 49:
                rec.flush()
        for i in range(3000, 4000):  # a burst the 64-slot ring cannot hold: overruns
            fc.emit(FlightRecord("fc.mode_change", "fc_bridge", T0 + i, {"mode": "x" * 40}))
        rec.write_raw(
            "/chatter",
            "std_msgs/msg/String",
            "string data\n",
            b"\x00\x01\x00\x00\x03\x00\x00\x00hi\x00",
            T0 + 5000,
        )
        footer = rec.close_flight("W1")
    finally:
        rec.stop()
    flight = tmp_path / "W1"
    fs = tools.scan_flight(flight)
    verdict = tools.verify_flight(fs)
    assert verdict.ok, verdict.failures
    fc_tally = fs.producers["fc_bridge"]
    assert fc_tally.offered == 4000
    assert fc_tally.written + fc_tally.dropped_overrun == 4000
    assert fc_tally.dropped_overrun > 0 and fc_tally.silent_gaps == []
    assert fs.footer is not None
    assert fs.footer["records_dropped_overrun"] == footer.records_dropped_overrun
    assert len(fs.segments) > 1  # rotated
    info = json.loads(
        subprocess.run(
            [sys.executable, "-m", "gps_denied_onboard.fdr.tools", "info", "--json", str(flight)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": PKG_PARENT},
        ).stdout
    )
    assert info["producers"]["fc_bridge"]["offered"] == 4000
    assert info["raw_topics"] == {"/chatter": 1}
    assert info["gaps"]["overrun"] and info["gaps"]["missing_seq"] == {}


_KILLED_RECORDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from gps_denied_onboard.clock import MonotonicClock, SystemClock
    from gps_denied_onboard.fdr.config import FdrConfig
    from gps_denied_onboard.fdr.writer import FlightRecorder
    from gps_denied_onboard.records import FlightRecord
    root = Path(sys.argv[1])
    rec = FlightRecorder(FdrConfig(flight_root=root, free_space_floor_bytes=0), SystemClock(),
                         MonotonicClock())
    rec.start()
    rec.open_flight("K1")
    client = rec.register_client("fc_bridge")
    i = 0
    t_end = time.monotonic() + 30
    while time.monotonic() < t_end:
        for _ in range(200):
            client.emit(FlightRecord("fc.mode_change", "fc_bridge", i, {"mode": "m" * 100}))
            i += 1
        rec.write_raw("/chatter", "std_msgs/msg/String", "string data\\n",
                      b"\\x00\\x01\\x00\\x00\\x03\\x00\\x00\\x00hi\\x00", i)
        if i == 20_000:
            print("running", flush=True)
        time.sleep(0.002)
    """
)


def test_recorder_killed_mid_flight_leaves_a_torn_segment_recover_repairs(
    tmp_path: Path,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RECORDER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": PKG_PARENT},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "running"
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    flight = tmp_path / "K1"
    fs = tools.scan_flight(flight)
    (seg,) = fs.segments
    assert seg.torn is not None and not seg.complete
    assert fs.header is not None and fs.footer is None
    seqs = [r["seq"] for r in tools.iter_records(flight, producers=["fc_bridge"])]
    assert len(seqs) >= 20_000
    assert seqs == list(range(len(seqs)))  # no hole before the tear
    assert fs.raw_topics["/chatter"] >= 100
    verdict = tools.verify_flight(fs)
    assert any("torn tail" in f for f in verdict.failures)
    assert any("no flight_footer" in f for f in verdict.failures)

    out = subprocess.run(
        [sys.executable, "-m", "gps_denied_onboard.fdr.tools", "recover", "--json", str(flight)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": PKG_PARENT},
    )
    assert out.returncode == 0, out.stderr
    (rec,) = json.loads(out.stdout)["recovered"]
    assert rec["last_seq_by_producer"]["fc_bridge"] == seqs[-1]
    after = tools.scan_flight(flight)
    assert after.torn == [] and after.segments[0].complete
    assert [r["seq"] for r in tools.iter_records(flight, producers=["fc_bridge"])] == seqs
    remaining = tools.verify_flight(after).failures
    assert remaining == ["no flight_footer record (flight not closed, or its tail was lost)"]

    from rosbags.highlevel import AnyReader

    with AnyReader([flight]) as bag:
        assert sum(1 for _ in bag.messages()) == after.raw_topics["/chatter"]


def test_second_flight_of_one_recorder_verifies_with_seqs_continuing(tmp_path: Path) -> None:
    """A producer's seq runs over the recorder's life: flight 2 does not start at 0."""
    rec = _recorder(tmp_path)
    rec.start()
    try:
        fc = rec.register_client("fc_bridge")
        for flight_id in ("A1", "A2"):
            rec.open_flight(flight_id)
            for i in range(100):
                fc.emit(FlightRecord("fc.mode_change", "fc_bridge", T0 + i, {"mode": "m"}))
            rec.close_flight(flight_id)
    finally:
        rec.stop()
    second = tools.scan_flight(tmp_path / "A2")
    tally = second.producers["fc_bridge"]
    assert (tally.min_seq, tally.max_seq, tally.offered) == (100, 199, 100)
    verdict = tools.verify_flight(second)
    assert verdict.ok, verdict.failures
