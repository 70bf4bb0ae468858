"""Bad input gets a typed reject, never a fix, and the estimator goes on."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gps_denied_onboard.visual_nav.camera import CameraModel
from gps_denied_onboard.visual_nav.errors import CameraModelError, FrameRejected
from gps_denied_onboard.visual_nav.image_codec import decode_compressed, decode_raw
from gps_denied_onboard.visual_nav.mapview import DictTileSource

from .support import CAMERA, LAT0, LON0, T0, Pose, feed, make_estimator, render, synthetic_world

POSE = Pose(LAT0, LON0, 500.0, yaw_deg=30.0)


def _reason(fn) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(FrameRejected) as err:
        fn()
    return err.value.reason


def test_unknown_encoding_and_broken_buffers_are_typed_rejects() -> None:
    assert _reason(lambda: decode_raw("yuv422", 4, 4, 8, bytes(32))) == "unknown_encoding"
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
    from gps_denied_onboard.visual_nav.estimator import EstimatorConfig, VisualEstimator

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
