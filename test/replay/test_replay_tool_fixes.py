"""Replay mode: the flight re-run through ``gdo-replay`` gives the main job's fixes.

An engineer re-runs a flight on the ground with the replay tool in its own
process (``python -m gps_denied_onboard.replay BAG --wait-for-estimator``)
beside the running stack. This runs the main job (its in-process lockstep
replay, 3x) and the same flight through the replay tool (1.5x: another rate),
both shortened to 75 s so that 15 s of it are flown after the GNSS loss, and
checks that:

- the replay tool published every camera frame and every frame was answered
  (it prints the count; a frame not answered would be said, never dropped);
- the two runs fixed the same frames, equally well against the ground truth,
  and at places that agree within the uncertainty each fix states. Not to the
  centimetre: at two rates the tiles the prefetch had loaded by a frame differ
  (it runs on the wall clock), and tracking starts each frame's search from the
  previous fix's heading and scale, so a small difference early on carries on
  for a while (README, "Determinism"). Runs of 3x against 1.5x measured a p90
  of 1-7 m apart, 0.2-1.0 combined sigmas, with each run's median error 2.3-2.6 m.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest

from gps_denied_onboard.fc_bridge.link import mavlink2
from gps_denied_onboard.fc_bridge.telemetry import (
    attitude_from_msg,
    attitude_to_enu_flu_quaternion,
)
from gps_denied_onboard.fdr.tools import iter_records
from gps_denied_onboard.nodes.demo import CLOCK_HZ, sample_dir
from gps_denied_onboard.replay.bag import open_bag
from gps_denied_onboard.replay.tlog import read_tlog
from gps_denied_onboard.replay.types import project_typestore

from .main_job_runs import fix_agreement, fix_differences, run_main_job

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DURATION_S = "75"


def _orientation_key(q: Any) -> tuple[float, ...]:
    return tuple(round(v, 9) for v in q)


def _tlog_attitude_times() -> dict[tuple[float, ...], int]:
    """The sample flight's ATTITUDE frames: each one's recorded time (ns) by the
    orientation the bridge publishes for it (the truth a recorded stamp is held to)."""
    sample = sample_dir()
    tlog = sample / json.loads((sample / "manifest.json").read_text())["fc_stream"]["file"]
    parser = mavlink2.MAVLink(None)
    times: dict[tuple[float, ...], int] = {}
    for frame in read_tlog(tlog):
        for msg in parser.parse_buffer(frame.frame) or []:
            if msg.get_type() == "ATTITUDE":
                q = attitude_to_enu_flu_quaternion(attitude_from_msg(msg))
                times[_orientation_key(q)] = frame.time_ns
    return times


def _attitude_stamps(flight: Path) -> dict[tuple[float, ...], int]:
    """The recorded ``/fc/imu`` stamps (ns) by orientation, which names each of the FC
    stream's samples (the few that repeat one are left out)."""
    store = project_typestore()
    stamps: dict[tuple[float, ...], int] = {}
    repeated: set[tuple[float, ...]] = set()
    bag = open_bag(flight)
    try:
        msgtype = bag.topics["/fc/imu"].msgtype
        for m in bag.messages(["/fc/imu"]):
            msg = store.deserialize_cdr(m.data, msgtype)
            q = msg.orientation
            key = _orientation_key((q.x, q.y, q.z, q.w))
            if key in stamps:
                repeated.add(key)
            stamps[key] = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
    finally:
        bag.close()
    return {k: v for k, v in stamps.items() if k not in repeated}


def _fly(run_dir: Path, rate: str, *extra: str) -> tuple[Any, ...]:
    """A run's fixes (``vnav.fix`` payloads by stamp), output, report and attitude stamps."""
    out = run_main_job(run_dir, "--rate", rate, "--duration", DURATION_S, *extra)
    flight = run_dir / "flights" / "sample-flight"
    fixes = {
        rec["stamp_ns"]: rec["payload"] for rec in iter_records(flight) if rec["kind"] == "vnav.fix"
    }
    report = json.loads((run_dir / "report" / "report.json").read_text())
    return fixes, out, report, _attitude_stamps(flight)


@pytest.fixture(scope="module")
def main_and_tool() -> Any:
    with tempfile.TemporaryDirectory(prefix="gdo-replay-tool-") as tmp:
        base = Path(tmp)
        yield _fly(base / "main", "3"), _fly(base / "tool", "1.5", "--replay-tool")


def test_the_replay_tool_answers_every_frame(main_and_tool: Any) -> None:
    _, (tool_fixes, tool_out, _, _) = main_and_tool
    counts = re.search(
        r"estimator lockstep: (\d+) camera frames, (\d+) fixes, (\d+) rejects, "
        r"(\d+) let go \(decimated, dropped\), (\d+) unanswered",
        tool_out,
    )
    assert counts is not None, tool_out[-3000:]
    frames, fixes, rejects, let_go, unanswered = (int(g) for g in counts.groups())
    assert frames == 2 * int(DURATION_S)  # the bag's 2 Hz camera, every frame published
    # and every one matched: a 2 Hz camera is under frame_max_rate_hz, none let go
    assert unanswered == 0 and let_go == 0 and fixes + rejects == frames
    assert fixes >= 0.85 * frames  # and it navigated
    assert fixes == len(tool_fixes)  # every fix it counted is in the flight record


def test_the_replay_tool_gives_the_main_jobs_fixes(main_and_tool: Any) -> None:
    (main_fixes, _, main_report, _), (tool_fixes, _, tool_report, _) = main_and_tool
    common, diffs = fix_differences(main_fixes, tool_fixes)
    assert len(common) >= 0.9 * max(len(main_fixes), len(tool_fixes)), sorted(
        main_fixes.keys() ^ tool_fixes.keys()
    )
    # equally good against the ground truth (the determinism test's bounds, and close)
    errors = [r["error_m"] for r in (main_report, tool_report)]
    assert all(e["median"] <= 6.0 and e["p95"] <= 20.0 for e in errors), errors
    assert abs(errors[0]["median"] - errors[1]["median"]) <= 1.0, errors
    # and the same places, within what each fix says of itself: a replay that slipped
    # its stamps by half a second (over ten metres of flight) would fail here
    z = fix_agreement(main_fixes, tool_fixes)
    assert z[int(0.9 * (len(z) - 1))] <= 1.5 and z[-1] <= 3.0, z[-10:]
    assert diffs[-1] <= 20.0, diffs[-10:]
    # the same estimator state: the heading and scale a frame alone tracks from the fix
    # before it agree as well. Not a stitched patch's: it searches every candidate
    # afresh, and over its short lever (30-80 m in the climb) sees its heading weakly
    # (passing runs differed by up to 2.9 deg there, their frames alone by 0.8 at most).
    # Measured over 7 passing runs, frames alone: heading p90 0.01-0.17 deg, scale
    # p90 0.0001-0.004. A run whose tracking held a scale of 0.927 for 17 s (the FC's
    # attitude 40 ms early) had 0.074.
    alone = [
        s
        for s in common
        if main_fixes[s].get("stitch_lever_m") == 0.0 and tool_fixes[s].get("stitch_lever_m") == 0.0
    ]
    assert len(alone) >= 100, len(alone)

    def p90(key: str) -> float:
        apart = sorted(abs(main_fixes[s][key] - tool_fixes[s][key]) for s in alone)
        return apart[int(0.9 * (len(apart) - 1))]

    heading, scale = p90("heading_offset_deg"), p90("scale")
    assert heading <= 0.5 and scale <= 0.01, (heading, scale)


def test_both_runs_stamp_the_fc_attitude_at_its_recorded_time(main_and_tool: Any) -> None:
    """The bridge maps the FC's clock from arrivals on its /clock, which moves a tick at
    a time, and the FC stream follows the ticks (``demo.CLOCK_HZ``), so a run's mapping
    may settle a tick early. At 25 Hz the main job's did once in CI (2026-12-06): 40-50
    ms early, fixes' median 4.1 m against the tool run's 2.5. Each run's recorded
    attitude is held to the tlog's own time of that sample, within one tick (measured:
    1 ms off in every run at 25 and 100 Hz that settled right)."""
    truth = _tlog_attitude_times()
    for *_, att in main_and_tool:
        settled = min(att.values()) + 10_000_000_000  # the mapping's first seconds aside
        off_ms = sorted(
            abs(att[k] - truth[k]) / 1e6 for k in att.keys() & truth.keys() if att[k] > settled
        )
        assert len(off_ms) > 1000, len(off_ms)  # 25 Hz over the flight's last 65 s
        # one tick, and the 1 ms the stream's whole-ms boot time leaves
        assert off_ms[int(0.9 * (len(off_ms) - 1))] <= 1000 / CLOCK_HZ + 2.0, off_ms[-10:]


def test_the_replay_tool_stamps_the_fc_attitude_as_the_main_job_does(main_and_tool: Any) -> None:
    """As the test before, the two runs against each other: at 25 Hz some of the tool's
    runs held a mapping one tick (40 ms) early: attitude read at the wrong time, the
    fixes' median 4-6 m against the main job's 2.3 (CI, 2026-12-04)."""
    (*_, main_att), (*_, tool_att) = main_and_tool
    settled = min(main_att.values()) + 10_000_000_000  # the mapping's first seconds aside
    apart_ms = sorted(
        abs(tool_att[k] - main_att[k]) / 1e6
        for k in main_att.keys() & tool_att.keys()
        if main_att[k] > settled
    )
    assert len(apart_ms) > 1000, len(apart_ms)  # 25 Hz over the flight's last 65 s
    # one tick of the tool's /clock at most: the two runs read attitude at one time
    assert apart_ms[int(0.9 * (len(apart_ms) - 1))] <= 1000 / CLOCK_HZ, apart_ms[-10:]
