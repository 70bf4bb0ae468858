"""A Ctrl-C storm at a child's process group, as a terminal's held-down Ctrl-C (or
``ros2 launch`` forwarding it) sends: shared by the stop-signal, embedded-cluster and
take-off tests. ``test/`` is on ``sys.path`` because ``test/conftest.py`` lives there."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any


def storm_until_exit(
    proc: subprocess.Popen[Any], period_s: float, timeout_s: float | None = None
) -> int:
    """SIGINT to ``proc``'s process group every ``period_s`` until it exits (or
    ``timeout_s`` passed); how many were sent."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    sent = 0
    while proc.poll() is None and (deadline is None or time.monotonic() < deadline):
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            break
        sent += 1
        time.sleep(period_s)
    return sent
