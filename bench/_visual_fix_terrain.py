"""``visual_fix_accuracy.terrain`` (full run only, reported): flights over ground that
rises under the aircraft, with no rangefinder.

The estimator takes the height above ground from the autopilot's altitude over the
home's ground (flat ground: :mod:`gps_denied_onboard.visual_nav.state`). Here the
ground rises by a fifth of the height above it, from 10 s into the flight, over
``gentle`` 40 s or ``steep`` 10 s (1 km frames at 500 m: 100 m over 1 km or 250 m of
track, 6 or 22 deg; 400 m frames at 200 m: 40 m, 2.3 or 9 deg), and the height the
autopilot reports stays where it was. The GNSS is denied after 6 s, so the fixes
ride on the estimator's own track through the rise. Frames from the rise's start to
the end of the flight count. Baseline: the same flights over flat ground.

What it shows: whether the height scale the fixes find follows the ground (a frame
alone refines it from the last fix's; a stitched 400 m patch searches its own), and
what a patch that spans frames of several heights costs: its nadir lies a few hundred
metres along the patch from its bulk, so a scale off by a few per cent there moves
the fix by tens of metres. Each registration measures the zoom between its two
frames, and the patch is built at its newest frame's scale
(:mod:`gps_denied_onboard.visual_nav.zoom`; ``stitch_zoom``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from _visual_fix_common import PAIRS, seed_of, summary
from _visual_nav_env import AGL, NS, _feed_and_match, _render, estimator
from _visual_nav_flying import Flight, flights
from harness import report

from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.geo import LocalFrame

#: how long the ground takes to rise (s), per figure
RAMPS_S = {"gentle": 40.0, "steep": 10.0}
#: the rise, as a share of the height above the ground before it
RISE = 0.2
RAMP_START_S = 10.0
GNSS_LOST_S = 6.0
FLIGHTS_PER_PAIR = 2
#: 10 s before the rise, the longest rise, 6 s after it
FRAMES = 56


def _agl_at(base: float, ramp_s: float | None) -> Callable[[float], float]:
    """The true height above ground ``t`` s into the flight (None: flat ground)."""

    def agl(t: float) -> float:
        if ramp_s is None:
            return base
        share = min(1.0, max(0.0, (t - RAMP_START_S) / ramp_s))
        return base * (1.0 - RISE * share)

    return agl


def _fly(map_year: str, frame_year: str, f: Flight, agl_at: Callable[[float], float]) -> Any:
    """One flight: errors and sigmas of the frames from the rise's start on."""
    est = estimator(map_year)
    t0 = f.poses[0].stamp_ns
    errs: list[float] = []
    axis: list[tuple[float, float, float]] = []
    counted = 0
    for p in f.poses:
        t = (p.stamp_ns - t0) / NS
        image = _render(frame_year, p.lat, p.lon, agl_at(t), p.roll, p.pitch, p.yaw)
        truth = LocalFrame(p.lat, p.lon)
        prior = truth.to_latlon(f.prior_e, f.prior_n) if t < GNSS_LOST_S else None
        got: VisualFix | FrameRejected = _feed_and_match(
            est,
            p.stamp_ns,
            image,
            (p.roll_rep, p.pitch_rep, p.yaw_rep),
            f.agl * f.height_factor,
            prior,
            120.0,
            (-40, -20, 0, 20, 40),
        )
        if t < RAMP_START_S:
            continue
        counted += 1
        if isinstance(got, VisualFix):
            e, n = truth.to_en(got.latitude, got.longitude)
            errs.append(float(np.hypot(e, n)))
            axis.append((abs(e), abs(n), got.sigma_m))
    return counted, errs, axis


def terrain() -> list[dict[str, Any]]:
    """The figures (module docstring), per footprint and rise, the pairs pooled."""
    out: list[dict[str, Any]] = []
    for footprint in ("1km", "400m"):
        base_agl = AGL[footprint]
        runs: dict[str | None, tuple[int, list[float], list[tuple[float, float, float]]]] = {}
        for ramp in (None, *RAMPS_S):
            ramp_s = RAMPS_S[ramp] if ramp is not None else None
            n, errs, axis = 0, [], []
            for name, (map_year, frame_year) in PAIRS.items():
                for f in flights(
                    seed_of(name) + 7000, FLIGHTS_PER_PAIR, base_agl, frames=FRAMES, rate_hz=1.0
                ):
                    c, e, a = _fly(map_year, frame_year, f, _agl_at(base_agl, ramp_s))
                    n, errs, axis = n + c, errs + e, axis + a
            runs[ramp] = (n, errs, axis)
        flat = summary(runs[None][0], runs[None][1], runs[None][2], len(runs[None][1]))
        for ramp, ramp_s in RAMPS_S.items():
            n, errs, axis = runs[ramp]
            m = summary(n, errs, axis, len(errs))
            tag = f"visual_fix_accuracy.terrain.{footprint}.{ramp}"
            note = (
                f"{footprint} frames, GNSS denied; the ground rises by a fifth of the height "
                f"over {ramp_s:g} s, the reported height stays; baseline: flat ground"
            )
            out += [
                report(f"{tag}.fixed", m["fixed_pct"], "%", flat["fixed_pct"], note, frames=n),
                report(f"{tag}.median_error", m["median_m"], "m", flat["median_m"], note),
                report(f"{tag}.p95_error", m["p95_m"], "m", flat["p95_m"], note),
                report(
                    f"{tag}.wrong_fixes_per_1000",
                    m["wrong_per_1000"],
                    "per 1000 frames",
                    flat["wrong_per_1000"],
                    "fixes over 30 m off",
                    wrong=m["wrong"],
                    frames=n,
                ),
                report(f"{tag}.sigma_3_coverage", m["cov3"], "%", flat["cov3"], note),
            ]
    return out
