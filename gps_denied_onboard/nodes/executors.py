"""Which rclpy executor spins a node whose hot path is a stream of small messages.

rclpy's Python executors rebuild a wait set and walk every entity in Python for
each message they take. The visual estimator's node takes about 60 messages per
replayed second of flight (``/clock``, ``/fc/imu``, ``/fc/navsat``, ``/fc/status``,
``/fc/altitude``), so at 8x replay that bookkeeping ran on the node's main thread
hundreds of times a second, holding the GIL its matching thread needs. Jazzy's
``rclpy.experimental.EventsExecutor`` does it in C++: in the main job it cut the
node's CPU from 57-60 s to 48-50 s for the same 480 frames (two runs each, on a
machine loaded by two test runs).

Humble's rclpy has no ``rclpy.experimental`` (JetPack 6 runs Humble): there the
node gets ``SingleThreadedExecutor``, which rclpy has had since Foxy and which
these nodes ran on before. Both take the same callbacks, one at a time.

And how an executor spun on a thread of its own is stopped (:class:`BackgroundSpin`).
"""

from __future__ import annotations

import importlib
import threading
from typing import Final

from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor

#: where Jazzy (rclpy 7) keeps the C++ events executor; Humble has no such module
EVENTS_EXECUTOR_MODULE: Final = "rclpy.experimental"


def lean_executor() -> Executor:
    """The events executor where this rclpy has one, else the single-threaded one.

    Either runs one callback at a time, so a node's callbacks need no locks
    between themselves on account of the choice.
    """
    try:
        module = importlib.import_module(EVENTS_EXECUTOR_MODULE)
    except ImportError:
        return SingleThreadedExecutor()
    factory = getattr(module, "EventsExecutor", None)
    if factory is None:
        return SingleThreadedExecutor()
    executor: Executor = factory()
    return executor


class BackgroundSpin:
    """An executor spun on a thread of its own, stopped before it is shut down.

    Why not ``Thread(target=executor.spin)`` and ``executor.shutdown()``: Jazzy's
    ``Executor.shutdown`` destroys the executor's guard condition at once (its wait
    for outstanding callbacks is skipped), and a callback's handler finishing just
    then triggers that guard: ``InvalidHandle`` ("destruction was requested") is
    raised out of the spinning thread's ``spin_once`` and printed as a traceback
    (seen: ``takeoff_sequencer`` interrupted while it gave up on the recorder's
    services). Here the thread spins in short turns and is joined before
    :meth:`stop` shuts the executor down, so no thread is inside it then. For a
    single-threaded executor that is all of them; a pool's (``MultiThreadedExecutor``)
    handlers queued by then still start after the shutdown, so the take-off spins on
    one thread.
    """

    #: how long one turn waits for work (s): the longest :meth:`stop` waits for an idle one
    TURN_S: Final = 0.05

    def __init__(self, executor: Executor, name: str) -> None:
        self.executor = executor
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._spin, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _spin(self) -> None:
        try:
            while not self._stopping.is_set():
                self.executor.spin_once(timeout_sec=self.TURN_S)
        except ExternalShutdownException:
            pass  # the context went first (rclpy.shutdown on a signal): nothing to spin

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stop spinning, wait up to ``timeout_s`` for the thread (a callback in
        progress finishes first), then shut the executor down. False when the thread
        is still inside a callback after that wait."""
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        self.executor.shutdown(timeout_sec=timeout_s)
        return not self._thread.is_alive()
