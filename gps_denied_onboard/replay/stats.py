"""The few figures a flight's report is made of, and how they read.

Shared by :mod:`.accuracy` (positions, latency, GPS_INPUT gaps) and
:mod:`.velocity` (velocities), so that both say "n/a" for nothing measured
and count a sigma's coverage the same way.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def quantile(values: NDArray[np.float64], q: float) -> float | None:
    """The ``q``-th percentile; None for no values."""
    return None if values.size == 0 else float(np.percentile(values, q))


def coverage(err: NDArray[np.float64], sigma: NDArray[np.float64], k: float) -> float | None:
    """The share of ``|err| <= k * sigma`` (per axis); None for no errors."""
    if err.size == 0:
        return None
    return float(np.mean(np.abs(err) <= k * sigma))


def fmt(v: float | None, unit: str = "", digits: int = 1) -> str:
    """A figure with its unit, or "n/a"."""
    return "n/a" if v is None else f"{v:.{digits}f}{unit}"


def share(v: float | None) -> str:
    """A share (0..1) as a whole percentage, or "n/a"."""
    return "n/a" if v is None else f"{100.0 * v:.0f} %"
