"""Relocalisation jumps: which reach the autopilot, and how its EKF is told to reset.

The estimator bumps ``PositionFix.reset_counter`` when it relocalises (its position
jumps instead of flowing). Without a reset signal the autopilot's EKF treats the jump
as a glitch: ArduPilot rejected a real 30 m jump for 10 s, then reset onto it, then
rejected the way back for another 10 s.

:class:`RelocGate` decides per fix, before the fix scheduler sees it:

* **Sure jump** (``quality >= min_quality`` and a horizontal 1-sigma known and
  ``<= max_hacc_m``): accepted at once. The bridge's own *wire* reset counter (what
  ODOMETRY / VISION_POSITION_ESTIMATE carry) bumps by one.
* **Unsure jump**: held back. Nothing of the new counter is sent; the scheduler's
  last pre-jump fix goes on being repeated (GPS_INPUT) until it is ``fix_repeat_max_age_s``
  old, then the stream stops (the autopilot's EKF coasts on what it had). The
  jump is accepted once ``confirm_fixes`` consecutive fixes under the new counter
  agree (each within ``confirm_radius_m`` plus the distance its velocity explains
  of the one before), or at once when a sure fix under it arrives. A new bump
  restarts the count; the old counter coming back withdraws the jump.

How an accepted jump reaches each autopilot:

* **ODOMETRY / VISION_POSITION_ESTIMATE** (PX4 EKF2 external vision; ArduPilot
  EKF3 ExternalNav, ``VISO_TYPE=1``): the wire ``reset_counter`` changes; both
  EKFs reset their position onto the external position at the next sample
  (PX4 ``ev_reset``; ArduPilot ``AP_VisualOdom`` -> ``writeExtNavData``'s reset time).
* **GPS_INPUT on ArduPilot** (:class:`EkfSourceSwitch`, parameter
  ``fix_reloc_source_switch``, on by default): GPS_INPUT has no reset field, so
  the bridge switches EKF3 to source set 2 (``MAV_CMD_SET_EKF_SOURCE_SET`` 2,
  sent before the first fix of the jump), whose horizontal position source is
  none (``EK3_SRC2_POSXY=0``; velocity, height and yaw as set 1), lets
  ``switch_back_after`` GPS_INPUT messages through, and switches back to set 1:
  EKF3 resets its horizontal position onto the GPS when the position source
  changes to GPS, so it lands on the new position at once instead of rejecting it
  as a glitch. Preflight checks the set-2 parameters when the switch is on.
* **GPS_INPUT on PX4 and GLOBAL_POSITION_SENSOR**: no reset signal exists; the
  accepted jump is sent as is (use ODOMETRY, the PX4 default).

Each decision that is not a plain pass is a ``fc.relocalisation`` flight record.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from gps_denied_onboard.fc_bridge.commands import command_long
from gps_denied_onboard.fc_bridge.fix import PositionFix
from gps_denied_onboard.fc_bridge.fix_output import accuracies

__all__ = ["Admission", "EkfSourceSwitch", "RelocGate"]

EARTH_RADIUS_M: Final = 6_371_000.0
NS_PER_S: Final = 1_000_000_000


def horizontal_distance_m(a: PositionFix, b: PositionFix) -> float:
    """Equirectangular distance (metres): exact enough for jumps of a few km.

    The longitude difference is taken the short way round: two fixes either side
    of the antimeridian (179.999 and -179.999) are metres apart, not a world.
    """
    lat = math.radians((a.latitude_deg + b.latitude_deg) / 2)
    dn = math.radians(b.latitude_deg - a.latitude_deg) * EARTH_RADIUS_M
    dlon = (b.longitude_deg - a.longitude_deg + 180.0) % 360.0 - 180.0
    de = math.radians(dlon) * EARTH_RADIUS_M * math.cos(lat)
    return math.hypot(dn, de)


@dataclass(frozen=True)
class Admission:
    """What to do with one fix.

    Attributes:
        fix: the fix to submit (its ``reset_counter`` replaced by the wire counter),
            or None when it is held back.
        reset: this fix starts an accepted relocalisation.
        record: payload of a ``fc.relocalisation`` record, or None.
    """

    fix: PositionFix | None
    reset: bool = False
    record: dict[str, Any] | None = None


class RelocGate:
    """Passes, holds back or accepts relocalisation jumps (see the module docstring)."""

    def __init__(
        self,
        *,
        min_quality: int = 50,
        max_hacc_m: float = 10.0,
        confirm_fixes: int = 3,
        confirm_radius_m: float = 5.0,
        method: str = "reset_counter",
    ) -> None:
        if confirm_fixes < 1:
            raise ValueError("confirm_fixes must be at least 1")
        self.min_quality = min_quality
        self.max_hacc_m = max_hacc_m
        self.confirm_fixes = confirm_fixes
        self.confirm_radius_m = confirm_radius_m
        self.method = method
        self._lock = threading.Lock()
        self._in_counter: int | None = None
        self._wire = 0
        self._candidates: list[PositionFix] = []
        self._last_passed: PositionFix | None = None
        self.accepted = 0
        self.held = 0
        self.withdrawn = 0

    @property
    def wire_counter(self) -> int:
        return self._wire

    def _sure(self, fix: PositionFix) -> tuple[bool, float | None]:
        h = accuracies(fix).horizontal_m
        return fix.quality >= self.min_quality and h is not None and h <= self.max_hacc_m, h

    def _consistent(self, a: PositionFix, b: PositionFix) -> bool:
        dt = max(0.0, (b.capture_ns - a.capture_ns) / NS_PER_S)
        speed = math.hypot(*b.velocity_enu[:2]) if b.velocity_enu is not None else 0.0
        return horizontal_distance_m(a, b) <= self.confirm_radius_m + speed * dt

    def _out(self, fix: PositionFix) -> PositionFix:
        out = dataclasses.replace(fix, reset_counter=self._wire)
        self._last_passed = out
        return out

    def admit(self, fix: PositionFix) -> Admission:
        with self._lock:
            if self._in_counter is None:
                self._in_counter = fix.reset_counter
                self._wire = fix.reset_counter
            if fix.reset_counter == self._in_counter:
                if self._candidates:
                    self._candidates.clear()
                    self.withdrawn += 1
                    out = self._out(fix)
                    return Admission(out, record=self._record(fix, False, "withdrawn", None))
                return Admission(self._out(fix))
            sure, h_acc = self._sure(fix)
            if not sure:
                last = self._candidates[-1] if self._candidates else None
                if (
                    last is not None
                    and last.reset_counter == fix.reset_counter
                    and self._consistent(last, fix)
                ):
                    self._candidates.append(fix)
                else:
                    self._candidates = [fix]
                if len(self._candidates) < self.confirm_fixes:
                    self.held += 1
                    first = len(self._candidates) == 1
                    record = self._record(fix, False, "unsure", h_acc) if first else None
                    return Admission(None, record=record)
            reason = "sure" if sure else "confirmed"
            jump = (
                horizontal_distance_m(self._last_passed, fix)
                if self._last_passed is not None
                else None
            )
            self._in_counter = fix.reset_counter
            self._wire = (self._wire + 1) % 256
            self._candidates.clear()
            self.accepted += 1
            record = self._record(fix, True, reason, h_acc, jump)
            return Admission(self._out(fix), reset=True, record=record)

    def _record(
        self,
        fix: PositionFix,
        accepted: bool,
        reason: str,
        h_acc: float | None,
        jump: float | None = None,
    ) -> dict[str, Any]:
        if jump is None and self._last_passed is not None:
            jump = horizontal_distance_m(self._last_passed, fix)
        payload: dict[str, Any] = {
            "accepted": accepted,
            "reset_counter": fix.reset_counter,
            "wire_reset_counter": self._wire,
            "quality": fix.quality,
            "reason": reason,
            "method": self.method,
        }
        if jump is not None:
            payload["jump_m"] = round(jump, 2)
        if h_acc is not None:
            payload["h_acc_m"] = round(h_acc, 2)
        return payload


class EkfSourceSwitch:
    """ArduPilot GPS_INPUT: EKF3 source set 2 (no horizontal position) and back to 1.

    ``begin()`` sends ``MAV_CMD_SET_EKF_SOURCE_SET`` 2; the wrapped send function
    (``wrap(link.send)``, given to the fix scheduler) counts GPS_INPUT messages and
    sends the command with 1 after ``switch_back_after`` of them.
    """

    def __init__(
        self,
        send: Callable[[Any], object],
        target_system: int,
        target_component: int,
        *,
        switch_back_after: int = 2,
    ) -> None:
        self._send = send
        self._target = (target_system, target_component)
        self._after = max(1, switch_back_after)
        self._lock = threading.Lock()
        self._pending: int | None = None
        self._since_usec = 0
        self.switches = 0

    def _command(self, source_set: int) -> Any:
        return command_long(
            self._target[0], self._target[1], mavlink2.MAV_CMD_SET_EKF_SOURCE_SET, source_set
        )

    def begin(self, since_usec: int) -> None:
        """Switch to source set 2; back to 1 after ``switch_back_after`` GPS_INPUT
        messages captured at or after ``since_usec`` (the jump's first fix)."""
        with self._lock:
            self._pending = self._after
            self._since_usec = since_usec
            self.switches += 1
            self._send(self._command(2))

    def wrap(self, send: Callable[[Any], object]) -> Callable[[Any], object]:
        def send_and_count(msg: Any) -> object:
            result = send(msg)
            if msg.get_type() == "GPS_INPUT":
                with self._lock:
                    if self._pending is not None and msg.time_usec >= self._since_usec:
                        self._pending -= 1
                        if self._pending <= 0:
                            self._pending = None
                            self._send(self._command(1))
            return result

        return send_and_count
