"""The machine load an FDR benchmark ran under, stated in its output.

The recorder's CPU figures are meant for a machine with other work running, so each
such benchmark starts one busy-loop competitor process of its own for the measured
part (load even on an otherwise idle machine) and reports what the machine was
doing meanwhile: the load average, the CPU count, and how busy all CPUs were
(``/proc/stat``) during the measurement, this process included.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _cpu_ticks() -> tuple[int, int] | None:
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


@contextmanager
def under_load(competitors: int = 1) -> Iterator[dict[str, Any]]:
    """Run the block with ``competitors`` busy loops; the dict gets the load figures."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
             for _ in range(competitors)]
    load: dict[str, Any] = {}
    before = _cpu_ticks()
    try:
        yield load
    finally:
        after = _cpu_ticks()
        for proc in procs:
            proc.kill()
            proc.wait()
        load["busy_loop_competitors"] = competitors
        load["cpus"] = os.cpu_count()
        load["loadavg_1m"] = round(os.getloadavg()[0], 2)
        if before is not None and after is not None and after[1] > before[1]:
            load["machine_busy_pct"] = round(
                100 * (after[0] - before[0]) / (after[1] - before[1]), 1)


def thread_cpu_s(ident: int | None) -> float:
    """CPU seconds a thread of this process has used (its own clock), read from outside."""
    if ident is None:
        return 0.0
    return time.clock_gettime(time.pthread_getcpuclockid(ident))
