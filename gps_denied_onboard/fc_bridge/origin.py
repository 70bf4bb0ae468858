"""Set the autopilot's EKF origin (and optionally home) when it has no GNSS.

Without GNSS neither ArduPilot nor PX4 knows where its local NED frame sits on the
globe, so local-frame outputs (ODOMETRY, VISION_POSITION_ESTIMATE) cannot be tied to
a map and GPS_INPUT-less navigation has no geographic reference. The helper sends

* ``SET_GPS_GLOBAL_ORIGIN`` (lat/lon degE7, altitude mm MSL, ``time_usec``): both
  autopilots' way of setting the EKF origin;
* optionally ``SET_HOME_POSITION`` at the same point (ArduPilot's non-GPS
  navigation guide sets both; PX4 sets home itself at arming, so off by default there),

and emits the FDR record ``fc.origin_set``. The returned
:class:`~gps_denied_onboard.fc_bridge.geodesy.LocalOrigin` is what the local-frame
encoders must use, so positions and origin agree to the millimetre the wire carries.

:class:`OriginManager` is the rule the node applies (parameters in
:class:`OriginConfig`); only local outputs (ODOMETRY, VISION_POSITION_ESTIMATE) need it:

1. an explicit origin (``origin_latitude_deg`` / ``origin_longitude_deg`` /
   ``origin_altitude_msl_m``, all three or none) is sent at activation;
2. otherwise the FC is asked for its own origin (MAV_CMD_REQUEST_MESSAGE
   GPS_GLOBAL_ORIGIN) and, while its GNSS is healthy, we wait for it (asked again at
   most every ``origin_request_period_s`` while fixes arrive);
3. otherwise (no explicit origin, FC GNSS not healthy, no origin reported by the FC)
   the first valid fix (quality > 0, finite altitude) becomes the origin, when
   ``origin_from_first_fix``;
4. a GPS_GLOBAL_ORIGIN the FC reports is what its local frame *is*: it replaces what
   we hold when it differs (a warning when we had set a different one).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.errors import ConfigError
from gps_denied_onboard.fc_bridge.commands import request_message
from gps_denied_onboard.fc_bridge.fix import PositionFix
from gps_denied_onboard.fc_bridge.geodesy import LocalOrigin
from gps_denied_onboard.log import log_event
from gps_denied_onboard.records import FlightRecord, RecordSink

#: Two origins closer than this (degrees; ~1 cm) are the same after degE7 rounding.
_SAME_DEG: Final = 1.5e-7
_SAME_ALT_M: Final = 0.002


def quantised_origin(origin: LocalOrigin) -> LocalOrigin:
    """The origin as the autopilot will hold it after the wire's degE7 / mm rounding."""
    return LocalOrigin(
        round(origin.latitude_deg * 1e7) / 1e7,
        round(origin.longitude_deg * 1e7) / 1e7,
        round(origin.altitude_msl_m * 1000.0) / 1000.0,
    )


def origin_messages(
    origin: LocalOrigin,
    *,
    time_usec: int,
    target_system: int,
    include_home: bool = False,
) -> list[Any]:
    """The message(s) that set the EKF origin (and home) at ``origin``."""
    lat = round(origin.latitude_deg * 1e7)
    lon = round(origin.longitude_deg * 1e7)
    alt_mm = round(origin.altitude_msl_m * 1000.0)
    msgs: list[Any] = [
        mavlink2.MAVLink_set_gps_global_origin_message(
            target_system=target_system,
            latitude=lat,
            longitude=lon,
            altitude=alt_mm,
            time_usec=int(time_usec),
        )
    ]
    if include_home:
        msgs.append(
            mavlink2.MAVLink_set_home_position_message(
                target_system=target_system,
                latitude=lat,
                longitude=lon,
                altitude=alt_mm,
                x=0.0,
                y=0.0,
                z=0.0,
                q=[1.0, 0.0, 0.0, 0.0],
                approach_x=0.0,
                approach_y=0.0,
                approach_z=0.0,
                time_usec=int(time_usec),
            )
        )
    return msgs


class OriginSetter:
    """Sends the origin through ``send`` and records it.

    Args:
        send: the link's ``send`` (takes one MAVLink message).
        clock: injected clock; its time stamps the record and ``time_usec``.
        sink: where ``fc.origin_set`` goes.
        producer: FDR producer slug.
    """

    def __init__(
        self,
        send: Callable[[Any], object],
        clock: Clock,
        sink: RecordSink,
        *,
        producer: str = "fc_bridge",
    ) -> None:
        self._send = send
        self._clock = clock
        self._sink = sink
        self._producer = producer
        self.current: LocalOrigin | None = None

    def set_origin(
        self,
        origin: LocalOrigin,
        *,
        target_system: int,
        include_home: bool = False,
    ) -> LocalOrigin:
        """Send SET_GPS_GLOBAL_ORIGIN (+ SET_HOME_POSITION); return the wire-exact origin."""
        if not (math.isfinite(origin.latitude_deg) and math.isfinite(origin.longitude_deg)):
            raise ValueError("origin must be finite")
        now = self._clock.now_ns()
        for msg in origin_messages(
            origin, time_usec=now // 1000, target_system=target_system, include_home=include_home
        ):
            self._send(msg)
        exact = quantised_origin(origin)
        self.current = exact
        self._sink.emit(
            FlightRecord(
                "fc.origin_set",
                self._producer,
                now,
                {
                    "latitude": exact.latitude_deg,
                    "longitude": exact.longitude_deg,
                    "altitude_msl": exact.altitude_msl_m,
                },
            )
        )
        return exact


@dataclass(frozen=True)
class OriginConfig:
    """EKF-origin parameters (field names are ROS parameter names of ``fc_bridge``).

    Attributes:
        origin_latitude_deg, origin_longitude_deg, origin_altitude_msl_m: an explicit
            EKF origin (WGS84 degrees, metres MSL). All three or none; None or NaN
            (ROS: ``""`` or ``.nan``) = unset.
        origin_from_first_fix: with no explicit origin, no healthy FC GNSS and no
            origin reported by the FC, the first valid fix becomes the origin.
        origin_request_period_s: how often (at most) the FC is asked for its origin
            while a local output waits for it.
    """

    origin_latitude_deg: float | None = None
    origin_longitude_deg: float | None = None
    origin_altitude_msl_m: float | None = None
    origin_from_first_fix: bool = True
    origin_request_period_s: float = 2.0

    def __post_init__(self) -> None:
        names = ("origin_latitude_deg", "origin_longitude_deg", "origin_altitude_msl_m")
        for name in names:
            value = getattr(self, name)
            if value is not None and math.isnan(value):
                object.__setattr__(self, name, None)  # NaN = unset
        given = [name for name in names if getattr(self, name) is not None]
        if given and len(given) != len(names):
            missing = sorted(set(names) - set(given))
            raise ConfigError(
                f"an explicit origin needs all of {names}; missing {missing}", key=missing[0]
            )
        if given:
            try:
                self.explicit()
            except ValueError as err:
                raise ConfigError(str(err), key=given[0]) from err
        if not self.origin_request_period_s > 0:
            raise ConfigError(
                "origin_request_period_s must be positive", key="origin_request_period_s"
            )

    def explicit(self) -> LocalOrigin | None:
        """The configured origin, or None when unset."""
        lat, lon, alt = (
            self.origin_latitude_deg,
            self.origin_longitude_deg,
            self.origin_altitude_msl_m,
        )
        if lat is None or lon is None or alt is None:
            return None
        if not (math.isfinite(lat) and math.isfinite(lon)):
            raise ValueError("origin latitude/longitude must be finite")
        return LocalOrigin(lat, lon, alt)


def _same(a: LocalOrigin, b: LocalOrigin) -> bool:
    return (
        abs(a.latitude_deg - b.latitude_deg) <= _SAME_DEG
        and abs(a.longitude_deg - b.longitude_deg) <= _SAME_DEG
        and abs(a.altitude_msl_m - b.altitude_msl_m) <= _SAME_ALT_M
    )


class OriginManager:
    """Decides the EKF origin for a local output (the module docstring's rule).

    Thread-safe. Each method returns the origin the encoder must use from now on when
    it changed, else None; the caller hands it to ``FixEncoder.set_origin``.

    Args:
        config: the parameters.
        send: the link's ``send``.
        clock: injected clock (record stamps, request throttling).
        sink: where ``fc.origin_set`` goes.
        needs_origin: the resolved output is local (else the manager does nothing).
        autopilot: ``ardupilot`` also gets SET_HOME_POSITION at the origin (its
            non-GPS navigation guide sets both); PX4 sets home itself at arming.
        target_system, target_component: the autopilot.
        fc_gnss_healthy: whether the FC's own GNSS is usable right now.
    """

    def __init__(
        self,
        config: OriginConfig,
        send: Callable[[Any], object],
        clock: Clock,
        sink: RecordSink,
        *,
        needs_origin: bool,
        autopilot: str,
        target_system: int,
        target_component: int = 0,
        fc_gnss_healthy: Callable[[], bool],
        logger: logging.Logger | None = None,
        producer: str = "fc_bridge",
    ) -> None:
        self._config = config
        self._send = send
        self._core_clock = clock
        self._setter = OriginSetter(send, clock, sink, producer=producer)
        self._needs = needs_origin
        self._home = autopilot == "ardupilot"
        self._target_system = target_system
        self._target_component = target_component
        self._gnss_ok = fc_gnss_healthy
        self._log = logger or logging.getLogger("gps_denied_onboard.fc_bridge.origin")
        self._lock = threading.Lock()
        self._last_request_ns: int | None = None
        self.current: LocalOrigin | None = None
        self.source: str | None = None  # "param" | "first_fix" | "fc"

    def activate(self) -> LocalOrigin | None:
        """At activation: send the explicit origin, or ask the FC for its own."""
        if not self._needs:
            return None
        explicit = self._config.explicit()
        with self._lock:
            if explicit is not None:
                return self._set_locked(explicit, "param")
            self._request_locked(self._core_clock.now_ns())
        return None

    def on_fix(self, fix: PositionFix) -> LocalOrigin | None:
        """A fix arrived: maybe it becomes the origin (rule 3), maybe ask the FC again."""
        if not self._needs:
            return None
        now = self._core_clock.now_ns()
        with self._lock:
            if self.current is not None:
                return None
            if self._gnss_ok():
                last = self._last_request_ns
                period_ns = round(self._config.origin_request_period_s * 1e9)
                if last is None or now - last >= period_ns:
                    self._request_locked(now)
                return None
            if not self._config.origin_from_first_fix:
                return None
            if fix.quality <= 0 or not math.isfinite(fix.altitude_msl_m):
                return None
            origin = LocalOrigin(fix.latitude_deg, fix.longitude_deg, fix.altitude_msl_m)
            return self._set_locked(origin, "first_fix")

    def on_fc_origin(self, msg: Any) -> LocalOrigin | None:
        """GPS_GLOBAL_ORIGIN from the FC (lat/lon degE7, altitude mm MSL)."""
        if not self._needs:
            return None
        try:
            reported = LocalOrigin(msg.latitude / 1e7, msg.longitude / 1e7, msg.altitude / 1000.0)
        except ValueError:
            return None
        with self._lock:
            held, source = self.current, self.source
            if held is not None and _same(held, reported):
                return None
            self.current, self.source = reported, "fc"
        level = logging.INFO if held is None else logging.WARNING
        log_event(
            self._log,
            level,
            "fc.origin_reported",
            latitude=reported.latitude_deg,
            longitude=reported.longitude_deg,
            altitude_msl=reported.altitude_msl_m,
            replaces=source or "none",
        )
        return reported

    def _set_locked(self, origin: LocalOrigin, source: str) -> LocalOrigin:
        exact = self._setter.set_origin(
            origin, target_system=self._target_system, include_home=self._home
        )
        self.current, self.source = exact, source
        log_event(
            self._log,
            logging.INFO,
            "fc.origin_set",
            source=source,
            latitude=exact.latitude_deg,
            longitude=exact.longitude_deg,
            altitude_msl=exact.altitude_msl_m,
        )
        return exact

    def _request_locked(self, now_ns: int) -> None:
        self._last_request_ns = now_ns
        self._send(
            request_message(
                self._target_system,
                self._target_component,
                mavlink2.MAVLINK_MSG_ID_GPS_GLOBAL_ORIGIN,
            )
        )
