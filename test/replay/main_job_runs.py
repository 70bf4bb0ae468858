"""Shared by the tests that run the main job: one run, and how two runs' fixes differ."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_main_job(run_dir: Path, *args: str, timeout_s: float = 900.0) -> str:
    """``python -m gps_denied_onboard demo --run-dir RUN_DIR ARGS``, exit 0; its output."""
    proc = subprocess.run(
        [sys.executable, "-m", "gps_denied_onboard", "demo", "--run-dir", str(run_dir), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout_s,
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
