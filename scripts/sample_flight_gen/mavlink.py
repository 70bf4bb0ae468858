"""The flight controller's MAVLink stream (ArduPlane), GNSS loss and dead reckoning included."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pyproj import CRS, Transformer

from gps_denied_onboard.replay.tlog import TlogFrame
from sample_flight_gen.common import aeqd
from sample_flight_gen.spec import (
    ATTITUDE_HZ,
    DR_VELOCITY_ERROR,
    DT_S,
    FC_ATTITUDE_ERROR_RMS_DEG,
    FC_ATTITUDE_ERROR_TAU_S,
    FC_BOOT_NS,
    FC_LINK_LATENCY_NS,
    GNSS_LOSS_S,
    GPS_HZ,
    GROUND_MSL_M,
    POSITION_HZ,
    SEED,
    SPEED_MPS,
    START_NS,
    VFR_HZ,
    S,
)
from sample_flight_gen.trajectory import Track, band_noise


def fc_stream(track: Track, center: tuple[float, float]) -> list[TlogFrame]:
    """ArduPlane telemetry of the flight, as it reaches the companion computer."""
    from pymavlink.dialects.v20 import ardupilotmega as mavlink2

    class _Sink:
        def write(self, _data: bytes) -> None:
            pass

    mav = mavlink2.MAVLink(_Sink(), srcSystem=1, srcComponent=1)
    rng = np.random.default_rng(SEED + 1)
    # its own generator: the GNSS noise above stays what it was
    att_rng = np.random.default_rng(SEED + 3)
    att_err = {}
    for axis, rms in FC_ATTITUDE_ERROR_RMS_DEG.items():
        e = band_noise(att_rng, track.t.size, FC_ATTITUDE_ERROR_TAU_S, rms)
        # over one flight a 30 s wander has a mean (a bias) too: the RMS is what is stated
        att_err[axis] = np.radians(e * rms / np.sqrt(np.mean(e**2)))
    fc_yaw = track.yaw + att_err["yaw"]
    fc_yaw = np.arctan2(np.sin(fc_yaw), np.cos(fc_yaw))
    frames: list[TlogFrame] = []

    def emit(ns: int, msg: Any) -> None:
        frames.append(TlogFrame(ns, bytes(msg.pack(mav))))

    armed = (
        mavlink2.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
        | mavlink2.MAV_MODE_FLAG_SAFETY_ARMED
        | mavlink2.MAV_MODE_FLAG_STABILIZE_ENABLED
        | mavlink2.MAV_MODE_FLAG_GUIDED_ENABLED
        | mavlink2.MAV_MODE_FLAG_AUTO_ENABLED
    )
    plane_auto = 10
    loss_i = round(GNSS_LOSS_S / DT_S)
    ok_flags = (
        mavlink2.EKF_ATTITUDE
        | mavlink2.EKF_VELOCITY_HORIZ
        | mavlink2.EKF_VELOCITY_VERT
        | mavlink2.EKF_POS_HORIZ_REL
        | mavlink2.EKF_POS_HORIZ_ABS
        | mavlink2.EKF_POS_VERT_ABS
        | mavlink2.EKF_PRED_POS_HORIZ_REL
        | mavlink2.EKF_PRED_POS_HORIZ_ABS
    )
    lost_flags = ok_flags & ~(mavlink2.EKF_POS_HORIZ_ABS | mavlink2.EKF_PRED_POS_HORIZ_ABS)
    # The FC's own horizontal estimate: truth while GNSS is healthy, then dead
    # reckoning with a constant velocity error.
    dt_after = np.maximum(track.t - GNSS_LOSS_S, 0.0)
    fc_e = track.east + DR_VELOCITY_ERROR[0] * dt_after
    fc_n = track.north + DR_VELOCITY_ERROR[1] * dt_after
    lost_mask = track.t >= GNSS_LOSS_S
    fc_ve = track.ve + np.where(lost_mask, DR_VELOCITY_ERROR[0], 0.0)
    fc_vn = track.vn + np.where(lost_mask, DR_VELOCITY_ERROR[1], 0.0)
    to_ll = Transformer.from_crs(aeqd(*center), CRS.from_epsg(4326), always_xy=True)
    fc_lon, fc_lat = (np.asarray(a) for a in to_ll.transform(fc_e, fc_n))
    home_lat, home_lon = float(track.lat[0]), float(track.lon[0])
    # Body rates for ATTITUDE: central differences of the Euler angles (small-angle).
    roll_rate = np.gradient(track.roll, DT_S)
    pitch_rate = np.gradient(track.pitch, DT_S)
    yaw_rate = np.gradient(np.unwrap(track.yaw), DT_S)
    battery_mv = 16_400.0
    tick = {
        name: round(1.0 / hz / DT_S)
        for name, hz in (
            ("att", ATTITUDE_HZ),
            ("pos", POSITION_HZ),
            ("vfr", VFR_HZ),
            ("gps", GPS_HZ),
        )
    }
    for i in range(track.t.size):
        t_ns = START_NS + i * int(DT_S * S)
        ns = t_ns + FC_LINK_LATENCY_NS
        boot_ms = (t_ns - FC_BOOT_NS) // 1_000_000
        lost = i >= loss_i
        hdg = (math.degrees(float(fc_yaw[i])) + 360.0) % 360.0
        course = (math.degrees(math.atan2(float(fc_ve[i]), float(fc_vn[i]))) + 360.0) % 360.0
        alt_mm = round(float(track.alt_msl[i]) * 1000)
        if i % round(1.0 / DT_S) == 0:
            emit(
                ns,
                mav.heartbeat_encode(
                    mavlink2.MAV_TYPE_FIXED_WING,
                    mavlink2.MAV_AUTOPILOT_ARDUPILOTMEGA,
                    armed,
                    plane_auto,
                    mavlink2.MAV_STATE_ACTIVE,
                ),
            )
            battery_mv -= 4.0
            emit(
                ns,
                mav.sys_status_encode(
                    0x3FFFFF,
                    0x3FFFFF,
                    0x3FFFFF,
                    300,
                    int(battery_mv),
                    1850,
                    int(92 - i * DT_S / 5),
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                ),
            )
        if i % round(5.0 / DT_S) == 0:
            q = [1.0, 0.0, 0.0, 0.0]
            emit(
                ns,
                mav.home_position_encode(
                    round(home_lat * 1e7),
                    round(home_lon * 1e7),
                    round(GROUND_MSL_M * 1000),
                    0.0,
                    0.0,
                    0.0,
                    q,
                    0.0,
                    0.0,
                    0.0,
                    t_ns // 1000,
                ),
            )
        if i % tick["att"] == 0:
            emit(
                ns,
                mav.attitude_encode(
                    boot_ms,
                    float(track.roll[i] + att_err["roll"][i]),
                    float(track.pitch[i] + att_err["pitch"][i]),
                    float(fc_yaw[i]),
                    float(roll_rate[i]),
                    float(pitch_rate[i]),
                    float(yaw_rate[i]),
                ),
            )
        if i % tick["pos"] == 0:
            emit(
                ns,
                mav.global_position_int_encode(
                    boot_ms,
                    round(float(fc_lat[i]) * 1e7),
                    round(float(fc_lon[i]) * 1e7),
                    alt_mm,
                    round(float(track.agl[i]) * 1000),
                    round(float(fc_vn[i]) * 100),
                    round(float(fc_ve[i]) * 100),
                    round(-float(track.vu[i]) * 100),
                    round(hdg * 100) % 36000,
                ),
            )
        if i % tick["gps"] == 0:
            if lost:
                emit(
                    ns,
                    mav.gps_raw_int_encode(
                        t_ns // 1000,
                        mavlink2.GPS_FIX_TYPE_NO_FIX,
                        0,
                        0,
                        0,
                        65535,
                        65535,
                        65535,
                        65535,
                        0,
                    ),
                )
            else:
                dn, de = rng.normal(0, 1.0, 2)
                m_lat = 111_132.0
                m_lon = 111_320.0 * math.cos(math.radians(float(track.lat[i])))
                emit(
                    ns,
                    mav.gps_raw_int_encode(
                        t_ns // 1000,
                        mavlink2.GPS_FIX_TYPE_3D_FIX,
                        round((float(track.lat[i]) + dn / m_lat) * 1e7),
                        round((float(track.lon[i]) + de / m_lon) * 1e7),
                        alt_mm + round(float(rng.normal(0, 1.5)) * 1000),
                        80,
                        120,
                        round(SPEED_MPS * 100),
                        round(course * 100) % 36000,
                        int(14 + rng.integers(0, 3)),
                    ),
                )
        if i % tick["vfr"] == 0:
            emit(
                ns,
                mav.vfr_hud_encode(
                    SPEED_MPS,
                    SPEED_MPS,
                    int(hdg) % 360,
                    55,
                    float(track.alt_msl[i]),
                    float(track.vu[i]),
                ),
            )
        if i % round(0.5 / DT_S) == 0:
            flags = lost_flags if lost else ok_flags
            pos_var = min(0.9, 0.1 + 0.01 * float(dt_after[i])) if lost else 0.1
            emit(ns, mav.ekf_status_report_encode(flags, 0.1, pos_var, 0.1, 0.1, 0.0))
        if i == loss_i:
            emit(ns, mav.statustext_encode(mavlink2.MAV_SEVERITY_WARNING, b"GPS 1: lost fix"))
    return frames
