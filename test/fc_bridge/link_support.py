"""Helpers shared by the link-half FC bridge tests: a link against a SimFc, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from gps_denied_onboard.clock import MonotonicClock
from gps_denied_onboard.fc_bridge.config import FcBridgeConfig
from gps_denied_onboard.fc_bridge.link import FcLink
from gps_denied_onboard.fc_bridge.sim_fc import SimFc
from gps_denied_onboard.fc_bridge.transport import Transport
from gps_denied_onboard.records import MemorySink


def wait_until(cond: Callable[[], bool], timeout_s: float = 5.0, step_s: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step_s)
    return cond()


class PassThroughTransport(Transport):
    """A link's real transport with every call passed through: a test subclasses it
    to hold or delay one of them where a real reader stalls."""

    def __init__(self, real: Transport) -> None:
        self._real = real

    def fileno(self) -> int:
        return self._real.fileno()

    def read(self) -> bytes:
        return self._real.read()

    def write(self, data: bytes) -> bool:
        return self._real.write(data)

    def close(self) -> None:
        self._real.close()


@contextmanager
def linked(
    autopilot: str = "ardupilot", *, fc_kwargs: dict[str, Any] | None = None, **cfg: object
) -> Iterator[tuple[SimFc, FcLink, MemorySink]]:
    """A started SimFc and an open FcLink to it (fast heartbeats), torn down after."""
    fc = SimFc(autopilot, **{"heartbeat_hz": 10.0, "telemetry_hz": 20.0, **(fc_kwargs or {})})
    fc.start()
    sink = MemorySink()
    config = FcBridgeConfig(
        **{
            "connection": fc.connection,
            "heartbeat_period_s": 0.1,
            "missed_heartbeats": 3,
            "reconnect_backoff_min_s": 0.05,
            "reconnect_backoff_max_s": 0.2,
            **cfg,
        }  # type: ignore[arg-type]
    )
    link = FcLink(config, MonotonicClock(), sink)
    try:
        link.open()
        yield fc, link, sink
    finally:
        link.close()
        fc.stop()
