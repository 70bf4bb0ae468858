"""A spoofed GNSS: healthy by the FC's verdict, its position dragged off the truth.

Real NAIP imagery (map 2017, frames 2020), a 1 km footprint flown at 1 frame/s.
The GNSS is honest for the first seconds, then a spoofer drags it sideways at
9 m/s while it keeps reporting 3 m accuracy. Searched around the GNSS, every
frame's truth leaves the window once the drag passes it, and no frame is fixed
again; our track holds its ground instead (``PriorTracker.holds``), and each
fix says how far the GNSS has gone. A GNSS spoofed before our first fix is
searched around ever wider while frames fail (``VisualEstimator._lost``).
"""

from __future__ import annotations

import math

import pytest

from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.fix import VisualFix

from .support import CAMERA, NS, T0, Pose, error_m, feed, make_estimator, naip, naip_tiles, render

LAT_C, LON_C = 47.0204, -99.1548  # the clip's centre (test_visual_nav_cross_year)
FRAMES = 36
HONEST_S = 6.0
DRAG_MPS = 9.0


def _fly(
    frames: int = FRAMES,
    honest_s: float = HONEST_S,
    spoofed_from_m: float = 0.0,
    frame_s: float = 1.0,
    **cfg: object,
) -> list[tuple[float, VisualFix | FrameRejected, Pose]]:
    """(the GNSS's offset in m, the fix or the reject, the truth) per frame:
    ``spoofed_from_m`` off from the start, dragged from ``honest_s`` on."""
    ortho = naip("2020")
    est = make_estimator(naip_tiles("2017"), **cfg)
    course = math.radians(70.0)
    ve, vn = 25.0 * math.sin(course), 25.0 * math.cos(course)
    start = Pose(LAT_C, LON_C, 500.0, pitch_deg=3.0, yaw_deg=70.0).offset(-450.0, -150.0)
    out: list[tuple[float, VisualFix | FrameRejected, Pose]] = []
    for k in range(frames):
        t = k * frame_s
        pose = start.offset(ve * t, vn * t)
        drag = spoofed_from_m + max(0.0, t - honest_s) * DRAG_MPS
        stamp = T0 + round(t * NS)
        feed(est, stamp, pose, prior=pose.offset(0.0, -drag), prior_sigma_m=3.0)
        try:
            out.append((drag, est.process(stamp, render(ortho, pose), CAMERA), pose))
        except FrameRejected as rej:
            out.append((drag, rej, pose))
    return out


def test_a_track_of_fixes_keeps_fixing_while_a_healthy_gnss_is_dragged_away() -> None:
    flown = _fly()
    dragged = [(d, got, p) for d, got, p in flown if d >= 200.0]
    assert len(dragged) >= 6
    assert all(isinstance(got, VisualFix) for _d, got, _p in dragged), [
        got for _d, got, _p in dragged
    ]
    for drag, fix, pose in dragged:
        assert isinstance(fix, VisualFix)
        assert math.hypot(*error_m(pose, fix.latitude, fix.longitude)) < 15.0
        assert fix.prior_source != "fc_gnss"
        assert fix.reset_counter == 0  # no jump: the track never left the truth
        # the GNSS's drag is there to see, in the fix and so in its vnav.fix record
        assert fix.gnss_offset_m is not None and abs(fix.gnss_offset_m - drag) < 20.0


def test_searched_around_the_dragged_gnss_no_frame_is_fixed() -> None:
    """What the track holding prevents (``prior_track_over_gnss_fixes`` 0: the
    healthy GNSS always wins; ``lost_sigma_growth_mps`` 0: never widened)."""
    flown = _fly(prior_track_over_gnss_fixes=0, lost_sigma_growth_mps=0.0)
    honest = [got for d, got, _p in flown if d == 0.0]
    assert all(isinstance(got, VisualFix) for got in honest), honest
    dragged = [got for d, got, _p in flown if d >= 230.0]
    assert dragged and not any(isinstance(got, VisualFix) for got in dragged), dragged


def test_every_key_of_a_fix_or_reject_record_is_in_the_record_schema() -> None:
    """A payload key the schema does not list is written but flagged on every record
    (record_schema.check_payload): the evidence keys and gnss_offset_m were."""
    from dataclasses import replace

    from gps_denied_onboard.record_schema import check_payload
    from gps_denied_onboard.visual_nav.outputs import (
        REJECT_DETAIL_KEYS,
        VisualNavStats,
        fix_payload,
        reject_payload,
    )

    fix = next(got for _d, got, _p in _fly(frames=2) if isinstance(got, VisualFix))
    full = replace(
        fix,
        agreement=0.5,
        colour_support=0.4,
        intensity_support=0.3,
        evidence=6.0,
        gnss_offset_m=12.0,
        quadrant_spread_m=3.0,
        frame_offset_m=4.0,
        gnss_scale=1.03,
        gnss_scale_sigma=0.01,
        gnss_heading_deg=2.0,
        gnss_heading_sigma_deg=0.5,
    )
    payload = fix_payload(full, 20.0)
    assert check_payload("vnav.fix", payload) == frozenset()
    assert {"frame_offset_m", "gnss_scale", "gnss_heading_sigma_deg"} <= payload.keys()
    stats = VisualNavStats()
    stats.on_fix(full.stamp_ns, 20.0, full.gnss_offset_m)
    assert stats.as_dict()["gnss_offset_m"] == 12.0  # and in the node's diagnostics
    detail = dict.fromkeys(REJECT_DETAIL_KEYS, 1.0)
    rej = FrameRejected("gate", "short of the gate", **detail)
    payload = reject_payload(rej, 20.0)
    assert set(detail) <= set(payload)
    assert check_payload("vnav.reject", payload) == frozenset()


def test_a_gnss_spoofed_before_the_first_fix_is_searched_around_ever_wider() -> None:
    flown = _fly(frames=24, honest_s=1e9, spoofed_from_m=400.0)
    fixed = [(k, got, p) for k, (_d, got, p) in enumerate(flown) if isinstance(got, VisualFix)]
    # frames fail around the GNSS until the search has widened past 400 m (lost after
    # 5 s, 10 m/s of sigma a second after that: three sigmas reach it by ~19 s)
    assert fixed and 5 <= fixed[0][0] <= 20, [got for _d, got, _p in flown]
    first = fixed[0][0]
    # from the first fix on, the track holds: every frame after it is fixed, right
    assert [k for k, _f, _p in fixed] == list(range(first, len(flown)))
    for _k, fix, pose in fixed:
        assert isinstance(fix, VisualFix)
        assert math.hypot(*error_m(pose, fix.latitude, fix.longitude)) < 15.0
        assert fix.gnss_offset_m is not None and abs(fix.gnss_offset_m - 400.0) < 20.0
    # never widened, no frame is ever fixed
    never = _fly(frames=24, honest_s=1e9, spoofed_from_m=400.0, lost_sigma_growth_mps=0.0)
    assert not any(isinstance(got, VisualFix) for _d, got, _p in never)


def test_a_gap_in_the_frames_starts_the_lost_count_again() -> None:
    """Frames 10 s apart are each a fresh search: never widened, never fixed (30 s of
    failing frames a second apart widen the search past 400 m: the test above)."""
    flown = _fly(frames=4, honest_s=1e9, spoofed_from_m=400.0, frame_s=10.0)
    rejects = [got for _d, got, _p in flown]
    assert all(isinstance(r, FrameRejected) for r in rejects), rejects


def test_each_widened_search_of_a_lost_run_is_judged_on_a_higher_gate() -> None:
    """The n-th widened search draws the n-th time from the window's chance peaks: its
    gate rises by ``gate_sigmas_per_candidate_efold`` per e-fold of searches
    (:func:`.gate.searches_extra`). The 1 km frames found 400 m from the spoofed GNSS
    stand well clear of that (the test above); ask 5 sigma per e-fold instead and the
    searches that reach them (around the 10th) are refused, so nothing is fixed."""
    from gps_denied_onboard.visual_nav.gate import searches_extra

    strict = _fly(
        frames=24, honest_s=1e9, spoofed_from_m=400.0, gate_sigmas_per_candidate_efold=5.0
    )
    assert not any(isinstance(got, VisualFix) for _d, got, _p in strict)
    cfg = make_estimator(naip_tiles("2017")).cfg
    assert searches_extra(cfg, 1) == 0.0  # the first is judged on the tables alone
    assert searches_extra(cfg, 11) == math.log(11) * cfg.gate_sigmas_per_candidate_efold
    assert searches_extra(cfg, 20) > searches_extra(cfg, 11)


def test_no_second_search_while_the_widened_window_is_still_the_least() -> None:
    """A GNSS claiming 3 m is searched in the least window (min_search_radius_m); lost
    for a few seconds, its widened sigma (10 m/s a second) still asks no more than
    that window: the same search is not made twice, nor counted, until it does."""
    ortho = naip("2020")
    est = make_estimator(naip_tiles("2017"))
    cfg = est.cfg
    pose = Pose(LAT_C, LON_C, 500.0, yaw_deg=70.0).offset(-450.0, -150.0)
    least = cfg.min_search_radius_m / cfg.search_sigma_k  # 50 m of sigma
    counted, expected = [], []
    for k in range(14):
        stamp = T0 + k * NS
        feed(est, stamp, pose, prior=pose.offset(0.0, -400.0), prior_sigma_m=3.0)
        with pytest.raises(FrameRejected):  # 400 m off: beyond every window so far
            est.process(stamp, render(ortho, pose), CAMERA)
        counted.append(est.lost.searches)
        widened = math.hypot(3.0, cfg.lost_sigma_growth_mps * max(k - cfg.lost_after_s, 0.0))
        expected.append((expected[-1] if expected else 0) + (widened > least))
    assert counted == expected
    assert expected[:10] == [0] * 10 and expected[-1] == 4  # widened past 50 m from 10 s
