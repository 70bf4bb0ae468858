"""FcLink against the simulated FC over real UDP loopback: detection, heartbeat, loss, records."""

from __future__ import annotations

import itertools
import socket

import pytest

from gps_denied_onboard.clock import MonotonicClock
from gps_denied_onboard.errors import ConfigError
from gps_denied_onboard.fc_bridge.config import FcBridgeConfig, parse_connection
from gps_denied_onboard.fc_bridge.errors import FcConnectionError, FcProtocolError
from gps_denied_onboard.fc_bridge.link import Autopilot, FcLink, mavlink2
from gps_denied_onboard.fc_bridge.sim_fc import SimFc
from gps_denied_onboard.record_schema import check_payload
from gps_denied_onboard.records import MemorySink

from .link_support import linked, wait_until


@pytest.mark.parametrize(
    ("text", "kind", "host", "port"),
    [
        ("/dev/ttyTHS1:921600", "serial", "/dev/ttyTHS1", 921600),
        ("/dev/ttyACM0", "serial", "/dev/ttyACM0", 115200),
        ("udpin:0.0.0.0:14550", "udpin", "0.0.0.0", 14550),
        ("udp::14550", "udpin", "0.0.0.0", 14550),
        ("udpout:10.0.0.2:14555", "udpout", "10.0.0.2", 14555),
        ("tcp:127.0.0.1:5760", "tcp", "127.0.0.1", 5760),
    ],
)
def test_connection_strings_parse(text: str, kind: str, host: str, port: int) -> None:
    ep = parse_connection(text)
    assert (ep.kind, ep.host, ep.port) == (kind, host, port)


@pytest.mark.parametrize("text", ["", "serial", "udpin:host", "http://x:1", "tcp:h:99999"])
def test_bad_connection_strings_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        FcBridgeConfig(connection=text)


@pytest.mark.parametrize(
    ("autopilot", "expected"), [("ardupilot", Autopilot.ARDUPILOT), ("px4", Autopilot.PX4)]
)
def test_autopilot_detected_from_its_heartbeat(autopilot: str, expected: Autopilot) -> None:
    with linked(autopilot) as (_fc, link, sink):
        info = link.wait_for_autopilot(3.0)
        assert info.autopilot is expected
        assert (info.sysid, info.compid) == (1, 1)
        assert info.vehicle_type == mavlink2.MAV_TYPE_QUADROTOR
        ups = sink.of_kind("fc.link_up")
        assert len(ups) == 1 and ups[0].payload["autopilot"] == expected.value
        for r in sink.records:
            assert check_payload(r.kind, r.payload) == frozenset(), r


def test_our_heartbeat_is_an_onboard_controller_at_the_configured_rate() -> None:
    with linked("ardupilot", heartbeat_period_s=0.1, source_system=1) as (fc, _link, _):
        got = fc.wait_for("HEARTBEAT", count=6, timeout_s=3.0)
        assert len(got) >= 6
        hb = got[0].msg
        assert hb.type == mavlink2.MAV_TYPE_ONBOARD_CONTROLLER
        assert hb.autopilot == mavlink2.MAV_AUTOPILOT_INVALID
        assert hb.get_srcSystem() == 1 and hb.get_srcComponent() == 191
        gaps = [(b.recv_ns - a.recv_ns) / 1e9 for a, b in itertools.pairwise(got)]
        assert 0.05 < sum(gaps) / len(gaps) < 0.2


def test_heartbeats_from_a_gcs_or_companion_are_not_taken_for_the_autopilot() -> None:
    sink = MemorySink()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    link = FcLink(
        FcBridgeConfig(connection=f"udpout:127.0.0.1:{rx.getsockname()[1]}"),
        MonotonicClock(),
        sink,
    )
    link.open()
    try:
        _, addr = rx.recvfrom(1024)  # our heartbeat tells us where the link listens
        gcs = mavlink2.MAVLink(None, 255, 190)
        for t, ap in (
            (mavlink2.MAV_TYPE_GCS, mavlink2.MAV_AUTOPILOT_INVALID),
            (mavlink2.MAV_TYPE_ONBOARD_CONTROLLER, mavlink2.MAV_AUTOPILOT_PX4),
            (mavlink2.MAV_TYPE_QUADROTOR, mavlink2.MAV_AUTOPILOT_INVALID),
        ):
            rx.sendto(gcs.heartbeat_encode(t, ap, 0, 0, 0).pack(gcs), addr)
        assert wait_until(lambda: link.stats.rx_messages >= 3, 2.0)
        assert link.autopilot is None
        with pytest.raises(FcConnectionError):
            link.wait_for_autopilot(0.2)
        fc = mavlink2.MAVLink(None, 7, 1)
        rx.sendto(
            fc.heartbeat_encode(
                mavlink2.MAV_TYPE_FIXED_WING, mavlink2.MAV_AUTOPILOT_ARDUPILOTMEGA, 0, 0, 0
            ).pack(fc),
            addr,
        )
        info = link.wait_for_autopilot(2.0)
        assert (info.sysid, info.compid, info.autopilot) == (7, 1, Autopilot.ARDUPILOT)
    finally:
        link.close()
        rx.close()


def test_target_system_filter_ignores_other_vehicles() -> None:
    with linked("ardupilot", target_system=42) as (_fc, link, _):
        assert wait_until(lambda: link.stats.rx_messages > 10, 2.0)
        assert link.autopilot is None
        assert not link.link_ok


def test_link_loss_and_recovery_are_detected_and_recorded() -> None:
    with linked("px4", missed_heartbeats=3, heartbeat_period_s=0.1) as (fc, link, sink):
        link.wait_for_autopilot(3.0)
        assert wait_until(lambda: link.link_ok, 1.0)
        fc.pause_heartbeats()
        assert wait_until(lambda: not link.link_ok, 2.0)
        # the state changes under the link's lock a moment before its record is emitted
        assert wait_until(lambda: len(sink.of_kind("fc.link_down")) == 1, 2.0)
        downs = sink.of_kind("fc.link_down")
        assert [d.payload["reason"] for d in downs] == ["heartbeat_timeout"]
        assert downs[0].payload["heartbeat_age_ns"] > 0.3e9
        fc.resume_heartbeats()
        assert wait_until(lambda: link.link_ok, 2.0)
        assert wait_until(lambda: len(sink.of_kind("fc.link_up")) == 2, 2.0)
        assert link.stats.link_losses == 1
        for r in sink.records:
            assert check_payload(r.kind, r.payload) == frozenset(), r


def test_mode_change_and_arming_transitions_are_records() -> None:
    with linked("ardupilot") as (fc, link, sink):
        link.wait_for_autopilot(3.0)
        assert link.mode == "STABILIZE" and link.armed is False
        fc.update(mode="GUIDED")
        assert wait_until(lambda: link.mode == "GUIDED", 2.0)
        fc.update(armed=True)
        assert wait_until(lambda: link.armed is True, 2.0)
        fc.update(armed=False, mode="LOITER")
        assert wait_until(lambda: link.armed is False, 2.0)

        # the state changes under the link's lock a moment before its records are emitted
        def modes() -> list[tuple[str, str]]:
            return [
                (r.payload["previous"], r.payload["mode"]) for r in sink.of_kind("fc.mode_change")
            ]

        def arming() -> list[str]:
            return [r.kind for r in sink.records if r.kind in ("fc.armed", "fc.disarmed")]

        assert wait_until(lambda: len(modes()) >= 2 and len(arming()) >= 2, 2.0), (
            modes(),
            arming(),
        )
        assert modes() == [("STABILIZE", "GUIDED"), ("GUIDED", "LOITER")]
        assert arming() == ["fc.armed", "fc.disarmed"]


def test_px4_modes_decode_through_pymavlink_tables() -> None:
    with linked("px4") as (fc, link, _sink):
        link.wait_for_autopilot(3.0)
        assert link.mode == "POSCTL"
        fc.update(mode="MISSION", armed=True)
        assert wait_until(lambda: link.mode == "MISSION" and link.armed, 2.0)


def test_send_message_and_callable_reach_the_fc_with_our_ids() -> None:
    with linked("ardupilot") as (fc, link, _):
        link.wait_for_autopilot(3.0)
        sent_at = link.send(link.mav.statustext_encode(6, b"hello", 0, 0))
        assert isinstance(sent_at, int)
        link.send(lambda mav: mav.named_value_float_send(0, b"x", 1.5))
        st = fc.wait_for("STATUSTEXT", 1, 2.0)[0].msg
        nv = fc.wait_for("NAMED_VALUE_FLOAT", 1, 2.0)[0].msg
        assert st.text == "hello" and nv.value == 1.5
        assert (st.get_srcSystem(), st.get_srcComponent()) == (1, 191)
        seqs = [r.msg.get_seq() for r in fc.received()]
        assert len(set(seqs)) == len(seqs)  # one sequence, no duplicates


def test_send_of_garbage_is_a_protocol_error_not_a_crash() -> None:
    with linked("ardupilot") as (_, link, _sink):
        with pytest.raises(FcProtocolError):
            link.send(object())
        with pytest.raises(FcProtocolError):
            link.send(lambda mav: 1 / 0)


def test_udpin_waits_for_a_peer_then_answers_it() -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    link = FcLink(
        FcBridgeConfig(connection=f"udpin:127.0.0.1:{port}"), MonotonicClock(), MemorySink()
    )
    fc = SimFc("ardupilot", peer=("127.0.0.1", port), heartbeat_hz=10)
    link.open()
    try:
        assert link.send(link.mav.statustext_encode(6, b"nobody", 0, 0)) is None
        assert link.stats.tx_dropped >= 1
        fc.start()
        info = link.wait_for_autopilot(3.0)
        assert info.autopilot is Autopilot.ARDUPILOT
        assert fc.wait_for("HEARTBEAT", 1, 3.0)
    finally:
        link.close()
        fc.stop()


def test_tcp_link_reconnects_with_backoff_after_the_peer_drops() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(2)
    port = server.getsockname()[1]
    sink = MemorySink()
    link = FcLink(
        FcBridgeConfig(
            connection=f"tcp:127.0.0.1:{port}",
            reconnect_backoff_min_s=0.05,
            reconnect_backoff_max_s=0.2,
            heartbeat_period_s=0.1,
        ),
        MonotonicClock(),
        sink,
    )
    link.open()
    fc = mavlink2.MAVLink(None, 1, 1)
    hb = fc.heartbeat_encode(
        mavlink2.MAV_TYPE_QUADROTOR,
        mavlink2.MAV_AUTOPILOT_PX4,
        mavlink2.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED,
        3 << 16,
        4,
    )
    try:
        conn, _ = server.accept()
        conn.sendall(hb.pack(fc))
        link.wait_for_autopilot(2.0)
        conn.close()
        server.settimeout(3.0)
        conn2, _ = server.accept()  # the link came back on its own
        conn2.sendall(hb.pack(fc))
        assert wait_until(lambda: link.stats.reconnects >= 1 and link.link_ok, 3.0)

        def down_reasons() -> list[str]:
            return [r.payload["reason"] for r in sink.of_kind("fc.link_down")]

        assert wait_until(lambda: "transport_error" in down_reasons(), 2.0), down_reasons()
        conn2.close()
    finally:
        link.close()
        server.close()


def test_open_failure_is_a_connection_error() -> None:
    link = FcLink(
        FcBridgeConfig(connection="/dev/does-not-exist:57600"), MonotonicClock(), MemorySink()
    )
    with pytest.raises(FcConnectionError) as err:
        link.open()
    assert err.value.connection == "/dev/does-not-exist:57600"


def test_a_raising_handler_is_counted_and_the_reader_keeps_going() -> None:
    with linked("ardupilot") as (_fc, link, _):
        seen: list[str] = []

        def bad(msg: object, recv_ns: int) -> None:
            raise RuntimeError("boom")

        link.add_handler("ATTITUDE", bad)
        link.add_handler("GPS_RAW_INT", lambda m, t: seen.append(m.get_type()))
        assert wait_until(lambda: len(seen) >= 5 and link.stats.handler_errors >= 5, 3.0)
        link.remove_handler("ATTITUDE", bad)
        errors = link.stats.handler_errors
        n = len(seen)
        assert wait_until(lambda: len(seen) >= n + 3, 2.0)
        assert link.stats.handler_errors == errors
