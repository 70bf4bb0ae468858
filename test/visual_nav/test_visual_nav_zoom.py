"""Ground that rises or falls under the aircraft, with no rangefinder: consecutive
frames rectified at the same reported height show it at different sizes
(:mod:`gps_denied_onboard.visual_nav.zoom`), and a stitched patch is built at its
newest frame's scale."""

from __future__ import annotations

import math

import pytest

from gps_denied_onboard.visual_nav.camera import mount_rotation
from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.features import to_gray_f32
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.odometry import OdometryConfig, prev_field_of, register
from gps_denied_onboard.visual_nav.rectify import RectifiedFrame
from gps_denied_onboard.visual_nav.views import FrameView
from gps_denied_onboard.visual_nav.zoom import zoom_between

from .support import (
    CAMERA,
    LAT0,
    LON0,
    Pose,
    error_m,
    make_estimator,
    render,
    rising_ground_flight,
    synthetic_world,
)

REPORTED_M = 200.0


def _rectified(pose: Pose) -> RectifiedFrame | None:
    """``pose``'s frame rectified at the reported height, not its own."""
    ortho, _ = synthetic_world()
    view = FrameView(
        to_gray_f32(render(ortho, pose)),
        CAMERA,
        pose.r_enu_flu() @ mount_rotation((0.0, 0.0, 0.0)),
        REPORTED_M,
    )
    return view.render(0.0, 1.0, 5.0)


@pytest.mark.parametrize("true_m", [194.5, 198.0, 200.0, 203.0, 190.0])
def test_the_zoom_between_two_frames_is_their_true_heights_ratio(true_m: float) -> None:
    """Both frames rectified at 200 m; the second taken from ``true_m`` above the ground
    20 m on: its pixels cover true_m / 200 of what they claim. A zoom past the
    candidates' span (5 %: 10 m of climb or descent between two frames) is not
    measured."""
    start = Pose(LAT0, LON0, REPORTED_M, roll_deg=2.0, pitch_deg=4.0, yaw_deg=70.0)
    moved = start.offset(17.0, -9.0)
    nxt = Pose(moved.latitude, moved.longitude, true_m, 2.0, 4.0, 70.0)
    a, b = _rectified(start), _rectified(nxt)
    assert a is not None and b is not None
    shift = register(a, b, (0.0, 0.0), 60.0)
    assert shift is not None
    got = zoom_between(a, b, (shift[0], shift[1]), register, prev_field_of)
    if true_m < 0.97 * REPORTED_M:
        assert got is None
    else:
        assert got == pytest.approx(true_m / REPORTED_M, abs=0.003)


def _rising_ground_flight(zoom: bool) -> list[tuple[Pose, VisualFix | FrameRejected]]:
    """400 m frames (200 m above the ground at first), a frame a second at 25 m/s, the
    GNSS denied after 3 s; the ground rises by a fifth of the height from 6 to 16 s and
    the reported height stays."""
    _, tiles = synthetic_world()
    return rising_ground_flight(
        make_estimator(tiles, odometry=OdometryConfig(stitch_zoom=zoom)),
        Pose(LAT0, LON0, REPORTED_M).offset(-500.0, -300.0),
        frames=30,
        step_en_m=(20.0, 15.0),
        yaw_deg=53.0,
    )


def _errors(flown: list[tuple[Pose, VisualFix | FrameRejected]]) -> list[float]:
    return [
        math.hypot(*error_m(pose, got.latitude, got.longitude))
        for pose, got in flown
        if isinstance(got, VisualFix)
    ]


def test_stitched_small_frames_stay_on_ground_that_rises_under_them() -> None:
    """With each registration's zoom, a patch is built at its newest frame's scale and
    its fixes stay within metres through the rise; built from the registrations'
    translations alone, it mixed frames of heights a fifth apart, was matched at a
    scale between them, and its nadir, at the end of a lever of hundreds of metres,
    went 15-30 m off."""
    with_zoom = _rising_ground_flight(zoom=True)
    errors = _errors(with_zoom)
    assert len(errors) == len(with_zoom)
    assert max(errors) < 12.0, errors
    assert max(_errors(_rising_ground_flight(zoom=False))) > 15.0
