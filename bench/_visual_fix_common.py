"""What the ``visual_fix_accuracy`` figures share: the reported pairs, their seeds,
and how a run of fixes is summed up and its sigma's coverage turned into figures.

Its frame figures are in ``visual_fix_accuracy.py``, its flight figures in
``_visual_fix_flights.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from harness import figure

PAIRS = {  # name: (map year, frame year)
    "8y_2017map_2009frames": ("2017", "2009"),
    "3y_2017map_2020frames": ("2017", "2020"),
    "11y_2009map_2020frames": ("2009", "2020"),
}
CONTROL = ("2017", "2017")


#: flights of 400 m frames at 1 frame/s: how long, and from when their frames count
FLIGHT_FRAMES = 32
SETTLE_S = 20.0


def seed_of(name: str) -> int:
    """A stable seed per pair (``hash`` of a str changes between runs)."""
    return sum(ord(c) * (i + 1) for i, c in enumerate(name)) % 1000


def summary(
    n: int,
    errs: list[float],
    axis: list[tuple[float, float, float]],
    fixed: int,
    wrong_m: float = 30.0,
) -> dict[str, Any]:
    a = np.array(axis) if axis else np.zeros((0, 3))

    def within(m: float) -> float:
        if not len(a):
            return 0.0
        return float(np.mean(np.concatenate([a[:, 0] <= m * a[:, 2], a[:, 1] <= m * a[:, 2]])))

    good = [x for x in errs if x <= wrong_m]
    wrong = sum(x > wrong_m for x in errs)
    return {
        "n": n,
        "fixed_pct": 100.0 * fixed / max(n, 1),
        "median_m": float(np.median(good)) if good else float("nan"),
        "p95_m": float(np.percentile(good, 95)) if good else float("nan"),
        "wrong_per_1000": 1000.0 * wrong / max(n, 1),
        "wrong": wrong,
        "cov1": 100.0 * within(1.0),
        "cov3": 100.0 * within(3.0),
    }


def coverage(tag: str, m: dict[str, Any], base: dict[str, Any], prefix: str = "") -> list[Any]:
    return [
        figure(
            f"{tag}.{prefix}sigma_1_coverage",
            m[f"{prefix}cov1"],
            "%",
            base[f"{prefix}cov1"],
            "60..80",
            60.0 <= m[f"{prefix}cov1"] <= 80.0,
        ),
        figure(
            f"{tag}.{prefix}sigma_3_coverage",
            m[f"{prefix}cov3"],
            "%",
            base[f"{prefix}cov3"],
            ">=99",
            m[f"{prefix}cov3"] >= 99.0,
        ),
    ]
