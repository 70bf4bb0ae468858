"""Our own fixes reported back by the FC are not an independent GNSS (own_fixes.py)."""

from __future__ import annotations

import math

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.fc_bridge.gnss_health import GnssHealthMonitor
from gps_denied_onboard.fc_bridge.own_fixes import SentPositions
from gps_denied_onboard.fc_bridge.telemetry import GnssFix
from gps_denied_onboard.records import MemorySink

LAT, LON = 47.0001, -99.1501


def _fix(lat: float, lon: float) -> GnssFix:
    return GnssFix(
        source="gps_raw_int",
        latitude=lat,
        longitude=lon,
        altitude_msl=580.0,
        fix_type=3,
        navsat_status=0,
        satellites=10,
        hdop=0.8,
        vdop=1.2,
        h_acc_m=2.0,
        v_acc_m=4.0,
        position_covariance=(4.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 16.0),
        covariance_type=2,
        velocity_ned=(0.0, 0.0, 0.0),
        course_deg=math.nan,
    )


def test_a_gnss_report_at_a_position_we_sent_is_our_echo_not_a_healthy_gnss() -> None:
    sent = SentPositions()
    clock = ManualClock(10**18)
    sink = MemorySink()
    monitor = GnssHealthMonitor(clock, sink, own_fixes=sent)
    assert monitor.on_fix(_fix(LAT, LON), clock.now_ns()).reason == "ok"  # not sent yet
    sent.record(round(LAT * 1e7), round(LON * 1e7))
    echo = monitor.on_fix(_fix(LAT, LON), clock.now_ns())
    assert (echo.healthy, echo.reason) == (False, "own_fixes")
    # 1e-7 degree (1 cm) off one we sent: a receiver of its own
    assert monitor.on_fix(_fix(LAT + 1e-7, LON), clock.now_ns()).reason == "ok"
    reasons = [r.payload["reason"] for r in sink.of_kind("fc.gnss_health")]
    assert reasons == ["ok", "own_fixes", "ok"]


def test_only_the_last_gps_inputs_are_remembered() -> None:
    sent = SentPositions(keep=3)
    for k in range(5):
        sent.record(470_000_000 + k, -991_500_000)
    assert [sent.is_echo((470_000_000 + k) / 1e7, -99.15) for k in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]


def test_recording_notes_gps_input_and_passes_everything_on() -> None:
    mav = mavlink2.MAVLink(None, 255, 191)
    out: list[object] = []
    sent = SentPositions()
    send = sent.recording(out.append)
    gps = mav.gps_input_encode(
        0, 0, 0, 0, 0, 3, round(LAT * 1e7), round(LON * 1e7), 580.0,
        1.0, 1.0, 0.0, 0.0, 0.0, 0.2, 2.0, 4.0, 10,
    )  # fmt: skip
    hb = mav.heartbeat_encode(18, 8, 0, 0, 0)
    send(gps)
    send(hb)
    assert out == [gps, hb]
    assert sent.is_echo(LAT, LON) and not sent.is_echo(0.0, 0.0)
