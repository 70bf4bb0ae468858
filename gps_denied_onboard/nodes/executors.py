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

How an executor spun on a thread of its own is stopped: :mod:`gps_denied_onboard.ros_spin`.
"""

from __future__ import annotations

import importlib
from typing import Final

from rclpy.executors import Executor, SingleThreadedExecutor

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
