"""A camera's vignetting, measured over the frames it delivers and divided out of each.

A lens darkens the image towards its corners (the cos^4 law, the aperture's own
shadow): a wide lens uncorrected loses half its brightness there or more. The
matcher compares the orientation of intensity edges (:mod:`.features`), which a
uniform gain leaves alone but a falloff does not: its gradient is an edge
pointing at the principal point everywhere, as strong as a farm field's own
gradient inside the field once the frame is brought to the map's 5 m, and the
edges' weights fall with the brightness towards the corners. Measured on
cross-year NAIP frames (``bench/run camera_faults``: 2017 map, 2009 frames)
rendered through the test camera (90 deg across) with a brightness of
``1 - k (r / r_corner)^2``: half-dark corners (k = 0.5) took 400 m footprints
from 36 of 80 fixed to 10, 1 km ones from 59 of 60 to 53, no wrong fix either
way; quarter-dark ones to 22 and 57. A ring fit of each frame alone (an
elliptical falloff, an earlier harness) brought half-dark ones back to 25 of 80
and 55 of 60, but cost undarkened frames 3 fixes each (the ground's own
brightness fitted as a falloff).

So the falloff is measured over many frames, where the ground's own brightness
averages out and the lens's stays: each frame's median log brightness in rings
about the principal point (radius in tan of the angle off the optical axis,
whatever the image size), relative to the centre's, is averaged over the last
``frames`` frames (weighed by each ring's pixels), and ``log gain = a + b x +
c x^2`` (x: the ring's radius squared over the corner's) is fitted to it. With
it the half-dark frames fixed 33 of 80 and 58 of 60, the quarter-dark ones 33
and 58; undarkened ones exactly as without it. A camera whose corners fall off
by less than ``min_falloff`` is left alone: on undarkened frames the running
estimate wandered between -0.17 and +0.11 (NAIP, 200 frames a year at both
footprints; the sample flight -0.18 to +0.04), the ground's residue in the
mean, not a lens.

Each frame's statistics come from an 80-pixel-wide copy (a fraction of a
millisecond); the division, where there is one, from a gain image cached while
the fit holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.camera import CameraModel
from gps_denied_onboard.visual_nav.features import FILL_LEVEL
from gps_denied_onboard.visual_nav.geo import LocalFrame

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

#: rings of equal radius squared from the principal point to the farthest corner
RINGS = 12
#: the width of the copy each frame's ring statistics are taken on (pixels)
STATS_WIDTH = 80
#: a ring counts in a frame only with this many usable pixels of the copy
MIN_RING_PX = 12
#: usable: brighter than black fill, darker than saturation (0-255 scale)
SATURATED = 250.0


@dataclass(frozen=True)
class LensRings:
    """The flat field's running measurement (:class:`FlatField`; :mod:`.learnt_camera`
    keeps it): per ring, the weighted sum of log brightness relative to the centre,
    the weights, and how many frames went into them."""

    sums: tuple[float, ...]
    weights: tuple[float, ...]
    frames: int


@dataclass(frozen=True)
class FlatFieldConfig:
    """How the vignetting is measured (``config/visual_nav.yaml``: ``flat_field_*``).

    Attributes:
        enabled: measure and divide out at all.
        frames: the running mean's length (frames).
        min_frames: no correction before this many frames were measured.
        min_move: a frame is measured once the aircraft has moved this many
            times its height above ground since the last one measured (new ground).
        min_falloff: corners darker than the centre by less than this fraction
            are left alone.
        max_gain: no pixel is brightened (or darkened) by more than this factor.
    """

    enabled: bool = True
    frames: int = 30
    min_frames: int = 10
    min_move: float = 1.0
    min_falloff: float = 0.15
    max_gain: float = 4.0


class FlatField:
    """The falloff measured so far for one camera, and the frames divided by it."""

    def __init__(self, cfg: FlatFieldConfig) -> None:
        self.cfg = cfg
        self._camera: CameraModel | None = None
        self._small_x: F64 | None = None  # x (r^2 over the corner's) on the stats copy
        self._sum = np.zeros(RINGS)
        self._weight = np.zeros(RINGS)
        self.frames = 0
        self.divided = 0  # frames divided by a measured falloff
        self._coef: tuple[float, float] | None = None
        self._gain: F32 | None = None  # on the full frame, for _coef
        self._measured_at: tuple[float, float] | None = None  # the last frame measured

    def reset(self) -> None:
        self._camera = None
        self._small_x = None
        self._sum[:] = 0.0
        self._weight[:] = 0.0
        self.frames = 0
        self._coef = None
        self._gain = None
        self._measured_at = None

    def corner_falloff(self) -> float:
        """How much darker the farthest corner is than the centre, as measured (0: none)."""
        if self._coef is None:
            return 0.0
        b, c = self._coef
        return 1.0 - math.exp(b + c)

    def measure(
        self,
        gray: F32,
        camera: CameraModel,
        at: tuple[float, float] | None = None,
        height_m: float = 0.0,
    ) -> None:
        """Add ``gray``'s rings (a frame as the camera gave it) to the measurement, if
        its ground is new: ``at`` (latitude, longitude: where the aircraft is
        believed to be) has moved ``min_move`` times ``height_m`` since the last
        frame measured (None: every frame counts).

        Why only new ground: frames a second apart see mostly the same ground, and a flight's 30 of
        them had the ground's brightness in the mean: on the benchmark's 400 m
        flights (1 frame a second) the running estimate reached 0.19 where no lens
        darkened anything, and its division moved their fixes.
        """
        cfg = self.cfg
        if not cfg.enabled or gray.shape != (camera.height, camera.width):
            return
        if camera != self._camera:
            self.reset()
            self._camera = camera
        if at is not None:
            last = self._measured_at
            if last is not None:
                moved = math.hypot(*LocalFrame(*last).to_en(*at))
                if moved < cfg.min_move * max(height_m, 1.0):
                    return
            self._measured_at = at
        self._add(gray, camera)
        self._update_gain(camera)

    def rings(self, camera: CameraModel) -> LensRings | None:
        """The measurement so far for ``camera`` (:mod:`.learnt_camera` keeps it); None
        before any, or where it was of another camera."""
        if self.frames == 0 or camera != self._camera:
            return None
        return LensRings(
            tuple(float(v) for v in self._sum), tuple(float(v) for v in self._weight), self.frames
        )

    def restore(self, camera: CameraModel, rings: LensRings) -> bool:
        """Take up a measurement made before for ``camera`` (:mod:`.learnt_camera`):
        the running mean goes on from it, and divides frames at once where it
        reached ``min_frames``. False (nothing changed) for rings of another layout."""
        if not self.cfg.enabled or len(rings.sums) != RINGS or len(rings.weights) != RINGS:
            return False
        self.reset()
        self._camera = camera
        self._sum[:] = rings.sums
        self._weight[:] = rings.weights
        self.frames = rings.frames
        self._update_gain(camera)
        return True

    def _update_gain(self, camera: CameraModel) -> None:
        cfg = self.cfg
        if self.frames < cfg.min_frames:
            return
        coef = self._fitted()
        if coef is None:
            self._coef = self._gain = None
            return
        if coef != self._coef:
            self._coef = coef
            self._gain = None
            if self.corner_falloff() >= cfg.min_falloff:
                x = _radius2(camera, camera.width, camera.height)
                gain = np.exp(-(coef[0] * x + coef[1] * x * x))
                self._gain = np.clip(gain, 1.0 / cfg.max_gain, cfg.max_gain).astype(np.float32)

    def corrected(self, gray: F32, camera: CameraModel) -> F32:
        """``gray`` divided by the falloff measured so far for ``camera`` (``gray``
        itself where there is none to divide by)."""
        if self._gain is None or camera != self._camera or gray.shape != self._gain.shape:
            return gray
        self.divided += 1
        return np.asarray(gray * self._gain, np.float32)

    def _add(self, gray: F32, camera: CameraModel) -> None:
        h, w = gray.shape
        sw = min(STATS_WIDTH, w)
        sh = max(1, round(h * sw / w))
        small = np.asarray(cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_AREA), np.float64)
        if self._small_x is None or self._small_x.shape != small.shape:
            self._small_x = _radius2(camera, sw, sh)
        x = self._small_x
        usable = (small > FILL_LEVEL) & (small < SATURATED)
        ring = np.minimum((x * RINGS).astype(np.int64), RINGS - 1)
        logs = np.log(np.maximum(small, 1.0))
        med = np.full(RINGS, np.nan)
        count = np.zeros(RINGS)
        for k in range(RINGS):
            sel = usable & (ring == k)
            count[k] = np.count_nonzero(sel)
            if count[k] >= MIN_RING_PX:
                med[k] = float(np.median(logs[sel]))
        if not math.isfinite(med[0]):
            return  # no centre to measure the rest against
        rel = med - med[0]
        ok = np.isfinite(rel)
        decay = 1.0 - 1.0 / max(self.cfg.frames, 1) if self.frames >= self.cfg.frames else 1.0
        self._sum *= decay
        self._weight *= decay
        # weighed by the ring's pixels: a corner ring's few pixels say less about the lens
        self._sum[ok] += rel[ok] * count[ok]
        self._weight[ok] += count[ok]
        self.frames += 1

    def _fitted(self) -> tuple[float, float] | None:
        """``(b, c)`` of ``log gain = a + b x + c x^2`` through the rings' mean (``a``
        takes up the noise of the centre ring each frame's rings are measured against);
        None with fewer than four rings measured."""
        ok = self._weight > 0
        if np.count_nonzero(ok) < 4:
            return None
        centres = (np.arange(RINGS) + 0.5) / RINGS
        xs, ys, ws = centres[ok], self._sum[ok] / self._weight[ok], np.sqrt(self._weight[ok])
        a = np.stack([np.ones_like(xs), xs, xs * xs], 1) * ws[:, None]
        sol, *_ = np.linalg.lstsq(a, ys * ws, rcond=None)
        return round(float(sol[1]), 3), round(float(sol[2]), 3)


def _radius2(camera: CameraModel, width: int, height: int) -> F64:
    """x = r^2 / r_corner^2 at each pixel of a ``width`` x ``height`` copy of the
    camera's image, r the tangent of the angle off the optical axis (pinhole)."""
    fx, cx, fy, cy = camera.k[0], camera.k[2], camera.k[4], camera.k[5]
    sx, sy = camera.width / width, camera.height / height
    u = (np.arange(width) + 0.5) * sx - 0.5
    v = (np.arange(height) + 0.5) * sy - 0.5
    du = ((u - cx) / fx) ** 2
    dv = ((v - cy) / fy) ** 2
    corners = max(
        ((a - cx) / fx) ** 2 + ((b - cy) / fy) ** 2
        for a in (-0.5, camera.width - 0.5)
        for b in (-0.5, camera.height - 0.5)
    )
    return np.asarray((dv[:, None] + du[None, :]) / max(corners, 1e-12), np.float64)
