"""Can the FC's GNSS still be trusted? Fix loss, satellite drop, accuracy, EKF rejection.

:class:`GnssHealthMonitor` folds GPS_RAW_INT and the EKF status into one
verdict (``healthy`` + ``reason``, the vocabulary of ``FcStatus.gnss_health_reason``)
and writes an ``fc.gnss_health`` record on every change. :func:`assess` is the
pure rule; the monitor only adds time (injected clock) and transitions.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Final

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.fc_bridge.own_fixes import SentPositions
from gps_denied_onboard.fc_bridge.telemetry import (
    GPS_FIX_TYPE_3D,
    UERE_M,
    EkfStatus,
    GnssFix,
)
from gps_denied_onboard.records import FlightRecord, RecordSink

REASON_OK: Final = "ok"
REASON_NO_DATA: Final = "no_data"
REASON_FIX_LOST: Final = "fix_lost"
REASON_SATELLITES_LOW: Final = "satellites_low"
REASON_ACCURACY: Final = "accuracy"
REASON_EKF_REJECTED: Final = "ekf_rejected"
#: the FC's GNSS report is a fix we sent it (GPS_INPUT echoed: :mod:`.own_fixes`)
REASON_OWN_FIXES: Final = "own_fixes"


@dataclass(frozen=True)
class GnssHealth:
    healthy: bool
    reason: str


def horizontal_accuracy_m(fix: GnssFix) -> float:
    """h_acc when the receiver gives it, else HDOP x UERE; NaN when neither."""
    if not math.isnan(fix.h_acc_m):
        return fix.h_acc_m
    if not math.isnan(fix.hdop):
        return fix.hdop * UERE_M
    return math.nan


def assess(
    fix: GnssFix | None,
    ekf: EkfStatus | None,
    *,
    fix_age_s: float,
    min_satellites: int,
    max_hacc_m: float,
    timeout_s: float,
    echo: bool = False,
) -> GnssHealth:
    """The pure rule, first failing check wins (most fundamental first).

    ``echo``: the fix is one of ours reported back (:mod:`.own_fixes`): whatever it
    claims, it is no independent GNSS.
    """
    if fix is None or fix_age_s > timeout_s:
        return GnssHealth(False, REASON_NO_DATA)
    if echo:
        return GnssHealth(False, REASON_OWN_FIXES)
    if fix.fix_type < GPS_FIX_TYPE_3D:
        return GnssHealth(False, REASON_FIX_LOST)
    if 0 <= fix.satellites < min_satellites:
        return GnssHealth(False, REASON_SATELLITES_LOW)
    hacc = horizontal_accuracy_m(fix)
    if math.isnan(hacc) or hacc > max_hacc_m:
        return GnssHealth(False, REASON_ACCURACY)
    if ekf is not None and ekf.gnss_rejected:
        return GnssHealth(False, REASON_EKF_REJECTED)
    return GnssHealth(True, REASON_OK)


class GnssHealthMonitor:
    """Thread-safe; ``on_fix``/``on_ekf`` from the link's reader, ``current`` from anywhere."""

    def __init__(
        self,
        clock: Clock,
        sink: RecordSink,
        *,
        min_satellites: int = 6,
        max_hacc_m: float = 10.0,
        timeout_s: float = 2.0,
        producer: str = "fc_bridge",
        own_fixes: SentPositions | None = None,
    ) -> None:
        self._clock = clock
        self._sink = sink
        self._min_sats = min_satellites
        self._max_hacc = max_hacc_m
        self._timeout_s = timeout_s
        self._producer = producer
        self._own = own_fixes
        self._echo = False
        self._lock = threading.Lock()
        self._fix: GnssFix | None = None
        self._fix_ns: int | None = None
        self._ekf: EkfStatus | None = None
        self._health: GnssHealth | None = None

    def on_fix(self, fix: GnssFix, recv_ns: int) -> GnssHealth:
        echo = self._own is not None and self._own.is_echo(fix.latitude, fix.longitude)
        with self._lock:
            self._fix, self._fix_ns, self._echo = fix, recv_ns, echo
        return self.current()

    def on_ekf(self, ekf: EkfStatus) -> GnssHealth:
        with self._lock:
            self._ekf = ekf
        return self.current()

    def latest(self) -> GnssHealth | None:
        """The last verdict, without re-evaluating (safe from any thread)."""
        with self._lock:
            return self._health

    def current(self) -> GnssHealth:
        """Re-evaluate now (ages the last fix) and record a transition if any."""
        now = self._clock.now_ns()
        with self._lock:
            age = math.inf if self._fix_ns is None else (now - self._fix_ns) / 1e9
            health = assess(
                self._fix,
                self._ekf,
                fix_age_s=age,
                min_satellites=self._min_sats,
                max_hacc_m=self._max_hacc,
                timeout_s=self._timeout_s,
                echo=self._echo,
            )
            previous, self._health = self._health, health
            fix = self._fix
        if previous != health:
            payload: dict[str, object] = {"healthy": health.healthy, "reason": health.reason}
            if previous is not None:
                payload["previous"] = previous.reason
            if fix is not None:
                payload.update(fix_type=fix.fix_type, satellites=fix.satellites)
                if not math.isnan(fix.hdop):
                    payload["hdop"] = fix.hdop
                if not math.isnan(fix.h_acc_m):
                    payload["h_acc_m"] = fix.h_acc_m
            self._sink.emit(FlightRecord("fc.gnss_health", self._producer, now, payload))
        return health
