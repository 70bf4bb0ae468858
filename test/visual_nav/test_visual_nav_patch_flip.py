"""A stitched patch that both its witnesses contradict is refused (gate.FlipGuard).

The newest frame alone lying far off the patch's placement is common and mostly
harmless (the frame alone is the weaker witness), and so is a placement some
metres off our own track's prediction; both at once is what a patch settled on
the wrong end of its heading/scale ridge looks like.
"""

from __future__ import annotations

import pytest

from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.gate import FlipGuard
from gps_denied_onboard.visual_nav.geo import LocalFrame
from gps_denied_onboard.visual_nav.settings import EstimatorConfig
from gps_denied_onboard.visual_nav.state import Prior

LAT, LON = 47.02, -99.15
CFG = EstimatorConfig()  # stitch_flip_frame_offset_m 20, stitch_flip_jump_m 10


def _prior(source: str = "visual_odometry", *, contested: bool = False) -> Prior:
    return Prior(0, LAT, LON, 4.0, (28.0, 0.0), 0.3, source, contested=contested)


def _placed(east_m: float, north_m: float = 0.0) -> tuple[float, float]:
    return LocalFrame(LAT, LON).to_latlon(east_m, north_m)


def _check(
    cfg: EstimatorConfig,
    prior: Prior,
    lat: float,
    lon: float,
    frame_offset_m: float | None,
    guard: FlipGuard | None = None,
    stamp_ns: int = 1_000_000_000,
) -> None:
    """A fresh guard's (or ``guard``'s) check of one patch."""
    g = guard if guard is not None else FlipGuard(2_000_000_000)
    g.check(cfg, prior, lat, lon, frame_offset_m=frame_offset_m, stamp_ns=stamp_ns)


def test_a_patch_off_both_its_newest_frame_and_our_track_is_refused_with_both_distances() -> None:
    with pytest.raises(FrameRejected) as err:
        _check(CFG, _prior(), *_placed(15.0), 25.0)
    assert err.value.reason == "gate"
    assert err.value.detail == {"frame_offset_m": 25.0, "jump_m": pytest.approx(15.0, abs=0.1)}


@pytest.mark.parametrize(
    ("jump_m", "frame_offset_m"),
    [
        (15.0, 19.0),  # the frame alone agrees well enough
        (9.0, 60.0),  # the track agrees: the frame alone is the one off
        (15.0, None),  # the frame could not be placed alone: no witness
    ],
)
def test_a_patch_that_one_witness_backs_passes(jump_m: float, frame_offset_m: float | None) -> None:
    _check(CFG, _prior(), *_placed(jump_m), frame_offset_m)


@pytest.mark.parametrize("source", ["fc_gnss", "seed", "fc_estimate"])
def test_a_jump_is_not_measured_from_a_prior_that_is_not_our_own_track(source: str) -> None:
    _check(CFG, _prior(source), *_placed(150.0), 40.0)


def test_a_jump_is_not_measured_from_a_track_a_healthy_gnss_contests() -> None:
    _check(CFG, _prior(contested=True), *_placed(150.0), 40.0)
    with pytest.raises(FrameRejected):
        _check(CFG, _prior("visual_dead_reckoning"), *_placed(150.0), 40.0)


def test_a_second_patch_landing_where_the_refused_one_did_goes_on_to_the_gate() -> None:
    """The track may be the one that is off: two patches in a row agreeing on the
    ground 15 m off it are let through (the second), and the guard starts over."""
    guard, s = FlipGuard(2_000_000_000), 1_000_000_000
    with pytest.raises(FrameRejected):
        _check(CFG, _prior(), *_placed(15.0), 25.0, guard, 1 * s)
    _check(CFG, _prior(), *_placed(17.0, 3.0), 30.0, guard, 2 * s)
    with pytest.raises(FrameRejected):  # a new flip later is refused again
        _check(CFG, _prior(), *_placed(-20.0), 25.0, guard, 3 * s)


def test_a_flip_that_swings_elsewhere_or_comes_late_is_refused_again() -> None:
    guard, s = FlipGuard(2_000_000_000), 1_000_000_000
    with pytest.raises(FrameRejected):
        _check(CFG, _prior(), *_placed(15.0), 25.0, guard, 1 * s)
    with pytest.raises(FrameRejected):  # 40 m from where the first landed
        _check(CFG, _prior(), *_placed(-25.0), 25.0, guard, 2 * s)
    with pytest.raises(FrameRejected):  # where the second landed, but 3 s after it
        _check(CFG, _prior(), *_placed(-25.0), 25.0, guard, 5 * s)
