"""What holds the visual estimator's figures back, measured on the 2014 calibration
pairs only (:data:`._visual_nav_calibration.CALIBRATION_PAIRS`).

:mod:`._visual_nav_calibration` sets the gate's and the error model's numbers;
this module asks, once they are set, where what is left comes from: how many
single 400 m frames the gate turned down had the right winner (a better gate's
ceiling: :func:`gate_ceiling`), and how much of the stitched flights' velocity
error their fix's own heading and scale correction made (:func:`velocity_error`).
From the repository root, after ``source scripts/env.sh``::

    PYTHONPATH=bench:$PYTHONPATH python bench/_visual_nav_limits.py \
        --gate-ceiling [--seed S] [--quick]
    PYTHONPATH=bench:$PYTHONPATH python bench/_visual_nav_limits.py \
        --velocity-error [--seed S] [--quick]

A helper, not a benchmark (``bench/run`` skips ``_``-modules): it prints data, not
figures with targets.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
from _visual_nav_calibration import CALIBRATION_PAIRS, velocity_parts
from _visual_nav_env import AGL, ATT_NOISE_DEG, estimator, frame, run_trial, trials
from _visual_nav_flying import flights, fly

from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.geo import LocalFrame


def gate_ceiling(n: int, seed: int) -> dict[str, Any]:
    """Single 400 m frames, cold (prior 100-300 m off, 360 m search, attitude error):
    where the search's winner lay when the gate turned it down.

    A reject whose winner is within 30 m of the truth was a right match the gate
    could not tell from chance; one farther off, a wrong winner the gate rightly
    stopped. The first count is what a better gate could gain and the second what
    only a better match could; per pair, with the features the gate saw (from the
    ``gate`` reject's detail) as quantiles per kind.

    The gate is watched (the winner handed to :func:`.gate.judge` noted), not opened
    as :data:`._visual_nav_calibration._GATE_OPEN` opens it for the calibration: what
    is asked is the configured gate's own verdict, and a match under the score floor,
    which the search drops before any gate, counts as not judged.
    """
    from gps_denied_onboard.visual_nav import estimator as estimator_module

    judged: list[tuple[float, float]] = []
    real_judge = estimator_module.judge

    def watched(cfg: Any, prior: Any, lat: float, lon: float, **kw: Any) -> Any:
        judged.append((lat, lon))
        return real_judge(cfg, prior, lat, lon, **kw)

    features = ("margin_sigmas", "agreement", "colour_support", "intensity_support", "evidence")
    out: dict[str, Any] = {}
    estimator_module.judge = watched  # type: ignore[assignment]
    try:
        for name, (map_year, frame_year) in CALIBRATION_PAIRS.items():
            est = estimator(map_year)
            counts = {"frames": n, "fixed": 0, "fixed_wrong": 0, "not_judged": 0}
            kinds: dict[str, list[dict[str, Any]]] = {"rejected_right": [], "rejected_wrong": []}
            for k, t in enumerate(trials(seed, n, AGL["400m"], att_noise_deg=ATT_NOISE_DEG)):
                judged.clear()
                got = run_trial(est, k, t, frame(frame_year, t))
                if not judged:
                    counts["not_judged"] += 1
                    continue
                e, nn = LocalFrame(t.lat, t.lon).to_en(*judged[-1])
                off = math.hypot(e, nn)
                if isinstance(got, VisualFix):
                    counts["fixed"] += 1
                    counts["fixed_wrong"] += off > 30.0
                    continue
                kinds["rejected_right" if off <= 30.0 else "rejected_wrong"].append(got.detail)
            row: dict[str, Any] = dict(counts)
            for kind, details in kinds.items():
                row[kind] = len(details)
                row[f"{kind}_quantiles_10_50_90"] = {
                    f: [round(float(q), 3) for q in np.percentile(v, (10, 50, 90))]
                    for f in features
                    if (v := [d[f] for d in details if f in d])
                }
            out[name] = row
    finally:
        estimator_module.judge = real_judge  # type: ignore[assignment]
    return out


#: the stretches of a flight that :func:`velocity_error` sums up apart (seconds from its
#: first frame): a track's first seconds, its settling, and what the benchmark counts
VELOCITY_BANDS = ((0.0, 6.0), (6.0, 20.0), (20.0, math.inf))


def velocity_error(n: int, seed: int, frames: int = 32) -> dict[str, Any]:
    """Where the velocities of stitched 400 m flights go wrong, on the calibration
    pairs: ``n`` flights per pair (``frames`` at 1 frame/s, attitude error 0.15
    deg, seeds ``seed + 100 * i``), summed up per :data:`VELOCITY_BANDS`.

    A velocity is registration's raw motion turned and scaled by its fix's own
    heading and scale correction (:func:`.uncertainty.registration_velocity`), so
    its error has two sources. Per band: the RMS error (m/s, vector), the RMS of
    what the correction's error alone makes of the speed (its scale error and
    heading error against the flight's truth), the share within 1 and 3 sigma
    per axis of the whole sigma and of its part without the correction's term
    (registration with its floor), and the scale error's 5/50/95th percentiles
    with the share past -5 % and +5 %.

    Why: the velocities' 1-sigma coverage stands over the 60-80 % asked while
    their 3-sigma coverage is what ``velocity_correction_k`` was fitted to; this
    says which term holds each up (``config/visual_nav.yaml``).
    """
    rows: list[dict[str, float]] = []
    for i, (map_year, frame_year) in enumerate(CALIBRATION_PAIRS.values()):
        for f in flights(seed + 100 * i, n, AGL["400m"], frames=frames, rate_hz=1.0):
            est = estimator(map_year)
            t0 = f.poses[0].stamp_ns
            for p, got in zip(f.poses, fly(est, frame_year, f), strict=True):
                if not isinstance(got, VisualFix) or got.velocity_en is None:
                    continue
                speed, _, registration = velocity_parts(est.cfg, got)
                # the fix's heading correction answers the autopilot's yaw error
                yaw_err = (p.yaw_rep - p.yaw + 180.0) % 360.0 - 180.0
                scale_error = got.scale * f.height_factor - 1.0
                heading_error = math.radians(got.heading_offset_deg - yaw_err)
                rows.append(
                    {
                        "t": (p.stamp_ns - t0) / 1e9,
                        "de": got.velocity_en[0] - p.ve,
                        "dn": got.velocity_en[1] - p.vn,
                        "sigma": got.velocity_sigma,
                        "registration": registration,
                        "correction_error": speed * math.hypot(scale_error, heading_error),
                        "scale_error": scale_error,
                    }
                )
    out: dict[str, Any] = {}
    for lo, hi in VELOCITY_BANDS:
        band = [r for r in rows if lo <= r["t"] < hi]
        name = f"{lo:g}-{hi:g}s" if hi < math.inf else f"{lo:g}s-"
        if not band:
            out[name] = {"velocities": 0}
            continue
        err = np.array([[abs(r["de"]), abs(r["dn"])] for r in band])
        se = np.array([r["scale_error"] for r in band])

        def within(sigma: list[float], k: float, err: Any = err) -> float:
            return round(100.0 * float(np.mean(err <= k * np.array(sigma)[:, None])), 1)

        whole = [r["sigma"] for r in band]
        registration = [r["registration"] for r in band]
        out[name] = {
            "velocities": len(band),
            "rms_error": round(float(np.sqrt(np.mean(np.sum(err**2, axis=1)))), 3),
            "rms_correction_error": round(
                float(np.sqrt(np.mean([r["correction_error"] ** 2 for r in band]))), 3
            ),
            "sigma_1_3_coverage": [within(whole, 1.0), within(whole, 3.0)],
            "registration_sigma_1_3_coverage": [
                within(registration, 1.0),
                within(registration, 3.0),
            ],
            "scale_error_5_50_95": [round(float(q), 4) for q in np.percentile(se, (5, 50, 95))],
            "scale_error_past_minus_plus_5pct": [
                round(100.0 * float(np.mean(se < -0.05)), 1),
                round(100.0 * float(np.mean(se > 0.05)), 1),
            ],
        }
    return out


if __name__ == "__main__":
    import json

    quick = "--quick" in sys.argv
    at = sys.argv.index("--seed") if "--seed" in sys.argv else -1
    if "--velocity-error" in sys.argv:
        seed = int(sys.argv[at + 1]) if at >= 0 else 188000
        print(json.dumps(velocity_error(4 if quick else 16, seed)))
    elif "--gate-ceiling" in sys.argv:
        seed = int(sys.argv[at + 1]) if at >= 0 else 4242
        print(json.dumps(gate_ceiling(40 if quick else 300, seed)))
    else:
        sys.exit(__doc__)
