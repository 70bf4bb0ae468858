"""What the FC link makes of the bytes it receives: parsing, dispatch, the autopilot's state.

:class:`InboundLink` is the half of :class:`~gps_denied_onboard.fc_bridge.link.FcLink`
with no thread and no I/O of its own: bytes go in through :meth:`InboundLink.feed`
(from FcLink's reader thread, or from a benchmark or replay pushing captured bytes),
are parsed, and every message is dispatched through a type -> handler table.
``link.py`` adds the transport, the threads, the send side and reconnects; keeping
the receiving rules here keeps them in one place, apart from the sockets.

Robustness rules, all counted in :class:`LinkStats`:

* bytes that are not MAVLink and frames with a bad CRC are skipped by
  pymavlink's robust parser and never raise out of the reader; a false
  start-of-frame can swallow at most one maximum frame (280 bytes), exactly as
  the reference C parser does, so the reader never stalls;
* a handler that raises is logged (rate-limited) and counted, never fatal.

The autopilot is the first HEARTBEAT whose ``type`` names a vehicle and whose
``autopilot`` is not INVALID (MAVProxy's rule), filtered by the configured
target system/component. The link is *up* while that autopilot's HEARTBEAT is
younger than ``missed_heartbeats * heartbeat_period_s`` (injected clock).
Link up/down, mode changes and armed/disarmed transitions become flight
records.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Final

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.fc_bridge.autopilot import (
    AutopilotInfo,
    autopilot_of,
    heartbeat_is_from_autopilot,
    is_armed,
    mode_name,
)
from gps_denied_onboard.fc_bridge.config import FcBridgeConfig
from gps_denied_onboard.fc_bridge.errors import FcConnectionError
from gps_denied_onboard.fc_bridge.signing import VerifyingParser
from gps_denied_onboard.fc_bridge.streams import TelemetryRequester
from gps_denied_onboard.log import RateLimitedLog, log_event
from gps_denied_onboard.records import FlightRecord, RecordSink

__all__ = ["PRODUCER", "Handler", "InboundLink", "LinkStats"]

PRODUCER: Final = "fc_bridge"
Handler = Callable[[Any, int], None]
"""``handler(msg, recv_ns)``: a decoded pymavlink message and its receive time."""


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


class InboundLink:
    """Parses received bytes, dispatches messages, tracks the autopilot; see the module docstring.

    :class:`~gps_denied_onboard.fc_bridge.link.FcLink` extends it with the transport
    and the threads that feed it.
    """

    def __init__(
        self,
        config: FcBridgeConfig,
        clock: Clock,
        sink: RecordSink,
        logger: logging.Logger | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._sink = sink
        self._log = logger or logging.getLogger("gps_denied_onboard.fc_bridge.link")
        self._rate_log = RateLimitedLog(self._log, 5_000_000_000)
        self._handlers: dict[str, tuple[Handler, ...]] = {}
        self._idle_hooks: tuple[Callable[[], object], ...] = ()
        self._handlers_lock = threading.Lock()
        self._state_lock = threading.Lock()
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
        #: FcLink's telemetry requester, asked for every stream when the link comes up
        self._telemetry: TelemetryRequester | None = None

    # -- public API ----------------------------------------------------------------------

    @property
    def config(self) -> FcBridgeConfig:
        return self._config

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

    # -- receive internals ----------------------------------------------------------------

    def _new_parser(self) -> Any:
        parser = VerifyingParser(None, self._config.source_system, self._config.source_component)
        parser.robust_parsing = True
        if self._rx_signing is not None:
            parser.signing = self._rx_signing  # stream timestamps outlive a reconnect
        return parser

    def _count(self, name: str, n: int = 1) -> None:
        with self._state_lock:
            self._counts[name] += n

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
