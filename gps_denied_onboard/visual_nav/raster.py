"""Map mosaics as the matcher sees them: orientation fields on a north-up grid.

A mosaic of tiles (:mod:`.mapview`) becomes a :class:`FieldRaster` at each of
the matcher's resolutions (:func:`raster_from_mosaic`): the gray plane's
orientation field (:mod:`.features`), which the search correlates, and the
gray and saturation planes themselves, which the gate's witnesses
(:mod:`.witness`) look at around a placement the search chose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.features import orientation_field

F32 = NDArray[np.float32]

#: harmonics of the saturation plane's field (:func:`.witness.colour_support`)
COLOUR_HARMONICS = 2


@dataclass
class FieldRaster:
    """An orientation field on a north-up grid.

    ``world px = origin + pixel_index * step`` in map-zoom world pixels (pixel
    centres at ``index + 0.5`` in those units, see :mod:`.geo`).
    """

    channels: tuple[F32, ...]
    origin_x: float
    origin_y: float
    step: float  # map-zoom world pixels per raster pixel
    valid: NDArray[np.uint8] | None = None  # where the map has imagery
    #: builds the saturation plane's field (colour tiles); see :attr:`chroma`
    colour: Callable[[], tuple[F32, ...]] | None = None
    #: the gray plane itself on this grid (:func:`.witness.intensity_support`)
    gray: F32 | None = None
    _chroma: tuple[F32, ...] | None = field(default=None, init=False, repr=False)

    @property
    def chroma(self) -> tuple[F32, ...] | None:
        """The saturation plane's field, built when first asked: only the gate's
        uncorroborated matches of colour frames ask (:func:`colour_support`), and a
        mosaic built for a mono camera, or while tracking, never pays for it (36
        tiles: 16 ms when asked; the mosaic 85 ms against 79 ms with no colour at all).
        """
        if self._chroma is None and self.colour is not None:
            self._chroma = self.colour()
        return self._chroma

    def coverage(self, x0: int, y0: int, cols: int, rows: int) -> float:
        """Fraction of the window that has map imagery (1.0 when unknown)."""
        if self.valid is None:
            return 1.0
        win = self.valid[max(0, y0) : y0 + rows, max(0, x0) : x0 + cols]
        return float(np.count_nonzero(win)) / max(1, cols * rows)

    def gray_window(self, x0: int, y0: int, cols: int, rows: int) -> F32 | None:
        """The gray plane over a window; None outside the raster or without one."""
        if self.gray is None:
            return None
        h, w = self.gray.shape
        if x0 < 0 or y0 < 0 or x0 + cols > w or y0 + rows > h:
            return None
        return self.gray[y0 : y0 + rows, x0 : x0 + cols]

    def window(
        self, x0: int, y0: int, cols: int, rows: int, harmonics: int, *, chroma: bool = False
    ) -> tuple[F32, ...] | None:
        """The first ``harmonics`` harmonics' channels over a window (of the
        saturation plane with ``chroma``; None too when the raster has none)."""
        h, w = self.channels[0].shape
        if x0 < 0 or y0 < 0 or x0 + cols > w or y0 + rows > h:
            return None
        plane = self.chroma if chroma else self.channels
        if plane is None:
            return None
        return tuple(c[y0 : y0 + rows, x0 : x0 + cols] for c in plane[: 2 * harmonics])


def raster_from_mosaic(
    gray: F32,
    valid: NDArray[np.uint8],
    origin_x: float,
    origin_y: float,
    step: float,
    *,
    harmonics: int,
    chroma: F32 | None = None,
) -> FieldRaster:
    """The orientation field of a map mosaic resampled to ``step`` world px per pixel.

    ``gray[j, i]`` is the mosaic pixel whose centre is at world px
    ``(origin_x + i + 0.5, origin_y + j + 0.5)``. The output keeps the same
    top-left corner; a Gaussian pre-blur stands in for area averaging.
    ``chroma``: the mosaic's saturation plane, whose field the raster builds
    when first asked (:attr:`FieldRaster.chroma`, :func:`colour_support`).
    """
    h, w = gray.shape
    cols, rows = int(w / step), int(h / step)
    # out pixel i centre -> mosaic coordinate (i + 0.5) * step - 0.5
    a = np.array([[step, 0.0, 0.5 * step - 0.5], [0.0, step, 0.5 * step - 0.5]])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP

    def resampled(plane: F32) -> F32:
        if step > 1.0:
            plane = np.asarray(cv2.GaussianBlur(plane, (0, 0), 0.5 * step), np.float32)
        return np.asarray(
            cv2.warpAffine(plane, a, (cols, rows), flags=flags, borderValue=0.0), np.float32
        )

    nearest = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    v = np.asarray(cv2.warpAffine(valid, a, (cols, rows), flags=nearest), np.uint8)
    plane_gray = resampled(gray)
    channels, _ = orientation_field(plane_gray, v, harmonics=harmonics)
    colour = None
    if chroma is not None:
        plane = chroma

        def colour() -> tuple[F32, ...]:
            return orientation_field(resampled(plane), v, harmonics=COLOUR_HARMONICS)[0]

    return FieldRaster(channels, origin_x, origin_y, step, v, colour, plane_gray)
