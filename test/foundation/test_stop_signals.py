"""Stop signals reach the process whichever thread the kernel hands them to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from signal_storm import storm_until_exit

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


_SPAWNS = 300
# A process that records its stop signals, as every executable here does, and
# runs helpers out of reach of them while a storm hits its process group.
_SPAWNER = f"""
from gps_denied_onboard.stop_signals import install_early, run_out_of_reach
signals = install_early()
print("ready", flush=True)
codes = [run_out_of_reach(["true"]).returncode for _ in range({_SPAWNS})]
print(sorted(set(codes)), len(signals.received) > 0, flush=True)
"""


def test_a_sigint_storm_at_our_process_group_kills_no_helper_run_out_of_reach() -> None:
    """Before (``subprocess.run(start_new_session=True)`` alone): about a third of
    the helpers died of SIGINT (-2), vforked and not yet out of the group."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _SPAWNER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    sent = 0
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        sent = storm_until_exit(proc, 0.001)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert sent > 0
    # every helper exited 0 while the spawner recorded the storm
    assert out.strip().splitlines()[-1] == "[0] True", (out, err[-2000:])
