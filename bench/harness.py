"""Shared by every benchmark: figures, percentiles and timing helpers.

A benchmark module ``bench/<name>.py`` exposes ``run(quick: bool) -> list[dict]``
and measures its own baseline in the same run, so the reported ratio means
something on a shared, noisy machine. Benchmarks may read the host clocks;
core code may not.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any


def figure(
    name: str,
    value: float,
    unit: str,
    baseline: float | None,
    target: str | None,
    ok: bool | None,
    **extra: Any,
) -> dict[str, Any]:
    """One reported figure. ``ratio`` is value/baseline (None without a baseline).

    A figure either has a ``target`` (what it must meet) and an ``ok`` that says
    whether this run met it, computed from the measurement so that it can be
    false; or it is a report: ``target`` and ``ok`` both None, and a ``note``
    that says what it shows. ``bench/run`` exits non-zero when any figure with a
    target is not ok.
    """
    if target is None and ok is not None:
        raise ValueError(f"{name}: a figure without a target is a report: ok must be None")
    if target is not None and ok is None:
        raise ValueError(f"{name}: a figure with a target needs ok true or false")
    if target is None and "note" not in extra:
        raise ValueError(f"{name}: a report (no target) needs a note saying what it shows")
    # a median of no fix is NaN, which is no JSON: it is printed as null
    shown: float | None = value
    if isinstance(value, float) and not math.isfinite(value):
        shown = None
    if isinstance(baseline, float) and not math.isfinite(baseline):
        baseline = None
    ratio = (value / baseline) if baseline and shown is not None else None
    out: dict[str, Any] = {
        "name": name,
        "value": round(shown, 6) if isinstance(shown, float) else shown,
        "unit": unit,
        "baseline": round(baseline, 6) if isinstance(baseline, float) else baseline,
        "ratio": None if ratio is None else round(ratio, 4),
        "target": target,
        "ok": None if ok is None else bool(ok),
    }
    out.update(extra)
    return out


def report(
    name: str, value: float, unit: str, baseline: float | None, note: str, **extra: Any
) -> dict[str, Any]:
    """A figure with no target: reported, never pass/fail."""
    return figure(name, value, unit, baseline, None, None, note=note, **extra)


def missed(fig: dict[str, Any]) -> bool:
    """True when a figure has a target and this run did not meet it.

    A figure without the ``target`` key, or with a target and an ``ok`` that
    is not exactly True, counts as missed: nothing passes by omission.
    """
    if "target" not in fig or "ok" not in fig:
        return True
    return fig["target"] is not None and fig["ok"] is not True


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def time_each(fn: Callable[[], object], n: int) -> list[float]:
    """Run ``fn`` n times; return each call's duration in seconds."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def interleaved(
    a: Callable[[], object], b: Callable[[], object], n: int
) -> tuple[list[float], list[float]]:
    """Time ``a`` and ``b`` alternately so machine noise hits both alike."""
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        b()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    return ta, tb
