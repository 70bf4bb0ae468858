"""MAVLink telemetry -> domain values: pure functions, no I/O, no ROS.

Units are SI; angles in radians unless the name says ``_deg``. Frames are
named: the autopilot reports NED / FRD; :func:`attitude_to_enu_flu_quaternion`
gives the REP-103 (ENU / FLU) orientation ROS expects in ``sensor_msgs/Imu``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from gps_denied_onboard.fc_bridge.frames import frd_to_flu, yaw_ned_to_enu
from gps_denied_onboard.fc_bridge.link import Autopilot, mavlink2

# sensor_msgs/NavSatStatus and NavSatFix constants (no ROS import here).
NAVSAT_STATUS_NO_FIX: Final = -1
NAVSAT_STATUS_FIX: Final = 0
NAVSAT_STATUS_SBAS_FIX: Final = 1
NAVSAT_STATUS_GBAS_FIX: Final = 2
COVARIANCE_TYPE_UNKNOWN: Final = 0
COVARIANCE_TYPE_APPROXIMATED: Final = 1
COVARIANCE_TYPE_DIAGONAL_KNOWN: Final = 2

#: MAVLink GPS_FIX_TYPE values.
GPS_FIX_TYPE_NO_FIX: Final = 1
GPS_FIX_TYPE_2D: Final = 2
GPS_FIX_TYPE_3D: Final = 3
GPS_FIX_TYPE_DGPS: Final = 4
GPS_FIX_TYPE_RTK_FLOAT: Final = 5
GPS_FIX_TYPE_RTK_FIXED: Final = 6

#: User-equivalent range error used to turn HDOP into metres when the receiver
#: gives no accuracy (GPS_RAW_INT without h_acc): a typical single-frequency value.
UERE_M: Final = 5.0

_UINT16_UNKNOWN: Final = 0xFFFF


@dataclass(frozen=True)
class GnssFix:
    """The FC's own GNSS (GPS_RAW_INT) or its fused position (GLOBAL_POSITION_INT).

    Attributes:
        source: ``"gps_raw_int"`` or ``"global_position_int"``.
        latitude / longitude: degrees WGS84; altitude_msl: metres (NaN if unknown).
        fix_type: MAVLink GPS_FIX_TYPE (GLOBAL_POSITION_INT reports 3).
        navsat_status: sensor_msgs/NavSatStatus.status.
        satellites: visible satellites, -1 unknown.
        hdop / vdop: dilution of precision, NaN unknown.
        h_acc_m / v_acc_m: 1-sigma accuracies in metres, NaN unknown.
        position_covariance: ENU row-major 3x3, m^2 (NavSatFix layout).
        covariance_type: NavSatFix.position_covariance_type.
        velocity_ned: m/s (north, east, down); course_deg: over ground, degrees
            clockwise from north; NaN unknown (GPS_RAW_INT has no vertical velocity:
            down is always NaN there).
        vel_acc_mps: 1-sigma speed accuracy in m/s (GPS_RAW_INT's ``vel_acc``, a
            MAVLink 2 extension), NaN unknown (0 or absent; GLOBAL_POSITION_INT).
    """

    source: str
    latitude: float
    longitude: float
    altitude_msl: float
    fix_type: int
    navsat_status: int
    satellites: int
    hdop: float
    vdop: float
    h_acc_m: float
    v_acc_m: float
    position_covariance: tuple[float, ...]
    covariance_type: int
    velocity_ned: tuple[float, float, float]
    course_deg: float
    vel_acc_mps: float = math.nan


@dataclass(frozen=True)
class Attitude:
    """ATTITUDE: Euler angles NED/FRD (rad) and body rates FRD (rad/s)."""

    roll: float
    pitch: float
    yaw: float
    rates_frd: tuple[float, float, float]
    time_boot_ms: int


@dataclass(frozen=True)
class Altitude:
    """Altitudes in metres; NaN where the message gives none."""

    amsl: float
    relative: float
    terrain: float
    climb_rate: float
    source: str


@dataclass(frozen=True)
class Battery:
    voltage_v: float
    current_a: float
    remaining_pct: int
    source: str


@dataclass(frozen=True)
class EkfStatus:
    """EKF health. ``flags`` are the autopilot's own bits (EKF_STATUS_FLAGS or
    ESTIMATOR_STATUS_FLAGS); ``gnss_rejected`` is our reading of them."""

    flags: int
    autopilot: Autopilot
    horiz_pos_ok: bool
    const_pos_mode: bool
    gnss_rejected: bool
    pos_horiz_variance: float


def navsat_status_of(fix_type: int) -> int:
    if fix_type < GPS_FIX_TYPE_2D:
        return NAVSAT_STATUS_NO_FIX
    if fix_type == GPS_FIX_TYPE_DGPS:
        return NAVSAT_STATUS_SBAS_FIX
    if fix_type in (GPS_FIX_TYPE_RTK_FLOAT, GPS_FIX_TYPE_RTK_FIXED):
        return NAVSAT_STATUS_GBAS_FIX
    return NAVSAT_STATUS_FIX


def _dop(raw: int) -> float:
    return math.nan if raw == _UINT16_UNKNOWN else raw / 100.0


def _acc_mm(msg: Any, name: str) -> float:
    raw = getattr(msg, name, 0) or 0
    return raw / 1000.0 if raw > 0 else math.nan


def _covariance(
    h_acc: float, v_acc: float, hdop: float, vdop: float
) -> tuple[tuple[float, ...], int]:
    if not math.isnan(h_acc):
        vv = v_acc if not math.isnan(v_acc) else 2.0 * h_acc
        return (h_acc**2, 0.0, 0.0, 0.0, h_acc**2, 0.0, 0.0, 0.0, vv**2), (
            COVARIANCE_TYPE_DIAGONAL_KNOWN
        )
    if not math.isnan(hdop):
        h = hdop * UERE_M
        v = (vdop if not math.isnan(vdop) else 2.0 * hdop) * UERE_M
        return (h * h, 0.0, 0.0, 0.0, h * h, 0.0, 0.0, 0.0, v * v), COVARIANCE_TYPE_APPROXIMATED
    return (0.0,) * 9, COVARIANCE_TYPE_UNKNOWN


def gnss_from_gps_raw_int(msg: Any) -> GnssFix:
    """GPS_RAW_INT -> :class:`GnssFix` (MSL altitude, accuracies from the v2 extensions)."""
    hdop, vdop = _dop(msg.eph), _dop(msg.epv)
    h_acc, v_acc = _acc_mm(msg, "h_acc"), _acc_mm(msg, "v_acc")
    vel_acc = _acc_mm(msg, "vel_acc")  # mm/s -> m/s, as mm -> m
    cov, cov_type = _covariance(h_acc, v_acc, hdop, vdop)
    speed = math.nan if msg.vel == _UINT16_UNKNOWN else msg.vel / 100.0
    course = math.nan if msg.cog == _UINT16_UNKNOWN else msg.cog / 100.0
    if math.isnan(speed) or math.isnan(course):
        vel = (math.nan, math.nan, math.nan)
    else:
        c = math.radians(course)
        vel = (speed * math.cos(c), speed * math.sin(c), math.nan)
    return GnssFix(
        source="gps_raw_int",
        latitude=msg.lat / 1e7,
        longitude=msg.lon / 1e7,
        altitude_msl=msg.alt / 1000.0,
        fix_type=int(msg.fix_type),
        navsat_status=navsat_status_of(int(msg.fix_type)),
        satellites=-1 if msg.satellites_visible == 255 else int(msg.satellites_visible),
        hdop=hdop,
        vdop=vdop,
        h_acc_m=h_acc,
        v_acc_m=v_acc,
        position_covariance=cov,
        covariance_type=cov_type,
        velocity_ned=vel,
        course_deg=course,
        vel_acc_mps=vel_acc,
    )


#: Variance (m^2/s^2, rad^2/s^2) given in a velocity-over-ground covariance to what
#: GPS_RAW_INT does not measure: the vertical velocity and the rotation rates.
UNMEASURED_TWIST_VARIANCE: Final = 1e6


@dataclass(frozen=True)
class GroundVelocity:
    """The GNSS velocity over ground in ENU, as ``geometry_msgs/TwistWithCovariance``
    carries it (see :func:`ground_velocity_enu`).

    Attributes:
        east_mps / north_mps: m/s; up_mps: always 0.0 (not measured: variance
            :data:`UNMEASURED_TWIST_VARIANCE`).
        covariance: 6x6 row-major (x y z linear, then rotation about x y z), ENU:
            east and north ``vel_acc^2`` when the receiver reports its speed accuracy;
            when it does not, REP-145's "unknown": element 0 is -1 and the rest 0.
    """

    east_mps: float
    north_mps: float
    up_mps: float
    covariance: tuple[float, ...]


def ground_velocity_enu(fix: GnssFix) -> GroundVelocity | None:
    """A GPS_RAW_INT fix's velocity over ground (its ``vel`` and ``cog``) in ENU.

    None unless the fix is 3D or better and both speed and course are known. East is
    ``speed * sin(cog)``, north ``speed * cos(cog)`` (cog clockwise from north): the
    fix's ``velocity_ned`` (north, east, down) reordered.
    """
    north, east, _down = fix.velocity_ned
    if fix.fix_type < GPS_FIX_TYPE_3D or math.isnan(fix.course_deg):
        return None
    if math.isnan(north) or math.isnan(east):
        return None
    cov = [0.0] * 36
    acc = fix.vel_acc_mps
    if math.isnan(acc):
        cov[0] = -1.0
    else:
        cov[0] = cov[7] = acc * acc
        cov[14] = cov[21] = cov[28] = cov[35] = UNMEASURED_TWIST_VARIANCE
    return GroundVelocity(east_mps=east, north_mps=north, up_mps=0.0, covariance=tuple(cov))


def gnss_from_global_position_int(msg: Any) -> GnssFix:
    """GLOBAL_POSITION_INT (the EKF's fused position) -> :class:`GnssFix`."""
    hdg = math.nan if msg.hdg == _UINT16_UNKNOWN else msg.hdg / 100.0
    return GnssFix(
        source="global_position_int",
        latitude=msg.lat / 1e7,
        longitude=msg.lon / 1e7,
        altitude_msl=msg.alt / 1000.0,
        fix_type=GPS_FIX_TYPE_3D,
        navsat_status=NAVSAT_STATUS_FIX,
        satellites=-1,
        hdop=math.nan,
        vdop=math.nan,
        h_acc_m=math.nan,
        v_acc_m=math.nan,
        position_covariance=(0.0,) * 9,
        covariance_type=COVARIANCE_TYPE_UNKNOWN,
        velocity_ned=(msg.vx / 100.0, msg.vy / 100.0, msg.vz / 100.0),
        course_deg=hdg,
        vel_acc_mps=math.nan,
    )


def attitude_from_msg(msg: Any) -> Attitude:
    return Attitude(
        roll=float(msg.roll),
        pitch=float(msg.pitch),
        yaw=float(msg.yaw),
        rates_frd=(float(msg.rollspeed), float(msg.pitchspeed), float(msg.yawspeed)),
        time_boot_ms=int(msg.time_boot_ms),
    )


def _quat_from_euler_zyx(
    roll: float, pitch: float, yaw: float
) -> tuple[float, float, float, float]:
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return (
        sr * cp * cy - cr * sp * sy,  # x
        cr * sp * cy + sr * cp * sy,  # y
        cr * cp * sy - sr * sp * cy,  # z
        cr * cp * cy + sr * sp * sy,  # w
    )


def attitude_to_enu_flu_quaternion(att: Attitude) -> tuple[float, float, float, float]:
    """Orientation of the FLU body in ENU as (x, y, z, w), REP-103.

    With ZYX Euler angles, changing the world NED->ENU and the body FRD->FLU
    keeps roll, negates pitch and maps yaw through ``frames.yaw_ned_to_enu``.
    """
    return _quat_from_euler_zyx(att.roll, -att.pitch, yaw_ned_to_enu(att.yaw))


def attitude_rates_flu(att: Attitude) -> tuple[float, float, float]:
    x, y, z = frd_to_flu(att.rates_frd)
    return (x, y, z)


def altitude_from_altitude_msg(msg: Any) -> Altitude:
    return Altitude(
        amsl=float(msg.altitude_amsl),
        relative=float(msg.altitude_relative),
        terrain=float(msg.altitude_terrain),
        climb_rate=math.nan,
        source="altitude",
    )


def altitude_from_vfr_hud(msg: Any) -> Altitude:
    """VFR_HUD.alt is MSL on both ArduPilot and PX4 (the message's own definition)."""
    return Altitude(
        amsl=float(msg.alt),
        relative=math.nan,
        terrain=math.nan,
        climb_rate=float(msg.climb),
        source="vfr_hud",
    )


def battery_from_sys_status(msg: Any) -> Battery:
    return Battery(
        voltage_v=math.nan
        if msg.voltage_battery == _UINT16_UNKNOWN
        else msg.voltage_battery / 1000,
        current_a=math.nan if msg.current_battery == -1 else msg.current_battery / 100.0,
        remaining_pct=int(msg.battery_remaining),
        source="sys_status",
    )


def battery_from_battery_status(msg: Any) -> Battery:
    cells = [v for v in msg.voltages if v != _UINT16_UNKNOWN]
    ext = [v for v in (getattr(msg, "voltages_ext", None) or []) if v not in (0, _UINT16_UNKNOWN)]
    voltage = (sum(cells) + sum(ext)) / 1000.0 if cells else math.nan
    return Battery(
        voltage_v=voltage,
        current_a=math.nan if msg.current_battery == -1 else msg.current_battery / 100.0,
        remaining_pct=int(msg.battery_remaining),
        source="battery_status",
    )


_EKF_POS_HORIZ_ABS: Final = int(mavlink2.EKF_POS_HORIZ_ABS)
_EKF_CONST_POS_MODE: Final = int(mavlink2.EKF_CONST_POS_MODE)
_EKF_GPS_GLITCHING: Final = int(mavlink2.EKF_GPS_GLITCHING)
_EST_POS_HORIZ_ABS: Final = int(mavlink2.ESTIMATOR_POS_HORIZ_ABS)
_EST_CONST_POS_MODE: Final = int(mavlink2.ESTIMATOR_CONST_POS_MODE)
_EST_GPS_GLITCH: Final = int(mavlink2.ESTIMATOR_GPS_GLITCH)


def ekf_from_ekf_status_report(msg: Any) -> EkfStatus:
    """ArduPilot EKF_STATUS_REPORT. GNSS is 'rejected' when the EKF flags a GPS
    glitch, or when its normalised position innovation variance exceeds 1
    (the test ratio at which ArduPilot's EKF3 stops fusing GPS)."""
    flags = int(msg.flags)
    return EkfStatus(
        flags=flags,
        autopilot=Autopilot.ARDUPILOT,
        horiz_pos_ok=bool(flags & _EKF_POS_HORIZ_ABS),
        const_pos_mode=bool(flags & _EKF_CONST_POS_MODE),
        gnss_rejected=bool(flags & _EKF_GPS_GLITCHING) or float(msg.pos_horiz_variance) > 1.0,
        pos_horiz_variance=float(msg.pos_horiz_variance),
    )


def ekf_from_estimator_status(msg: Any) -> EkfStatus:
    """PX4 ESTIMATOR_STATUS: GPS_GLITCH flag or a position test ratio above 1."""
    flags = int(msg.flags)
    return EkfStatus(
        flags=flags,
        autopilot=Autopilot.PX4,
        horiz_pos_ok=bool(flags & _EST_POS_HORIZ_ABS),
        const_pos_mode=bool(flags & _EST_CONST_POS_MODE),
        gnss_rejected=bool(flags & _EST_GPS_GLITCH) or float(msg.pos_horiz_ratio) > 1.0,
        pos_horiz_variance=float(msg.pos_horiz_ratio),
    )


#: MAV_SENSOR_ORIENTATION of a downward-facing sensor (MAV_SENSOR_ROTATION_PITCH_270).
SENSOR_FACING_DOWN: Final = 25


@dataclass(frozen=True)
class Rangefinder:
    """DISTANCE_SENSOR in metres; only downward-facing sensors give height above ground."""

    distance_m: float
    min_m: float
    max_m: float
    facing_down: bool
    time_boot_ms: int


def rangefinder_from_distance_sensor(msg: Any) -> Rangefinder:
    """DISTANCE_SENSOR (centimetres) -> :class:`Rangefinder`."""
    return Rangefinder(
        distance_m=msg.current_distance / 100.0,
        min_m=msg.min_distance / 100.0,
        max_m=msg.max_distance / 100.0,
        facing_down=int(msg.orientation) == SENSOR_FACING_DOWN,
        time_boot_ms=int(msg.time_boot_ms),
    )
