"""Play a recorded FC MAVLink stream (``.tlog``) through the simulated FC, in sim time.

:class:`FcPlayback` sits on :class:`~gps_denied_onboard.fc_bridge.sim_fc.SimFc`:
the sim FC keeps doing what an autopilot does for the bridge (answer
parameter reads, record and decode everything the bridge sends) while its own
synthetic heartbeat/telemetry is switched off and the recorded frames go out
instead, each when the injected clock reaches its recorded time. Give it the
sim clock (a ``use_sim_time`` node's clock, which follows the replay's
``/clock``; a :class:`~gps_denied_onboard.clock.ManualClock` in tests) and the
FC bridge's input and output become part of the replay.

A recording streams what the recorded autopilot streamed, whatever the bridge
asks: the sim FC still answers the bridge's SET_MESSAGE_INTERVAL requests (it
plays the autopilot's command handling), but with its synthetic telemetry muted
only the recorded frames arrive, at their recorded rates. The bridge's
diagnostics then show those rates against the requested ones (e.g. the
sample flight's 25 Hz ATTITUDE against the 50 Hz asked), which is the truth
about the recording.

Frames go out in file order, each once; a frame already due when first seen
is sent at once (catch-up), so a late start never drops input. If sim time
jumps back (``--loop``), the playback starts again from the first frame.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.replay.tlog import TlogFrame, read_tlog


class FcPlayback:
    """Feeds tlog frames into a sim FC's send path at their sim times.

    Args:
        frames: the recorded frames (time-ordered).
        fc: a started ``SimFc`` (anything with ``inject_bytes`` and
            ``pause_heartbeats``).
        clock: sim clock.
        mute_synthetic: switch off the sim FC's own heartbeat and telemetry.
    """

    def __init__(self, frames: Sequence[TlogFrame], fc: Any, clock: Clock, *,
                 mute_synthetic: bool = True) -> None:
        self._frames = list(frames)
        self._fc = fc
        self._clock = clock
        self._next = 0
        self._last_now: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.restarts = 0
        if mute_synthetic:
            fc.pause_heartbeats(telemetry_too=True)

    @classmethod
    def from_tlog(cls, path: str | Path, fc: Any, clock: Clock, **kwargs: Any) -> FcPlayback:
        return cls(list(read_tlog(path)), fc, clock, **kwargs)

    @property
    def done(self) -> bool:
        with self._lock:
            return self._next >= len(self._frames)

    def pump(self) -> int:
        """Send every frame due at the clock's current time; return how many."""
        now = self._clock.now_ns()
        count = 0
        with self._lock:
            if self._last_now is not None and now < self._last_now:
                self._next = 0
                self.restarts += 1
            self._last_now = now
            while self._next < len(self._frames) and self._frames[self._next].time_ns <= now:
                self._fc.inject_bytes(self._frames[self._next].frame)
                self._next += 1
                count += 1
            self.sent += count
        return count

    def start(self, poll_s: float = 0.002) -> FcPlayback:
        """Pump from a background thread every ``poll_s`` host seconds."""
        def run() -> None:
            while not self._stop.wait(poll_s):
                self.pump()

        self._thread = threading.Thread(target=run, name="fc_playback", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
