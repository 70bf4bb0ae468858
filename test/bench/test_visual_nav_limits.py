"""The helper that measures what holds the visual figures back still runs and
accounts for what it measures.

``bench/_visual_nav_limits.py`` is run by hand (its numbers are in the closing
notes and the matcher's comments), so nothing else would notice it rot.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest


@pytest.fixture
def limits(bench_module: Callable[[str], ModuleType]) -> Any:
    return bench_module("_visual_nav_limits")


def test_gate_ceiling_accounts_every_frame_and_leaves_the_gate_as_it_was(
    limits: Any,
) -> None:
    from gps_denied_onboard.visual_nav import estimator as estimator_module

    judge = estimator_module.judge
    out = limits.gate_ceiling(n=6, seed=4242)
    assert estimator_module.judge is judge  # the watch is taken off again
    assert set(out) == set(limits.CALIBRATION_PAIRS)
    for name, row in out.items():
        # each frame is fixed, turned down with its winner right or wrong, or never judged
        judged = row["fixed"] + row["rejected_right"] + row["rejected_wrong"]
        assert judged + row["not_judged"] == row["frames"] == 6, name
        assert 0 <= row["fixed_wrong"] <= row["fixed"], name
        assert judged > 0, name
        for kind in ("rejected_right", "rejected_wrong"):
            for q10, q50, q90 in row[f"{kind}_quantiles_10_50_90"].values():
                assert q10 <= q50 <= q90, (name, kind)


def test_velocity_error_accounts_every_velocity_in_its_band_and_its_parts(
    limits: Any,
) -> None:
    out = limits.velocity_error(n=1, seed=188000, frames=24)
    assert list(out) == ["0-6s", "6-20s", "20s-"]
    assert sum(b["velocities"] for b in out.values()) > 20  # 3 flights of 24 frames
    for name, band in out.items():
        if not band["velocities"]:
            continue
        whole, registration = band["sigma_1_3_coverage"], band["registration_sigma_1_3_coverage"]
        # the sigma less the correction's term can only cover less, and 3 sigma more than 1
        assert registration[0] <= whole[0] <= whole[1] <= 100.0, name
        assert registration[0] <= registration[1] <= whole[1], name
        lo, mid, hi = band["scale_error_5_50_95"]
        assert lo <= mid <= hi, name
        # a scale error is what the search (0.92-1.08 of the autopilot's height,
        # refined a few 2 % steps) left of the height error: never a quarter
        assert max(abs(lo), abs(hi)) < 0.25, name
        assert band["rms_error"] > 0.0 and band["rms_correction_error"] > 0.0, name
