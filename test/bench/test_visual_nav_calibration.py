"""The calibration helper behind ``config/visual_nav.yaml``'s gate still runs.

``bench/_visual_nav_calibration.py`` is how the gate's and the error model's
numbers were made (on the 2014 pairs only); it is run by hand, so nothing else
would notice it rot. Its documented command once failed on an import (the
environment's ``PYTHONSAFEPATH`` keeps a script's own directory off the path)
while the README kept recommending it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
HELPER = BENCH / "_visual_nav_calibration.py"


def _helper(extra_path: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONSAFEPATH="1")
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, str(HELPER)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_documented_command_reaches_the_helper_and_a_bare_one_does_not() -> None:
    # what the docstring and the README say: bench on PYTHONPATH
    got = _helper(str(BENCH))
    assert got.returncode == 1, got.stderr  # no mode asked for: its usage, not a crash
    assert "Calibration of the visual estimator" in got.stderr
    assert "Traceback" not in got.stderr
    # and why it says so: without it the helper's own imports fail
    bare = _helper(None)
    assert bare.returncode != 0
    assert "ModuleNotFoundError" in bare.stderr


@pytest.fixture
def calibration(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCH))
    import _visual_nav_calibration

    return _visual_nav_calibration


def test_calibrate_gives_right_and_certainly_wrong_matches_of_both_footprints(
    calibration: Any,
) -> None:
    data = calibration.calibrate(n=2)
    assert set(data) == {"1km", "400m"}
    for footprint, d in data.items():
        classes = {m[4] for m in d["matches"]}
        # searched frames give right matches, displaced priors certainly-wrong ones
        assert classes == {0, 1}, footprint
        assert all(len(m) == 8 for m in d["matches"])
        assert len(d["rows"]) == sum(m[4] for m in d["matches"])
    # judged by the configured gate, the two classes part: the summary that set it
    summary = calibration.calibration_summary(data, {"1km": 2.8, "400m": 3.25})
    for footprint in ("1km", "400m"):
        s = summary[footprint]
        assert s["matches"] == len(data[footprint]["matches"])
        assert s["right_share_passing"] >= 0.5, footprint
        assert s["wrong_passing"] == 0, footprint
        assert s["wrong_max_margin_sigmas"] < s["gate"], footprint
