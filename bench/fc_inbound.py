"""Inbound parse-and-publish throughput of the FC link vs a bare pymavlink parse loop.

A telemetry stream is captured from the simulated FC's encoder (heartbeat plus
the usual telemetry burst, ArduPilot and PX4 mixed), then pushed through:

* baseline: ``MAVLink.parse_buffer`` over the same bytes, nothing else;
* ours: ``FcLink.feed`` (robust parse, counters, autopilot filter, type->handler
  dispatch) + telemetry decode (``telemetry.*``) + a publish callback.

Both see the same chunks (one datagram per message, as UDP delivers them).
Figure: messages/s of ours, ratio to the baseline (higher is better; 1.0 = no cost).
"""

from __future__ import annotations

import time
from typing import Any

from harness import figure

from gps_denied_onboard.clock import MonotonicClock
from gps_denied_onboard.fc_bridge import telemetry as tm
from gps_denied_onboard.fc_bridge.config import FcBridgeConfig
from gps_denied_onboard.fc_bridge.link import FcLink, mavlink2
from gps_denied_onboard.fc_bridge.sim_fc import SimFc
from gps_denied_onboard.records import MemorySink


def capture(n_bursts: int) -> list[bytes]:
    fc = SimFc("ardupilot")  # not started: used as an encoder only
    chunks = [bytes(fc.heartbeat().pack(fc._mav))]
    for i in range(n_bursts):
        fc.update(lat_deg=47.0 + i * 1e-6)
        chunks.extend(bytes(m.pack(fc._mav)) for m in fc.telemetry())
        if i % 10 == 0:
            chunks.append(bytes(fc.heartbeat().pack(fc._mav)))
    return chunks


def bare(chunks: list[bytes]) -> int:
    parser = mavlink2.MAVLink(None, 1, 191)
    n = 0
    for c in chunks:
        out = parser.parse_buffer(c)
        if out:
            n += len(out)
    return n


def ours(chunks: list[bytes]) -> int:
    link = FcLink(FcBridgeConfig(connection="udpout:127.0.0.1:9"), MonotonicClock(), MemorySink())
    published = [0]

    def publish(value: Any) -> None:
        published[0] += 1

    link.add_handler("GPS_RAW_INT", lambda m, t: publish(tm.gnss_from_gps_raw_int(m)))
    link.add_handler(
        "GLOBAL_POSITION_INT", lambda m, t: publish(tm.gnss_from_global_position_int(m))
    )
    link.add_handler(
        "ATTITUDE", lambda m, t: publish(tm.attitude_to_enu_flu_quaternion(tm.attitude_from_msg(m)))
    )
    link.add_handler("VFR_HUD", lambda m, t: publish(tm.altitude_from_vfr_hud(m)))
    link.add_handler("ALTITUDE", lambda m, t: publish(tm.altitude_from_altitude_msg(m)))
    link.add_handler("SYS_STATUS", lambda m, t: publish(tm.battery_from_sys_status(m)))
    link.add_handler("BATTERY_STATUS", lambda m, t: publish(tm.battery_from_battery_status(m)))
    link.add_handler("EKF_STATUS_REPORT", lambda m, t: publish(tm.ekf_from_ekf_status_report(m)))
    for c in chunks:
        link.feed(c)
    assert published[0] > 0
    return link.stats.rx_messages


def run(quick: bool) -> list[dict[str, Any]]:
    chunks = capture(300 if quick else 3000)
    n_msgs = bare(chunks)
    reps = 3 if quick else 7
    t_bare: list[float] = []
    t_ours: list[float] = []
    for _ in range(reps):  # interleaved so machine noise hits both alike
        t0 = time.perf_counter()
        bare(chunks)
        t1 = time.perf_counter()
        got = ours(chunks)
        t2 = time.perf_counter()
        assert got == n_msgs, (got, n_msgs)
        t_bare.append(t1 - t0)
        t_ours.append(t2 - t1)
    rate_bare = n_msgs / min(t_bare)
    rate_ours = n_msgs / min(t_ours)
    return [
        figure(
            "fc_inbound_parse_publish_rate",
            rate_ours,
            "msg/s",
            rate_bare,
            ">= 0.5x bare pymavlink parse, >= 2000 msg/s",
            rate_ours >= 0.5 * rate_bare and rate_ours >= 2000,
            messages=n_msgs,
            bare_pymavlink_msg_s=round(rate_bare, 1),
        )
    ]
