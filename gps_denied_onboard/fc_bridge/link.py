"""The MAVLink link to the flight controller: transports, heartbeat, detection, dispatch.

One :class:`FcLink` owns one transport (serial, UDP in/out, TCP) and two
threads: the *reader*, which is the only place bytes are parsed and which
dispatches every message through a type -> handler table, and the
*heartbeat* thread, which sends our own HEARTBEAT as an onboard controller.

Robustness rules, all counted in :class:`LinkStats`:

* bytes that are not MAVLink and frames with a bad CRC are skipped by
  pymavlink's robust parser and never raise out of the reader; a false
  start-of-frame can swallow at most one maximum frame (280 bytes), exactly as
  the reference C parser does, so the reader never stalls;
* a handler that raises is logged (rate-limited) and counted, never fatal;
* a transport error (device unplugged, TCP closed) closes the transport and
  re-opens it with exponential backoff; sends in the meantime are dropped and
  counted, never blocked.

The autopilot is the first HEARTBEAT whose ``type`` names a vehicle and whose
``autopilot`` is not INVALID (MAVProxy's rule), filtered by the configured
target system/component. The link is *up* while that autopilot's HEARTBEAT is
younger than ``missed_heartbeats * heartbeat_period_s`` (injected clock).
Link up/down, mode changes and armed/disarmed transitions become flight
records.
"""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Final

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.fc_bridge.autopilot import (
    Autopilot,
    AutopilotInfo,
    autopilot_of,
    heartbeat_is_from_autopilot,
    is_armed,
    mode_name,
)
from gps_denied_onboard.fc_bridge.config import FcBridgeConfig
from gps_denied_onboard.fc_bridge.errors import FcConnectionError, FcProtocolError
from gps_denied_onboard.fc_bridge.signing import (
    VerifyingParser,
    load_signing_key,
    signing_line,
    signing_timestamp,
)
from gps_denied_onboard.fc_bridge.streams import TelemetryReport, TelemetryRequester
from gps_denied_onboard.fc_bridge.transport import Transport, open_transport
from gps_denied_onboard.log import RateLimitedLog, log_event
from gps_denied_onboard.records import FlightRecord, RecordSink

__all__ = [
    "Autopilot",
    "AutopilotInfo",
    "FcLink",
    "Handler",
    "LinkStats",
    "autopilot_of",
    "heartbeat_is_from_autopilot",
    "mavlink2",
    "mode_name",
]

PRODUCER: Final = "fc_bridge"
Handler = Callable[[Any, int], None]
"""``handler(msg, recv_ns)``: a decoded pymavlink message and its receive time."""

_POLL_S: Final = 0.05
#: How long :meth:`FcLink.close` waits for its threads, all together. They wake within
#: ``_POLL_S`` (or a TCP connect's 2 s while reconnecting); close runs in a lifecycle
#: transition, which holds every other callback of the node until it returns.
CLOSE_TIMEOUT_S: Final = 3.0


@dataclass(frozen=True)
class LinkStats:
    """Counters of one link since it was built (they survive reconnects)."""

    rx_bytes: int = 0
    rx_messages: int = 0
    bad_data_bytes: int = 0
    bad_crc: int = 0
    bad_frames: int = 0
    unknown_messages: int = 0
    foreign_messages: int = 0
    tx_messages: int = 0
    tx_bytes: int = 0
    tx_dropped: int = 0
    reconnects: int = 0
    transport_errors: int = 0
    handler_errors: int = 0
    link_losses: int = 0
    rx_signed_ok: int = 0
    rx_unverified_accepted: int = 0
    rx_signature_rejected: int = 0


class _TxFile:
    """The ``file`` pymavlink's MAVLink.send writes to; routes to the live transport."""

    def __init__(self, link: FcLink) -> None:
        self._link = link
        self.written = False

    def write(self, data: bytes) -> None:
        self.written = self._link._write_locked(bytes(data))


# --------------------------------------------------------------------------- the link


class FcLink:
    """The MAVLink link to one autopilot. See the module docstring and LINK_API.md.

    No I/O in the constructor; :meth:`open` opens the transport and starts the
    threads; :meth:`close` stops them. Use as a context manager.
    """

    def __init__(
        self,
        config: FcBridgeConfig,
        clock: Clock,
        sink: RecordSink,
        logger: logging.Logger | None = None,
    ) -> None:
        self._config = config
        self._endpoint = config.endpoint
        self._clock = clock
        self._sink = sink
        self._log = logger or logging.getLogger("gps_denied_onboard.fc_bridge.link")
        self._rate_log = RateLimitedLog(self._log, 5_000_000_000)
        self._handlers: dict[str, tuple[Handler, ...]] = {}
        self._idle_hooks: tuple[Callable[[], object], ...] = ()
        self._handlers_lock = threading.Lock()
        self._tx_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._transport: Transport | None = None
        self._transport_failed = threading.Event()
        self._reader: threading.Thread | None = None
        self._beater: threading.Thread | None = None
        self._tx_file = _TxFile(self)
        self._mav = mavlink2.MAVLink(self._tx_file, config.source_system, config.source_component)
        self._rx_signing: Any = None  # pymavlink MAVLinkSigning shared by every parser
        self._autopilot_signed: bool | None = None
        self._parser = self._new_parser()
        self._counts = {f.name: 0 for f in fields(LinkStats)}
        self._autopilot: AutopilotInfo | None = None
        self._autopilot_event = threading.Event()
        self._last_hb_ns: int | None = None
        self._link_up = False
        self._mode: str | None = None
        self._armed: bool | None = None
        self._last: dict[str, tuple[Any, int]] = {}
        self._opened = False
        self._closed = False
        self._telemetry: TelemetryRequester | None = None
        if config.telemetry_request:
            self._telemetry = TelemetryRequester(
                self,
                clock.now_ns,
                config.telemetry_rates(),
                self._telemetry_target,
                ack_timeout_s=config.telemetry_ack_timeout_s,
                rerequest_s=config.telemetry_rerequest_s,
                on_reboot=lambda payload: self._emit("fc.autopilot_reboot", **payload),
                logger=self._log,
            )
            for msg_type in TelemetryRequester.handled_types():
                self.add_handler(msg_type, self._telemetry.on_message)
            self.add_idle_hook(self._telemetry.poll)

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> FcLink:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Open the transport once (synchronously) and start the reader and heartbeat.

        With ``signing_key_file`` the key is loaded first (``signing.py``).

        Raises:
            FcSigningKeyError: the key file is unsafe or unreadable.
            FcConnectionError: the transport cannot be opened, or the link was
                already opened/closed (a closed link cannot reopen: build a new one).
        """
        if self._opened:
            raise FcConnectionError(
                "FcLink.open called twice; build a new FcLink", connection=self._config.connection
            )
        if self._config.signing_key_file:
            self._setup_signing(load_signing_key(self._config.signing_key_file))
        try:
            transport = open_transport(self._endpoint)
        except OSError as err:
            raise FcConnectionError(
                f"cannot open {self._config.connection}: {err}", connection=self._config.connection
            ) from err
        self._opened = True
        with self._tx_lock:
            self._transport = transport
        log_event(self._log, logging.INFO, "fc.link_open", connection=self._config.connection)
        self._reader = threading.Thread(target=self._read_loop, name="fc_link_reader", daemon=True)
        self._beater = threading.Thread(
            target=self._heartbeat_loop, name="fc_link_heartbeat", daemon=True
        )
        self._reader.start()
        self._beater.start()

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Stop the threads and close the transport; idempotent.

        Waits at most ``timeout_s`` for both threads together (each its share); one still running is
        left behind (a daemon, it stops at its next look at the stop flag) and logged
        as ``fc.link_thread_stuck``.
        """
        if self._closed:
            return
        self._closed = True
        if not self._opened:  # never opened (a fresh link after deactivate): nothing to say
            return
        self._stop.set()
        threads = [
            t
            for t in (self._reader, self._beater)
            if t is not None and t is not threading.current_thread()
        ]
        for t in threads:  # each its share of timeout_s: no wall clock read here
            t.join(timeout=timeout_s / len(threads))
            if t.is_alive():
                log_event(
                    self._log,
                    logging.ERROR,
                    "fc.link_thread_stuck",
                    thread=t.name,
                    timeout_s=timeout_s,
                    connection=self._config.connection,
                )
        self._close_transport()
        with self._state_lock:
            was_up = self._link_up
            self._link_up = False
        if was_up:
            self._emit("fc.link_down", reason="closed")
        log_event(self._log, logging.INFO, "fc.link_closed", connection=self._config.connection)

    # -- public API ----------------------------------------------------------------------

    @property
    def config(self) -> FcBridgeConfig:
        return self._config

    @property
    def mav(self) -> Any:
        """The ``MAVLink`` encoder bound to our ids (``*_encode`` builds messages)."""
        return self._mav

    @property
    def autopilot(self) -> AutopilotInfo | None:
        return self._autopilot

    @property
    def link_ok(self) -> bool:
        """The reader thread's last verdict (see :meth:`add_idle_hook` for when)."""
        return self._link_up

    @property
    def mode(self) -> str | None:
        return self._mode

    @property
    def armed(self) -> bool | None:
        return self._armed

    def telemetry_report(self) -> TelemetryReport | None:
        """Requested telemetry: achieved rate per message and named problems (None: off)."""
        return None if self._telemetry is None else self._telemetry.report()

    def _telemetry_target(self) -> tuple[int, int, str] | None:
        ap = self._autopilot
        return None if ap is None else (ap.sysid, ap.compid, ap.autopilot.value)

    def heartbeat_age_ns(self) -> int | None:
        last = self._last_hb_ns
        return None if last is None else self._clock.now_ns() - last

    def last(self, msg_type: str) -> tuple[Any, int] | None:
        """The latest message of ``msg_type`` from the autopilot, with its receive time."""
        return self._last.get(msg_type)

    @property
    def stats(self) -> LinkStats:
        with self._state_lock:
            counts = dict(self._counts)
        rx = self._rx_signing
        if rx is not None:
            counts["rx_signed_ok"] = rx.goodsig_count
            counts["rx_unverified_accepted"] = rx.unsigned_count
        return LinkStats(**counts)

    def wait_for_autopilot(self, timeout_s: float) -> AutopilotInfo:
        """Block until the autopilot's HEARTBEAT has been heard.

        Raises:
            FcConnectionError: none within ``timeout_s`` (seconds of host time).
        """
        if not self._autopilot_event.wait(timeout_s) or self._autopilot is None:
            rejected = self.stats.rx_signature_rejected
            hint = f" ({rejected} messages rejected for their signature)" if rejected else ""
            raise FcConnectionError(
                f"no autopilot HEARTBEAT on {self._config.connection} within {timeout_s:g} s"
                + hint,
                connection=self._config.connection,
            )
        return self._autopilot

    def add_handler(self, msg_type: str, handler: Handler) -> None:
        """Call ``handler(msg, recv_ns)`` on the reader thread for each ``msg_type``.

        ``"*"`` receives every valid message from any source; typed handlers only
        receive messages from the detected autopilot.
        """
        with self._handlers_lock:
            handlers = dict(self._handlers)
            handlers[msg_type] = (*handlers.get(msg_type, ()), handler)
            self._handlers = handlers

    def add_idle_hook(self, hook: Callable[[], object]) -> None:
        """Call ``hook()`` on the reader thread whenever it has drained its input.

        Timeout verdicts (heartbeat loss here, GNSS "no data" in the node) are
        made only then, never from another thread: data already waiting in the
        socket is always processed before anything is declared missing. In a
        ``use_sim_time`` replay the clock can run ahead of frames in flight,
        and a verdict from a timer thread would then depend on scheduling.
        """
        with self._handlers_lock:
            self._idle_hooks = (*self._idle_hooks, hook)

    def remove_handler(self, msg_type: str, handler: Handler) -> None:
        with self._handlers_lock:
            handlers = dict(self._handlers)
            remaining = tuple(h for h in handlers.get(msg_type, ()) if h != handler)
            if remaining:
                handlers[msg_type] = remaining
            else:
                handlers.pop(msg_type, None)
            self._handlers = handlers

    def send(self, msg: Any) -> int | None:
        """Send a pymavlink message, or call ``msg(mav)`` to send through the encoder.

        Returns:
            The injected clock's time right after the bytes went to the OS, or
            None when nothing was sent (no transport, no UDP peer yet, or a
            transport error, which also triggers a reconnect).

        Raises:
            FcProtocolError: the message could not be packed, or the callable raised.
        """
        with self._tx_lock:
            self._tx_file.written = False
            try:
                if isinstance(msg, mavlink2.MAVLink_message):
                    self._mav.send(msg)
                elif callable(msg):
                    msg(self._mav)
                else:
                    raise TypeError(f"cannot send {type(msg).__name__}")
            except FcProtocolError:
                raise
            except Exception as err:
                raise FcProtocolError(f"cannot send {msg!r}: {err}") from err
            if not self._tx_file.written:
                return None
            return self._clock.now_ns()

    # -- transmit internals ---------------------------------------------------------------

    def _write_locked(self, data: bytes) -> bool:
        """Called by pymavlink under ``_tx_lock``: write one packed frame."""
        transport = self._transport
        ok = False
        if transport is not None:
            try:
                ok = transport.write(data)
            except OSError as err:
                self._count("transport_errors")
                self._rate_log.log(
                    self._clock.now_ns(), logging.WARNING, "fc.link_tx_error", error=str(err)
                )
                self._transport_failed.set()
        with self._state_lock:
            if ok:
                self._counts["tx_messages"] += 1
                self._counts["tx_bytes"] += len(data)
            else:
                self._counts["tx_dropped"] += 1
        return ok

    def _heartbeat_loop(self) -> None:
        period = self._config.heartbeat_period_s
        while not self._stop.is_set():
            try:
                self.send(
                    self._mav.heartbeat_encode(
                        mavlink2.MAV_TYPE_ONBOARD_CONTROLLER,
                        mavlink2.MAV_AUTOPILOT_INVALID,
                        0,
                        0,
                        mavlink2.MAV_STATE_ACTIVE,
                    )
                )
            except FcProtocolError as err:  # cannot happen for a fixed message; never die
                log_event(self._log, logging.ERROR, "fc.heartbeat_failed", error=str(err))
            self._stop.wait(period)

    # -- receive internals ----------------------------------------------------------------

    def _new_parser(self) -> Any:
        parser = VerifyingParser(None, self._config.source_system, self._config.source_component)
        parser.robust_parsing = True
        if self._rx_signing is not None:
            parser.signing = self._rx_signing  # stream timestamps outlive a reconnect
        return parser

    def _setup_signing(self, key: bytes) -> None:
        """Sign everything sent; verify everything received (see ``signing.py``)."""
        start = signing_timestamp(self._clock.now_ns())
        tx = self._mav.signing
        tx.secret_key, tx.sign_outgoing = key, True
        tx.link_id, tx.timestamp = self._config.signing_link_id, start
        rx = mavlink2.MAVLinkSigning()
        rx.secret_key, rx.timestamp = key, start
        if not self._config.signing_require:
            rx.allow_unsigned_callback = lambda _mav, _msgid: True
        self._rx_signing = rx
        self._parser = self._new_parser()
        log_event(
            self._log,
            logging.INFO,
            "fc.signing_on",
            link_id=tx.link_id,
            require=self._config.signing_require,
        )

    def signing_status(self) -> tuple[str, bool]:
        """(line, is_problem): is the autopilot set up for signing (``signing.signing_line``)."""
        return signing_line(
            self._rx_signing is not None, self._config.signing_require, self._autopilot_signed
        )

    def _count(self, name: str, n: int = 1) -> None:
        with self._state_lock:
            self._counts[name] += n

    def _close_transport(self) -> None:
        with self._tx_lock:
            transport, self._transport = self._transport, None
        if transport is not None:
            try:
                transport.close()
            except OSError as err:
                log_event(self._log, logging.WARNING, "fc.link_close_error", error=str(err))

    def _reopen(self) -> None:
        """Close the failed transport and re-open it with exponential backoff."""
        self._close_transport()
        self._transport_failed.clear()
        with self._state_lock:
            was_up = self._link_up
            self._link_up = False
        if was_up:
            self._count("link_losses")
            self._emit("fc.link_down", reason="transport_error")
        delay = self._config.reconnect_backoff_min_s
        while not self._stop.is_set():
            if self._stop.wait(delay):
                return
            try:
                transport = open_transport(self._endpoint)
            except OSError as err:
                self._rate_log.log(
                    self._clock.now_ns(),
                    logging.WARNING,
                    "fc.link_reopen_failed",
                    connection=self._config.connection,
                    error=str(err),
                    retry_in_s=delay,
                )
                delay = min(delay * 2, self._config.reconnect_backoff_max_s)
                continue
            self._parser = self._new_parser()
            with self._tx_lock:
                self._transport = transport
            self._count("reconnects")
            log_event(
                self._log, logging.INFO, "fc.link_reopened", connection=self._config.connection
            )
            return

    def _read_loop(self) -> None:
        fed = False
        while not self._stop.is_set():
            transport = self._transport
            if transport is None or self._transport_failed.is_set():
                self._reopen()
                continue
            try:
                # block only when the last read drained the input (see add_idle_hook)
                readable, _, _ = select.select([transport], [], [], 0 if fed else _POLL_S)
                data = transport.read() if readable else b""
            except (OSError, EOFError, ValueError) as err:
                self._count("transport_errors")
                self._rate_log.log(
                    self._clock.now_ns(), logging.WARNING, "fc.link_rx_error", error=str(err)
                )
                self._transport_failed.set()
                continue
            if data:
                self.feed(data)
                fed = True
                continue
            fed = False
            # drained: everything that had arrived has been handled (a steady stream
            # faster than the poll period never leaves the reader idle for long)
            self._check_link()
            for hook in self._idle_hooks:
                try:
                    hook()
                except Exception as err:  # a hook must not stop the reader
                    self._count("handler_errors")
                    self._rate_log.log(
                        self._clock.now_ns(),
                        logging.WARNING,
                        "fc.idle_hook_error",
                        error=repr(err),
                    )

    def feed(self, data: bytes) -> None:
        """Parse ``data`` and dispatch every message; never raises for bad bytes.

        Public so the benchmark and replay tools can push captured bytes through
        the same path as the reader thread (call it from one thread only).
        """
        recv_ns = self._clock.now_ns()
        with self._state_lock:
            self._counts["rx_bytes"] += len(data)
        try:
            msgs = self._parser.parse_buffer(data)
        except Exception as err:  # robust_parsing should make this unreachable
            self._count("bad_frames")
            self._rate_log.log(recv_ns, logging.WARNING, "fc.link_parser_error", error=str(err))
            self._parser = self._new_parser()
            return
        if msgs:
            for msg in msgs:
                self._dispatch(msg, recv_ns)

    def _dispatch(self, msg: Any, recv_ns: int) -> None:
        msg_type = msg.get_type()
        if msg_type == "BAD_DATA":
            reason = str(getattr(msg, "reason", ""))
            with self._state_lock:
                if reason == "Invalid signature":
                    self._counts["rx_signature_rejected"] += 1
                elif reason == "Bad prefix":
                    self._counts["bad_data_bytes"] += len(msg.data)
                elif "CRC" in reason:
                    self._counts["bad_crc"] += 1
                else:
                    self._counts["bad_frames"] += 1
            return
        if msg_type == "UNKNOWN" or msg_type.startswith("UNKNOWN_"):
            self._count("unknown_messages")
            return
        handlers = self._handlers
        with self._state_lock:
            self._counts["rx_messages"] += 1
        for handler in handlers.get("*", ()):
            self._call(handler, msg, recv_ns)
        if msg_type == "HEARTBEAT":
            self._on_heartbeat(msg, recv_ns)
        ap = self._autopilot
        if ap is None or msg.get_srcSystem() != ap.sysid or msg.get_srcComponent() != ap.compid:
            self._count("foreign_messages")
            return
        self._last[msg_type] = (msg, recv_ns)
        for handler in handlers.get(msg_type, ()):
            self._call(handler, msg, recv_ns)

    def _call(self, handler: Handler, msg: Any, recv_ns: int) -> None:
        try:
            handler(msg, recv_ns)
        except Exception as err:
            self._count("handler_errors")
            self._rate_log.log(
                recv_ns,
                logging.ERROR,
                "fc.handler_error",
                msg_type=msg.get_type(),
                handler=getattr(handler, "__qualname__", repr(handler)),
                error=repr(err),
            )

    def _matches_target(self, msg: Any) -> bool:
        cfg = self._config
        if cfg.target_system and msg.get_srcSystem() != cfg.target_system:
            return False
        return not (cfg.target_component and msg.get_srcComponent() != cfg.target_component)

    def _on_heartbeat(self, msg: Any, recv_ns: int) -> None:
        ap = self._autopilot
        if ap is None:
            if not heartbeat_is_from_autopilot(msg) or not self._matches_target(msg):
                return
            ap = AutopilotInfo(
                autopilot_of(msg.autopilot), msg.get_srcSystem(), msg.get_srcComponent(), msg.type
            )
            self._autopilot = ap
            log_event(
                self._log,
                logging.INFO,
                "fc.autopilot_detected",
                autopilot=ap.autopilot.value,
                sysid=ap.sysid,
                compid=ap.compid,
                vehicle_type=ap.vehicle_type,
            )
        elif msg.get_srcSystem() != ap.sysid or msg.get_srcComponent() != ap.compid:
            return
        if self._rx_signing is not None:
            self._autopilot_signed = bool(msg.get_signed())
        mode = mode_name(msg)
        armed = is_armed(msg)
        with self._state_lock:
            self._last_hb_ns = recv_ns
            came_up = not self._link_up
            self._link_up = True
            previous_mode, self._mode = self._mode, mode
            previous_armed, self._armed = self._armed, armed
        if came_up:
            self._emit(
                "fc.link_up",
                autopilot=ap.autopilot.value,
                sysid=ap.sysid,
                compid=ap.compid,
                vehicle_type=ap.vehicle_type,
                connection=self._config.connection,
                mode=mode,
                armed=armed,
            )
        self._autopilot_event.set()
        if came_up and self._telemetry is not None:
            self._telemetry.request_all("link_up")  # after the record: it is the event
        if previous_mode is not None and mode != previous_mode:
            self._emit("fc.mode_change", mode=mode, previous=previous_mode)
        if previous_armed is not None and armed != previous_armed:
            self._emit("fc.armed" if armed else "fc.disarmed", mode=mode)

    def _check_link(self) -> None:
        last = self._last_hb_ns
        if last is None:
            return
        age = self._clock.now_ns() - last
        with self._state_lock:
            lost = self._link_up and age > self._config.link_timeout_ns
            if lost:
                self._link_up = False
                self._counts["link_losses"] += 1
        if lost:
            self._emit("fc.link_down", reason="heartbeat_timeout", heartbeat_age_ns=age)

    def _emit(self, kind: str, **payload: Any) -> None:
        now = self._clock.now_ns()
        # a link we closed ourselves went down as asked: INFO; any other loss: WARN
        lost = kind == "fc.link_down" and payload.get("reason") != "closed"
        level = logging.WARNING if lost else logging.INFO
        log_event(self._log, level, kind, **payload)
        try:
            self._sink.emit(FlightRecord(kind, PRODUCER, now, payload))
        except Exception as err:  # a sink must not take the link down
            self._rate_log.log(
                now, logging.ERROR, "fc.record_emit_failed", record_kind=kind, error=repr(err)
            )
