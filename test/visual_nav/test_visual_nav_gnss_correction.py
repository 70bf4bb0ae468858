"""The autopilot's heading and height error measured against the GNSS's velocity
(:mod:`gps_denied_onboard.visual_nav.gnss_correction`), and the match held to it."""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.estimator import VisualEstimator
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.gnss_correction import (
    Correction,
    GnssCorrection,
    GnssCorrectionConfig,
    held_match,
)
from gps_denied_onboard.visual_nav.matcher import MatchConfig
from gps_denied_onboard.visual_nav.odometry import OdometryConfig

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

DT = NS  # frames a second apart
STEP = NS // 5  # velocity at 5 Hz


def _flown(
    c: GnssCorrection,
    n: int,
    z: complex,
    *,
    speed: float = 20.0,
    turn_deg_s: float = 2.0,
    reg_sigma_m: float = 0.5,
    vel_noise: float = 0.1,
    followed: bool = True,
    seed: int = 1,
    start_ns: int = T0,
) -> int:
    """``n`` frames of a vehicle turning gently at ``speed``: the GNSS's velocity
    at 5 Hz (true, plus noise) and each registration's raw motion, the true
    motion divided by ``z`` (plus noise). Returns the last frame's stamp."""
    rng = np.random.default_rng(seed)
    course = 0.3
    t = start_ns
    c.add_velocity(t, *_vel(speed, course, rng, vel_noise), 0.3)
    for _ in range(n):
        for _k in range(5):
            course += math.radians(turn_deg_s) * 0.2
            c.add_velocity(t + (_k + 1) * STEP, *_vel(speed, course, rng, vel_noise), 0.3)
        true = cmath.rect(speed, course - math.radians(turn_deg_s) * 0.5)  # mean over the second
        raw = true / z + complex(*rng.normal(0.0, reg_sigma_m, 2))
        c.add_motion(t, t + DT, (raw.real, raw.imag), reg_sigma_m, gnss_followed=followed)
        t += DT
    return t


def _vel(
    speed: float, course: float, rng: np.random.Generator, noise: float
) -> tuple[float, float]:
    e, n = speed * math.cos(course), speed * math.sin(course)
    return e + rng.normal(0.0, noise), n + rng.normal(0.0, noise)


# derandomized: "within 3 sigma" is a statistical claim, and a fresh draw of seeds
# finds the 0.3 % of fits past it sooner or later (heading 0, scale 1.125, 8 m/s, seed
# 210: 2.75 deg off at sigma 0.83, by the fit of stop 40 and of this one alike)
@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    heading=st.floats(-10.0, 10.0),
    scale=st.floats(0.85, 1.15),
    speed=st.floats(8.0, 35.0),
    seed=st.integers(0, 10_000),
)
def test_a_known_heading_and_scale_come_back_within_their_sigma(
    heading: float, scale: float, speed: float, seed: int
) -> None:
    c = GnssCorrection(GnssCorrectionConfig())
    z = cmath.rect(scale, math.radians(heading))
    t = _flown(c, 20, z, speed=speed, seed=seed)
    got = c.correction_at(t)
    assert got is not None and got.scale_sigma is not None and got.heading_sigma_deg is not None
    assert abs(got.scale - scale) <= 3.0 * got.scale_sigma * scale, (got, scale)
    assert abs(got.heading_deg - heading) <= 3.0 * got.heading_sigma_deg, (got, heading)
    # the floor: time-correlated GNSS errors make 20 pairs worth no better than 1 %
    assert got.scale_sigma >= 0.01 and got.heading_sigma_deg >= 0.5


def test_too_few_pairs_or_too_little_motion_measures_nothing() -> None:
    c = GnssCorrection(GnssCorrectionConfig())
    t = _flown(c, 4, 1.0 + 0j)
    assert c.correction_at(t) is None  # min_pairs is 5
    hover = GnssCorrection(GnssCorrectionConfig())
    t = _flown(hover, 20, 1.0 + 0j, speed=2.0, reg_sigma_m=0.05, vel_noise=0.02)
    assert hover.correction_at(t) is None  # 40 m flown, under min_distance_m


def test_pairs_while_the_gnss_is_not_followed_only_count_as_distance_flown() -> None:
    cfg = GnssCorrectionConfig()
    c = GnssCorrection(cfg)
    z = cmath.rect(0.93, math.radians(3.0))
    t = _flown(c, 15, z)
    held = c.correction_at(t)
    assert held is not None and held.scale_sigma is not None
    # the GNSS is lost: 25 s at 20 m/s later (500 m) the same fit, its sigma grown
    t2 = _flown(c, 25, z, followed=False, start_ns=t)
    later = c.correction_at(t2)
    assert later is not None and later.scale_sigma is not None
    assert later.scale == held.scale and later.heading_deg == held.heading_deg
    grown = math.hypot(held.scale_sigma, cfg.scale_growth_per_km * 0.5 * held.scale)
    assert math.isclose(later.scale_sigma, grown, rel_tol=0.05), (later, grown)
    assert later.heading_sigma_deg is not None
    assert later.heading_sigma_deg > held.heading_sigma_deg  # type: ignore[operator]
    # 2 km further the scale is no tighter than the match's own candidates: not used
    t3 = _flown(c, 100, z, followed=False, start_ns=t2)
    far = c.correction_at(t3)
    assert far is not None and far.scale_sigma is None
    assert far.heading_sigma_deg is None  # 2 minutes on, a compass's error has moved


def test_a_velocity_dragged_off_by_a_spoofer_gives_no_correction() -> None:
    # a spoofer dragging the GNSS at 10 m/s sideways from the start: the fit is a
    # 27 deg turn, which no autopilot's heading is off by
    c = GnssCorrection(GnssCorrectionConfig())
    z = cmath.rect(1.06, math.radians(27.0))
    t = _flown(c, 20, z)
    assert c.correction_at(t) is None


def test_a_gap_in_the_velocity_stream_skips_that_pair() -> None:
    c = GnssCorrection(GnssCorrectionConfig())
    t = _flown(c, 6, 1.0 + 0j)
    fits = c.correction_at(t)
    assert fits is not None and fits.pairs == 6
    # a second with no velocity at all: its registration cannot be measured (it
    # counts as distance flown since the fit, as with the GNSS lost)
    c.add_motion(t + DT, t + 2 * DT, (25.0, 0.0), 0.5, gnss_followed=True)
    after = c.correction_at(t + 2 * DT)
    assert after is not None and after.pairs == 6
    assert (after.scale, after.heading_deg) == (fits.scale, fits.heading_deg)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(ahead=st.lists(st.integers(0, 4), min_size=24, max_size=24), seed=st.integers(0, 1000))
def test_the_fit_a_frame_gets_does_not_depend_on_which_later_samples_arrived(
    ahead: list[int], seed: int
) -> None:
    """Frames at 2 Hz, the GNSS's velocity at 5 Hz off the frames' stamps: when a
    frame is answered, the samples stamped up to it are there and 0-4 of those after
    it may be (the machine, a replay's rate). The correction each frame is matched
    with must be the same whatever came early: two replays give the same fixes."""
    rng = np.random.default_rng(seed)
    z = cmath.rect(0.95, math.radians(2.0))
    frame_dt, sample_dt = NS // 2, NS // 5 + 7_000_000  # samples drift against the frames
    samples = [
        (T0 - NS + k * sample_dt, 20.0 + rng.normal(0.0, 0.1), 5.0 + rng.normal(0.0, 0.1))
        for k in range(80)
    ]
    raws = [complex(10.0, 2.5) / z + complex(*rng.normal(0.0, 0.3, 2)) for _ in ahead]

    def replay(early: list[int]) -> list[Correction | None]:
        c = GnssCorrection(GnssCorrectionConfig())
        fed = 0
        got = []
        for k, (raw, n_early) in enumerate(zip(raws, early, strict=True)):
            t1 = T0 + (k + 1) * frame_dt
            upto = sum(1 for t, _, _ in samples if t <= t1) + n_early
            for t, e, n in samples[fed:upto]:
                c.add_velocity(t, e, n, 0.1)
            fed = max(fed, upto)
            c.add_motion(t1 - frame_dt, t1, (raw.real, raw.imag), 0.3, gnss_followed=True)
            got.append(c.correction_at(t1))
        return got

    steady = replay([0] * len(ahead))
    assert steady[-1] is not None and abs(steady[-1].scale - 0.95) < 0.03
    assert replay(ahead) == steady


def test_non_finite_velocities_are_dropped() -> None:
    c = GnssCorrection(GnssCorrectionConfig())
    c.add_velocity(T0, math.nan, 1.0)
    c.add_velocity(T0 + STEP, math.inf, 1.0)
    c.add_motion(T0, T0 + STEP, (5.0, 0.0), 0.5, gnss_followed=True)
    assert c.correction_at(T0 + STEP) is None


def _fly_streaming(
    est: VisualEstimator, agl: float, n: int, *, speed: float = 20.0, course: float = 30.0
) -> tuple[list[Pose], list[VisualFix | FrameRejected]]:
    """``n`` frames a second apart on a straight course over the synthetic world, the
    GNSS's velocity at 5 Hz before each, the reported height 8 % short and yaw 3 deg
    off, a healthy GNSS on the truth (30 m claimed)."""
    ortho, _ = synthetic_world()
    ve, vn = speed * math.sin(math.radians(course)), speed * math.cos(math.radians(course))
    p0 = Pose(LAT0, LON0, agl, pitch_deg=3.0, yaw_deg=course)
    poses = [p0.offset(ve * k, vn * k) for k in range(n)]
    out: list[VisualFix | FrameRejected] = []
    for k, p in enumerate(poses):
        stamp = T0 + k * DT
        for j in range(5 if k else 1, 0, -1):
            est.add_gnss_velocity(stamp - (j - 1) * STEP, ve, vn, 0.2)
        feed(est, stamp, p, yaw_error_deg=3.0, height_factor=0.92, prior=p, prior_sigma_m=30.0)
        try:
            out.append(est.process(stamp, render(ortho, p), CAMERA))
        except FrameRejected as rej:
            out.append(rej)
    return poses, out


def test_in_flight_the_match_is_held_to_the_height_error_the_gnss_velocity_shows() -> None:
    """A 400 m footprint whose reported height is 8 % short and heading 3 deg off:
    with the GNSS's velocity streamed, the correction measured through real
    registration is the truth (to registration's own bias on this texture, 1-3 %
    short at 200 m), and every stitched fix after it keeps its scale within the
    bounds it sets, says so in its record fields, and lands within 10 m."""
    _, tiles = synthetic_world()
    est = make_estimator(tiles, odometry=OdometryConfig(stitch_target_area_m2=250_000.0))
    poses, got_all = _fly_streaming(est, 200.0, 16)
    fixes = [f for f in got_all if isinstance(f, VisualFix)]
    got = est.correction.correction_at(T0 + 15 * DT)
    assert got is not None and got.scale_sigma is not None and got.heading_sigma_deg is not None
    assert abs(got.scale * 0.92 - 1.0) <= 0.045, got  # 8 % of height found to 4.5 %
    # reported yaw is 3 deg clockwise of the truth: the ENU correction is +3 deg
    assert abs(got.heading_deg - 3.0) <= 3.0 * got.heading_sigma_deg, got
    bound = est.cfg.gnss_correction.bound_k
    later = [f for f in fixes if f.stamp_ns > T0 + 6 * DT and f.stitch_lever_m > 0]
    assert len(later) >= 6, fixes  # stitched patches: a frame alone is not held
    for f in later:  # each held to the correction of its time, which it records
        assert f.gnss_scale is not None and f.gnss_scale_sigma is not None
        lo = f.gnss_scale * (1.0 - bound * f.gnss_scale_sigma)
        hi = f.gnss_scale * (1.0 + bound * f.gnss_scale_sigma)
        assert lo - 1e-9 <= f.scale <= hi + 1e-9, (f.scale, lo, hi)
    for f in later:
        p = poses[(f.stamp_ns - T0) // DT]
        assert math.hypot(*error_m(p, f.latitude, f.longitude)) < 10.0


def test_a_frame_matched_alone_keeps_its_own_heading_and_scale() -> None:
    """A 1 km footprint is matched alone: its nadir lies inside it, so it sees its own
    heading and scale, and the measured correction (which a wandering EKF yaw can
    leave a degree behind) does not hold it."""
    _, tiles = synthetic_world()
    est = make_estimator(tiles)
    _, fixes = _fly_streaming(est, 500.0, 10)
    assert all(isinstance(f, VisualFix) for f in fixes), fixes
    assert est.correction.correction_at(T0 + 9 * DT) is not None
    for f in fixes:
        assert isinstance(f, VisualFix)
        assert f.stitch_lever_m == 0 and f.gnss_scale is None and f.gnss_heading_deg is None


def test_a_measured_correction_narrows_the_search_to_itself_and_bounds_the_refinement() -> None:
    cfg = MatchConfig()
    c = Correction(heading_deg=2.0, heading_sigma_deg=0.5, scale=1.05, scale_sigma=0.01, pairs=9)
    got = held_match(cfg, c, 2.5, headings=True)
    assert got.scale_candidates == (1.05,) and got.heading_candidates_deg == (2.0,)
    assert got.scale_bounds == pytest.approx((1.05 * 0.975, 1.05 * 1.025))
    assert got.heading_bounds_deg == pytest.approx((0.75, 3.25))
    # an untrusted heading is searched all round: only the scale is held
    assert held_match(cfg, c, 2.5, headings=False).heading_candidates_deg == (-4.0, 0.0, 4.0)
    # a part held past its limits binds nothing
    loose = Correction(
        heading_deg=2.0, heading_sigma_deg=None, scale=1.05, scale_sigma=None, pairs=9
    )
    assert held_match(cfg, loose, 2.5, headings=True) == cfg
