"""Recorder configuration (ROS parameter names of the ``fdr_recorder`` node)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gps_denied_onboard.errors import ConfigError

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
#: Largest ``segment_size_bytes``. Foxglove opens an MCAP file without a usable index
#: (a torn segment before ``recover``) only up to 1 GiB, loading it whole into memory;
#: a segment overshoots its size by up to one writer pass before it rotates. Half of
#: that limit keeps every segment, torn or closed, openable by every reader in the
#: README's table.
MAX_SEGMENT_SIZE_BYTES = 512 * MIB


@dataclass(frozen=True)
class FdrConfig:
    """Parameters of :class:`~gps_denied_onboard.fdr.writer.FlightRecorder`.

    Attributes:
        flight_root: directory holding one sub-directory per flight and the lock file.
        segment_size_bytes: rotate to a new segment once the open one reaches this size
            (64 KiB .. :data:`MAX_SEGMENT_SIZE_BYTES`).
        batch_size: records the writer takes from one ring before moving to the next.
        flight_cap_bytes: CapacityCapPolicy's per-flight cap on segment bytes.
        ring_capacity: default per-producer ring size, in records. At the design peak of
            100k records/s a 500 ms storage stall needs 50k slots.
        free_space_floor_bytes: below this much free space on the flight root the recorder
            stops writing (degraded) instead of filling the disk.
        fsync_period_ns: fdatasync at least this often (host monotonic time) while data is
            pending.
        poll_period_ns: how long the writer sleeps between looks at the rings when no ring
            has reached its wake depth. Bounds the crash window at low rates.
        wake_depth: a producer ring this deep wakes the writer at once (256 records of
            ~200 bytes is ~50 KiB: the crash window stays under 64 KiB at high rates).
        wake_depth_raw: the same for the raw-topic ring (raw messages are larger).
        lag_bound_ns: the most a record may wait in a ring before the writer hands it to the
            OS; one that waited longer is shed and accounted (``overrun``, reason ``lag``). It
            bounds the crash window (kill -9) when the writer falls behind. Longer than
            ``poll_period_ns``.
        degraded_retry_period_ns: how often a degraded recorder checks whether space returned.
        tile_cap_bytes: per-flight cap on mid-flight tile snapshots (oldest evicted).
        thumbnail_window_ns: tumbling window of the failed_tile_thumbnail rate cap (one per
            window: 10 s is 0.1 Hz).
        debug_log_per_record: log every record at DEBUG (bench and bring-up only).
        command_timeout_s: how long open_flight/close_flight wait for the writer thread.
    """

    flight_root: Path = Path("/var/lib/gps_denied_onboard/fdr")
    segment_size_bytes: int = 256 * MIB
    batch_size: int = 1024
    flight_cap_bytes: int = 64 * GIB
    ring_capacity: int = 65_536
    free_space_floor_bytes: int = 512 * MIB
    fsync_period_ns: int = 1_000_000_000
    poll_period_ns: int = 50_000_000
    wake_depth: int = 256
    wake_depth_raw: int = 16
    lag_bound_ns: int = 1_000_000_000
    degraded_retry_period_ns: int = 200_000_000
    tile_cap_bytes: int = 64 * MIB
    thumbnail_window_ns: int = 10_000_000_000
    debug_log_per_record: bool = False
    command_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        positive = (
            "segment_size_bytes",
            "batch_size",
            "flight_cap_bytes",
            "ring_capacity",
            "fsync_period_ns",
            "poll_period_ns",
            "wake_depth",
            "wake_depth_raw",
            "lag_bound_ns",
            "degraded_retry_period_ns",
            "tile_cap_bytes",
            "thumbnail_window_ns",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive", key=name)
        if self.segment_size_bytes < 64 * KIB:
            raise ConfigError(
                "segment_size_bytes must be at least 64 KiB", key="segment_size_bytes"
            )
        if self.segment_size_bytes > MAX_SEGMENT_SIZE_BYTES:
            raise ConfigError(
                f"segment_size_bytes must be at most {MAX_SEGMENT_SIZE_BYTES} (512 MiB): "
                "Foxglove refuses an unindexed (torn) MCAP file over 1 GiB",
                key="segment_size_bytes",
            )
        if self.fsync_period_ns > 1_000_000_000:
            raise ConfigError("fsync_period_ns must be at most 1 s", key="fsync_period_ns")
        if self.lag_bound_ns <= self.poll_period_ns:
            raise ConfigError("lag_bound_ns must be longer than poll_period_ns", key="lag_bound_ns")
        if self.free_space_floor_bytes < 0:
            raise ConfigError(
                "free_space_floor_bytes must not be negative", key="free_space_floor_bytes"
            )
        if self.command_timeout_s <= 0:
            raise ConfigError("command_timeout_s must be positive", key="command_timeout_s")
        object.__setattr__(self, "flight_root", Path(self.flight_root))
