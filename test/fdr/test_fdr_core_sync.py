"""``fdatasync`` at least once a second, counted at the writer's own seam.

A kill -9 test cannot tell whether fdatasync ran (the page cache survives a
process kill), so the syncs are counted where the writer calls them: the segment
file it opens through its ``file_opener`` seam, on the injected monotonic clock.
Removing the periodic sync (or stretching it past a second) fails this test.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from fdr_core_helpers import T0

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.fdr import FdrConfig, FlightRecorder
from gps_denied_onboard.fdr.segment import OsFile
from gps_denied_onboard.records import FlightRecord

S = 1_000_000_000
MS = 1_000_000
STEP = 100 * MS
MONO = ManualClock(1000 * S)
C6 = {
    "tile_id": "t",
    "zoom": 15,
    "x": 1,
    "y": 2,
    "source": "naip",
    "disk_bytes": 4096,
    "content_sha256": "0" * 64,
}


class CountingFile(OsFile):
    """The real file; every fdatasync noted with the injected monotonic time."""

    syncs: list[int] = []

    def sync(self) -> None:
        CountingFile.syncs.append(MONO.now_ns())
        super().sync()


def _wait_for_pass(rec: FlightRecorder) -> None:
    """Until the writer loop has passed (twice) since the clock last moved."""
    deadline = time.monotonic() + 5.0
    while rec.status().last_progress_ns != MONO.now_ns() and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.06)  # one more poll period: the pass's _tick saw the new time


def test_fdatasync_runs_at_least_once_a_second_while_data_is_pending(tmp_path: Path) -> None:
    cfg = FdrConfig(flight_root=tmp_path, free_space_floor_bytes=0, poll_period_ns=20 * MS)
    rec = FlightRecorder(cfg, ManualClock(T0), MONO, file_opener=CountingFile)
    rec.start()
    try:
        rec.open_flight("F1")
        client = rec.register_client("p")
        CountingFile.syncs.clear()
        start = MONO.now_ns()
        i = 0
        for _ in range(60):  # 6 s of injected time, records every 100 ms
            for _ in range(5):
                client.emit(FlightRecord("c6.write", "p", T0 + i, C6))
                i += 1
            MONO.advance_ns(STEP)
            _wait_for_pass(rec)
        end = MONO.now_ns()
        syncs = list(CountingFile.syncs)
    finally:
        rec.stop()
    assert client.written == i
    # Every second of pending data ends in a sync: gaps at most the period (+ one step).
    assert syncs, "no fdatasync in 6 s of writing"
    marks = [start, *syncs, end]
    gaps = [b - a for a, b in itertools.pairwise(marks)]
    assert max(gaps) <= cfg.fsync_period_ns + STEP, [g / S for g in gaps]
    assert 5 <= len(syncs) <= 7, len(syncs)  # once a second, not at every batch
