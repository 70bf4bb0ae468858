"""Rate control for position fixes: a steady stream, latest fix wins, stale fixes die.

:class:`FixScheduler` decides *what* to send at a given instant; :class:`FixSenderThread`
decides *when* to ask, on its own thread, from absolute deadlines (never
``sleep(period)``, which drifts by the work done each cycle).

Policy (per output kind, from :class:`~gps_denied_onboard.fc_bridge.fix_output.OutputKind`):

* **Latest fix wins.** ``submit`` replaces the pending fix; a fix that was replaced
  before it was sent is counted as ``superseded``. A fix whose capture stamp is older
  than the one already held is ``out_of_order`` and ignored.
* **Stale fixes are dropped, not sent late.** At every tick a fix not yet sent whose
  capture stamp is more than ``max_fix_age_s`` old is discarded (``dropped_stale``)
  and nothing is sent for it; one already sent is repeated (below) until it is
  ``repeat_max_age_s`` old (at least ``max_fix_age_s``), then the stream goes silent.
  Why two ages: a repeat carries its fix's GPS time, which ArduPilot's MAV GPS takes
  as the sample time, so EKF3 skips it as no new sample (seen against ArduCopter
  SITL); it only keeps the driver's message rate, and with it the GPS "healthy". With
  a 2 Hz estimator and fixes 0.1-0.4 s old on arrival, repeats that stopped at 0.5 s
  left gaps up to 500 ms and SITL's GPS unhealthy for a whole 40 s run; repeating
  to 1.0 s kept every gap under 152 ms and the GPS healthy.
* **Floor rate.** Ticks come every ``1/rate_hz`` on a fixed deadline grid. When no new
  fix arrived since the last send, GPS_INPUT re-sends the latest non-stale fix
  unchanged (same capture time, same GPS time: a repeat, counted as ``repeats``) so
  ArduPilot's MAV GPS never sees an average gap above ~215 ms while the estimator is
  alive; the vision outputs never repeat (each sample would be fused again).
* **Prompt new fixes** (``send_on_arrival``, default on). A new fix is sent as soon as
  it arrives when at least the minimum gap has passed since the last message went out
  (a new fix or a repeat), otherwise at that earliest instant; the deadline grid is
  then re-phased to that send. Rationale: ArduPilot times GPS samples by *arrival*
  (minus ``GPSx_DELAY_MS``), so waiting for a fixed tick would add a random 0..period
  delay to every fix, worse than arrival jitter; the grid still bounds the gap from
  above and the new-fix rate from above (1/min gap). With ``send_inline`` (default
  on) that prompt send happens on the thread that calls ``submit`` (the ROS
  callback), saving a thread hand-off; the link's ``send`` is thread-safe and
  non-blocking. With ``send_on_arrival`` off
  the scheduler is a pure fixed-rate sampler.
* **Every gap between floor and ceiling.** The minimum gap after a new fix is
  ``min_gap_fraction * period``; for GPS_INPUT never less than, and after a repeat
  exactly, :data:`GPS_INPUT_MIN_GAP_MS` (EKF3 drops a GPS sample that arrives within
  50 ms of the previous one: ``sensorIntervalMin_ms``; a new fix sent 10 ms after a
  repeat used to go out at once and be dropped there); the grid bounds every gap from
  above by one repeat gap, and GPS_INPUT's rate and repeat gap are limited to keep it
  under :data:`GPS_INPUT_MAX_GAP_MS` (ArduPilot's MAV GPS health limit). So every
  GPS_INPUT gap on the wire lies between the two while fixes keep coming
  (``fix.gap_min_ms`` / ``fix.gap_max_ms``).
* **Repeats keep out of the way** (``send_on_arrival`` on). A repeat goes out
  ``repeat_gap_fraction * period`` after the last message (default 1.5; for GPS_INPUT
  never later than :data:`GPS_INPUT_MAX_GAP_MS` minus a 35 ms margin), not one period
  after it: an estimator running a little slower than the output rate would otherwise
  see most new fixes arrive just after a repeat and wait out the floor (up to 60 ms
  of extra lag, varying from fix to fix).

Times: the scheduler reads the injected clock (the node's ROS clock), the same one
that stamped the fixes, so staleness is measured in one time base; a clock jump
backwards re-anchors the grid instead of stalling it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.errors import ConfigError
from gps_denied_onboard.fc_bridge.fix import PositionFix
from gps_denied_onboard.fc_bridge.fix_output import (
    FixEncoder,
    GpsInputSettings,
    OutputKind,
    resolve_output_kind,
)
from gps_denied_onboard.log import log_event

NS_PER_S: Final = 1_000_000_000
#: GPS_INPUT gaps stay above this (EKF3 ignores samples < 50 ms apart; 10 ms of margin).
GPS_INPUT_MIN_GAP_MS: Final = 60.0
#: ... and below this (ArduPilot flags a MAV GPS unhealthy beyond ~215 ms).
GPS_INPUT_MAX_GAP_MS: Final = 215.0
#: repeats come at least this much before that limit (sender thread and link jitter)
GPS_INPUT_MAX_GAP_MARGIN_MS: Final = 35.0
OUTPUT_CHOICES: Final = ("auto", *(k.value for k in OutputKind))


@dataclass(frozen=True)
class FixOutputConfig:
    """Parameters of the fix output (field names are ROS parameter names of ``fc_bridge``).

    ``output``, ``rate_hz`` and ``max_fix_age_s`` are the same names as in the link
    half's ``FcBridgeConfig``; the node builds both from one parameter set.
    """

    output: str = "auto"
    rate_hz: float | None = None  # None = per output kind (GPS_INPUT 10 Hz, vision 30 Hz)
    max_fix_age_s: float = 0.5
    fix_repeat_max_age_s: float = 1.0  # a sent fix is repeated until this old
    fix_resend_latest: str = "auto"  # auto (GPS_INPUT yes, vision no) | always | never
    fix_send_on_arrival: bool = True
    fix_min_gap_fraction: float = 0.75
    fix_repeat_gap_fraction: float = 1.5
    fix_send_inline: bool = True
    fix_gps_id: int = 0
    fix_max_hacc_3d_m: float = 20.0
    fix_max_vacc_3d_m: float = 40.0
    fix_max_hacc_2d_m: float = 50.0
    fix_satellites_3d: int = 10
    fix_satellites_2d: int = 6
    fix_dop_reference_m: float = 5.0
    fix_send_yaw: bool = True
    fix_velocity: bool = True
    fix_reloc_min_quality: int = 50
    fix_reloc_max_hacc_m: float = 10.0
    fix_reloc_confirm_fixes: int = 3
    fix_reloc_confirm_radius_m: float = 5.0
    fix_reloc_source_switch: bool = True

    def __post_init__(self) -> None:
        if self.output not in OUTPUT_CHOICES:
            raise ConfigError(f"output must be one of {OUTPUT_CHOICES}", key="output")
        if self.rate_hz is not None and not (1.0 <= self.rate_hz <= 100.0):
            raise ConfigError("rate_hz must be within 1..100 Hz", key="rate_hz")
        if not (0.01 <= self.max_fix_age_s <= 10.0):
            raise ConfigError("max_fix_age_s must be within 0.01..10 s", key="max_fix_age_s")
        if not (0.01 <= self.fix_repeat_max_age_s <= 10.0):
            raise ConfigError(
                "fix_repeat_max_age_s must be within 0.01..10 s", key="fix_repeat_max_age_s"
            )
        if self.fix_resend_latest not in ("auto", "always", "never"):
            raise ConfigError("fix_resend_latest: auto|always|never", key="fix_resend_latest")
        if not (1.0 <= self.fix_repeat_gap_fraction <= 2.0):
            raise ConfigError(
                "fix_repeat_gap_fraction must be in 1..2", key="fix_repeat_gap_fraction"
            )
        if not 0 <= self.fix_reloc_min_quality <= 100:
            raise ConfigError("fix_reloc_min_quality is 0..100", key="fix_reloc_min_quality")
        if self.fix_reloc_confirm_fixes < 1:
            raise ConfigError(
                "fix_reloc_confirm_fixes must be at least 1", key="fix_reloc_confirm_fixes"
            )
        for name in ("fix_reloc_max_hacc_m", "fix_reloc_confirm_radius_m"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive", key=name)
        if not (0.0 <= self.fix_min_gap_fraction <= 1.0):
            raise ConfigError("fix_min_gap_fraction must be in 0..1", key="fix_min_gap_fraction")
        try:
            self.gps_input_settings()
        except ValueError as err:
            raise ConfigError(str(err), key="fix_max_hacc_3d_m") from err

    def resolve_output(self, autopilot: str) -> OutputKind:
        """``auto`` -> ArduPilot: GPS_INPUT, PX4: ODOMETRY; else the named kind."""
        return resolve_output_kind(self.output, autopilot)

    def rate_for(self, kind: OutputKind) -> float:
        return float(self.rate_hz) if self.rate_hz is not None else kind.default_rate_hz

    def resend_for(self, kind: OutputKind) -> bool:
        if self.fix_resend_latest == "auto":
            return kind.default_resend
        return self.fix_resend_latest == "always"

    def gps_input_settings(self) -> GpsInputSettings:
        return GpsInputSettings(
            gps_id=self.fix_gps_id,
            max_hacc_3d_m=self.fix_max_hacc_3d_m,
            max_vacc_3d_m=self.fix_max_vacc_3d_m,
            max_hacc_2d_m=self.fix_max_hacc_2d_m,
            satellites_3d=self.fix_satellites_3d,
            satellites_2d=self.fix_satellites_2d,
            dop_reference_m=self.fix_dop_reference_m,
            send_yaw=self.fix_send_yaw,
            velocity=self.fix_velocity,
        )


@dataclass(frozen=True)
class SchedulerStats:
    """Diagnostics snapshot. Gap figures cover the last ``window`` sends (ms)."""

    output: str
    target_rate_hz: float
    sent: int
    new_fixes_sent: int
    repeats: int
    submitted: int
    superseded: int
    out_of_order: int
    dropped_stale: int
    not_encodable: int
    send_errors: int
    achieved_rate_hz: float
    gap_mean_ms: float
    gap_max_ms: float
    gap_min_ms: float
    gap_p99_ms: float
    jitter_ms: float
    age_at_send_mean_ms: float
    age_at_send_max_ms: float
    new_fix_age_median_ms: float
    new_fix_age_min_ms: float
    last_fix_age_ms: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class FixScheduler:
    """Holds the latest fix and sends it through ``send`` when a tick says so.

    Args:
        encoder: turns a fix into one MAVLink message (or None: cannot yet).
        send: called with that message; the link's ``send``. Its exceptions are
            counted (``send_errors``) and logged, never raised out of :meth:`tick`.
        clock: the injected clock (same time base as the fixes' capture stamps).
        rate_hz: tick rate of the fixed grid.
        max_fix_age_s: older fixes (capture stamp to now) are dropped.
        repeat_max_age_s: a sent fix is repeated until this old (never less than
            ``max_fix_age_s``).
        resend_latest: re-send the latest fix on ticks without a new one.
        send_on_arrival, min_gap_fraction: see the module docstring.
    """

    def __init__(
        self,
        encoder: FixEncoder,
        send: Callable[[Any], object],
        clock: Clock,
        *,
        rate_hz: float,
        max_fix_age_s: float,
        resend_latest: bool,
        repeat_max_age_s: float = 0.0,
        send_on_arrival: bool = True,
        min_gap_fraction: float = 0.75,
        send_inline: bool = True,
        repeat_gap_fraction: float = 1.0,
        logger: logging.Logger | None = None,
        window: int = 512,
    ) -> None:
        if rate_hz <= 0:
            raise ValueError("rate_hz must be positive")
        self.encoder = encoder
        self._send = send
        self.clock = clock
        self.period_ns = round(NS_PER_S / rate_hz)
        self.rate_hz = rate_hz
        self.max_age_ns = round(max_fix_age_s * NS_PER_S)
        self.repeat_max_age_ns = max(self.max_age_ns, round(repeat_max_age_s * NS_PER_S))
        self.resend_latest = resend_latest
        self.send_on_arrival = send_on_arrival
        self.min_gap_ns = round(self.period_ns * min_gap_fraction)
        self.floor_ns = self.min_gap_ns
        if encoder.kind is OutputKind.GPS_INPUT:
            if not GPS_INPUT_MIN_GAP_MS <= 1000.0 / rate_hz <= GPS_INPUT_MAX_GAP_MS:
                raise ConfigError(
                    f"GPS_INPUT rate_hz must keep its period within {GPS_INPUT_MIN_GAP_MS:g}.."
                    f"{GPS_INPUT_MAX_GAP_MS:g} ms (ArduPilot's floor and health limit)",
                    key="rate_hz",
                )
            self.floor_ns = round(GPS_INPUT_MIN_GAP_MS * 1e6)
            self.min_gap_ns = max(self.min_gap_ns, self.floor_ns)
        self.repeat_gap_ns = round(self.period_ns * max(1.0, repeat_gap_fraction))
        if encoder.kind is OutputKind.GPS_INPUT:
            ceiling = round((GPS_INPUT_MAX_GAP_MS - GPS_INPUT_MAX_GAP_MARGIN_MS) * 1e6)
            self.repeat_gap_ns = max(self.period_ns, min(self.repeat_gap_ns, ceiling))
        self._log = logger or logging.getLogger("gps_denied_onboard.fc_bridge.scheduler")
        self._lock = threading.Lock()
        self._tick_lock = threading.Lock()
        self.send_inline = send_inline
        self._latest: PositionFix | None = None
        self._latest_sent = False
        self._last_send_ns: int | None = None
        self._last_new_send_ns: int | None = None
        self._next_due_ns: int | None = None
        self._on_submit: Callable[[], None] | None = None
        self._gaps: deque[int] = deque(maxlen=window)
        self._send_times: deque[int] = deque(maxlen=window)
        self._ages: deque[int] = deque(maxlen=window)
        self._new_ages: deque[int] = deque(maxlen=window)
        self._counts = dict.fromkeys(
            (
                "sent",
                "new_fixes_sent",
                "repeats",
                "submitted",
                "superseded",
                "out_of_order",
                "dropped_stale",
                "not_encodable",
                "send_errors",
            ),
            0,
        )

    @classmethod
    def from_config(
        cls,
        config: FixOutputConfig,
        *,
        autopilot: str,
        send: Callable[[Any], object],
        clock: Clock,
        origin: Any = None,
        target_system: int = 0,
        target_component: int = 0,
        logger: logging.Logger | None = None,
    ) -> FixScheduler:
        """The node's one-liner once the autopilot is known."""
        kind = config.resolve_output(autopilot)
        encoder = FixEncoder(
            kind,
            autopilot=autopilot,
            origin=origin,
            gps_input=config.gps_input_settings(),
            target_system=target_system,
            target_component=target_component,
        )
        return cls(
            encoder,
            send,
            clock,
            rate_hz=config.rate_for(kind),
            max_fix_age_s=config.max_fix_age_s,
            repeat_max_age_s=config.fix_repeat_max_age_s,
            resend_latest=config.resend_for(kind),
            send_on_arrival=config.fix_send_on_arrival,
            send_inline=config.fix_send_inline,
            min_gap_fraction=config.fix_min_gap_fraction,
            repeat_gap_fraction=config.fix_repeat_gap_fraction,
            logger=logger,
        )

    # --- input -----------------------------------------------------------------
    def submit(self, fix: PositionFix) -> bool:
        """Hand in a new fix (any thread). Returns False if it was older than the held one."""
        with self._lock:
            self._counts["submitted"] += 1
            held = self._latest
            if held is not None and fix.capture_ns < held.capture_ns:
                self._counts["out_of_order"] += 1
                return False
            if held is not None and not self._latest_sent:
                self._counts["superseded"] += 1
            self._latest = fix
            self._latest_sent = False
            wake = self._on_submit if self.send_on_arrival else None
        if self.send_on_arrival and self.send_inline:
            # send on the caller's thread when the min gap allows: no thread hop
            self.tick()
            with self._lock:
                if self._latest_sent or self._latest is not fix:
                    wake = None
        if wake is not None:
            wake()  # the sender thread re-plans (earliest instant the min gap allows)
        return True

    def set_wakeup(self, callback: Callable[[], None] | None) -> None:
        """Called after each accepted submit (the sender thread's wake-up)."""
        with self._lock:
            self._on_submit = callback

    # --- timing ----------------------------------------------------------------
    def next_due_ns(self, now_ns: int) -> int:
        """When the next tick should run (injected-clock ns)."""
        with self._lock:
            return self._next_due_locked(now_ns)

    def _next_due_locked(self, now_ns: int) -> int:
        due = self._next_due_ns
        if due is None or due - now_ns > max(self.period_ns, self.repeat_gap_ns):
            # first tick, or the clock jumped backwards: re-anchor the grid
            due = now_ns
            self._next_due_ns = due
        if self.send_on_arrival and self._latest is not None and not self._latest_sent:
            last = self._last_send_ns
            earliest = now_ns if last is None else last + self._gap_after_last_locked()
            due = min(due, max(earliest, now_ns))
        return due

    def _gap_after_last_locked(self) -> int:
        """The minimum gap after the last message: the full one after a new fix (it caps
        the new-fix rate), only the floor after a repeat (a repeat is no measurement
        worth keeping a new fix waiting for)."""
        if self._last_send_ns is not None and self._last_send_ns == self._last_new_send_ns:
            return self.min_gap_ns
        return min(self.min_gap_ns, self.floor_ns)

    def tick(self, now_ns: int | None = None) -> Any | None:
        """Send what is due at ``now_ns`` (default: the clock). Returns the message sent.

        Ticks are serialised (one decide-encode-send at a time), so a repeat decided on
        one thread can never reach the wire after a newer fix sent from another.
        """
        with self._tick_lock:
            now = self.clock.now_ns() if now_ns is None else int(now_ns)
            return self._tick_locked(now)

    def _tick_locked(self, now: int) -> Any | None:
        with self._lock:
            fix = self._latest
            limit = self.repeat_max_age_ns if self._latest_sent else self.max_age_ns
            if fix is not None and now - fix.capture_ns > limit:
                self._counts["dropped_stale"] += 1 if not self._latest_sent else 0
                self._latest = None
                fix = None
            grid_due = self._next_due_ns if self._next_due_ns is not None else now
            on_grid = now >= grid_due
            last = self._last_send_ns
            # the floor holds for every message, new or repeat, on the grid or not
            gap_ok = last is None or now < last or now - last >= self._gap_after_last_locked()
            if fix is None or not gap_ok:
                send_it = False
            elif not self._latest_sent:
                send_it = on_grid or self.send_on_arrival
            else:
                send_it = on_grid and self.resend_latest
            if on_grid:
                # advance the grid past now, keeping its phase (no drift, no burst)
                missed = (now - grid_due) // self.period_ns
                self._next_due_ns = grid_due + (missed + 1) * self.period_ns
            if not send_it or fix is None:
                return None
            repeat = self._latest_sent
            self._latest_sent = True
            next_due = self._next_due_ns if self._next_due_ns is not None else now
            if self.send_on_arrival:
                # new fixes go out on arrival; the grid only brings repeats, one repeat
                # gap after the last message, so a new fix arriving a little later than
                # one period does not collide with a repeat and wait out the floor
                self._next_due_ns = now + self.repeat_gap_ns
            elif not on_grid or next_due - now < self.min_gap_ns:
                # a late send (stalled thread) that would leave the next tick too close
                # re-phases the grid to itself
                self._next_due_ns = now + self.period_ns
        try:
            msg = self.encoder.encode(fix, now)
        except Exception:
            self._log.exception("encoding %s failed", self.encoder.kind.value)
            with self._lock:
                self._counts["send_errors"] += 1
            return None
        if msg is None:
            with self._lock:
                self._counts["not_encodable"] += 1
            return None
        try:
            self._send(msg)
        except Exception:
            self._log.exception("sending %s failed", self.encoder.kind.value)
            with self._lock:
                self._counts["send_errors"] += 1
            return None
        with self._lock:
            if self._last_send_ns is not None:
                self._gaps.append(now - self._last_send_ns)
            self._last_send_ns = now
            if not repeat:
                self._last_new_send_ns = now
                self._new_ages.append(now - fix.capture_ns)
            self._send_times.append(now)
            self._ages.append(now - fix.capture_ns)
            self._counts["sent"] += 1
            self._counts["repeats" if repeat else "new_fixes_sent"] += 1
        return msg

    # --- diagnostics -----------------------------------------------------------
    def stats(self, now_ns: int | None = None) -> SchedulerStats:
        now = self.clock.now_ns() if now_ns is None else int(now_ns)
        with self._lock:
            gaps = sorted(self._gaps)
            times = list(self._send_times)
            ages = list(self._ages)
            new_ages = sorted(self._new_ages)
            counts = dict(self._counts)
            latest = self._latest
        nan = math.nan
        if gaps:
            mean = sum(gaps) / len(gaps)
            var = sum((g - mean) ** 2 for g in gaps) / len(gaps)
            p99 = gaps[max(0, math.ceil(0.99 * len(gaps)) - 1)]
            gap_mean, gap_max, gap_p99, jitter = (
                mean / 1e6,
                gaps[-1] / 1e6,
                p99 / 1e6,
                math.sqrt(var) / 1e6,
            )
        else:
            gap_mean = gap_max = gap_p99 = jitter = nan
        span = times[-1] - times[0] if len(times) >= 2 else 0
        achieved = (len(times) - 1) * NS_PER_S / span if span > 0 else 0.0
        return SchedulerStats(
            output=self.encoder.kind.value,
            target_rate_hz=self.rate_hz,
            achieved_rate_hz=achieved,
            gap_mean_ms=gap_mean,
            gap_max_ms=gap_max,
            gap_min_ms=(gaps[0] / 1e6) if gaps else nan,
            gap_p99_ms=gap_p99,
            jitter_ms=jitter,
            age_at_send_mean_ms=(sum(ages) / len(ages) / 1e6) if ages else nan,
            age_at_send_max_ms=(max(ages) / 1e6) if ages else nan,
            new_fix_age_median_ms=(new_ages[len(new_ages) // 2] / 1e6) if new_ages else nan,
            new_fix_age_min_ms=(new_ages[0] / 1e6) if new_ages else nan,
            last_fix_age_ms=((now - latest.capture_ns) / 1e6) if latest is not None else nan,
            **counts,
        )


class FixSenderThread:
    """Runs :meth:`FixScheduler.tick` on a dedicated thread at absolute deadlines.

    The thread sleeps on an event until the scheduler's next due instant (never
    longer than one period, so a clock step cannot stall it) and is woken early by
    ``submit`` when ``send_on_arrival`` is on.
    """

    def __init__(self, scheduler: FixScheduler, *, name: str = "fc_fix_sender") -> None:
        self.scheduler = scheduler
        self._name = name
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.tick_errors = 0

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("FixSenderThread already started")
        self._stop.clear()
        self.scheduler.set_wakeup(self._wake.set)
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stop and join for at most ``timeout_s`` (idempotent); False if still running.

        A thread still running is left behind (a daemon) and logged as
        ``fc.fix_sender_stuck``: the caller, a lifecycle transition, must not hang.
        """
        self._stop.set()
        self._wake.set()
        self.scheduler.set_wakeup(None)
        thread, self._thread = self._thread, None
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout_s)
        if thread.is_alive():
            log_event(
                logging.getLogger(__name__),
                logging.ERROR,
                "fc.fix_sender_stuck",
                thread=thread.name,
                timeout_s=timeout_s,
            )
            return False
        return True

    def __enter__(self) -> FixSenderThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        sched = self.scheduler
        clock = sched.clock
        while not self._stop.is_set():
            now = clock.now_ns()
            due = sched.next_due_ns(now)
            wait_ns = min(due - now, sched.period_ns)
            if wait_ns > 0:
                self._wake.wait(wait_ns / NS_PER_S)
                self._wake.clear()
                if self._stop.is_set():
                    break
                now = clock.now_ns()
                if now < sched.next_due_ns(now):
                    continue
            try:
                sched.tick(now)
            except Exception:  # tick never raises by design; belt and braces
                self.tick_errors += 1
                logging.getLogger(__name__).exception("fix sender tick failed")
