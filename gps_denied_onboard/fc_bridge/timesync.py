"""The autopilot's clock on the bridge's: ``time_boot_ms`` -> the ROS time base.

A message's arrival time on the bridge is its capture time plus whatever
delayed it: the serial line, the reader thread's turn, and in a ``use_sim_time``
replay the bridge's own ``/clock``, which runs behind or ahead of the stream
by up to a second on a loaded machine (measured in the main job at 4x:
arrival minus capture p5 -281 ms, p95 +199 ms). Attitude stamped by arrival is
then useless for interpolating at a camera frame's capture time.

The autopilot's ``time_boot_ms`` has none of that noise. The offset between
the two clocks is the median of ``arrival - boot`` over a sliding window
(:data:`WINDOW`), which ignores delays in either direction as long as most
messages arrive promptly; the stamp is ``boot + offset``. A reboot (boot time
going back) or a jump of the offset (a clock reset) starts the window afresh.

The window is long, and the offset steady within it, because a loaded machine
delays messages in bursts. In the main job at 4x (8,385 messages, 35 a second)
49 % arrived at the offset's mode and the rest up to 200 ms late or 80 ms early
(the bridge's ``/clock`` behind the stream), in runs of seconds. A median over
101 messages moved 155 times in that flight, up to 100 ms off, and each move
re-timed the attitude samples after it: on an airframe vibrating at 2-7 Hz that
is another attitude at a frame's capture, velocities from registration 10-24
m/s off, and two replays of one flight differing there. Over 1001 messages (30 s
here; 10-15 s at an autopilot's usual 70-100 messages a second, over which its
crystal drifts well under a millisecond) the median never moved once settled in
three recorded runs, but in a fourth it stood 20 ms off for 40 s (velocities there 2.4
against 0.5 m/s median). So once the window holds :data:`STEADY_AFTER` messages,
the offset stays where it is while it lies between the window's quartiles, and
moves to the median only when it leaves them: a burst must delay three quarters
of the last 1001 messages to move it, and a lasting change of the link's delay
still does, within three quarters of a window. Two runs of the main job now stamp every
attitude sample alike after their first seconds.
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import Final

NS_PER_MS: Final = 1_000_000

#: messages the offset is the median of (see the module's docstring)
WINDOW: Final = 1001

#: from this many messages in the window on, the offset stays where it is while it
#: lies between the window's quartiles (see the module's docstring)
STEADY_AFTER: Final = 101


class FcTimeMapper:
    """Maps ``time_boot_ms`` of one autopilot to the bridge's clock (ns)."""

    def __init__(self, *, window: int = WINDOW, reset_after_s: float = 2.0) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self._window = window
        self._order: deque[int] = deque()  # offsets, arrival order
        self._sorted: list[int] = []
        self._last_boot_ms: int | None = None
        self._offset: int | None = None
        self._reset_ns = int(reset_after_s * 1e9)
        self.resets = 0

    def _reset(self) -> None:
        self._order.clear()
        self._sorted.clear()
        self._offset = None
        self.resets += 1

    @property
    def offset_ns(self) -> int | None:
        """The current estimate of ``clock - boot``, None before the first sample."""
        return self._offset

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
        srt, n = self._sorted, len(self._sorted)
        held = self._offset
        if held is None or n < STEADY_AFTER or not srt[n // 4] <= held <= srt[3 * n // 4]:
            self._offset = held = srt[n // 2]
        return time_boot_ms * NS_PER_MS + held
