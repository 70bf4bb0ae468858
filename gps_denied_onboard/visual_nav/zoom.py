"""How much larger the ground looks in one frame than in the one before: the zoom.

Frames are rectified at the height the autopilot reports. Without a rangefinder
that is the altitude over the home's ground, so where the ground rises or falls
under the aircraft every frame is rectified at the wrong height, and by a
different amount as the ground goes on changing. Registration (:mod:`.odometry`)
places each frame on the one before by a translation; a stitched patch built
from those placements holds frames of different true scales, is matched at one
scale, and carries the difference to its nadir by a lever of 100-400 m.

The zoom between two consecutive frames is measured where registration placed
them: the current frame, magnified about its nadir by each of :data:`CANDIDATES`,
is correlated on the previous one (a placement search of :data:`SLACK_PX` each
way), and a parabola through the best scores gives the factor. Two details carry
its precision (400 m frames, 1 a second, over flat ground; errors of the log):

- the frame is first moved by the fraction of a pixel that puts registration's
  placement on the grid, so the scores compared are the peak's own and not its
  neighbours' a fraction of a pixel off: 0.25-0.43 % RMS without (2009, 2014 and
  2020 frames), 0.13-0.16 % with (2014 frames);
- no candidate is the untouched frame: all are resampled, so none scores higher
  for being sharper. A first probe, which among other differences had the
  untouched frame among its candidates, was 0.19 % off on average over flat
  ground; this measurement 0.04-0.09 %.

Where the ground rose by a fifth of the height over 10 s (2 % a frame), 0.25 %.
A zoom past the candidates' reach (about 3.5 % between two frames: 7 m of climb
or descent at 200 m) is not measured, and that registration counts as none.

What it buys (:meth:`.odometry.OdometryTrack.stitch`; 2014 calibration flights,
GNSS denied, 400 m frames, the ground rising by a fifth of the height over 10 or
40 s, 4 flights per pair and case, seed 188000, frames from the rise on): median /
p95 error 5.2 / 15.4 and 4.9 / 12.6 m over 10 s, 4.9 / 14.9 and 5.5 / 22.5 m (2 fixes
over 30 m off) over 40 s without it; 4.3 / 12.6, 4.3 / 8.7, 3.7 / 9.9 and 3.8 / 8.3
m (none) with it. Over flat ground 3.5 / 7.5 and 3.0 / 7.1 m without it, 3.7 / 7.6
and 3.0 / 7.1 with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.rectify import RectifiedFrame

F32 = NDArray[np.float32]
#: a frame's orientation field and texture, as :func:`.odometry.prev_field_of` gives it
Field = tuple[tuple[F32, ...], float]


class Register(Protocol):
    """:func:`.odometry.register`'s shape."""

    def __call__(
        self,
        prev: RectifiedFrame,
        cur: RectifiedFrame,
        predicted: tuple[float, float],
        search_m: float,
        *,
        prev_field: Field | None = None,
    ) -> tuple[float, float, float, float] | None: ...


#: the candidate magnifications, symmetric about 1 and none of them 1 (module docstring)
CANDIDATES = (0.96, 0.9867, 1.0133, 1.04)
#: the placement search around registration's answer, pixels each way
SLACK_PX = 2


def magnified(
    view: RectifiedFrame, factor: float, moved_px: tuple[float, float] = (0.0, 0.0)
) -> RectifiedFrame:
    """``view`` with its ground magnified ``factor`` times about its nadir and moved by
    ``moved_px`` (columns, rows), its nadir attributes unchanged; the mask shrinks by a
    pixel first, its edge being interpolated with black."""
    c, r = view.nadir_col, view.nadir_row
    mx, my = moved_px
    m = np.array([[factor, 0.0, c * (1.0 - factor) + mx], [0.0, factor, r * (1.0 - factor) + my]])
    h, w = view.mask.shape
    image = cv2.warpAffine(view.image, m, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(
        cv2.erode(view.mask, np.ones((3, 3), np.uint8)), m, (w, h), flags=cv2.INTER_NEAREST
    )
    return RectifiedFrame(
        np.asarray(image, np.float32),
        np.asarray(mask, np.uint8),
        c,
        r,
        view.resolution_m,
        view.footprint_m * factor,
    )


def zoom_between(
    prev: RectifiedFrame,
    cur: RectifiedFrame,
    shift_m: tuple[float, float],
    register: Register,
    field_of: Callable[[RectifiedFrame], Field],
) -> float | None:
    """The factor by which ``cur`` must be magnified about its nadir to match ``prev``
    where registration put it (``shift_m``: its nadir east, north of ``prev``'s): the
    ratio of ``cur``'s true ground size per pixel to ``prev``'s. None where a
    candidate could not be registered or the scores have no maximum inside the
    candidates' span.

    ``register`` is :func:`.odometry.register` and ``field_of`` its
    :func:`.odometry.prev_field_of` (passed in: that module imports this one);
    ``prev``'s field is taken once for every candidate.
    """
    res = cur.resolution_m
    # registration's placement (cur's pixel p lies on prev's p + o), and the fraction
    # of a pixel that moves it onto the grid: the scores compared are then the peaks'
    # own, not their neighbours' a fraction of a pixel off
    ox = prev.nadir_col + shift_m[0] / res - cur.nadir_col
    oy = prev.nadir_row - shift_m[1] / res - cur.nadir_row
    moved = (ox - round(ox), oy - round(oy))
    prev_field = field_of(prev)
    scores: list[float] = []
    for factor in CANDIDATES:
        moved_cur = magnified(cur, factor, moved)
        got = register(prev, moved_cur, shift_m, SLACK_PX * res, prev_field=prev_field)
        if got is None:
            return None
        scores.append(float(got[2]))
    x = np.log(np.asarray(CANDIDATES))
    a, b, _ = np.polyfit(x, np.asarray(scores), 2)
    if not (a < 0.0 and math.isfinite(b)):
        return None
    top = -b / (2.0 * a)
    if not (x[0] <= top <= x[-1]):
        return None
    return float(math.exp(top))
