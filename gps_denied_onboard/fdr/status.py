"""The recorder's status snapshots (diagnostics, the stuck-writer and lag watchdog),
and the diagnostics the recorder node publishes from them.

Split out of :mod:`~gps_denied_onboard.fdr.writer`, which builds them
(:meth:`FlightRecorder.status`) and re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DIAG_ERROR",
    "DIAG_OK",
    "DIAG_WARN",
    "IntakeCounts",
    "ProducerStatus",
    "RecorderStatus",
    "diagnostic_level",
    "diagnostic_values",
    "dropouts",
]


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


#: Diagnostic levels (``diagnostic_msgs/DiagnosticStatus``: OK, WARN, ERROR).
DIAG_OK, DIAG_WARN, DIAG_ERROR = 0, 1, 2


@dataclass(frozen=True)
class IntakeCounts:
    """What the recorder node adds to the writer's status: losses before the writer,
    the watchdog's verdicts and the raw-topic plan."""

    dds_lost: int
    rejected: int
    stalled: bool
    lagging: bool
    raw_topics: tuple[str, ...]
    raw_topics_refused: tuple[str, ...]


def diagnostic_values(st: RecorderStatus, extra: IntakeCounts) -> dict[str, str]:
    """The recorder's diagnostics key/values (strings, as ``KeyValue`` carries them)."""
    values: dict[str, str] = {
        "running": str(st.running).lower(),
        "flight_id": st.flight_id or "",
        "segment": st.current_segment or "",
        "degraded": str(st.degraded).lower(),
        "degraded_reason": st.degraded_reason or "",
        "records_written": str(st.records_written),
        "records_dropped_overrun": str(st.records_dropped),
        "dds_lost": str(extra.dds_lost),
        "records_rejected": str(extra.rejected),
        "bytes_written": str(st.bytes_written),
        "write_rate_records_s": f"{st.write_rate_records_s:.1f}",
        "write_rate_bytes_s": f"{st.write_rate_bytes_s:.1f}",
        "free_bytes": "" if st.free_bytes is None else str(st.free_bytes),
        "torn_segments": ",".join(st.torn_segments),
        "writer_stalled": str(extra.stalled).lower(),
        "writer_lag_ns": str(st.lag_ns),
        "writer_lag_max_ns": str(st.lag_max_ns),
        "writer_lag_bound_ns": str(st.lag_bound_ns),
        "records_shed_lag": str(st.records_shed_lag),
        "writer_lagging": str(extra.lagging).lower(),
        "raw_topics": ",".join(extra.raw_topics),
        "raw_topics_refused": ",".join(extra.raw_topics_refused),
    }
    for p in st.producers:
        values[f"ring.{p.producer}.high_water"] = f"{p.ring_high_water}/{p.ring_capacity}"
        values[f"ring.{p.producer}.dropped"] = str(p.dropped + p.pending_loss)
    return values


def dropouts(st: RecorderStatus, extra: IntakeCounts) -> int:
    """Records lost anywhere so far: overwritten in a ring, lost in DDS, refused."""
    return st.records_dropped + extra.dds_lost + extra.rejected


def diagnostic_level(
    st: RecorderStatus, extra: IntakeCounts, dropouts_before: int
) -> tuple[int, str]:
    """``(level, message)``: ERROR when the writer is not writing (stopped, degraded,
    stalled), WARN while records are being lost (more than ``dropouts_before``) or
    raw topics were refused, else OK."""
    if not st.running or st.degraded or extra.stalled:
        if extra.stalled:
            return DIAG_ERROR, "writer stalled"
        if st.degraded:
            return DIAG_ERROR, f"degraded: {st.degraded_reason}"
        return DIAG_ERROR, "not running"
    if dropouts(st, extra) > dropouts_before:
        return DIAG_WARN, "records dropped"
    if extra.raw_topics_refused:
        return DIAG_WARN, "raw topics refused"
    return DIAG_OK, "recording" if st.flight_id else "idle"
