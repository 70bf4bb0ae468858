"""Stuck-writer watchdog.

The recorder's writer thread reports when it last made progress (drained a
batch, finished an fsync). If records are waiting in the rings and that time
falls more than ``stall_after_ns`` behind the injected monotonic clock, the
writer is stalled: a blocked ``write``/``fdatasync`` on a dying disk, a
deadlock, a thread that died.

While the writer is stalled nothing can be recorded through it, so the stall
is reported on paths that do not depend on it: one ERROR log line and one GCS
alert per stall. When the writer moves again, the watchdog writes one
``writer_stalled`` record (how long, since when) through the now-working
writer, logs the recovery and clears the alert with a NOTICE. A stall that
never ends is still on the GCS and in the log, and the missing records are
accounted by the rings' overrun records.

It also watches the writer's lag (the age of the oldest record not yet handed to
the OS; see :mod:`~gps_denied_onboard.fdr.lag`). The writer bounds it by shedding
what waits longer than its bound, so a lag over the bound, or records shed for lag
since the last look, mean the writer is not keeping up: one ERROR line and one GCS
alert per episode, the episode ending once ``lag_quiet_ns`` passed without either
(the shed records are accounted in-band by their ``overrun`` records).

The watchdog is driven from outside (the node's timer calls :meth:`check`);
it owns no thread and reads only the injected clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.log import log_event
from gps_denied_onboard.records import FlightRecord, RecordSink

_LOG = logging.getLogger("gps_denied_onboard.fdr.watchdog")

#: MAVLink MAV_SEVERITY values used for the alerts.
SEVERITY_CRITICAL: Final = 2
SEVERITY_NOTICE: Final = 5

SEVERITY_WARNING: Final = 4

DEFAULT_STALL_AFTER_NS: Final = 2_000_000_000
DEFAULT_LAG_QUIET_NS: Final = 10_000_000_000


@dataclass(frozen=True)
class WriterProgress:
    """What the watchdog needs from the writer's status.

    Attributes:
        pending: records offered but not yet written (sum over the rings).
        last_progress_ns: when the writer last made progress, on the same
            monotonic clock the watchdog is given; ``None`` before it started.
        lag_ns: age of the oldest record not yet handed to the OS.
        shed_lag: records shed so far for waiting longer than the lag bound.
    """

    pending: int
    last_progress_ns: int | None
    lag_ns: int = 0
    shed_lag: int = 0


def progress_from_status(status: Any) -> WriterProgress:
    """The watchdog's view of a :class:`~gps_denied_onboard.fdr.writer.RecorderStatus`.

    Records are pending while a flight is open and any ring holds records; with
    no flight open the rings are not drained on purpose, so nothing is pending.
    """
    if status.flight_id is None:
        return WriterProgress(0, status.last_progress_ns, 0, status.records_shed_lag)
    pending = sum(p.ring_depth for p in status.producers)
    return WriterProgress(pending, status.last_progress_ns, status.lag_ns, status.records_shed_lag)


class AlertSink(Protocol):
    """Raises a GCS alert (``GcsAlertPublisher.publish`` has this shape)."""

    def publish(self, severity: int, source: str, text: str) -> None: ...


@dataclass(frozen=True)
class Stall:
    """One detected stall."""

    since_ns: int
    detected_ns: int
    pending: int


class StuckWriterWatchdog:
    """Watches a writer's progress; alerts once per stall, records on recovery.

    Args:
        probe: returns the writer's current :class:`WriterProgress`.
        clock: the monotonic clock the writer's ``last_progress_ns`` uses.
        alerts: where the GCS alerts go.
        sink: where the ``writer_stalled`` record goes once the writer moves
            again (the writer's own client is fine: it is only used then).
        stall_after_ns: how long without progress, with records pending, is a stall.
        producer: producer slug on the record and source on the alerts.
        record_clock: stamps the record (the node's ROS clock); defaults to ``clock``.
        logger: where the stall / recovery lines go.
        lag_bound_ns: the writer's lag bound; ``None`` leaves lag unwatched.
        lag_quiet_ns: a lag episode ends after this long within the bound, nothing shed.
    """

    def __init__(
        self,
        probe: Callable[[], WriterProgress],
        clock: Clock,
        alerts: AlertSink,
        sink: RecordSink,
        *,
        stall_after_ns: int = DEFAULT_STALL_AFTER_NS,
        producer: str = "fdr_recorder",
        record_clock: Clock | None = None,
        logger: logging.Logger = _LOG,
        lag_bound_ns: int | None = None,
        lag_quiet_ns: int = DEFAULT_LAG_QUIET_NS,
    ) -> None:
        if stall_after_ns <= 0:
            raise ValueError("stall_after_ns must be positive")
        self._probe = probe
        self._clock = clock
        self._alerts = alerts
        self._sink = sink
        self._stall_after_ns = stall_after_ns
        self._producer = producer
        self._record_clock = record_clock if record_clock is not None else clock
        self._logger = logger
        self._stall: Stall | None = None
        self.stalls_total = 0
        self._lag_bound_ns = lag_bound_ns
        self._lag_quiet_ns = lag_quiet_ns
        self._shed_seen = 0
        self._lag_since: int | None = None  # episode start
        self._lag_last_over = 0
        self.lag_alerts_total = 0

    @property
    def stalled(self) -> Stall | None:
        """The stall in progress, or ``None``."""
        return self._stall

    def check(self) -> Stall | None:
        """Compare the writer's progress with the clock; alert or record as needed.

        Returns:
            The stall in progress after this check, or ``None``.
        """
        progress = self._probe()
        now = self._clock.now_ns()
        self._check_lag(progress, now)
        last = progress.last_progress_ns
        if self._stall is not None:
            moved = last is not None and last > self._stall.since_ns
            if moved or progress.pending == 0:
                self._recovered(now, last)
            return self._stall
        if last is None or progress.pending <= 0:
            return None
        stalled_for = now - last
        if stalled_for >= self._stall_after_ns:
            self._stall = Stall(since_ns=last, detected_ns=now, pending=progress.pending)
            self.stalls_total += 1
            log_event(
                self._logger,
                logging.ERROR,
                "fdr.writer_stalled",
                stalled_for_ns=stalled_for,
                pending=progress.pending,
                last_progress_ns=last,
            )
            self._alerts.publish(
                SEVERITY_CRITICAL, self._producer, f"FDR writer stalled {stalled_for / 1e9:.1f}s"
            )
        return self._stall

    @property
    def lagging(self) -> bool:
        """Whether a lag episode is in progress."""
        return self._lag_since is not None

    def _check_lag(self, progress: WriterProgress, now: int) -> None:
        bound = self._lag_bound_ns
        if bound is None:
            return
        shed = progress.shed_lag - self._shed_seen
        self._shed_seen = progress.shed_lag
        over = progress.lag_ns > bound or shed > 0
        if over:
            self._lag_last_over = now
            if self._lag_since is None:
                self._lag_since = now
                self.lag_alerts_total += 1
                log_event(
                    self._logger,
                    logging.ERROR,
                    "fdr.writer_lagging",
                    lag_ns=progress.lag_ns,
                    lag_bound_ns=bound,
                    shed=shed,
                )
                self._alerts.publish(
                    SEVERITY_WARNING,
                    self._producer,
                    f"FDR writer behind >{bound / 1e9:.2f}s, shedding",
                )
        elif self._lag_since is not None and now - self._lag_last_over >= self._lag_quiet_ns:
            log_event(
                self._logger,
                logging.WARNING,
                "fdr.writer_lag_recovered",
                lagging_for_ns=self._lag_last_over - self._lag_since,
                shed_total=progress.shed_lag,
            )
            self._lag_since = None

    def _recovered(self, now: int, last: int | None) -> None:
        stall = self._stall
        assert stall is not None
        self._stall = None
        # The writer stopped at since_ns and moved again at `last` (or drained).
        end = last if last is not None and last > stall.since_ns else now
        stalled_for = end - stall.since_ns
        log_event(
            self._logger,
            logging.WARNING,
            "fdr.writer_recovered",
            stalled_for_ns=stalled_for,
            last_progress_ns=stall.since_ns,
        )
        self._alerts.publish(
            SEVERITY_NOTICE, self._producer, f"FDR writer recovered after {stalled_for / 1e9:.1f}s"
        )
        self._sink.emit(
            FlightRecord(
                "writer_stalled",
                self._producer,
                self._record_clock.now_ns(),
                {"stalled_for_ns": stalled_for, "last_progress_ns": stall.since_ns},
            )
        )
