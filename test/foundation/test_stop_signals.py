"""Stop signals reach the process whichever thread the kernel hands them to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

# The main thread waits as run_sequencer does; a worker thread stands in for the
# DDS and executor threads a signal may be delivered to.
_CHILD = """
import threading, time
from gps_denied_onboard.stop_signals import install_early, wait_for_stop
signals = install_early()
stop = threading.Event()
signals.relay(stop)
worker = threading.Thread(target=threading.Event().wait, daemon=True)
worker.start()
print("ready", flush=True)
wait_for_stop(stop)
print("stopped", signals.received, flush=True)
"""


def _other_thread(pid: int) -> int:
    """A thread of ``pid`` other than the main one (Python does not name OS threads)."""
    tids = [int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid]
    assert tids, f"{pid} has no thread but the main one"
    return max(tids)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_delivered_to_another_thread_stops_the_main_thread_wait(signum: int) -> None:
    """A main thread in an untimed ``Event.wait`` never runs a handler for a signal
    the kernel gave to another thread (checked: it hangs); ``wait_for_stop`` does."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        tid = _other_thread(proc.pid)
        os.kill(tid, signum)  # kill() on a thread id: delivered to that thread
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.strip() == f"stopped [{int(signum)}]"
