"""Which heading and scale candidates one search takes
(:func:`gps_denied_onboard.visual_nav.search.plan_search`): all round, tracking, or held."""

from __future__ import annotations

import numpy as np

from gps_denied_onboard.visual_nav.camera import mount_rotation
from gps_denied_onboard.visual_nav.gnss_correction import Correction
from gps_denied_onboard.visual_nav.matcher import MatchConfig
from gps_denied_onboard.visual_nav.search import SearchPlan, plan_search
from gps_denied_onboard.visual_nav.views import FrameView, MatchView, PatchView

from .support import CAMERA, LAT0, LON0, Pose

MEASURED = Correction(heading_deg=2.0, heading_sigma_deg=0.5, scale=1.05, scale_sigma=0.01, pairs=9)


def _frame() -> FrameView:
    gray = np.random.default_rng(3).uniform(0, 255, (CAMERA.height, CAMERA.width))
    r = Pose(LAT0, LON0, 200.0).r_enu_flu() @ mount_rotation((0.0, 0.0, 0.0))
    return FrameView(gray.astype(np.float32), CAMERA, r, 200.0)


def _patch() -> PatchView:
    rf = _frame().render(0.0, 1.0, 5.0)
    assert rf is not None
    return PatchView(rf, 0.0, 1.0)


def _plan(
    view: MatchView,
    *,
    trusted: bool = True,
    cold: bool = False,
    pair: tuple[float, float] | None = None,
    measured: Correction | None = None,
) -> SearchPlan:
    return plan_search(
        MatchConfig(),
        view,
        heading_trusted=trusted,
        heading_search_step_deg=8.0,
        cold=cold,
        tracking_pair=pair,
        measured=measured,
        bound_k=2.5,
    )


def test_a_cold_search_with_an_untrusted_heading_searches_every_heading() -> None:
    plan = _plan(_frame(), trusted=False, cold=True, pair=(1.0, 1.02))
    assert plan.match.heading_candidates_deg == tuple(-180.0 + 8.0 * k for k in range(45))
    assert plan.candidates == 45 * 3
    # with a trusted heading, or an own track to carry one, the configured candidates
    assert _plan(_frame(), cold=True).match == MatchConfig()
    assert _plan(_frame(), trusted=False).match == MatchConfig()


def test_a_tracked_frame_searches_the_last_pair_but_a_patch_every_candidate() -> None:
    plan = _plan(_frame(), pair=(1.5, 0.97))
    assert plan.match.heading_candidates_deg == (1.5,) and plan.match.scale_candidates == (0.97,)
    assert plan.candidates == 1
    assert _plan(_patch(), pair=(1.5, 0.97)).match == MatchConfig()


def test_only_a_patch_is_held_to_the_measured_correction() -> None:
    held = _plan(_patch(), measured=MEASURED)
    assert held.match.heading_candidates_deg == (2.0,) and held.match.scale_candidates == (1.05,)
    assert held.held_scale is MEASURED and held.held_heading is MEASURED
    alone = _plan(_frame(), measured=MEASURED)
    assert alone.match == MatchConfig() and alone.held_scale is None and alone.held_heading is None
    # an untrusted heading searched all round keeps every heading: only the scale is held
    lost = _plan(_patch(), trusted=False, cold=True, measured=MEASURED)
    assert len(lost.match.heading_candidates_deg) == 45 and lost.match.scale_candidates == (1.05,)
    assert lost.held_scale is MEASURED and lost.held_heading is None
