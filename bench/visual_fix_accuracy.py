"""Accuracy of the visual position estimator on real orthophotos across years.

Map tiles from NAIP 2017; frames rendered from 2009 (8 years apart), 2020 (3
years) and, for an 11-year gap, 2020 frames against a 2009 map. The gate and
the error model were calibrated on 2014 frames, which are never reported here
(``_visual_nav_calibration.py`` reproduces what those runs measured). Footprints
of 1 km (500 m above ground) and 400 m (200 m). Protocol details:
``_visual_nav_env.py``.

Figures per (pair, footprint): % of frames fixed, median and p95 horizontal
error of accepted fixes, wrong fixes accepted (> 30 m) per 1000 frames, and
the share of per-axis errors within 1 sigma and 3 sigma. The same-year control
(2017 frames on the 2017 map) is each figure's baseline: the ratio says what
the years cost. A gate figure replays 1 km and 400 m frames with the prior
displaced 900-1300 m (the truth outside the search window): none may be accepted.

- ``1km.exact_attitude``: the issue's protocol (the autopilot's roll and pitch
  are true); the issue's accuracy targets apply here.
- ``1km.attitude_0.15deg``: the same with the roll/pitch error of a real
  autopilot; the covariance targets apply here (sigma is calibrated for it).
- ``400m.single_frame``: single frames, cold (nothing to stitch yet).
- ``400m.stitched``: 32 s flights at 1 frame/s with attitude error; frames
  after the first 20 s count, when registration has stitched a patch; the
  velocity from registration is scored against the truth here too.

- ``1km.flights`` (full run only): 16 s flights of 1 km frames at 1 frame/s with
  attitude error, 15 per pair; the velocity from registration against the truth.

- ``400m.gnss_velocity_then_denied`` (full run only, reported): the stitched
  flights with the GNSS's velocity streamed until the GNSS is denied at 10 s.

- ``400m.restart_in_turn`` (full run only, reported): 400 m frames through a 20 deg
  banked turn with the GNSS denied and the estimator restarted as the bank begins.

- ``spoofed_gnss``: 1 km flights whose GNSS, healthy by the FC's verdict and
  claiming 3 m, is dragged off the truth at 10 m/s after 6 s (``dragged``: the
  frames fixed once the drag has passed the search window) or is 400 m off from
  the start (``cold``: the frames fixed after 20 s). Baseline: the same flights
  with the healthy GNSS always the prior, never widened. ``cold_400m`` (full run
  only, reported): the cold case with 400 m frames stitched, 300 m off.

- ``map_misregistration``: how far each pair's two orthophotos disagree on
  where the same ground is (1 km patches; reported pairs and calibration pairs
  alike, no estimator involved). Errors are measured against the frame year,
  so this is a floor no matcher removes: 0.9-1.7 m median (p95 1.8-4.5 m) on
  the reported pairs, 1.6-2.3 m (p95 2.4-5.1 m) on the calibration pairs, which
  is why the error model, calibrated on the latter, is wider than the former
  need (``map_sigma_m``).

``--quick`` uses 12 frames per pair and one 24 s flight (the full run 700
per cross-year pair at 1 km, 2100 in all, as the issue's 1-per-1000
wrong-fix target needs, and 15 flights of 32 s per pair).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
from _visual_nav_calibration import CALIBRATION_PAIRS
from _visual_nav_env import (
    AGL,
    ATT_NOISE_DEG,
    error_en,
    estimator,
    flights,
    fly,
    fly_restarted,
    fly_spoofed,
    frame,
    misregistration,
    run_trial,
    trials,
    turn_flights,
)
from harness import figure, report

from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.geo import LocalFrame
from gps_denied_onboard.visual_nav.odometry import OdometryConfig

PAIRS = {  # name: (map year, frame year)
    "8y_2017map_2009frames": ("2017", "2009"),
    "3y_2017map_2020frames": ("2017", "2020"),
    "11y_2009map_2020frames": ("2009", "2020"),
}
CONTROL = ("2017", "2017")


def _summary(
    n: int, errs: list[float], axis: list[tuple[float, float, float]], fixed: int
) -> dict[str, Any]:
    a = np.array(axis) if axis else np.zeros((0, 3))

    def within(m: float) -> float:
        if not len(a):
            return 0.0
        return float(np.mean(np.concatenate([a[:, 0] <= m * a[:, 2], a[:, 1] <= m * a[:, 2]])))

    good = [x for x in errs if x <= 30.0]
    wrong = sum(x > 30.0 for x in errs)
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


def _measure(
    map_year: str, frame_year: str, footprint: str, n: int, seed: int, att_noise: float
) -> dict[str, Any]:
    est = estimator(map_year)
    errs: list[float] = []
    axis: list[tuple[float, float, float]] = []  # |e|, |n|, sigma
    fixed = 0
    for k, t in enumerate(trials(seed, n, AGL[footprint], att_noise_deg=att_noise)):
        got = run_trial(est, k, t, frame(frame_year, t))
        if not isinstance(got, VisualFix):
            continue
        fixed += 1
        e, nn = error_en(t, got)
        errs.append(float(np.hypot(e, nn)))
        axis.append((abs(e), abs(nn), got.sigma_m))
    return _summary(n, errs, axis, fixed)


def _measure_flights(
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
) -> dict[str, Any]:
    """Flights frame by frame (registration, stitching); frames after ``settle_s`` count.

    ``stitch=False`` matches every frame alone while still tracking (own-track
    prior, registration velocity): what single frames give in flight. With
    ``gnss_velocity`` the GNSS's velocity is streamed while it is healthy (until
    ``gnss_lost_s``, None: throughout).
    """
    errs: list[float] = []
    axis: list[tuple[float, float, float]] = []
    vel: list[tuple[float, float, float]] = []  # |dve|, |dvn|, sigma
    fixed = counted = 0
    for k, f in enumerate(flights(seed, n, AGL[footprint], frames=frames, rate_hz=1.0)):
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
    out = _summary(counted, errs, axis, fixed)
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


def _gate(n: int, seed: int) -> tuple[int, int]:
    """Frames with the truth outside the search window, both footprints: (accepted, frames)."""
    accepted = frames = 0
    for footprint in ("1km", "400m"):
        for map_year, frame_year in PAIRS.values():
            est = estimator(map_year)
            for k, t in enumerate(trials(seed, n, AGL[footprint], displaced=True)):
                got = run_trial(est, k, t, frame(frame_year, t))
                accepted += isinstance(got, VisualFix)
                frames += 1
    return accepted, frames


#: the issue's protocol (true roll and pitch) and a real autopilot's (ATT_NOISE_DEG off)
PROTOCOLS = {"exact_attitude": 0.0, f"attitude_{ATT_NOISE_DEG:g}deg": ATT_NOISE_DEG}
FLIGHT_FRAMES = 32
SETTLE_S = 20.0


def _coverage(tag: str, m: dict[str, Any], base: dict[str, Any], prefix: str = "") -> list[Any]:
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


def run(quick: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    # -- 1 km, single frames, both protocols
    for proto, noise in PROTOCOLS.items():
        exact = noise == 0.0
        n = 12 if quick else (700 if exact else 300)
        base = _measure(*CONTROL, "1km", n, seed=101, att_noise=noise)
        wrong = frames = 0
        for name, (map_year, frame_year) in PAIRS.items():
            m = _measure(map_year, frame_year, "1km", n, seed=_seed(name), att_noise=noise)
            wrong += m["wrong"]
            frames += n
            tag = f"visual_fix_accuracy.1km.{proto}.{name}"
            if exact:  # the targets are for its protocol
                out += [
                    figure(
                        f"{tag}.fixed",
                        m["fixed_pct"],
                        "%",
                        base["fixed_pct"],
                        ">=95",
                        m["fixed_pct"] >= 95,
                        frames=n,
                    ),
                    figure(
                        f"{tag}.median_error",
                        m["median_m"],
                        "m",
                        base["median_m"],
                        "<=2.5",
                        m["median_m"] <= 2.5,
                    ),
                    figure(
                        f"{tag}.p95_error", m["p95_m"], "m", base["p95_m"], "<=6", m["p95_m"] <= 6.0
                    ),
                    report(
                        f"{tag}.sigma_1_coverage",
                        m["cov1"],
                        "%",
                        base["cov1"],
                        "sigma is calibrated for attitude error; with exact attitude it is wide",
                    ),
                ]
            else:
                out += [
                    report(
                        f"{tag}.fixed",
                        m["fixed_pct"],
                        "%",
                        base["fixed_pct"],
                        "the issue's protocol has exact attitude; this adds the autopilot's",
                        frames=n,
                    ),
                    report(
                        f"{tag}.median_error",
                        m["median_m"],
                        "m",
                        base["median_m"],
                        "attitude error adds height*tan(error) that no matcher can see",
                    ),
                    report(
                        f"{tag}.p95_error",
                        m["p95_m"],
                        "m",
                        base["p95_m"],
                        "attitude error adds height*tan(error) that no matcher can see",
                    ),
                    *_coverage(tag, m, base),
                ]
        out.append(
            figure(
                f"visual_fix_accuracy.1km.{proto}.wrong_fixes_per_1000",
                1000.0 * wrong / frames,
                "per 1000 frames",
                base["wrong_per_1000"],
                "<=1 over >=2000 frames" if exact else "<=1",
                (1000.0 * wrong / frames) <= 1.0 and (frames >= 2000 or quick or not exact),
                wrong=wrong,
                frames=frames,
            )
        )
    # -- 400 m, single frames (cold: nothing to stitch), the protocol
    n = 12 if quick else 200
    base = _measure(*CONTROL, "400m", n, seed=101, att_noise=0.0)
    wrong = 0
    for name, (map_year, frame_year) in PAIRS.items():
        m = _measure(map_year, frame_year, "400m", n, seed=_seed(name), att_noise=0.0)
        wrong += m["wrong"]
        tag = f"visual_fix_accuracy.400m.single_frame.{name}"
        out += [
            figure(
                f"{tag}.fixed",
                m["fixed_pct"],
                "%",
                base["fixed_pct"],
                ">=60",
                m["fixed_pct"] >= 60,
                frames=n,
            ),
            report(
                f"{tag}.median_error",
                m["median_m"],
                "m",
                base["median_m"],
                "accuracy of the accepted single 400 m frames",
            ),
        ]
    out.append(
        figure(
            "visual_fix_accuracy.400m.single_frame.wrong_fixes_per_1000",
            1000.0 * wrong / (n * len(PAIRS)),
            "per 1000 frames",
            base["wrong_per_1000"],
            "<=1",
            wrong == 0 or 1000.0 * wrong / (n * len(PAIRS)) <= 1.0,
            wrong=wrong,
        )
    )
    # -- 400 m flights: frames registered and stitched; and the velocity that gives
    nf = 1 if quick else 15
    nframes = 24 if quick else FLIGHT_FRAMES
    base = _measure_flights(*CONTROL, "400m", nf, seed=202, settle_s=SETTLE_S, frames=nframes)
    wrong = frames = 0
    for name, (map_year, frame_year) in PAIRS.items():
        m = _measure_flights(
            map_year, frame_year, "400m", nf, seed=_seed(name), settle_s=SETTLE_S, frames=nframes
        )
        wrong += m["wrong"]
        frames += m["n"]
        alone = _measure_flights(
            map_year,
            frame_year,
            "400m",
            nf,
            seed=_seed(name),
            settle_s=SETTLE_S,
            frames=nframes,
            stitch=False,
        )
        tag = f"visual_fix_accuracy.400m.stitched.{name}"
        out += [
            report(
                f"visual_fix_accuracy.400m.single_frame_in_flight.{name}.fixed",
                alone["fixed_pct"],
                "%",
                base["fixed_pct"],
                "the same flights with stitching off: each frame matched alone, tracking",
                frames=alone["n"],
                wrong=alone["wrong"],
                p95_m=alone["p95_m"],
            ),
            figure(
                f"{tag}.fixed",
                m["fixed_pct"],
                "%",
                base["fixed_pct"],
                ">=90",
                m["fixed_pct"] >= 90,
                frames=m["n"],
                flights=nf,
                settle_s=SETTLE_S,
            ),
            report(
                f"{tag}.median_error",
                m["median_m"],
                "m",
                base["median_m"],
                "accuracy of fixes from stitched 400 m frames",
            ),
            report(
                f"{tag}.p95_error",
                m["p95_m"],
                "m",
                base["p95_m"],
                "accuracy of fixes from stitched 400 m frames",
            ),
            *_coverage(tag, m, base),
            report(
                f"{tag}.velocity_median_error",
                m["vel_median"],
                "m/s",
                base["vel_median"],
                "velocity from frame-to-frame registration, 1 s baseline",
            ),
            *_coverage(tag, m, base, prefix="vel_"),
        ]
    out.append(
        figure(
            "visual_fix_accuracy.400m.stitched.wrong_fixes_per_1000",
            1000.0 * wrong / max(frames, 1),
            "per 1000 frames",
            base["wrong_per_1000"],
            "<=1",
            1000.0 * wrong / max(frames, 1) <= 1.0,
            wrong=wrong,
            frames=frames,
        )
    )
    if not quick:  # minutes a pair: the full run only
        out += _flights_1km()
        out += _restart_in_turn()
        out += _gnss_velocity_then_denied()
    out += _spoofed_gnss(quick)
    # -- the floor: how far the map year's ground sits from the frame year's
    for name, (map_year, frame_year) in {**PAIRS, **CALIBRATION_PAIRS}.items():
        d = misregistration(map_year, frame_year)
        tag = f"visual_fix_accuracy.map_misregistration.{name}"
        note = (
            "1 km patches of the frame year's orthophoto against the map year's at the same "
            "coordinates: an error no matcher can remove, which map_sigma_m budgets"
        )
        out += [
            report(f"{tag}.median", float(np.median(d)), "m", None, note, patches=len(d)),
            report(f"{tag}.p95", float(np.percentile(d, 95)), "m", None, note, patches=len(d)),
        ]
    accepted, frames = _gate(8 if quick else 100, seed=7)
    out.append(
        figure(
            "visual_fix_accuracy.gate.displaced_prior_accepted",
            accepted,
            "frames",
            frames,
            "0",
            accepted == 0,
        )
    )
    return out


FLIGHTS_1KM = 15
FLIGHT_1KM_FRAMES = 16
FLIGHT_1KM_SETTLE_S = 2.0  # the first registration gives the second frame its velocity


def _flights_1km() -> list[dict[str, Any]]:
    """1 km flights (1 frame/s, attitude error): the velocity from frame-to-frame
    registration, which the 400 m figures measure only on stitched fixes. Its
    covariance targets are a fix's (60-80 % within 1 sigma per axis, 99 % within
    3). Baseline: the same-year control."""

    def flights_of(pair: tuple[str, str], seed: int) -> dict[str, Any]:
        return _measure_flights(
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
        m = flights_of(pair, _seed(name) + 5000)
        tag = f"visual_fix_accuracy.1km.flights.{name}"
        out += [
            report(
                f"{tag}.velocity_median_error",
                m["vel_median"],
                "m/s",
                base["vel_median"],
                "velocity from frame-to-frame registration of 1 km frames, 1 s baseline",
                frames=m["n"],
                flights=FLIGHTS_1KM,
            ),
            *_coverage(tag, m, base, prefix="vel_"),
        ]
    return out


GNSS_VELOCITY_LOST_S = 10.0


def _gnss_velocity_then_denied() -> list[dict[str, Any]]:
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
            _measure_flights(
                map_year,
                frame_year,
                "400m",
                15,
                seed=_seed(name),
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


def _restart_in_turn() -> list[dict[str, Any]]:
    """400 m frames (2 Hz) through a 20 deg banked turn with the GNSS denied, the
    estimator restarted as the bank begins and resumed from its last fix (as a
    visual_nav killed and respawned resumes from ``/fc/sent_fix``). Reported, no
    target: the restarted estimator's stitched patches hold only the frames since
    the restart, all banked, and are smaller and weaker than those of one that
    flew on (seen: a patch's scale 3-5 % off, which its lever of about 200 m
    carries to the fix). Baseline: the same flights without the restart.
    Counted: the fixes from the restart to the end of the flight."""
    out: list[dict[str, Any]] = []
    for name, (map_year, frame_year) in PAIRS.items():
        tally: dict[str, list[tuple[float, float, float]]] = {"restart": [], "none": []}
        counted = {"restart": 0, "none": 0}
        for f in turn_flights(_seed(name) + 7000, RESTART_FLIGHTS, AGL["400m"]):
            t0 = f.poses[0].stamp_ns
            for mode, at in (("restart", RESTART_AT_S), ("none", None)):
                got = fly_restarted(
                    map_year, frame_year, f, gnss_lost_s=RESTART_GNSS_LOST_S, restart_s=at
                )
                for p, fix in zip(f.poses, got, strict=True):
                    if (p.stamp_ns - t0) / 1e9 < RESTART_AT_S:
                        continue
                    counted[mode] += 1
                    if isinstance(fix, VisualFix):
                        e, nn = LocalFrame(p.lat, p.lon).to_en(fix.latitude, fix.longitude)
                        tally[mode].append((abs(e), abs(nn), fix.sigma_m))
        m = {
            k: _summary(counted[k], [math.hypot(a, b) for a, b, _ in v], v, len(v))
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


SPOOF_FRAMES = 36
SPOOF_HONEST_S = 6.0
SPOOF_DRAG_MPS = 10.0
SPOOF_BEYOND_M = 200.0  # past the 1 km search window around the GNSS (150 m + the margin)
SPOOF_COLD_M = 400.0  # spoofed from the start this far off
SPOOF_COLD_AFTER_S = 20.0  # by when the search has widened to it (lost after 5 s, 10 m/s)
SPOOF_COLD_400M_M = 300.0  # the 400 m case: twice its 150 m least window


def _spoofed_gnss(quick: bool) -> list[dict[str, Any]]:
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
                flights(_seed(name) + 3000, nf, AGL[footprint], frames=SPOOF_FRAMES, rate_hz=1.0)
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


def _seed(name: str) -> int:
    """A stable seed per pair (``hash`` of a str changes between runs)."""
    return sum(ord(c) * (i + 1) for i, c in enumerate(name)) % 1000


if __name__ == "__main__":
    import json

    for fig in run("--quick" in sys.argv):
        print(json.dumps(fig))
