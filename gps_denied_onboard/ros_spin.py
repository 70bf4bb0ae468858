"""An rclpy executor spun on a thread of its own, and stopped before it is shut down.

Beside :mod:`.ros_topics`, below ``nodes/`` and ``replay/``, so that every process
that spins one in the background (the take-off, the main job, the replay tool) stops it
the same way.
"""

from __future__ import annotations

import threading
from typing import Final

from rclpy.executors import Executor, ExternalShutdownException


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
