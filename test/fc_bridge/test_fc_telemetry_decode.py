"""Telemetry decode: pure functions on real pymavlink messages (packed and parsed back)."""

from __future__ import annotations

import math

import pytest

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.fc_bridge import gnss_health as gh
from gps_denied_onboard.fc_bridge import telemetry as tm
from gps_denied_onboard.fc_bridge.link import Autopilot, mavlink2
from gps_denied_onboard.record_schema import check_payload
from gps_denied_onboard.records import MemorySink

MAV = mavlink2.MAVLink(None, 1, 1)


def roundtrip(msg: object) -> object:
    """Pack and parse back, so tests see what the wire carries."""
    parser = mavlink2.MAVLink(None, 1, 1)
    out = parser.parse_buffer(msg.pack(MAV))  # type: ignore[attr-defined]
    assert out and len(out) == 1
    return out[0]


def gps_raw(
    fix_type: int = 3,
    sats: int = 12,
    eph: int = 80,
    h_acc: int = 1500,
    v_acc: int = 2500,
    vel: int = 500,
    cog: int = 9000,
    vel_acc: int = 300,
) -> object:
    return roundtrip(
        MAV.gps_raw_int_encode(
            1_000_000,
            fix_type,
            473977420,
            85455940,
            488_000,
            eph,
            120,
            vel,
            cog,
            sats,
            488_000,
            h_acc,
            v_acc,
            vel_acc,
            0,
            0,
        )
    )


def test_gps_raw_int_to_navsatfix_fields() -> None:
    fix = tm.gnss_from_gps_raw_int(gps_raw())
    assert fix.latitude == pytest.approx(47.397742) and fix.longitude == pytest.approx(8.545594)
    assert fix.altitude_msl == pytest.approx(488.0)
    assert fix.navsat_status == tm.NAVSAT_STATUS_FIX and fix.satellites == 12
    assert fix.hdop == pytest.approx(0.8)
    assert (fix.h_acc_m, fix.v_acc_m) == (pytest.approx(1.5), pytest.approx(2.5))
    assert fix.covariance_type == tm.COVARIANCE_TYPE_DIAGONAL_KNOWN
    assert fix.position_covariance[0] == pytest.approx(2.25)
    assert fix.position_covariance[8] == pytest.approx(6.25)
    # course 90 deg at 5 m/s: due east
    assert fix.velocity_ned[0] == pytest.approx(0.0, abs=1e-9)
    assert fix.velocity_ned[1] == pytest.approx(5.0)


def test_gps_raw_without_accuracy_falls_back_to_hdop_then_unknown() -> None:
    fix = tm.gnss_from_gps_raw_int(gps_raw(h_acc=0, v_acc=0, eph=150))
    assert fix.covariance_type == tm.COVARIANCE_TYPE_APPROXIMATED
    assert fix.position_covariance[0] == pytest.approx((1.5 * tm.UERE_M) ** 2)
    fix = tm.gnss_from_gps_raw_int(gps_raw(h_acc=0, v_acc=0, eph=0xFFFF))
    assert fix.covariance_type == tm.COVARIANCE_TYPE_UNKNOWN and math.isnan(fix.hdop)


def test_vel_acc_is_decoded_in_m_per_s_and_zero_means_unknown() -> None:
    assert tm.gnss_from_gps_raw_int(gps_raw(vel_acc=300)).vel_acc_mps == pytest.approx(0.3)
    # 0: unknown (MAVLink 2 truncates trailing zero extensions: what an absent one reads)
    assert math.isnan(tm.gnss_from_gps_raw_int(gps_raw(vel_acc=0)).vel_acc_mps)
    fused = tm.gnss_from_global_position_int(
        roundtrip(MAV.global_position_int_encode(5, 473977420, 85455940, 500_250, 0, 1, 2, 3, 0))
    )
    assert math.isnan(fused.vel_acc_mps)


@pytest.mark.parametrize(
    ("cog_cdeg", "east", "north"),
    [(0, 0.0, 10.0), (9000, 10.0, 0.0), (18000, 0.0, -10.0), (27000, -10.0, 0.0)],
)
def test_ground_velocity_course_is_clockwise_from_north_and_the_twist_east_north_up(
    cog_cdeg: int, east: float, north: float
) -> None:
    ground = tm.ground_velocity_enu(tm.gnss_from_gps_raw_int(gps_raw(vel=1000, cog=cog_cdeg)))
    assert ground is not None
    assert ground.east_mps == pytest.approx(east, abs=1e-9)
    assert ground.north_mps == pytest.approx(north, abs=1e-9)
    assert ground.up_mps == 0.0


def test_ground_velocity_covariance_with_known_and_unknown_speed_accuracy() -> None:
    known = tm.ground_velocity_enu(tm.gnss_from_gps_raw_int(gps_raw(vel_acc=300)))
    assert known is not None and len(known.covariance) == 36
    big = tm.UNMEASURED_TWIST_VARIANCE
    diag = [known.covariance[i * 7] for i in range(6)]
    assert diag == [pytest.approx(0.09), pytest.approx(0.09), big, big, big, big]
    assert sum(abs(v) for v in known.covariance) == pytest.approx(0.18 + 4 * big)  # diagonal
    unknown = tm.ground_velocity_enu(tm.gnss_from_gps_raw_int(gps_raw(vel_acc=0)))
    assert unknown is not None
    assert unknown.covariance == (-1.0,) + (0.0,) * 35  # REP-145: element 0 is -1


@pytest.mark.parametrize(
    "changes",
    [{"fix_type": 0}, {"fix_type": 1}, {"fix_type": 2}, {"vel": 0xFFFF}, {"cog": 0xFFFF}],
)
def test_no_ground_velocity_without_a_3d_fix_or_with_speed_or_course_unknown(
    changes: dict[str, int],
) -> None:
    assert tm.ground_velocity_enu(tm.gnss_from_gps_raw_int(gps_raw(**changes))) is None


@pytest.mark.parametrize("fix_type", [3, 4, 5, 6])
def test_a_3d_fix_or_better_gives_a_ground_velocity(fix_type: int) -> None:
    assert tm.ground_velocity_enu(tm.gnss_from_gps_raw_int(gps_raw(fix_type=fix_type)))


@pytest.mark.parametrize(
    ("fix_type", "status"), [(0, -1), (1, -1), (2, 0), (3, 0), (4, 1), (5, 2), (6, 2)]
)
def test_fix_type_to_navsat_status(fix_type: int, status: int) -> None:
    assert tm.gnss_from_gps_raw_int(gps_raw(fix_type=fix_type)).navsat_status == status


def test_global_position_int_units() -> None:
    msg = roundtrip(
        MAV.global_position_int_encode(
            5, 473977420, 85455940, 500_250, 12_250, 150, -250, 30, 27_000
        )
    )
    fix = tm.gnss_from_global_position_int(msg)
    assert fix.altitude_msl == pytest.approx(500.25)
    assert fix.velocity_ned == (pytest.approx(1.5), pytest.approx(-2.5), pytest.approx(0.3))
    assert fix.course_deg == pytest.approx(270.0)


@pytest.mark.parametrize(
    ("yaw_ned_deg", "yaw_enu_deg"), [(0, 90), (90, 0), (180, -90), (270, 180), (45, 45)]
)
def test_attitude_to_enu_flu_quaternion_heading(yaw_ned_deg: float, yaw_enu_deg: float) -> None:
    att = tm.attitude_from_msg(
        roundtrip(MAV.attitude_encode(1, 0, 0, math.radians(yaw_ned_deg), 0.1, 0.2, 0.3))
    )
    x, y, z, w = tm.attitude_to_enu_flu_quaternion(att)
    yaw = math.degrees(math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))
    assert (yaw - yaw_enu_deg + 180) % 360 - 180 == pytest.approx(0.0, abs=1e-4)
    assert tm.attitude_rates_flu(att) == (
        pytest.approx(0.1),
        pytest.approx(-0.2),
        pytest.approx(-0.3),
    )


def test_nose_up_pitch_stays_nose_up_in_flu() -> None:
    # NED/FRD pitch +10 deg (nose up) -> FLU pitch about +y is -10 deg: the nose (x) rises (z>0)
    att = tm.Attitude(0.0, math.radians(10), 0.0, (0, 0, 0), 0)
    x, y, z, w = tm.attitude_to_enu_flu_quaternion(att)
    # rotate body x axis (1,0,0) by q; its world z component = 2(xz - wy)
    assert 2 * (x * z - w * y) == pytest.approx(math.sin(math.radians(10)), abs=1e-9)


def test_altitude_battery_and_ekf_decode() -> None:
    alt = tm.altitude_from_altitude_msg(
        roundtrip(MAV.altitude_encode(1, 490.0, 491.0, 12.0, 11.0, 3.0, 0.0))
    )
    assert (alt.amsl, alt.relative, alt.terrain) == (491.0, 11.0, 3.0)
    hud = tm.altitude_from_vfr_hud(roundtrip(MAV.vfr_hud_encode(5, 5, 90, 50, 488.5, -1.5)))
    assert (hud.amsl, hud.climb_rate) == (pytest.approx(488.5), pytest.approx(-1.5))
    b = tm.battery_from_sys_status(
        roundtrip(MAV.sys_status_encode(0, 0, 0, 0, 16200, 350, 87, 0, 0, 0, 0, 0, 0))
    )
    assert (b.voltage_v, b.current_a, b.remaining_pct) == (
        pytest.approx(16.2),
        pytest.approx(3.5),
        87,
    )
    bs = tm.battery_from_battery_status(
        roundtrip(
            MAV.battery_status_encode(
                0, 0, 1, 2500, [4000, 4000, 4000, 4100] + [65535] * 6, -1, -1, -1, 50
            )
        )
    )
    assert bs.voltage_v == pytest.approx(16.1) and math.isnan(bs.current_a)
    ok = tm.ekf_from_ekf_status_report(
        roundtrip(MAV.ekf_status_report_encode(0x1FF, 0.1, 0.2, 0.1, 0.1, 0))
    )
    assert ok.horiz_pos_ok and not ok.gnss_rejected and ok.autopilot is Autopilot.ARDUPILOT
    glitch = tm.ekf_from_ekf_status_report(
        roundtrip(
            MAV.ekf_status_report_encode(0x1FF | mavlink2.EKF_GPS_GLITCHING, 0.1, 0.2, 0.1, 0.1, 0)
        )
    )
    assert glitch.gnss_rejected
    px4 = tm.ekf_from_estimator_status(
        roundtrip(
            MAV.estimator_status_encode(
                1, mavlink2.ESTIMATOR_POS_HORIZ_ABS, 0, 1.5, 0, 0, 0, 0, 0, 0
            )
        )
    )
    assert px4.gnss_rejected and px4.horiz_pos_ok and px4.autopilot is Autopilot.PX4


def test_gnss_health_transitions_are_recorded_once_each() -> None:
    clock = ManualClock(0)
    sink = MemorySink()
    mon = gh.GnssHealthMonitor(clock, sink, min_satellites=6, max_hacc_m=5.0, timeout_s=2.0)
    assert mon.current() == gh.GnssHealth(False, gh.REASON_NO_DATA)
    good = tm.gnss_from_gps_raw_int(gps_raw())
    assert mon.on_fix(good, clock.now_ns()).healthy
    assert mon.on_fix(good, clock.now_ns()).healthy
    assert mon.on_fix(tm.gnss_from_gps_raw_int(gps_raw(sats=4)), 0).reason == "satellites_low"
    assert mon.on_fix(tm.gnss_from_gps_raw_int(gps_raw(h_acc=9000)), 0).reason == "accuracy"
    assert mon.on_fix(tm.gnss_from_gps_raw_int(gps_raw(fix_type=1)), 0).reason == "fix_lost"
    assert mon.on_fix(good, 0).healthy
    ekf_bad = tm.ekf_from_ekf_status_report(
        roundtrip(MAV.ekf_status_report_encode(mavlink2.EKF_GPS_GLITCHING, 0, 0, 0, 0, 0))
    )
    assert mon.on_ekf(ekf_bad).reason == "ekf_rejected"
    clock.advance_s(3.0)
    assert mon.current().reason == "no_data"
    reasons = [r.payload["reason"] for r in sink.of_kind("fc.gnss_health")]
    assert reasons == [
        "no_data",
        "ok",
        "satellites_low",
        "accuracy",
        "fix_lost",
        "ok",
        "ekf_rejected",
        "no_data",
    ]
    for r in sink.records:
        assert check_payload(r.kind, r.payload) == frozenset(), r
