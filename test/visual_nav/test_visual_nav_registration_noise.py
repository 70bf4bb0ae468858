"""The registration's noise measured in flight scales its velocity's sigma (registration_noise)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gps_denied_onboard.errors import ConfigError
from gps_denied_onboard.visual_nav.config import VisualNavConfig
from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.odometry import OdometryConfig
from gps_denied_onboard.visual_nav.registration_noise import (
    INNOVATION_CAP,
    NoiseConfig,
    RegistrationNoise,
)
from gps_denied_onboard.visual_nav.velocity_leads import innovation

from .support import CAMERA, LAT0, LON0, NS, T0, Pose, feed, make_estimator, render, synthetic_world


def _window_pair(
    rng: np.random.Generator, var_ratio: float, ss: float = 0.8, sl: float = 0.45
) -> tuple[tuple[tuple[float, float], float], tuple[tuple[float, float], float]]:
    """A short and a long window as the model states them (sigmas ``ss``, ``sl``) whose
    difference is really ``var_ratio`` times as noisy as the model says."""
    sd = math.sqrt(var_ratio * (ss * ss - sl * sl))
    de, dn = rng.normal(0.0, sd, 2)
    return ((20.0 + de, 5.0 + dn), ss), ((20.0, 5.0), sl)


@pytest.mark.parametrize("var_ratio", [0.36, 1.0, 2.25])
def test_the_scale_is_the_square_root_of_how_much_noisier_the_windows_differ(
    var_ratio: float,
) -> None:
    """Windows differing by 0.6, 1 and 1.5 times the modelled sigma: after 200 frames
    (a window of 30 remembered) the scale is that, within a fifth (below 1 where
    allowed)."""
    rng = np.random.default_rng(5)
    noise = RegistrationNoise(NoiseConfig(samples=30, scale_min=0.5))
    for _ in range(200):
        noise.add(innovation(*_window_pair(rng, var_ratio)))
    assert noise.count == 30
    assert noise.scale() == pytest.approx(math.sqrt(var_ratio), rel=0.2)


def test_until_frames_come_the_configured_model_holds_and_gives_way_gradually() -> None:
    """No innovation: scale 1. The model counts as a third of the window's innovations
    at first and as none once the window is full: ten innovations of a quarter take the
    variance a bit over halfway there, thirty all the way."""
    noise = RegistrationNoise(NoiseConfig(samples=30, scale_min=0.5))
    assert noise.scale() == 1.0
    quarter = (((1.0, 0.0), 1.0), ((1.0 + math.sqrt(0.75 * 0.5), 0.0), 0.5))
    for _ in range(10):
        noise.add(innovation(*quarter))
    # q = 0.5 dd / var_d = 0.5 * 0.375 / 0.75 = 0.25; the model weighs 10 * (1 - 10 / 30)
    prior = 10.0 * (1.0 - 10.0 / 30.0)
    assert noise.scale() == pytest.approx(math.sqrt((prior + 2.5) / (prior + 10.0)))
    for _ in range(20):
        noise.add(innovation(*quarter))
    assert noise.scale() == pytest.approx(0.5)


def test_adapt_off_keeps_the_model_whatever_the_innovations() -> None:
    noise = RegistrationNoise(NoiseConfig(adapt=False))
    rng = np.random.default_rng(1)
    for _ in range(50):
        noise.add(innovation(*_window_pair(rng, 9.0)))
    assert noise.scale() == 1.0


def test_the_scale_stays_within_its_bounds() -> None:
    rng = np.random.default_rng(2)
    quiet = RegistrationNoise(NoiseConfig(scale_min=0.5, scale_max=2.0))
    floor = RegistrationNoise(NoiseConfig())
    loud = RegistrationNoise(NoiseConfig(scale_min=0.5, scale_max=2.0))
    for _ in range(100):
        pair = _window_pair(rng, 0.01)
        quiet.add(innovation(*pair))
        floor.add(innovation(*pair))
        loud.add(innovation(*_window_pair(rng, 25.0)))
    assert quiet.scale() == 0.5
    assert floor.scale() == 1.0  # by default the model is the floor
    assert loud.scale() == 2.0


def test_a_manoeuvres_onset_moves_the_scale_by_its_cap_at_most() -> None:
    """The long window trailing a turn by 10 m/s is one innovation of hundreds of model
    variances: it counts as INNOVATION_CAP, and no more."""
    rng = np.random.default_rng(3)
    noise = RegistrationNoise(NoiseConfig(samples=30))
    for _ in range(29):
        noise.add(innovation(*_window_pair(rng, 1.0)))
    before = noise.scale() ** 2
    noise.add(innovation(((20.0, 5.0), 0.8), ((10.0, 5.0), 0.45)))
    after = noise.scale() ** 2
    assert 0.0 < after - before <= INNOVATION_CAP / 30


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(
            st.floats(-1e6, 1e6),
            st.floats(-1e6, 1e6),
            st.floats(0.0, 1e3),
            st.floats(0.0, 1e3),
        ),
        max_size=60,
    )
)
def test_whatever_the_windows_the_scale_is_finite_and_bounded(
    windows: list[tuple[float, float, float, float]],
) -> None:
    noise = RegistrationNoise(NoiseConfig(scale_min=0.5))
    for de, dn, ss, sl in windows:
        noise.add(innovation(((de, dn), ss), ((0.0, 0.0), sl)))
        s = noise.scale()
        assert math.isfinite(s) and 0.5 <= s <= 2.0


def test_the_node_parameters_reach_the_track_and_bad_ones_are_refused() -> None:
    cfg = VisualNavConfig(
        odometry_noise_adapt=False,
        odometry_noise_samples=12,
        odometry_noise_scale_min=0.7,
        odometry_noise_scale_max=1.5,
    )
    assert cfg.estimator_config().odometry.noise == NoiseConfig(False, 12, 0.7, 1.5)
    for bad in (
        {"odometry_noise_samples": 2},
        {"odometry_noise_scale_min": 0.0},
        {"odometry_noise_scale_min": 1.2},
        {"odometry_noise_scale_max": 0.9},
        {"odometry_noise_scale_max": math.nan},
    ):
        with pytest.raises(ConfigError):
            VisualNavConfig(**bad)  # type: ignore[arg-type]


def _flown(
    attitude_noise_deg: float, adapt: bool, scale_min: float = 1.0
) -> list[tuple[float, float, float, float]]:
    """40 frames 0.5 s apart, 500 m up, north at 24 m/s over the synthetic world, the
    autopilot's roll and pitch off by white noise of ``attitude_noise_deg`` per frame
    (seeded; the model says 0.05): (time s, east error, north error, sigma) of each
    velocity, and the track's noise scale at the end."""
    _, tiles = synthetic_world()
    ortho, _ = synthetic_world()
    noise = NoiseConfig(adapt=adapt, scale_min=scale_min)
    est = make_estimator(tiles, odometry=OdometryConfig(noise=noise))
    rng = np.random.default_rng(23)
    start = Pose(LAT0, LON0, 500.0, pitch_deg=3.0)
    rows = []
    for k in range(40):
        stamp = T0 + k * NS // 2
        p = start.offset(0.0, 12.0 * k)
        droll, dpitch = rng.normal(0.0, attitude_noise_deg, 2)
        told = Pose(p.latitude, p.longitude, 500.0, droll, 3.0 + dpitch, 0.0)
        feed(est, stamp, told, prior=p)
        try:
            got = est.process(stamp, render(ortho, p), CAMERA)
        except FrameRejected as rej:
            pytest.fail(f"frame {k}: {rej.reason}")
        assert isinstance(got, VisualFix)
        if got.velocity_en is not None and k >= 2:
            ve, vn = got.velocity_en
            rows.append((0.5 * k, ve, vn - 24.0, got.velocity_sigma))
    rows.append((math.nan, est.odometry.noise.scale(), 0.0, 0.0))
    return rows


def test_an_autopilot_noisier_than_modelled_gets_the_sigma_its_velocities_need() -> None:
    """Roll and pitch off by 0.1 deg a frame, twice the model's 0.05: from the tenth
    second on 85 % of the velocities were within 3 sigma at the modelled sigma; the
    track measures the noise, scales its sigma up (to about 2) and 97.5 % are."""
    result = {}
    for adapt in (False, True):
        rows = _flown(0.1, adapt)
        scale = rows.pop()[1]
        late = np.array([r for r in rows if r[0] >= 10.0])
        z = np.concatenate([np.abs(late[:, 1]) / late[:, 3], np.abs(late[:, 2]) / late[:, 3]])
        result[adapt] = (float(np.mean(z <= 3.0)), scale)
    (fixed_cover, fixed_scale), (adapted_cover, adapted_scale) = result[False], result[True]
    assert fixed_scale == 1.0
    assert adapted_scale > 1.5, result
    assert fixed_cover < 0.9, result
    assert adapted_cover > 0.95, result


def test_a_quieter_autopilot_keeps_the_modelled_sigma_unless_allowed_below_it() -> None:
    """Exact roll and pitch: the track's innovations are its registration's alone. By
    default the model is the floor (the same sigma stands for an acceleration's onset,
    which no window sees: test_speeding_up_the_velocity_is_the_speed_now_not_the_windows
    _middle); with odometry_noise_scale_min 0.5 the scale falls below 1 and every
    velocity of a steady course is still within 3 of its smaller sigmas."""
    fixed = _flown(0.0, False)
    floor = _flown(0.0, True)
    assert floor.pop()[1] == fixed.pop()[1] == 1.0
    # alike but for the last digits (runs differ by a few micrometres per second)
    assert np.array(floor) == pytest.approx(np.array(fixed), abs=1e-3)
    allowed = _flown(0.0, True, scale_min=0.5)
    assert allowed.pop()[1] < 0.9
    for (t, ee, en, sigma), (_, _, _, fixed_sigma) in zip(allowed, fixed, strict=True):
        assert max(abs(ee), abs(en)) <= 3.0 * sigma, (t, ee, en, sigma)
        assert sigma <= fixed_sigma + 1e-9
    assert allowed[-1][3] < 0.9 * fixed[-1][3]


def test_diagnostics_show_the_scale_once_frames_have_measured_it() -> None:
    from gps_denied_onboard.visual_nav.outputs import VisualNavStats

    stats = VisualNavStats()
    assert "registration_noise_scale" not in stats.as_dict()  # nothing measured: no claim
    stats.registration_noise_scale, stats.registration_noise_frames = 1.4371, 30
    got = stats.as_dict()
    assert got["registration_noise_scale"] == 1.44 and got["registration_noise_frames"] == 30
