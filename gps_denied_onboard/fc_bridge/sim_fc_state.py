"""What the simulated FC is and says: its state, its parameters, its telemetry messages.

Split from :mod:`.sim_fc` (which runs the endpoint: transport, threads, the
request/answer protocol); :mod:`.sim_fc` re-exports these names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pymavlink import mavutil
from pymavlink.dialects.v20 import ardupilotmega as mavlink2

__all__ = [
    "ARDUPILOT_DEFAULT_PARAMS",
    "PX4_DEFAULT_PARAMS",
    "SimFcState",
    "build_home_position",
    "build_telemetry",
    "custom_mode",
]

#: ArduPilot (4.6) parameters a GPS_INPUT / vision setup touches, correctly set.
ARDUPILOT_DEFAULT_PARAMS: Final[Mapping[str, float]] = {
    "GPS1_TYPE": 14.0,
    "EK3_SRC1_POSXY": 3.0,
    "EK3_SRC1_VELXY": 3.0,
    "EK3_SRC1_POSZ": 1.0,
    "EK3_SRC1_YAW": 1.0,
    "VISO_TYPE": 0.0,
    "AHRS_EKF_TYPE": 3.0,
    "SYSID_THISMAV": 1.0,
    "GPS1_DELAY_MS": 0.0,
    "EK3_SRC2_POSXY": 0.0,
    "EK3_SRC2_VELXY": 3.0,
    "EK3_SRC2_POSZ": 1.0,
    "EK3_SRC2_YAW": 1.0,
}
#: PX4 parameters an external-vision setup touches, correctly set.
PX4_DEFAULT_PARAMS: Final[Mapping[str, float]] = {
    "EKF2_EV_CTRL": 15.0,
    "EKF2_HGT_REF": 1.0,
    "EKF2_GPS_CTRL": 0.0,
    "EKF2_EV_DELAY": 0.0,
    "EKF2_GPS_DELAY": 110.0,
    "MAV_SYS_ID": 1.0,
}


@dataclass
class SimFcState:
    """What the simulated FC reports; tests mutate it through :meth:`SimFc.update`."""

    mode: str = "STABILIZE"
    armed: bool = False
    lat_deg: float = 47.397742
    lon_deg: float = 8.545594
    alt_msl_m: float = 488.0
    rel_alt_m: float = 0.0
    vel_ned_mps: tuple[float, float, float] = (0.0, 0.0, 0.0)
    roll_rad: float = 0.0
    pitch_rad: float = 0.0
    yaw_rad: float = 0.0
    fix_type: int = 3
    satellites: int = 12
    eph_cm: int = 80  # HDOP * 100
    epv_cm: int = 120
    h_acc_mm: int = 1500
    v_acc_mm: int = 2500
    #: GPS_RAW_INT.time_usec as UNIX time from this (seconds at boot), as a stack whose
    #: clock is GNSS-synchronised sends it (the sample flight's recording); None: boot time
    gps_unix_time_at_boot_s: float | None = None
    #: DISTANCE_SENSOR.time_boot_ms fixed at this (a sensor whose driver sends 0 or a
    #: clock of its own); None: the boot time
    rangefinder_time_boot_ms: int | None = None
    #: a healthy EKF in flight: attitude, velocities, relative and absolute position
    #: (and their predictions), not in constant-position mode (128); the same bits for
    #: ArduPilot's EKF_STATUS_FLAGS and PX4's ESTIMATOR_STATUS_FLAGS
    ekf_flags: int = 0x37F
    ekf_pos_horiz_variance: float = 0.1
    battery_voltage_v: float = 16.2
    battery_current_a: float = 3.5
    battery_remaining_pct: int = 87
    #: (lat deg, lon deg, alt m MSL); None: no home set (HOME_POSITION never sent)
    home: tuple[float, float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def build_telemetry(mav: Any, name: str, s: SimFcState, boot_ms: int, rangefinder: bool) -> Any:
    """The telemetry message ``name`` for state ``s``, encoded with ``mav``."""
    vn, ve, vd = s.vel_ned_mps
    hdg = round(math.degrees(s.yaw_rad) % 360 * 100)
    cog = round(math.degrees(math.atan2(ve, vn)) % 360 * 100)
    speed = math.hypot(vn, ve)
    if name == "GLOBAL_POSITION_INT":
        return mav.global_position_int_encode(
            boot_ms,
            round(s.lat_deg * 1e7),
            round(s.lon_deg * 1e7),
            round(s.alt_msl_m * 1000),
            round(s.rel_alt_m * 1000),
            round(vn * 100),
            round(ve * 100),
            round(vd * 100),
            hdg,
        )
    if name == "GPS_RAW_INT":
        unix0 = s.gps_unix_time_at_boot_s
        return mav.gps_raw_int_encode(
            boot_ms * 1000 + (0 if unix0 is None else round(unix0 * 1e6)),
            s.fix_type,
            round(s.lat_deg * 1e7),
            round(s.lon_deg * 1e7),
            round(s.alt_msl_m * 1000),
            s.eph_cm,
            s.epv_cm,
            round(speed * 100),
            cog,
            s.satellites,
            round(s.alt_msl_m * 1000),
            s.h_acc_mm,
            s.v_acc_mm,
            300,
            0,
            0,
        )
    if name == "ATTITUDE":
        return mav.attitude_encode(boot_ms, s.roll_rad, s.pitch_rad, s.yaw_rad, 0.0, 0.0, 0.0)
    if name == "VFR_HUD":
        return mav.vfr_hud_encode(speed, speed, hdg // 100, 0, s.alt_msl_m, -vd)
    if name == "ALTITUDE":
        return mav.altitude_encode(
            boot_ms * 1000, s.alt_msl_m, s.alt_msl_m, s.rel_alt_m, s.rel_alt_m, 0.0, 0.0
        )
    if name == "SYS_STATUS":
        present = mavlink2.MAV_SYS_STATUS_SENSOR_GPS | (
            mavlink2.MAV_SYS_STATUS_SENSOR_LASER_POSITION if rangefinder else 0
        )
        return mav.sys_status_encode(
            present,
            present,
            present,
            500,
            round(s.battery_voltage_v * 1000),
            round(s.battery_current_a * 100),
            s.battery_remaining_pct,
            0,
            0,
            0,
            0,
            0,
            0,
        )
    if name == "BATTERY_STATUS":
        return mav.battery_status_encode(
            0,
            mavlink2.MAV_BATTERY_FUNCTION_ALL,
            mavlink2.MAV_BATTERY_TYPE_LIPO,
            2500,
            [round(s.battery_voltage_v * 1000)] + [65535] * 9,
            round(s.battery_current_a * 100),
            -1,
            -1,
            s.battery_remaining_pct,
        )
    if name == "SYSTEM_TIME":
        return mav.system_time_encode(0, boot_ms)
    if name == "EKF_STATUS_REPORT":
        return mav.ekf_status_report_encode(
            s.ekf_flags, 0.1, s.ekf_pos_horiz_variance, 0.1, 0.1, 0.0
        )
    if name == "ESTIMATOR_STATUS":
        return mav.estimator_status_encode(
            boot_ms * 1000, s.ekf_flags, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.5, 0.5
        )
    if name == "DISTANCE_SENSOR":
        return mav.distance_sensor_encode(
            boot_ms if s.rangefinder_time_boot_ms is None else s.rangefinder_time_boot_ms,
            20,
            4000,
            max(0, round(s.rel_alt_m * 100)),
            mavlink2.MAV_DISTANCE_SENSOR_LASER,
            0,
            mavlink2.MAV_SENSOR_ROTATION_PITCH_270,
            0,
        )
    raise ValueError(f"the simulated FC cannot build {name!r}")


def build_home_position(mav: Any, home: tuple[float, float, float], time_usec: int) -> Any:
    """HOME_POSITION at ``home`` (lat deg, lon deg, alt m MSL), encoded with ``mav``."""
    lat, lon, alt = home
    return mav.home_position_encode(
        round(lat * 1e7),
        round(lon * 1e7),
        round(alt * 1000),
        0.0,
        0.0,
        0.0,
        [1.0, 0.0, 0.0, 0.0],
        0.0,
        0.0,
        0.0,
        time_usec,
    )


def custom_mode(autopilot: str, vehicle_type: int, mode: str) -> tuple[int, int]:
    """(base_mode flags, custom_mode) for a mode name, from pymavlink's tables."""
    if autopilot == "px4":
        base, main, sub = mavutil.px4_map[mode]
        return int(base), (int(main) << 16) | (int(sub) << 24)
    mapping = mavutil.mode_mapping_byname(vehicle_type) or {}
    return mavlink2.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, int(mapping[mode])
