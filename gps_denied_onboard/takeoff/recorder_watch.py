"""Noticing, after take-off, that the flight data recorder died or stopped recording.

Kept apart from the sequencer: the sequencer brings the nodes up and down, while
this watch runs for the whole flight, fed with the recorder's signs of life, and
only says when they stop and when they come back.
"""

from __future__ import annotations

from gps_denied_onboard.clock import Clock

__all__ = ["RecorderWatch"]


class RecorderWatch:
    """Notices a recorder that died or stopped accepting records.

    Fed with each sign of life (the recorder's diagnostics, a successful state
    read); :meth:`tick` returns ``"lost"`` once when the recorder has been
    silent for longer than the limit and ``"recovered"`` once when it is back.
    """

    def __init__(self, clock: Clock, silence_ns: int) -> None:
        self._clock = clock
        self._silence_ns = silence_ns
        self._last_alive: int | None = None
        self._lost = False
        self.lost_since_ns: int | None = None

    def alive(self, healthy: bool = True) -> None:
        if healthy:
            self._last_alive = self._clock.now_ns()

    def tick(self) -> str | None:
        now = self._clock.now_ns()
        if self._last_alive is None:
            self._last_alive = now
            return None
        silent = now - self._last_alive
        if not self._lost and silent > self._silence_ns:
            self._lost = True
            self.lost_since_ns = self._last_alive
            return "lost"
        if self._lost and silent <= self._silence_ns:
            self._lost = False
            return "recovered"
        return None

    @property
    def silent_for_ns(self) -> int:
        return 0 if self._last_alive is None else self._clock.now_ns() - self._last_alive
