"""Writer-thread CPU at 500 KB/s of records (target: at most 2 % of one core).

A producer thread emits 200-byte-body records at 2500 records/s (500 KB/s of
message bodies) in 10 ms bursts for a few seconds. The writer thread's own CPU
time is read with ``time.thread_time`` inside the thread (a wrapper around the
recorder's loop); the figure is writer CPU seconds per wall second. The
baseline is the CPU the same bytes cost a bare batched ``os.write`` loop.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import figure

from gps_denied_onboard.clock import ManualClock, MonotonicClock
from gps_denied_onboard.fdr import FdrConfig, FlightRecorder
from gps_denied_onboard.records import FlightRecord

T0 = 1_778_544_000 * 1_000_000_000
RATE = 2_500  # records/s
BODY = 200  # bytes
TARGET = 0.02


def _payload() -> dict[str, Any]:
    base = {"tile_id": "", "disk_bytes": 183_211, "reason": "lru"}
    env = len(json.dumps({"kind": "c6.evict", "producer": "tile_cache",
                          "schema_version": "1.1.0", "stamp_ns": T0, "seq": 1000,
                          "payload": base}, separators=(",", ":")))
    return {**base, "tile_id": "t" * (BODY - env)}


class _Measured(FlightRecorder):
    """The recorder with its writer loop wrapped to read the thread's CPU clock."""

    cpu_s = 0.0

    def _run(self) -> None:
        start = time.thread_time()
        try:
            super()._run()
        finally:
            self.cpu_s = time.thread_time() - start


def measure(root: Path, seconds: float) -> tuple[float, float, int]:
    payload = _payload()
    n = int(RATE * seconds)
    recs = [FlightRecord("c6.evict", "tile_cache", T0 + i, payload) for i in range(n)]
    cfg = FdrConfig(flight_root=root, free_space_floor_bytes=0)
    rec = _Measured(cfg, ManualClock(T0), MonotonicClock())
    rec.start()
    rec.open_flight("cpu")
    client = rec.register_client("tile_cache")
    burst = RATE // 100
    t0 = time.monotonic()
    for i in range(0, n, burst):
        delay = t0 + i / RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for r in recs[i:i + burst]:
            client.emit(r)
    wall = time.monotonic() - t0
    footer = rec.close_flight("cpu")
    rec.stop()
    assert rec.cpu_s > 0
    bytes_s = footer.bytes_written / wall
    return rec.cpu_s / wall, bytes_s, footer.records_dropped_overrun


def bare_write_cpu(root: Path, seconds: float) -> float:
    """CPU/s of appending the same record bytes with os.write every 10 ms, fdatasync 1/s."""
    fd = os.open(root / "bare.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    chunk = b"x" * (BODY * RATE // 100)
    cpu0 = time.thread_time()
    t0 = time.monotonic()
    last_sync = t0
    i = 0
    while time.monotonic() - t0 < seconds:
        delay = t0 + i / 100 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        os.write(fd, chunk)
        if time.monotonic() - last_sync >= 1.0:
            os.fdatasync(fd)
            last_sync = time.monotonic()
        i += 1
    cpu = time.thread_time() - cpu0
    wall = time.monotonic() - t0
    os.close(fd)
    return cpu / wall


def run(quick: bool = False) -> list[dict[str, Any]]:
    seconds = 3.0 if quick else 10.0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        share, bytes_s, dropped = measure(root / "a", seconds)
        bare = bare_write_cpu(root, min(seconds, 3.0))
    return [figure("fdr_writer_cpu_share_at_500kBps", share, "core fraction", bare,
                   f"<= {TARGET}", share <= TARGET and dropped == 0,
                   segment_bytes_s=round(bytes_s), record_body_bytes_s=RATE * BODY,
                   overrun=dropped, baseline_name="bare os.write + fdatasync loop")]


if __name__ == "__main__":
    for fig in run(quick="--quick" in sys.argv):
        print(json.dumps(fig))
