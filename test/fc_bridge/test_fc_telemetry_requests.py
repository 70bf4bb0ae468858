"""The link asks for telemetry (SET_MESSAGE_INTERVAL, else REQUEST_DATA_STREAM) and checks it.

Against the simulated FC over UDP: ArduPilot in its ask-first mode (nothing but
HEARTBEAT until asked), PX4 streaming by default. The requests are asserted on
the bytes the simulated FC decoded; the telemetry on what the link received.
"""

from __future__ import annotations

import pytest

from gps_denied_onboard.fc_bridge.link import mavlink2
from gps_denied_onboard.fc_bridge.streams import ARDUPILOT_STREAM_OF, wanted_messages

from .link_support import linked, wait_until

SET_INTERVAL = mavlink2.MAV_CMD_SET_MESSAGE_INTERVAL


def _interval_requests(fc: object) -> dict[int, float]:
    """msgid -> interval (us) of every SET_MESSAGE_INTERVAL the FC received (last wins)."""
    out: dict[int, float] = {}
    for r in fc.received("COMMAND_LONG"):  # type: ignore[attr-defined]
        if r.msg.command == SET_INTERVAL:
            out[round(r.msg.param1)] = r.msg.param2
    return out


def _msgid(name: str) -> int:
    return int(getattr(mavlink2, f"MAVLINK_MSG_ID_{name}"))


def test_ask_first_ardupilot_sends_only_heartbeats_until_asked() -> None:
    with linked("ardupilot", telemetry_request=False) as (fc, link, _):
        link.wait_for_autopilot(5.0)
        assert wait_until(lambda: len(fc.received("HEARTBEAT")) >= 3, 5.0)
        assert link.last("HEARTBEAT") is not None
        assert not wait_until(lambda: link.last("ATTITUDE") is not None, 0.5)
        assert link.last("GPS_RAW_INT") is None and link.last("SYS_STATUS") is None
        assert not fc.received("COMMAND_LONG") and not fc.received("REQUEST_DATA_STREAM")
        assert link.telemetry_report() is None


@pytest.mark.parametrize("autopilot", ["ardupilot", "px4"])
def test_every_consumed_message_is_asked_for_at_its_configured_rate(autopilot: str) -> None:
    with linked(autopilot, telemetry_attitude_hz=40.0, telemetry_gps_raw_int_hz=4.0) as (
        fc,
        link,
        _,
    ):
        link.wait_for_autopilot(5.0)
        wanted = wanted_messages(link.config.telemetry_rates(), autopilot)
        wanted.pop("DISTANCE_SENSOR")  # no rangefinder on this vehicle
        assert wait_until(lambda: len(_interval_requests(fc)) >= len(wanted), 5.0)
        asked = _interval_requests(fc)
        assert asked == {_msgid(n): pytest.approx(1e6 / hz) for n, hz in wanted.items()}
        assert asked[_msgid("ATTITUDE")] == 25_000  # 40 Hz
        assert asked[_msgid("GPS_RAW_INT")] == 250_000  # 4 Hz
        ekf = "EKF_STATUS_REPORT" if autopilot == "ardupilot" else "ESTIMATOR_STATUS"
        assert _msgid(ekf) in asked
        # addressed to the autopilot, from us
        cmd = fc.received("COMMAND_LONG")[0].msg
        assert (cmd.target_system, cmd.target_component) == (1, 1)
        assert (cmd.get_srcSystem(), cmd.get_srcComponent()) == (1, 191)
        # the FC honours them: everything consumed arrives, none is reported missing
        for name in ("ATTITUDE", "GPS_RAW_INT", ekf, "SYS_STATUS", "VFR_HUD", "BATTERY_STATUS"):
            assert wait_until(lambda n=name: link.last(n) is not None, 5.0), name
        if autopilot == "ardupilot":
            assert fc.intervals()["ATTITUDE"] == pytest.approx(0.025)
        assert wait_until(lambda: link.telemetry_report().ok, 5.0), link.telemetry_report()
        assert not fc.received("REQUEST_DATA_STREAM")


def test_ask_first_ardupilot_reaches_the_requested_rates() -> None:
    with linked("ardupilot", telemetry_attitude_hz=50.0) as (_fc, link, _):
        link.wait_for_autopilot(5.0)

        def settled() -> bool:
            report = link.telemetry_report()
            by = {s.name: s for s in report.streams}
            return "ATTITUDE" in by and by["ATTITUDE"].received >= 120

        assert wait_until(settled, 10.0)
        by = {s.name: s for s in link.telemetry_report().streams}
        # what arrived over the last window, against what was asked: the FC honours it
        assert by["ATTITUDE"].method == "interval"
        assert 25.0 <= by["ATTITUDE"].achieved_hz <= 75.0, by["ATTITUDE"]
        assert by["GPS_RAW_INT"].requested_hz == 5.0
        assert 2.0 <= by["GPS_RAW_INT"].achieved_hz <= 8.0, by["GPS_RAW_INT"]
        # ArduPilot has no ALTITUDE: refused, and no problem while VFR_HUD arrives
        assert by["ALTITUDE"].method == "refused"
        assert by["VFR_HUD"].achieved_hz > 0
        assert link.telemetry_report().ok, link.telemetry_report().problems


def test_refused_interval_falls_back_to_request_data_stream() -> None:
    with linked("ardupilot", fc_kwargs={"message_interval": "refuse"}) as (fc, link, _):
        link.wait_for_autopilot(5.0)
        groups = {2, 6, 10, 11, 12}  # EXTENDED_STATUS, POSITION, EXTRA1, EXTRA2, EXTRA3

        def streams() -> dict[int, object]:
            return {r.msg.req_stream_id: r.msg for r in fc.received("REQUEST_DATA_STREAM")}

        assert wait_until(lambda: set(streams()) >= groups, 5.0), streams()
        by_stream = streams()
        assert all(m.start_stop == 1 for m in by_stream.values())
        assert by_stream[mavlink2.MAV_DATA_STREAM_EXTRA1].req_message_rate == 50  # ATTITUDE
        assert by_stream[ARDUPILOT_STREAM_OF["GPS_RAW_INT"]].req_message_rate == 5
        for name in ("ATTITUDE", "GPS_RAW_INT", "EKF_STATUS_REPORT", "VFR_HUD", "SYS_STATUS"):
            assert wait_until(lambda n=name: link.last(n) is not None, 5.0), name
        methods = {s.name: s.method for s in link.telemetry_report().streams}
        assert methods["ATTITUDE"] == "data_stream"
        assert methods["ALTITUDE"] == "refused"  # in no ArduPilot stream group


def test_unanswered_interval_is_retried_then_data_streams_are_asked() -> None:
    with linked(
        "ardupilot", telemetry_ack_timeout_s=0.1, fc_kwargs={"message_interval": "ignore"}
    ) as (fc, link, _):
        link.wait_for_autopilot(5.0)
        assert fc.wait_for("REQUEST_DATA_STREAM", 5, 5.0)
        cmds = [r.msg for r in fc.received("COMMAND_LONG") if r.msg.command == SET_INTERVAL]
        # three attempts (confirmation 0, 1, 2) for the first message, then no more waiting
        assert [c.confirmation for c in cmds] == [0, 1, 2]
        assert len({round(c.param1) for c in cmds}) == 1
        assert wait_until(lambda: link.last("ATTITUDE") is not None, 5.0)


def test_a_message_that_never_comes_is_a_named_problem_and_is_asked_again() -> None:
    with linked("ardupilot", telemetry_rerequest_s=0.5, fc_kwargs={"silent": ["GPS_RAW_INT"]}) as (
        fc,
        link,
        _,
    ):
        link.wait_for_autopilot(5.0)
        assert wait_until(lambda: "missing GPS_RAW_INT" in link.telemetry_report().problems, 6.0)
        assert link.last("ATTITUDE") is not None
        rounds = link.telemetry_report().rounds
        assert wait_until(lambda: link.telemetry_report().rounds > rounds, 5.0)
        # asking again does not make the problem go away: it stays named until data comes
        assert link.telemetry_report().problems == ("missing GPS_RAW_INT",)
        # only the missing message is asked again, not the ones that arrive
        assert wait_until(lambda: link.telemetry_report().rounds > rounds + 1, 5.0)

        def per_msg() -> list[int]:
            return [round(r.msg.param1) for r in fc.received("COMMAND_LONG")]

        # the round is counted when the bridge sends; the FC reads the datagram a moment later
        assert wait_until(lambda: per_msg().count(_msgid("GPS_RAW_INT")) >= 3, 5.0), per_msg()
        assert per_msg().count(_msgid("ATTITUDE")) == 1
        assert link.telemetry_report().problems == ("missing GPS_RAW_INT",)
        asked = [
            r
            for r in fc.received("COMMAND_LONG")
            if r.msg.command == SET_INTERVAL and round(r.msg.param1) == _msgid("GPS_RAW_INT")
        ]
        assert len(asked) >= 2


def test_ask_first_autopilot_reboot_is_followed_by_new_requests() -> None:
    # a reboot shorter than the heartbeat timeout: the ask-first FC sends nothing
    # afterwards, so the missing telemetry brings the requests back
    with linked("ardupilot", telemetry_rerequest_s=0.5) as (fc, link, _):
        link.wait_for_autopilot(5.0)
        assert wait_until(lambda: link.telemetry_report().ok and link.last("ATTITUDE"), 5.0)
        fc.reboot()
        assert fc.intervals() == {}
        assert wait_until(lambda: fc.intervals().get("ATTITUDE") == pytest.approx(0.02), 8.0)
        assert wait_until(lambda: link.telemetry_report().ok, 8.0)


def test_streaming_autopilot_reboot_is_detected_by_boot_time_and_recorded() -> None:
    with linked("px4") as (fc, link, sink):
        link.wait_for_autopilot(5.0)
        assert wait_until(lambda: link.last("ATTITUDE") is not None, 5.0)
        fc.clear_received()
        rounds = link.telemetry_report().rounds
        assert wait_until(lambda: link.last("ATTITUDE")[0].time_boot_ms > 1500, 5.0)
        fc.reboot()
        assert wait_until(lambda: link.telemetry_report().reboots == 1, 5.0)
        # the new round of requests follows the detection (another thread, a moment later)
        assert wait_until(lambda: link.telemetry_report().rounds == rounds + 1, 5.0)
        rec = next(r for r in sink.records if r.kind == "fc.autopilot_reboot")
        assert rec.payload["boot_ms"] < rec.payload["previous_boot_ms"]
        assert wait_until(lambda: _msgid("ATTITUDE") in _interval_requests(fc), 5.0)


def test_requests_are_repeated_after_a_reconnect() -> None:
    with linked("ardupilot") as (fc, link, _):
        link.wait_for_autopilot(5.0)
        assert wait_until(lambda: link.last("ATTITUDE") is not None, 5.0)
        fc.pause_heartbeats()
        assert wait_until(lambda: not link.link_ok, 5.0)
        fc.reboot()  # came back with nothing streaming
        fc.clear_received()
        fc.resume_heartbeats()
        assert wait_until(lambda: link.link_ok, 5.0)
        assert wait_until(lambda: _msgid("ATTITUDE") in _interval_requests(fc), 5.0)
        assert wait_until(lambda: "ATTITUDE" in fc.intervals(), 5.0)


@pytest.mark.parametrize("rangefinder", [True, False])
def test_distance_sensor_is_asked_for_only_where_a_rangefinder_exists(rangefinder: bool) -> None:
    with linked("ardupilot", fc_kwargs={"rangefinder": rangefinder}) as (fc, link, _):
        link.wait_for_autopilot(5.0)
        assert wait_until(lambda: link.last("SYS_STATUS") is not None, 5.0)
        asked = wait_until(lambda: _msgid("DISTANCE_SENSOR") in _interval_requests(fc), 1.0)
        assert asked is rangefinder
        if rangefinder:
            assert wait_until(lambda: link.last("DISTANCE_SENSOR") is not None, 5.0)


class _Wire:
    """Our own link protocol's double for the requester: records what it sends."""

    def __init__(self) -> None:
        self.mav = mavlink2.MAVLink(None, 1, 191)
        self.sent: list[object] = []

    def send(self, msg: object) -> int:
        self.sent.append(msg)
        return 0


def test_an_ack_from_an_earlier_round_is_never_taken_for_another_message() -> None:
    from types import SimpleNamespace

    from gps_denied_onboard.clock import ManualClock
    from gps_denied_onboard.fc_bridge.streams import TelemetryRequester

    clock = ManualClock(10**18)
    wire = _Wire()
    req = TelemetryRequester(
        wire,
        clock.now_ns,
        {"attitude": 50.0, "vfr_hud": 5.0},
        lambda: (1, 1, "ardupilot"),
        ack_timeout_s=0.5,
    )

    def ack(result: int) -> None:
        req.on_message(
            SimpleNamespace(get_type=lambda: "COMMAND_ACK", command=SET_INTERVAL, result=result),
            clock.now_ns(),
        )

    req.request_all("link_up")
    assert [round(m.param1) for m in wire.sent] == [_msgid("ATTITUDE")]
    req.request_all("link_up")  # a new round (reconnect) while ATTITUDE's answer is in flight
    assert len(wire.sent) == 1  # it waits for that answer
    ack(mavlink2.MAV_RESULT_DENIED)  # the old round's answer: settles nothing
    assert [round(m.param1) for m in wire.sent] == [_msgid("ATTITUDE")] * 2
    ack(mavlink2.MAV_RESULT_ACCEPTED)
    ack(mavlink2.MAV_RESULT_ACCEPTED)
    methods = {s.name: s.method for s in req.report().streams}
    assert methods == {"ATTITUDE": "interval", "VFR_HUD": "interval"}
    assert not any(m.get_type() == "REQUEST_DATA_STREAM" for m in wire.sent)
