"""The node's ROS clock as a core :class:`~gps_denied_onboard.clock.Clock`, and
the same clock stamped with the data a callback handles."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from rclpy.node import Node


class RosClock:
    """The node's ROS clock as a core :class:`~gps_denied_onboard.clock.Clock`.

    Follows ``/clock`` when the node runs with ``use_sim_time``, so replays
    stamp records with the recorded flight's time.
    """

    def __init__(self, node: Node) -> None:
        self._clock = node.get_clock()

    def now_ns(self) -> int:
        return int(self._clock.now().nanoseconds)

    def ready(self) -> bool:
        """False while the node runs on ``use_sim_time`` and no ``/clock`` has come yet:
        ROS time then reads 0, which a wall clock never does."""
        return self.now_ns() != 0


class DataTimeClock:
    """The node's clock, except while a message is handled: then the message's stamp.

    ROS convention is that what is derived from data carries the data's stamp;
    applied to flight records, it makes a replay write the same records every
    time, instead of stamps that depend on when a callback happened to run.
    The override is per thread, so other callbacks keep the live clock.
    """

    def __init__(self, base: RosClock) -> None:
        self._base = base
        self._local = threading.local()

    def now_ns(self) -> int:
        stamp: int | None = getattr(self._local, "stamp", None)
        return self._base.now_ns() if stamp is None else stamp

    @contextlib.contextmanager
    def at(self, stamp_ns: int) -> Iterator[None]:
        """Within the block, ``now_ns()`` on this thread is ``stamp_ns`` (0 = live clock)."""
        previous = getattr(self._local, "stamp", None)
        self._local.stamp = stamp_ns or None
        try:
            yield
        finally:
            self._local.stamp = previous
