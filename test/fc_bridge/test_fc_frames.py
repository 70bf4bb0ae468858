"""frames.py and geodesy.py: the one place where ENU/NED, FLU/FRD and yaw conventions live."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gps_denied_onboard.fc_bridge import frames
from gps_denied_onboard.fc_bridge.geodesy import (
    WGS84_A,
    WGS84_B,
    WGS84_E2,
    LocalOrigin,
    ecef_to_geodetic,
    geodetic_to_ecef,
    geodetic_to_ned,
    ned_to_geodetic,
)


def test_enu_ned_swap_axes_and_flip_vertical() -> None:
    assert frames.enu_to_ned((1.0, 2.0, 3.0)) == (2.0, 1.0, -3.0)
    assert frames.ned_to_enu((2.0, 1.0, -3.0)) == (1.0, 2.0, 3.0)
    # moving north in ENU (+y) is +x (north) in NED; climbing (+z up) is -z (down)
    assert frames.enu_to_ned((0.0, 5.0, 0.0)) == (5.0, 0.0, -0.0)
    assert frames.enu_to_ned((0.0, 0.0, 2.0))[2] == -2.0


def test_flu_frd_flips_lateral_and_vertical() -> None:
    assert frames.flu_to_frd((1.0, 2.0, 3.0)) == (1.0, -2.0, -3.0)
    assert frames.frd_to_flu(frames.flu_to_frd((0.3, -0.7, 9.0))) == (0.3, -0.7, 9.0)


@pytest.mark.parametrize(
    ("yaw_enu", "compass_deg"),
    [
        (0.0, 90.0),  # ENU 0 = facing east
        (math.pi / 2, 0.0),  # facing north
        (math.pi, 270.0),  # facing west
        (-math.pi / 2, 180.0),  # facing south
        (math.pi / 4, 45.0),  # north-east
        (math.pi / 2 + 2 * math.pi, 0.0),  # wrapped
    ],
)
def test_yaw_enu_to_compass(yaw_enu: float, compass_deg: float) -> None:
    assert frames.yaw_enu_to_compass_deg(yaw_enu) == pytest.approx(compass_deg, abs=1e-9)
    yaw_ned = frames.yaw_enu_to_ned(yaw_enu)
    assert math.degrees(yaw_ned) % 360.0 == pytest.approx(compass_deg % 360.0, abs=1e-9)
    assert frames.yaw_ned_to_enu(yaw_ned) == pytest.approx(frames.wrap_pi(yaw_enu), abs=1e-12)


def test_gps_input_yaw_north_is_36000_never_zero() -> None:
    assert frames.yaw_enu_to_gps_input_cdeg(math.pi / 2) == 36000  # compass 0
    assert frames.yaw_enu_to_gps_input_cdeg(math.pi / 2 - 2 * math.pi) == 36000  # compass 360
    assert frames.yaw_enu_to_gps_input_cdeg(math.pi / 2 - 1e-9) == 36000  # rounds to 360.00
    assert frames.yaw_enu_to_gps_input_cdeg(0.0) == 9000  # east, in centidegrees, not radians
    assert frames.yaw_enu_to_gps_input_cdeg(None) == 0
    assert frames.yaw_enu_to_gps_input_cdeg(math.nan) == 0


def test_course_over_ground() -> None:
    for course in (0, 45, 90, 180, 270):
        r = math.radians(course)
        v_ned = (math.cos(r) * 3.0, math.sin(r) * 3.0, 0.0)
        assert frames.course_over_ground_deg(v_ned) == pytest.approx(course, abs=1e-9)


def test_covariance_enu_to_ned_matches_numpy_rotation() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 3))
    cov_enu = a @ a.T
    p = np.array([[0, 1, 0], [1, 0, 0], [0, 0, -1]], dtype=float)
    expected = p @ cov_enu @ p.T
    got = np.array(frames.cov_enu_to_ned(tuple(cov_enu.ravel()))).reshape(3, 3)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    # diagonal: east/north variances swap, up variance stays
    diag = frames.cov_enu_to_ned((1.0, 0, 0, 0, 4.0, 0, 0, 0, 9.0))
    assert (diag[0], diag[4], diag[8]) == (4.0, 1.0, 9.0)
    # east-up correlation becomes east-down anti-correlation
    c = frames.cov_enu_to_ned((1.0, 0, 0.5, 0, 1.0, 0, 0.5, 0, 1.0))
    assert c[5] == -0.5  # (east, down)


def test_body_rotation_round_trips_through_the_quaternion() -> None:
    yaw = math.radians(90.0)  # facing east
    # flying east while facing east: all forward
    f, r, d = frames.ned_to_body_frd_yaw_only((0.0, 5.0, 1.0), yaw)
    assert (f, r, d) == pytest.approx((5.0, 0.0, 1.0), abs=1e-12)
    # flying north while facing east: to the left, i.e. negative "right"
    assert frames.ned_to_body_frd_yaw_only((5.0, 0.0, 0.0), yaw) == pytest.approx(
        (0.0, -5.0, 0.0), abs=1e-12
    )
    w, x, y, z = frames.quat_from_yaw_ned(yaw)
    rot = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    v_ned = np.array([3.0, -2.0, 0.5])
    body = np.array(frames.ned_to_body_frd_yaw_only(tuple(v_ned), yaw))
    np.testing.assert_allclose(rot @ body, v_ned, atol=1e-12)
    assert frames.body_frd_to_ned_yaw_only(tuple(body), yaw) == pytest.approx(tuple(v_ned))


def test_upper_triangle_layout_and_nan_for_unknown() -> None:
    block = (1.0, 0.1, 0.2, 0.1, 2.0, 0.3, 0.2, 0.3, 3.0)
    tri = frames.upper_triangle_6x6(block, (None, None, 0.05))
    assert len(tri) == 21
    assert (tri[0], tri[6], tri[11]) == (1.0, 2.0, 3.0)  # x, y, z variances
    assert (tri[1], tri[2], tri[7]) == (0.1, 0.2, 0.3)
    assert math.isnan(tri[15]) and math.isnan(tri[18])  # roll, pitch unknown
    assert tri[20] == 0.05  # yaw variance
    assert math.isnan(tri[3]) and math.isnan(tri[4]) and tri[5] == 0.0  # x-roll, x-pitch, x-yaw
    unknown = frames.upper_triangle_6x6(None, (None, None, None))
    assert all(math.isnan(v) for v in unknown)


def test_eigen_helpers_match_numpy() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        a = rng.normal(size=(3, 3))
        cov = a @ a.T
        assert frames.sym3_max_eigenvalue(tuple(cov.ravel())) == pytest.approx(
            float(np.linalg.eigvalsh(cov)[-1]), rel=1e-9
        )
        h = frames.horizontal_sigma_max(tuple(cov.ravel()))
        assert h == pytest.approx(math.sqrt(float(np.linalg.eigvalsh(cov[:2, :2])[-1])), rel=1e-9)
    assert frames.sym3_max_eigenvalue((4.0, 0, 0, 0, 9.0, 0, 0, 0, 1.0)) == 9.0


# --- geodesy ------------------------------------------------------------------------
def test_ecef_reference_points() -> None:
    assert geodetic_to_ecef(0.0, 0.0, 0.0) == pytest.approx((WGS84_A, 0.0, 0.0))
    assert geodetic_to_ecef(90.0, 0.0, 0.0) == pytest.approx((0.0, 0.0, WGS84_B), abs=1e-6)
    lat, lon, h = ecef_to_geodetic(*geodetic_to_ecef(47.397742, 8.545594, 488.0))
    assert (lat, lon, h) == pytest.approx((47.397742, 8.545594, 488.0), abs=1e-9)


@pytest.mark.parametrize("lat0", [0.0, 47.397742, -33.9, 70.0])
def test_small_offsets_match_radii_of_curvature(lat0: float) -> None:
    """Independent check: d(north) = M dlat, d(east) = N cos(lat) dlon for tiny steps."""
    origin = LocalOrigin(lat0, 8.5, 400.0)
    s = math.sin(math.radians(lat0))
    m = WGS84_A * (1 - WGS84_E2) / (1 - WGS84_E2 * s * s) ** 1.5
    n = WGS84_A / math.sqrt(1 - WGS84_E2 * s * s)
    d = 1e-5
    north, east, down = geodetic_to_ned(lat0 + d, 8.5, 400.0, origin)
    assert north == pytest.approx((m + 400.0) * math.radians(d), rel=1e-6)
    assert abs(east) < 1e-6
    north, east, down = geodetic_to_ned(lat0, 8.5 + d, 400.0, origin)
    assert east == pytest.approx(
        (n + 400.0) * math.cos(math.radians(lat0)) * math.radians(d), rel=1e-6
    )
    assert abs(north) < 1e-6
    _, _, down = geodetic_to_ned(lat0, 8.5, 410.0, origin)
    assert down == pytest.approx(-10.0, abs=1e-9)


def test_ned_round_trip_far_from_origin() -> None:
    origin = LocalOrigin(47.397742, 8.545594, 488.0)
    for ned in ((12_000.0, -8_000.0, -150.0), (-30_000.0, 25_000.0, 20.0), (0.0, 0.0, 0.0)):
        lat, lon, alt = ned_to_geodetic(*ned, origin)
        assert geodetic_to_ned(lat, lon, alt, origin) == pytest.approx(ned, abs=1e-4)
