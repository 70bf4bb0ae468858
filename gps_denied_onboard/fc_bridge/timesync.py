"""The autopilot's clock on the bridge's: ``time_boot_ms`` -> the ROS time base.

A message's arrival time on the bridge is its capture time plus whatever
delayed it: the serial line, the reader thread's turn, and in a ``use_sim_time``
replay the bridge's own ``/clock``, which runs behind or ahead of the stream
by up to a second on a loaded machine (measured in the main job at 4x:
arrival minus capture p5 -281 ms, p95 +199 ms). Attitude stamped by arrival is
then useless for interpolating at a camera frame's capture time.

The autopilot's ``time_boot_ms`` has none of that noise. The offset between
the two clocks is the median of ``arrival - boot`` over a sliding window,
which ignores delays in either direction as long as most messages arrive
promptly; the stamp is ``boot + offset``. A reboot (boot time going back) or a
jump of the offset (a clock reset) starts the window afresh.
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import Final

NS_PER_MS: Final = 1_000_000


class FcTimeMapper:
    """Maps ``time_boot_ms`` of one autopilot to the bridge's clock (ns)."""

    def __init__(self, *, window: int = 101, reset_after_s: float = 2.0) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self._window = window
        self._order: deque[int] = deque()  # offsets, arrival order
        self._sorted: list[int] = []
        self._last_boot_ms: int | None = None
        self._reset_ns = int(reset_after_s * 1e9)
        self.resets = 0

    def _reset(self) -> None:
        self._order.clear()
        self._sorted.clear()
        self.resets += 1

    @property
    def offset_ns(self) -> int | None:
        """The current estimate of ``clock - boot``, None before the first sample."""
        if not self._sorted:
            return None
        return self._sorted[len(self._sorted) // 2]

    def peek(self, time_boot_ms: int, recv_ns: int) -> int | None:
        """The time on the bridge's clock by the current mapping, the sample not taken:
        for a sensor's own time (ALTITUDE, DISTANCE_SENSOR), which must not move the
        mapping the attitude is stamped with. None with no mapping yet, for time 0, or
        where it lands as far from the arrival as :meth:`stamp` would call a jump (the
        sensor's own clock, not the autopilot's)."""
        current = self.offset_ns
        if current is None or time_boot_ms <= 0:
            return None
        mapped = time_boot_ms * NS_PER_MS + current
        return mapped if abs(mapped - recv_ns) <= self._reset_ns else None

    def stamp(self, time_boot_ms: int, recv_ns: int) -> int:
        """The message's time on the bridge's clock."""
        offset = recv_ns - time_boot_ms * NS_PER_MS
        last = self._last_boot_ms
        current = self.offset_ns
        if (last is not None and time_boot_ms + 1000 < last) or (
            current is not None and abs(offset - current) > self._reset_ns
        ):
            self._reset()  # reboot, or the clock (sim time) jumped
        self._last_boot_ms = time_boot_ms
        self._order.append(offset)
        bisect.insort(self._sorted, offset)
        if len(self._order) > self._window:
            old = self._order.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        median = self.offset_ns
        assert median is not None
        return time_boot_ms * NS_PER_MS + median
