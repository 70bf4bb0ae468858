"""How good were the fixes' velocities? Each against the truth's at its stamp.

The estimator's velocity (frame-to-frame registration, or fixes over a
baseline) is what PX4's EKF needs beside the position, and it goes to the
autopilot with its own covariance. A flight's report scores it like the
position: the horizontal error's median and 95th percentile, and per axis the
share of errors within 1 and 3 of the sigmas sent with it. Only fixes that
carried a velocity (``velocity_valid``) count.

ROS-free and truth-agnostic: :mod:`.accuracy` interpolates the truth and
hands in plain arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.replay.stats import coverage, fmt, quantile, share


@dataclass(frozen=True)
class VelocityFigures:
    """The fixes' velocities against the truth (m/s). ``None`` with none to score."""

    count: int
    error_median_mps: float | None
    error_p95_mps: float | None
    within_1sigma_east: float | None
    within_1sigma_north: float | None
    within_3sigma_east: float | None
    within_3sigma_north: float | None

    @classmethod
    def nothing(cls) -> VelocityFigures:
        """No fix carried a velocity."""
        return cls(0, None, None, None, None, None, None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "error_mps": {"median": self.error_median_mps, "p95": self.error_p95_mps},
            "sigma_coverage": {
                "east_1sigma": self.within_1sigma_east,
                "north_1sigma": self.within_1sigma_north,
                "east_3sigma": self.within_3sigma_east,
                "north_3sigma": self.within_3sigma_north,
            },
        }

    def line(self) -> str:
        """One line of text for a person."""
        if self.count == 0:
            return "velocity vs truth: n/a (no fix carried a velocity)"
        return (
            f"velocity vs truth ({self.count} fixes): median "
            f"{fmt(self.error_median_mps, ' m/s', 2)}, p95 {fmt(self.error_p95_mps, ' m/s', 2)}; "
            f"within 1 sigma east {share(self.within_1sigma_east)}, north "
            f"{share(self.within_1sigma_north)}; within 3 sigma east "
            f"{share(self.within_3sigma_east)}, north {share(self.within_3sigma_north)}"
        )


def velocity_figures(
    err_east: NDArray[np.float64],
    err_north: NDArray[np.float64],
    sigma_east: NDArray[np.float64],
    sigma_north: NDArray[np.float64],
) -> VelocityFigures:
    """Figures of velocity errors (fix minus truth, m/s) and the sigmas sent with them.

    Raises:
        ValueError: the four arrays differ in length.
    """
    n = err_east.size
    if not err_north.size == sigma_east.size == sigma_north.size == n:
        raise ValueError("velocity errors and sigmas differ in length")
    horiz = np.hypot(err_east, err_north)
    return VelocityFigures(
        count=int(n),
        error_median_mps=quantile(horiz, 50),
        error_p95_mps=quantile(horiz, 95),
        within_1sigma_east=coverage(err_east, sigma_east, 1.0),
        within_1sigma_north=coverage(err_north, sigma_north, 1.0),
        within_3sigma_east=coverage(err_east, sigma_east, 3.0),
        within_3sigma_north=coverage(err_north, sigma_north, 3.0),
    )
