"""Terminal side of the replay tool: progress bar and keyboard control (ROS-free)."""

from __future__ import annotations

import os
import select
import sys
import threading
from typing import Any, TextIO

from gps_denied_onboard.clock import NS_PER_S, Clock, ns_to_datetime
from gps_denied_onboard.replay.player import Player
from gps_denied_onboard.replay.schedule import Event

#: Host-time gap between two redraws of the bar.
REDRAW_NS = 100_000_000


class ProgressBar:
    """A one-line progress bar on a stream (stderr), with sim time.

    On a tty it redraws in place at most every 100 ms; elsewhere it prints a
    line at each 10 % step. Call :meth:`finish` at the end.

    Args:
        stream: where to draw.
        clock: host clock for redraw throttling.
        sim_start_ns / sim_end_ns: the span being replayed.
    """

    def __init__(self, stream: TextIO, clock: Clock, sim_start_ns: int, sim_end_ns: int) -> None:
        self._stream = stream
        self._clock = clock
        self._start = sim_start_ns
        self._span = max(sim_end_ns - sim_start_ns, 1)
        self._tty = stream.isatty()
        self._last_draw = -REDRAW_NS
        self._last_decile = -1

    def render(self, player: Player, sim_ns: int) -> str:
        frac = min(max((sim_ns - self._start) / self._span, 0.0), 1.0)
        width = 30
        filled = int(frac * width)
        bar = "#" * filled + "." * (width - filled)
        stamp = ns_to_datetime(sim_ns).strftime("%H:%M:%S.%f")[:-3]
        rate = player.options.rate
        state = "PAUSED" if player.paused else (f"x{rate:g}" if rate else "max")
        return (f"[{bar}] {100 * frac:5.1f}%  sim {stamp}Z "
                f"+{(sim_ns - self._start) / NS_PER_S:8.2f}s / {self._span / NS_PER_S:.2f}s  "
                f"{player.summary.messages} msgs  {state}")

    def __call__(self, player: Player, event: Event) -> None:
        now = self._clock.now_ns()
        if self._tty:
            if now - self._last_draw >= REDRAW_NS:
                self._last_draw = now
                self._stream.write("\r" + self.render(player, event.sim_ns) + "\x1b[K")
                self._stream.flush()
            return
        decile = int(10 * (event.sim_ns - self._start) / self._span)
        if decile > self._last_decile:
            self._last_decile = decile
            self._stream.write(self.render(player, event.sim_ns) + "\n")
            self._stream.flush()

    def finish(self, player: Player) -> None:
        line = self.render(player, player.last_sim_ns)
        self._stream.write(("\r" + line + "\x1b[K\n") if self._tty else line + "\n")
        self._stream.flush()


class KeyboardControl:
    """Space toggles pause, ``s`` steps one message while paused, ``q`` stops.

    Active only when stdin is a tty; puts it in cbreak mode and restores it.
    """

    def __init__(self, player: Player, stdin: TextIO | None = None) -> None:
        self._player = player
        self._stdin = stdin or sys.stdin
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved: Any = None

    def start(self) -> bool:
        if not self._stdin.isatty():
            return False
        import termios
        import tty

        fd = self._stdin.fileno()
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        self._thread = threading.Thread(target=self._loop, name="replay-keys", daemon=True)
        self._thread.start()
        return True

    def _loop(self) -> None:
        fd = self._stdin.fileno()
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            key = os.read(fd, 1)
            if key == b" ":
                self._player.toggle_pause()
            elif key in {b"s", b"n"}:
                self._player.request_step()
            elif key in {b"q", b"\x1b"}:
                self._player.stop()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        if self._saved is not None:
            import termios

            termios.tcsetattr(self._stdin.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None
