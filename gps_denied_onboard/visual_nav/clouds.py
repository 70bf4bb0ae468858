"""What of a camera frame is cloud: left out of the match, like black fill.

A cloud under the aircraft (low stratus, a fog patch) hides the ground, and the
matcher (:mod:`.features`) would see two things in it that no map has: its
outline, an edge as strong as any field's, and its blank inside, which a
correlation counts as ground with no edges while the map there has them. Both
pull the true placement's score down. Measured on cross-year frames
(``bench/run camera_weather``: 2017 map, 2009 frames, 80 single cold frames a
footprint, white cloud with soft rims over a share of each frame): 1 km
footprints fixed 39 and 6 % with 15 and 30 % cloud (97.5 % clear), 400 m ones
1 and 0 % (49 % clear).

A cloud is what is left of the bright (``level`` and up on 0-255), colourless
(saturation ``max_saturation`` and down, where the frame has colour) pixels
once every run narrower than ``min_run_m`` on the ground is opened away (a
white roof, a concrete road), of the runs standing ``surround_sigmas`` above
the ground round them, grown by ``grow_m`` over the cloud's soft rim.
With it the same frames fixed 92.5 and 90 % (1 km), 37.5 and 21 % (400 m), with
no wrong fix either way. The gate judges what is left as the smaller template
it is (:func:`.gate.gate_at`), and a frame this mask (or clipping) took 5 % or more
of on its evidence (:data:`.gate.OBSCURED_SHARE`).

Colourless means white: ``max_saturation`` is 30, not the 50 first chosen,
because pale ground overexposed looks like cloud at 50. NAIP's 2009 frames
have a median saturation of 47 (the other years 75), so an exposure set for
darker ground (every level times 1.6-2.2, clipped at 255) took their bright
fields for cloud, with the field edges round them. On the calibration pair
(2014 map, 2009 frames, 80 cold 1 km frames, seed 84000) at gains of 1.6 /
1.8 / 2.0 / 2.2 the mask off fixed 79 / 79 / 79 / 65, the mask at 50 77 / 65
/ 32 / 0, at 30 79 / 78 / 70 / 32 (400 m at 1.6 / 2.0: 40 / 28 off, 35 / 8
at 50, 40 / 20 at 30). White cloud's saturation is under 20, so the clouds
above are found as before. Heavy overexposure is a hazard of its own: each
of the three gave one 1 km fix over 30 m off among those (off at 2.2, 50 at
1.8, 30 at 2.0); a frame more than half clipped is refused
(:func:`.pixels.exposure_problem`), and a mask of some of an overexposed
frame's pale fields is not laid (:func:`_stands_above_surround`).

What it cannot tell from a cloud: snow, a salt flat, a white roof or a concrete
apron as wide as ``min_run_m``. Those are left out too, with the edges round
them; the frame is matched on the rest, or refused for too little of it. Bright
ground narrower than that is the best of landmarks (a concrete highway is 25-50
m across), and both map and frame have its edges. ``min_run_m`` was 30 m, until
concrete roads 20-50 m wide and white roofs 30-80 m across, laid on map and
frames alike, showed what that cost: on the calibration pair (2014 map, 2009
frames, 40 frames) 400 m frames fixed 19 of 40 with the mask against 27
without, 25 at 60 m, and its clouds fixed as many at 60 m as at 30 (1 km 38
and 38 of 40 at 15 and 30 % cloud, against 38 and 37). Reported
(``camera_weather``, 80 frames): 400 m 55 -> 67.5 % fixed against 71 % with the
mask off, 1 km 96 -> 100 % against 100, for 1-4 points under the clouds (95 and
90 % at 30 m). No NAIP frame of the four years has a pixel at ``level`` (1 km
and 400 m frames, 40 each), so the benchmarks' clear frames are matched as
before.

The opening and growing run on a copy shrunk to about a twentieth of
``min_run_m`` a pixel (3 m at 60 m: fine enough for the rim's ``grow_m``), and a
frame with no bright pixel costs one comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.features import saturation_f32

F32 = NDArray[np.float32]
U8 = NDArray[np.uint8]

#: the pixels of the copy the shape work runs on, per ``min_run_m``
_RUN_PX = 20

#: the share of the bright runs' area that must stand above its surround for the
#: runs to be cloud (:func:`_stands_above_surround`); white cloud's runs stood so
#: over 99 % of their area, overexposed ground's over 10-46 %
STANDING_SHARE = 0.8


@dataclass(frozen=True)
class CloudMaskConfig:
    """Which pixels of a frame are taken for cloud (see the module's docstring)."""

    enabled: bool = True
    level: float = 215.0
    max_saturation: float = 30.0
    min_run_m: float = 60.0
    grow_m: float = 20.0
    surround_sigmas: float = 3.0


def cloud_mask(
    gray: F32, color: NDArray[np.generic] | None, pixel_m: float, cfg: CloudMaskConfig
) -> U8 | None:
    """Where ``gray`` (0-255) shows cloud (0) and where ground (255); None where it
    shows no cloud, or ``cfg`` is off.

    Args:
        gray: the frame's gray plane, 0-255.
        color: the frame in colour, whose saturation (:func:`.features.saturation_f32`)
            is read where a pixel is bright; None for a mono frame, judged on
            brightness alone.
        pixel_m: the ground one pixel sees at the nadir (m).
        cfg: the thresholds.
    """
    if not cfg.enabled or not (math.isfinite(pixel_m) and pixel_m > 0.0):
        return None
    bright = gray >= cfg.level
    if not bright.any():
        return None
    saturation = saturation_f32(color) if color is not None else None
    if saturation is not None:
        bright &= saturation <= cfg.max_saturation
    h, w = gray.shape
    step = max(1, int(cfg.min_run_m / _RUN_PX / pixel_m))
    size = (max(1, w // step), max(1, h // step))
    small = cv2.resize(bright.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    px_m = pixel_m * w / small.shape[1]
    run = max(3, round(cfg.min_run_m / px_m) | 1)
    if run > min(small.shape):
        # the frame sees less ground than a cloud's least run (a lens claiming a focal
        # length of 1e9 px): nothing in it can be one, and a disc that size is no mask
        return None
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (run, run))
    found = np.asarray(
        cv2.morphologyEx((small >= 0.5).astype(np.uint8), cv2.MORPH_OPEN, disc), np.uint8
    )
    if not found.any():
        return None
    rim_px = round(cfg.grow_m / px_m)
    if not _stands_above_surround(found, gray, size, rim_px, cfg):
        return None
    grow = min(2 * rim_px + 1, 2 * max(small.shape) + 1)
    if grow > 1:
        rim = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow))
        found = np.asarray(cv2.dilate(found, rim), np.uint8)
    back = cv2.resize(found, (w, h), interpolation=cv2.INTER_NEAREST)
    return np.where(back > 0, 0, 255).astype(np.uint8)


def _stands_above_surround(
    found: U8, gray: F32, size: tuple[int, int], rim_px: int, cfg: CloudMaskConfig
) -> bool:
    """Whether the bright runs ``found`` (on the copy of ``size``) stand above the
    ground round them, as clouds do. A run stands above it when its median gray
    level less the surround's (``grow_m`` to twice that beyond it) is
    ``surround_sigmas`` or more of the surround's spread (1.4826 times its median
    absolute deviation, plus a level), or when the frame shows no surround. The
    runs are cloud, all of them, when :data:`STANDING_SHARE` of their area stands,
    and none is otherwise.

    Why: a cloud stands far above the ground round it, whatever the exposure or
    the haze; pale ground overexposed does not (its neighbours are the next pale
    fields). On the calibration pair's 1 km frames (2014 map, 2009 frames, 40,
    seed 87000) white cloud over 30 / 50 % of the frame stood 4.1-5.0 sigmas up
    at the 5th percentile of its runs (14 at the median), in haze too; bright
    runs of frames overexposed 1.6 / 1.8 / 2.0 / 2.2 times, 1.3-3.1 at the
    median, and 3 sigmas left 10 / 19 / 26 / 46 % of their area (a level of 170
    for the surround's median, tried first, cost hazy clouds their mask: 83 ->
    12 % of 1 km frames fixed). A mono frame has no saturation to tell the two
    apart, so this is its only test. All or none: a mask of some of an
    overexposed frame's pale fields is a lace of the scene's own pattern, and
    mono frames overexposed 1.8 times and matched on what such masks left (runs
    under 3 sigmas dropped, the rest kept) gave 3 fixes over 30 m off in 107
    (2017 map, 2009 frames, 1 km and 400 m), where unmasked they gave none.
    """
    rim = max(rim_px, 1)
    dist, labels = cv2.distanceTransformWithLabels(
        np.where(found > 0, 0, 1).astype(np.uint8),
        cv2.DIST_L2,
        3,
        labelType=cv2.DIST_LABEL_CCOMP,
    )
    shade = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    ring = (dist > rim) & (dist <= 2 * rim)
    runs = found > 0
    standing = 0
    for label in np.unique(labels[runs]):
        run = runs & (labels == label)
        around = shade[ring & (labels == label)]
        if around.size:
            level = float(np.median(around))
            spread = 1.4826 * float(np.median(np.abs(around - level))) + 1.0
            if float(np.median(shade[run])) - level < cfg.surround_sigmas * spread:
                continue
        standing += int(np.count_nonzero(run))
    return standing >= STANDING_SHARE * int(np.count_nonzero(runs))
