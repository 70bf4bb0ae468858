"""Wall time of the README main job on the sample flight.

Runs ``python -m gps_denied_onboard demo`` (take-off on embedded defaults,
tile seeding, replay of the sample flight, landing, report) and reports
its wall time against the floor any run at that replay rate must take: the
sample's duration divided by the rate. That baseline is computed, not timed
(the figure says so in ``baseline_kind``): the replay cannot run faster than
its rate, so it is the same whatever the machine. The ratio is the overhead of bring-up,
seeding, landing and reporting on top of the replay itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import figure

ROOT = Path(__file__).resolve().parents[1]


def run(quick: bool) -> list[dict[str, object]]:
    manifest = json.loads((ROOT / "sample_flight" / "manifest.json").read_text())
    rate = 8.0 if quick else 4.0
    floor_s = float(manifest["duration_s"]) / rate
    with tempfile.TemporaryDirectory(prefix="gdo-bench-main-") as tmp:
        Path(tmp).chmod(0o755)  # the embedded cluster runs as user postgres
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "gps_denied_onboard",
                "demo",
                "--run-dir",
                str(Path(tmp) / "run"),
                "--rate",
                str(rate),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        wall = time.perf_counter() - t0
    ok = proc.returncode == 0 and wall <= 2.5 * floor_s
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
    return [
        figure(
            "main_job_wall",
            wall,
            "s",
            floor_s,
            f"exit 0 and <= 2.5x the replay floor ({rate}x rate)",
            ok,
            rate=rate,
            exit_code=proc.returncode,
            baseline_kind="computed floor: sample duration / replay rate",
        )
    ]
