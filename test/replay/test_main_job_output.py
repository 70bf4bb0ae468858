"""What the main job sends the autopilot: every GPS_INPUT the simulated FC received.

One run of ``python -m gps_denied_onboard demo --rate 1 --duration 40`` (the README's
main job, shortened). The demo writes each GPS_INPUT the simulated FC got, with its
arrival time, to ``report/gps_input.jsonl``; this test joins them with the estimator's
``vnav.fix`` records in the flight record (GPS_INPUT carries the fix's capture time
unchanged) and with the flight's ``truth.csv``, and checks:

- count: nearly every fix matched promptly reaches the FC (a bridge dropping fixes as
  stale fails here), each repeated only while young enough (at most 1 + 1000 ms / 150 ms
  messages);
- fields, from an independent reading of the fix: lat/lon/alt equal to the fix's,
  ``horiz_accuracy`` its sigma, ``vert_accuracy`` 3 sigma, hdop/vdop, ``fix_type`` and
  ``satellites_visible`` from sigma and velocity, ``ignore_flags`` from velocity, GPS
  week and time of week from the capture time; positions near the truth;
- gaps and ages in sim time at the FC (the bridge's time base): all but a few new
  fixes younger than ``max_fix_age_s`` and messages younger than
  ``fix_repeat_max_age_s`` (a stalled bridge process), no gap under the 60 ms
  floor, and a gap longer than a repeat's 150 ms only where the fix had gone stale (it
  ends with a new fix), up to one tick of quantisation and a few late repeats (a
  process stalled on a busy machine);
- what the main job printed (count, max gap) and its report.json say the same.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import json
import math
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rclpy")

from gps_denied_onboard.fdr.tools import iter_records
from gps_denied_onboard.nodes.demo import sample_dir

from .main_job_runs import main_job_env

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DURATION_S = "40"
MS = 1_000_000
IGN_VEL = 8 | 16 | 32  # GPS_INPUT_IGNORE_FLAG_VEL_HORIZ | VEL_VERT | SPEED_ACCURACY
TICK_MS, FLOOR_MS, REPEAT_MS, MAX_AGE_MS = 40, 60, 150, 500  # demo /clock 25 Hz; 1x
REPEAT_AGE_MS = 1000  # fix_repeat_max_age_s: a sent fix is repeated until this old
GPS_EPOCH_UNIX_S = 315_964_800
LEAP_S = 18  # GPS - UTC since 2017


@pytest.fixture(scope="module")
def main_job() -> Iterator[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="gdo-main-job-") as tmp:
        Path(tmp).chmod(0o755)  # the embedded cluster runs as user postgres when root
        run_dir = Path(tmp) / "run"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "gps_denied_onboard",
                "demo",
                "--run-dir",
                str(run_dir),
                "--rate",
                "1",
                "--duration",
                DURATION_S,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
            env=main_job_env(),
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        yield load(run_dir, proc.stdout)


def load(run_dir: Path, stdout: str) -> dict[str, Any]:
    lines = (run_dir / "report" / "gps_input.jsonl").read_text().splitlines()
    fixes = {
        rec["stamp_ns"]: rec["payload"]
        for rec in iter_records(run_dir / "flights" / "sample-flight")
        if rec["kind"] == "vnav.fix"
    }
    return {
        "gps": [json.loads(line) for line in lines],
        "fixes": fixes,
        "report": json.loads((run_dir / "report" / "report.json").read_text()),
        "stdout": stdout,
    }


def _truth() -> tuple[list[int], list[tuple[float, float]]]:
    t: list[int] = []
    pos: list[tuple[float, float]] = []
    with (sample_dir() / "truth.csv").open() as f:
        for row in csv.DictReader(f):
            t.append(int(row["t_ns"]))
            pos.append((float(row["lat"]), float(row["lon"])))
    return t, pos


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dn = (a[0] - b[0]) * 111_320.0
    de = (a[1] - b[1]) * 111_320.0 * math.cos(math.radians(a[0]))
    return math.hypot(de, dn)


def test_every_fix_fresh_on_arrival_reaches_the_fc_repeated_only_while_fresh(
    main_job: dict[str, Any],
) -> None:
    """A fix is sent unless it is already ``max_fix_age_s`` old when the bridge gets it:
    its estimator latency (``vnav.fix`` ``latency_ms``, wall time, which at 1x sim time
    does not outrun) plus delivery. ``latency_ms`` counts the matching only: before it a
    frame may wait up to 300 ms (``attitude_wait_s`` + ``attitude_max_age_s``) for the
    attitude sample after its capture, so a fix matched in 400 ms can still reach the
    bridge stale (measured on this machine: 1-4 of ~75, also at the commit that added
    this test). Nearly every one must reach the FC, and most fixes overall."""
    gps, fixes = main_job["gps"], main_job["fixes"]
    assert len(fixes) >= 60, len(fixes)  # 2 Hz camera, 40 s: ~80 frames
    per_fix = Counter(m["time_usec"] * 1000 for m in gps)
    assert set(per_fix) <= set(fixes), "a GPS_INPUT carried no fix the estimator made"
    prompt = {stamp for stamp, fix in fixes.items() if fix["latency_ms"] <= MAX_AGE_MS - 100}
    assert len(prompt) >= 30, f"only {len(prompt)} of {len(fixes)} fixes answered in 400 ms"
    missed = prompt - set(per_fix)
    assert len(missed) <= 0.1 * len(prompt), sorted(fixes[s]["latency_ms"] for s in missed)
    assert len(per_fix) >= 0.8 * len(fixes), f"only {len(per_fix)} of {len(fixes)} fixes sent"
    assert max(per_fix.values()) <= 1 + REPEAT_AGE_MS // REPEAT_MS, per_fix.most_common(3)
    assert len(gps) > len(per_fix), "fixes are repeated while fresh"


def test_every_field_is_the_fix_it_carries(main_job: dict[str, Any]) -> None:
    truth_t, truth_pos = _truth()
    errors = []
    for m in main_job["gps"]:
        stamp = m["time_usec"] * 1000
        fix = main_job["fixes"][stamp]
        sigma = fix["sigma_m"]
        assert abs(m["lat"] - round(fix["latitude"] * 1e7)) <= 1, (m, fix)
        assert abs(m["lon"] - round(fix["longitude"] * 1e7)) <= 1, (m, fix)
        assert m["alt"] == pytest.approx(fix["altitude_msl"], abs=0.01)
        assert m["horiz_accuracy"] == pytest.approx(sigma, abs=0.01)
        assert m["vert_accuracy"] == pytest.approx(3 * sigma, abs=0.03)
        assert m["hdop"] == pytest.approx(sigma / 5.0, abs=0.01)
        assert m["vdop"] == pytest.approx(3 * sigma / 5.0, abs=0.01)
        if sigma <= 20.0 and 3 * sigma <= 40.0 and fix["velocity_valid"]:
            fix_type, sats = 3, 10
        elif sigma <= 50.0:
            fix_type, sats = 2, 6
        else:
            fix_type, sats = 0, 0
        assert (m["fix_type"], m["satellites_visible"]) == (fix_type, sats), (m, fix)
        assert m["ignore_flags"] == (0 if fix["velocity_valid"] else IGN_VEL), (m, fix)
        gps_ms = (stamp // MS) - GPS_EPOCH_UNIX_S * 1000 + LEAP_S * 1000
        assert (m["time_week"], m["time_week_ms"]) == divmod(gps_ms, 604_800_000)
        assert m["gps_id"] == 0 and 0 <= m["yaw"] <= 36000
        i = bisect.bisect_left(truth_t, stamp)
        assert truth_t[i] - stamp < 40 * MS
        errors.append(_metres((m["lat"] / 1e7, m["lon"] / 1e7), truth_pos[i]))
    errors.sort()
    assert errors[len(errors) // 2] <= 10.0 and errors[-1] <= 60.0, errors[-10:]
    velocity = [m for m in main_job["gps"] if m["ignore_flags"] == 0]
    assert len(velocity) >= 0.5 * len(main_job["gps"]), "the FC got velocity from most fixes"


def test_gaps_and_ages_in_sim_time_follow_the_contract(main_job: dict[str, Any]) -> None:
    """Sim time at the FC (``sim_ns``: the replay's clock, 40 ms ticks) is the bridge's
    time base. Exactly pinned on a manual clock in test_fc_scheduler.py; here
    with a tick of quantisation either side and room for a process stall on a busy
    machine (at most a few late repeats). A stall also shows in ages: the bridge's
    clock follows ``/clock`` through its own executor, so a bridge held up for a few
    hundred ms sends a repeat its clock still calls fresh while the FC's clock has
    moved on (measured: 1-3 of ~150 messages, 880 ms here, 1025 ms in CI). How
    late such a repeat is depends on how long the machine stalled the process, so
    only how many there are is bounded, not how late.

    The same lag makes bursts: the FC's clock moves before ``/clock`` reaches the
    bridge, so a bridge that falls behind sends at its own 60 ms floor what the FC
    receives within one tick (seen: gaps of 0 ms, 2 of 3 runs on two busy cores,
    at 336d956 as well). So early gaps, too, are counted and bounded, not banned."""
    gps = main_job["gps"]
    assert all(m["sim_ns"] is not None for m in gps)
    ages = [(m["sim_ns"] - m["time_usec"] * 1000) / MS for m in gps]
    # a new fix goes out at most max_fix_age_s old, its repeats until fix_repeat_max_age_s
    first: dict[int, float] = {}
    for m, age in zip(gps, ages, strict=True):
        first.setdefault(m["time_usec"], age)
    fresh = [a for a in first.values() if a <= MAX_AGE_MS + 2 * TICK_MS]
    assert min(ages) >= 0 and len(fresh) >= 0.97 * len(first), sorted(first.values())[-10:]
    young = [a for a in ages if a <= REPEAT_AGE_MS + 2 * TICK_MS]
    assert len(young) >= 0.97 * len(ages), sorted(ages)[-10:]
    late_repeats = 0
    stale_pauses = 0
    early: list[tuple[int, float]] = []
    for a, b in itertools.pairwise(gps):
        gap = (b["sim_ns"] - a["sim_ns"]) / MS
        assert gap >= 0, (a["time_usec"], gap)  # the FC's clock never runs back
        if gap < FLOOR_MS - TICK_MS:
            early.append((a["time_usec"], gap))
            continue
        if gap <= REPEAT_MS + 3 * TICK_MS:
            continue
        age_a = (a["sim_ns"] - a["time_usec"] * 1000) / MS
        if b["time_usec"] > a["time_usec"] and age_a + REPEAT_MS > REPEAT_AGE_MS - TICK_MS:
            stale_pauses += 1  # a's fix went stale before its repeat fell due: silence
        else:
            late_repeats += 1  # a repeat (or new fix) later than the contract allows
    # a bridge held up on this two-core machine (the estimator's worker and five other
    # processes share it) repeats late now and then: measured 4-16 of ~145 at 1x, also at
    # the commit that added this test; 15-30 of ~170 on 2026-11-30, at 336d956 too (the
    # bound is 34 there: close). The gap contract itself is pinned exactly on a
    # manual clock (test_fc_scheduler.py); here it is a bound on the whole stack.
    assert late_repeats <= max(3, 0.2 * len(gps)), (late_repeats, stale_pauses)
    assert len(early) <= max(3, 0.03 * len(gps)), (len(early), len(gps), early[:10])


def test_what_the_main_job_printed_is_what_the_fc_got(main_job: dict[str, Any]) -> None:
    gps, report, stdout = main_job["gps"], main_job["report"], main_job["stdout"]
    gaps = [(b["recv_ns"] - a["recv_ns"]) / 1e9 for a, b in itertools.pairwise(gps)]
    assert report["gps_input"]["count"] == len(gps)
    assert report["gps_input"]["gap_s"]["max"] == pytest.approx(max(gaps))
    printed = re.search(r"GPS_INPUT at the FC: (\d+); .* max ([\d.]+) s", stdout)
    assert printed, stdout[-2000:]
    assert int(printed.group(1)) == len(gps)
    assert float(printed.group(2)) == pytest.approx(max(gaps), abs=0.006)
    bridge = json.loads(re.search(r"FC bridge -> FC: (\{.*\})", stdout).group(1))  # type: ignore[union-attr]
    assert bridge["gps_input"]["count"] == len(gps)
    first = bridge["gps_input"]["first"]
    assert (round(first["lat"] * 1e7), round(first["lon"] * 1e7)) == (gps[0]["lat"], gps[0]["lon"])
