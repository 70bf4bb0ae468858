"""The autopilot's home position: asked for until it comes, passed on when it changes.

Why: visual navigation measures its height above the ground from the barometer as
the FC's altitude less the ground's elevation, and the ground's elevation is
home's. A visual_nav (or a whole companion computer) restarted in flight never saw
the aircraft on the ground, so unless an operator configured the elevation it has
no ground to measure from and, without a rangefinder, fixes nothing for the rest
of the flight. The autopilot knows its home: ``HOME_POSITION`` (id 242; lat/lon
degE7, altitude mm MSL).

Neither autopilot streams it to a companion port by default (ArduPilot sends it
when home is set or moved, PX4 at a low rate on some links), so :class:`HomeWatcher`
asks with ``MAV_CMD_REQUEST_MESSAGE`` (param1 = 242) when the autopilot is first
heard and again every ``period_s`` until one arrives; an autopilot with no home yet
(no GNSS fix before arming, no ``SET_HOME_POSITION``) answers the command with a
refusal and sends nothing, and the next ask comes a period later. After the first
one, every HOME_POSITION that arrives (asked for or not: a re-arm moves home) is
taken; one that differs from the held home by more than the wire's rounding is
passed to ``on_home``. A home held across an autopilot reboot is kept: the ground
under it has not moved, and the rebooted autopilot's next home comes as one more.

Runs on the link's reader thread: :meth:`HomeWatcher.on_message` as the
HOME_POSITION handler, :meth:`HomeWatcher.poll` from the link's drained hook.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from gps_denied_onboard.fc_bridge.commands import request_message
from gps_denied_onboard.log import log_event

__all__ = ["Home", "HomeWatcher", "home_from_msg"]

NS_PER_S: Final = 1_000_000_000
#: a home that moved by less than this (degrees; about 1 cm) or 1 mm of altitude is the same
_SAME_DEG: Final = 1e-7
_SAME_M: Final = 1e-3


@dataclass(frozen=True)
class Home:
    """Where the autopilot's home is: WGS84 degrees, metres above mean sea level."""

    latitude_deg: float
    longitude_deg: float
    altitude_msl_m: float

    def same_as(self, other: Home) -> bool:
        return (
            abs(self.latitude_deg - other.latitude_deg) < _SAME_DEG
            and abs(self.longitude_deg - other.longitude_deg) < _SAME_DEG
            and abs(self.altitude_msl_m - other.altitude_msl_m) < _SAME_M
        )


def home_from_msg(msg: Any) -> Home | None:
    """A HOME_POSITION's home, or None when it cannot be one.

    Latitude beyond ±90°, longitude beyond ±180° or an altitude outside
    -500..10000 m is a corrupt or unset home (some stacks send zeros before home is
    set: 0°N 0°E at 0 m is taken as unset too).
    """
    lat, lon, alt = msg.latitude / 1e7, msg.longitude / 1e7, msg.altitude / 1000.0
    if not (abs(lat) <= 90.0 and abs(lon) <= 180.0 and -500.0 <= alt <= 10_000.0):
        return None
    if msg.latitude == 0 and msg.longitude == 0 and msg.altitude == 0:
        return None
    return Home(lat, lon, alt)


class HomeWatcher:
    """Asks the FC for HOME_POSITION until one arrives; reports each new home.

    Args:
        send: the link's send (a pymavlink message).
        clock_ns: the injected clock.
        target: ``() -> (sysid, compid)`` of the detected autopilot, or None before
            it is heard.
        on_home: called with each new home and its receive time (reader thread).
        period_s: between two asks while no home is held.
        ask: False: never ask (the link's telemetry requests are off), only listen.
    """

    def __init__(
        self,
        send: Callable[[Any], object],
        clock_ns: Callable[[], int],
        target: Callable[[], tuple[int, int] | None],
        on_home: Callable[[Home, int], None],
        *,
        period_s: float = 5.0,
        ask: bool = True,
        logger: logging.Logger | None = None,
    ) -> None:
        if not (math.isfinite(period_s) and period_s > 0):
            raise ValueError(f"period_s must be > 0, got {period_s!r}")
        self._send = send
        self._now = clock_ns
        self._target = target
        self._on_home = on_home
        self._period_ns = round(period_s * NS_PER_S)
        self._ask = ask
        self._log = logger or logging.getLogger("gps_denied_onboard.fc_bridge.home")
        self._lock = threading.Lock()
        self._home: Home | None = None
        self._asked_ns: int | None = None
        self.asks = 0

    @property
    def home(self) -> Home | None:
        with self._lock:
            return self._home

    def on_message(self, msg: Any, recv_ns: int) -> None:
        """HOME_POSITION from the autopilot (the link's handler)."""
        home = home_from_msg(msg)
        if home is None:
            log_event(
                self._log,
                logging.WARNING,
                "fc.home_refused",
                latitude_e7=int(msg.latitude),
                longitude_e7=int(msg.longitude),
                altitude_mm=int(msg.altitude),
            )
            return
        with self._lock:
            held = self._home
            if held is not None and held.same_as(home):
                return
            self._home = home
        log_event(
            self._log,
            logging.INFO if held is None else logging.WARNING,
            "fc.home_reported",
            latitude=home.latitude_deg,
            longitude=home.longitude_deg,
            altitude_msl=home.altitude_msl_m,
            moved=held is not None,
        )
        self._on_home(home, recv_ns)

    def poll(self) -> None:
        """Ask, when no home is held and a period has passed (the link's drained hook)."""
        if not self._ask:
            return
        target = self._target()
        if target is None:
            return
        now = self._now()
        with self._lock:
            if self._home is not None:
                return
            if self._asked_ns is not None and now - self._asked_ns < self._period_ns:
                return
            self._asked_ns = now
            self.asks += 1
        self._send(request_message(target[0], target[1], mavlink2.MAVLINK_MSG_ID_HOME_POSITION))
