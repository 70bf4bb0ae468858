"""Ctrl-C and SIGTERM from the first instant of a process (no ROS import here).

Node executables call :func:`install_early` before they import rclpy or build
a node, so a signal that arrives while a node is still starting is recorded,
not raised as ``KeyboardInterrupt`` out of whatever rclpy call was running
(a traceback from ``create_publisher``). The node then stops quietly with
:data:`EXIT_INTERRUPTED`.

A handler only appends to a list: ``Event.set`` takes a lock, and a second
signal arriving while the first handler holds it, in the same thread,
deadlocks (a terminal Ctrl-C under ``ros2 launch`` delivers two). A relay
thread turns the list into an event for those who wait on one.

Helpers that must finish whatever the operator does (initdb, pg_ctl) run with
:func:`run_out_of_reach`, in a session of their own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from typing import Final

#: Exit code of a process stopped by Ctrl-C/SIGTERM before it was up (128 + SIGINT,
#: as a shell reports a Ctrl-C).
EXIT_INTERRUPTED: Final = 130
#: How often the relay thread looks at the list.
RELAY_PERIOD_S: Final = 0.05


class StopSignals:
    """The stop signals this process received, in order."""

    def __init__(self, signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
        self.signums = signums
        self.received: list[int] = []

    def _handler(self, signum: int, frame: object) -> None:
        self.received.append(signum)

    def install(self) -> StopSignals:
        for signum in self.signums:
            signal.signal(signum, self._handler)
        return self

    @property
    def stopped(self) -> bool:
        return bool(self.received)

    def relay(self, stop: threading.Event) -> None:
        """Set ``stop`` (from a thread, never from the handler) once a signal came,
        including one that came before this call. The thread looks every
        :data:`RELAY_PERIOD_S` while it waits on ``stop`` itself, so it ends as soon
        as anything else sets it."""

        def _relay() -> None:
            while not self.received:
                if stop.wait(RELAY_PERIOD_S):
                    return
            stop.set()

        threading.Thread(target=_relay, name="signal-relay", daemon=True).start()


_EARLY: Final = StopSignals()


def install_early() -> StopSignals:
    """Install the recording handlers for SIGINT and SIGTERM (the same list for
    the whole process: calling it again keeps what was received).

    Must run in the main thread (Python's rule for ``signal.signal``).
    """
    return _EARLY.install()


def ignore_from_now(signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
    """Ignore further stop signals: the work is done and the process exits.

    While the interpreter finalizes, Python puts every signal that has a
    Python handler back to the default (deadly) disposition, so one more
    Ctrl-C in that window would kill a process that had landed cleanly and
    turn its exit code into -SIGINT. An ignored signal stays ignored.
    """
    for signum in signums:
        signal.signal(signum, signal.SIG_IGN)


def wait_for_stop(stop: threading.Event) -> None:
    """Block the main thread until ``stop`` is set, waking every :data:`RELAY_PERIOD_S`.

    Why not ``stop.wait()``: the kernel may hand a process's SIGINT to any of its
    threads (a DDS or executor thread), and Python then runs the handler only
    when the main thread next executes bytecode. A main thread asleep in an
    untimed wait never does, so the signal is never seen and the process never
    lands (CI: a take-off that ignored its Ctrl-C for 120 s).
    """
    while not stop.wait(RELAY_PERIOD_S):
        pass


def run_out_of_reach(argv: Sequence[str], *, cwd: str = "/") -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to its end in a session of its own, where the stop signals sent
    to our process group (every Ctrl-C of a terminal) never reach it; its output
    is captured as text, its exit status returned, not checked.

    ``start_new_session`` alone leaves a window. Where it may, CPython starts the
    child with vfork(), and that child puts every signal we handle back to its
    default action *before* it calls setsid(): a Ctrl-C to our group in between
    kills it before it has run anything (a Ctrl-C storm during take-off killed
    initdb so: "initdb failed (exit -2)"). CPython never vforks a child that must
    set its user id, so we ask for our own: the child is forked, keeps our
    recording handlers until it has left the group, and exec() resets them.
    """
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        start_new_session=True,
        user=os.geteuid(),
    )


def relay_stop_signals(
    stop: threading.Event, signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
) -> None:
    """Set ``stop`` on these signals, without taking a lock in the handler."""
    signals = install_early()
    if signums != signals.signums:
        signals = StopSignals(signums).install()
    signals.relay(stop)
