"""In-memory bag, sink and waiter for ROS-free replay tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.replay.bag import BagMessage, BagTopic

S = 1_000_000_000
T0 = 1_700_000_000 * S


class ListSource:
    """A BagSource over a list of (topic, t_ns, data)."""

    backend = "list"

    def __init__(self, items: Sequence[tuple[str, int, bytes]]) -> None:
        self.path = Path("/memory")
        self.items = [BagMessage(t, ts, d) for t, ts, d in items]
        self.skipped: list[str] = []
        names = sorted({m.topic for m in self.items})
        self.topics = {n: BagTopic(n, "std_msgs/msg/String",
                                   sum(1 for m in self.items if m.topic == n)) for n in names}
        self.start_ns = min(m.timestamp_ns for m in self.items)
        self.end_ns = max(m.timestamp_ns for m in self.items)

    def messages(self, topics: Sequence[str] = (), start_ns: int | None = None
                 ) -> Iterator[BagMessage]:
        for m in self.items:
            if topics and m.topic not in topics:
                continue
            if start_ns is not None and m.timestamp_ns < start_ns:
                continue
            yield m

    def close(self) -> None:
        pass


class ListSink:
    """Records (wall_ns, kind, topic-or-None, payload)."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.events: list[tuple[int, str, str | None, object]] = []

    def publish(self, topic: str, data: bytes) -> None:
        self.events.append((self.clock.now_ns(), "msg", topic, data))

    def publish_clock(self, sim_ns: int) -> None:
        self.events.append((self.clock.now_ns(), "clock", None, sim_ns))

    def messages(self) -> list[tuple[int, str | None, object]]:
        return [(w, t, d) for w, k, t, d in self.events if k == "msg"]

    def clocks(self) -> list[int]:
        return [int(d) for _w, k, _t, d in self.events if k == "clock"]  # type: ignore[call-overload]


class ManualWaiter:
    """Advances a ManualClock instead of sleeping; runs hooks at wall times."""

    def __init__(self, clock: ManualClock, idle_step_ns: int = 100_000_000) -> None:
        self.clock = clock
        self.idle_step_ns = idle_step_ns
        self.hooks: list[tuple[int, Callable[[], None]]] = []
        self.waits = 0

    def at(self, wall_ns: int, fn: Callable[[], None]) -> None:
        self.hooks.append((wall_ns, fn))
        self.hooks.sort(key=lambda h: h[0])

    def wait(self, timeout_ns: int | None) -> None:
        self.waits += 1
        assert self.waits < 100_000, "player is spinning"
        step = self.idle_step_ns if timeout_ns is None else timeout_ns
        target = self.clock.now_ns() + step
        if self.hooks and self.hooks[0][0] <= target:
            when, fn = self.hooks.pop(0)
            self.clock.set_ns(max(when, self.clock.now_ns()))
            fn()
            return
        if timeout_ns is None and not self.hooks:
            raise AssertionError("paused forever with nothing scheduled")
        self.clock.set_ns(target)

    def wake(self) -> None:
        pass
