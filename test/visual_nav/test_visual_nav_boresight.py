"""The camera's mounting error is measured against a healthy GNSS and corrected.

Unit cases feed :class:`Boresight` the offsets a mounting error makes (a tilt
fixed to the airframe, turning with the heading) beside a map offset (fixed on
the ground) and a spoofer's drag; a flight over the shared NAIP pins what it is
for: fixes after the GNSS's loss where a camera mounted off its stated mount
would put them metres off.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gps_denied_onboard.visual_nav.boresight import Boresight, BoresightConfig
from gps_denied_onboard.visual_nav.camera import rot_x, rot_y
from gps_denied_onboard.visual_nav.errors import FrameRejected

from .support import (
    CAMERA,
    T0,
    Pose,
    circle_flight,
    error_m,
    feed,
    make_estimator,
    naip,
    naip_tiles,
    render,
)

NS = 1_000_000_000


def _offset(
    tilt_deg: tuple[float, float], heading: float, height_m: float, corr_deg: tuple[float, float]
) -> tuple[float, float]:
    """Where a camera turned by ``tilt_deg`` (about the body's forward and left axes)
    beyond ``corr_deg`` puts the view's centre against the nadir, east / north."""
    cx, cy = (math.radians(t - c) for t, c in zip(tilt_deg, corr_deg, strict=True))
    view = rot_y(cy) @ rot_x(cx) @ np.array([0.0, 0.0, -1.0])  # the boresight, body FLU
    fwd, left = height_m * view[0] / -view[2], height_m * view[1] / -view[2]
    s, c = math.sin(heading), math.cos(heading)
    return fwd * c - left * s, fwd * s + left * c


def _fly_circle(
    b: Boresight,
    tilt_deg: tuple[float, float],
    *,
    seconds: int,
    map_offset: tuple[float, float] = (0.0, 0.0),
    drag_mps: tuple[float, float] = (0.0, 0.0),
    noise_m: float = 2.0,
    turn_deg_s: float = 3.0,
    seed: int = 1,
) -> None:
    rng = np.random.default_rng(seed)
    for k in range(seconds):
        heading = math.radians(turn_deg_s * k)
        e, n = _offset(tilt_deg, heading, 500.0, b.correction_deg)
        e += map_offset[0] - drag_mps[0] * k + rng.normal(0, noise_m)
        n += map_offset[1] - drag_mps[1] * k + rng.normal(0, noise_m)
        b.add(T0 + k * NS, (e, n), heading=heading, height_m=500.0, sigma_m=4.0, gnss_sigma_m=2.0)


def test_a_mounting_error_is_measured_apart_from_the_maps_offset_and_corrected() -> None:
    b = Boresight(BoresightConfig())
    _fly_circle(b, (1.5, -1.0), seconds=60, map_offset=(3.0, -2.0))
    cx, cy = b.correction_deg
    assert abs(cx - 1.5) < 0.2 and abs(cy + 1.0) < 0.2, (cx, cy)
    # the camera as it is mounted: the stated mount turned by the correction
    expect = rot_y(math.radians(cy)) @ rot_x(math.radians(cx))
    assert np.allclose(b.rotation(), expect)


def test_one_heading_alone_measures_nothing() -> None:
    """Flying straight, a tilt and the map's offset look alike: no correction."""
    b = Boresight(BoresightConfig())
    _fly_circle(b, (1.5, -1.0), seconds=120, turn_deg_s=0.2)
    assert b.correction_deg == (0.0, 0.0) and b.fit is None


def test_a_mounting_within_the_attitudes_own_error_is_left_alone() -> None:
    b = Boresight(BoresightConfig())
    _fly_circle(b, (0.2, 0.1), seconds=90)
    assert b.fit is not None and b.correction_deg == (0.0, 0.0)
    assert np.allclose(b.rotation(), np.eye(3))


def test_a_spoofers_drag_or_an_implausible_tilt_is_not_taken() -> None:
    """A GNSS dragged off at 2 m/s while it reports itself healthy: the offsets grow
    with time, which no mounting and map offset explain. A fit past max_tilt_deg is
    no mounting's."""
    dragged = Boresight(BoresightConfig())
    _fly_circle(dragged, (0.0, 0.0), seconds=120, drag_mps=(2.0, 1.0))
    assert dragged.correction_deg == (0.0, 0.0)
    tilted = Boresight(BoresightConfig(max_tilt_deg=3.0))
    _fly_circle(tilted, (4.0, 0.0), seconds=90)
    assert tilted.correction_deg == (0.0, 0.0)


def test_a_loose_gnss_teaches_nothing_and_old_pairs_leave_the_window() -> None:
    b = Boresight(BoresightConfig(max_gnss_sigma_m=5.0, window_s=30.0))
    b.add(T0, (10.0, 0.0), heading=0.0, height_m=500.0, sigma_m=4.0, gnss_sigma_m=8.0)
    assert b.fit is None and not b._pairs
    _fly_circle(b, (1.5, -1.0), seconds=60, turn_deg_s=6.0)
    assert len(b._pairs) == 31  # 30 s of pairs at 1 Hz, both ends in


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
    tx=st.floats(-2.5, 2.5),
    ty=st.floats(-2.5, 2.5),
    me=st.floats(-5, 5),
    mn=st.floats(-5, 5),
    seed=st.integers(0, 1000),
)
def test_the_correction_is_the_mounting_within_a_fifth_of_a_degree_or_none(
    tx: float, ty: float, me: float, mn: float, seed: int
) -> None:
    b = Boresight(BoresightConfig())
    _fly_circle(b, (tx, ty), seconds=90, map_offset=(me, mn), seed=seed)
    cx, cy = b.correction_deg
    if (cx, cy) == (0.0, 0.0):
        assert math.hypot(tx, ty) < 0.5 + 0.2  # left alone only where it is small
    else:
        assert abs(cx - tx) < 0.2 and abs(cy - ty) < 0.2, (cx, cy, tx, ty)


def test_fixes_after_the_gnss_is_lost_are_right_with_a_camera_mounted_off() -> None:
    """1 km footprints (500 m above ground) on a 3 deg/s turn, 2017 map, 2009 frames;
    the camera mounted 1.5 deg about the forward axis and 1 deg about the left one
    off what the estimator is told. A GNSS 1.5 m noisy until 50 s, then lost."""
    ortho = naip("2009")
    tiles = naip_tiles("2017")
    rng = np.random.default_rng(5)
    flight = circle_flight()

    def fly(on: bool) -> list[tuple[float, float]]:
        est = make_estimator(tiles, attitude_sigma_deg=0.15)
        if not on:
            est = make_estimator(
                tiles, attitude_sigma_deg=0.15, boresight=BoresightConfig(enabled=False)
            )
        out = []
        for k, pose in enumerate(flight):
            stamp = T0 + k * NS
            told = Pose(  # the autopilot's attitude is right; the camera is not where told
                pose.latitude, pose.longitude, 500.0, pose.roll_deg, pose.pitch_deg, pose.yaw_deg
            )
            healthy = k < 50
            gnss = pose.offset(*rng.normal(0.0, 1.5, 2)) if healthy else None
            feed(est, stamp, told, prior=gnss, prior_sigma_m=2.0)
            if not healthy:
                est.set_gnss_healthy(False, stamp)
            frame = render(ortho, pose, mount_rpy=(1.5, -1.0, 0.0))
            try:
                fix = est.process(stamp, frame, CAMERA)
            except FrameRejected:
                continue
            if not healthy:
                e, n = error_m(pose, fix.latitude, fix.longitude)
                out.append((math.hypot(e, n), max(abs(e), abs(n)) / fix.sigma_m))
        return out

    off = fly(False)
    on = fly(True)
    assert len(on) >= 15 and len(off) >= 15
    # told nothing, the fixes stand a mounting's 15 m off, past 3 sigma
    assert float(np.median([e for e, _ in off])) > 10.0, off
    assert float(np.median([e for e, _ in on])) < 5.0, on
    assert all(z <= 3.0 for _, z in on), on


def test_diagnostics_show_the_mounting_fit_and_the_correction_in_force() -> None:
    from gps_denied_onboard.visual_nav.outputs import VisualNavStats

    stats = VisualNavStats()
    assert "mount_fit_deg" not in stats.as_dict()  # no fit yet: nothing claimed
    assert "mount_correction_deg" not in stats.as_dict()
    stats.mount_correction_deg = (1.2, -0.8)  # restored (learnt_camera_file), no fit yet
    assert stats.as_dict()["mount_correction_deg"] == "1.20 -0.80"
    assert "mount_fit_deg" not in stats.as_dict()
    stats.mount_fit_deg, stats.mount_correction_deg = (1.512, -0.987, 0.104), (1.512, -0.987)
    got = stats.as_dict()
    assert got["mount_fit_deg"] == "1.51 -0.99 +- 0.10"
    assert got["mount_correction_deg"] == "1.51 -0.99"
