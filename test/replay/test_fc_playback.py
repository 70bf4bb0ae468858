"""The sample flight's FC stream reaches a MAVLink peer through SimFc at its sim times."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.replay.fc_playback import FcPlayback
from gps_denied_onboard.replay.tlog import read_tlog

SAMPLE = Path(__file__).resolve().parents[2] / "sample_flight"


def _drain(sock: socket.socket, timeout: float = 0.5) -> bytes:
    out = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        out += data
        end = time.monotonic() + 0.1
    return out


def test_frames_go_out_when_sim_time_reaches_them_and_bridge_output_is_recorded() -> None:
    from pymavlink.dialects.v20 import ardupilotmega as mavlink2

    from gps_denied_onboard.fc_bridge.sim_fc import SimFc

    frames = list(read_tlog(SAMPLE / "fc_stream.tlog"))
    clock = ManualClock(frames[0].time_ns - 1)
    fc = SimFc("ardupilot").start()
    bridge = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bridge.setblocking(False)
    try:
        # the "bridge" says hello, so the sim FC learns where to send
        mav = mavlink2.MAVLink(None, 1, 191)
        hb = mav.heartbeat_encode(mavlink2.MAV_TYPE_ONBOARD_CONTROLLER,
                                  mavlink2.MAV_AUTOPILOT_INVALID, 0, 0, 0).pack(mav)
        bridge.sendto(hb, ("127.0.0.1", fc.port))
        assert fc.wait_for("HEARTBEAT", timeout_s=5.0)
        playback = FcPlayback(frames, fc, clock)
        _drain(bridge, 0.3)  # anything SimFc sent before it was muted
        assert playback.pump() == 0
        clock.set_ns(frames[0].time_ns + 999_999_999)  # first second of the flight
        n = playback.pump()
        expected = [f.frame for f in frames if f.time_ns <= clock.now_ns()]
        assert n == len(expected) > 10
        assert _drain(bridge) == b"".join(expected)
        rest = b""
        while not playback.done:  # five sim seconds at a time, as /clock would move
            clock.advance_ns(5_000_000_000)
            playback.pump()
            rest += _drain(bridge, 0.2)
        assert playback.sent == len(frames)
        assert rest == b"".join(f.frame for f in frames[n:])
        assert [r.msg.get_type() for r in fc.received("HEARTBEAT")][:1] == ["HEARTBEAT"]
    finally:
        bridge.close()
        fc.stop()


def test_sim_time_going_back_restarts_the_stream() -> None:
    class FakeFc:
        def __init__(self) -> None:
            self.out: list[bytes] = []

        def inject_bytes(self, data: bytes) -> None:
            self.out.append(data)

        def pause_heartbeats(self, telemetry_too: bool = True) -> None:
            pass

    frames = list(read_tlog(SAMPLE / "fc_stream.tlog"))[:20]
    clock = ManualClock(frames[-1].time_ns)
    fc = FakeFc()
    playback = FcPlayback(frames, fc, clock)
    assert playback.pump() == 20
    clock2 = ManualClock(frames[0].time_ns)
    playback._clock = clock2  # a loop restarts sim time
    assert playback.pump() >= 1
    assert playback.restarts == 1
