"""Which heading and scale candidates one search takes
(:func:`gps_denied_onboard.visual_nav.search.plan_search`): all round, tracking, or held;
and what the estimator hands it after a fix on the GNSS."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gps_denied_onboard.visual_nav.camera import mount_rotation
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.geo import LocalFrame
from gps_denied_onboard.visual_nav.gnss_correction import Correction
from gps_denied_onboard.visual_nav.matcher import MatchConfig
from gps_denied_onboard.visual_nav.search import SearchPlan, plan_search
from gps_denied_onboard.visual_nav.views import FrameView, MatchView, PatchView

from .support import (
    CAMERA,
    LAT0,
    LON0,
    NS,
    T0,
    Pose,
    error_m,
    feed,
    make_estimator,
    render,
    synthetic_world,
)

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


def _fly_on_gnss(
    monkeypatch: pytest.MonkeyPatch, gaps_s: tuple[float, ...], **cfg: object
) -> tuple[list[VisualFix], list[SearchPlan]]:
    """1 km frames along a leg, the healthy GNSS the prior throughout, ``gaps_s``
    apart (the first at T0); the autopilot's yaw 3 deg off, its height 4 % high.
    Every frame must be fixed on the GNSS prior. Returns the fixes and the plans."""
    from gps_denied_onboard.visual_nav import estimator as estimator_module

    plans: list[SearchPlan] = []

    def spy(*args: object, **kwargs: object) -> SearchPlan:
        plans.append(plan_search(*args, **kwargs))  # type: ignore[arg-type]
        return plans[-1]

    monkeypatch.setattr(estimator_module, "plan_search", spy)
    ortho, tiles = synthetic_world()
    est = make_estimator(tiles, **cfg)
    fixes: list[VisualFix] = []
    t = 0.0
    for k, gap in enumerate((0.0, *gaps_s)):
        t += gap
        east = 24.0 * t
        lat, lon = LocalFrame(LAT0, LON0).to_latlon(east, 0.0)
        pose = Pose(lat, lon, 500.0, yaw_deg=90.0)
        stamp = T0 + int(t * NS)
        feed(est, stamp, pose, yaw_error_deg=3.0, height_factor=1.04, prior=pose, prior_sigma_m=2.0)
        fix = est.process(stamp, render(ortho, pose), CAMERA)
        assert fix.prior_source == "fc_gnss", (k, fix.prior_source)
        assert math.hypot(*error_m(pose, fix.latitude, fix.longitude)) < 10.0
        fixes.append(fix)
    return fixes, plans


def test_a_frame_soon_after_a_fix_on_the_gnss_starts_from_that_fixs_heading_and_scale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Heading bias and height scale are the autopilot's, whatever the position prior
    is: a frame within ``track_window_s`` of the last fix searches that fix's pair, on
    the GNSS as on our own track (the nine candidates cost twice the time: the sample
    flight's GNSS leg went from p50 150 to 82-109 ms a frame in the main job). Past
    the window it searches every candidate again."""
    fixes, plans = _fly_on_gnss(monkeypatch, (0.5, 0.5, 3.0))
    assert [p.candidates for p in plans] == [9, 1, 1, 9]
    for before, plan in zip(fixes[:2], plans[1:3], strict=True):
        assert plan.match.heading_candidates_deg == (before.heading_offset_deg,)
        assert plan.match.scale_candidates == (before.scale,)


def test_an_untrusted_heading_is_searched_all_round_only_until_a_fix_gives_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the autopilot's heading untrusted, the first frame on the GNSS searches every
    heading; the next one, half a second later, the heading that fix found."""
    fixes, plans = _fly_on_gnss(monkeypatch, (0.5,), heading_trusted=False)
    assert [p.candidates for p in plans] == [45 * 3, 1]
    assert plans[1].match.heading_candidates_deg == (fixes[0].heading_offset_deg,)
