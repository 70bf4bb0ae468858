"""``visual_fix_accuracy``'s flight figures: frames flown one after another, so that
registration tracks, stitches and gives a velocity.

- ``400m.stitched`` (with its stitching-off twin): :func:`measure_flights`, called
  from ``visual_fix_accuracy.run``;
- full run only: ``1km.flights`` (:func:`flights_1km`),
  ``400m.gnss_velocity_then_denied``, ``400m.restart_in_turn``,
  ``400m.turn_velocity``;
- ``spoofed_gnss`` (:func:`spoofed_gnss`, fewer flights with ``--quick``).

Protocol details: ``_visual_nav_env.py``; the flights: ``_visual_nav_flying.py``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from _visual_fix_common import CONTROL, FLIGHT_FRAMES, PAIRS, SETTLE_S, coverage, seed_of, summary
from _visual_nav_env import AGL, estimator
from _visual_nav_flying import Flight, flights, fly, fly_restarted, fly_spoofed, turn_flights
from harness import figure, report

from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.geo import LocalFrame
from gps_denied_onboard.visual_nav.odometry import OdometryConfig


def measure_flights(
    map_year: str,
    frame_year: str,
    footprint: str,
    n: int,
    seed: int,
    settle_s: float,
    frames: int = 32,
    stitch: bool = True,
    gnss_velocity: bool = False,
    gnss_lost_s: float | None = None,
    agl_m: float | None = None,
) -> dict[str, Any]:
    """Flights frame by frame (registration, stitching); frames after ``settle_s`` count.

    ``stitch=False`` matches every frame alone while still tracking (own-track
    prior, registration velocity): what single frames give in flight. With
    ``gnss_velocity`` the GNSS's velocity is streamed while it is healthy (until
    ``gnss_lost_s``, None: throughout). ``agl_m`` flies them at another height
    than ``footprint``'s.
    """
    errs: list[float] = []
    axis: list[tuple[float, float, float]] = []
    vel: list[tuple[float, float, float]] = []  # |dve|, |dvn|, sigma
    fixed = counted = 0
    agl = AGL[footprint] if agl_m is None else agl_m
    for k, f in enumerate(flights(seed, n, agl, frames=frames, rate_hz=1.0)):
        est = (
            estimator(map_year)
            if stitch
            else estimator(map_year, odometry=OdometryConfig(stitch_below_area_m2=0.0))
        )
        t0 = f.poses[0].stamp_ns
        got_all = fly(
            est,
            frame_year,
            f,
            gnss_velocity_seed=seed * 100 + k if gnss_velocity else None,
            gnss_lost_s=gnss_lost_s,
        )
        for p, got in zip(f.poses, got_all, strict=True):
            if (p.stamp_ns - t0) / 1e9 < settle_s:
                continue
            counted += 1
            if not isinstance(got, VisualFix):
                continue
            fixed += 1
            e, nn = LocalFrame(p.lat, p.lon).to_en(got.latitude, got.longitude)
            errs.append(float(np.hypot(e, nn)))
            axis.append((abs(e), abs(nn), got.sigma_m))
            if got.velocity_en is not None:
                dve, dvn = got.velocity_en[0] - p.ve, got.velocity_en[1] - p.vn
                vel.append((abs(dve), abs(dvn), got.velocity_sigma))
    out = summary(counted, errs, axis, fixed)
    v = np.array(vel) if vel else np.zeros((0, 3))
    out["vel_median"] = float(np.median(np.hypot(v[:, 0], v[:, 1]))) if len(v) else float("nan")
    out["vel_cov1"] = (
        100.0 * float(np.mean(np.concatenate([v[:, 0] <= v[:, 2], v[:, 1] <= v[:, 2]])))
        if len(v)
        else 0.0
    )
    out["vel_cov3"] = (
        100.0 * float(np.mean(np.concatenate([v[:, 0] <= 3 * v[:, 2], v[:, 1] <= 3 * v[:, 2]])))
        if len(v)
        else 0.0
    )
    return out


FLIGHTS_1KM = 15
FLIGHT_1KM_FRAMES = 16
FLIGHT_1KM_SETTLE_S = 2.0  # the first registration gives the second frame its velocity


def flights_1km() -> list[dict[str, Any]]:
    """1 km flights (1 frame/s, attitude error): the velocity from frame-to-frame
    registration, which the 400 m figures measure only on stitched fixes. Its
    covariance targets are a fix's (60-80 % within 1 sigma per axis, 99 % within
    3). Baseline: the same-year control."""

    def flights_of(pair: tuple[str, str], seed: int) -> dict[str, Any]:
        return measure_flights(
            *pair,
            "1km",
            FLIGHTS_1KM,
            seed=seed,
            settle_s=FLIGHT_1KM_SETTLE_S,
            frames=FLIGHT_1KM_FRAMES,
        )

    base = flights_of(CONTROL, 303)
    out: list[dict[str, Any]] = []
    for name, pair in PAIRS.items():
        m = flights_of(pair, seed_of(name) + 5000)
        tag = f"visual_fix_accuracy.1km.flights.{name}"
        out += [
            report(
                f"{tag}.velocity_median_error",
                m["vel_median"],
                "m/s",
                base["vel_median"],
                "registration velocity of 1 km frames (2 s, or 1 s where they differ)",
                frames=m["n"],
                flights=FLIGHTS_1KM,
            ),
            *coverage(tag, m, base, prefix="vel_"),
        ]
    return out


#: heights between the 400 m frames' (200 m) and the 1 km frames' (500 m): frames 500
#: and 640 m across, halfway up the fade of a small frame's own sigma terms
MID_HEIGHTS_M = (250.0, 320.0)
MID_FLIGHTS = 6


def mid_height() -> list[dict[str, Any]]:
    """Flights (1 frame/s, attitude error) at :data:`MID_HEIGHTS_M`, which neither the
    400 m nor the 1 km figures fly: frames fixed after ``SETTLE_S`` and the sigma's
    coverage (a fix's targets). Baseline: the same-year control at that height."""
    out: list[dict[str, Any]] = []
    for agl in MID_HEIGHTS_M:
        base = measure_flights(
            *CONTROL, "400m", MID_FLIGHTS, seed=404, settle_s=SETTLE_S, agl_m=agl
        )
        for name, (map_year, frame_year) in PAIRS.items():
            m = measure_flights(
                map_year,
                frame_year,
                "400m",
                MID_FLIGHTS,
                seed=seed_of(name) + 4000,
                settle_s=SETTLE_S,
                agl_m=agl,
            )
            tag = f"visual_fix_accuracy.mid_height_{agl:g}m.{name}"
            note = f"flights {agl:g} m above ground (frames {2 * agl:g} m across), 1 frame/s"
            out += [
                report(
                    f"{tag}.fixed",
                    m["fixed_pct"],
                    "%",
                    base["fixed_pct"],
                    note,
                    frames=m["n"],
                    wrong=m["wrong"],
                ),
                report(f"{tag}.median_error", m["median_m"], "m", base["median_m"], note),
                *coverage(tag, m, base),
            ]
    return out


GNSS_VELOCITY_LOST_S = 10.0


def gnss_velocity_then_denied() -> list[dict[str, Any]]:
    """The stitched 400 m flights (the same seeds) with the GNSS's velocity streamed
    while it is healthy, then the GNSS denied after 10 s: the autopilot's heading
    and height error measured against registration, then held
    (:mod:`gps_denied_onboard.visual_nav.gnss_correction`). Reported, no target.
    Baseline: the same flights, the GNSS denied alike, with no velocity streamed.
    Counted: the frames after ``SETTLE_S``, as for ``400m.stitched``."""
    out: list[dict[str, Any]] = []
    note = (
        "stitched 400 m flights, GNSS velocity streamed until the GNSS is denied at 10 s; "
        "baseline: the same with no velocity"
    )
    for name, (map_year, frame_year) in PAIRS.items():
        m, base = (
            measure_flights(
                map_year,
                frame_year,
                "400m",
                15,
                seed=seed_of(name),
                settle_s=SETTLE_S,
                frames=FLIGHT_FRAMES,
                gnss_velocity=gv,
                gnss_lost_s=GNSS_VELOCITY_LOST_S,
            )
            for gv in (True, False)
        )
        tag = f"visual_fix_accuracy.400m.gnss_velocity_then_denied.{name}"
        out += [
            report(
                f"{tag}.fixed",
                m["fixed_pct"],
                "%",
                base["fixed_pct"],
                note,
                frames=m["n"],
                wrong=m["wrong"],
                wrong_without=base["wrong"],
            ),
            report(f"{tag}.median_error", m["median_m"], "m", base["median_m"], note),
            report(f"{tag}.p95_error", m["p95_m"], "m", base["p95_m"], note),
            report(f"{tag}.within_3sigma", m["cov3"], "%", base["cov3"], note),
        ]
    return out


RESTART_FLIGHTS = 3
RESTART_GNSS_LOST_S = 10.0
RESTART_AT_S = 22.0  # as the 20 deg bank begins


def restart_in_turn() -> list[dict[str, Any]]:
    """400 m frames (2 Hz) through a 20 deg banked turn with the GNSS denied, the
    estimator restarted as the bank begins and resumed from its last fix (as a
    visual_nav killed and respawned resumes from ``/fc/sent_fix``). Reported, no
    target: the restarted estimator's stitched patches hold only the frames since
    the restart, all banked, and are smaller and weaker than those of one that
    flew on (seen: a patch's scale 3-5 % off, which its lever of about 200 m
    carries to the fix). Baseline: the same flights without the restart.
    Counted: the fixes from the restart to the end of the flight."""
    out: list[dict[str, Any]] = []
    for name in PAIRS:
        tally: dict[str, list[tuple[float, float, float]]] = {"restart": [], "none": []}
        counted = {"restart": 0, "none": 0}
        for mode in ("restart", "none"):
            for f, got in _turn_flown(name, restart=mode == "restart", lead=True):
                t0 = f.poses[0].stamp_ns
                for p, fix in zip(f.poses, got, strict=True):
                    if (p.stamp_ns - t0) / 1e9 < RESTART_AT_S:
                        continue
                    counted[mode] += 1
                    if isinstance(fix, VisualFix):
                        e, nn = LocalFrame(p.lat, p.lon).to_en(fix.latitude, fix.longitude)
                        tally[mode].append((abs(e), abs(nn), fix.sigma_m))
        m = {
            k: summary(counted[k], [math.hypot(a, b) for a, b, _ in v], v, len(v))
            for k, v in tally.items()
        }
        tag = f"visual_fix_accuracy.400m.restart_in_turn.{name}"
        note = (
            "400 m frames through a 20 deg banked turn, GNSS denied, the estimator restarted "
            "as the bank begins and resumed from its last fix; baseline: no restart"
        )
        worst = max((math.hypot(a, b) for a, b, _ in tally["restart"]), default=float("nan"))
        out += [
            report(
                f"{tag}.fixed",
                m["restart"]["fixed_pct"],
                "%",
                m["none"]["fixed_pct"],
                note,
                frames=counted["restart"],
                flights=RESTART_FLIGHTS,
                wrong=m["restart"]["wrong"],
            ),
            report(
                f"{tag}.p95_error",
                m["restart"]["p95_m"],
                "m",
                m["none"]["p95_m"],
                note,
                max_m=round(worst, 1),
            ),
            report(f"{tag}.sigma_3_coverage", m["restart"]["cov3"], "%", m["none"]["cov3"], note),
        ]
    return out


@functools.cache
def _turn_flown(
    name: str, *, restart: bool, lead: bool
) -> tuple[tuple[Flight, tuple[VisualFix | FrameRejected | None, ...]], ...]:
    """Pair ``name``'s turn flights (``RESTART_FLIGHTS``, :func:`turn_flights`) flown by
    :func:`fly_restarted`, restarted at ``RESTART_AT_S`` or flown on; with the
    estimator's velocity as configured where ``lead``, else the bare 1 s mean
    (``odometry_turn_lead`` off, no 2 s window). Cached: :func:`restart_in_turn` and
    :func:`turn_velocity` both need the flights flown on with the lead."""
    map_year, frame_year = PAIRS[name]
    return tuple(
        (
            f,
            tuple(
                fly_restarted(
                    map_year,
                    frame_year,
                    f,
                    gnss_lost_s=RESTART_GNSS_LOST_S,
                    restart_s=RESTART_AT_S if restart else None,
                    odometry=OdometryConfig()
                    if lead
                    else OdometryConfig(turn_lead=False, velocity_long_window_s=0.0),
                )
            ),
        )
        for f in turn_flights(seed_of(name) + 7000, RESTART_FLIGHTS, AGL["400m"])
    )


def turn_velocity() -> list[dict[str, Any]]:
    """The velocity through a 20 deg banked turn (400 m frames at 2 Hz, GNSS denied
    after 10 s; :func:`restart_in_turn`'s flights, flown on): a 1 s mean trails
    the course by half its turn, which ``odometry_turn_lead`` turns on by the
    course's own turn. Reported, no target: median error and per-axis 3-sigma
    coverage over the frames whose course turned more than 1 deg over the window
    before them (the lag is there), and the median over all frames. Baseline: the
    same flights with the bare 1 s mean (``odometry_turn_lead`` off, and no 2 s
    window: ``odometry_velocity_long_window_s`` 0)."""
    out: list[dict[str, Any]] = []
    note = (
        "velocity through a 20 deg banked turn, 400 m frames at 2 Hz; "
        "baseline: the 1 s mean unturned (odometry_turn_lead off, no 2 s window)"
    )
    for name in PAIRS:
        tally: dict[bool, dict[str, list[tuple[float, float, float]]]] = {
            lead: {"turning": [], "all": []} for lead in (True, False)
        }
        for lead in (True, False):
            for f, got in _turn_flown(name, restart=False, lead=lead):
                for k, (p, fix) in enumerate(zip(f.poses, got, strict=True)):
                    if not isinstance(fix, VisualFix) or fix.velocity_en is None or k < 2:
                        continue
                    row = (
                        abs(fix.velocity_en[0] - p.ve),
                        abs(fix.velocity_en[1] - p.vn),
                        fix.velocity_sigma,
                    )
                    tally[lead]["all"].append(row)
                    before = f.poses[k - 2]  # 1 s earlier
                    turn = math.atan2(
                        before.ve * p.vn - before.vn * p.ve, before.ve * p.ve + before.vn * p.vn
                    )
                    if abs(turn) > math.radians(1.0):
                        tally[lead]["turning"].append(row)

        def summed(rows: list[tuple[float, float, float]]) -> dict[str, Any]:
            # a position's summary: its median and coverage read as m/s here
            return summary(len(rows), [math.hypot(a, b) for a, b, _ in rows], rows, len(rows))

        tag = f"visual_fix_accuracy.400m.turn_velocity.{name}"
        on = {k: summed(v) for k, v in tally[True].items()}
        off = {k: summed(v) for k, v in tally[False].items()}
        out += [
            report(
                f"{tag}.turning_median_error",
                on["turning"]["median_m"],
                "m/s",
                off["turning"]["median_m"],
                note,
                velocities=on["turning"]["n"],
                flights=RESTART_FLIGHTS,
            ),
            report(
                f"{tag}.turning_within_3sigma",
                on["turning"]["cov3"],
                "%",
                off["turning"]["cov3"],
                note,
            ),
            report(
                f"{tag}.median_error",
                on["all"]["median_m"],
                "m/s",
                off["all"]["median_m"],
                note,
                velocities=on["all"]["n"],
            ),
        ]
    return out


SPOOF_FRAMES = 36
SPOOF_HONEST_S = 6.0
SPOOF_DRAG_MPS = 10.0
SPOOF_BEYOND_M = 200.0  # past the 1 km search window around the GNSS (150 m + the margin)
SPOOF_COLD_M = 400.0  # spoofed from the start this far off
SPOOF_COLD_AFTER_S = 20.0  # by when the search has widened to it (lost after 5 s, 10 m/s)
SPOOF_COLD_400M_M = 300.0  # the 400 m case: twice its 150 m least window


def spoofed_gnss(quick: bool) -> list[dict[str, Any]]:
    """1 km flights (1 frame/s, attitude error) under a spoofed GNSS that the FC calls
    healthy and that claims 3 m.

    - ``dragged``: honest for ``SPOOF_HONEST_S``, then dragged off at
      ``SPOOF_DRAG_MPS``; frames fixed right (<= 30 m) once the drag is past
      ``SPOOF_BEYOND_M``.
    - ``cold``: ``SPOOF_COLD_M`` off from the first frame; frames fixed right
      after ``SPOOF_COLD_AFTER_S``.

    Baselines: the same flights with the healthy GNSS always the prior and never
    widened (``prior_track_over_gnss_fixes`` 0, ``lost_sigma_growth_mps`` 0). A
    wrong fix fails a figure. The spoofed GNSS's velocity is streamed with it,
    dragged alike, as a spoofer keeps the two consistent (the estimator measures
    the autopilot's heading and height error against it while it follows it).
    """
    pairs = list(PAIRS.items())[:1] if quick else list(PAIRS.items())
    nf = 1 if quick else 4
    off = {"prior_track_over_gnss_fixes": 0, "lost_sigma_growth_mps": 0.0}
    out = []
    cases = [
        ("dragged", "1km", SPOOF_HONEST_S, 0.0, lambda drag, t: drag >= SPOOF_BEYOND_M),
        ("cold", "1km", 1e9, SPOOF_COLD_M, lambda drag, t: t >= SPOOF_COLD_AFTER_S),
    ]
    if not quick:  # reported, no target: 400 m frames stitched while the search widens
        cases.append(
            ("cold_400m", "400m", 1e9, SPOOF_COLD_400M_M, lambda drag, t: t >= SPOOF_COLD_AFTER_S)
        )
    for case, footprint, honest_s, start_m, counts_from in cases:
        tally = {"on": [0, 0], "off": [0, 0]}  # [fixed right, frames counted]
        wrong = 0
        for name, (map_year, frame_year) in pairs:
            for k, f in enumerate(
                flights(seed_of(name) + 3000, nf, AGL[footprint], frames=SPOOF_FRAMES, rate_hz=1.0)
            ):
                t0 = f.poses[0].stamp_ns
                for mode, cfg in (("on", {}), ("off", off)):
                    got = fly_spoofed(
                        estimator(map_year, **cfg),
                        frame_year,
                        f,
                        honest_s=honest_s,
                        drag_mps=SPOOF_DRAG_MPS,
                        start_m=start_m,
                        gnss_velocity_seed=k,
                    )
                    for p, (drag, fix) in zip(f.poses, got, strict=True):
                        if not counts_from(drag, (p.stamp_ns - t0) / 1e9):
                            continue
                        tally[mode][1] += 1
                        if isinstance(fix, VisualFix):
                            e, nn = LocalFrame(p.lat, p.lon).to_en(fix.latitude, fix.longitude)
                            if math.hypot(e, nn) <= 30.0:
                                tally[mode][0] += 1
                            elif mode == "on":
                                wrong += 1
        pct = 100.0 * tally["on"][0] / max(tally["on"][1], 1)
        base = 100.0 * tally["off"][0] / max(tally["off"][1], 1)
        fig_name = f"visual_fix_accuracy.spoofed_gnss.{case}.fixed"
        counted = {"frames": tally["on"][1], "wrong": wrong}
        if footprint == "400m":  # reported: no target for a 400 m spoof
            note = (
                f"400 m frames (stitched) under a GNSS spoofed {start_m:g} m from the start: "
                f"fixed right after {SPOOF_COLD_AFTER_S:g} s; wrong: fixes > 30 m among them"
            )
            out.append(report(fig_name, pct, "%", base, note, **counted))
        else:
            target_met = pct >= 90.0 and wrong == 0
            out.append(
                figure(fig_name, pct, "%", base, ">=90, no wrong fix", target_met, **counted)
            )
    return out
