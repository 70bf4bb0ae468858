"""origin.py: SET_GPS_GLOBAL_ORIGIN / SET_HOME_POSITION on the wire and the fc.origin_set record."""

from __future__ import annotations

from typing import Any

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.fc_bridge.fix import PositionFix
from gps_denied_onboard.fc_bridge.fix_output import encode_odometry
from gps_denied_onboard.fc_bridge.geodesy import LocalOrigin
from gps_denied_onboard.fc_bridge.origin import OriginSetter, origin_messages
from gps_denied_onboard.record_schema import check_payload
from gps_denied_onboard.records import MemorySink


def wire(msg: Any) -> Any:
    buf = msg.pack(mavlink2.MAVLink(None, srcSystem=1, srcComponent=191))
    return mavlink2.MAVLink(None).parse_buffer(buf)[0]


def test_set_gps_global_origin_fields() -> None:
    msgs = origin_messages(
        LocalOrigin(-35.3632621, 149.1652374, 584.09), time_usec=123_456, target_system=1
    )
    assert [m.get_type() for m in msgs] == ["SET_GPS_GLOBAL_ORIGIN"]
    m = wire(msgs[0])
    assert (m.target_system, m.latitude, m.longitude) == (1, -353632621, 1491652374)
    assert m.altitude == 584_090  # millimetres MSL
    assert m.time_usec == 123_456


def test_home_position_optional() -> None:
    msgs = origin_messages(
        LocalOrigin(47.0, 8.0, 400.0), time_usec=1, target_system=2, include_home=True
    )
    home = wire(msgs[1])
    assert home.get_type() == "SET_HOME_POSITION"
    assert (home.latitude, home.longitude, home.altitude) == (470000000, 80000000, 400_000)
    assert list(home.q) == [1.0, 0.0, 0.0, 0.0]
    assert home.target_system == 2


def test_origin_setter_sends_records_and_returns_wire_exact_origin(
    manual_clock: ManualClock,
) -> None:
    sent: list[Any] = []
    sink = MemorySink()
    setter = OriginSetter(sent.append, manual_clock, sink)
    exact = setter.set_origin(LocalOrigin(47.39774219, 8.54559381, 488.0004), target_system=1)
    assert [m.get_type() for m in sent] == ["SET_GPS_GLOBAL_ORIGIN"]
    assert wire(sent[0]).time_usec == manual_clock.now_ns() // 1000
    assert exact == LocalOrigin(47.3977422, 8.5455938, 488.0)
    (rec,) = sink.of_kind("fc.origin_set")
    assert check_payload(rec.kind, rec.payload) == frozenset()
    assert rec.payload["latitude"] == exact.latitude_deg
    assert rec.stamp_ns == manual_clock.now_ns()
    # a fix exactly at the origin is at (0, 0, 0) in the local outputs
    fix = PositionFix(manual_clock.now_ns(), exact.latitude_deg, exact.longitude_deg, 488.0)
    odo = wire(encode_odometry(fix, exact))
    assert (odo.x, odo.y, odo.z) == (0.0, 0.0, 0.0)
