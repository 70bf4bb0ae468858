"""Our own fixes, as the FC reports them back: not an independent GNSS.

With ``GPS_INPUT`` the autopilot's MAVLink GPS driver *is* a GPS: ArduPilot with
``GPS1_TYPE=14`` reports the fixes we send as its ``GPS_RAW_INT`` (the same
latitude and longitude to 1e-7 degree, our satellite count and HDOP). Taken at
face value that echo says "GNSS healthy" for as long as we navigate, and the
estimator would be handed its own output as the FC's independent GNSS prior
(seen against ArduCopter SITL: healthy for the whole run while SITL itself
reported its GPS unhealthy, ``fix_lost`` only 3 s after we stopped sending).

:class:`SentPositions` keeps the positions of the last ``GPS_INPUT`` messages we
sent; a GNSS report at exactly one of them is an echo. A real receiver landing on
the same 1e-7 degree (1 cm) grid point as one of our recent fixes is not a
worry worth more than the verdict it costs: one report.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

#: GPS_INPUT messages remembered: 25 s at the 10 Hz grid
KEEP: int = 256


class SentPositions:
    """Thread-safe: ``record`` from the fix sender, ``is_echo`` from the link's reader."""

    def __init__(self, keep: int = KEEP) -> None:
        self._lock = threading.Lock()
        self._sent: deque[tuple[int, int]] = deque(maxlen=keep)

    def record(self, lat_e7: int, lon_e7: int) -> None:
        with self._lock:
            self._sent.append((int(lat_e7), int(lon_e7)))

    def is_echo(self, latitude_deg: float, longitude_deg: float) -> bool:
        """Whether a reported position is one we sent (to the 1e-7 degree)."""
        key = (round(latitude_deg * 1e7), round(longitude_deg * 1e7))
        with self._lock:
            return key in self._sent

    def recording(self, send: Callable[[Any], object]) -> Callable[[Any], object]:
        """``send``, noting the position of every ``GPS_INPUT`` that goes out through it."""

        def send_and_record(msg: Any) -> object:
            out = send(msg)
            if msg.get_type() == "GPS_INPUT":
                self.record(msg.lat, msg.lon)
            return out

        return send_and_record
