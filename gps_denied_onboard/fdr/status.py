"""The recorder's status snapshots (diagnostics, the stuck-writer and lag watchdog).

Split out of :mod:`~gps_denied_onboard.fdr.writer`, which builds them
(:meth:`FlightRecorder.status`) and re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProducerStatus", "RecorderStatus"]


@dataclass(frozen=True)
class ProducerStatus:
    """One producer's ring and accounting; offered == written + dropped + in flight."""

    producer: str
    offered: int
    written: int
    dropped: int
    pending_loss: int
    ring_depth: int
    ring_high_water: int
    ring_capacity: int


@dataclass(frozen=True)
class RecorderStatus:
    """A snapshot for diagnostics and the stuck-writer watchdog.

    ``last_progress_ns`` is the injected monotonic clock at the end of the writer loop's
    last pass; the loop passes at least every ``poll_period_ns`` unless it is stuck.
    ``lag_ns`` is the age now of the oldest record not yet handed to the OS (0 when the
    rings are empty); ``lag_max_ns`` the largest age the writer met at the start of a
    pass since it started (before shedding); ``records_shed_lag`` how many records it
    shed for waiting longer than ``lag_bound_ns`` (see :mod:`~gps_denied_onboard.fdr.lag`).
    """

    running: bool
    flight_id: str | None
    flight_dir: Path | None
    current_segment: str | None
    segment_index: int | None
    degraded: bool
    degraded_reason: str | None
    records_written: int
    records_dropped: int
    bytes_written: int
    write_rate_records_s: float
    write_rate_bytes_s: float
    free_bytes: int | None
    last_progress_ns: int
    alerts_raised: int
    torn_segments: tuple[str, ...]
    producers: tuple[ProducerStatus, ...]
    lag_ns: int = 0
    lag_max_ns: int = 0
    lag_bound_ns: int = 0
    records_shed_lag: int = 0
