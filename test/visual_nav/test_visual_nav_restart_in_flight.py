"""visual_nav restarted in flight with the GNSS denied: no track, no healthy GNSS ever
heard. The newest fix the FC bridge took before the restart (``/fc/sent_fix``),
dead-reckoned, is where the search starts; without one, the FC's fused position (its
EKF, which followed our fixes until the restart and dead-reckoned since). Before,
every frame was ``no_prior`` until an operator seeded it.

Real NAIP imagery (map 2017, frames 2020), a 1 km footprint at 1 frame/s.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from gps_denied_onboard.visual_nav.errors import FrameRejected, PriorError
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.prior import (
    RESUMED_UNKNOWN_VELOCITY_SIGMA,
    LostClock,
    PriorConfig,
    PriorTracker,
)
from gps_denied_onboard.visual_nav.state import AttitudeBuffer, Prior

from .support import CAMERA, NS, T0, Pose, error_m, feed, make_estimator, naip, naip_tiles, render

LAT_C, LON_C = 47.0204, -99.1548  # the clip's centre (test_visual_nav_cross_year)


def _fly(
    frames: int,
    ekf_off_m: float | None,
    *,
    resumed_age_s: float | None = None,
    resumed_velocity: bool = True,
    **cfg: object,
) -> list[tuple[VisualFix | FrameRejected, Pose]]:
    """The fix or the reject, and the truth, per frame; the FC's EKF ``ekf_off_m``
    south-west of the truth (None: the FC says it holds no position); with
    ``resumed_age_s``, the bridge's last fix from before the restart, that much older
    than the first frame, 3 m off (with its velocity, or none)."""
    ortho = naip("2020")
    est = make_estimator(naip_tiles("2017"), **cfg)
    est.set_gnss_healthy(False, T0 - NS)  # jammed: the FC's verdict, from before the restart
    course = math.radians(70.0)
    ve, vn = 25.0 * math.sin(course), 25.0 * math.cos(course)
    start = Pose(LAT_C, LON_C, 500.0, pitch_deg=3.0, yaw_deg=70.0).offset(-450.0, -150.0)
    if resumed_age_s is not None:
        before = start.offset(-ve * resumed_age_s + 3.0, -vn * resumed_age_s)
        velocity = (ve + 0.3, vn - 0.3) if resumed_velocity else (0.0, 0.0)
        assert est.resume_track(
            Prior(
                T0 - int(resumed_age_s * NS),
                before.latitude,
                before.longitude,
                3.0,
                velocity,
                0.5 if resumed_velocity else 0.0,  # 0: no velocity sigma, i.e. unknown
                "visual",
            ),
            reset_counter=7,
        )
    out: list[tuple[VisualFix | FrameRejected, Pose]] = []
    for k in range(frames):
        pose = start.offset(ve * k, vn * k)
        stamp = T0 + k * NS
        feed(est, stamp, pose)
        if ekf_off_m is not None:
            d = ekf_off_m / math.sqrt(2.0)
            ekf = pose.offset(-d, -d)
            est.priors.add_fc_estimate(stamp - 50_000_000, ekf.latitude, ekf.longitude)
        try:
            out.append((est.process(stamp, render(ortho, pose), CAMERA), pose))
        except FrameRejected as rej:
            out.append((rej, pose))
    return out


def test_restarted_with_the_gnss_denied_the_fc_position_starts_the_search() -> None:
    flown = _fly(6, ekf_off_m=120.0)
    fixes = [(got, pose) for got, pose in flown if isinstance(got, VisualFix)]
    assert len(fixes) >= 5, [got for got, _p in flown]
    for fix, pose in fixes:
        assert math.hypot(*error_m(pose, fix.latitude, fix.longitude)) < 15.0
    # the first is searched around the FC's position, the rest follow our own track
    assert fixes[0][0].prior_source == "fc_estimate"
    assert all(f.prior_source != "fc_estimate" for f, _p in fixes[1:])


def test_without_the_fc_position_every_frame_is_no_prior() -> None:
    flown = _fly(3, ekf_off_m=None)
    assert all(isinstance(got, FrameRejected) and got.reason == "no_prior" for got, _p in flown)


def test_an_fc_position_further_off_than_it_may_be_is_searched_ever_wider() -> None:
    """550 m of EKF drift, well beyond the 300 m its 100 m sigma searches: frames fail
    until the lost clock has widened the search past it, then are fixed right."""
    flown = _fly(22, ekf_off_m=550.0)
    first = next(k for k, (got, _p) in enumerate(flown) if isinstance(got, VisualFix))
    assert 5 <= first <= 20, [got for got, _p in flown]
    for got, pose in flown[first:]:
        assert isinstance(got, VisualFix), got
        assert math.hypot(*error_m(pose, got.latitude, got.longitude)) < 15.0


@pytest.mark.parametrize(("age_s", "velocity"), [(8.0, True), (8.0, False)])
def test_restarted_the_bridges_last_fix_dead_reckoned_starts_the_search(
    age_s: float, velocity: bool
) -> None:
    """No FC position at all (the EKF lost it while no fix came): the last fix the
    bridge took, 8 s before the first frame (200 m back along the track), starts the
    search, carried with its velocity or, with none, searched wide enough for a
    cruise speed."""
    flown = _fly(5, ekf_off_m=None, resumed_age_s=age_s, resumed_velocity=velocity)
    fixes = [(got, pose) for got, pose in flown if isinstance(got, VisualFix)]
    assert len(fixes) >= 4, [got for got, _p in flown]
    for fix, pose in fixes:
        assert math.hypot(*error_m(pose, fix.latitude, fix.longitude)) < 15.0
    assert fixes[0][0].prior_source == "resumed"
    assert all(f.prior_source != "resumed" for f, _p in fixes[1:])
    # the counter the bridge last saw goes on: no relocalisation that did not happen
    assert {f.reset_counter for f, _p in fixes} == {7}


def test_a_resumed_fix_never_replaces_our_own_track_nor_a_newer_one() -> None:
    p = _tracker()
    old = Prior(T0, LAT_C, LON_C, 3.0, (10.0, 0.0), 0.5, "visual")
    assert p.resume(old)
    got = p.prior_at(T0 + 2 * NS)
    assert got is not None and got.source == "resumed"
    assert got.sigma_m > 3.0  # grown as it is carried
    assert not p.resume(replace(old, stamp_ns=T0 - NS))  # older than the resumed one
    p.add_fix(Prior(T0 + 3 * NS, LAT_C, LON_C, 3.0, (0.0, 0.0), 1.0, "visual"))
    assert not p.resume(replace(old, stamp_ns=T0 + 4 * NS))  # our own track since
    assert p.track is not None and p.track.source == "visual"
    # a seed is only a start: a newer resumed fix replaces it
    q = _tracker()
    q.seed(T0, LAT_C, LON_C, 100.0)
    assert q.resume(replace(old, stamp_ns=T0 + NS))
    # with the GNSS healthy, the GNSS is the prior, as over a seed
    q.set_healthy(True, T0)
    q.add_gnss(T0 + NS, LAT_C + 1e-3, LON_C, healthy=True, sigma_m=5.0)
    assert q.prior_at(T0 + 2 * NS).source == "fc_gnss"  # type: ignore[union-attr]


def test_a_resumed_fix_grown_wider_than_the_fc_position_gives_way_to_it() -> None:
    """A restart long after the bridge's last fix: carried 30 s its sigma (3 m plus
    0.5 m/s and 1 m/s^2 of unknowns) is hundreds of metres, the FC's fused position
    claims 100 m, and the tighter one is searched around. Our own track never gives
    way to it."""
    p = _tracker(fc_estimate_sigma_m=100.0)
    assert p.resume(Prior(T0, LAT_C, LON_C, 3.0, (10.0, 0.0), 0.5, "visual"))
    p.add_fc_estimate(T0 + 2 * NS, LAT_C, LON_C + 1e-3)
    p.add_fc_estimate(T0 + 30 * NS, LAT_C, LON_C + 1e-3)
    assert p.prior_at(T0 + 3 * NS).source == "resumed"  # type: ignore[union-attr]
    assert p.prior_at(T0 + 30 * NS).source == "fc_estimate"  # type: ignore[union-attr]
    p.add_fix(Prior(T0 + 31 * NS, LAT_C, LON_C, 3.0, (10.0, 0.0), 0.5, "visual"))
    p.add_fc_estimate(T0 + 90 * NS, LAT_C, LON_C + 1e-3)
    assert p.prior_at(T0 + 90 * NS).source == "visual_dead_reckoning"  # type: ignore[union-attr]


def test_a_resumed_velocity_past_belief_is_taken_as_unknown_and_off_map_refused() -> None:
    p = _tracker()
    assert p.resume(Prior(T0, LAT_C, LON_C, 3.0, (900.0, 0.0), 0.5, "visual"))
    assert p.track is not None
    assert p.track.velocity_en == (0.0, 0.0)
    assert p.track.velocity_sigma == RESUMED_UNKNOWN_VELOCITY_SIGMA
    with pytest.raises(PriorError):
        p.resume(Prior(T0 + NS, 89.9, 0.0, 3.0, (0.0, 0.0), 0.5, "visual"))
    with pytest.raises(PriorError):
        p.resume(Prior(T0 + NS, LAT_C, LON_C, math.nan, (0.0, 0.0), 0.5, "visual"))


def _tracker(**cfg: object) -> PriorTracker:
    return PriorTracker(PriorConfig(**cfg), AttitudeBuffer())  # type: ignore[arg-type]


def test_the_fc_position_is_only_the_last_resort() -> None:
    p = _tracker(fc_estimate_sigma_m=80.0)
    assert p.prior_at(T0) is None
    p.add_fc_estimate(T0, LAT_C, LON_C)
    got = p.prior_at(T0)
    assert got is not None and got.source == "fc_estimate" and got.sigma_m == 80.0
    # a healthy GNSS, tighter, wins; carried for long its sigma outgrows the FC's
    p.set_healthy(True, T0)
    p.add_gnss(T0, LAT_C + 1e-4, LON_C, healthy=True, sigma_m=5.0)
    assert p.prior_at(T0 + NS).source == "fc_gnss"  # type: ignore[union-attr]
    p.set_healthy(False, T0 + 2 * NS)
    p.add_fc_estimate(T0 + 120 * NS, LAT_C, LON_C)
    assert p.prior_at(T0 + 120 * NS).source == "fc_estimate"  # type: ignore[union-attr]
    # our own track, once there is one, always
    p.add_fix(Prior(T0 + 121 * NS, LAT_C, LON_C, 3.0, (0.0, 0.0), 1.0, "visual"))
    p.add_fc_estimate(T0 + 122 * NS, LAT_C, LON_C)
    assert p.prior_at(T0 + 122 * NS).source == "visual"  # type: ignore[union-attr]


def test_an_fc_position_off_the_map_is_dropped() -> None:
    p = _tracker()
    p.add_fc_estimate(T0, 89.9, 0.0)
    assert p.prior_at(T0) is None


def test_the_lost_clock_widens_an_fc_position_as_it_does_a_gnss() -> None:
    clock = LostClock(after_s=5.0, growth_mps=10.0)
    fc = Prior(T0, LAT_C, LON_C, 100.0, (0.0, 0.0), 3.0, "fc_estimate")
    seed = Prior(T0, LAT_C, LON_C, 100.0, (0.0, 0.0), 3.0, "seed")
    widened = [clock.note_frame(T0 + k * NS, fc, 200.0) for k in range(16)]
    assert widened[:6] == [None] * 6  # not lost before 5 s
    last = widened[-1]  # 10 s lost at 10 m/s
    assert last is not None and last.sigma_m == pytest.approx(math.hypot(100.0, 100.0))
    # an operator's seed grows by itself as it is carried: never widened here
    seeded = LostClock(after_s=5.0, growth_mps=10.0)
    assert all(seeded.note_frame(T0 + k * NS, seed, 200.0) is None for k in range(16))
