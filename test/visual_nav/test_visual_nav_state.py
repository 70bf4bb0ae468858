"""Attitude at the capture stamp, height above ground, the prior and its search radius."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gps_denied_onboard.visual_nav.camera import (
    enu_from_flu_of_ned_euler,
    ned_euler_of_enu_from_flu,
)
from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.estimator import VisualEstimator
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.geo import LocalFrame
from gps_denied_onboard.visual_nav.mapview import DictTileSource
from gps_denied_onboard.visual_nav.prior import PriorConfig, PriorTracker
from gps_denied_onboard.visual_nav.settings import EstimatorConfig
from gps_denied_onboard.visual_nav.state import AttitudeBuffer, HeightSource, Prior

from .support import LAT0, LON0, NS, T0, Pose

MS = 1_000_000


def _r(roll: float, pitch: float, yaw: float) -> np.ndarray:
    return enu_from_flu_of_ned_euler(math.radians(roll), math.radians(pitch), math.radians(yaw))


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    c = (np.trace(a.T @ b) - 1.0) / 2.0
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def test_attitude_is_interpolated_at_the_capture_stamp() -> None:
    buf = AttitudeBuffer(max_age_s=0.1, max_gap_s=0.25)
    buf.add(T0, _r(0, 0, 350))
    buf.add(T0 + 40 * MS, _r(0, 0, 10))  # through north: the short way round
    _, _, yaw = np.degrees(ned_euler_of_enu_from_flu(buf.at(T0 + 10 * MS)))
    assert yaw == pytest.approx(-5.0, abs=1e-6)
    # with roll and pitch too, the slerp moves along the arc at constant rate
    r0, r1 = _r(0, 0, 0), _r(10, -4, 20)
    buf.add(T0 + 80 * MS, r0)
    buf.add(T0 + 120 * MS, r1)
    quarter = buf.at(T0 + 90 * MS)
    total = _angle_deg(r0, r1)
    assert _angle_deg(r0, quarter) == pytest.approx(total / 4, abs=1e-6)
    assert _angle_deg(quarter, r1) == pytest.approx(3 * total / 4, abs=1e-6)


def _vibrating(t_s: float) -> tuple[np.ndarray, np.ndarray]:
    """A banked aircraft shaking in roll (5.3 Hz, 0.5 deg) and pitch (3.1 Hz, 0.4 deg)
    as it turns: its attitude and body rates (FLU, rad/s) at ``t_s``, from the
    attitude itself (a central difference over 0.1 ms)."""

    def att(t: float) -> np.ndarray:
        roll = 20.0 + 0.5 * math.sin(2 * math.pi * 5.3 * t)
        pitch = 3.0 + 0.4 * math.sin(2 * math.pi * 3.1 * t + 1.0)
        return _r(roll, pitch, 7.3 * t)

    eps = 5e-5
    a, b = att(t_s - eps), att(t_s + eps)
    rel = a.T @ b
    w = np.array([rel[2, 1] - rel[1, 2], rel[0, 2] - rel[2, 0], rel[1, 0] - rel[0, 1]])
    return att(t_s), w / 2.0 / (2 * eps)


def test_between_samples_the_body_rates_follow_a_vibration_that_slerp_cuts_through() -> None:
    """25 Hz attitude with its gyros' rates, frames between the samples: the curve the
    rates shape (hermite_rotation) lands several times nearer the truth than slerp."""
    with_rates = AttitudeBuffer(max_age_s=0.1, max_gap_s=0.25)
    without = AttitudeBuffer(max_age_s=0.1, max_gap_s=0.25)
    for k in range(26):
        r, w = _vibrating(k * 0.04)
        with_rates.add(T0 + k * 40 * MS, r, (float(w[0]), float(w[1]), float(w[2])))
        without.add(T0 + k * 40 * MS, r)
    off_slerp, off_rates = [], []
    for k in range(25):
        for frac in (0.25, 0.5, 0.7):
            t = k * 0.04 + frac * 0.04
            truth = _vibrating(t)[0]
            stamp = T0 + round(t * 1e9)
            off_slerp.append(_angle_deg(truth, without.at(stamp)))
            off_rates.append(_angle_deg(truth, with_rates.at(stamp)))
    rms_slerp = math.sqrt(np.mean(np.square(off_slerp)))
    rms_rates = math.sqrt(np.mean(np.square(off_rates)))
    assert rms_slerp > 0.03  # the vibration is there to be missed
    assert rms_rates < 0.25 * rms_slerp, (rms_rates, rms_slerp)


def test_a_steady_rate_gives_the_slerp_and_rates_missing_or_wild_leave_it() -> None:
    r0, r1 = _r(0, 0, 0), _r(0, 0, 4)  # yawing at 100 deg/s (ENU +z is a left turn)
    w = (0.0, 0.0, -math.radians(100.0))
    steady = AttitudeBuffer()
    steady.add(T0, r0, w)
    steady.add(T0 + 40 * MS, r1, w)
    plain = AttitudeBuffer()
    plain.add(T0, r0)
    plain.add(T0 + 40 * MS, r1)
    assert _angle_deg(steady.at(T0 + 13 * MS), plain.at(T0 + 13 * MS)) < 1e-4
    for rates in ((0.0, 0.0, math.nan), (0.0, 50.0, 0.0), None):
        one_side = AttitudeBuffer()
        one_side.add(T0, r0, (0.3, -0.2, 0.1))  # the other sample's rates: none
        one_side.add(T0 + 40 * MS, r1, rates)
        assert _angle_deg(one_side.at(T0 + 13 * MS), plain.at(T0 + 13 * MS)) < 1e-4


def test_the_interpolation_spread_is_nothing_on_a_sample_and_most_halfway_between() -> None:
    """How far the rates' curve departs from the slerp: what a frame's attitude owes to
    interpolating a vibration. None on a sample, at a steady rate or without rates;
    largest halfway, and there at least the curve's own error."""
    buf = AttitudeBuffer(max_age_s=0.1, max_gap_s=0.25)
    for k in range(26):
        r, w = _vibrating(k * 0.04)
        buf.add(T0 + k * 40 * MS, r, (float(w[0]), float(w[1]), float(w[2])))
    at_sample, quarter, half, off_half = [], [], [], []
    for k in range(1, 24):
        at_sample.append(buf.interpolation_spread(T0 + k * 40 * MS))
        quarter.append(math.hypot(*buf.interpolation_spread(T0 + k * 40 * MS + 10 * MS)))
        stamp = T0 + k * 40 * MS + 20 * MS
        half.append(math.hypot(*buf.interpolation_spread(stamp)))
        off_half.append(math.radians(_angle_deg(_vibrating(k * 0.04 + 0.02)[0], buf.at(stamp))))
    assert all(s == (0.0, 0.0) for s in at_sample)
    assert 0.0 < np.mean(quarter) < np.mean(half)
    assert math.sqrt(np.mean(np.square(off_half))) <= math.sqrt(np.mean(np.square(half)))
    steady, plain = AttitudeBuffer(), AttitudeBuffer()
    w = (0.0, 0.0, -math.radians(100.0))
    steady.add(T0, _r(0, 0, 0), w)
    steady.add(T0 + 40 * MS, _r(0, 0, 4), w)
    plain.add(T0, _r(0, 0, 0))
    plain.add(T0 + 40 * MS, _r(0, 3, 4))
    assert math.hypot(*steady.interpolation_spread(T0 + 20 * MS)) < 1e-6
    assert plain.interpolation_spread(T0 + 20 * MS) == (0.0, 0.0)
    assert plain.interpolation_spread(T0 + 60 * MS) == (0.0, 0.0)  # past the newest


def test_a_frame_newer_than_the_attitude_bound_is_refused() -> None:
    buf = AttitudeBuffer(max_age_s=0.1, max_gap_s=0.25)
    with pytest.raises(FrameRejected) as none:
        buf.at(T0)
    assert none.value.reason == "no_attitude"
    buf.add(T0, _r(0, 0, 0))
    buf.at(T0 + 90 * MS)  # within the bound: the newest sample is used
    with pytest.raises(FrameRejected) as stale:
        buf.at(T0 + 150 * MS)
    assert stale.value.reason == "stale_attitude"
    assert stale.value.detail["age_ms"] == pytest.approx(150.0)


def test_a_gap_in_the_attitude_stream_refuses_frames_inside_it() -> None:
    buf = AttitudeBuffer(max_age_s=0.1, max_gap_s=0.25)
    buf.add(T0, _r(0, 0, 0))
    buf.add(T0 + 500 * MS, _r(0, 0, 0))
    with pytest.raises(FrameRejected) as gap:
        buf.at(T0 + 250 * MS)
    assert gap.value.reason == "stale_attitude"


def test_rangefinder_wins_over_flat_ground_while_fresh() -> None:
    h = HeightSource(ground_elevation_msl=None)
    h.add_altitude_msl(T0, 580.0, on_ground=True)  # home learned on the ground
    h.add_altitude_msl(T0 + 10_000 * MS, 1080.0)
    got = h.at(T0 + 10_000 * MS, tilt_cos=1.0)
    assert (got.height_m, got.source) == (500.0, "baro_flat_ground")
    h.add_range(T0 + 10_000 * MS, 480.0, 0.2, 700.0)
    tilted = h.at(T0 + 10_100 * MS, tilt_cos=math.cos(math.radians(10)))
    assert tilted.source == "rangefinder"
    assert tilted.height_m == pytest.approx(480.0 * math.cos(math.radians(10)))
    stale = h.at(T0 + 11_000 * MS, tilt_cos=1.0)
    assert stale.source == "baro_flat_ground"


def test_under_a_rangefinder_the_ground_is_the_fc_altitude_less_the_range() -> None:
    """480 m of range at 1080 m AMSL is ground at 600 m (a hill above a 580 m home):
    the fix's altitude is placed on that, so it carries the FC's 1080 m, not
    home + range (1060 m), nor the range alone when no home elevation is known."""
    for home in (580.0, None):
        h = HeightSource(ground_elevation_msl=home)
        h.add_altitude_msl(T0, 1080.0)
        h.add_range(T0, 480.0, 0.2, 700.0)
        got = h.at(T0, tilt_cos=1.0)
        assert got.source == "rangefinder"
        assert got.ground_msl == pytest.approx(600.0)
        assert got.ground_msl + got.height_m == pytest.approx(1080.0)
    flat = HeightSource(ground_elevation_msl=580.0)
    flat.add_altitude_msl(T0, 1080.0)
    assert flat.at(T0, tilt_cos=1.0).ground_msl == 580.0


def test_a_range_with_nothing_to_place_it_above_sea_level_gives_no_height() -> None:
    """Started in flight (no home elevation) and no FC altitude yet: a fix placed at
    the range above sea level would tell the autopilot it flies hundreds of metres
    low; the frame is refused until the FC's altitude arrives, then fixed."""
    h = HeightSource(ground_elevation_msl=None)
    h.add_range(T0, 480.0, 0.2, 700.0)
    with pytest.raises(FrameRejected) as err:
        h.at(T0, 1.0)
    assert err.value.reason == "no_height"
    h.add_altitude_msl(T0 + 100 * MS, 1080.0)
    h.add_range(T0 + 100 * MS, 480.0, 0.2, 700.0)
    assert h.at(T0 + 100 * MS, 1.0).ground_msl == pytest.approx(600.0)


def test_no_ground_elevation_means_no_height() -> None:
    h = HeightSource(ground_elevation_msl=None)
    h.add_altitude_msl(T0, 1080.0, on_ground=False)
    with pytest.raises(FrameRejected) as err:
        h.at(T0, 1.0)
    assert err.value.reason == "no_height"


def test_the_fc_home_gives_a_node_started_in_flight_its_ground() -> None:
    """Restarted in flight without a rangefinder: nothing learned on the ground, so
    every frame was ``no_height`` until the FC's home (HOME_POSITION) arrived."""
    h = HeightSource(ground_elevation_msl=None)
    h.add_altitude_msl(T0, 1080.0, on_ground=False)
    with pytest.raises(FrameRejected):
        h.at(T0, 1.0)
    assert h.set_home_elevation(575.0)
    sample = h.at(T0, 1.0)
    assert (sample.height_m, sample.ground_msl) == (505.0, 575.0)
    # later altitudes while disarmed do not move the FC's home
    h.add_altitude_msl(T0 + 100 * MS, 590.0, on_ground=True)
    assert h.ground_elevation_msl == 575.0


def test_the_fc_home_stands_over_a_learned_ground_but_not_a_configured_one() -> None:
    learned = HeightSource(ground_elevation_msl=None)
    learned.add_altitude_msl(T0, 581.0, on_ground=True)
    assert learned.set_home_elevation(575.0)
    assert learned.ground_elevation_msl == 575.0
    configured = HeightSource(ground_elevation_msl=580.0)
    assert not configured.set_home_elevation(575.0)
    assert configured.ground_elevation_msl == 580.0
    assert not learned.set_home_elevation(math.nan)
    assert learned.ground_elevation_msl == 575.0


def test_search_radius_grows_with_the_time_since_the_last_fix() -> None:
    est = VisualEstimator(EstimatorConfig(ground_elevation_msl=580.0), DictTileSource())
    est.priors.add_gnss(T0, LAT0, LON0, healthy=True, sigma_m=5.0)
    assert est.prior_at(T0) is not None
    priors = [est.prior_at(T0 + s * 1000 * MS) for s in (0, 12, 15, 600)]
    radii = [est.search_radius_m(p) for p in priors if p is not None]
    assert radii[0] == est.cfg.min_search_radius_m
    assert radii[0] < radii[1] < radii[2] < radii[3] == est.cfg.max_search_radius_m


def test_prior_is_the_gnss_while_healthy_and_propagates_with_velocity() -> None:
    est = VisualEstimator(EstimatorConfig(ground_elevation_msl=580.0), DictTileSource())
    est.priors.add_gnss(T0, LAT0, LON0, healthy=True, sigma_m=3.0, velocity_en=(20.0, 0.0))
    prior = est.prior_at(T0 + 2000 * MS)
    assert prior is not None and prior.source == "fc_gnss"
    moved = Pose(LAT0, LON0, 0).offset(40.0, 0.0)
    assert prior.latitude == pytest.approx(moved.latitude, abs=1e-7)
    assert prior.longitude == pytest.approx(moved.longitude, abs=1e-7)


def test_a_confident_track_contradicted_by_a_good_match_bumps_reset_counter() -> None:
    from .support import CAMERA, feed, make_estimator, render, synthetic_world

    ortho, tiles = synthetic_world()
    est = make_estimator(tiles)
    here = Pose(LAT0, LON0, 500.0, yaw_deg=15.0)
    feed(est, T0, here, prior=here)
    first = est.process(T0, render(ortho, here), CAMERA)
    assert first.reset_counter == 0
    est.set_gnss_healthy(False)  # from now on the prior is our own track
    moved = here.offset(90.0, 0.0)  # the track believes we stood still
    later = T0 + 500 * MS
    feed(est, later, moved)
    # one frame's jump is held: it would reset the autopilot's EKF
    with pytest.raises(FrameRejected) as held:
        est.process(later, render(ortho, moved), CAMERA)
    assert held.value.reason == "gate" and "held" in str(held.value)
    assert held.value.detail["jump_m"] > 80.0
    # the next frame makes the same jump: it goes through
    again = T0 + 1000 * MS
    feed(est, again, moved)
    fix = est.process(again, render(ortho, moved), CAMERA)
    assert fix.reset_counter == 1
    assert fix.prior_source == "relocalized"
    assert est.last_jump_m > 80.0


def test_one_frame_from_elsewhere_neither_jumps_nor_confirms_a_later_jump() -> None:
    """A stale frame re-stamped as new (or a look-alike the gate cleared) between two
    frames on the track: held, then forgotten when the track's next frame is fixed."""
    from .support import CAMERA, feed, make_estimator, render, synthetic_world

    ortho, tiles = synthetic_world()
    est = make_estimator(tiles)
    here = Pose(LAT0, LON0, 500.0, yaw_deg=15.0)
    feed(est, T0, here, prior=here)
    est.process(T0, render(ortho, here), CAMERA)
    est.set_gnss_healthy(False)
    elsewhere = here.offset(90.0, 0.0)
    feed(est, T0 + 500 * MS, here)
    with pytest.raises(FrameRejected, match="held"):
        est.process(T0 + 500 * MS, render(ortho, elsewhere), CAMERA)
    feed(est, T0 + 1000 * MS, here)
    back = est.process(T0 + 1000 * MS, render(ortho, here), CAMERA)
    assert back.reset_counter == 0 and back.prior_source != "relocalized"
    # the held jump is gone: the same stale frame once more is held again, not taken
    feed(est, T0 + 1500 * MS, here)
    with pytest.raises(FrameRejected, match="held"):
        est.process(T0 + 1500 * MS, render(ortho, elsewhere), CAMERA)
    # with confirmation off, one frame jumps at once
    now = make_estimator(tiles, jump_confirm_s=0.0)
    feed(now, T0, here, prior=here)
    now.process(T0, render(ortho, here), CAMERA)
    now.set_gnss_healthy(False)
    feed(now, T0 + 500 * MS, here)
    jumped = now.process(T0 + 500 * MS, render(ortho, elsewhere), CAMERA)
    assert jumped.reset_counter == 1


def _tracked_estimator() -> tuple[VisualEstimator, Pose, VisualFix]:
    """An estimator whose own track holds one fix of ``here`` (stamp T0)."""
    from .support import CAMERA, feed, make_estimator, render, synthetic_world

    ortho, tiles = synthetic_world()
    est = make_estimator(tiles)
    here = Pose(LAT0, LON0, 500.0, yaw_deg=15.0)
    feed(est, T0, here, prior=here)
    fix = est.process(T0, render(ortho, here), CAMERA)
    assert fix.sigma_m < 20.0
    return est, here, fix


def test_own_track_is_the_prior_over_a_degraded_gnss_that_agrees_with_it() -> None:
    est, here, fix = _tracked_estimator()
    off = here.offset(150.0, -100.0)  # a degraded GNSS: 180 m off, sigma 120 m
    est.priors.add_gnss(T0 + 500 * MS, off.latitude, off.longitude, healthy=True, sigma_m=120.0)
    prior = est.prior_at(T0 + 500 * MS)
    assert prior is not None and prior.source == "visual"
    assert not prior.contested  # they agree: the track corroborates as ever
    assert prior.sigma_m < 20.0
    e, n = LocalFrame(fix.latitude, fix.longitude).to_en(prior.latitude, prior.longitude)
    assert math.hypot(e, n) < 0.1  # stood still: where the fix was
    assert est.search_radius_m(prior) == est.cfg.min_search_radius_m


def test_a_track_a_healthy_gnss_contradicts_is_searched_reaching_the_gnss() -> None:
    est, here, _ = _tracked_estimator()
    # a GNSS 400 m away: the track or the GNSS has gone wrong, and one fix cannot say
    # which; the search is around the track, reaches the GNSS, and nothing corroborates
    off = here.offset(400.0, 0.0)
    est.priors.add_gnss(T0 + 500 * MS, off.latitude, off.longitude, healthy=True, sigma_m=120.0)
    prior = est.prior_at(T0 + 500 * MS)
    assert prior is not None and prior.source == "visual" and prior.contested
    assert prior.rival_m == pytest.approx(400.0, abs=1.0)
    assert est.search_radius_m(prior) == pytest.approx(400.0 + est.cfg.min_search_radius_m, abs=1.0)
    # past the largest search the window stays on the track
    farther = here.offset(900.0, 0.0)
    est.priors.add_gnss(T0 + 500 * MS, farther.latitude, farther.longitude, healthy=True)
    wide = est.prior_at(T0 + 500 * MS)
    assert wide is not None and wide.source == "visual"
    assert est.search_radius_m(wide) == est.cfg.max_search_radius_m
    # with holding off, the healthy GNSS wins; and a GNSS tighter than the track wins
    # where they agree
    off_est = VisualEstimator(EstimatorConfig(prior_track_over_gnss_fixes=0), DictTileSource({}))
    off_est.priors.add_fix(Prior(T0, here.latitude, here.longitude, 5.0, (0.0, 0.0), 1.0, "visual"))
    off_est.priors.add_gnss(T0 + 500 * MS, off.latitude, off.longitude, healthy=True, sigma_m=120.0)
    gnss = off_est.prior_at(T0 + 500 * MS)
    assert gnss is not None and gnss.source == "fc_gnss"
    est.priors.add_gnss(T0 + 500 * MS, here.latitude, here.longitude, healthy=True, sigma_m=0.5)
    tight = est.prior_at(T0 + 500 * MS)
    assert tight is not None and tight.source == "fc_gnss"


def _tracker(**cfg: object) -> PriorTracker:
    return PriorTracker(PriorConfig(**cfg), AttitudeBuffer())  # type: ignore[arg-type]


def _fixes_in_a_row(tracker: PriorTracker, n: int, *, start: Pose | None = None) -> Pose:
    """``n`` fixes a second apart, flying east at 20 m/s; the last fix's position."""
    p = start or Pose(LAT0, LON0, 200.0)
    here = p
    for k in range(n):
        here = p.offset(20.0 * k, 0.0)
        tracker.add_fix(
            Prior(T0 + k * NS, here.latitude, here.longitude, 4.0, (20.0, 0.0), 0.5, "visual")
        )
    return here


def test_fixes_in_a_row_hold_against_a_healthy_gnss_that_disagrees() -> None:
    tracker = _tracker(track_over_gnss_fixes=3, track_over_gnss_s=10.0)
    last = _fixes_in_a_row(tracker, 3)
    assert tracker.streak == 3
    spoofed = last.offset(20.0, -400.0)  # tight, healthy, 400 m off where we fly
    tracker.add_gnss(T0 + 3 * NS, spoofed.latitude, spoofed.longitude, healthy=True, sigma_m=3.0)
    prior = tracker.prior_at(T0 + 3 * NS)
    assert prior is not None and prior.source == "visual"
    assert prior.contested  # searched around, but it corroborates nothing (gate.judge)
    assert prior.rival_m == 0.0  # fixes in a row: the search no longer reaches the GNSS
    e, n = LocalFrame(last.latitude, last.longitude).to_en(prior.latitude, prior.longitude)
    assert abs(e - 20.0) < 0.5 and abs(n) < 0.5  # the track, dead-reckoned a second
    offset = tracker.gnss_offset_m(T0 + 3 * NS, prior.latitude, prior.longitude)
    assert offset is not None and abs(offset - 400.0) < 1.0
    # without a fix for longer than track_over_gnss_s the track no longer holds
    late = T0 + 13 * NS
    tracker.add_gnss(late, spoofed.latitude, spoofed.longitude, healthy=True, sigma_m=3.0)
    gone = tracker.prior_at(late)
    assert gone is not None and gone.source == "fc_gnss"


def test_short_of_a_streak_the_held_track_search_reaches_the_gnss() -> None:
    tracker = _tracker(track_over_gnss_fixes=3)
    last = _fixes_in_a_row(tracker, 2)
    far = last.offset(20.0, 400.0)
    tracker.add_gnss(T0 + 2 * NS, far.latitude, far.longitude, healthy=True, sigma_m=3.0)
    prior = tracker.prior_at(T0 + 2 * NS)
    assert prior is not None and prior.source == "visual" and prior.contested
    assert prior.rival_m == pytest.approx(400.0, abs=1.0)
    # with holding off, a streak of any length does not hold
    off = _tracker(track_over_gnss_fixes=0)
    last = _fixes_in_a_row(off, 6)
    far = last.offset(0.0, 400.0)
    off.add_gnss(T0 + 6 * NS, far.latitude, far.longitude, healthy=True, sigma_m=3.0)
    prior = off.prior_at(T0 + 6 * NS)
    assert prior is not None and prior.source == "fc_gnss"


def test_a_fix_off_the_track_starts_a_new_streak() -> None:
    tracker = _tracker(track_over_gnss_fixes=3)
    last = _fixes_in_a_row(tracker, 5)
    assert tracker.streak == 3  # counts no further than it needs
    wrong = last.offset(20.0, 500.0)  # a fix 500 m off where the track was going
    tracker.add_fix(
        Prior(T0 + 5 * NS, wrong.latitude, wrong.longitude, 4.0, (20.0, 0.0), 0.5, "visual")
    )
    assert tracker.streak == 1
    truth = last.offset(40.0, 0.0)
    tracker.add_gnss(T0 + 6 * NS, truth.latitude, truth.longitude, healthy=True, sigma_m=3.0)
    prior = tracker.prior_at(T0 + 6 * NS)
    # the wrong fix is searched around, but the window reaches the (right) GNSS
    assert prior is not None and prior.contested
    assert prior.rival_m == pytest.approx(500.0, abs=5.0)


def test_the_gnss_offset_is_only_reported_while_the_gnss_is_healthy() -> None:
    tracker = _tracker()
    here = Pose(LAT0, LON0, 200.0)
    assert tracker.gnss_offset_m(T0, here.latitude, here.longitude) is None
    there = here.offset(30.0, 40.0)
    tracker.add_gnss(T0, there.latitude, there.longitude, healthy=True, sigma_m=3.0)
    got = tracker.gnss_offset_m(T0, here.latitude, here.longitude)
    assert got is not None and abs(got - 50.0) < 0.1
    tracker.set_healthy(False, T0 + NS)
    assert tracker.gnss_offset_m(T0 + 2 * NS, here.latitude, here.longitude) is None


def test_frames_failing_around_the_gnss_earn_a_wider_search_after_a_while() -> None:
    from gps_denied_onboard.visual_nav.prior import LostClock

    clock = LostClock(after_s=5.0, growth_mps=10.0)
    gnss = Prior(T0, LAT0, LON0, 3.0, (0.0, 0.0), 1.0, "fc_gnss")
    wide = [clock.note_frame(T0 + k * NS, gnss, 200.0) for k in range(12)]
    assert wide[:6] == [None] * 6  # not lost for the first after_s
    sigmas = [w.sigma_m for w in wide[6:] if w is not None]
    assert len(sigmas) == 6 and sigmas == sorted(sigmas)
    assert sigmas[0] == pytest.approx(math.hypot(3.0, 10.0), rel=1e-6)  # 1 s past
    assert clock.note_frame(T0 + 60 * NS, gnss, 200.0) is None  # a gap: counted afresh
    for k in range(61, 90):
        far = clock.note_frame(T0 + k * NS, gnss, 200.0)
    assert far is not None and far.sigma_m == 200.0  # no wider than the largest search
    clock.note_fix()
    assert clock.note_frame(T0 + 90 * NS, gnss, 200.0) is None  # fixed: not lost
    # our own track is never widened here (its sigma grows as it is carried)
    own = Prior(T0, LAT0, LON0, 3.0, (0.0, 0.0), 1.0, "visual_odometry")
    assert all(clock.note_frame(T0 + k * NS, own, 200.0) is None for k in range(91, 110))


def test_the_lost_clock_counts_the_widened_searches_of_its_run() -> None:
    """Each widened search made is one more draw for the gate to count; a fix or a
    gap in the frames ends the run and the count."""
    from gps_denied_onboard.visual_nav.prior import LostClock

    clock = LostClock(after_s=5.0, growth_mps=10.0)
    gnss = Prior(T0, LAT0, LON0, 3.0, (0.0, 0.0), 1.0, "fc_gnss")
    made = [clock.searched() for k in range(10) if clock.note_frame(T0 + k * NS, gnss, 200.0)]
    assert made == [1, 2, 3, 4] and clock.searches == 4
    clock.note_fix()
    assert clock.searches == 0
    for k in range(10, 20):
        if clock.note_frame(T0 + k * NS, gnss, 200.0):
            clock.searched()
    assert clock.searches == 4
    assert clock.note_frame(T0 + 40 * NS, gnss, 200.0) is None  # a gap: a new run
    assert clock.searches == 0
