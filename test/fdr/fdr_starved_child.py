"""Child process for the kill -9 lag test: a recorder whose writer cannot keep up.

Three producer threads offer records as fast as they are asked (``rate`` each);
every ``MARK`` records each writes ``producer seq monotonic_ns`` to the progress
file with an unbuffered ``os.write`` (so the line survives kill -9): every seq up
to ``seq`` was offered before that time. The parent starves this process of CPU.

Usage: python fdr_starved_child.py FLIGHT_ROOT PROGRESS_FILE RATE LAG_BOUND_NS
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fdr_core_helpers import T0, make_recorder

from gps_denied_onboard.records import FlightRecord

MARK = 200
PAYLOAD = {"tile_id": "t", "zoom": 15, "x": 1, "y": 2, "source": "naip", "disk_bytes": 4096,
           "content_sha256": "0" * 64}


def main() -> None:
    root, progress, rate, bound = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rec = make_recorder(root, segment_size_bytes=256 * 1024 * 1024, lag_bound_ns=bound)
    rec.start()
    rec.open_flight("F1")
    fd = os.open(progress, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    clients = [rec.register_client(f"p{k}") for k in range(3)]

    def produce(k: int) -> None:
        client = clients[k]
        start = time.monotonic()
        i = 0
        while True:
            for _ in range(MARK):
                client.emit(FlightRecord("c6.write", f"p{k}", T0 + i, PAYLOAD))
                i += 1
            os.write(fd, f"p{k} {i - 1} {time.monotonic_ns()}\n".encode())
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    for k in range(3):
        threading.Thread(target=produce, args=(k,), daemon=True).start()
    os.write(fd, b"ready\n")
    while True:
        time.sleep(1.0)


if __name__ == "__main__":
    main()
