"""Telemetry requests: ask the autopilot for each message the bridge consumes, check it comes.

ArduPilot streams nothing on a companion port until asked (its ``SRn_*`` rates
default to 0); PX4 streams a default set. :class:`TelemetryRequester` asks for
every consumed message at the rate its consumers need, on both:

1. ``MAV_CMD_SET_MESSAGE_INTERVAL`` (COMMAND_LONG 511, param1 = message id,
   param2 = interval in microseconds), one command outstanding at a time (a
   COMMAND_ACK does not say which message it answers), each re-sent up to
   ``ATTEMPTS`` times ``ack_timeout_s`` apart;
2. when the autopilot refuses (COMMAND_ACK result other than ACCEPTED /
   IN_PROGRESS), ``REQUEST_DATA_STREAM`` for the ArduPilot stream group that
   carries the message (:data:`ARDUPILOT_STREAM_OF`), at the highest rate
   wanted in that group; a message in no group is *refused*. When a command
   goes unanswered after every attempt, the autopilot is taken not to
   implement it and every message still to ask goes straight to the data-stream
   fallback. PX4 ignores REQUEST_DATA_STREAM, so there a refusal is final.

Everything is asked again (a new *round*) when the link comes up (first
detection and every reconnect) and when the autopilot reboots (``time_boot_ms``
of any message going backwards by more than :data:`REBOOT_SLACK_MS`; a
rebooted ArduPilot forgets the intervals); a requested message that stays
missing while the link is up is asked again on its own (at most every
``rerequest_s``), which also covers a reboot too quick for the heartbeat
timeout on an ask-first autopilot (then everything is missing).

Achieved rates are counted per requested message over the last
:data:`WINDOW_S` of the injected clock. :meth:`TelemetryRequester.report`
names the problems: ``missing NAME`` (requested, none within its timeout),
``slow NAME`` (below half the requested rate), ``refused NAME`` (the autopilot
has no way to send it and its alternative, e.g. VFR_HUD for ALTITUDE, does
not arrive either).

``DISTANCE_SENSOR`` is asked for only where a rangefinder exists: SYS_STATUS
reporting ``MAV_SYS_STATUS_SENSOR_LASER_POSITION`` present (both autopilots
set that bit for a configured rangefinder).

Runs on the link's reader thread: handlers for the messages, ``poll`` from
the link's drained hook; ``report`` from any thread.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from gps_denied_onboard.log import log_event

__all__ = [
    "ARDUPILOT_STREAM_OF",
    "StreamStatus",
    "TelemetryReport",
    "TelemetryRequester",
    "wanted_messages",
]

NS_PER_S: Final = 1_000_000_000
ATTEMPTS: Final = 3
WINDOW_S: Final = 2.0
REBOOT_SLACK_MS: Final = 1000
#: a requested message is missing after max(this, 3 periods) without one
MIN_MISSING_TIMEOUT_S: Final = 2.0

#: ArduPilot's REQUEST_DATA_STREAM groups (GCS_Mavlink.cpp ``STREAM_*`` lists, Copter 4.x).
ARDUPILOT_STREAM_OF: Final[Mapping[str, int]] = {
    "SYS_STATUS": mavlink2.MAV_DATA_STREAM_EXTENDED_STATUS,
    "GPS_RAW_INT": mavlink2.MAV_DATA_STREAM_EXTENDED_STATUS,
    "GLOBAL_POSITION_INT": mavlink2.MAV_DATA_STREAM_POSITION,
    "ATTITUDE": mavlink2.MAV_DATA_STREAM_EXTRA1,
    "VFR_HUD": mavlink2.MAV_DATA_STREAM_EXTRA2,
    "EKF_STATUS_REPORT": mavlink2.MAV_DATA_STREAM_EXTRA3,
    "BATTERY_STATUS": mavlink2.MAV_DATA_STREAM_EXTRA3,
    "DISTANCE_SENSOR": mavlink2.MAV_DATA_STREAM_EXTRA3,
}
#: a refused message is no problem while this one arrives
ALTERNATIVE: Final[Mapping[str, str]] = {"ALTITUDE": "VFR_HUD", "BATTERY_STATUS": "SYS_STATUS"}
_LASER: Final = int(mavlink2.MAV_SYS_STATUS_SENSOR_LASER_POSITION)
_ACK_OK: Final = (int(mavlink2.MAV_RESULT_ACCEPTED), int(mavlink2.MAV_RESULT_IN_PROGRESS))


def wanted_messages(rates: Mapping[str, float], autopilot: str) -> dict[str, float]:
    """Message name -> rate (Hz) for this autopilot; rate keys as in ``FcBridgeConfig``.

    ``ekf_status`` is EKF_STATUS_REPORT on ArduPilot, ESTIMATOR_STATUS on PX4.
    Rates of 0 are left out (not requested).
    """
    out: dict[str, float] = {}
    for key, hz in rates.items():
        if hz <= 0:
            continue
        if key == "ekf_status":
            name = "ESTIMATOR_STATUS" if autopilot == "px4" else "EKF_STATUS_REPORT"
        else:
            name = key.upper()
        out[name] = float(hz)
    return out


class _Link(Protocol):
    """What the requester needs of :class:`~gps_denied_onboard.fc_bridge.link.FcLink`."""

    @property
    def mav(self) -> Any: ...

    def send(self, msg: Any) -> int | None: ...


@dataclass
class _Entry:
    name: str
    msgid: int
    rate_hz: float
    state: str = "idle"  # idle | pending | interval | data_stream | refused
    attempts: int = 0
    sent_ns: int = 0
    settled_ns: int | None = None
    asked_ns: int | None = None  # first asked since link-up/reboot (kept by re-requests)
    arrivals: deque[int] = field(default_factory=lambda: deque(maxlen=2048))
    last_ns: int | None = None

    def timeout_ns(self) -> int:
        return round(max(MIN_MISSING_TIMEOUT_S, 3.0 / self.rate_hz) * NS_PER_S)


@dataclass(frozen=True)
class StreamStatus:
    """One requested message: how it was asked for and what arrives."""

    name: str
    requested_hz: float
    achieved_hz: float
    method: str  # pending | interval | data_stream | refused | idle
    received: int


@dataclass(frozen=True)
class TelemetryReport:
    streams: tuple[StreamStatus, ...]
    problems: tuple[str, ...]
    rounds: int
    reboots: int

    @property
    def ok(self) -> bool:
        return not self.problems


class TelemetryRequester:
    """Asks for telemetry and checks it arrives (see the module docstring).

    Args:
        link: sends through ``link.send`` / ``link.mav``.
        clock_ns: the injected clock's ``now_ns``.
        rates: rate key (``FcBridgeConfig.telemetry_rates()``) -> Hz.
        target: ``() -> (sysid, compid, autopilot)`` of the detected autopilot, or None.
        on_reboot: called with a payload when a reboot is detected (flight record).
    """

    def __init__(
        self,
        link: _Link,
        clock_ns: Callable[[], int],
        rates: Mapping[str, float],
        target: Callable[[], tuple[int, int, str] | None],
        *,
        ack_timeout_s: float = 0.5,
        rerequest_s: float = 5.0,
        on_reboot: Callable[[dict[str, Any]], None] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._link = link
        self._now = clock_ns
        self._rates = dict(rates)
        self._target = target
        self._ack_timeout_ns = round(ack_timeout_s * NS_PER_S)
        self._rerequest_ns = round(rerequest_s * NS_PER_S)
        self._on_reboot = on_reboot
        self._log = logger or logging.getLogger("gps_denied_onboard.fc_bridge.streams")
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._queue: list[str] = []
        self._autopilot = ""
        self._command_unanswered = False
        self._rangefinder = False
        self._round_ns: int | None = None
        self._inflight: tuple[str, int] | None = None  # (message, sent_ns) awaiting its ACK
        self._last_boot_ms: int | None = None
        self.rounds = 0
        self.reboots = 0

    # -- names the link dispatches to us ------------------------------------------------

    @staticmethod
    def handled_types() -> tuple[str, ...]:
        """Every message type whose handler must be :meth:`on_message`."""
        return (
            "COMMAND_ACK",
            "ATTITUDE",
            "GPS_RAW_INT",
            "GLOBAL_POSITION_INT",
            "EKF_STATUS_REPORT",
            "ESTIMATOR_STATUS",
            "SYS_STATUS",
            "BATTERY_STATUS",
            "VFR_HUD",
            "ALTITUDE",
            "DISTANCE_SENSOR",
            "SYSTEM_TIME",
        )

    # -- events -------------------------------------------------------------------------

    def request_all(self, reason: str) -> None:
        """Start a new round: ask for every wanted message again."""
        target = self._target()
        if target is None:
            return
        autopilot = target[2]
        with self._lock:
            self._autopilot = autopilot
            now = self._now()
            if reason == "missing":
                # only what is missing is asked again; it stays missing until it comes
                again = [n for n, e in self._entries.items() if self._is_missing(e, now)]
                for name in again:
                    entry = self._entries[name]
                    entry.state, entry.attempts, entry.settled_ns = "idle", 0, None
            else:
                wanted = wanted_messages(self._rates, autopilot)
                if not self._rangefinder:
                    wanted.pop("DISTANCE_SENSOR", None)
                old = self._entries
                self._entries = {}
                for name, hz in wanted.items():
                    entry = old.get(name) or _Entry(name, _msgid(name), hz)
                    entry.rate_hz, entry.state, entry.attempts = hz, "idle", 0
                    entry.settled_ns, entry.asked_ns = None, now
                    self._entries[name] = entry
                again = list(self._entries)
            self._queue = [n for n in self._queue if n not in again] + again
            self._command_unanswered = False
            self._round_ns = now
            self.rounds += 1
        log_event(
            self._log,
            logging.INFO,
            "fc.telemetry_request",
            reason=reason,
            messages=",".join(f"{n}@{self._entries[n].rate_hz:g}" for n in again),
        )
        self._advance()

    def on_message(self, msg: Any, recv_ns: int) -> None:
        kind = msg.get_type()
        if kind == "COMMAND_ACK":
            self._on_ack(msg)
            return
        boot_ms = getattr(msg, "time_boot_ms", None)
        if boot_ms is not None:
            self._check_boot(int(boot_ms), kind)
        with self._lock:
            entry = self._entries.get(kind)
            if entry is not None:
                entry.arrivals.append(recv_ns)
                entry.last_ns = recv_ns
        rate = self._rates.get("distance_sensor", 0.0)
        present = int(getattr(msg, "onboard_control_sensors_present", 0))
        if kind == "SYS_STATUS" and not self._rangefinder and rate > 0 and present & _LASER:
            self._rangefinder = True
            self._add("DISTANCE_SENSOR", rate)

    def poll(self) -> None:
        """Retries, fallbacks, and the missing-message re-request (reader thread, drained)."""
        now = self._now()
        with self._lock:
            if self._round_ns is None:
                return
            inflight = self._inflight
            timed_out = inflight is not None and now - inflight[1] >= self._ack_timeout_ns
            missing = any(self._is_missing(e, now) for e in self._entries.values())
            rerequest = missing and now - self._round_ns >= self._rerequest_ns
        if rerequest:
            self.request_all("missing")
            return
        if timed_out:
            self._advance()

    # -- the request sequence -----------------------------------------------------------

    def _add(self, name: str, hz: float) -> None:
        with self._lock:
            if name in self._entries or self._round_ns is None:
                return
            self._entries[name] = _Entry(name, _msgid(name), hz, asked_ns=self._now())
            self._queue.append(name)
        self._advance()

    def _advance(self) -> None:
        """Send the next command, or settle the head entry after its ACK timed out.

        One command is in flight at a time, across rounds too: a new round waits for
        (or times out) the ACK of a command sent in the previous one, so that ACK is
        never taken for the answer to another message.
        """
        target = self._target()
        if target is None:
            return
        sysid, compid, _ = target
        fallback_groups = False
        with self._lock:
            now = self._now()
            if self._inflight is not None:
                if now - self._inflight[1] < self._ack_timeout_ns:
                    return  # waiting for its COMMAND_ACK
                self._inflight = None  # timed out: the head (if it is that one) retries
            while self._queue:
                entry = self._entries.get(self._queue[0])
                if entry is None:
                    self._queue.pop(0)
                    continue
                if entry.state == "pending" and entry.attempts < ATTEMPTS:
                    self._send_interval(entry, sysid, compid, now)
                    return
                if entry.state == "pending":  # unanswered after every attempt
                    self._command_unanswered = True
                    log_event(
                        self._log,
                        logging.WARNING,
                        "fc.telemetry_command_unanswered",
                        message=entry.name,
                        attempts=entry.attempts,
                    )
                    fallback_groups |= self._fall_back(entry, now)
                    self._queue.pop(0)
                    continue
                if self._command_unanswered:
                    fallback_groups |= self._fall_back(entry, now)
                    self._queue.pop(0)
                    continue
                entry.attempts = 0
                self._send_interval(entry, sysid, compid, now)
                return
        if fallback_groups:
            self._send_data_streams(sysid, compid)

    def _send_interval(self, entry: _Entry, sysid: int, compid: int, now: int) -> None:
        entry.state = "pending"
        entry.attempts += 1
        entry.sent_ns = now
        self._inflight = (entry.name, now)
        interval_us = round(1e6 / entry.rate_hz)
        self._link.send(
            self._link.mav.command_long_encode(
                sysid,
                compid,
                mavlink2.MAV_CMD_SET_MESSAGE_INTERVAL,
                entry.attempts - 1,  # confirmation: 0 first, then 1, 2 for re-sends
                float(entry.msgid),
                float(interval_us),
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
            )
        )

    def _fall_back(self, entry: _Entry, now: int) -> bool:
        """Entry refused or unanswered: data stream where one exists. True if it does."""
        entry.settled_ns = now
        if self._autopilot != "px4" and entry.name in ARDUPILOT_STREAM_OF:
            entry.state = "data_stream"
            return True
        entry.state = "refused"
        return False

    def _send_data_streams(self, sysid: int, compid: int) -> None:
        with self._lock:
            groups: dict[int, float] = {}
            for e in self._entries.values():
                if e.state == "data_stream":
                    g = ARDUPILOT_STREAM_OF[e.name]
                    groups[g] = max(groups.get(g, 0.0), e.rate_hz)
        for stream_id, hz in sorted(groups.items()):
            self._link.send(
                self._link.mav.request_data_stream_encode(
                    sysid, compid, stream_id, max(1, min(0xFFFF, round(hz))), 1
                )
            )
        log_event(
            self._log,
            logging.INFO,
            "fc.telemetry_data_streams",
            streams=",".join(f"{g}@{hz:g}" for g, hz in sorted(groups.items())),
        )

    def _on_ack(self, msg: Any) -> None:
        if int(msg.command) != mavlink2.MAV_CMD_SET_MESSAGE_INTERVAL:
            return
        result = int(msg.result)
        target = self._target()
        fell_back = False
        with self._lock:
            inflight = self._inflight
            if inflight is None:
                return  # not ours, or after its timeout
            now = self._now()
            if result == mavlink2.MAV_RESULT_IN_PROGRESS:
                self._inflight = (inflight[0], now)
                return
            self._inflight = None
            head = self._entries.get(self._queue[0]) if self._queue else None
            if head is None or head.name != inflight[0] or head.state != "pending":
                # the answer to a command of an earlier round: nothing to settle
                head = None
        if head is None:
            self._advance()
            return
        with self._lock:
            if result in _ACK_OK:
                head.state, head.settled_ns = "interval", now
            else:
                log_event(
                    self._log,
                    logging.INFO,
                    "fc.telemetry_refused",
                    message=head.name,
                    result=result,
                )
                fell_back = self._fall_back(head, now)
            self._queue.pop(0)
        if fell_back and target is not None:
            self._send_data_streams(target[0], target[1])
        self._advance()

    def _check_boot(self, boot_ms: int, kind: str) -> None:
        with self._lock:
            last = self._last_boot_ms
            self._last_boot_ms = boot_ms
            rebooted = last is not None and boot_ms + REBOOT_SLACK_MS < last
            if rebooted:
                self.reboots += 1
        if rebooted:
            payload = {"previous_boot_ms": last, "boot_ms": boot_ms, "message": kind}
            log_event(self._log, logging.WARNING, "fc.autopilot_reboot", **payload)
            if self._on_reboot is not None:
                self._on_reboot(payload)
            self.request_all("reboot")

    # -- diagnostics ----------------------------------------------------------------------

    def _is_missing(self, e: _Entry, now: int) -> bool:
        if e.state == "refused" or e.asked_ns is None:
            return False
        since = max(e.asked_ns, e.last_ns or 0)
        return now - since > e.timeout_ns()

    def report(self) -> TelemetryReport:
        now = self._now()
        window = round(WINDOW_S * NS_PER_S)
        streams: list[StreamStatus] = []
        problems: list[str] = []
        with self._lock:
            entries = list(self._entries.values())
            for e in entries:
                start = now - window
                n = sum(1 for t in e.arrivals if t > start)
                span = min(window, now - (e.asked_ns if e.asked_ns is not None else now))
                achieved = n * NS_PER_S / span if span > 0 else 0.0
                streams.append(StreamStatus(e.name, e.rate_hz, achieved, e.state, len(e.arrivals)))
                if self._is_missing(e, now):
                    problems.append(f"missing {e.name}")
                elif (
                    e.state in ("interval", "data_stream")
                    and span >= window
                    and achieved < 0.5 * e.rate_hz
                ):
                    problems.append(f"slow {e.name} ({achieved:.1f}/{e.rate_hz:g} Hz)")
                elif e.state == "refused":
                    alt = self._entries.get(ALTERNATIVE.get(e.name, ""))
                    if alt is None or alt.last_ns is None or now - alt.last_ns > alt.timeout_ns():
                        problems.append(f"refused {e.name}")
        return TelemetryReport(tuple(streams), tuple(problems), self.rounds, self.reboots)


def _msgid(name: str) -> int:
    return int(getattr(mavlink2, f"MAVLINK_MSG_ID_{name}"))
