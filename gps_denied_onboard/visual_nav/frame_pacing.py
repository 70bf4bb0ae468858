"""Which camera frames the estimator takes: a rate cap on their capture stamps, and,
when matching falls behind, the frames too late to matter let go.

Why a cap (``frame_max_rate_hz``). Cameras run at 10-30 Hz. The estimator was
calibrated on frames 0.5-1 s apart (registration's noise adds up per registration,
the velocity windows and the stitched patches were measured at 1-2 frames a second),
a frame costs 25-180 ms on one CPU of this machine (more on a Jetson's), and the
companion computer is shared. Matched at 10 Hz, every other node waits and the worker
falls behind. The cap is applied to the capture stamps, so a replay takes the same
frames as the flight did whatever the machine's speed. A frame may come a tenth of
the interval early (a camera's jitter: a 2 Hz camera under a 2 Hz cap loses none),
the interval is kept on average (a 5 Hz camera gives 2 Hz, 0.6 and 0.4 s apart),
and no two frames are taken closer than half of it.

Why a lag bound (``frame_max_lag_s``). Frames are matched in order, since
registration links each to the one before. A worker slower than the frames (a loaded
machine, a run of cold searches) fills the queue, and every fix then comes out as
late as the queue is long: 8 frames at 2 Hz is 4 s, where the FC bridge drops a fix
older than ``max_fix_age_s`` (0.5 s) unsent. When the worker takes a frame, those
captured more than the bound before the newest one waiting are let go: the worker
catches up with the camera, and registration spans the gap (or the track is carried
by its velocity across it).

Every frame offered ends in exactly one of: taken (then a fix or a reject),
``decimated``, or dropped (``busy``: the queue was full; ``late``: the lag bound).
:class:`FramePacer` is plain data, not thread-safe: the node holds a lock around it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from gps_denied_onboard.errors import ConfigError

T = TypeVar("T")

NS: Final = 1_000_000_000

#: the share of the interval a frame may come early and still be taken (camera jitter)
EARLY_SHARE: Final = 0.1
#: no two frames are taken closer than this share of the interval
MIN_SPACING_SHARE: Final = 0.5


@dataclass(frozen=True)
class PacingConfig:
    """``frame_max_rate_hz`` (0: every frame), ``frame_max_lag_s`` (0: none let go for
    lag) and ``queue_depth`` (frames waiting at most; beyond, the oldest goes)."""

    max_rate_hz: float = 2.0
    max_lag_s: float = 1.0
    depth: int = 8

    def __post_init__(self) -> None:
        if not (0.0 <= self.max_rate_hz <= 1000.0):
            raise ConfigError(
                "frame_max_rate_hz must be 0..1000 (0: every frame)", key="frame_max_rate_hz"
            )
        if not (0.0 <= self.max_lag_s <= 60.0):
            raise ConfigError(
                "frame_max_lag_s must be 0..60 s (0: never let go for lag)", key="frame_max_lag_s"
            )
        if self.depth < 1:
            raise ConfigError("queue_depth must be >= 1", key="queue_depth")


@dataclass(frozen=True)
class Dropped(Generic[T]):
    """A frame let go: its capture stamp, what was offered, and why (``busy``, ``late``,
    ``stopped``)."""

    stamp_ns: int
    item: T
    reason: str


class FramePacer(Generic[T]):
    """The frames waiting for the estimator (see the module docstring).

    :meth:`offer` from the camera's callback, :meth:`take` from the worker; each
    returns the frames it let go, so that every frame is accounted for.
    """

    def __init__(self, cfg: PacingConfig) -> None:
        self.cfg = cfg
        self._interval = round(NS / cfg.max_rate_hz) if cfg.max_rate_hz > 0 else 0
        self._max_lag = round(cfg.max_lag_s * NS)
        self._pending: deque[tuple[int, T]] = deque()
        self._last: int | None = None  # the last stamp taken into the queue
        self._due = 0  # the stamp from which the next frame is taken (less EARLY_SHARE)
        self.decimated = 0
        self.dropped_busy = 0
        self.dropped_late = 0

    def __len__(self) -> int:
        return len(self._pending)

    def __iter__(self) -> Iterator[tuple[int, T]]:
        return iter(self._pending)

    def admits(self, stamp_ns: int) -> bool:
        """Whether a frame captured at ``stamp_ns`` is under the rate cap (and note it
        taken if so). A stamp before the last one taken (a camera or a bag
        restarted) starts the cap afresh."""
        if self._interval and self._last is not None and stamp_ns >= self._last:
            if stamp_ns < self._due - EARLY_SHARE * self._interval:
                self.decimated += 1
                return False
            # the floor: EARLY_SHARE before it is still MIN_SPACING_SHARE after this one
            floor = stamp_ns + round((MIN_SPACING_SHARE + EARLY_SHARE) * self._interval)
            self._due = max(self._due + self._interval, floor)
        else:
            self._due = stamp_ns + self._interval
        self._last = stamp_ns
        return True

    def offer(self, stamp_ns: int, item: T) -> list[Dropped[T]] | None:
        """Queue a frame under the cap: None when it is ``decimated``, else the frames
        this let go (the oldest one, ``busy``, when the queue was full)."""
        if not self.admits(stamp_ns):
            return None
        dropped: list[Dropped[T]] = []
        while len(self._pending) >= self.cfg.depth:
            old_stamp, old = self._pending.popleft()
            self.dropped_busy += 1
            dropped.append(Dropped(old_stamp, old, "busy"))
        self._pending.append((stamp_ns, item))
        return dropped

    def take(self) -> tuple[tuple[int, T] | None, list[Dropped[T]]]:
        """The next frame to match (None if none waits), and those let go as ``late``:
        captured more than ``max_lag_s`` before the newest one waiting."""
        dropped: list[Dropped[T]] = []
        if not self._pending:
            return None, dropped
        newest = self._pending[-1][0]
        while self._max_lag and len(self._pending) > 1:
            stamp, item = self._pending[0]
            if newest - stamp <= self._max_lag:
                break
            self._pending.popleft()
            self.dropped_late += 1
            dropped.append(Dropped(stamp, item, "late"))
        return self._pending.popleft(), dropped

    def clear(self) -> list[Dropped[T]]:
        """Let every waiting frame go (``stopped``: the worker is gone)."""
        dropped = [Dropped(s, i, "stopped") for s, i in self._pending]
        self._pending.clear()
        return dropped
