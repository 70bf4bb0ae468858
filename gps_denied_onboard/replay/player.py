"""The replay loop, ROS-free: events from a bag, published through a sink.

The :class:`Player` pulls the event sequence of :mod:`.schedule`, waits until
each event is due on an injected :class:`~gps_denied_onboard.clock.Clock`
(through a :class:`Waiter` that control commands can wake), and hands it to a
:class:`ReplaySink`. The ROS adapter (:mod:`.publisher`) is one sink; tests
use a list. Control (pause, resume, step, rate, stop) is thread-safe so a
keyboard thread or a ROS service can drive it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from gps_denied_onboard.clock import NS_PER_S, Clock
from gps_denied_onboard.replay.bag import BagSource
from gps_denied_onboard.replay.options import ReplayOptions
from gps_denied_onboard.replay.schedule import (
    ClockTick,
    Event,
    Publish,
    Timeline,
    playback_events,
    start_time_ns,
)


class ReplaySink(Protocol):
    """Where events go: ROS publishers, or a list in tests."""

    def publish(self, topic: str, data: bytes) -> None:
        """Publish serialized ``data`` on the (remapped) ``topic``."""
        ...

    def publish_clock(self, sim_ns: int) -> None:
        """Publish ``/clock``."""
        ...


class Waiter(Protocol):
    """Blocks the player until a time passes or a control command arrives."""

    def wait(self, timeout_ns: int | None) -> None:
        """Return after ``timeout_ns`` (forever if ``None``) or when woken."""
        ...

    def wake(self) -> None:
        """Make a pending or the next :meth:`wait` return now."""
        ...


class ConditionWaiter:
    """A :class:`Waiter` on a condition variable (real time)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._woken = False

    def wait(self, timeout_ns: int | None) -> None:
        with self._cond:
            if not self._woken:
                self._cond.wait(None if timeout_ns is None else max(timeout_ns, 0) / NS_PER_S)
            self._woken = False

    def wake(self) -> None:
        with self._cond:
            self._woken = True
            self._cond.notify_all()


@dataclass
class ReplaySummary:
    """What a replay did.

    Attributes:
        per_topic: messages published per published topic name.
        clock_ticks: ``/clock`` messages published.
        sim_start_ns / sim_end_ns: first and last sim time published.
        wall_s: host seconds from the first to the last event.
        passes: completed passes over the bag.
        skipped: notes about what was not replayed (non-CDR channels...).
        stopped: ended by :meth:`Player.stop` rather than by the bag's end.
        notes: what else the replay has to say (e.g. the estimator lockstep's count).
    """

    per_topic: Counter[str] = field(default_factory=Counter)
    clock_ticks: int = 0
    sim_start_ns: int | None = None
    sim_end_ns: int | None = None
    wall_s: float = 0.0
    passes: int = 0
    skipped: list[str] = field(default_factory=list)
    stopped: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return sum(self.per_topic.values())

    @property
    def sim_s(self) -> float:
        if self.sim_start_ns is None or self.sim_end_ns is None:
            return 0.0
        return (self.sim_end_ns - self.sim_start_ns) / NS_PER_S

    @property
    def achieved_rate(self) -> float | None:
        """Sim seconds per wall second; ``None`` when no wall time passed."""
        return self.sim_s / self.wall_s if self.wall_s > 0 else None

    @property
    def messages_per_s(self) -> float | None:
        return self.messages / self.wall_s if self.wall_s > 0 else None

    def format(self) -> str:
        """Human-readable summary, one topic per line."""
        lines = ["replay summary:"]
        width = max([len(t) for t in self.per_topic] + [6])
        for topic in sorted(self.per_topic):
            lines.append(f"  {topic:<{width}}  {self.per_topic[topic]:>8} msgs")
        lines.append(f"  {'/clock':<{width}}  {self.clock_ticks:>8} ticks")
        rate = self.achieved_rate
        mps = self.messages_per_s
        rate_text = f"x{rate:.2f}" if rate is not None else "x-"
        mps_text = f"{mps:.0f} msg/s" if mps is not None else "- msg/s"
        lines.append(
            f"  {self.messages} messages, sim {self.sim_s:.3f} s in wall {self.wall_s:.3f} s"
            f" ({rate_text}, {mps_text})"
        )
        lines.append(f"  passes: {self.passes}{' (stopped early)' if self.stopped else ''}")
        lines.extend(f"  note: {note}" for note in self.skipped)
        lines.extend(f"  {note}" for note in self.notes)
        return "\n".join(lines)


ProgressFn = Callable[["Player", Event], None]


class Player:
    """Replays one bag into a sink.

    Args:
        source: the opened bag.
        sink: where events are published.
        options: replay options.
        clock: host clock deciding when events are due (monotonic in real
            use, a ``ManualClock`` in tests).
        waiter: blocks until due; its ``wake`` is called on every control
            command.
        progress: called after every published event (from the player thread).
    """

    def __init__(
        self,
        source: BagSource,
        sink: ReplaySink,
        options: ReplayOptions,
        clock: Clock,
        *,
        waiter: Waiter | None = None,
        progress: ProgressFn | None = None,
    ) -> None:
        self.source = source
        self.sink = sink
        self.options = options
        self.clock = clock
        self.waiter: Waiter = waiter or ConditionWaiter()
        self.progress = progress
        self.summary = ReplaySummary(skipped=list(source.skipped))
        self.sim_start_ns = start_time_ns(source.start_ns, options)
        self.sim_end_ns = max(source.end_ns, self.sim_start_ns)
        self._lock = threading.Lock()
        self._timeline = Timeline(
            self.sim_start_ns, clock.now_ns(), options.rate, paused=options.start_paused
        )
        self._steps = 0
        self._stop = False
        self._events: Iterator[Event] | None = None
        self._wall_first: int | None = None
        self._pending: Event | None = None
        self.last_sim_ns = self.sim_start_ns
        self._next_hold_ns: int | None = None

    # --- control (any thread) -------------------------------------------------
    @property
    def paused(self) -> bool:
        with self._lock:
            return self._timeline.paused

    def pause(self) -> None:
        with self._lock:
            self._timeline.pause(self.clock.now_ns())
        self.waiter.wake()

    def resume(self) -> None:
        with self._lock:
            self._timeline.resume(self.clock.now_ns())
        self.waiter.wake()

    def toggle_pause(self) -> bool:
        """Flip pause; return whether it is now paused."""
        with self._lock:
            now = self.clock.now_ns()
            if self._timeline.paused:
                self._timeline.resume(now)
            else:
                self._timeline.pause(now)
            paused = self._timeline.paused
        self.waiter.wake()
        return paused

    def request_step(self, count: int = 1) -> None:
        """While paused, let the next ``count`` messages (and their ticks) through."""
        with self._lock:
            self._steps += count
        self.waiter.wake()

    def set_rate(self, rate: float | None) -> None:
        with self._lock:
            self._timeline.set_rate(self.clock.now_ns(), rate)
        self.waiter.wake()

    def stop(self) -> None:
        with self._lock:
            self._stop = True
        self.waiter.wake()

    # --- events ---------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        """Every event of the replay, pass after pass (deterministic)."""
        passes = 0
        while True:
            stream = self.source.messages(
                [t for t in self.source.topics if self.options.selects(t)], self.sim_start_ns
            )
            yield from playback_events(stream, start_ns=self.sim_start_ns, options=self.options)
            passes += 1
            self.summary.passes = passes
            limit = self.options.max_loops
            if not self.options.loop or (limit and passes >= limit):
                return
            with self._lock:
                if self._stop:
                    return
                self._timeline = Timeline(
                    self.sim_start_ns,
                    self.clock.now_ns(),
                    self._timeline.rate,
                    paused=self._timeline.paused,
                )

    def _next_event(self) -> Event | None:
        if self._pending is not None:
            event, self._pending = self._pending, None
            return event
        if self._events is None:
            self._events = self.events()
        nxt = next(self._events, None)
        limit = self.options.duration_s
        if (
            nxt is not None
            and limit is not None
            and nxt.sim_ns > self.sim_start_ns + int(limit * NS_PER_S)
        ):
            return None  # --duration: the replay ends here
        return nxt

    def _emit(self, event: Event) -> None:
        now = self.clock.now_ns()
        if self._wall_first is None:
            self._wall_first = now
        if isinstance(event, ClockTick):
            self.sink.publish_clock(event.sim_ns)
            self.summary.clock_ticks += 1
        else:
            self.sink.publish(event.topic, event.data)
            self.summary.per_topic[event.topic] += 1
        if self.summary.sim_start_ns is None:
            self.summary.sim_start_ns = event.sim_ns
        self.summary.sim_end_ns = event.sim_ns
        self.summary.wall_s = (now - self._wall_first) / NS_PER_S
        self.last_sim_ns = event.sim_ns
        with self._lock:
            self._timeline.reached(event.sim_ns)
        if self.progress is not None:
            self.progress(self, event)

    def step(self) -> list[Event]:
        """Deterministic step mode: publish the next message and the ticks before it.

        Does not wait and ignores pause; returns the events published (empty
        at the end of the replay). Used by the main job and tests to drive a
        replay from their own loop.
        """
        out: list[Event] = []
        while (event := self._next_event()) is not None:
            self._emit(event)
            out.append(event)
            if isinstance(event, Publish):
                break
        return out

    def run(self) -> ReplaySummary:
        """Play to the end (or until :meth:`stop`), honouring rate and pause.

        Sim time starts running when this is first called, not when the
        player was built.
        """
        if self._wall_first is None and self._pending is None:
            with self._lock:
                self._timeline.start(self.clock.now_ns())
        while True:
            event = self._next_event()
            if event is None:
                return self.summary
            if not self._wait_due(event):
                self._pending = event
                self.summary.stopped = True
                return self.summary
            self._emit(event)

    def _wait_due(self, event: Event) -> bool:
        """Block until ``event`` is due; False when stopped first."""
        while True:
            held: int | None = None
            with self._lock:
                if self._stop:
                    return False
                if self._timeline.paused:
                    if self._steps > 0:
                        if isinstance(event, Publish):
                            self._steps -= 1
                        return True
                    timeout, held = self._held_clock(self.clock.now_ns())
                else:
                    self._next_hold_ns = None
                    due = self._timeline.wall_for(event.sim_ns)
                    assert due is not None
                    timeout = due - self.clock.now_ns()
                    if timeout <= 0:
                        return True
            if held is not None:
                self.sink.publish_clock(held)
            self.waiter.wait(timeout)

    def _held_clock(self, now_ns: int) -> tuple[int | None, int | None]:
        """While paused: (wait before the next held ``/clock``, the sim time to publish now).

        As ``ros2 bag play`` does, a paused replay keeps publishing ``/clock`` at
        the time it holds, every ``1 / clock_hz`` wall seconds: a ``use_sim_time``
        node that starts or matches during the pause reads that time instead of
        zero, and one that waits for sim time to reach the bag start can play on
        in step with it. The held time is the last one published (the bag start
        before anything was), so ``/clock`` never goes back. These re-publications
        depend on wall time and are not events: the event sequence and
        :attr:`ReplaySummary.clock_ticks` stay the bag's. Off without ``/clock``
        or with ``clock_hz`` 0.
        """
        if not self.options.clock or not self.options.clock_hz:
            return None, None
        period = round(NS_PER_S / self.options.clock_hz)
        if self._next_hold_ns is not None and now_ns < self._next_hold_ns:
            return self._next_hold_ns - now_ns, None
        self._next_hold_ns = now_ns + period
        return period, self.last_sim_ns
