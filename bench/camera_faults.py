"""Faults a real camera brings that rendered frames never have: reported, one target.

- ``vignetting``: frames darkened towards their corners (a wide lens's falloff,
  half and a quarter at the corners), matched with the falloff measured and
  divided out (:mod:`gps_denied_onboard.visual_nav.flat_field`); baseline: the
  same frames with ``flat_field`` off. ``undarkened`` is the same frames as
  rendered, with it on against off; its target: equal (the correction must
  leave them alone).
- ``mounting``: the camera 1.5 deg (about the body's forward axis) and 1 deg
  (about its left one) off the mount the estimator is told, flights at 500 m
  above ground turning 90 deg or more, a GNSS 1.5 m noisy until 50 s, then
  lost; the fixes after the loss, with the mounting error measured against the
  GNSS and corrected (:mod:`gps_denied_onboard.visual_nav.boresight`);
  baseline: ``boresight`` off.

Cross-year frames: 2017 map, 2009 frames (the 8-year pair).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from _visual_nav_env import AGL, CAMERA, error_en, estimator, frame, run_trial, trials
from _visual_nav_flying import flights, fly
from harness import figure, report

from gps_denied_onboard.visual_nav.boresight import BoresightConfig
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.flat_field import FlatFieldConfig
from gps_denied_onboard.visual_nav.geo import LocalFrame

MAP, FRAMES = "2017", "2009"
SEED = 4242


def _falloff(corner: float) -> np.ndarray:
    """1 - corner * (r / r_corner)^2 over the test camera's image, r off its centre."""
    cam = CAMERA
    v, u = np.mgrid[0 : cam.height, 0 : cam.width].astype(np.float64)
    r2 = (u - cam.width / 2) ** 2 + (v - cam.height / 2) ** 2
    return (1.0 - corner * r2 / r2.max())[..., None]


def _fixed(footprint: str, rendered: list[np.ndarray], corner: float, on: bool) -> tuple[int, int]:
    """(fixed, wrong) of the ``rendered`` single frames darkened by ``corner`` at the
    corners."""
    est = estimator(MAP, flat_field=FlatFieldConfig(enabled=on))
    fall = _falloff(corner)
    fixed = wrong = 0
    for k, t in enumerate(trials(SEED, len(rendered), AGL[footprint])):
        img = np.clip(rendered[k] * fall, 0, 255).astype(np.uint8)
        got = run_trial(est, k, t, img)
        if isinstance(got, VisualFix):
            fixed += 1
            wrong += math.hypot(*error_en(t, got)) > 30.0
    return fixed, wrong


def vignetting(quick: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cases = (
        (("half", 0.5), ("undarkened", 0.0))
        if quick
        else (("half", 0.5), ("quarter", 0.25), ("undarkened", 0.0))
    )
    for footprint, n in (("400m", 40 if quick else 80), ("1km", 30 if quick else 60)):
        rendered = [frame(FRAMES, t) for t in trials(SEED, n, AGL[footprint])]
        for label, corner in cases:
            on, w_on = _fixed(footprint, rendered, corner, True)
            off, w_off = _fixed(footprint, rendered, corner, False)
            extra = {"frames": n, "wrong": w_on, "wrong_without": w_off}
            if corner == 0.0:
                # the correction must leave a lens without falloff alone: not a fix more
                # or less than without it
                out.append(
                    figure(
                        f"camera_faults.undarkened.{footprint}.fixed",
                        100.0 * on / n,
                        "%",
                        100.0 * off / n,
                        "== baseline",
                        on == off and w_on == w_off,
                        note="single frames as rendered, flat_field on; baseline: off",
                        **extra,
                    )
                )
                continue
            out.append(
                report(
                    f"camera_faults.vignetting_{label}.{footprint}.fixed",
                    100.0 * on / n,
                    "%",
                    100.0 * off / n,
                    "single frames, flat_field on; baseline: off",
                    **extra,
                )
            )
    return out


MOUNT_DEG = (1.5, -1.0)  # the camera's error: about the body's forward and left axes
GNSS_LOST_S = 50.0


def mounting(quick: bool) -> list[dict[str, Any]]:
    want = 2 if quick else 6
    chosen = []
    for f in flights(31, 40, AGL["1km"], frames=70, rate_hz=1.0):
        if abs(((f.poses[-1].yaw - f.poses[0].yaw + 180.0) % 360.0) - 180.0) >= 90.0:
            chosen.append(f)
        if len(chosen) == want:
            break
    figures: dict[bool, tuple[float, float, float]] = {}
    for on in (True, False):
        errs: list[float] = []
        z: list[float] = []
        for i, f in enumerate(chosen):
            # the autopilot's attitude as reported, the camera turned off it: a reported
            # roll 1.5 deg short of the camera's is a mount turned 1.5 deg about forward
            poses = tuple(
                replace(p, roll_rep=p.roll_rep - MOUNT_DEG[0], pitch_rep=p.pitch_rep - MOUNT_DEG[1])
                for p in f.poses
            )
            rng = np.random.default_rng(i)
            offs = [(float(a), float(b)) for a, b in rng.normal(0.0, 1.5, (len(poses), 2))]
            est = estimator(MAP, boresight=BoresightConfig(enabled=on))
            got = fly(
                est,
                FRAMES,
                replace(f, poses=poses),
                prior_sigma=2.0,
                gnss_off=offs,
                gnss_lost_s=GNSS_LOST_S,
            )
            t0 = poses[0].stamp_ns
            for p, g in zip(poses, got, strict=True):
                if isinstance(g, VisualFix) and (p.stamp_ns - t0) / 1e9 >= GNSS_LOST_S:
                    e, n = LocalFrame(p.lat, p.lon).to_en(g.latitude, g.longitude)
                    errs.append(math.hypot(e, n))
                    z += [abs(e) / g.sigma_m, abs(n) / g.sigma_m]
        zz = np.array(z)
        figures[on] = (
            float(np.median(errs)),
            float(np.percentile(errs, 95)),
            100.0 * float(np.mean(zz <= 3.0)),
        )
    note = "fixes after the GNSS's loss, boresight on; baseline: off"
    tag = "camera_faults.mounting_1.5deg_1deg"
    (m, p95, c3), (bm, bp95, bc3) = figures[True], figures[False]
    return [
        report(f"{tag}.median_error", m, "m", bm, note, flights=len(chosen)),
        report(f"{tag}.p95_error", p95, "m", bp95, note),
        report(f"{tag}.within_3sigma", c3, "%", bc3, note),
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    return vignetting(quick) + mounting(quick)
