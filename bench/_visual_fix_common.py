"""What the ``visual_fix_accuracy`` figures share: the reported pairs, their seeds,
and how a run of fixes is summed up and its sigma's coverage turned into figures.

Its frame figures are in ``visual_fix_accuracy.py``, its flight figures in
``_visual_fix_flights.py``, its figures at other scales in ``_visual_fix_scales.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from _visual_nav_env import Trial, error_en
from harness import figure, report

from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.fix import VisualFix

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


def single_frames(
    tried: list[tuple[Trial, VisualFix | FrameRejected]], wrong_m: float = 30.0
) -> dict[str, Any]:
    """:func:`summary` of single frames tried (each trial and what it gave)."""
    errs: list[float] = []
    axis: list[tuple[float, float, float]] = []  # |e|, |n|, sigma
    for t, got in tried:
        if isinstance(got, VisualFix):
            e, nn = error_en(t, got)
            errs.append(float(np.hypot(e, nn)))
            axis.append((abs(e), abs(nn), got.sigma_m))
    return summary(len(tried), errs, axis, len(errs), wrong_m=wrong_m)


def accuracy(
    tag: str, m: dict[str, Any], base: dict[str, Any], note: str, n: int
) -> list[dict[str, Any]]:
    """The five reported figures of :func:`single_frames` summaries ``m`` against
    ``base``: % fixed, median and p95 error, 1 and 3 sigma coverage."""
    return [
        report(f"{tag}.fixed", m["fixed_pct"], "%", base["fixed_pct"], note, frames=n),
        report(f"{tag}.median_error", m["median_m"], "m", base["median_m"], note),
        report(f"{tag}.p95_error", m["p95_m"], "m", base["p95_m"], note),
        report(f"{tag}.sigma_1_coverage", m["cov1"], "%", base["cov1"], note),
        report(f"{tag}.sigma_3_coverage", m["cov3"], "%", base["cov3"], note),
    ]
