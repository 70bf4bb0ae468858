"""A stitched patch that both its witnesses contradict is refused (gate.check_patch_not_flipped).

The newest frame alone lying far off the patch's placement is common and mostly
harmless (the frame alone is the weaker witness), and so is a placement some
metres off our own track's prediction; both at once is what a patch settled on
the wrong end of its heading/scale ridge looks like.
"""

from __future__ import annotations

import pytest

from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.gate import check_patch_not_flipped
from gps_denied_onboard.visual_nav.geo import LocalFrame
from gps_denied_onboard.visual_nav.settings import EstimatorConfig
from gps_denied_onboard.visual_nav.state import Prior

LAT, LON = 47.02, -99.15
CFG = EstimatorConfig()  # stitch_flip_frame_offset_m 20, stitch_flip_jump_m 10


def _prior(source: str = "visual_odometry", *, contested: bool = False) -> Prior:
    return Prior(0, LAT, LON, 4.0, (28.0, 0.0), 0.3, source, contested=contested)


def _placed(east_m: float) -> tuple[float, float]:
    return LocalFrame(LAT, LON).to_latlon(east_m, 0.0)


def test_a_patch_off_both_its_newest_frame_and_our_track_is_refused_with_both_distances() -> None:
    with pytest.raises(FrameRejected) as err:
        check_patch_not_flipped(CFG, _prior(), *_placed(15.0), 25.0)
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
    check_patch_not_flipped(CFG, _prior(), *_placed(jump_m), frame_offset_m)


@pytest.mark.parametrize("source", ["fc_gnss", "seed", "fc_estimate"])
def test_a_jump_is_not_measured_from_a_prior_that_is_not_our_own_track(source: str) -> None:
    check_patch_not_flipped(CFG, _prior(source), *_placed(150.0), 40.0)


def test_a_jump_is_not_measured_from_a_track_a_healthy_gnss_contests() -> None:
    check_patch_not_flipped(CFG, _prior(contested=True), *_placed(150.0), 40.0)
    with pytest.raises(FrameRejected):
        check_patch_not_flipped(CFG, _prior("visual_dead_reckoning"), *_placed(150.0), 40.0)
