"""Pure encoders: a :class:`~gps_denied_onboard.fc_bridge.fix.PositionFix` -> one MAVLink message.

No I/O and no clock reads: every function takes what it needs and returns a pymavlink
message object that the link packs with its own sequence number and ids. The wire
fields, frames and units are asserted by ``test/fc_bridge/test_fc_fix_output*.py``
after a real pack/parse round trip.

Choices made here (each one documented where it is made):

* **Accuracies** (1-sigma, metres / m/s): horizontal = sqrt of the larger eigenvalue of
  the 2x2 horizontal position covariance (the error along the worst direction, so an
  elongated error ellipse is never reported as round and small); vertical =
  sqrt(up variance); speed = sqrt of the largest eigenvalue of the 3x3 velocity
  covariance.
* **fix_type** from those accuracies (:class:`GpsInputSettings`): 3D when horizontal
  <= ``max_hacc_3d_m`` and vertical known and <= ``max_vacc_3d_m``; 2D when horizontal
  <= ``max_hacc_2d_m``; otherwise NO_FIX. Unknown horizontal covariance or quality 0
  is NO_FIX: a fix without an accuracy is not presented as usable.
* **Velocity** (``GpsInputSettings.velocity``, parameter ``fix_velocity``): whether the
  estimator's velocity goes to the autopilot's EKF. ArduPilot's MAVLink GPS driver keeps
  its last velocity when GPS_INPUT flags velocity as ignored (zero since boot) and EKF3
  with ``EK3_SRC1_VELXY=3`` fuses that stale value, so: with ``velocity`` on (preflight
  demands ``EK3_SRC1_VELXY=3``) a fix *without* velocity is never claimed as a 3D fix: it
  goes out as 2D (EKF3 uses GPS only at 3D, so it neither fuses the stale velocity nor
  the position of that fix, while the GPS driver still sees a steady message rate); with
  ``velocity`` off (preflight demands ``EK3_SRC1_VELXY=0``) velocity is never sent, every
  fix flags it ignored, and 3D fixes stay 3D.
* **satellites_visible** is synthetic (there are no satellites): ``satellites_3d``
  (default 10) for 3D, ``satellites_2d`` (default 6) for 2D, 0 for no fix. ArduPilot's
  EKF wants >= 6 before it aligns on a GPS, so a 3D visual fix passes that gate and
  a degraded one does not.
* **hdop/vdop** are pseudo-DOPs: accuracy / ``dop_reference_m`` (default 5 m, so a
  5 m fix reads DOP 1.0 and ArduPilot's 1.4 arming gate means 7 m). They are flagged
  ignored exactly when the accuracy they come from is unknown.
* **GPS week / time of week** come from the CAPTURE stamp (GPS epoch 1980-01-06,
  leap seconds from the table below, 18 s since 2017-01-01). A stamp before the GPS
  epoch (a time-since-boot clock) gives week 0 / tow 0: no GPS time, not a wrong one.
* **time_usec** of every message is the capture stamp in microseconds, unchanged.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Final

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from gps_denied_onboard.fc_bridge import frames
from gps_denied_onboard.fc_bridge.fix import PositionFix
from gps_denied_onboard.fc_bridge.geodesy import LocalOrigin, geodetic_to_ned

__all__ = [
    "GPS_EPOCH_UNIX_S",
    "GpsInputSettings",
    "LocalOrigin",
    "OdometryFrames",
    "OutputKind",
    "accuracies",
    "default_output_kind",
    "encode_global_position_sensor",
    "encode_gps_input",
    "encode_odometry",
    "encode_vision_position_estimate",
    "gps_week_tow_ms",
    "odometry_frames_for",
]

NS_PER_S: Final = 1_000_000_000
SECONDS_PER_WEEK: Final = 604_800
#: 1980-01-06T00:00:00Z in Unix seconds.
GPS_EPOCH_UNIX_S: Final = 315_964_800
#: (first Unix second at which it applies, GPS-UTC offset in seconds), newest last.
LEAP_SECONDS: Final = (
    (GPS_EPOCH_UNIX_S, 0),
    (362_793_600, 1),  # 1981-07-01
    (394_329_600, 2),  # 1982-07-01
    (425_865_600, 3),  # 1983-07-01
    (489_024_000, 4),  # 1985-07-01
    (567_993_600, 5),  # 1988-01-01
    (631_152_000, 6),  # 1990-01-01
    (662_688_000, 7),  # 1991-01-01
    (709_948_800, 8),  # 1992-07-01
    (741_484_800, 9),  # 1993-07-01
    (773_020_800, 10),  # 1994-07-01
    (820_454_400, 11),  # 1996-01-01
    (867_715_200, 12),  # 1997-07-01
    (915_148_800, 13),  # 1999-01-01
    (1_136_073_600, 14),  # 2006-01-01
    (1_230_768_000, 15),  # 2009-01-01
    (1_341_100_800, 16),  # 2012-07-01
    (1_435_708_800, 17),  # 2015-07-01
    (1_483_228_800, 18),  # 2017-01-01
)

# Named wire constants (from the dialect, so a typo is an AttributeError, not a bug).
IGN_ALT: Final = mavlink2.GPS_INPUT_IGNORE_FLAG_ALT
IGN_HDOP: Final = mavlink2.GPS_INPUT_IGNORE_FLAG_HDOP
IGN_VDOP: Final = mavlink2.GPS_INPUT_IGNORE_FLAG_VDOP
IGN_VEL_HORIZ: Final = mavlink2.GPS_INPUT_IGNORE_FLAG_VEL_HORIZ
IGN_VEL_VERT: Final = mavlink2.GPS_INPUT_IGNORE_FLAG_VEL_VERT
IGN_SPEED_ACCURACY: Final = mavlink2.GPS_INPUT_IGNORE_FLAG_SPEED_ACCURACY
IGN_HORIZONTAL_ACCURACY: Final = mavlink2.GPS_INPUT_IGNORE_FLAG_HORIZONTAL_ACCURACY
IGN_VERTICAL_ACCURACY: Final = mavlink2.GPS_INPUT_IGNORE_FLAG_VERTICAL_ACCURACY


class OutputKind(enum.Enum):
    """Which message carries the fixes to the autopilot (parameter ``output``)."""

    GPS_INPUT = "gps_input"
    ODOMETRY = "odometry"
    VISION_POSITION_ESTIMATE = "vision_position_estimate"
    GLOBAL_POSITION_SENSOR = "global_position_sensor"
    NONE = "none"

    @property
    def needs_origin(self) -> bool:
        """Local-frame outputs need the EKF origin to turn lat/lon into NED metres."""
        return self in (OutputKind.ODOMETRY, OutputKind.VISION_POSITION_ESTIMATE)

    @property
    def default_rate_hz(self) -> float:
        """GPS_INPUT 10 Hz (ArduPilot flags a MAV GPS unhealthy when the average gap
        exceeds ~215 ms); external vision 30 Hz (PX4 asks for 30-50 Hz)."""
        return 10.0 if self in (OutputKind.GPS_INPUT, OutputKind.GLOBAL_POSITION_SENSOR) else 30.0

    @property
    def default_resend(self) -> bool:
        """Whether the latest fix is re-sent on ticks without a new one.

        GPS_INPUT: yes. ArduPilot's GPS driver judges health by the *message* rate,
        like a receiver's 5-10 Hz output, so the stream is kept steady while the
        latest fix is younger than ``fix_repeat_max_age_s``; the repeat carries the fix's
        original capture time and GPS time (never a made-up newer one): ArduPilot
        times a 3D one by that GPS time (plus the least transport delay it has seen,
        minus ``GPSx_DELAY_MS``), so a repeat is no new sample to its EKF; see
        :data:`.preflight._DELAY` for the delay to set. Vision outputs: no; PX4 and
        ArduPilot fuse each ODOMETRY/VISION sample as a new measurement, so a repeat
        would be fused twice; the same holds for PX4's auxiliary global position.
        """
        return self is OutputKind.GPS_INPUT


def default_output_kind(autopilot: str) -> OutputKind:
    """ArduPilot -> GPS_INPUT (GPS1_TYPE=14); PX4 -> ODOMETRY (external vision);
    anything else -> GPS_INPUT (the most widely understood message)."""
    return OutputKind.ODOMETRY if str(autopilot).lower() == "px4" else OutputKind.GPS_INPUT


def resolve_output_kind(output: str, autopilot: str) -> OutputKind:
    """Parameter value (``auto`` or an :class:`OutputKind` value) -> the kind to send."""
    if output == "auto":
        return default_output_kind(autopilot)
    try:
        return OutputKind(output)
    except ValueError:
        choices = ["auto", *(k.value for k in OutputKind)]
        raise ValueError(f"output {output!r} is not one of {choices}") from None


# --- time ---------------------------------------------------------------------
def leap_seconds_at(unix_s: int) -> int:
    """GPS - UTC offset (s) at a Unix time."""
    offset = 0
    for start, value in LEAP_SECONDS:
        if unix_s >= start:
            offset = value
    return offset


def gps_week_tow_ms(unix_ns: int) -> tuple[int, int] | None:
    """Unix-epoch nanoseconds -> (GPS week, time of week in ms); None before 1980-01-06."""
    unix_ns = int(unix_ns)
    if unix_ns < GPS_EPOCH_UNIX_S * NS_PER_S:
        return None
    unix_s = unix_ns // NS_PER_S
    gps_ms = (unix_ns - GPS_EPOCH_UNIX_S * NS_PER_S) // 1_000_000 + leap_seconds_at(unix_s) * 1000
    week, tow_ms = divmod(gps_ms, SECONDS_PER_WEEK * 1000)
    return int(week), int(tow_ms)


# --- accuracies -----------------------------------------------------------------
@dataclass(frozen=True)
class Accuracies:
    """1-sigma accuracies, None where unknown."""

    horizontal_m: float | None
    vertical_m: float | None
    speed_mps: float | None


def accuracies(fix: PositionFix) -> Accuracies:
    """See the module docstring for the choice of 1-sigma figures."""
    h = v = s = None
    if fix.position_cov_enu is not None:
        cov = fix.position_cov_enu
        if cov[0] > 0.0 and cov[4] > 0.0:
            h = frames.horizontal_sigma_max(cov)
        if cov[8] > 0.0:
            v = math.sqrt(cov[8])
    if fix.velocity_enu is not None and fix.velocity_cov_enu is not None:
        s = math.sqrt(max(0.0, frames.sym3_max_eigenvalue(fix.velocity_cov_enu)))
    return Accuracies(h, v, s)


@dataclass(frozen=True)
class GpsInputSettings:
    """Thresholds and synthetic values for GPS_INPUT (see the module docstring)."""

    gps_id: int = 0
    max_hacc_3d_m: float = 20.0
    max_vacc_3d_m: float = 40.0
    max_hacc_2d_m: float = 50.0
    satellites_3d: int = 10
    satellites_2d: int = 6
    dop_reference_m: float = 5.0
    send_yaw: bool = True
    velocity: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.max_hacc_3d_m <= self.max_hacc_2d_m:
            raise ValueError("need 0 < max_hacc_3d_m <= max_hacc_2d_m")
        if self.max_vacc_3d_m <= 0 or self.dop_reference_m <= 0:
            raise ValueError("max_vacc_3d_m and dop_reference_m must be positive")
        if not (0 <= self.satellites_2d <= 255 and 0 <= self.satellites_3d <= 255):
            raise ValueError("satellite counts are uint8")


def fix_type_for(acc: Accuracies, quality: int, settings: GpsInputSettings) -> int:
    """GPS_FIX_TYPE from the accuracies (see the module docstring)."""
    h = acc.horizontal_m
    if quality <= 0 or h is None or h > settings.max_hacc_2d_m:
        return int(mavlink2.GPS_FIX_TYPE_NO_FIX)
    v = acc.vertical_m
    if h <= settings.max_hacc_3d_m and v is not None and v <= settings.max_vacc_3d_m:
        return int(mavlink2.GPS_FIX_TYPE_3D_FIX)
    return int(mavlink2.GPS_FIX_TYPE_2D_FIX)


def _deg_e7(value: float) -> int:
    return round(value * 1e7)


def encode_gps_input(
    fix: PositionFix, settings: GpsInputSettings | None = None
) -> mavlink2.MAVLink_gps_input_message:
    """GPS_INPUT (ArduPilot ``GPS1_TYPE``/``GPS_TYPE`` = 14, "MAV")."""
    settings = settings or GpsInputSettings()
    acc = accuracies(fix)
    ignore = 0
    if not math.isfinite(fix.altitude_msl_m):
        ignore |= IGN_ALT
    vn = ve = vd = 0.0
    sends_velocity = settings.velocity and fix.velocity_enu is not None
    if not sends_velocity or fix.velocity_enu is None:
        ignore |= IGN_VEL_HORIZ | IGN_VEL_VERT | IGN_SPEED_ACCURACY
    else:
        vn, ve, vd = frames.enu_to_ned(fix.velocity_enu)
    if acc.speed_mps is None:
        ignore |= IGN_SPEED_ACCURACY
    if acc.horizontal_m is None:
        ignore |= IGN_HORIZONTAL_ACCURACY | IGN_HDOP
    if acc.vertical_m is None:
        ignore |= IGN_VERTICAL_ACCURACY | IGN_VDOP
    fix_type = fix_type_for(acc, fix.quality, settings)
    if fix_type == mavlink2.GPS_FIX_TYPE_3D_FIX and settings.velocity and not sends_velocity:
        fix_type = int(mavlink2.GPS_FIX_TYPE_2D_FIX)  # never 3D with a stale velocity
    if fix_type == mavlink2.GPS_FIX_TYPE_3D_FIX:
        sats = settings.satellites_3d
    elif fix_type == mavlink2.GPS_FIX_TYPE_2D_FIX:
        sats = settings.satellites_2d
    else:
        sats = 0
    gps_time = gps_week_tow_ms(fix.capture_ns)
    week, tow_ms = gps_time if gps_time is not None else (0, 0)
    yaw_cdeg = frames.yaw_enu_to_gps_input_cdeg(fix.yaw_enu_rad) if settings.send_yaw else 0
    return mavlink2.MAVLink_gps_input_message(
        time_usec=fix.capture_usec,
        gps_id=settings.gps_id,
        ignore_flags=ignore,
        time_week_ms=tow_ms,
        time_week=week,
        fix_type=fix_type,
        lat=_deg_e7(fix.latitude_deg),
        lon=_deg_e7(fix.longitude_deg),
        alt=float(fix.altitude_msl_m) if math.isfinite(fix.altitude_msl_m) else 0.0,
        hdop=(acc.horizontal_m / settings.dop_reference_m) if acc.horizontal_m is not None else 0.0,
        vdop=(acc.vertical_m / settings.dop_reference_m) if acc.vertical_m is not None else 0.0,
        vn=vn,
        ve=ve,
        vd=vd,
        speed_accuracy=acc.speed_mps if acc.speed_mps is not None else 0.0,
        horiz_accuracy=acc.horizontal_m if acc.horizontal_m is not None else 0.0,
        vert_accuracy=acc.vertical_m if acc.vertical_m is not None else 0.0,
        satellites_visible=sats,
        yaw=yaw_cdeg,
    )


# --- local-frame outputs ----------------------------------------------------------
@dataclass(frozen=True)
class OdometryFrames:
    """ODOMETRY ``frame_id`` (pose) and ``child_frame_id`` (velocity) per autopilot.

    * PX4 (mavlink_receiver): pose ``MAV_FRAME_LOCAL_NED`` (our positions are truly
      north-aligned, so EKF2 can fuse them without a heading-alignment phase);
      velocity ``MAV_FRAME_LOCAL_NED``, which PX4 accepts as an earth-frame velocity.
      A body-frame velocity would need roll and pitch, which the fix does not carry;
      a yaw-only body rotation would be wrong whenever the airframe is tilted.
    * ArduPilot (GCS_Common ``handle_odometry``): accepts only pose
      ``MAV_FRAME_LOCAL_FRD`` with velocity ``MAV_FRAME_BODY_FRD``, and turns the body
      velocity back into NED with the message's own quaternion. We send the yaw-only
      quaternion and rotate the velocity by its inverse, so that round trip is exact.
    """

    frame_id: int
    child_frame_id: int


def odometry_frames_for(autopilot: str) -> OdometryFrames:
    if str(autopilot).lower() == "ardupilot":
        return OdometryFrames(int(mavlink2.MAV_FRAME_LOCAL_FRD), int(mavlink2.MAV_FRAME_BODY_FRD))
    return OdometryFrames(int(mavlink2.MAV_FRAME_LOCAL_NED), int(mavlink2.MAV_FRAME_LOCAL_NED))


def _odometry_quality(quality: int) -> int:
    """Our 0 (unusable) .. 100 -> ODOMETRY.quality: -1 = failed, 1..100 as is."""
    return -1 if quality <= 0 else min(100, int(quality))


def encode_odometry(
    fix: PositionFix, origin: LocalOrigin, odom_frames: OdometryFrames | None = None
) -> mavlink2.MAVLink_odometry_message:
    """ODOMETRY with estimator_type VISION, position NED metres from ``origin``."""
    odom_frames = odom_frames or odometry_frames_for("px4")
    nan = math.nan
    pos_ned = geodetic_to_ned(fix.latitude_deg, fix.longitude_deg, fix.altitude_msl_m, origin)
    yaw_ned = frames.yaw_enu_to_ned(fix.yaw_enu_rad) if fix.yaw_enu_rad is not None else None
    q = frames.quat_from_yaw_ned(yaw_ned) if yaw_ned is not None else (nan, nan, nan, nan)
    pos_cov = frames.cov_enu_to_ned(fix.position_cov_enu) if fix.position_cov_enu else None
    pose_cov = frames.upper_triangle_6x6(pos_cov, (None, None, fix.yaw_variance_rad2))

    body = odom_frames.child_frame_id == mavlink2.MAV_FRAME_BODY_FRD
    vel: tuple[float, float, float] = (nan, nan, nan)
    vel_cov = None
    if fix.velocity_enu is not None and (yaw_ned is not None or not body):
        v_ned = frames.enu_to_ned(fix.velocity_enu)
        vel = (
            frames.ned_to_body_frd_yaw_only(v_ned, yaw_ned)
            if body and yaw_ned is not None
            else v_ned
        )
        if fix.velocity_cov_enu is not None:
            vel_cov = frames.cov_enu_to_ned(fix.velocity_cov_enu)
            if body and yaw_ned is not None:
                vel_cov = frames.cov_ned_to_body_frd_yaw_only(vel_cov, yaw_ned)
    twist_cov = frames.upper_triangle_6x6(vel_cov, (None, None, None))
    return mavlink2.MAVLink_odometry_message(
        time_usec=fix.capture_usec,
        frame_id=odom_frames.frame_id,
        child_frame_id=odom_frames.child_frame_id,
        x=pos_ned[0],
        y=pos_ned[1],
        z=pos_ned[2],
        q=list(q),
        vx=vel[0],
        vy=vel[1],
        vz=vel[2],
        rollspeed=nan,
        pitchspeed=nan,
        yawspeed=nan,
        pose_covariance=pose_cov,
        velocity_covariance=twist_cov,
        reset_counter=fix.reset_counter,
        estimator_type=int(mavlink2.MAV_ESTIMATOR_TYPE_VISION),
        quality=_odometry_quality(fix.quality),
    )


def encode_vision_position_estimate(
    fix: PositionFix, origin: LocalOrigin
) -> mavlink2.MAVLink_vision_position_estimate_message:
    """VISION_POSITION_ESTIMATE: NED metres from ``origin``; roll/pitch 0 with NaN
    variance (the fix carries no tilt), yaw NED radians or NaN when unknown."""
    pos_ned = geodetic_to_ned(fix.latitude_deg, fix.longitude_deg, fix.altitude_msl_m, origin)
    yaw_ned = frames.yaw_enu_to_ned(fix.yaw_enu_rad) if fix.yaw_enu_rad is not None else math.nan
    pos_cov = frames.cov_enu_to_ned(fix.position_cov_enu) if fix.position_cov_enu else None
    cov = frames.upper_triangle_6x6(pos_cov, (None, None, fix.yaw_variance_rad2))
    return mavlink2.MAVLink_vision_position_estimate_message(
        usec=fix.capture_usec,
        x=pos_ned[0],
        y=pos_ned[1],
        z=pos_ned[2],
        roll=0.0,
        pitch=0.0,
        yaw=yaw_ned,
        covariance=cov,
        reset_counter=fix.reset_counter,
    )


def encode_global_position_sensor(
    fix: PositionFix,
    *,
    now_ns: int,
    target_system: int = 0,
    target_component: int = 0,
    sensor_id: int = 0,
    settings: GpsInputSettings | None = None,
) -> mavlink2.MAVLink_global_position_sensor_message:
    """GLOBAL_POSITION_SENSOR (id 296, common.xml): PX4's auxiliary global position.

    ``processing_time`` is capture-to-send (``now_ns - capture_ns``) in microseconds,
    so the receiver can place the fix in time; ``alt_ellipsoid`` is NaN (the fix is
    MSL only); the fix is flagged UNHEALTHY when it would be NO_FIX as a GPS_INPUT.
    """
    settings = settings or GpsInputSettings()
    acc = accuracies(fix)
    fix_type = fix_type_for(acc, fix.quality, settings)
    flags = (
        0 if fix_type >= mavlink2.GPS_FIX_TYPE_2D_FIX else int(mavlink2.GLOBAL_POSITION_UNHEALTHY)
    )
    processing_us = max(0, min(0xFFFFFFFF, (int(now_ns) - fix.capture_ns) // 1000))
    return mavlink2.MAVLink_global_position_sensor_message(
        target_system=target_system,
        target_component=target_component,
        id=sensor_id,
        time_usec=fix.capture_usec,
        processing_time=processing_us,
        source=int(mavlink2.GLOBAL_POSITION_SRC_VISION),
        flags=flags,
        lat=_deg_e7(fix.latitude_deg),
        lon=_deg_e7(fix.longitude_deg),
        alt_ellipsoid=math.nan,
        alt=float(fix.altitude_msl_m),
        eph=acc.horizontal_m if acc.horizontal_m is not None else math.nan,
        epv=acc.vertical_m if acc.vertical_m is not None else math.nan,
    )


class FixEncoder:
    """Bind an :class:`OutputKind` and its context; ``encode(fix, now_ns)`` -> message.

    Returns None when the kind cannot be encoded yet (a local output without an
    origin) or when the kind is NONE.
    """

    def __init__(
        self,
        kind: OutputKind,
        *,
        autopilot: str = "unknown",
        origin: LocalOrigin | None = None,
        gps_input: GpsInputSettings | None = None,
        target_system: int = 0,
        target_component: int = 0,
    ) -> None:
        self.kind = kind
        self.autopilot = autopilot
        self._origin = origin
        self.gps_input = gps_input or GpsInputSettings()
        self.target_system = target_system
        self.target_component = target_component
        self.odometry_frames = odometry_frames_for(autopilot)

    @property
    def origin(self) -> LocalOrigin | None:
        return self._origin

    def set_origin(self, origin: LocalOrigin | None) -> None:
        """Set (or clear) the local origin; a single reference assignment, thread-safe."""
        self._origin = origin

    def encode(self, fix: PositionFix, now_ns: int) -> mavlink2.MAVLink_message | None:
        kind = self.kind
        if kind is OutputKind.GPS_INPUT:
            return encode_gps_input(fix, self.gps_input)
        if kind is OutputKind.GLOBAL_POSITION_SENSOR:
            return encode_global_position_sensor(
                fix,
                now_ns=now_ns,
                target_system=self.target_system,
                target_component=self.target_component,
                settings=self.gps_input,
            )
        origin = self._origin
        if kind is OutputKind.NONE or origin is None:
            return None
        if kind is OutputKind.ODOMETRY:
            return encode_odometry(fix, origin, self.odometry_frames)
        return encode_vision_position_estimate(fix, origin)
