"""Noticing, after take-off, that the flight data recorder died or stopped recording.

Kept apart from the sequencer: the sequencer brings the nodes up and down, while
this watch runs for the whole flight, fed with the recorder's signs of life, and
only says when they stop and when they come back.

Silence is measured on two clocks, and the recorder is lost only once it was silent
for the limit on both. Host time, because whether a process lives is not a question
of flight time (during a replay at 4x one host second is four flight seconds, and
the recorder's diagnostics come every flight second). Flight time (the ROS clock,
``/clock`` in a replay), because the recorder's diagnostics timer runs on it: a
lockstep replay that waits on a restarted estimator pauses ``/clock`` and with it
every sign of life, and host time alone called that a dead recorder (a false
CRITICAL "FDR recorder lost" at the GCS). In flight the two clocks run together.
"""

from __future__ import annotations

from gps_denied_onboard.clock import Clock

__all__ = ["RecorderWatch"]


class RecorderWatch:
    """Notices a recorder that died or stopped accepting records.

    Fed with each sign of life (the recorder's diagnostics, a successful state
    read); :meth:`tick` returns ``"lost"`` once when the recorder has been
    silent for longer than the limit and ``"recovered"`` once when it is back.
    ``host`` is host time; ``flight``, when given, the ROS clock the recorder's
    diagnostics run on (see the module's docstring).
    """

    def __init__(self, host: Clock, silence_ns: int, flight: Clock | None = None) -> None:
        self._clocks = (host,) if flight is None else (host, flight)
        self._silence_ns = silence_ns
        self._last_alive: tuple[int, ...] | None = None
        self._lost = False
        self.lost_since_ns: int | None = None

    def _now(self) -> tuple[int, ...]:
        return tuple(c.now_ns() for c in self._clocks)

    def alive(self, healthy: bool = True) -> None:
        if healthy:
            self._last_alive = self._now()

    def _silent(self, now: tuple[int, ...]) -> int:
        assert self._last_alive is not None
        return min(n - last for n, last in zip(now, self._last_alive, strict=True))

    def tick(self) -> str | None:
        now = self._now()
        if self._last_alive is None:
            self._last_alive = now
            return None
        # a clock that stepped back (a replay looped, the system time was set) counts
        # its silence from there, or a dead recorder would go unnoticed until it caught up
        self._last_alive = tuple(
            min(n, last) for n, last in zip(now, self._last_alive, strict=True)
        )
        silent = self._silent(now)
        if not self._lost and silent > self._silence_ns:
            self._lost = True
            self.lost_since_ns = self._last_alive[0]
            return "lost"
        if self._lost and silent <= self._silence_ns:
            self._lost = False
            return "recovered"
        return None

    @property
    def silent_for_ns(self) -> int:
        """How long the recorder has been silent: the shorter of its silences on the
        two clocks."""
        return 0 if self._last_alive is None else self._silent(self._now())
