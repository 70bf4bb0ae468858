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
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.fc_bridge.geodesy import LocalOrigin
from gps_denied_onboard.records import FlightRecord, RecordSink


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
