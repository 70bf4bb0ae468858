"""The calibration helper behind ``config/visual_nav.yaml``'s gate still runs.

``bench/_visual_nav_calibration.py`` is how the gate's and the error model's
numbers were made (on the 2014 pairs only); it is run by hand, so nothing else
would notice it rot. Its documented command once failed on an import (the
environment's ``PYTHONSAFEPATH`` keeps a script's own directory off the path)
while the README kept recommending it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
HELPER = BENCH / "_visual_nav_calibration.py"


def _helper(extra_path: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONSAFEPATH="1")
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, str(HELPER)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_documented_command_reaches_the_helper_and_a_bare_one_does_not() -> None:
    # what the docstring and the README say: bench on PYTHONPATH
    got = _helper(str(BENCH))
    assert got.returncode == 1, got.stderr  # no mode asked for: its usage, not a crash
    assert "Calibration of the visual estimator" in got.stderr
    assert "Traceback" not in got.stderr
    # and why it says so: without it the helper's own imports fail
    bare = _helper(None)
    assert bare.returncode != 0
    assert "ModuleNotFoundError" in bare.stderr


@pytest.fixture
def calibration(bench_module: Callable[[str], ModuleType]) -> Any:
    return bench_module("_visual_nav_calibration")


def test_calibrate_gives_right_and_certainly_wrong_matches_of_both_footprints(
    calibration: Any,
) -> None:
    data = calibration.calibrate(n=2)
    assert set(data) == {"1km", "400m"}
    for footprint, d in data.items():
        classes = {m[4] for m in d["matches"]}
        # searched frames give right matches, displaced priors certainly-wrong ones
        assert classes == {0, 1}, footprint
        assert all(len(m) == 8 for m in d["matches"])
        assert len(d["rows"]) == sum(m[4] for m in d["matches"])
    # judged by the configured gate, the two classes part: the summary that set it
    summary = calibration.calibration_summary(data, {"1km": 2.8, "400m": 3.25})
    for footprint in ("1km", "400m"):
        s = summary[footprint]
        assert s["matches"] == len(data[footprint]["matches"])
        assert s["right_share_passing"] >= 0.5, footprint
        assert s["wrong_passing"] == 0, footprint
        assert s["wrong_max_margin_sigmas"] < s["gate"], footprint


def test_the_stitched_sigma_grid_rebuilds_each_sigma_from_its_terms(calibration: Any) -> None:
    # two pairs of fixes: one pair 3 m off with no spread, one 12 m off whose
    # quadrants spread 30 m; the map/attitude/match terms 2 m, margins of 4 sigma
    # (the far one's newest frame alone put the nadir 20 m from it, the near one's 0)
    rows = [
        {
            "pair": p,
            "e": e,
            "n": 0.0,
            "margin_sigmas": 4.0,
            "spread_m": s,
            "frame_offset_m": f,
            "other_m": 2.0,
        }
        for p in ("a", "b")
        for e, s, f in ((3.0, 0.0, 0.0), (12.0, 30.0, 20.0))
    ]
    grid = calibration.stitched_sigma_grid(
        rows, margin_m=(8.0,), spread_k=(0.0, 0.35), frame_k=(0.0, 0.5)
    )
    without, with_frame, with_spread, _ = grid
    # the frame's offset alone: 12 / hypot(2.83, 10) = 1.2 sigma, inside 3
    assert with_frame["stitch_sigma_frame_k"] == 0.5
    assert with_frame["sigma_3_coverage"] == 100.0
    # without the spread: sigma hypot(2, 8/4) = 2.83 m; 3 m is past 1 sigma, 12 m past 3
    assert without["median_sigma_m"] == pytest.approx(2.83, abs=0.01)
    assert without["sigma_3_coverage"] == 75.0  # the north errors (0) count too
    assert without["worst_pair_sigma_3_coverage"] == 75.0
    # with it the far fix is 12 / hypot(2.83, 10.5) = 1.1 sigma off: inside 3
    assert with_spread["sigma_3_coverage"] == 100.0
    assert with_spread["fixes"] == 4


def test_the_velocity_grid_widens_with_the_speed_and_the_corrections_sigma(
    calibration: Any,
) -> None:
    # 20 m/s, registration sigma 0.5 m/s; one velocity 1 m/s off from a fix whose
    # correction is well seen (0.1 %), one 3 m/s off from one seen to 4 %
    rows = [
        {
            "pair": "a",
            "dve": d,
            "dvn": 0.0,
            "speed": 20.0,
            "velocity_other": 0.5,
            "correction_rel": rel,
        }
        for d, rel in ((1.0, 0.001), (3.0, 0.04))
    ] + [{"pair": "a", "spread_m": 5.0}]  # a fix without a velocity is left out
    without, with_term = calibration.stitched_velocity_grid(rows, ks=(0.0, 2.0))
    assert without["velocities"] == 2
    assert without["sigma_3_coverage"] == 75.0  # 3 m/s is 6 sigma off
    # 3 / hypot(0.5, 2 * 0.04 * 20) = 1.8 sigma: inside 3
    assert with_term["sigma_3_coverage"] == 100.0
    assert with_term["worst_pair_sigma_3_coverage"] == 100.0


def test_the_single_sigma_grid_fades_its_terms_with_the_side(calibration: Any) -> None:
    # one group: a fix 2 m off and one 20 m off whose quadrants spread 30 m, on a
    # frame of gate_side_m[0] (fade 1); and the same far fix on a frame past the fade
    rows = [
        {
            "group": g,
            "e": e,
            "n": 0.0,
            "margin_sigmas": 4.0,
            "spread_m": s,
            "fade": f,
            "other_m": 2.0,
        }
        for g, f in (("small", 1.0), ("large", 0.0))
        for e, s in ((2.0, 0.0), (20.0, 30.0))
    ]
    without, with_spread = calibration.single_sigma_grid(
        rows, margin_m=(20.0,), spread_k=(0.0, 0.5)
    )
    # the margin's alone: hypot(2, 20/4) = 5.4 m, so 20 m is 3.7 sigma off; faded out 10
    assert without["sigma_3_coverage"] == 75.0  # the north errors (0) count too
    assert without["worst_group_sigma_3_coverage"] == 75.0
    # with the spread: 20 / hypot(2, 5, 15) = 1.3 sigma on the small frame; the
    # large one's terms faded to nothing, 20 / 2 m stays out
    assert with_spread["sigma_3_coverage"] == 87.5
    assert with_spread["worst_group_sigma_3_coverage"] == 75.0
    assert with_spread["fixes"] == 4


def test_single_fixes_takes_each_fix_apart_under_the_configured_model(calibration: Any) -> None:
    rows = calibration.single_fixes(1, 61000)
    assert rows
    assert {r["group"].split("@")[0] for r in rows} <= set(calibration.CALIBRATION_PAIRS)
    for r in rows:
        assert 0.0 <= r["fade"] <= 1.0
        assert r["spread_m"] >= 0.0
        assert r["other_m"] > 0.0
