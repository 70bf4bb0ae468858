"""The MAVLink link to the flight controller: transport, threads, sending, reconnects.

One :class:`FcLink` owns one transport (serial, UDP in/out, TCP) and two
threads: the *reader*, which is the only place bytes are parsed and which
dispatches every message through a type -> handler table, and the
*heartbeat* thread, which sends our own HEARTBEAT as an onboard controller.
What the reader does with the bytes (parsing, dispatch, autopilot detection,
link up/down, mode and armed records) is
:class:`~gps_denied_onboard.fc_bridge.link_inbound.InboundLink`'s, which FcLink
extends; its robustness rules for bad bytes and failing handlers are there.

The send side's rule, counted in :class:`LinkStats`:

* a transport error (device unplugged, TCP closed) closes the transport and
  re-opens it with exponential backoff; sends in the meantime are dropped and
  counted, never blocked.
"""

from __future__ import annotations

import logging
import select
import threading
from typing import Any, Final

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.fc_bridge.autopilot import (
    Autopilot,
    AutopilotInfo,
    autopilot_of,
    heartbeat_is_from_autopilot,
    mode_name,
)
from gps_denied_onboard.fc_bridge.config import FcBridgeConfig
from gps_denied_onboard.fc_bridge.errors import FcConnectionError, FcProtocolError
from gps_denied_onboard.fc_bridge.link_inbound import Handler, InboundLink, LinkStats
from gps_denied_onboard.fc_bridge.signing import (
    load_signing_key,
    signing_line,
    signing_timestamp,
)
from gps_denied_onboard.fc_bridge.streams import TelemetryReport, TelemetryRequester
from gps_denied_onboard.fc_bridge.transport import Transport, open_transport
from gps_denied_onboard.log import log_event
from gps_denied_onboard.records import RecordSink

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

_POLL_S: Final = 0.05
#: How long :meth:`FcLink.close` waits for its threads, all together. They wake within
#: ``_POLL_S`` (or a TCP connect's 2 s while reconnecting); close runs in a lifecycle
#: transition, which holds every other callback of the node until it returns.
CLOSE_TIMEOUT_S: Final = 3.0


class _TxFile:
    """The ``file`` pymavlink's MAVLink.send writes to; routes to the live transport."""

    def __init__(self, link: FcLink) -> None:
        self._link = link
        self.written = False

    def write(self, data: bytes) -> None:
        self.written = self._link._write_locked(bytes(data))


# --------------------------------------------------------------------------- the link


class FcLink(InboundLink):
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
        super().__init__(config, clock, sink, logger)
        self._endpoint = config.endpoint
        self._tx_lock = threading.Lock()
        self._stop = threading.Event()
        self._transport: Transport | None = None
        self._transport_failed = threading.Event()
        self._reader: threading.Thread | None = None
        self._beater: threading.Thread | None = None
        self._tx_file = _TxFile(self)
        self._mav = mavlink2.MAVLink(self._tx_file, config.source_system, config.source_component)
        self._opened = False
        self._closed = False
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
    def mav(self) -> Any:
        """The ``MAVLink`` encoder bound to our ids (``*_encode`` builds messages)."""
        return self._mav

    def telemetry_report(self) -> TelemetryReport | None:
        """Requested telemetry: achieved rate per message and named problems (None: off)."""
        return None if self._telemetry is None else self._telemetry.report()

    def _telemetry_target(self) -> tuple[int, int, str] | None:
        ap = self._autopilot
        return None if ap is None else (ap.sysid, ap.compid, ap.autopilot.value)

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

    # -- signing, reconnects and the reader thread ----------------------------------------

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
