"""origin.OriginManager: which EKF origin a local output uses, and what goes on the wire.

Messages are captured from the ``send`` callable and round-tripped through pymavlink.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.fc_bridge.fix import PositionFix
from gps_denied_onboard.fc_bridge.geodesy import LocalOrigin
from gps_denied_onboard.fc_bridge.origin import OriginConfig, OriginManager
from gps_denied_onboard.record_schema import check_payload
from gps_denied_onboard.records import MemorySink


class Wire:
    """The FC side of ``send``: packs and parses each message like the link would."""

    def __init__(self) -> None:
        self.mav = mavlink2.MAVLink(None, srcSystem=1, srcComponent=191)
        self.msgs: list[Any] = []

    def send(self, msg: Any) -> None:
        self.msgs.append(mavlink2.MAVLink(None).parse_buffer(msg.pack(self.mav))[0])

    def types(self) -> list[str]:
        return [m.get_type() for m in self.msgs]


def _manager(
    clock: ManualClock,
    wire: Wire,
    sink: MemorySink,
    *,
    gnss: list[bool] | None = None,
    needs_origin: bool = True,
    autopilot: str = "px4",
    **cfg: Any,
) -> OriginManager:
    healthy = gnss if gnss is not None else [False]
    return OriginManager(
        OriginConfig(**cfg),
        wire.send,
        clock,
        sink,
        needs_origin=needs_origin,
        autopilot=autopilot,
        target_system=1,
        target_component=1,
        fc_gnss_healthy=lambda: healthy[0],
    )


def _fix(clock: ManualClock, lat: float = 47.3977419, quality: int = 80) -> PositionFix:
    return PositionFix(clock.now_ns(), lat, 8.5455938, 488.25, quality=quality)


def test_global_outputs_never_touch_the_origin(manual_clock: ManualClock) -> None:
    wire, sink = Wire(), MemorySink()
    mgr = _manager(
        manual_clock,
        wire,
        sink,
        needs_origin=False,
        origin_latitude_deg=47.0,
        origin_longitude_deg=8.0,
        origin_altitude_msl_m=400.0,
    )
    assert mgr.activate() is None and mgr.on_fix(_fix(manual_clock)) is None
    assert wire.msgs == [] and sink.records == []


def test_explicit_origin_is_sent_at_activation_with_home_on_ardupilot(
    manual_clock: ManualClock,
) -> None:
    wire, sink = Wire(), MemorySink()
    mgr = _manager(
        manual_clock,
        wire,
        sink,
        autopilot="ardupilot",
        origin_latitude_deg=47.12345678,
        origin_longitude_deg=8.5,
        origin_altitude_msl_m=401.2346,
    )
    got = mgr.activate()
    assert got == LocalOrigin(47.1234568, 8.5, 401.235)  # what the wire can carry
    assert wire.types() == ["SET_GPS_GLOBAL_ORIGIN", "SET_HOME_POSITION"]
    assert (wire.msgs[0].latitude, wire.msgs[0].altitude) == (471234568, 401235)
    assert mgr.source == "param"
    assert mgr.on_fix(_fix(manual_clock, lat=46.0)) is None  # a fix never moves it
    [rec] = sink.records
    assert rec.kind == "fc.origin_set" and not check_payload(rec.kind, rec.payload)


def test_first_valid_fix_becomes_the_origin_when_the_fc_has_no_gnss(
    manual_clock: ManualClock,
) -> None:
    wire, sink = Wire(), MemorySink()
    mgr = _manager(manual_clock, wire, sink)
    assert mgr.activate() is None
    assert wire.types() == ["COMMAND_LONG"]  # asks the FC for its own origin first
    assert wire.msgs[0].command == mavlink2.MAV_CMD_REQUEST_MESSAGE
    assert wire.msgs[0].param1 == mavlink2.MAVLINK_MSG_ID_GPS_GLOBAL_ORIGIN
    assert mgr.on_fix(_fix(manual_clock, quality=0)) is None  # unusable: not an origin
    got = mgr.on_fix(_fix(manual_clock))
    assert got == LocalOrigin(47.3977419, 8.5455938, 488.25) and mgr.source == "first_fix"
    assert wire.types() == ["COMMAND_LONG", "SET_GPS_GLOBAL_ORIGIN"]  # PX4: no home
    assert mgr.on_fix(_fix(manual_clock, lat=47.4)) is None
    assert len(sink.records) == 1


def test_first_fix_rule_can_be_switched_off(manual_clock: ManualClock) -> None:
    wire, sink = Wire(), MemorySink()
    mgr = _manager(manual_clock, wire, sink, origin_from_first_fix=False)
    mgr.activate()
    assert mgr.on_fix(_fix(manual_clock)) is None and mgr.current is None
    assert "SET_GPS_GLOBAL_ORIGIN" not in wire.types()


def test_with_healthy_fc_gnss_we_wait_for_the_fc_origin_and_ask_at_most_every_period(
    manual_clock: ManualClock,
) -> None:
    wire, sink = Wire(), MemorySink()
    gnss = [True]
    mgr = _manager(manual_clock, wire, sink, gnss=gnss, origin_request_period_s=2.0)
    mgr.activate()
    for _ in range(10):  # 1 s of fixes at 10 Hz: no new request yet
        manual_clock.advance_ns(100_000_000)
        assert mgr.on_fix(_fix(manual_clock)) is None
    assert wire.types() == ["COMMAND_LONG"]
    manual_clock.advance_ns(1_000_000_000)
    mgr.on_fix(_fix(manual_clock))
    assert wire.types() == ["COMMAND_LONG", "COMMAND_LONG"]
    reported = mavlink2.MAVLink_gps_global_origin_message(473970000, 85450000, 480000, 0)
    got = mgr.on_fc_origin(reported)
    assert got == LocalOrigin(47.397, 8.545, 480.0) and mgr.source == "fc"
    assert mgr.on_fc_origin(reported) is None  # the same again: no change
    gnss[0] = False  # GNSS lost later: the FC's origin stays, no first-fix origin
    assert mgr.on_fix(_fix(manual_clock)) is None
    assert "SET_GPS_GLOBAL_ORIGIN" not in wire.types() and sink.records == []


def test_the_fc_reported_origin_replaces_ours_when_it_differs(
    manual_clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    wire, sink = Wire(), MemorySink()
    mgr = _manager(manual_clock, wire, sink)
    mgr.activate()
    ours = mgr.on_fix(_fix(manual_clock))
    assert ours is not None
    echo = mavlink2.MAVLink_gps_global_origin_message(473977419, 85455938, 488250, 0)
    assert mgr.on_fc_origin(echo) is None  # the FC confirms ours
    other = mavlink2.MAVLink_gps_global_origin_message(473000000, 85000000, 450000, 0)
    with caplog.at_level("WARNING"):
        got = mgr.on_fc_origin(other)
    assert got == LocalOrigin(47.3, 8.5, 450.0) and mgr.source == "fc"
    assert "fc.origin_reported" in caplog.text and "replaces=first_fix" in caplog.text
