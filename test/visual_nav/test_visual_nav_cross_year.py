"""Cross-year cases on the shared NAIP orthophotos pin the matcher and the gate.

Map tiles are cut from NAIP 2017; frames are rendered from NAIP 2020 (three
years later: other crops, other light). The gate threshold was calibrated on
2014 frames (bench/_visual_nav_calibration.py --calibrate), not on these.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.gate import evidence_extra_at

from .support import CAMERA, T0, Pose, error_m, feed, make_estimator, naip, naip_tiles, render

LAT_C, LON_C = 47.0204, -99.1548  # the clip's centre; +-1.2 km keeps 1 km footprints inside


def _poses(seed: int, n: int) -> list[Pose]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = Pose(
            LAT_C,
            LON_C,
            500.0,
            roll_deg=float(rng.uniform(-10, 10)),
            pitch_deg=float(rng.uniform(-8, 8)),
            yaw_deg=float(rng.uniform(-180, 180)),
        )
        out.append(p.offset(float(rng.uniform(-1200, 1200)), float(rng.uniform(-800, 800))))
    return out


def test_frames_three_years_after_the_map_fix_near_the_truth() -> None:
    ortho = naip("2020")
    est = make_estimator(naip_tiles("2017"))
    rng = np.random.default_rng(7)
    errors = []
    for k, pose in enumerate(_poses(11, 6)):
        stamp = T0 + k * 60 * 10**9  # far apart: each frame stands alone
        ang = rng.uniform(0, 2 * math.pi)
        prior = pose.offset(120 * math.cos(ang), 120 * math.sin(ang))
        feed(
            est,
            stamp,
            pose,
            prior=prior,
            prior_sigma_m=60.0,
            yaw_error_deg=float(rng.uniform(-3, 3)),
            height_factor=float(rng.uniform(0.93, 1.07)),
        )
        fix = est.process(stamp, render(ortho, pose), CAMERA)
        errors.append(math.hypot(*error_m(pose, fix.latitude, fix.longitude)))
    assert max(errors) < 15.0, errors
    assert float(np.median(errors)) < 6.0, errors


def test_the_search_harmonics_do_not_leak_into_the_heading_and_scale_refinement() -> None:
    """Searching on two orientation harmonics and refining on one refines heading and
    scale as refining after a one-harmonic search does: the refinement's parabolas
    take every score from the same correlation (a peak score from the search, on
    another scale, once bent them to their clamp: 1 km p95 error 4.6 -> 11 m)."""
    from dataclasses import replace

    from gps_denied_onboard.visual_nav.matcher import MatchConfig

    ortho = naip("2020")
    tiles = naip_tiles("2017")
    got: dict[int, list[tuple[float, float, float]]] = {1: [], 2: []}
    for harmonics in (1, 2):
        est = make_estimator(tiles, match=replace(MatchConfig(), orientation_harmonics=harmonics))
        rng = np.random.default_rng(17)
        for k, pose in enumerate(_poses(29, 4)):
            stamp = T0 + k * 60 * 10**9
            feed(
                est,
                stamp,
                pose,
                prior=pose.offset(80.0, -60.0),
                prior_sigma_m=60.0,
                yaw_error_deg=float(rng.uniform(-3, 3)),
                height_factor=float(rng.uniform(0.93, 1.07)),
            )
            fix = est.process(stamp, render(ortho, pose), CAMERA)
            err = math.hypot(*error_m(pose, fix.latitude, fix.longitude))
            got[harmonics].append((fix.heading_offset_deg, fix.scale, err))
    for (h1, s1, e1), (h2, s2, e2) in zip(got[1], got[2], strict=True):
        assert abs(h2 - h1) < 0.5, (got[1], got[2])
        assert abs(s2 / s1 - 1.0) < 0.01, (got[1], got[2])
        assert e2 < e1 + 2.0, (got[1], got[2])


def test_a_prior_displaced_outside_the_search_area_gives_no_fix() -> None:
    """The truth is 0.9-1.2 km from a confident prior (search radius 150 m): whatever
    the correlation finds inside the window is wrong, and the gate must say so."""
    ortho = naip("2020")
    est = make_estimator(naip_tiles("2017"))
    rng = np.random.default_rng(5)
    accepted = []
    for k, pose in enumerate(_poses(23, 12)):
        stamp = T0 + k * 60 * 10**9
        ang = rng.uniform(0, 2 * math.pi)
        d = rng.uniform(900, 1200)
        prior = pose.offset(d * math.cos(ang), d * math.sin(ang))
        feed(est, stamp, pose, prior=prior, prior_sigma_m=10.0)
        try:
            fix = est.process(stamp, render(ortho, pose), CAMERA)
        except FrameRejected as rej:
            assert rej.reason in ("gate", "prior_outside_map"), rej
            continue
        accepted.append((k, fix.margin, error_m(pose, fix.latitude, fix.longitude)))
    assert accepted == []


def test_a_smaller_search_window_asks_for_more_margin() -> None:
    """A small window's runner-up is the best of few chance peaks: for a large template
    the gap is wider there; a small template's margin as heavy-tailed at every radius."""
    est = make_estimator(naip_tiles("2017"))
    for side in (700.0, 900.0):
        gates = [est.gate_at(r, side) for r in (100.0, 150.0, 250.0, 360.0)]
        assert gates[0] == gates[1] > gates[2] > gates[3]
        assert est.cfg.gate_corroborated_sigmas < min(gates)
    # a 400 m template's chance margins reached 3.0-3.2 sigma at 150, 360 and 600 m
    # alike; its evidence (gate.evidence_extra_at) ran highest in a 150 m search
    small = [est.gate_at(r, 400.0) for r in (150.0, 360.0, 600.0)]
    assert small[0] == small[1] == small[2] > est.cfg.gate_corroborated_sigmas
    extra = [evidence_extra_at(est.cfg, r) for r in (150.0, 360.0, 600.0)]
    assert extra[0] > extra[2] > extra[1]


def test_a_smaller_template_asks_for_more_margin() -> None:
    """A 400 m frame's chance scores are heavier-tailed than a 1 km frame's, and a frame
    from lower still (a side under gate_small_side_m) heavier-tailed again."""
    est = make_estimator(naip_tiles("2017"))
    sides = (170.0, 255.0, 340.0, 400.0, 700.0, 900.0, 1500.0)
    for radius in (150.0, 360.0):
        gates = [est.gate_at(radius, side) for side in sides]
        assert gates[0] > gates[1] > gates[2] == gates[3] > gates[4] > gates[5] == gates[6]
    # calibration pairs, certainly-wrong matches of frames from 150 m and 100 m above
    # ground (sides of about 255 and 170 m): the best margins were 3.62 and 3.32 sigma,
    # with the quadrants' agreement added 5.04 and 4.61
    low, lower = est.gate_at(360.0, 255.0), est.gate_at(360.0, 170.0)
    assert low > 3.62 and low + est.cfg.gate_agreement_extra_sigmas > 5.04
    assert lower > 3.32 and lower + est.cfg.gate_agreement_extra_sigmas > 4.61


def test_a_larger_template_needs_a_higher_score() -> None:
    """A 1 km frame's chance scores are low, so its floor sits above a 400 m frame's."""
    est = make_estimator(naip_tiles("2017"))
    floors = [est.min_score_at(side) for side in (300.0, 400.0, 625.0, 850.0, 1200.0)]
    assert floors[0] == floors[1] < floors[2] < floors[3] == floors[4]
    assert floors[2] == pytest.approx((floors[1] + floors[3]) / 2)


def test_the_gate_counts_the_margin_in_the_score_surface_spread() -> None:
    """The same raw margin on a noisier surface is a weaker answer."""
    from gps_denied_onboard.visual_nav.correlate import find_peak

    rng = np.random.default_rng(3)
    calm = rng.normal(0.0, 0.02, (60, 60)).astype(np.float32)
    noisy = rng.normal(0.0, 0.06, (60, 60)).astype(np.float32)
    peaks = []
    for surface in (calm, noisy):
        s = surface.copy()
        s[30, 30] = float(np.delete(s.ravel(), 30 * 60 + 30).max()) + 0.15
        s[29:32, 29:32] = np.maximum(s[29:32, 29:32], s[30, 30] - 0.01)
        s[30, 30] += 0.01
        peaks.append(find_peak(s, 8.0))
    assert peaks[0].spread == pytest.approx(0.02, rel=0.15)
    assert peaks[1].spread == pytest.approx(0.06, rel=0.15)
    assert peaks[0].margin_sigmas > 2.0 * peaks[1].margin_sigmas


@pytest.mark.parametrize(("agl_m", "adds"), [(200.0, True), (500.0, False)])
def test_a_small_frame_alone_adds_its_placement_to_sigma(agl_m: float, adds: bool) -> None:
    """A 400 m footprint matched alone adds ``single_sigma_margin_m`` / margin (its
    near misses); a 1 km one does not."""
    ortho = naip("2020")
    pose = Pose(LAT_C, LON_C, agl_m, roll_deg=3.0, pitch_deg=-2.0, yaw_deg=40.0).offset(300, 200)
    sigmas = []
    for k in (0.0, 20.0):
        est = make_estimator(naip_tiles("2017"), single_sigma_margin_m=k)
        feed(est, T0, pose, prior=pose.offset(60, -40), prior_sigma_m=40.0)
        fix = est.process(T0, render(ortho, pose), CAMERA)
        sigmas.append((fix.sigma_m, fix.margin_sigmas))
    (without, margin), (with_term, _) = sigmas
    if adds:
        assert with_term == pytest.approx(math.hypot(without, 20.0 / max(margin, 1.0)), rel=1e-6)
    else:
        assert with_term == pytest.approx(without, rel=1e-9)


def test_a_small_frame_alone_takes_its_margin_and_spread_terms_fading_with_its_side() -> None:
    from gps_denied_onboard.visual_nav.settings import EstimatorConfig
    from gps_denied_onboard.visual_nav.uncertainty import UNMEASURED_SPREAD_M, position_sigma

    cfg = EstimatorConfig(single_sigma_margin_m=20.0, single_sigma_spread_k=0.5)

    def sigma(side_m: float, spread: float | None, resolution_m: float = 5.0) -> float:
        return position_sigma(
            cfg,
            resolution_m=resolution_m,
            height_m=200.0,
            fine_score=0.4,
            template_px=7000,
            template_side_m=side_m,
            margin_sigmas=4.0,
            stitched=False,
            quadrant_spread_m=spread,
        )

    bare = sigma(900.0, 10.0)  # past gate_side_m[1]: no placement terms
    assert sigma(900.0, None) == bare
    assert sigma(400.0, 10.0) == pytest.approx(math.hypot(bare, 20.0 / 4.0, 0.5 * 10.0))
    half = float(np.interp(625.0, cfg.gate_side_m, (1.0, 0.0)))
    assert sigma(625.0, 10.0) == pytest.approx(math.hypot(bare, half * math.hypot(5.0, 5.0)))
    # not measured: the stitched fixes' 9-in-10 spread, at the map's resolution
    assert sigma(400.0, None) == pytest.approx(math.hypot(bare, 5.0, 0.5 * UNMEASURED_SPREAD_M))


@pytest.mark.parametrize(("agl_m", "adds"), [(200.0, True), (500.0, False)])
def test_a_small_frame_alone_adds_how_far_its_quadrants_spread(agl_m: float, adds: bool) -> None:
    """A 400 m footprint matched alone measures where its quadrants' own peaks lie
    and adds ``single_sigma_spread_k`` times their spread (its near misses pull them
    apart); a 1 km one measures nothing and adds nothing."""
    ortho = naip("2020")
    pose = Pose(LAT_C, LON_C, agl_m, roll_deg=3.0, pitch_deg=-2.0, yaw_deg=40.0).offset(300, 200)
    fixes = []
    for k in (0.0, 0.5):
        est = make_estimator(naip_tiles("2017"), single_sigma_spread_k=k)
        feed(est, T0, pose, prior=pose.offset(60, -40), prior_sigma_m=40.0)
        fixes.append(est.process(T0, render(ortho, pose), CAMERA))
    without, with_term = fixes
    if adds:
        assert with_term.template_side_m < 450.0
        spread = with_term.quadrant_spread_m
        assert spread is not None and spread == without.quadrant_spread_m
        assert with_term.sigma_m == pytest.approx(math.hypot(without.sigma_m, 0.5 * spread))
    else:
        assert with_term.template_side_m > 850.0
        assert with_term.quadrant_spread_m is None
        assert with_term.sigma_m == pytest.approx(without.sigma_m, rel=1e-9)


def test_a_search_over_more_candidates_asks_for_more() -> None:
    """The best of more chance peaks stands higher: a cold start with an untrusted
    heading (45 headings x 3 scales) needs a higher gate than the calibrated 3 x 3
    search, and the gate does not loosen for fewer (tracking: one)."""
    from gps_denied_onboard.visual_nav.gate import CALIBRATED_CANDIDATES, candidates_extra

    cfg = make_estimator(naip_tiles("2017")).cfg
    assert candidates_extra(cfg, CALIBRATED_CANDIDATES) == 0.0
    assert candidates_extra(cfg, 1) == 0.0
    all_round = candidates_extra(cfg, 45 * 3)
    # certainly-wrong 400 m evidence stood 0.7-1.0 sigma higher at the 90th-99th
    # percentiles of the all-round search (calibration pairs)
    assert 0.95 <= all_round <= 1.1
    finer = candidates_extra(cfg, 90 * 3)  # heading_search_step_deg 4
    assert finer > all_round


def test_an_all_round_cold_start_is_judged_on_the_higher_gate() -> None:
    """The estimator hands the untrusted-heading search's extra to the gate: the same
    certainly-wrong 400 m frames (truth 0.9-1.2 km from the prior) are refused against
    the 3 x 3 search's bar plus candidates_extra(45 x 3). (Without scale rungs: a
    frame whose scale presses past the candidates would add a rung's pairs to either
    count; test_visual_nav_scale_rungs pins those.)"""
    import re

    from gps_denied_onboard.visual_nav.gate import candidates_extra, gate_at

    ortho = naip("2020")
    tiles = naip_tiles("2017")
    trusted = make_estimator(tiles, scale_search_rungs=0)
    all_round = make_estimator(tiles, heading_trusted=False, scale_search_rungs=0)
    extra = candidates_extra(all_round.cfg, 45 * 3)
    rng = np.random.default_rng(43)
    compared = 0
    for k, high in enumerate(_poses(37, 5)):
        pose = Pose(high.latitude, high.longitude, 200.0, yaw_deg=high.yaw_deg)
        stamp = T0 + k * 60 * 10**9
        ang = rng.uniform(0, 2 * math.pi)
        d = rng.uniform(900, 1200)
        prior = pose.offset(d * math.cos(ang), d * math.sin(ang))
        for est, more in ((trusted, 0.0), (all_round, extra)):
            feed(est, stamp, pose, prior=prior, prior_sigma_m=120.0)
            with pytest.raises(FrameRejected) as rej:
                est.process(stamp, render(ortho, pose), CAMERA)
            got = re.search(r"evidence [-0-9.]+ sigma < ([0-9.]+)", str(rej.value))
            if got is None:
                continue  # under the score floor: no bar to read
            radius = float(rej.value.detail["search_radius_m"])
            side = float(rej.value.detail["template_side_m"])
            bar = gate_at(est.cfg, radius, side) + evidence_extra_at(est.cfg, radius) + more
            assert float(got.group(1)) == pytest.approx(bar, abs=0.006)
            compared += more > 0
    assert compared >= 3
