"""A simulated flight controller on UDP loopback: the edge of the system, not flight code.

:class:`SimFc` is a pymavlink endpoint that plays ArduPilot or PX4 well
enough for the bridge's tests, benchmarks and the replay tool:

* sends HEARTBEAT (vehicle type, autopilot, mode, armed) and telemetry
  (GLOBAL_POSITION_INT, GPS_RAW_INT, ATTITUDE, VFR_HUD, ALTITUDE, SYS_STATUS,
  BATTERY_STATUS, SYSTEM_TIME, EKF_STATUS_REPORT on ArduPilot or
  ESTIMATOR_STATUS on PX4, DISTANCE_SENSOR with ``rangefinder=True``) from a
  mutable :class:`SimFcState`, each message on its own interval;
* streams like the firmware it plays (``streams="auto"``): ArduPilot sends
  nothing beyond HEARTBEAT until asked (its ``SRn_*`` rates default to 0 on a
  companion port), PX4 streams every message at ``telemetry_hz`` from boot.
  Both honour ``MAV_CMD_SET_MESSAGE_INTERVAL`` (COMMAND_ACK ACCEPTED; ArduPilot
  answers DENIED for ALTITUDE, which it does not send; interval -1 stops a
  message, 0 restores the default) unless ``message_interval="refuse"``
  (UNSUPPORTED) or ``"ignore"`` (no answer); ArduPilot honours
  ``REQUEST_DATA_STREAM`` with its own stream groups, PX4 ignores it.
  :meth:`SimFc.reboot` restarts ``time_boot_ms`` and forgets every request;
* with ``signing_key`` signs everything it sends and verifies what it receives
  (``require_signed``: drops unsigned/badly signed, counted in ``signature_rejected``),
  like an autopilot whose MAVLink 2 signing key was set up;
* answers PARAM_REQUEST_READ and PARAM_REQUEST_LIST from a parameter dict.
  A read of a name the firmware does not have gets **no answer**, which is what
  ArduPilot (``GCS_MAVLINK::param_io_timer``) and PX4
  (``MavlinkParametersManager``, by-name read) do; ``param_error=True``
  answers with PARAM_ERROR instead, as newer firmware may. PX4's list starts
  with the ``_HASH_CHECK`` pseudo-parameter, as the real one does;
* records and decodes everything it receives, with the receive time of the
  injected clock (default: host monotonic), for tests to assert on wire fields;
* can stop and resume heartbeats/telemetry (link loss), inject raw bytes
  (garbage, bad CRC) and play back a recorded byte stream.

It listens on ``bind`` (``127.0.0.1:0`` by default: see :attr:`SimFc.port`) and
answers whoever sent the last datagram (our link's ``udpout:``), or sends to a
fixed ``peer`` (our link's ``udpin:``). With ``serial_fd`` it speaks over that file
descriptor instead, like a UART: the master side of a pseudo-terminal whose slave our
link opens as a serial device (``/dev/pts/N:921600``).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from gps_denied_onboard.clock import Clock, MonotonicClock
from gps_denied_onboard.fc_bridge.sim_fc_state import (
    ARDUPILOT_DEFAULT_PARAMS,
    PX4_DEFAULT_PARAMS,
    SimFcState,
    build_home_position,
    build_telemetry,
    custom_mode,
)

__all__ = ["ARDUPILOT_DEFAULT_PARAMS", "PX4_DEFAULT_PARAMS", "Received", "SimFc", "SimFcState"]

#: PARAM_VALUE.param_index is uint16: the C code's -1 arrives as 65535.
NO_INDEX: Final = 0xFFFF


@dataclass(frozen=True)
class Received:
    """One message the simulated FC received, with its receive time (ns).

    ``clock_ns``: the receive time on :attr:`SimFc.receive_clock` when one is set (the
    main job sets the replay's sim clock, so gaps can be read in the bridge's time base).
    """

    msg: Any
    recv_ns: int
    clock_ns: int | None = None


class SimFc:
    """A simulated ArduPilot or PX4 on UDP. ``start``/``stop``; thread-safe controls."""

    def __init__(
        self,
        autopilot: str = "ardupilot",
        params: Mapping[str, float] | None = None,
        *,
        bind: tuple[str, int] = ("127.0.0.1", 0),
        peer: tuple[str, int] | None = None,
        sysid: int = 1,
        compid: int = 1,
        vehicle_type: int = mavlink2.MAV_TYPE_QUADROTOR,
        heartbeat_hz: float = 1.0,
        telemetry_hz: float = 10.0,
        param_error: bool = False,
        clock: Clock | None = None,
        streams: str = "auto",
        message_interval: str = "accept",
        rangefinder: bool = False,
        silent: Iterable[str] = (),
        signing_key: bytes | None = None,
        require_signed: bool = False,
        serial_fd: int | None = None,
    ) -> None:
        if autopilot not in ("ardupilot", "px4"):
            raise ValueError(f"autopilot must be 'ardupilot' or 'px4', got {autopilot!r}")
        if streams == "auto":
            streams = "ask" if autopilot == "ardupilot" else "default"
        if streams not in ("ask", "default") or message_interval not in (
            "accept",
            "refuse",
            "ignore",
        ):
            raise ValueError("streams: auto|ask|default; message_interval: accept|refuse|ignore")
        self.streams = streams
        self.message_interval = message_interval
        self.rangefinder = rangefinder
        self.silent = frozenset(silent)  # accepted when asked for, yet never sent
        self.autopilot = autopilot
        default = ARDUPILOT_DEFAULT_PARAMS if autopilot == "ardupilot" else PX4_DEFAULT_PARAMS
        self._params: dict[str, float] = dict(default if params is None else params)
        self._bind = bind
        self._peer = peer
        self._fixed_peer = peer is not None
        self.sysid = sysid
        self.compid = compid
        self.vehicle_type = vehicle_type
        self.heartbeat_hz = heartbeat_hz
        self.telemetry_hz = telemetry_hz
        self.param_error = param_error
        self._clock = clock or MonotonicClock()
        #: a second time base stamped on what is received (``Received.clock_ns``)
        self.receive_clock: Clock | None = None
        self.state = SimFcState(mode="STABILIZE" if autopilot == "ardupilot" else "POSCTL")
        self._lock = threading.Lock()
        self._tx_lock = threading.Lock()
        self._received: list[Received] = []
        self._bad_data = 0
        self._cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._heartbeats_on = threading.Event()
        self._telemetry_on = threading.Event()
        self._answer_params = True
        self._threads: list[threading.Thread] = []
        self._sock: socket.socket | None = None
        # a UART instead of UDP: the master side of a pty (the link opens the slave)
        self._serial_fd = serial_fd
        self._serial_lock = threading.Lock()  # one frame at a time on the wire
        self._mav = mavlink2.MAVLink(_SockFile(self), sysid, compid)
        self._parser = mavlink2.MAVLink(None, sysid, compid)
        self._parser.robust_parsing = True
        self.signature_rejected = 0
        if signing_key is not None:
            # like an autopilot whose key was set up: signs all it sends, checks what it gets
            start = max(0, (self._clock.now_ns() - 1_420_070_400 * 10**9) // 10_000)
            self._mav.signing.secret_key, self._mav.signing.sign_outgoing = signing_key, True
            self._mav.signing.timestamp = start
            self._parser.signing.secret_key, self._parser.signing.timestamp = signing_key, start
            if not require_signed:
                self._parser.signing.allow_unsigned_callback = lambda _mav, _msgid: True
        self._boot_ns = self._clock.now_ns()
        self._intervals: dict[str, float] = self._default_intervals()
        self._due: dict[str, float] = {}
        self.reboots = 0
        self.source_set = 1

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> SimFc:
        if self._serial_fd is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            if self._bind[1] != 0:
                # a fixed port, taken again at once after a stop. Never with port 0:
                # Linux then hands out a port another SO_REUSEADDR socket still holds
                # (1 bind in about 2,000 beside one such socket), which takes the
                # datagrams meant for this FC: a full suite saw the bridge wait 3 s
                # for a HEARTBEAT that never came
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(self._bind)
            sock.setblocking(False)
            self._sock = sock
        self._heartbeats_on.set()
        self._telemetry_on.set()
        for name, target in (("rx", self._rx_loop), ("hb", self._hb_loop), ("tm", self._tm_loop)):
            t = threading.Thread(target=target, name=f"sim_fc_{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5.0)
        self._threads.clear()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SimFc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("SimFc not started")
        return int(self._sock.getsockname()[1])

    @property
    def connection(self) -> str:
        """The connection string our link uses to reach this FC."""
        return f"udpout:127.0.0.1:{self.port}"

    # -- controls ----------------------------------------------------------------------

    def update(self, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                if not hasattr(self.state, key):
                    raise AttributeError(f"SimFcState has no field {key!r}")
                setattr(self.state, key, value)

    def set_param(self, name: str, value: float) -> None:
        with self._lock:
            self._params[name] = float(value)

    def delete_param(self, name: str) -> None:
        with self._lock:
            self._params.pop(name, None)

    def pause_heartbeats(self, telemetry_too: bool = True) -> None:
        self._heartbeats_on.clear()
        if telemetry_too:
            self._telemetry_on.clear()

    def resume_heartbeats(self) -> None:
        self._heartbeats_on.set()
        self._telemetry_on.set()

    def reboot(self) -> None:
        """Restart: ``time_boot_ms`` from 0 and every message back to its boot default
        (nothing on ArduPilot in ask-first mode)."""
        with self._lock:
            self._boot_ns = self._clock.now_ns()
            self._intervals = self._default_intervals()
            self._due.clear()
            self.reboots += 1

    def intervals(self) -> dict[str, float]:
        """Message name -> current send interval in seconds (messages being sent)."""
        with self._lock:
            return dict(self._intervals)

    def messages(self) -> tuple[str, ...]:
        """The telemetry messages this FC can send."""
        names = [
            "GLOBAL_POSITION_INT",
            "GPS_RAW_INT",
            "ATTITUDE",
            "VFR_HUD",
            "ALTITUDE",
            "SYS_STATUS",
            "BATTERY_STATUS",
            "SYSTEM_TIME",
            "EKF_STATUS_REPORT" if self.autopilot == "ardupilot" else "ESTIMATOR_STATUS",
        ]
        if self.rangefinder:
            names.append("DISTANCE_SENSOR")
        return tuple(names)

    def _default_intervals(self) -> dict[str, float]:
        if self.streams == "ask":
            return {}
        return dict.fromkeys(self.messages(), 1.0 / self.telemetry_hz)

    def ignore_param_requests(self, ignore: bool = True) -> None:
        self._answer_params = not ignore

    def send_message(self, msg: Any) -> None:
        with self._tx_lock:
            self._mav.send(msg)

    def inject_bytes(self, data: bytes) -> None:
        """Send raw bytes to the peer (garbage, corrupted frames) in one datagram."""
        self._write(data)

    def play(self, stream: Iterable[tuple[int, bytes]]) -> threading.Thread:
        """Play back ``(offset_ns, bytes)`` chunks at their relative times (own thread)."""
        chunks = list(stream)

        def run() -> None:
            start = self._clock.now_ns()
            for offset_ns, data in chunks:
                wait_s = (start + offset_ns - self._clock.now_ns()) / 1e9
                if wait_s > 0 and self._stop.wait(wait_s):
                    return
                self._write(data)

        t = threading.Thread(target=run, name="sim_fc_play", daemon=True)
        t.start()
        return t

    # -- observations ------------------------------------------------------------------

    def received(self, msg_type: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if msg_type is None or r.msg.get_type() == msg_type]

    def clear_received(self) -> None:
        with self._lock:
            self._received.clear()

    @property
    def bad_data(self) -> int:
        with self._lock:
            return self._bad_data

    def wait_for(self, msg_type: str, count: int = 1, timeout_s: float = 5.0) -> list[Received]:
        """Block until ``count`` messages of ``msg_type`` arrived; return them (may be fewer)."""

        def enough() -> bool:
            return sum(1 for r in self._received if r.msg.get_type() == msg_type) >= count

        with self._cond:
            self._cond.wait_for(enough, timeout_s)
        return self.received(msg_type)

    # -- internals ---------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._serial_fd is not None:
            with self._serial_lock, contextlib.suppress(OSError):  # a UART does not care
                view = memoryview(data)
                while view:
                    view = view[os.write(self._serial_fd, view) :]
            return
        sock, peer = self._sock, self._peer
        if sock is None or peer is None:
            return
        # the link side may not be up: a real FC's UART does not care either
        with contextlib.suppress(OSError):
            sock.sendto(data, peer)

    def _rx_loop(self) -> None:
        while not self._stop.is_set():
            source: Any = self._sock if self._serial_fd is None else self._serial_fd
            if source is None:
                return
            readable, _, _ = select.select([source], [], [], 0.05)
            if not readable:
                continue
            try:
                if self._serial_fd is not None:
                    data, addr = os.read(self._serial_fd, 65536), None
                else:
                    data, addr = source.recvfrom(65536)
            except OSError:
                continue
            now = self._clock.now_ns()
            other = self.receive_clock
            clock_ns = other.now_ns() if other is not None else None
            if addr is not None and not self._fixed_peer:
                self._peer = (addr[0], addr[1])
            msgs = self._parser.parse_buffer(data) or []
            for msg in msgs:
                if msg.get_type() == "BAD_DATA":
                    with self._lock:
                        if getattr(msg, "reason", "") == "Invalid signature":
                            self.signature_rejected += 1
                        else:
                            self._bad_data += 1
                    continue
                with self._cond:
                    self._received.append(Received(msg, now, clock_ns))
                    self._cond.notify_all()
                self._handle(msg)

    def _for_me(self, msg: Any) -> bool:
        return bool(
            msg.target_system in (0, self.sysid) and msg.target_component in (0, self.compid)
        )

    def _on_command(self, msg: Any) -> None:
        if not self._for_me(msg):
            return
        if msg.command == mavlink2.MAV_CMD_SET_MESSAGE_INTERVAL:
            if self.message_interval == "ignore":
                return
            result = self._set_interval(int(msg.param1), float(msg.param2))
            if self.message_interval == "refuse":
                result = int(mavlink2.MAV_RESULT_UNSUPPORTED)
            self._ack(msg, result)
        elif (
            msg.command == mavlink2.MAV_CMD_REQUEST_MESSAGE
            and round(msg.param1) == mavlink2.MAVLINK_MSG_ID_HOME_POSITION
        ):
            # ArduPilot accepts and sends it only once home is set (send_home_position)
            self._ack(msg, int(mavlink2.MAV_RESULT_ACCEPTED))
            self.send_home()
        elif msg.command == mavlink2.MAV_CMD_SET_EKF_SOURCE_SET and self.autopilot == "ardupilot":
            ok = 1 <= round(msg.param1) <= 3
            with self._lock:
                if ok:
                    self.source_set = round(msg.param1)
            self._ack(msg, int(mavlink2.MAV_RESULT_ACCEPTED if ok else mavlink2.MAV_RESULT_DENIED))

    def send_home(self) -> None:
        """HOME_POSITION now, if the state has a home (an autopilot sends it when home
        is set or moved, and when asked)."""
        with self._lock:
            home = self.state.home
        if home is not None:
            self.send_message(build_home_position(self._mav, home, self._clock.now_ns() // 1000))

    def _ack(self, msg: Any, result: int) -> None:
        self.send_message(
            self._mav.command_ack_encode(
                msg.command, result, 0, 0, msg.get_srcSystem(), msg.get_srcComponent()
            )
        )

    def _set_interval(self, msgid: int, interval_us: float) -> int:
        """Apply a SET_MESSAGE_INTERVAL (when honoured); returns the MAV_RESULT."""
        name = mavlink2.mavlink_map[msgid].msgname if msgid in mavlink2.mavlink_map else ""
        if name not in self.messages() or (self.autopilot == "ardupilot" and name == "ALTITUDE"):
            return int(mavlink2.MAV_RESULT_DENIED)  # ArduPilot: "No ap_message for mavlink id"
        if self.message_interval != "accept":
            return int(mavlink2.MAV_RESULT_UNSUPPORTED)
        with self._lock:
            if interval_us < 0:
                self._intervals.pop(name, None)
            elif interval_us == 0:
                default = self._default_intervals().get(name)
                if default is None:
                    self._intervals.pop(name, None)
                else:
                    self._intervals[name] = default
            else:
                self._intervals[name] = interval_us / 1e6
            self._due.pop(name, None)
        return int(mavlink2.MAV_RESULT_ACCEPTED)

    def _on_data_stream(self, msg: Any) -> None:
        if self.autopilot != "ardupilot" or not self._for_me(msg):
            return  # PX4 ignores REQUEST_DATA_STREAM
        stream = int(msg.req_stream_id)
        names = [
            n
            for n in self.messages()
            if n in _ARDUPILOT_STREAMS.get(stream, ()) or stream == mavlink2.MAV_DATA_STREAM_ALL
        ]
        with self._lock:
            for name in names:
                if msg.start_stop and msg.req_message_rate > 0:
                    self._intervals[name] = 1.0 / msg.req_message_rate
                else:
                    self._intervals.pop(name, None)
                self._due.pop(name, None)

    def _handle(self, msg: Any) -> None:
        t = msg.get_type()
        if t == "COMMAND_LONG":
            self._on_command(msg)
        elif t == "REQUEST_DATA_STREAM":
            self._on_data_stream(msg)
        elif t == "SET_HOME_POSITION" and msg.target_system in (0, self.sysid):
            # ArduPilot takes it (the non-GPS navigation guide) and announces the new home
            home = (msg.latitude / 1e7, msg.longitude / 1e7, msg.altitude / 1000.0)
            with self._lock:
                self.state.home = home
            self.send_home()
        elif t == "PARAM_REQUEST_READ" and self._answer_params:
            if msg.target_system != self.sysid or msg.target_component not in (0, self.compid):
                return
            name = msg.param_id
            with self._lock:
                names = list(self._params)
                value = self._params.get(name) if msg.param_index < 0 else None
                if msg.param_index >= 0 and msg.param_index < len(names):
                    name = names[msg.param_index]
                    value = self._params[name]
            if value is None:
                if self.param_error:
                    self.send_message(
                        self._mav.param_error_encode(
                            msg.get_srcSystem(),
                            msg.get_srcComponent(),
                            name.encode()[:16],
                            msg.param_index,
                            mavlink2.MAV_PARAM_ERROR_DOES_NOT_EXIST,
                        )
                    )
                return  # real ArduPilot and PX4 stay silent
            # ArduPilot answers a by-name read with param_index -1 (65535 on the wire).
            index = NO_INDEX if self.autopilot == "ardupilot" else names.index(name)
            self._send_param(name, value, index, len(names))
        elif t == "PARAM_REQUEST_LIST" and self._answer_params:
            if msg.target_system != self.sysid or msg.target_component not in (0, self.compid):
                return
            with self._lock:
                items = list(self._params.items())
            if self.autopilot == "px4":
                self.send_message(
                    self._mav.param_value_encode(
                        b"_HASH_CHECK", 0.0, mavlink2.MAV_PARAM_TYPE_UINT32, len(items), NO_INDEX
                    )
                )
            for i, (name, value) in enumerate(items):
                self._send_param(name, value, i, len(items))

    def _send_param(self, name: str, value: float, index: int, count: int) -> None:
        self.send_message(
            self._mav.param_value_encode(
                name.encode()[:16], float(value), mavlink2.MAV_PARAM_TYPE_REAL32, count, index
            )
        )

    def heartbeat(self) -> Any:
        with self._lock:
            s = self.state
            base, custom = custom_mode(self.autopilot, self.vehicle_type, s.mode)
            if s.armed:
                base |= mavlink2.MAV_MODE_FLAG_SAFETY_ARMED
        ap = (
            mavlink2.MAV_AUTOPILOT_ARDUPILOTMEGA
            if self.autopilot == "ardupilot"
            else mavlink2.MAV_AUTOPILOT_PX4
        )
        return self._mav.heartbeat_encode(
            self.vehicle_type, ap, base, custom, mavlink2.MAV_STATE_ACTIVE
        )

    def telemetry(self) -> list[Any]:
        """One of every telemetry message this FC can send, for the current state."""
        return [self.build(name) for name in self.messages()]

    def build(self, name: str) -> Any:
        """The telemetry message ``name`` for the current state."""
        with self._lock:
            boot_ms = (self._clock.now_ns() - self._boot_ns) // 1_000_000 & 0xFFFFFFFF
            return build_telemetry(self._mav, name, self.state, boot_ms, self.rangefinder)

    def _hb_loop(self) -> None:
        period = 1.0 / self.heartbeat_hz
        while not self._stop.is_set():
            if self._heartbeats_on.is_set():
                self.send_message(self.heartbeat())
            self._stop.wait(period)

    def _tm_loop(self) -> None:
        """Each message on its own interval, at absolute deadlines (no drift)."""
        while not self._stop.is_set():
            now = self._clock.now_ns() / 1e9
            due_now: list[str] = []
            with self._lock:
                for name, interval in self._intervals.items():
                    due = self._due.get(name)
                    if due is None:
                        due = now
                    if due <= now:
                        due_now.append(name)
                        # keep the phase; after a stall, re-anchor instead of bursting
                        due = due + interval if now - due < interval else now + interval
                    self._due[name] = due
                wake = min(self._due.values(), default=now + 0.05)
            if self._telemetry_on.is_set():
                for name in due_now:
                    if name in self.silent:
                        continue
                    self.send_message(self.build(name))
            self._stop.wait(min(0.05, max(0.0, wake - self._clock.now_ns() / 1e9)))


#: ArduPilot's REQUEST_DATA_STREAM groups, as the simulated ArduPilot honours them
#: (GCS_Mavlink.cpp STREAM_EXTENDED_STATUS, _POSITION, _EXTRA1, _EXTRA2, _EXTRA3).
_ARDUPILOT_STREAMS: Final[dict[int, tuple[str, ...]]] = {
    mavlink2.MAV_DATA_STREAM_EXTENDED_STATUS: ("SYS_STATUS", "GPS_RAW_INT"),
    mavlink2.MAV_DATA_STREAM_POSITION: ("GLOBAL_POSITION_INT",),
    mavlink2.MAV_DATA_STREAM_EXTRA1: ("ATTITUDE",),
    mavlink2.MAV_DATA_STREAM_EXTRA2: ("VFR_HUD",),
    mavlink2.MAV_DATA_STREAM_EXTRA3: (
        "SYSTEM_TIME",
        "DISTANCE_SENSOR",
        "BATTERY_STATUS",
        "EKF_STATUS_REPORT",
    ),
}


class _SockFile:
    def __init__(self, fc: SimFc) -> None:
        self._fc = fc

    def write(self, data: bytes) -> None:
        self._fc._write(bytes(data))
