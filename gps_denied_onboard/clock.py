"""Injected time.

Core code never reads the wall clock: it takes a :class:`Clock`. Nodes hand
in the ROS clock (``nodes.ros_clock.RosClock``) so that a ``use_sim_time``
replay sees exactly the recorded times; tests hand in :class:`ManualClock`.

This module is the one place in the core allowed to touch :mod:`time`:
:class:`MonotonicClock` exists for ROS-free command-line tools and for the
recorder's durability timer (fdatasync cadence is about the disk, not about
flight time, so it follows the host's monotonic clock even during a replay).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

NS_PER_S = 1_000_000_000


@runtime_checkable
class Clock(Protocol):
    """A source of time in integer nanoseconds.

    ``now_ns`` is nanoseconds since the Unix epoch for a wall/ROS/sim clock,
    or since an arbitrary origin for a monotonic clock; a clock never goes
    backwards except when a ROS sim-time source is restarted.
    """

    def now_ns(self) -> int:
        """Return the current time in nanoseconds."""
        ...


class ManualClock:
    """A clock that only moves when told to; thread-safe. For tests and replays."""

    def __init__(self, start_ns: int = 0) -> None:
        self._lock = threading.Lock()
        self._now = int(start_ns)

    def now_ns(self) -> int:
        with self._lock:
            return self._now

    def set_ns(self, value: int) -> None:
        """Jump to ``value``; refuses to go backwards."""
        with self._lock:
            if value < self._now:
                raise ValueError(f"ManualClock cannot go backwards ({value} < {self._now})")
            self._now = int(value)

    def advance_ns(self, delta: int) -> int:
        """Move forward by ``delta`` ns and return the new time."""
        if delta < 0:
            raise ValueError("ManualClock.advance_ns needs a non-negative delta")
        with self._lock:
            self._now += int(delta)
            return self._now

    def advance_s(self, seconds: float) -> int:
        return self.advance_ns(round(seconds * NS_PER_S))


class SystemClock:
    """Wall clock (``CLOCK_REALTIME``) for ROS-free tools outside the flight path."""

    def now_ns(self) -> int:
        return time.time_ns()


class MonotonicClock:
    """Host monotonic clock, for durability timers and benchmarks."""

    def now_ns(self) -> int:
        return time.monotonic_ns()


def ns_to_datetime(ns: int) -> datetime:
    """Convert epoch nanoseconds to an aware UTC datetime (microsecond precision)."""
    return datetime.fromtimestamp(ns / NS_PER_S, tz=timezone.utc)


def datetime_to_ns(value: datetime) -> int:
    """Convert an aware datetime to epoch nanoseconds."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: times in this project are always timezone-aware")
    delta = value - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000
