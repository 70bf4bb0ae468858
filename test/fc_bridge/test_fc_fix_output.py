"""fix_output.py: every encoder's bytes decoded by a fresh pymavlink parser, wire fields asserted.

These are the failures of today's tools turned into tests: velocity frame and sign
(MAVROS fake GPS), course units (radians where centidegrees belong), missing velocity
and accuracy (GISNav mock GPS), plus altitude reference, yaw 0 vs 360 and GPS time.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from gps_denied_onboard.fc_bridge.fix import PositionFix
from gps_denied_onboard.fc_bridge.fix_output import (
    FixEncoder,
    GpsInputSettings,
    LocalOrigin,
    OutputKind,
    default_output_kind,
    encode_global_position_sensor,
    encode_gps_input,
    encode_odometry,
    encode_vision_position_estimate,
    gps_week_tow_ms,
    odometry_frames_for,
    resolve_output_kind,
)
from gps_denied_onboard.fc_bridge.geodesy import ned_to_geodetic

CAPTURE_NS = 1_778_544_000_123_456_789  # 2026-05-12T00:00:00.123456789Z
LAT, LON, ALT = 47.3977421, 8.5455938, 488.25
ORIGIN = LocalOrigin(LAT, LON, ALT)
GOOD_COV = (9.0, 0.0, 0.0, 0.0, 16.0, 0.0, 0.0, 0.0, 25.0)  # E 3 m, N 4 m, U 5 m
VEL_COV = (0.04, 0.0, 0.0, 0.0, 0.09, 0.0, 0.0, 0.0, 0.01)

IGN = SimpleNamespace(
    ALT=mavlink2.GPS_INPUT_IGNORE_FLAG_ALT,
    HDOP=mavlink2.GPS_INPUT_IGNORE_FLAG_HDOP,
    VDOP=mavlink2.GPS_INPUT_IGNORE_FLAG_VDOP,
    VEL_HORIZ=mavlink2.GPS_INPUT_IGNORE_FLAG_VEL_HORIZ,
    VEL_VERT=mavlink2.GPS_INPUT_IGNORE_FLAG_VEL_VERT,
    SPEED_ACC=mavlink2.GPS_INPUT_IGNORE_FLAG_SPEED_ACCURACY,
    H_ACC=mavlink2.GPS_INPUT_IGNORE_FLAG_HORIZONTAL_ACCURACY,
    V_ACC=mavlink2.GPS_INPUT_IGNORE_FLAG_VERTICAL_ACCURACY,
)


def wire(msg: Any) -> Any:
    """Pack as our link would (MAVLink 2, sysid 1, onboard computer) and decode fresh."""
    buf = msg.pack(mavlink2.MAVLink(None, srcSystem=1, srcComponent=191))
    parser = mavlink2.MAVLink(None)
    decoded = parser.parse_buffer(buf)
    assert decoded is not None and len(decoded) == 1
    out = decoded[0]
    assert out.get_type() == msg.get_type()
    return out


def make_fix(**kw: Any) -> PositionFix:
    base: dict[str, Any] = {
        "capture_ns": CAPTURE_NS,
        "latitude_deg": LAT,
        "longitude_deg": LON,
        "altitude_msl_m": ALT,
        "velocity_enu": (0.0, 0.0, 0.0),
        "position_cov_enu": GOOD_COV,
        "velocity_cov_enu": VEL_COV,
        "yaw_enu_rad": math.pi / 2,
        "yaw_variance_rad2": 0.01,
        "reset_counter": 3,
        "quality": 80,
    }
    base.update(kw)
    return PositionFix(**base)


# --- GPS_INPUT ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("v_enu", "ned"),
    [
        ((0.0, 5.0, 0.0), (5.0, 0.0, 0.0)),  # north
        ((5.0, 0.0, 0.0), (0.0, 5.0, 0.0)),  # east
        ((0.0, 0.0, 2.0), (0.0, 0.0, -2.0)),  # up: NED down is negative
        ((-1.5, -2.5, -0.5), (-2.5, -1.5, 0.5)),  # south-west, descending
    ],
)
def test_gps_input_velocity_is_ned(
    v_enu: tuple[float, float, float], ned: tuple[float, ...]
) -> None:
    m = wire(encode_gps_input(make_fix(velocity_enu=v_enu)))
    assert (m.vn, m.ve, m.vd) == pytest.approx(ned, abs=1e-6)
    assert m.ignore_flags & (IGN.VEL_HORIZ | IGN.VEL_VERT) == 0


@pytest.mark.parametrize("course_deg", [0, 45, 90, 180, 270])
def test_gps_input_course_and_yaw(course_deg: int) -> None:
    """Flying and facing compass ``course_deg``: velocity direction and yaw in cdeg."""
    c = math.radians(course_deg)
    v_enu = (math.sin(c) * 10.0, math.cos(c) * 10.0, 0.0)
    yaw_enu = math.pi / 2 - c
    m = wire(encode_gps_input(make_fix(velocity_enu=v_enu, yaw_enu_rad=yaw_enu)))
    course = math.degrees(math.atan2(m.ve, m.vn)) % 360.0
    assert course == pytest.approx(course_deg, abs=1e-4)
    assert math.hypot(m.vn, m.ve) == pytest.approx(10.0, abs=1e-5)
    assert m.yaw == (36000 if course_deg == 0 else course_deg * 100)


def test_gps_input_yaw_zero_and_360_are_north_not_unknown() -> None:
    north = wire(encode_gps_input(make_fix(yaw_enu_rad=math.pi / 2)))
    full_turn = wire(encode_gps_input(make_fix(yaw_enu_rad=math.pi / 2 - 2 * math.pi)))
    assert north.yaw == 36000
    assert full_turn.yaw == 36000
    unknown = wire(encode_gps_input(make_fix(yaw_enu_rad=None)))
    assert unknown.yaw == 0
    east = wire(encode_gps_input(make_fix(yaw_enu_rad=0.0)))
    assert east.yaw == 9000


def test_gps_input_position_and_altitude_reference() -> None:
    m = wire(encode_gps_input(make_fix()))
    assert m.lat == 473977421
    assert m.lon == 85455938
    assert m.alt == pytest.approx(ALT, abs=1e-3)  # metres MSL, not mm, not relative
    assert m.ignore_flags & IGN.ALT == 0
    south_west = wire(
        encode_gps_input(make_fix(latitude_deg=-33.8688197, longitude_deg=-151.2092955))
    )
    assert (south_west.lat, south_west.lon) == (-338688197, -1512092955)


def test_gps_input_accuracies_from_covariance() -> None:
    m = wire(encode_gps_input(make_fix(velocity_enu=(1.0, 1.0, 0.0))))
    assert m.horiz_accuracy == pytest.approx(4.0)  # worst horizontal axis (north, 16 m^2)
    assert m.vert_accuracy == pytest.approx(5.0)
    assert m.speed_accuracy == pytest.approx(0.3)  # worst velocity axis (0.09)
    assert m.hdop == pytest.approx(4.0 / 5.0)  # pseudo-DOP, reference 5 m
    assert m.vdop == pytest.approx(1.0)
    assert m.ignore_flags == 0
    # a correlated (rotated) ellipse: 1-sigma along its major axis, not the diagonal
    rot = (8.5, 7.5, 0.0, 7.5, 8.5, 0.0, 0.0, 0.0, 4.0)  # eigenvalues 16 and 1
    assert wire(encode_gps_input(make_fix(position_cov_enu=rot))).horiz_accuracy == pytest.approx(
        4.0
    )


def test_gps_input_ignore_flags_for_what_is_missing() -> None:
    no_vel = wire(encode_gps_input(make_fix(velocity_enu=None)))
    assert no_vel.ignore_flags == IGN.VEL_HORIZ | IGN.VEL_VERT | IGN.SPEED_ACC
    no_vel_cov = wire(encode_gps_input(make_fix(velocity_cov_enu=None)))
    assert no_vel_cov.ignore_flags == IGN.SPEED_ACC
    no_cov = wire(encode_gps_input(make_fix(position_cov_enu=None)))
    assert no_cov.ignore_flags == IGN.H_ACC | IGN.V_ACC | IGN.HDOP | IGN.VDOP
    assert no_cov.fix_type == mavlink2.GPS_FIX_TYPE_NO_FIX
    assert no_cov.satellites_visible == 0
    zero_cov = PositionFix(CAPTURE_NS, LAT, LON, ALT, position_cov_enu=(0.0,) * 9)
    assert zero_cov.position_cov_enu is None  # PositionFix.msg: all zero = unknown
    no_vertical = wire(encode_gps_input(make_fix(position_cov_enu=(*GOOD_COV[:8], 0.0))))
    assert no_vertical.ignore_flags == IGN.V_ACC | IGN.VDOP
    assert no_vertical.fix_type == mavlink2.GPS_FIX_TYPE_2D_FIX


@pytest.mark.parametrize(
    ("h_var", "v_var", "quality", "fix_type", "sats"),
    [
        (100.0, 100.0, 80, mavlink2.GPS_FIX_TYPE_3D_FIX, 10),  # 10 m / 10 m
        (400.0, 1600.0, 80, mavlink2.GPS_FIX_TYPE_3D_FIX, 10),  # exactly at 20 m / 40 m
        (900.0, 100.0, 80, mavlink2.GPS_FIX_TYPE_2D_FIX, 6),  # 30 m
        (100.0, 2500.0, 80, mavlink2.GPS_FIX_TYPE_2D_FIX, 6),  # vertical too poor
        (3600.0, 100.0, 80, mavlink2.GPS_FIX_TYPE_NO_FIX, 0),  # 60 m
        (1.0, 1.0, 0, mavlink2.GPS_FIX_TYPE_NO_FIX, 0),  # estimator says unusable
    ],
)
def test_gps_input_fix_type_from_covariance(
    h_var: float, v_var: float, quality: int, fix_type: int, sats: int
) -> None:
    cov = (h_var, 0.0, 0.0, 0.0, h_var, 0.0, 0.0, 0.0, v_var)
    m = wire(encode_gps_input(make_fix(position_cov_enu=cov, quality=quality)))
    assert m.fix_type == fix_type
    assert m.satellites_visible == sats


def _utc_ns(*args: int) -> int:
    dt = datetime(*args, tzinfo=timezone.utc)  # type: ignore[misc]
    return round(dt.timestamp()) * 1_000_000_000


@pytest.mark.parametrize(
    ("utc", "week", "tow_ms"),
    [
        # Published GPS calendar facts (GPS time = UTC + leap seconds):
        ((1980, 1, 6, 0, 0, 0), 0, 0),  # the GPS epoch
        ((2018, 5, 5, 23, 59, 42), 2000, 0),  # week 2000 began 2018-05-06 00:00:00 GPS
        ((2019, 4, 6, 23, 59, 42), 2048, 0),  # second 10-bit week rollover
        ((2024, 1, 1, 0, 0, 0), 2295, 86_418_000),  # Monday of week 2295, +18 s
        ((2016, 12, 31, 12, 0, 0), 1929, 561_617_000),  # before the last leap second: +17 s
    ],
)
def test_gps_week_and_time_of_week(utc: tuple[int, ...], week: int, tow_ms: int) -> None:
    assert gps_week_tow_ms(_utc_ns(*utc)) == (week, tow_ms)


def test_gps_input_times_come_from_the_capture_stamp() -> None:
    m = wire(encode_gps_input(make_fix()))
    assert m.time_usec == CAPTURE_NS // 1000  # unchanged, to the microsecond
    # 2026-05-12 is a Tuesday: week 2418 (2026-05-10 is its Sunday), tow 2 days + 18.123 s
    assert (m.time_week, m.time_week_ms) == (2418, 2 * 86_400_000 + 18_123)
    boot = wire(encode_gps_input(make_fix(capture_ns=5_000_000_000)))  # time since boot
    assert (boot.time_week, boot.time_week_ms) == (0, 0)
    assert gps_week_tow_ms(5_000_000_000) is None


def test_gps_input_settings_are_honoured() -> None:
    s = GpsInputSettings(gps_id=1, satellites_3d=12, send_yaw=False, dop_reference_m=2.0)
    m = wire(encode_gps_input(make_fix(), s))
    assert (m.gps_id, m.satellites_visible, m.yaw) == (1, 12, 0)
    assert m.hdop == pytest.approx(2.0)


# --- ODOMETRY ---------------------------------------------------------------------------
def _fix_at_ned(n: float, e: float, d: float, **kw: Any) -> PositionFix:
    lat, lon, alt = ned_to_geodetic(n, e, d, ORIGIN)
    return make_fix(latitude_deg=lat, longitude_deg=lon, altitude_msl_m=alt, **kw)


def test_odometry_px4_positions_velocity_and_frames() -> None:
    frames_px4 = odometry_frames_for("px4")
    m = wire(
        encode_odometry(
            _fix_at_ned(100.0, -40.0, -10.0, velocity_enu=(1.0, 2.0, 3.0)), ORIGIN, frames_px4
        )
    )
    assert (m.frame_id, m.child_frame_id) == (
        mavlink2.MAV_FRAME_LOCAL_NED,
        mavlink2.MAV_FRAME_LOCAL_NED,
    )
    assert (m.x, m.y, m.z) == pytest.approx((100.0, -40.0, -10.0), abs=1e-3)
    assert (m.vx, m.vy, m.vz) == pytest.approx((2.0, 1.0, -3.0), abs=1e-6)
    assert m.q == pytest.approx([1.0, 0.0, 0.0, 0.0], abs=1e-7)  # facing north
    assert m.time_usec == CAPTURE_NS // 1000
    assert m.estimator_type == mavlink2.MAV_ESTIMATOR_TYPE_VISION
    assert (m.reset_counter, m.quality) == (3, 80)
    assert all(math.isnan(v) for v in (m.rollspeed, m.pitchspeed, m.yawspeed))


def test_odometry_covariances_rotated_to_ned_with_nan_for_unknown() -> None:
    m = wire(encode_odometry(make_fix(), ORIGIN, odometry_frames_for("px4")))
    pc, vc = m.pose_covariance, m.velocity_covariance
    assert (pc[0], pc[6], pc[11]) == pytest.approx((16.0, 9.0, 25.0))  # N, E, D variances
    assert math.isnan(pc[15]) and math.isnan(pc[18])  # roll, pitch: not estimated
    assert pc[20] == pytest.approx(0.01)  # yaw variance
    assert (vc[0], vc[6], vc[11]) == pytest.approx((0.09, 0.04, 0.01))
    assert all(math.isnan(vc[i]) for i in (15, 18, 20))  # angular rates unknown
    unknown = wire(encode_odometry(make_fix(position_cov_enu=None, velocity_cov_enu=None), ORIGIN))
    assert math.isnan(unknown.pose_covariance[0]) and math.isnan(unknown.velocity_covariance[0])


def test_odometry_yaw_quaternion() -> None:
    east = wire(encode_odometry(make_fix(yaw_enu_rad=0.0), ORIGIN))
    h = math.sqrt(0.5)
    assert east.q == pytest.approx([h, 0.0, 0.0, h], abs=1e-7)  # +90 deg about down
    none = wire(encode_odometry(make_fix(yaw_enu_rad=None), ORIGIN))
    assert all(math.isnan(v) for v in none.q)
    assert math.isnan(none.pose_covariance[20])


def test_odometry_ardupilot_body_velocity() -> None:
    ap = odometry_frames_for("ardupilot")
    # facing east (ENU yaw 0), flying north: velocity is to the left in FRD
    m = wire(encode_odometry(make_fix(yaw_enu_rad=0.0, velocity_enu=(0.0, 5.0, 1.0)), ORIGIN, ap))
    assert (m.frame_id, m.child_frame_id) == (
        mavlink2.MAV_FRAME_LOCAL_FRD,
        mavlink2.MAV_FRAME_BODY_FRD,
    )
    assert (m.vx, m.vy, m.vz) == pytest.approx((0.0, -5.0, -1.0), abs=1e-6)
    no_yaw = wire(
        encode_odometry(make_fix(yaw_enu_rad=None, velocity_enu=(0.0, 5.0, 0.0)), ORIGIN, ap)
    )
    assert math.isnan(no_yaw.vx)  # a body velocity needs a heading


def test_odometry_quality_zero_is_failed() -> None:
    assert wire(encode_odometry(make_fix(quality=0), ORIGIN)).quality == -1


# --- VISION_POSITION_ESTIMATE ----------------------------------------------------------
def test_vision_position_estimate() -> None:
    m = wire(
        encode_vision_position_estimate(_fix_at_ned(-25.0, 60.0, 5.0, yaw_enu_rad=math.pi), ORIGIN)
    )
    assert (m.x, m.y, m.z) == pytest.approx((-25.0, 60.0, 5.0), abs=1e-3)
    assert m.yaw == pytest.approx(-math.pi / 2, abs=1e-6)  # facing west = 270 deg = -90 deg
    assert (m.roll, m.pitch) == (0.0, 0.0)
    assert m.usec == CAPTURE_NS // 1000
    assert m.reset_counter == 3
    assert (m.covariance[0], m.covariance[6], m.covariance[11]) == pytest.approx((16.0, 9.0, 25.0))
    assert math.isnan(m.covariance[15])


# --- GLOBAL_POSITION_SENSOR (PX4 aux global position) -------------------------------
def test_global_position_sensor() -> None:
    fix = make_fix()
    m = wire(
        encode_global_position_sensor(
            fix, now_ns=CAPTURE_NS + 42_000_000, target_system=1, target_component=1
        )
    )
    assert m.get_msgId() == 296
    assert (m.lat, m.lon) == (473977421, 85455938)
    assert m.alt == pytest.approx(ALT, abs=1e-3)
    assert math.isnan(m.alt_ellipsoid)
    assert (m.eph, m.epv) == pytest.approx((4.0, 5.0))
    assert m.processing_time == 42_000
    assert m.time_usec == CAPTURE_NS // 1000
    assert m.source == mavlink2.GLOBAL_POSITION_SRC_VISION
    assert m.flags == 0
    bad = wire(encode_global_position_sensor(make_fix(quality=0), now_ns=CAPTURE_NS))
    assert bad.flags & mavlink2.GLOBAL_POSITION_UNHEALTHY


# --- selection ------------------------------------------------------------------------
def test_default_output_per_autopilot_and_override() -> None:
    assert default_output_kind("ardupilot") is OutputKind.GPS_INPUT
    assert default_output_kind("px4") is OutputKind.ODOMETRY
    assert resolve_output_kind("auto", "px4") is OutputKind.ODOMETRY
    assert (
        resolve_output_kind("vision_position_estimate", "px4")
        is OutputKind.VISION_POSITION_ESTIMATE
    )
    with pytest.raises(ValueError, match="not one of"):
        resolve_output_kind("mocap", "px4")


def test_encoder_needs_an_origin_for_local_outputs() -> None:
    enc = FixEncoder(OutputKind.ODOMETRY, autopilot="px4")
    assert enc.encode(make_fix(), CAPTURE_NS) is None
    enc.set_origin(ORIGIN)
    assert enc.encode(make_fix(), CAPTURE_NS).get_type() == "ODOMETRY"
    assert FixEncoder(OutputKind.GPS_INPUT).encode(make_fix(), CAPTURE_NS).get_type() == "GPS_INPUT"
    assert FixEncoder(OutputKind.NONE).encode(make_fix(), CAPTURE_NS) is None


def test_position_fix_from_ros_message_fields() -> None:
    msg = SimpleNamespace(
        header=SimpleNamespace(stamp=SimpleNamespace(sec=1_778_544_000, nanosec=123_456_789)),
        latitude=LAT,
        longitude=LON,
        altitude_msl=ALT,
        velocity_enu=SimpleNamespace(x=1.0, y=2.0, z=3.0),
        velocity_valid=False,
        position_covariance=[0.0] * 9,
        velocity_covariance=list(VEL_COV),
        yaw_enu=0.5,
        yaw_valid=True,
        yaw_variance=0.02,
        reset_counter=7,
        quality=55,
    )
    fix = PositionFix.from_msg(msg)
    assert fix.capture_ns == CAPTURE_NS
    assert fix.velocity_enu is None
    assert fix.position_cov_enu is None
    assert fix.velocity_cov_enu == VEL_COV
    assert (fix.yaw_enu_rad, fix.yaw_variance_rad2) == (0.5, 0.02)
    assert (fix.reset_counter, fix.quality) == (7, 55)
