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
going back) or the bridge's clock going back starts the window afresh.

A message later than ``reset_after_s`` is not a new clock until its
lateness lasts. A reader stalled for seconds (a loaded machine, a swap, the
node descheduled) drains its socket's backlog at once: those messages arrive
late by the stall and then by less and less, down to nothing. Taken as a
clock jump, the first of them restarted the window and the backlog was
stamped with its arrival: a 3 s stall put 150 attitude samples up to 3 s off,
among the current ones, where a frame's capture is interpolated. Now they are
stamped by the mapping as it stands, and the window only restarts once the
lateness has lasted :data:`JUMP_CONFIRM_MS` of the autopilot's time without
falling (:meth:`FcTimeMapper._jumped`): what a jump of the bridge's clock (a
replay's ``/clock`` leaping ahead) looks like, and a draining backlog, whose
lateness falls as fast as its boot time rises, does not.

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

#: late messages (past ``reset_after_s``) must last this much of the autopilot's time,
#: their lateness holding within :data:`JUMP_SPREAD_MS`, to be a new clock (see
#: :meth:`FcTimeMapper._jumped`)
JUMP_CONFIRM_MS: Final = 1000
JUMP_SPREAD_MS: Final = 100


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
        # (boot ms, offset) of the late messages since the last one on time
        self._late: deque[tuple[int, int]] = deque()
        self._late_since = 0  # boot ms of the first of them
        self.resets = 0

    def _reset(self) -> None:
        self._order.clear()
        self._sorted.clear()
        self._offset = None
        self._late.clear()
        self.resets += 1

    def _jumped(self, time_boot_ms: int, offset: int) -> bool:
        """Take one late message; whether the late ones now say the clock jumped.

        They do when they have lasted :data:`JUMP_CONFIRM_MS` of the autopilot's
        time and, over the last such stretch, the median lateness of its older
        half and of its newer half agree within :data:`JUMP_SPREAD_MS`: a
        backlog draining at once loses its lateness as fast as its boot time
        advances (halves a second apart differ by half a second), a jumped clock
        keeps it, whatever the jitter of single messages.
        """
        late = self._late
        if not late:
            self._late_since = time_boot_ms
        late.append((time_boot_ms, offset))
        while time_boot_ms - late[0][0] > JUMP_CONFIRM_MS:
            late.popleft()
        if time_boot_ms - self._late_since < JUMP_CONFIRM_MS or len(late) < 4:
            return False
        offsets = [o for _, o in late]
        half = len(offsets) // 2
        older = sorted(offsets[:half])
        newer = sorted(offsets[half:])
        drift = newer[len(newer) // 2] - older[len(older) // 2]
        return abs(drift) <= JUMP_SPREAD_MS * NS_PER_MS

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
        """The message's time on the bridge's clock.

        A bridge's clock at zero or before is no clock (a ``use_sim_time`` node
        before the first ``/clock``): the arrival is returned and nothing is
        learned from it, so that the clock's start is not a jump to confirm.
        """
        if recv_ns <= 0:
            return recv_ns
        offset = recv_ns - time_boot_ms * NS_PER_MS
        last = self._last_boot_ms
        current = self.offset_ns
        self._last_boot_ms = time_boot_ms
        if (last is not None and time_boot_ms + 1000 < last) or (
            current is not None and offset < current - self._reset_ns
        ):
            self._reset()  # reboot, or the bridge's clock went back (sim time)
        elif current is not None and offset > current + self._reset_ns:
            if not self._jumped(time_boot_ms, offset):
                # a stalled reader's backlog (or a jump not yet confirmed): by the mapping
                return time_boot_ms * NS_PER_MS + current
            late = [o for _, o in self._late]
            self._reset()  # the bridge's clock jumped ahead: the late ones are the new clock
            for o in late[:-1]:
                self._order.append(o)
                bisect.insort(self._sorted, o)
        else:
            self._late.clear()
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
