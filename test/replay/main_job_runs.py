"""Shared by the tests that run the main job: one run, and how two runs' fixes differ."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def main_job_env() -> dict[str, str]:
    """This process's environment less its ``ROS_DOMAIN_ID``: the main job then draws a
    private domain of its own (``demo.PRIVATE_DOMAINS``), as it does on a fresh machine.

    Why: the test process's own domain holds the DDS participants of whatever its
    earlier tests still keep. Seen in the full suite before destroyed lifecycle nodes
    released their state machine (``nodes/lifecycle_guard.LifecycleNodeBase``): 28
    ``fc_bridge`` participants left there, and with
    ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` the main job's own nodes, started after
    them, no longer discovered each other (every frame ``no_tiles``). The cause is
    mended; a domain of its own still keeps the main job apart from the tests."""
    return {k: v for k, v in os.environ.items() if k != "ROS_DOMAIN_ID"}


def run_main_job(run_dir: Path, *args: str, timeout_s: float = 900.0) -> str:
    """``python -m gps_denied_onboard demo --run-dir RUN_DIR ARGS``, exit 0; its output."""
    proc = subprocess.run(
        [sys.executable, "-m", "gps_denied_onboard", "demo", "--run-dir", str(run_dir), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout_s,
        env=main_job_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _apart_m(x: dict[str, Any], y: dict[str, Any]) -> float:
    """Horizontal distance between two ``vnav.fix`` payloads (m, local flat earth)."""
    dn = (x["latitude"] - y["latitude"]) * 111_320.0
    de = (x["longitude"] - y["longitude"]) * 111_320.0 * math.cos(math.radians(x["latitude"]))
    return math.hypot(de, dn)


def fix_differences(
    a: dict[int, dict[str, Any]], b: dict[int, dict[str, Any]]
) -> tuple[set[int], list[float]]:
    """Frames fixed in both (``vnav.fix`` payloads by stamp) and their distances, sorted (m)."""
    common = a.keys() & b.keys()
    return common, sorted(_apart_m(a[s], b[s]) for s in common)


def fix_agreement(a: dict[int, dict[str, Any]], b: dict[int, dict[str, Any]]) -> list[float]:
    """For the frames fixed in both: their distance over the two fixes' combined
    sigma (``hypot(sigma_a, sigma_b)``), sorted. Two estimates of one position
    that each claim their sigma honestly lie within a few of those of each other."""
    return sorted(
        _apart_m(a[s], b[s]) / math.hypot(a[s]["sigma_m"], b[s]["sigma_m"])
        for s in a.keys() & b.keys()
    )
