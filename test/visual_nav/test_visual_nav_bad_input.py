"""Bad input gets a typed reject, never a fix, and the estimator goes on."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from gps_denied_onboard.visual_nav.camera import CameraModel
from gps_denied_onboard.visual_nav.errors import CameraModelError, FrameRejected, PriorError
from gps_denied_onboard.visual_nav.image_codec import decode_compressed, decode_raw
from gps_denied_onboard.visual_nav.mapview import DictTileSource
from gps_denied_onboard.visual_nav.outputs import reject_payload
from gps_denied_onboard.visual_nav.pixels import exposure_problem

from .support import (
    CAMERA,
    GROUND_MSL,
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

POSE = Pose(LAT0, LON0, 500.0, yaw_deg=30.0)


def _reason(fn) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(FrameRejected) as err:
        fn()
    return err.value.reason


def test_unknown_encoding_and_broken_buffers_are_typed_rejects() -> None:
    assert _reason(lambda: decode_raw("nv21", 4, 4, 4, bytes(24))) == "unknown_encoding"
    assert _reason(lambda: decode_raw("mono8", 0, 0, 0, b"")) == "corrupt_image"
    assert _reason(lambda: decode_raw("rgb8", 4, 4, 12, bytes(20))) == "corrupt_image"
    assert _reason(lambda: decode_raw("rgb8", 4, 4, 8, bytes(64))) == "corrupt_image"
    assert _reason(lambda: decode_compressed(b"")) == "corrupt_image"
    ok, jpeg = cv2.imencode(".jpg", np.full((32, 32), 128, np.uint8))
    assert ok
    assert _reason(lambda: decode_compressed(bytes(jpeg)[:40])) == "corrupt_image"
    assert _reason(lambda: decode_compressed(b"\x00" * 500)) == "corrupt_image"


def test_raw_encodings_decode_to_bgr_or_mono() -> None:
    rgb = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3)
    padded = np.zeros((4, 12), np.uint8)
    padded[:, :9] = rgb.reshape(4, 9)
    bgr = decode_raw("rgb8", 3, 4, 12, padded.tobytes())
    assert np.array_equal(bgr[:, :, ::-1], rgb)
    mono16 = np.array([[1, 256]], dtype=">u2")
    got = decode_raw("mono16", 2, 1, 4, mono16.tobytes(), big_endian=True)
    assert got.tolist() == [[1, 256]]


def test_black_saturated_and_flat_frames_are_bad_exposure() -> None:
    _, tiles = synthetic_world()
    est = make_estimator(tiles)
    feed(est, T0, POSE, prior=POSE)
    for value in (0, 255, 128):
        frame = np.full((480, 640, 3), value, np.uint8)
        assert _reason(lambda f=frame: est.process(T0, f, CAMERA)) == "bad_exposure"


def test_a_frame_more_than_half_clipped_is_overexposed() -> None:
    # what is left of it is the dark half of its ground, the scene's own pattern:
    # on the calibration pair such frames' fixes were 3 in 14 over 30 m off
    _, tiles = synthetic_world()
    est = make_estimator(tiles)
    feed(est, T0, POSE, prior=POSE)
    ramp = np.tile(np.linspace(0.0, 255.0, 640, dtype=np.float32), (480, 1))
    over = np.where(np.arange(640) >= 300, 255.0, ramp).astype(np.uint8)  # 53 % clipped
    with pytest.raises(FrameRejected) as err:
        est.process(T0, over, CAMERA)
    assert err.value.reason == "bad_exposure"
    assert "overexposed (53 % of pixels clipped)" in str(err.value)
    assert exposure_problem(np.where(np.arange(640) >= 340, 255.0, ramp)) is None  # 47 %


def test_no_camera_info_and_a_frame_of_another_size() -> None:
    ortho, tiles = synthetic_world()
    est = make_estimator(tiles)
    feed(est, T0, POSE, prior=POSE)
    frame = render(ortho, POSE)
    assert _reason(lambda: est.process(T0, frame, None)) == "no_camera_info"
    assert _reason(lambda: est.process(T0, frame[:100], CAMERA)) == "corrupt_image"
    assert _reason(lambda: est.process(T0, np.zeros((0, 0), np.uint8), CAMERA)) == "corrupt_image"


def test_camera_info_that_cannot_be_a_camera_is_refused() -> None:
    with pytest.raises(CameraModelError):
        CameraModel(0, 480, CAMERA.k)
    with pytest.raises(CameraModelError, match="MP"):  # its size bounds a frame's decode
        CameraModel(100_000, 100_000, CAMERA.k)
    with pytest.raises(CameraModelError):
        CameraModel(640, 480, (0.0,) * 9)
    with pytest.raises(CameraModelError):
        CameraModel(640, 480, CAMERA.k, "kannala_brandt_9", (0.1,))
    with pytest.raises(CameraModelError):
        CameraModel(640, 480, CAMERA.k, "plumb_bob", (float("nan"),))


def test_missing_or_stale_attitude_gives_no_fix() -> None:
    ortho, tiles = synthetic_world()
    est = make_estimator(tiles)
    frame = render(ortho, POSE)
    est.priors.add_gnss(T0, POSE.latitude, POSE.longitude, healthy=True)
    assert _reason(lambda: est.process(T0, frame, CAMERA)) == "no_attitude"
    feed(est, T0, POSE)
    assert _reason(lambda: est.process(T0 + 2 * 10**9, frame, CAMERA)) == "stale_attitude"


def test_no_tiles_under_the_prior() -> None:
    ortho, _ = synthetic_world()
    from gps_denied_onboard.visual_nav.estimator import VisualEstimator
    from gps_denied_onboard.visual_nav.settings import EstimatorConfig

    est = VisualEstimator(EstimatorConfig(ground_elevation_msl=580.0), DictTileSource())
    feed(est, T0, POSE, prior=POSE)
    assert _reason(lambda: est.process(T0, render(ortho, POSE), CAMERA)) == "no_tiles"


def test_prior_outside_the_map() -> None:
    """Tiles exist, but the prior is 1.5 km beyond their edge."""
    ortho, tiles = synthetic_world()
    est = make_estimator(tiles)
    outside = POSE.offset(5500.0, 0.0)
    feed(est, T0, POSE, prior=outside.offset(-1000.0, 0.0))
    assert _reason(lambda: est.process(T0, render(ortho, POSE), CAMERA)) == "prior_outside_map"


def test_no_prior_at_all() -> None:
    ortho, tiles = synthetic_world()
    est = make_estimator(tiles)
    feed(est, T0, POSE)
    assert _reason(lambda: est.process(T0, render(ortho, POSE), CAMERA)) == "no_prior"


def test_the_estimator_fixes_again_after_every_bad_input() -> None:
    ortho, tiles = synthetic_world()
    est = make_estimator(tiles)
    feed(est, T0, POSE, prior=POSE)
    for bad in (np.zeros((480, 640), np.uint8), np.zeros((0, 0), np.uint8)):
        with pytest.raises(FrameRejected):
            est.process(T0, bad, CAMERA)
    fix = est.process(T0, render(ortho, POSE), CAMERA)
    assert fix.quality > 0


def test_sixteen_bit_and_float_frames_fix_where_the_eight_bit_frame_does() -> None:
    """mono16 / 16UC1 is decoded to uint16 (any depth up to 16 bits), float frames are
    0-1: each is brought to the 8-bit scale, so none reads as saturated or black."""
    ortho, tiles = synthetic_world()
    est = make_estimator(tiles)
    gray = cv2.cvtColor(render(ortho, POSE), cv2.COLOR_BGR2GRAY)
    feed(est, T0, POSE, prior=POSE)
    want = est.process(T0, gray, CAMERA)
    for k, frame in enumerate(
        (
            gray.astype(np.uint16) * 257,  # 16-bit
            gray.astype(np.uint16) * 16,  # 12-bit in a 16-bit word
            gray.astype(np.float32) / 255.0,
        ),
        start=1,
    ):
        est = make_estimator(tiles)
        feed(est, T0 + k, POSE, prior=POSE)
        got = est.process(T0 + k, frame, CAMERA)
        assert (got.latitude, got.longitude) == pytest.approx(
            (want.latitude, want.longitude), abs=1e-7
        )
    for level, why in ((4095, "saturated"), (0, "black")):
        flat = np.full((480, 640), level, np.uint16)
        flat[0, 0] = 4095  # the frame's depth: 12 bits
        with pytest.raises(FrameRejected) as rej:
            est.process(T0, flat, CAMERA)
        assert rej.value.reason == "bad_exposure" and why in str(rej.value)


def test_arrays_that_cannot_be_frames_are_corrupt_image() -> None:
    ortho, tiles = synthetic_world()
    est = make_estimator(tiles)
    feed(est, T0, POSE, prior=POSE)
    frame = render(ortho, POSE)
    nan = frame.astype(np.float32) / 255.0
    nan[100:110, 200:210] = np.nan
    for bad, why in (
        (frame[:, :, :2], "2 channels"),
        (np.dstack([frame, frame])[:, :, :5], "5 channels"),
        (frame.astype(np.int8), "int8"),
        (nan, "not finite"),
        (np.zeros((480, 640, 3, 1), np.uint8), "shape"),
    ):
        with pytest.raises(FrameRejected) as rej:
            est.process(T0, bad, CAMERA)
        assert rej.value.reason == "corrupt_image" and why in str(rej.value)
    assert est.process(T0, frame, CAMERA).quality > 0


def test_gnss_samples_off_the_map_never_become_the_prior() -> None:
    """A position no tile map holds (|lat| past 85.05, |lon| past 180, inf) is dropped:
    the frame is searched around the last good sample, or has no prior at all."""
    ortho, tiles = synthetic_world()
    est = make_estimator(tiles)
    feed(est, T0, POSE)
    for lat, lon in ((95.0, POSE.longitude), (POSE.latitude, 1e308), (math.inf, 0.0)):
        est.priors.add_gnss(T0, lat, lon, healthy=True, sigma_m=10.0)
    assert _reason(lambda: est.process(T0, render(ortho, POSE), CAMERA)) == "no_prior"
    est.priors.add_gnss(T0 - NS, POSE.latitude, POSE.longitude, healthy=True, sigma_m=10.0)
    est.priors.add_gnss(T0, -95.0, POSE.longitude, healthy=True, sigma_m=10.0)
    fix = est.process(T0, render(ortho, POSE), CAMERA)
    assert max(map(abs, error_m(POSE, fix.latitude, fix.longitude))) < 5.0


def test_a_gnss_sigma_or_velocity_past_belief_is_held_not_propagated() -> None:
    """sigma 1e308 (its square overflowed), <= 0 or NaN, and a velocity of 1e308 m/s
    (dead-reckoned off the map): the prior stays a number on the map."""
    from gps_denied_onboard.visual_nav.prior import MAX_PRIOR_SIGMA_M

    _, tiles = synthetic_world()
    est = make_estimator(tiles)
    later = T0 + 3 * NS
    for sigma, want in ((1e308, MAX_PRIOR_SIGMA_M), (-5.0, 10.0), (math.nan, 10.0), (0.0, 10.0)):
        est.priors.add_gnss(
            T0, POSE.latitude, POSE.longitude, healthy=True, sigma_m=sigma, velocity_en=(1e308, 0)
        )
        prior = est.prior_at(later)
        assert prior is not None
        assert (prior.latitude, prior.longitude) == pytest.approx((POSE.latitude, POSE.longitude))
        assert want <= prior.sigma_m < want + 10.0  # grown by 3 s of dead reckoning
        assert est.search_radius_m(prior) <= est.cfg.max_search_radius_m


def test_a_seed_off_the_map_or_without_a_sigma_is_a_prior_error() -> None:
    _, tiles = synthetic_world()
    est = make_estimator(tiles)
    for lat, lon, sigma in ((91.0, 0.0, 50.0), (0.0, math.nan, 50.0), (0.0, 0.0, -1.0)):
        with pytest.raises(PriorError):
            est.seed_prior(T0, lat, lon, sigma)
    assert est.prior_at(T0) is None


def test_an_attitude_that_is_not_a_rotation_is_dropped() -> None:
    """A zero matrix, a NaN and a mirror image: taken as quaternions they would be
    real attitudes (a zero matrix a half turn about z)."""
    ortho, tiles = synthetic_world()
    est = make_estimator(tiles)
    est.height.add_altitude_msl(T0, GROUND_MSL + POSE.agl_m)
    est.priors.add_gnss(T0, POSE.latitude, POSE.longitude, healthy=True, sigma_m=10.0)
    good = POSE.r_enu_flu()
    nan = good.copy()
    nan[1, 2] = math.nan
    for bad in (np.zeros((3, 3)), nan, -good, 2.0 * good):
        est.attitude.add(T0, bad)
    assert len(est.attitude) == 0
    assert _reason(lambda: est.process(T0, render(ortho, POSE), CAMERA)) == "no_attitude"


def test_a_height_past_max_height_is_refused_before_a_mosaic_is_built() -> None:
    """An altitude glitch of 1000 km would size the map mosaic from it (3x the height
    each way): refused as no_height, and nothing is built."""
    ortho, tiles = synthetic_world()
    est = make_estimator(tiles)
    feed(est, T0, POSE, prior=POSE)
    est.height.add_altitude_msl(T0, GROUND_MSL + 1e6)
    with pytest.raises(FrameRejected) as rej:
        est.process(T0, render(ortho, POSE), CAMERA)
    assert rej.value.reason == "no_height" and "max_height_m" in str(rej.value)
    assert reject_payload(rej.value, 1.0)["height_m"] == pytest.approx(1e6, rel=1e-3)
    assert est.mosaic_builds == 0
    est.height.add_range(T0, 3.0, 0.2, 700.0)  # a rangefinder 3 m above ground
    assert _reason(lambda: est.process(T0, render(ortho, POSE), CAMERA)) == "no_height"


def test_a_camera_claiming_a_continent_wide_footprint_sizes_no_mosaic_from_it() -> None:
    """A focal length of 1e-6 px is a footprint of 1e11 m by the height: the mosaic is
    sized at most from a rectified frame's corner (it sized one of petabytes)."""
    from gps_denied_onboard.visual_nav.geo import TILE_PX, ground_resolution_m
    from gps_denied_onboard.visual_nav.rectify import MAX_EXTENT_M

    ortho, tiles = synthetic_world()
    est = make_estimator(tiles)
    feed(est, T0, POSE, prior=POSE)
    wide = CameraModel(640, 480, (1e-6, 0.0, 320.0, 0.0, 1e-6, 240.0, 0.0, 0.0, 1.0))
    with pytest.raises(FrameRejected):
        est.process(T0, render(ortho, POSE), wide)
    m = est.mosaic
    assert m is not None  # (built: the frame got that far)
    side_m = max(m.tiles_x, m.tiles_y) * TILE_PX * ground_resolution_m(LAT0, m.zoom)
    reach = est.cfg.max_search_radius_m + math.sqrt(2.0) * MAX_EXTENT_M + 200.0
    assert side_m <= 2 * 1.3 * reach + 2 * TILE_PX * ground_resolution_m(LAT0, m.zoom)
