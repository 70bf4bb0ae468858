"""The FC link over a serial line: a pseudo-terminal pair, MAVLink bytes both ways.

The README's deployment example is ``/dev/ttyTHS1:921600``. Here the link opens the
slave side of a pty as that serial device (termios raw mode at 921600 baud, the same
code path as a Jetson UART), and the simulated FC speaks real MAVLink on the master
side. Unlike UDP, a serial line is a byte stream: frames arrive split and glued
together, and the parser must resynchronise after garbage.
"""

from __future__ import annotations

import itertools
import os
import pty
import termios
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from gps_denied_onboard.clock import MonotonicClock
from gps_denied_onboard.fc_bridge import telemetry as tm
from gps_denied_onboard.fc_bridge.config import FcBridgeConfig
from gps_denied_onboard.fc_bridge.fix import PositionFix
from gps_denied_onboard.fc_bridge.link import Autopilot, FcLink, mavlink2
from gps_denied_onboard.fc_bridge.scheduler import FixOutputConfig, FixScheduler, FixSenderThread
from gps_denied_onboard.fc_bridge.sim_fc import SimFc
from gps_denied_onboard.record_schema import check_payload
from gps_denied_onboard.records import MemorySink

from .link_support import wait_until

BAUD = 921600


@contextmanager
def serial_link(autopilot: str = "ardupilot") -> Iterator[tuple[SimFc, FcLink, MemorySink, int]]:
    """A SimFc on a pty's master, an FcLink on its slave as ``/dev/pts/N:921600``."""
    master, slave = pty.openpty()
    path = os.ttyname(slave)
    # a fresh pty is in cooked mode (echo, CR/LF mapping), unlike a UART: it is the link's
    # job to make it raw, so the simulated FC starts talking only once the link is open
    assert termios.tcgetattr(slave)[3] & termios.ECHO
    fc = SimFc(autopilot, heartbeat_hz=10.0, telemetry_hz=20.0, serial_fd=master)
    sink = MemorySink()
    link = FcLink(
        FcBridgeConfig(
            connection=f"{path}:{BAUD}",
            heartbeat_period_s=0.1,
            missed_heartbeats=3,
            reconnect_backoff_min_s=0.05,
            reconnect_backoff_max_s=0.2,
        ),
        MonotonicClock(),
        sink,
    )
    try:
        link.open()
        fc.start()
        yield fc, link, sink, slave
    finally:
        link.close()
        fc.stop()
        os.close(slave)
        os.close(master)


@pytest.mark.parametrize(
    ("autopilot", "expected"), [("ardupilot", Autopilot.ARDUPILOT), ("px4", Autopilot.PX4)]
)
def test_handshake_over_the_serial_line(autopilot: str, expected: Autopilot) -> None:
    with serial_link(autopilot) as (fc, link, sink, _slave):
        info = link.wait_for_autopilot(3.0)
        assert info.autopilot is expected and (info.sysid, info.compid) == (1, 1)
        # our heartbeats reached the FC through the tty, in whole frames
        got = fc.wait_for("HEARTBEAT", count=5, timeout_s=3.0)
        hb = got[0].msg
        assert hb.type == mavlink2.MAV_TYPE_ONBOARD_CONTROLLER
        assert hb.get_srcSystem() == 1 and hb.get_srcComponent() == 191
        assert link.stats.bad_crc == 0 and fc.bad_data == 0
        ups = sink.of_kind("fc.link_up")
        assert len(ups) == 1 and ups[0].payload["autopilot"] == expected.value
        for r in sink.records:
            assert check_payload(r.kind, r.payload) == frozenset(), r


def test_the_tty_is_set_raw_at_the_configured_baud() -> None:
    with serial_link() as (_fc, link, _sink, _slave):
        link.wait_for_autopilot(3.0)
        # the link's own descriptor on the slave device: what it configured
        fd = link._transport.fileno()  # type: ignore[union-attr]
        iflag, oflag, cflag, lflag, ispeed, ospeed, cc = termios.tcgetattr(fd)
        assert ispeed == ospeed == termios.B921600
        assert cflag & termios.CS8 and cflag & termios.CREAD and cflag & termios.CLOCAL
        assert not cflag & termios.CRTSCTS
        assert not lflag & (termios.ICANON | termios.ECHO | termios.ISIG)
        assert not iflag & (termios.ICRNL | termios.IXON) and not oflag & termios.OPOST
        assert cc[termios.VMIN] == 1 or cc[termios.VTIME] == 0


def test_telemetry_decodes_from_the_byte_stream() -> None:
    with serial_link() as (fc, link, _sink, _slave):
        link.wait_for_autopilot(3.0)
        seen: list[tm.GnssFix] = []
        link.add_handler("GPS_RAW_INT", lambda m, _t: seen.append(tm.gnss_from_gps_raw_int(m)))
        fc.send_message(mavlink2.MAVLink_gps_raw_int_message(
            0, 3, 471234560, 86543210, 500_000, 80, 120, 0, 0, 14))  # fmt: skip
        # the simulated FC may stream its own GPS_RAW_INT too: find ours among them
        assert wait_until(lambda: any(g.satellites == 14 for g in seen), 3.0), seen
        gnss = next(g for g in seen if g.satellites == 14)
        assert gnss.fix_type == 3
        assert gnss.latitude == pytest.approx(47.123456)
        assert gnss.longitude == pytest.approx(8.654321)
        assert gnss.hdop == pytest.approx(0.8) and gnss.altitude_msl == pytest.approx(500.0)


def test_garbage_on_the_line_is_skipped_and_counted() -> None:
    with serial_link() as (fc, link, _sink, _slave):
        link.wait_for_autopilot(3.0)
        got: list[float] = []
        link.add_handler("NAMED_VALUE_FLOAT", lambda m, _t: got.append(m.value))
        crc_before, junk_before = link.stats.bad_crc, link.stats.bad_data_bytes

        def frame(value: float) -> bytes:
            return bytes(mavlink2.MAVLink_named_value_float_message(0, b"probe", value).pack(
                fc._mav))  # fmt: skip

        bad_crc = bytearray(frame(1.0))
        bad_crc[-1] ^= 0xFF
        # noise, a corrupted frame and a good one glued together, as a UART delivers them
        fc.inject_bytes(b"\x00\x13\x55\xaa" * 8 + bytes(bad_crc) + frame(2.0))
        assert wait_until(lambda: got == [2.0], 3.0), got
        assert link.stats.bad_crc == crc_before + 1
        assert link.stats.bad_data_bytes >= junk_before + 32
        assert link.link_ok


def test_gps_input_reaches_the_fc_over_serial_within_the_contract() -> None:
    with serial_link() as (fc, link, _sink, _slave):
        info = link.wait_for_autopilot(3.0)
        clock = MonotonicClock()
        sched = FixScheduler.from_config(
            FixOutputConfig(), autopilot=info.autopilot.value, send=link.send, clock=clock,
            target_system=info.sysid,
        )  # fmt: skip
        fc.clear_received()
        cov = (4.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 9.0)
        with FixSenderThread(sched):
            for i in range(12):  # 6 Hz for 2 s
                sched.submit(
                    PositionFix(
                        clock.now_ns(),
                        47.0 + i * 1e-5,
                        8.0,
                        500.0,
                        velocity_enu=(1.0, 0.0, 0.0),
                        position_cov_enu=cov,
                    )
                )
                assert not wait_until(lambda: False, 1 / 6)
        got = fc.received("GPS_INPUT")
        assert len(got) >= 12
        lats = sorted({r.msg.lat for r in got})
        assert lats == [round((47.0 + i * 1e-5) * 1e7) for i in range(12)]
        assert all(r.msg.fix_type == 3 and r.msg.horiz_accuracy == pytest.approx(2.0) for r in got)
        gaps = [(b.recv_ns - a.recv_ns) / 1e6 for a, b in itertools.pairwise(got)]
        assert max(gaps) <= 215, gaps


def test_link_loss_and_recovery_over_serial() -> None:
    with serial_link("px4") as (fc, link, sink, _slave):
        link.wait_for_autopilot(3.0)
        assert wait_until(lambda: link.link_ok, 1.0)
        fc.pause_heartbeats()
        assert wait_until(lambda: not link.link_ok, 2.0)

        def reasons() -> list[str]:
            return [d.payload["reason"] for d in sink.of_kind("fc.link_down")]

        # the record follows the state change (a moment later, same thread or not)
        assert wait_until(lambda: reasons() == ["heartbeat_timeout"], 2.0), reasons()
        fc.resume_heartbeats()
        assert wait_until(lambda: link.link_ok, 2.0)
        # as above: the link is up (state, under its lock) a moment before the record
        assert wait_until(lambda: len(sink.of_kind("fc.link_up")) == 2, 2.0), sink.of_kind(
            "fc.link_up"
        )
