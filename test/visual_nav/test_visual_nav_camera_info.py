"""A CameraInfo's binning and ROI: the camera model is the one of the images the driver sends.

CameraInfo keeps the calibration at the sensor's full resolution; a driver that
bins or crops says so in ``binning_x``/``binning_y`` and ``roi``. The expected
rays are the full-resolution camera's, taken where the binned or cropped
pixel's light fell on the sensor.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from gps_denied_onboard.nodes.visual_nav_msgs import camera_model_of
from gps_denied_onboard.visual_nav.camera import CameraModel, mount_rotation
from gps_denied_onboard.visual_nav.errors import CameraModelError
from gps_denied_onboard.visual_nav.geo import LocalFrame
from gps_denied_onboard.visual_nav.simulate import render_frame

from .support import (
    CAMERA,
    LAT0,
    LON0,
    T0,
    Pose,
    error_m,
    feed,
    make_estimator,
    render,
    synthetic_world,
)

POSE = Pose(LAT0, LON0, 500.0, yaw_deg=30.0)


def _info(binning: tuple[int, int] = (0, 0), roi: tuple[int, int, int, int] = (0, 0, 0, 0)):  # type: ignore[no-untyped-def]
    m = CameraInfo()
    m.width, m.height = CAMERA.width, CAMERA.height
    m.k = list(CAMERA.k)
    m.distortion_model = CAMERA.distortion_model
    m.d = list(CAMERA.d)
    m.binning_x, m.binning_y = binning
    m.roi.x_offset, m.roi.y_offset, m.roi.width, m.roi.height = roi
    return m


@pytest.mark.parametrize("bx,by", [(2, 2), (4, 4), (2, 1), (3, 3)])
def test_a_binned_pixel_sees_along_the_mean_of_the_pixels_it_combines(bx: int, by: int) -> None:
    binned = camera_model_of(_info((bx, by)))
    assert (binned.width, binned.height) == (CAMERA.width // bx, CAMERA.height // by)
    uv = np.array([[0.0, 0.0], [10.0, 7.0], [binned.width - 1.0, binned.height - 1.0]])
    on_sensor = np.stack([(uv[:, 0] + 0.5) * bx - 0.5, (uv[:, 1] + 0.5) * by - 0.5], axis=1)
    assert binned.rays(uv) == pytest.approx(CAMERA.rays(on_sensor), abs=1e-9)


def test_a_cropped_pixel_sees_along_the_sensor_pixel_under_it() -> None:
    cropped = camera_model_of(_info(roi=(100, 60, 400, 300)))
    assert (cropped.width, cropped.height) == (400, 300)
    uv = np.array([[0.0, 0.0], [200.5, 149.0], [399.0, 299.0]])
    assert cropped.rays(uv) == pytest.approx(CAMERA.rays(uv + np.array([100.0, 60.0])), abs=1e-9)
    # a ROI binned: cropped on the full-resolution sensor first, then binned
    both = camera_model_of(_info((2, 2), (100, 60, 400, 300)))
    assert (both.width, both.height) == (200, 150)
    on_sensor = (np.array([[20.0, 30.0]]) + 0.5) * 2 - 0.5 + np.array([100.0, 60.0])
    assert both.rays(np.array([[20.0, 30.0]])) == pytest.approx(CAMERA.rays(on_sensor), abs=1e-9)


def test_no_binning_and_no_roi_is_the_calibration_as_it_is() -> None:
    for binning in ((0, 0), (1, 1), (0, 1)):
        assert camera_model_of(_info(binning)) == CAMERA
    assert camera_model_of(_info(roi=(0, 0, 640, 480))) == CAMERA


@pytest.mark.parametrize(
    "roi",
    [(600, 0, 100, 100), (0, 400, 640, 100), (0, 0, 641, 480), (10, 10, 1, 1)],
)
def test_a_roi_off_the_sensor_or_under_a_binned_pixel_is_refused(
    roi: tuple[int, int, int, int],
) -> None:
    with pytest.raises(CameraModelError):
        camera_model_of(_info((2, 2), roi))
    with pytest.raises(CameraModelError):
        CameraModel(640, 480, CAMERA.k).as_delivered(1, 1, (-1, 0, 10, 10))


@pytest.mark.parametrize("how", ["binned_2x", "cropped", "cropped_and_binned"])
def test_a_binned_or_cropped_camera_fixes_where_the_full_frame_does(how: str) -> None:
    """Before, the half-size frames of a camera binning 2x against its full-size
    CameraInfo were each refused as corrupt: no fix at all."""
    ortho, tiles = synthetic_world()
    full = render(ortho, POSE)
    if how == "binned_2x":
        info, frame = _info((2, 2)), cv2.resize(full, (320, 240), interpolation=cv2.INTER_AREA)
    elif how == "cropped":
        info, frame = _info(roi=(80, 40, 480, 400)), full[40:440, 80:560]
    else:
        crop = full[40:440, 80:560]
        info = _info((2, 2), (80, 40, 480, 400))
        frame = cv2.resize(crop, (240, 200), interpolation=cv2.INTER_AREA)
    est = make_estimator(tiles)
    feed(est, T0, POSE, prior=POSE)
    want = est.process(T0, full, CAMERA)
    est = make_estimator(tiles)
    feed(est, T0, POSE, prior=POSE)
    got = est.process(T0, np.ascontiguousarray(frame), camera_model_of(info))
    e, n = LocalFrame(want.latitude, want.longitude).to_en(got.latitude, got.longitude)
    assert np.hypot(e, n) < 1.5, (how, e, n)


def test_a_rectified_image_is_matched_through_p_without_the_lens_distortion() -> None:
    """``image_rect`` (image_proc, or a camera rectifying on board): CameraInfo's P is its
    camera and the distortion is gone. Read through K and D instead, a wide lens's
    distortion is taken out twice: 4-9 m off and the height scale 10-15 % wrong."""
    ortho, tiles = synthetic_world()
    lens = CameraModel(640, 480, CAMERA.k, "plumb_bob", (-0.25, 0.06, 0.0, 0.0, 0.0))
    k, d = np.array(lens.k).reshape(3, 3), np.array(lens.d)
    p, _ = cv2.getOptimalNewCameraMatrix(k, d, (640, 480), 0.0)
    info = _info()
    info.d = list(lens.d)
    info.p = [p[0, 0], 0.0, p[0, 2], 0.0, 0.0, p[1, 1], p[1, 2], 0.0, 0.0, 0.0, 1.0, 0.0]
    rectified = camera_model_of(info, rectified=True)
    assert rectified.d == () and rectified.k == pytest.approx(tuple(p.ravel()))
    assert camera_model_of(info) == lens  # raw frames: K and D as before
    for pose in (
        Pose(LAT0, LON0, 500.0, yaw_deg=30.0),
        Pose(LAT0, LON0, 500.0, yaw_deg=30.0, roll_deg=12.0, pitch_deg=-8.0),
    ):
        raw = render_frame(
            ortho,
            lens,
            pose.r_enu_flu() @ mount_rotation((0.0, 0.0, 0.0)),
            latitude=pose.latitude,
            longitude=pose.longitude,
            height_m=pose.agl_m,
        )
        rect = cv2.undistort(raw, k, d, None, p)
        off = {}
        for flag in (True, False):
            est = make_estimator(tiles)
            feed(est, T0, pose, prior=pose)
            got = est.process(T0, rect, camera_model_of(info, rectified=flag))
            off[flag] = (float(np.hypot(*error_m(pose, got.latitude, got.longitude))), got.scale)
        assert off[True][0] < 1.0 and abs(off[True][1] - 1.0) < 0.01, off
        assert off[False][0] > 3.0 and abs(off[False][1] - 1.0) > 0.05, off


def test_an_uncalibrated_cameras_zero_p_is_refused_for_rectified_images() -> None:
    info = _info()
    info.p = [0.0] * 12
    with pytest.raises(CameraModelError):
        camera_model_of(info, rectified=True)
