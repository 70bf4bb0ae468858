"""A spoofed GNSS: healthy by the FC's verdict, its position dragged off the truth.

Real NAIP imagery (map 2017, frames 2020), a 1 km footprint flown at 1 frame/s.
The GNSS is honest for the first seconds, then a spoofer drags it sideways at
9 m/s while it keeps reporting 3 m accuracy. Searched around the GNSS, every
frame's truth leaves the window once the drag passes it, and no frame is fixed
again; the track of fixes in a row holds its ground instead
(``PriorTracker.holds``), and each fix says how far the GNSS has gone.
"""

from __future__ import annotations

import math

from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.estimator import VisualFix

from .support import CAMERA, NS, T0, Pose, error_m, feed, make_estimator, naip, naip_tiles, render

LAT_C, LON_C = 47.0204, -99.1548  # the clip's centre (test_visual_nav_cross_year)
FRAMES = 36
HONEST_S = 6.0
DRAG_MPS = 9.0


def _fly(frames: int = FRAMES, **cfg: object) -> list[tuple[float, VisualFix | str, Pose]]:
    """(the GNSS's drag in m, the fix or the reject's reason, the truth) per frame."""
    ortho = naip("2020")
    est = make_estimator(naip_tiles("2017"), **cfg)
    course = math.radians(70.0)
    ve, vn = 25.0 * math.sin(course), 25.0 * math.cos(course)
    start = Pose(LAT_C, LON_C, 500.0, pitch_deg=3.0, yaw_deg=70.0).offset(-450.0, -150.0)
    out: list[tuple[float, VisualFix | str, Pose]] = []
    for k in range(frames):
        pose = start.offset(ve * k, vn * k)
        drag = max(0.0, k - HONEST_S) * DRAG_MPS
        stamp = T0 + k * NS
        feed(est, stamp, pose, prior=pose.offset(0.0, -drag), prior_sigma_m=3.0)
        try:
            out.append((drag, est.process(stamp, render(ortho, pose), CAMERA), pose))
        except FrameRejected as rej:
            out.append((drag, rej.reason, pose))
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
    healthy GNSS always wins)."""
    flown = _fly(prior_track_over_gnss_fixes=0)
    honest = [got for d, got, _p in flown if d == 0.0]
    assert all(isinstance(got, VisualFix) for got in honest), honest
    dragged = [got for d, got, _p in flown if d >= 230.0]
    assert dragged and not any(isinstance(got, VisualFix) for got in dragged), dragged


def test_every_key_of_a_fix_or_reject_record_is_in_the_record_schema() -> None:
    """A payload key the schema does not list is written but flagged on every record
    (record_schema.check_payload): the evidence keys and gnss_offset_m were."""
    from dataclasses import replace

    from gps_denied_onboard.record_schema import check_payload
    from gps_denied_onboard.visual_nav.outputs import VisualNavStats, fix_payload, reject_payload

    fix = next(got for _d, got, _p in _fly(frames=2) if isinstance(got, VisualFix))
    full = replace(
        fix,
        agreement=0.5,
        colour_support=0.4,
        intensity_support=0.3,
        evidence=6.0,
        gnss_offset_m=12.0,
    )
    assert check_payload("vnav.fix", fix_payload(full, 20.0)) == frozenset()
    stats = VisualNavStats()
    stats.on_fix(full.stamp_ns, 20.0, full.gnss_offset_m)
    assert stats.as_dict()["gnss_offset_m"] == 12.0  # and in the node's diagnostics
    detail = {
        k: 1.0
        for k in [
            "margin",
            "margin_sigmas",
            "agreement",
            "colour_support",
            "intensity_support",
            "evidence",
            "score",
            "search_radius_m",
            "template_side_m",
            "on_edge",
            "height_m",
            "age_ms",
            "gap_ms",
        ]
    }
    rej = FrameRejected("gate", "short of the gate", **detail)
    payload = reject_payload(rej, 20.0)
    assert set(detail) <= set(payload)
    assert check_payload("vnav.reject", payload) == frozenset()
