"""``visual_fix_accuracy``'s figures at other scales than the issue's: frames from
100 m over NAIP laid down at 1 m/px (``low_altitude`` by hand, ``auto_scale`` by the
ground-scale ladder), frames from 1000 m (``high_altitude``), and frames over a cache
of coarser tiles only (``coarser_tiles``). ``visual_fix_accuracy.py`` says what each
measures against what.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from _visual_fix_common import PAIRS, accuracy, seed_of, single_frames
from _visual_nav_env import (
    AGL,
    Trial,
    estimator,
    estimator_at,
    frame,
    frame_at,
    run_trial,
    trial_at,
    trials,
)
from harness import report
from numpy.typing import NDArray

#: the world's scale in ``low_altitude``: 1 km frames' geometry at a fifth of the size
LOW_SCALE = 0.2


def _measure_low(
    map_year: str, frame_year: str, n: int, seed: int, ground_scale: float, **env: Any
) -> dict[str, Any]:
    """Single frames 100 m above NAIP laid down at 1 m/px (``low_altitude``;
    ``env``: :func:`estimator_at`'s ladder and extra tiles, ``auto_scale``)."""
    est = estimator_at(map_year, LOW_SCALE, ground_scale, **env)
    batch = [trial_at(t, LOW_SCALE) for t in trials(seed, n, AGL["1km"])]
    prior_sigma = 120.0 * LOW_SCALE  # run_trial's, at the scale
    tried = [
        (t, run_trial(est, k, t, frame_at(frame_year, t, LOW_SCALE), prior_sigma=prior_sigma))
        for k, t in enumerate(batch)
    ]
    return single_frames(tried, wrong_m=30.0 * LOW_SCALE)


def _low_frames(
    tag: str, n: int, notes: tuple[str, str], measured: dict[str, Any], baseline: dict[str, Any]
) -> list[dict[str, Any]]:
    """``low_altitude``'s frames per pair, :func:`_measure_low` with ``measured``'s
    settings against ``baseline``'s: the five figures each, and the wrong fixes per
    1000 (``notes``: the figures' and the wrong count's)."""
    out: list[dict[str, Any]] = []
    wrong = frames = 0
    for name, (map_year, frame_year) in PAIRS.items():
        seed = seed_of(name) + 500
        m = _measure_low(map_year, frame_year, n, seed, **measured)
        base = _measure_low(map_year, frame_year, n, seed, **baseline)
        wrong += m["wrong"]
        frames += n
        out += accuracy(f"visual_fix_accuracy.{tag}.{name}", m, base, notes[0], n)
    out.append(
        report(
            f"visual_fix_accuracy.{tag}.wrong_fixes_per_1000",
            1000.0 * wrong / max(frames, 1),
            "per 1000 frames",
            None,
            notes[1],
            wrong=wrong,
            frames=frames,
        )
    )
    return out


def auto_scale(quick: bool) -> list[dict[str, Any]]:
    """``auto_scale``'s figures: ``low_altitude``'s frames at the configured ground scale
    (1) with the ladder over z15 and z17 tiles, against the same without the ladder."""
    env = {"ground_scale": 1.0, "tile_resolutions_m": (1.25,)}
    notes = (
        "low_altitude's 200 m frames at ground_scale 1, tiles at z15 and z17: the "
        "ground scale halved by the frames' width where the tiles hold it (1.25 m/px); "
        "baseline the same without halving (5 m/px)",
        "fixes over 6 m off (30 m at the scale) with the ground scale halved",
    )
    return _low_frames(
        "auto_scale",
        4 if quick else 60,
        notes,
        {**env, "finer_scale_levels": 3},
        {**env, "finer_scale_levels": 0},
    )


def low_altitude(quick: bool) -> list[dict[str, Any]]:
    """``low_altitude``'s figures: each pair at ground scale 0.2 against 1."""
    notes = (
        "100 m above ground, 200 m frames, NAIP laid down at 1 m/px, matched at ground_scale "
        "0.2 (1 m/px); baseline ground_scale 1 (5 m/px)",
        "fixes over 6 m off (30 m at the scale) at ground_scale 0.2",
    )
    return _low_frames(
        "low_altitude",
        6 if quick else 100,
        notes,
        {"ground_scale": LOW_SCALE},
        {"ground_scale": 1.0},
    )


def high_altitude(quick: bool) -> list[dict[str, Any]]:
    """``high_altitude``'s figures: 1000 m frames with the coarser rung against without."""
    n = 4 if quick else 40
    note = (
        "2 km frames from 1000 m, 0.15 deg attitude error, z15 tiles: matched at the ground "
        "scale doubled (10 m/px); baseline without the coarser rung (5 m/px)"
    )
    out: list[dict[str, Any]] = []
    wrong = 0
    for name, (map_year, frame_year) in PAIRS.items():
        tried = [(t, frame(frame_year, t)) for t in trials(seed_of(name) + 900, n, AGL["2km"])]
        got = {}
        for levels in (1, 0):
            est = estimator(map_year, scale_coarser_levels=levels)
            got[levels] = single_frames(
                [(t, run_trial(est, k, t, im)) for k, (t, im) in enumerate(tried)]
            )
        wrong += got[1]["wrong"]
        out += accuracy(f"visual_fix_accuracy.high_altitude.{name}", got[1], got[0], note, n)
    frames = n * len(PAIRS)
    out.append(
        report(
            "visual_fix_accuracy.high_altitude.wrong_fixes_per_1000",
            1000.0 * wrong / frames,
            "per 1000 frames",
            None,
            "fixes over 30 m off, 1000 m frames matched at the ground scale doubled",
            wrong=wrong,
            frames=frames,
        )
    )
    return out


#: what the autopilot's flat-ground height makes of the true one in ``height_off``
#: (the ground 100 m above or below the home at 500 m, or a barometer that far off)
HEIGHT_OFF = (0.8, 1.2)


def height_off(quick: bool) -> list[dict[str, Any]]:
    """``height_off``'s figures: frames whose height is reported a fifth low or high,
    searched with the scale rungs (``scale_search_rungs`` 2) against without (0, which
    refuses a scale pressing past the candidates)."""
    n = 4 if quick else 60
    footprints = ("1km",) if quick else ("1km", "400m")
    out: list[dict[str, Any]] = []
    wrong = {2: 0, 0: 0}
    frames = 0
    for footprint in footprints:
        for name, (map_year, frame_year) in PAIRS.items():
            batch = [
                replace(t, height_factor=HEIGHT_OFF[k % 2])
                for k, t in enumerate(trials(seed_of(name) + 1100, n, AGL[footprint]))
            ]
            tried = [(t, frame(frame_year, t)) for t in batch]
            got = {}
            for rungs in (2, 0):
                est = estimator(map_year, scale_search_rungs=rungs)
                got[rungs] = single_frames(
                    [(t, run_trial(est, k, t, im)) for k, (t, im) in enumerate(tried)]
                )
                wrong[rungs] += got[rungs]["wrong"]
            frames += n
            note = (
                f"{footprint} frames, height reported 0.8 / 1.2 of the truth, 0.15 deg "
                "attitude error: scale rungs searched; baseline without (pressing refused)"
            )
            out += accuracy(
                f"visual_fix_accuracy.height_off.{footprint}.{name}", got[2], got[0], note, n
            )
    out.append(
        report(
            "visual_fix_accuracy.height_off.wrong_fixes_per_1000",
            1000.0 * wrong[2] / frames,
            "per 1000 frames",
            1000.0 * wrong[0] / frames,
            "fixes over 30 m off with the height a fifth off; baseline without rungs",
            wrong=wrong[2],
            frames=frames,
        )
    )
    return out


def _over_tiles(
    map_year: str, levels: int, tried: list[tuple[Trial, NDArray[np.uint8]]]
) -> dict[str, Any]:
    """:func:`single_frames` of frames matched over ``levels`` zooms coarser tiles only."""
    est = estimator(map_year, coarser=levels)
    return single_frames([(t, run_trial(est, k, t, im)) for k, (t, im) in enumerate(tried)])


def coarser_tiles(quick: bool) -> list[dict[str, Any]]:
    """``coarser_tiles``' figures: each pair over z14 and z13 tiles only, against z15."""
    n = 4 if quick else 60
    footprints = ("1km",) if quick else ("1km", "400m")
    levels_run = (2,) if quick else (1, 2)
    out: list[dict[str, Any]] = []
    wrong = frames = 0
    for footprint in footprints:
        for name, (map_year, frame_year) in PAIRS.items():
            batch = trials(seed_of(name) + 700, n, AGL[footprint])
            tried = [(t, frame(frame_year, t)) for t in batch]
            base = _over_tiles(map_year, 0, tried)
            for levels in levels_run:
                m = _over_tiles(map_year, levels, tried)
                wrong += m["wrong"]
                frames += n
                zoom = 15 - levels
                tag = f"visual_fix_accuracy.coarser_tiles.z{zoom}.{footprint}.{name}"
                note = (
                    f"{footprint} frames, 0.15 deg attitude error, over z{zoom} tiles only "
                    f"(enlarged {1 << levels}x); baseline: over the map's own z15 tiles"
                )
                out += accuracy(tag, m, base, note, n)
    out.append(
        report(
            "visual_fix_accuracy.coarser_tiles.wrong_fixes_per_1000",
            1000.0 * wrong / max(frames, 1),
            "per 1000 frames",
            None,
            "fixes over 30 m off, over z14 and z13 tiles only",
            wrong=wrong,
            frames=frames,
        )
    )
    return out
