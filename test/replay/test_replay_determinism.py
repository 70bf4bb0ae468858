"""The main job, run twice on a shortened sample flight: it navigates, and it repeats itself.

Runs ``python -m gps_denied_onboard demo --duration 80`` (take-off on embedded
defaults, every node on use_sim_time, the camera bag and FC stream replayed in
lockstep with the estimator; GNSS is lost at t = 60 s) twice into fresh run
directories, and checks:

- navigation: the run's own accuracy report (``report/report.json``, computed
  from the live fixes against ``truth.csv``) meets bounds that a broken
  estimator could not: most frames fixed before and after the GNSS loss, metres
  of error, not tens;
- the FC got the fixes: GPS_INPUT messages at the simulated FC;
- the recorder's flight holds no camera frame;
- determinism: take-off, migrations and the reference tile writes are record
  for record identical; the GNSS loss is at the manifest's time; the fixes are
  the same frames fixed at the same places.

What may differ, and why (README, "Determinism"):
- records that measure the host (``host_health``, ``nvml_unavailable``,
  ``takeoff.heartbeat``, latencies in ``vnav.*``), per-run identifiers (the
  simulated FC's UDP port);
- ``fc.*`` arrival stamps, within the bridge's processing latency;
- the fixes: not bit for bit. Every FC sample carries the FC's clock and the
  estimator answers a frame from the samples stamped up to it, but in the first
  seconds the clock mapping settles and the first frames race the tile prefetch
  (wall clock); a sub-pixel move of the correlation peak follows, and tracking
  carries it on for a while. Same frames fixed (up to a few at the gate's edge)
  and the same places to a fraction of a metre; in-flight snapshots (rendered
  from those poses) differ in their JPEG bytes accordingly.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from gps_denied_onboard.fdr.tools import iter_records
from gps_denied_onboard.nodes.demo import sample_dir

from .main_job_runs import fix_differences, run_main_job

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DURATION_S = "80"
REPLAY_RATE = "1"  # a bridge lagging 0.28 s wall behind is 1.1 s sim at 4x, 0.28 s at 1x
ARRIVAL_STAMP_TOLERANCE_NS = 500_000_000
EXACT_KINDS = ("takeoff.transition", "takeoff.migrations", "takeoff.active", "flight_header")


def _fly(run_dir: Path) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any], str]:
    out = run_main_job(run_dir, "--rate", REPLAY_RATE, "--duration", DURATION_S)
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in iter_records(run_dir / "flights" / "sample-flight"):
        by_kind[rec["kind"]].append(rec)
    report = json.loads((run_dir / "report" / "report.json").read_text())
    return by_kind, report, out


def _payload(rec: dict[str, Any]) -> tuple[str, str, str]:
    return rec["kind"], rec["producer"], json.dumps(rec["payload"], sort_keys=True)


@pytest.fixture(scope="module")
def two_runs() -> Any:
    with tempfile.TemporaryDirectory(prefix="gdo-determinism-") as tmp:
        base = Path(tmp)
        a, b = _fly(base / "a"), _fly(base / "b")
        no_frames = [
            yaml.safe_load((base / r / "flights" / "sample-flight" / "metadata.yaml").read_text())
            for r in ("a", "b")
        ]
        channels = [
            _channels(p)
            for r in ("a", "b")
            for p in sorted((base / r / "flights" / "sample-flight").glob("*.mcap"))
        ]
        yield a, b, no_frames, channels


def _channels(path: Path) -> list[tuple[str, str]]:
    """(topic, schema name) of every channel in a segment, from its summary."""
    from mcap.reader import make_reader

    with path.open("rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None, f"{path} has no summary"
    return [
        (ch.topic, summary.schemas[ch.schema_id].name if ch.schema_id else "")
        for ch in summary.channels.values()
    ]


def test_the_main_job_navigates_on_camera_fixes(two_runs: Any) -> None:
    (records, report, stdout), _, _, _ = two_runs
    assert report["frames_before_loss"] >= 100 and report["frames_after_loss"] >= 30
    assert report["fixed_before_loss"] >= 0.9 * report["frames_before_loss"], report
    assert report["fixed_after_loss"] >= 0.8 * report["frames_after_loss"], report
    assert report["error_m"]["median"] <= 6.0, report
    assert report["error_m"]["p95"] <= 20.0, report
    cover = report["sigma_coverage"]
    assert cover["east_3sigma"] >= 0.8 and cover["north_3sigma"] >= 0.8, cover
    # the autopilot was fed: GPS_INPUT carried the fixes to the simulated FC
    got = re.search(r"GPS_INPUT at the FC: (\d+)", stdout)
    assert got and int(got.group(1)) >= 100, stdout[-2000:]
    assert len(records["vnav.fix"]) == report["fixed_before_loss"] + report["fixed_after_loss"]


def test_the_flight_record_holds_no_camera_frame(two_runs: Any) -> None:
    (records, _, _), _, metadata, channels = two_runs
    frame_types = {"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"}
    for meta in metadata:
        topics = meta["rosbag2_bagfile_information"]["topics_with_message_count"]
        assert not {t["topic_metadata"]["type"] for t in topics} & frame_types
    assert channels and all(channels)
    for segment in channels:
        assert not {schema for _, schema in segment} & frame_types, segment
        assert not [t for t, _ in segment if t.startswith("/camera")], segment
    assert not records.get("raw_nav_frame") and not records.get("raw_ai_cam_frame")


def test_two_replays_repeat_take_off_gnss_loss_and_fixes(two_runs: Any) -> None:
    (first, _, _), (second, _, _), _, _ = two_runs
    for kind in EXACT_KINDS:
        assert [_payload(r) for r in first[kind]] == [_payload(r) for r in second[kind]], kind
        assert [r["stamp_ns"] for r in first[kind]] == [r["stamp_ns"] for r in second[kind]]
    # the reference tiles, written the same way (in-flight snapshots come from fixes)
    refs = [
        sorted(_payload(r) for r in run["c6.write"] if r["payload"]["source"] != "in_flight")
        for run in (first, second)
    ]
    assert refs[0] == refs[1] and len(refs[0]) == len(
        json.loads((sample_dir() / "manifest.json").read_text())["tiles"]
    )
    # the GNSS loss: at the manifest's time in both runs
    loss_ns = json.loads((sample_dir() / "manifest.json").read_text())["gnss_loss_ns"]
    for run in (first, second):
        lost = next(r for r in run["fc.gnss_health"] if r["payload"]["reason"] == "fix_lost")
        assert abs(lost["stamp_ns"] - loss_ns) <= 3 * ARRIVAL_STAMP_TOLERANCE_NS
    # the fixes: the same frames, the same places
    fixes = [{r["stamp_ns"]: r["payload"] for r in run["vnav.fix"]} for run in (first, second)]
    common, diffs = fix_differences(fixes[0], fixes[1])
    # the first frames race the tile prefetch (wall clock), and a frame at the gate's
    # edge can fall either way
    assert len(common) >= 0.9 * max(len(fixes[0]), len(fixes[1])), sorted(
        fixes[0].keys() ^ fixes[1].keys()
    )
    p90 = diffs[int(0.9 * (len(diffs) - 1))]
    # most fixes agree to a fraction of a metre; a frame whose first samples or tiles
    # came in differently, or whose tracked heading/scale start differed, can settle a few
    # metres away (an aliased stretch of farmland): bounded, and said in the README
    assert p90 <= 2.0 and diffs[-1] <= 20.0, (p90, diffs[-10:])
