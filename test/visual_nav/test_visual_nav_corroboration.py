"""Which of our own tracks corroborates a match (gate.judge).

A track carried by registration, or a fix a moment old, corroborates a match
landing within its small circle: it needs only ``gate_corroborated_sigmas``.
A track dead-reckoned from a fix seconds old (frames refused since, the
registration chain broken) has grown its circle to a good share of the window:
a match inside it is judged as if uncorroborated, one outside it as a jump.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from gps_denied_onboard.visual_nav.correlate import Peak
from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.gate import Verdict, judge
from gps_denied_onboard.visual_nav.geo import LocalFrame
from gps_denied_onboard.visual_nav.settings import EstimatorConfig
from gps_denied_onboard.visual_nav.state import Prior

LAT, LON = 47.02, -99.15
CFG = EstimatorConfig()
SIDE_M = 900.0  # a 1 km frame: judged on its margin (2.8 sigma uncorroborated at 360 m)


def _judge(source: str, margin_sigmas: float, east_m: float, cfg: EstimatorConfig = CFG) -> Verdict:
    prior = Prior(0, LAT, LON, 12.0, (28.0, 0.0), 1.0, source)
    lat, lon = LocalFrame(LAT, LON).to_latlon(east_m, 0.0)
    peak = Peak(10.0, 10.0, 0.3, 0.1, 0.2, 0.5, 0.2 / margin_sigmas)
    return judge(cfg, prior, lat, lon, sigma=6.0, peak=peak, radius_m=360.0, side_m=SIDE_M)


def test_a_registered_track_corroborates_a_match_in_its_circle() -> None:
    verdict = _judge("visual_odometry", 2.4, 20.0)
    assert verdict.gate == CFG.gate_corroborated_sigmas and verdict.jump_m is None


def test_a_track_dead_reckoned_from_an_old_fix_corroborates_nothing() -> None:
    with pytest.raises(FrameRejected) as err:
        _judge("visual_dead_reckoning", 2.4, 20.0)
    assert err.value.reason == "gate" and "jump" not in str(err.value)
    verdict = _judge("visual_dead_reckoning", 3.2, 20.0)  # the uncorroborated gate: no jump
    assert verdict.gate > CFG.gate_corroborated_sigmas and verdict.jump_m is None
    # as before, where configured so
    corroborating = replace(CFG, gate_dead_reckoning_corroborates=True)
    assert _judge("visual_dead_reckoning", 2.4, 20.0, corroborating).jump_m is None


def test_a_match_far_off_a_dead_reckoned_track_is_still_a_jump() -> None:
    with pytest.raises(FrameRejected, match="jump"):
        _judge("visual_dead_reckoning", 3.2, 250.0)
    assert _judge("visual_dead_reckoning", 5.0, 250.0).jump_m == pytest.approx(250.0, abs=0.5)
