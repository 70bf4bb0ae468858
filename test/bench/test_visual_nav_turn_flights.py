"""The benchmark's steep-turn flights and its restarted estimator are what they claim.

``visual_fix_accuracy``'s ``400m.restart_in_turn`` figures fly
``_visual_nav_flying.turn_flights`` (a 20 deg coordinated bank, like the sample
flight's turns) through ``fly_restarted`` (the GNSS denied, the estimator
replaced by a fresh one resumed from its last fix). A flight that left the clip or
a restart that started from nothing would report on something else.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not (ROOT.parent / "shared" / "data" / "naip").is_dir(), reason="no NAIP orthophotos"
)


@pytest.fixture
def base(bench_module: Callable[[str], ModuleType]) -> Any:
    """The NAIP years, the camera, the heights (``_visual_nav_env``)."""
    return bench_module("_visual_nav_env")


@pytest.fixture
def env(bench_module: Callable[[str], ModuleType]) -> Any:
    """The flights (``_visual_nav_flying``)."""
    return bench_module("_visual_nav_flying")


def test_a_turn_flight_banks_20_degrees_only_in_its_turn_and_turns_at_the_coordinated_rate(
    env: Any, base: Any
) -> None:
    from gps_denied_onboard.visual_nav.geo import LocalFrame

    flights = env.turn_flights(5, 4, base.AGL["400m"])
    lat0, lon0, lat1, lon1 = base.ortho("2017").bounds_latlon()
    for f in flights:
        assert len(f.poses) == 88  # 44 s at 2 Hz
        t0 = f.poses[0].stamp_ns
        rolls = {round((p.stamp_ns - t0) / env.NS, 1): p.roll for p in f.poses}
        assert all(abs(r) == 20.0 for t, r in rolls.items() if 22.0 <= t < 36.0)
        assert all(r == 0.0 for t, r in rolls.items() if t < 22.0 or t >= 36.0)
        # 9.81 tan(20 deg) / 28 m/s = 7.3 deg/s for 14 s
        turned = (f.poses[-1].yaw - f.poses[0].yaw + 180.0) % 360.0 - 180.0
        assert abs(abs(turned) - 102.1) < 1.0
        for a, b in zip(f.poses, f.poses[1:], strict=False):
            e, n = LocalFrame(a.lat, a.lon).to_en(b.lat, b.lon)
            assert math.hypot(e, n) == pytest.approx(14.0, abs=0.2)  # 28 m/s, 0.5 s
        for p in f.poses:  # the footprint and a search around it stay on the clip
            assert lat0 < p.lat < lat1 and lon0 < p.lon < lon1
        assert abs(f.poses[0].yaw_rep - f.poses[0].yaw) <= 3.0


def test_a_restarted_estimator_loses_one_frame_and_resumes_from_its_last_fix(
    env: Any, base: Any
) -> None:
    from gps_denied_onboard.visual_nav.fix import VisualFix

    (f,) = env.turn_flights(7, 1, base.AGL["400m"], straight_s=5.0, turn_s=1.0, after_s=0.0)
    got = env.fly_restarted("2017", "2017", f, gnss_lost_s=3.0, restart_s=4.0)
    t0 = f.poses[0].stamp_ns
    at = {round((p.stamp_ns - t0) / env.NS, 1): g for p, g in zip(f.poses, got, strict=True)}
    assert at[4.0] is None  # the frame the restart lost
    before = [g for t, g in at.items() if t < 4.0]
    assert isinstance(before[-1], VisualFix)
    after = [g for t, g in at.items() if t > 4.0]
    assert isinstance(after[0], VisualFix)
    assert after[0].prior_source == "resumed"  # not a cold start, nor the GNSS (denied)
    assert after[0].reset_counter == before[-1].reset_counter
    unrestarted = env.fly_restarted("2017", "2017", f, gnss_lost_s=3.0, restart_s=None)
    assert all(g is not None for g in unrestarted)
    assert isinstance(unrestarted[-1], VisualFix)
    assert unrestarted[-1].prior_source == "visual_odometry"
