"""Pure replay scheduling: what to publish, in which order, and when.

Two pieces, both ROS-free and free of the host clock:

* :func:`playback_events` turns a bag's messages into the exact sequence of
  ``/clock`` ticks and message publications for one pass. It depends only on
  the bag and the options, never on wall time, so the same bag always gives
  the same sequence (the determinism the replay promises).
* :class:`Timeline` maps sim time to wall time for a rate, with pause,
  resume, single steps and rate changes. The player asks it when each event
  is due; tests drive it with a :class:`~gps_denied_onboard.clock.ManualClock`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from gps_denied_onboard.clock import NS_PER_S
from gps_denied_onboard.replay.bag import BagMessage
from gps_denied_onboard.replay.options import ReplayOptions


@dataclass(frozen=True)
class ClockTick:
    """Publish ``/clock`` = ``sim_ns``."""

    sim_ns: int


@dataclass(frozen=True)
class Publish:
    """Publish ``data`` on ``topic`` (after remapping) at ``sim_ns``.

    Attributes:
        sim_ns: when it is due in sim time; the recorded time, except that a
            message recorded out of order is due with its predecessor.
        topic: published name.
        recorded_topic: name in the bag.
        data: the recorded CDR bytes.
        recorded_ns: the recorded timestamp, unchanged.
    """

    sim_ns: int
    topic: str
    recorded_topic: str
    data: bytes
    recorded_ns: int


Event = ClockTick | Publish


def start_time_ns(bag_start_ns: int, options: ReplayOptions) -> int:
    """Sim time at which playback starts: the bag's first message plus the offset."""
    return bag_start_ns + round(options.start_offset_s * NS_PER_S)


def playback_events(
    messages: Iterable[BagMessage], *, start_ns: int, options: ReplayOptions
) -> Iterator[Event]:
    """The ordered events of one pass over ``messages``.

    Messages before ``start_ns`` or on unselected topics are dropped. With
    ``options.clock``, ticks fall at ``start_ns + k / clock_hz`` (sim time) up
    to the last message, and, with ``clock_before_messages``, a tick at a
    message's own time precedes it when the last tick was earlier. At equal
    times the tick comes first. Sim time never goes backwards within a pass.

    Args:
        messages: bag messages in bag order.
        start_ns: first sim time (see :func:`start_time_ns`).
        options: replay options.
    """
    period = round(NS_PER_S / options.clock_hz) if options.clock and options.clock_hz else 0
    next_tick = start_ns
    last_clock: int | None = None
    now = start_ns
    for msg in messages:
        if msg.timestamp_ns < start_ns or not options.selects(msg.topic):
            continue
        now = max(now, msg.timestamp_ns)
        if period:
            while next_tick <= now:
                yield ClockTick(next_tick)
                last_clock = next_tick
                next_tick += period
        if (
            options.clock
            and options.clock_before_messages
            and (last_clock is None or last_clock < now)
        ):
            yield ClockTick(now)
            last_clock = now
        yield Publish(now, options.published_name(msg.topic), msg.topic, msg.data, msg.timestamp_ns)


class Timeline:
    """Sim time <-> wall time for one pass, with rate, pause and steps.

    ``sim = sim_anchor + (wall - wall_anchor) * rate`` while playing; frozen
    while paused. A rate of ``None`` means as fast as possible: every event
    is due at once and sim time is whatever was published last.

    Args:
        sim_start_ns: sim time at ``wall_start_ns``.
        wall_start_ns: host time (any monotonic origin) playback starts at.
        rate: sim seconds per wall second, or ``None``.
        paused: start paused.
    """

    def __init__(
        self, sim_start_ns: int, wall_start_ns: int, rate: float | None, *, paused: bool = False
    ) -> None:
        self._sim_anchor = sim_start_ns
        self._wall_anchor = wall_start_ns
        self._rate = rate
        self._paused = paused
        self._reached = sim_start_ns

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def rate(self) -> float | None:
        return self._rate

    def sim_at(self, wall_ns: int) -> int:
        """Sim time at host time ``wall_ns`` (the last reached time when paused or at max rate)."""
        if self._paused or self._rate is None:
            return self._reached
        return self._sim_anchor + round((wall_ns - self._wall_anchor) * self._rate)

    def wall_for(self, sim_ns: int) -> int | None:
        """Host time at which ``sim_ns`` is due; ``None`` while paused."""
        if self._paused:
            return None
        if self._rate is None:
            return self._wall_anchor
        return self._wall_anchor + round((sim_ns - self._sim_anchor) / self._rate)

    def start(self, wall_ns: int) -> None:
        """Playback begins at ``wall_ns``, from the sim time reached so far.

        Sim time does not run between building a timeline and playing it
        (``--delay`` waits for discovery in that gap): without this, every
        event of the first ``delay * rate`` sim seconds would be overdue at
        once and go out in a burst.
        """
        self._sim_anchor = self._reached
        self._wall_anchor = wall_ns

    def reached(self, sim_ns: int) -> None:
        """Record that everything up to ``sim_ns`` was published."""
        self._reached = max(self._reached, sim_ns)

    def pause(self, wall_ns: int) -> None:
        """Freeze sim time at its value at ``wall_ns``."""
        if self._paused:
            return
        self._reached = max(self._reached, self.sim_at(wall_ns))
        self._paused = True

    def resume(self, wall_ns: int) -> None:
        """Continue from where sim time stood (a step may have moved it)."""
        if not self._paused:
            return
        self._paused = False
        self._sim_anchor = self._reached
        self._wall_anchor = wall_ns

    def set_rate(self, wall_ns: int, rate: float | None) -> None:
        """Change the rate without a jump in sim time."""
        if rate is not None and rate <= 0:
            raise ValueError("rate must be > 0 or None")
        current = self.sim_at(wall_ns)
        self._reached = max(self._reached, current)
        self._sim_anchor = self._reached if self._rate is None else current
        self._wall_anchor = wall_ns
        self._rate = rate
