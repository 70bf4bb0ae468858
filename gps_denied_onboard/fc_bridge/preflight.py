"""Preflight: read the FC parameters the chosen output needs and report each wrong one.

Reading parameters honestly
---------------------------
``PARAM_REQUEST_READ`` by name is the fast path, but neither ArduPilot
(``GCS_MAVLINK::param_io_timer`` returns when ``AP_Param::find`` fails) nor PX4
(``MavlinkParametersManager``, by-name read of an unknown name) answers a read
of a parameter the firmware does not have: silence means "missing" *or* "lost
on the link". So :class:`ParamReader` does:

1. by-name reads, re-sent a few times for the names still unanswered;
2. a ``PARAM_ERROR`` (MAV_PARAM_ERROR_DOES_NOT_EXIST) from newer firmware is
   taken as proof of absence at once;
3. names still unanswered are settled against the **full parameter list**
   (``PARAM_REQUEST_LIST``; every index ``0..param_count-1`` must arrive, gaps
   are re-read by index). A name absent from a complete list does not exist on
   this firmware and is reported as *missing*; if the list cannot be completed
   in the budget the name is reported as *unanswered* (a link problem), never
   as missing.

Which names are needed comes from :func:`requirements_for`. ``GPS1_TYPE``
(ArduPilot 4.6+) and ``GPS_TYPE`` (older) are alternatives: whichever the
firmware has is checked, and only if it has neither is that reported.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.fc_bridge.link import Autopilot, FcLink, mavlink2
from gps_denied_onboard.fc_bridge.link_inbound import PRODUCER
from gps_denied_onboard.records import FlightRecord, RecordSink

MISSING: Final = "missing"
UNANSWERED: Final = "unanswered"
WRONG: Final = "wrong"


@dataclass(frozen=True)
class ParamRequirement:
    """One parameter (or a set of alternative names) and the values it may take.

    Attributes:
        names: candidate names, newest firmware first; the first one present is checked.
        allowed: accepted values (integers), or None when ``bits`` decides.
        bits: bits that must all be set (bitmask parameters such as EKF2_EV_CTRL).
        why: what the value means, for the report.
    """

    names: tuple[str, ...]
    allowed: frozenset[int] | None = None
    bits: int = 0
    why: str = ""

    def expected(self) -> str:
        if self.allowed is not None:
            vals = sorted(self.allowed)
            return str(vals[0]) if len(vals) == 1 else "one of " + ", ".join(map(str, vals))
        return f"bits 0x{self.bits:x} set"

    def accepts(self, value: float) -> bool:
        iv = round(value)
        if self.allowed is not None and iv not in self.allowed:
            return False
        return (iv & self.bits) == self.bits


def _req(
    names: str, allowed: Iterable[int] | None = None, bits: int = 0, why: str = ""
) -> ParamRequirement:
    return ParamRequirement(
        tuple(names.split()), None if allowed is None else frozenset(allowed), bits, why
    )


_ARDUPILOT: Final[dict[str, tuple[ParamRequirement, ...]]] = {
    "gps_input": (
        _req("GPS1_TYPE GPS_TYPE", [14], why="MAVLink GPS (GPS_INPUT)"),
        _req("AHRS_EKF_TYPE", [3], why="EKF3"),
        _req("EK3_SRC1_POSXY", [3], why="horizontal position from GPS"),
        _req("EK3_SRC1_VELXY", [3], why="horizontal velocity from GPS"),
        _req("EK3_SRC1_POSZ", [1, 3], why="height from baro or GPS"),
        _req("EK3_SRC1_YAW", [1, 2, 3], why="yaw from compass or GPS"),
    ),
    "vision": (
        _req("VISO_TYPE", [1], why="visual odometry over MAVLink"),
        _req("AHRS_EKF_TYPE", [3], why="EKF3"),
        _req("EK3_SRC1_POSXY", [6], why="horizontal position from ExternalNav"),
        _req("EK3_SRC1_VELXY", [0, 6], why="velocity from ExternalNav or none"),
        _req("EK3_SRC1_POSZ", [1, 6], why="height from baro or ExternalNav"),
        _req("EK3_SRC1_YAW", [1, 6], why="yaw from compass or ExternalNav"),
    ),
}
_PX4: Final[dict[str, tuple[ParamRequirement, ...]]] = {
    "vision": (
        _req("EKF2_EV_CTRL", bits=0b0001, why="bit 0: fuse external-vision horizontal position"),
        _req("EKF2_HGT_REF", [0, 3], why="height reference baro (0) or vision (3)"),
    ),
    "global_position_sensor": (
        _req("EKF2_AGP_CTRL", bits=0b0001, why="bit 0: fuse auxiliary global position"),
    ),
    "gps_input": (_req("EKF2_GPS_CTRL", bits=0b0001, why="bit 0: fuse GNSS lat/lon"),),
}


def requirements_for(
    autopilot: Autopilot, output: str, *, velocity: bool = True, source_switch: bool = False
) -> tuple[ParamRequirement, ...]:
    """The parameters ``output`` needs on ``autopilot`` (empty when nothing is known).

    ``velocity``: whether fixes carry the estimator's velocity to the EKF (parameter
    ``fix_velocity``). ArduPilot's GPS_INPUT source must match it: ``EK3_SRC1_VELXY=3``
    with velocity, ``0`` without (EKF3 would otherwise fuse the GPS driver's stale
    velocity; see ``fix_output``). ``source_switch``: relocalisations reach ArduPilot's
    GPS_INPUT through an EKF3 source-set switch (``reloc.EkfSourceSwitch``), so source
    set 2 must have no horizontal position source and otherwise match set 1.
    """
    kind = "vision" if output in ("odometry", "vision_position_estimate") else output
    table = _ARDUPILOT if autopilot is Autopilot.ARDUPILOT else _PX4
    if autopilot is Autopilot.UNKNOWN:
        return ()
    reqs = table.get(kind, ())
    if autopilot is Autopilot.ARDUPILOT and kind == "gps_input":
        vel = [3] if velocity else [0]
        if not velocity:
            reqs = tuple(
                _req("EK3_SRC1_VELXY", vel, why="no horizontal velocity source (fixes carry none)")
                if r.names == ("EK3_SRC1_VELXY",)
                else r
                for r in reqs
            )
        if source_switch:
            reqs = (
                *reqs,
                _req("EK3_SRC2_POSXY", [0], why="relocalisation: source set 2 without position"),
                _req("EK3_SRC2_VELXY", vel, why="relocalisation: velocity as in source set 1"),
                _req("EK3_SRC2_POSZ", [1, 3], why="relocalisation: height as in source set 1"),
                _req("EK3_SRC2_YAW", [1, 2, 3], why="relocalisation: yaw as in source set 1"),
            )
    return reqs


@dataclass(frozen=True)
class DelayParam:
    """The autopilot parameter that says how old a fix is when it arrives.

    Attributes:
        names: alternatives, newest firmware first.
        zero_means_ms: what the firmware assumes when it is 0 (None: 0 is 0).
        max_ms: the parameter's upper limit.
        stamped_3d: a 3D fix is timed by the time it carries, not by its arrival
            (see :data:`_DELAY`).
    """

    names: tuple[str, ...]
    zero_means_ms: float | None
    max_ms: float
    stamped_3d: bool = False


#: ArduPilot's EKF times a GPS sample at the driver's message time minus GPSx_DELAY_MS
#: (0 = the MAV driver's 200 ms). For a GPS_INPUT of fix type 3 or more with a GPS week
#: (ours with velocity), AP_GPS_MAV takes that time from the fix's own week and
#: milliseconds through its jitter correction: the capture time plus the least delay
#: it has seen between our stamp and its clock. So the delay to set is the least
#: capture-to-send age, not the typical one (checked against ArduCopter SITL, master
#: 2025-07: its sample time moved with our time_week_ms, repeats kept it). A 2D fix is
#: timed by its arrival: there the typical (median) age. PX4 by arrival minus
#: EKF2_GPS_DELAY (documented, not checked here). Vision outputs carry their capture time.
_DELAY: Final[dict[tuple[Autopilot, str], DelayParam]] = {
    (Autopilot.ARDUPILOT, "gps_input"): DelayParam(
        ("GPS1_DELAY_MS", "GPS_DELAY_MS"), 200.0, 250.0, stamped_3d=True
    ),
    (Autopilot.PX4, "gps_input"): DelayParam(("EKF2_GPS_DELAY",), None, 300.0),
}
#: a configured delay this far from the measured capture-to-send age is reported
DELAY_TOLERANCE_MS: Final = 30.0


def delay_param_for(autopilot: Autopilot, output: str) -> DelayParam | None:
    return _DELAY.get((autopilot, output))


def delay_advice(
    autopilot: Autopilot,
    output: str,
    values: dict[str, float],
    measured_ms: float,
    tolerance_ms: float = DELAY_TOLERANCE_MS,
    *,
    least_ms: float = math.nan,
    three_d: bool = False,
) -> str | None:
    """A line naming the delay value to set when the configured one is far off, else None.

    ``measured_ms``: the median capture-to-send age of new fixes (the bridge's
    diagnostics ``fix.new_fix_age_median_ms``); ``least_ms``: the least of them
    (``fix.new_fix_age_min_ms``); the link adds well under a millisecond.
    ``three_d``: the fixes go out as 3D ones (with velocity), which ArduPilot times by
    their own GPS time: then the least age is the one that counts (:data:`_DELAY`).
    """
    param = delay_param_for(autopilot, output)
    if param is None:
        return None
    by_stamp = param.stamped_3d and three_d
    if by_stamp:
        measured_ms = least_ms
    if not measured_ms >= 0.0:
        return None
    name = next((n for n in param.names if n in values), None)
    if name is None:
        return None
    value = values[name]
    effective = param.zero_means_ms if value == 0 and param.zero_means_ms is not None else value
    if abs(effective - measured_ms) <= tolerance_ms:
        return None
    advised = min(param.max_ms, max(1.0, 10.0 * round(measured_ms / 10.0)))
    meaning = f" (0 = {effective:g} ms)" if effective != value else ""
    least = "at the least " if by_stamp else ""
    return (
        f"{name}={value:g}{meaning} but fixes reach the FC {least}{measured_ms:.0f} ms "
        f"after capture: set {name}={advised:g}"
    )


@dataclass(frozen=True)
class ParamProblem:
    """One finding. ``kind`` is ``wrong``, ``missing`` or ``unanswered``."""

    name: str
    kind: str
    expected: str
    actual: float | None = None
    why: str = ""

    def line(self) -> str:
        if self.kind == WRONG:
            return f"{self.name}={self.actual:g}, expected {self.expected} ({self.why})"
        if self.kind == MISSING:
            return f"{self.name} does not exist on this firmware (expected {self.expected})"
        return f"{self.name} was not answered by the FC in time (expected {self.expected})"


@dataclass(frozen=True)
class PreflightReport:
    autopilot: Autopilot
    output: str
    problems: tuple[ParamProblem, ...]
    values: dict[str, float] = field(default_factory=dict)
    missing: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        return [p.line() for p in self.problems]


@dataclass
class ParamReadResult:
    values: dict[str, float]
    missing: set[str]
    unanswered: set[str]
    list_complete: bool
    param_count: int | None


class ParamReader:
    """Reads named parameters over the link (see the module docstring for the method)."""

    def __init__(
        self,
        link: FcLink,
        clock: Clock,
        *,
        read_attempts: int = 3,
        retry_interval_s: float = 0.4,
    ) -> None:
        self._link = link
        self._clock = clock
        self._attempts = read_attempts
        self._retry_s = retry_interval_s
        self._cond = threading.Condition()
        self._values: dict[str, float] = {}
        self._by_index: dict[int, str] = {}
        self._count: int | None = None
        self._errors: set[str] = set()

    def _on_value(self, msg: Any, recv_ns: int) -> None:
        name = str(msg.param_id)
        with self._cond:
            self._values[name] = float(msg.param_value)
            # param_index is uint16 on the wire: firmware's -1 (by-name answer) is 65535.
            if 0 <= msg.param_index < 0xFFFF and name != "_HASH_CHECK":
                self._by_index[int(msg.param_index)] = name
                self._count = int(msg.param_count)
            self._cond.notify_all()

    def _on_error(self, msg: Any, recv_ns: int) -> None:
        if msg.error == mavlink2.MAV_PARAM_ERROR_DOES_NOT_EXIST:
            with self._cond:
                self._errors.add(str(msg.param_id))
                self._cond.notify_all()

    def _target(self) -> tuple[int, int]:
        ap = self._link.autopilot
        if ap is None:
            return (self._link.config.target_system or 1, self._link.config.target_component or 1)
        return ap.sysid, ap.compid

    def _wait(self, done: Any, budget_s: float) -> None:
        """Wait up to ``budget_s`` (the link's clock; at most 2x as many slices) for ``done()``."""
        deadline = self._clock.now_ns() + int(budget_s * 1e9)
        slice_s = 0.05
        for _ in range(int(budget_s / slice_s * 2) + 1):
            with self._cond:
                if done():
                    return
                self._cond.wait(slice_s)
            if self._clock.now_ns() >= deadline:
                return

    def read(self, groups: Sequence[Sequence[str]], timeout_s: float) -> ParamReadResult:
        """Read parameters; each group is a set of alternative names (one present is enough)."""
        sysid, compid = self._target()
        self._link.add_handler("PARAM_VALUE", self._on_value)
        self._link.add_handler("PARAM_ERROR", self._on_error)
        try:
            wanted = {n for g in groups for n in g}

            def unresolved() -> set[str]:
                out: set[str] = set()
                for g in groups:
                    if not any(n in self._values for n in g):
                        out.update(n for n in g if n not in self._errors)
                return out

            by_name_budget = min(timeout_s / 2, self._attempts * self._retry_s)
            per_try = by_name_budget / self._attempts
            for _ in range(self._attempts):
                todo = unresolved()
                if not todo:
                    break
                for name in sorted(todo):
                    self._link.send(
                        self._link.mav.param_request_read_encode(sysid, compid, name.encode(), -1)
                    )
                self._wait(lambda: not unresolved(), per_try)
            list_complete = False
            if unresolved():
                list_complete = self._read_full_list(sysid, compid, timeout_s - by_name_budget)
            with self._cond:
                values = {n: self._values[n] for n in wanted if n in self._values}
                errors = wanted & self._errors
                still = unresolved()
                count = self._count
            missing = set(errors) | (still if list_complete else set())
            return ParamReadResult(
                values=values,
                missing=missing,
                unanswered=set() if list_complete else still,
                list_complete=list_complete,
                param_count=count,
            )
        finally:
            self._link.remove_handler("PARAM_VALUE", self._on_value)
            self._link.remove_handler("PARAM_ERROR", self._on_error)

    def _list_done(self) -> bool:
        return self._count is not None and len(self._by_index) >= self._count

    def _read_full_list(self, sysid: int, compid: int, budget_s: float) -> bool:
        self._link.send(self._link.mav.param_request_list_encode(sysid, compid))
        rounds = 4
        for _ in range(rounds):
            self._wait(self._list_done, budget_s / rounds)
            with self._cond:
                if self._list_done():
                    return True
                gaps = (
                    []
                    if self._count is None
                    else [i for i in range(self._count) if i not in self._by_index]
                )
            if self._count is None:
                self._link.send(self._link.mav.param_request_list_encode(sysid, compid))
            for index in gaps[:64]:
                self._link.send(self._link.mav.param_request_read_encode(sysid, compid, b"", index))
        with self._cond:
            return self._list_done()


def evaluate(
    autopilot: Autopilot,
    output: str,
    requirements: Sequence[ParamRequirement],
    result: ParamReadResult,
) -> PreflightReport:
    """The pure part: compare what was read with what ``output`` needs."""
    problems: list[ParamProblem] = []
    for req in requirements:
        present = [n for n in req.names if n in result.values]
        if present:
            name = present[0]
            value = result.values[name]
            if not req.accepts(value):
                problems.append(ParamProblem(name, WRONG, req.expected(), value, req.why))
            continue
        label = " / ".join(req.names)
        if any(n in result.unanswered for n in req.names):
            problems.append(ParamProblem(label, UNANSWERED, req.expected(), None, req.why))
        else:
            problems.append(ParamProblem(label, MISSING, req.expected(), None, req.why))
    return PreflightReport(
        autopilot, output, tuple(problems), dict(result.values), frozenset(result.missing)
    )


def run_preflight(
    link: FcLink,
    output: str,
    clock: Clock,
    sink: RecordSink,
    *,
    timeout_s: float = 5.0,
    velocity: bool = True,
    source_switch: bool = False,
) -> PreflightReport:
    """Read and check the parameters ``output`` needs; write an ``fc.preflight`` record."""
    ap = link.autopilot
    autopilot = Autopilot.UNKNOWN if ap is None else ap.autopilot
    reqs = requirements_for(autopilot, output, velocity=velocity, source_switch=source_switch)
    groups = [r.names for r in reqs]
    delay = delay_param_for(autopilot, output)
    if delay is not None:
        groups.append(delay.names)  # read for the lag check, not a requirement
    names = sorted({n for g in groups for n in g})
    if names:
        result = ParamReader(link, clock).read(groups, timeout_s)
    else:
        result = ParamReadResult({}, set(), set(), False, None)
    report = evaluate(autopilot, output, reqs, result)
    sink.emit(
        FlightRecord(
            "fc.preflight",
            PRODUCER,
            clock.now_ns(),
            {
                "ok": report.ok,
                "problems": report.lines(),
                "output": output,
                "autopilot": autopilot.value,
                "checked": names,
            },
        )
    )
    return report
