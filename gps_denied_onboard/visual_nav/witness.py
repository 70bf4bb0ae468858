"""Second looks at a placement: what the gate weighs beside the search's margin.

The search (:mod:`.matcher`) ranks placements on the gray plane's orientation
field as a whole. Once it has placed a template, these look at that one
placement again through what the ranking never used, each as a score in
standard deviations above the placement's neighbourhood: the template's
quadrants on their own (:func:`quadrant_peaks`, :func:`agreement_of`), the
colour saturation's edges (:func:`colour_support`), the gray levels themselves
rather than their edges (:func:`intensity_support`). For a chance placement
they are nearly independent of the margin and of each other; for a right one
they rise together, so the gate (:func:`.gate.evidence`) adds them up. Where
the quadrants' own peaks lie apart (:func:`spread_of`) says how far a right
placement may still be off: a stitched fix's sigma reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.correlate import (
    Template,
    WindowSpectra,
    find_peak,
    masked_zncc_within,
    prepare_template,
    window_spectra,
)
from gps_denied_onboard.visual_nav.features import orientation_field
from gps_denied_onboard.visual_nav.raster import COLOUR_HARMONICS, FieldRaster

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class PlacedTemplate:
    """A template's field and mask, placed on a raster (top-left corner, raster px)."""

    chans: tuple[F32, ...]
    mask: NDArray[np.uint8]
    raster: FieldRaster
    col: int
    row: int
    harmonics: int
    reach_px: int
    #: the view's saturation plane on the template's grid, rendered when first asked
    colour_plane: Callable[[], F32 | None] | None = None
    witness_reach_px: int = 8  # the colour and intensity supports' neighbourhood
    #: the view's gray plane on the template's grid (the placed render's image)
    gray: F32 | None = None

    @cached_property
    def quadrants(self) -> tuple[QuadrantPeak, ...]:
        """:func:`quadrant_peaks` of this placement, worked out once (the gate's
        agreement and a stitched fix's sigma both read them)."""
        return quadrant_peaks(
            self.chans,
            self.mask,
            self.raster,
            (self.col, self.row),
            harmonics=self.harmonics,
            reach_px=self.reach_px,
        )

    def agreement(self) -> float:
        """:func:`agreement_of` this placement's quadrants."""
        return agreement_of(self.quadrants)

    def quadrant_spread_px(self) -> float | None:
        """:func:`spread_of` this placement's quadrants (raster px)."""
        return spread_of(self.quadrants)

    def colour_support(self) -> float | None:
        """:func:`colour_support` of this placement; None without colour (a mono
        frame or map, a stitched patch)."""
        plane = self.colour_plane() if self.colour_plane is not None else None
        if plane is None:
            return None
        return colour_support(
            plane, self.mask, self.raster, (self.col, self.row), self.witness_reach_px
        )

    def intensity_support(self) -> float | None:
        """:func:`intensity_support` of this placement; None without the gray plane."""
        if self.gray is None:
            return None
        return intensity_support(
            self.gray, self.mask, self.raster, (self.col, self.row), self.witness_reach_px
        )


#: a quadrant with fewer valid pixels than this is left out of the agreement
_MIN_QUADRANT_PX = 200


@dataclass(frozen=True)
class QuadrantPeak:
    """One quadrant of a placed template, correlated on its own about the placement."""

    #: its score at the placement, in standard deviations above the neighbourhood's mean
    standing: float
    #: where its own best placement lies off the whole template's placement (raster
    #: px, sub-pixel; the placement is whole pixels, so only differences say much)
    dx_px: float
    dy_px: float


def quadrant_peaks(
    chans: tuple[F32, ...],
    mask: NDArray[np.uint8],
    raster: FieldRaster,
    placement: tuple[int, int],
    *,
    harmonics: int,
    reach_px: int,
) -> tuple[QuadrantPeak, ...]:
    """Each quadrant of a placed template on its own: its standing at the placement
    and where its own peak lies.

    The template (``chans``, ``mask``) is split into four quadrants about its
    valid pixels' median row and column; each one with ``_MIN_QUADRANT_PX``
    valid pixels is correlated (masked ZNCC) over the placements within
    ``reach_px`` of ``placement`` (the whole template's top-left corner, raster
    px). Empty when the neighbourhood leaves the raster.
    """
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return ()
    cy, cx = float(np.median(ys)), float(np.median(xs))
    rows = np.arange(mask.shape[0])[:, None] >= cy
    cols = np.arange(mask.shape[1])[None, :] >= cx
    # every quadrant is the whole template's box with part of its mask: one window
    win = raster.window(*_neighbourhood(mask, placement, reach_px), harmonics)
    if win is None:
        return ()
    spectra = window_spectra(win)
    out: list[QuadrantPeak] = []
    for lower in (False, True):
        for right in (False, True):
            part = np.where((rows == lower) & (cols == right), mask, 0).astype(np.uint8)
            if np.count_nonzero(part) < _MIN_QUADRANT_PX:
                continue
            s = _surface(prepare_template(chans, part), spectra, reach_px)
            z = _standing_in(s, reach_px)
            if z is not None:
                pk = find_peak(s, exclusion_px=1.0)  # sub-pixel
                out.append(QuadrantPeak(z, pk.col - reach_px, pk.row - reach_px))
    return tuple(out)


def agreement_of(quadrants: tuple[QuadrantPeak, ...]) -> float:
    """How well a placed template's quadrants agree with the placement, each on its
    own: the mean of their standings (0 when there are none).

    Why: a chance peak of the whole template is usually carried by one part of
    it, a right one by all of it. On the calibration pairs (400 m frames), a
    certainly-wrong match's quadrants gave a median of 1.2 and at most 2.2 in
    2,276; right ones a median of 1.9 (see the estimator's gate).
    """
    return float(np.mean([q.standing for q in quadrants])) if quadrants else 0.0


def spread_of(quadrants: tuple[QuadrantPeak, ...]) -> float | None:
    """How far a placed template's quadrants disagree about where it lies: the
    root mean square of their own peaks' offsets about their mean (raster px);
    None with fewer than two.

    Why: where the two images' ground disagrees locally (one year's orthophoto
    shifted against the other's by a few metres there, a stitched patch bent by
    its registration chain), the parts of the template pull different ways and
    the whole lands between them, off by about as much. On the 2014 calibration
    flights (400 m frames stitched, 3,798 fixes) the 115 fixes more than 3 sigma
    off (sigma from the margin alone) showed a median spread of 3.0 px, the others 1.2.
    """
    if len(quadrants) < 2:
        return None
    d = np.array([(q.dx_px, q.dy_px) for q in quadrants])
    return float(np.sqrt(np.mean(np.sum((d - d.mean(axis=0)) ** 2, axis=1))))


#: below this mean saturation-gradient (0-255 scale) a view's colour has no say: a
#: gray scene's (snow, a gray-world camera) is noise; NAIP frames' runs 10-24
_MIN_COLOUR_TEXTURE = 2.0


def colour_support(
    chroma: F32,
    mask: NDArray[np.uint8],
    raster: FieldRaster,
    placement: tuple[int, int],
    reach_px: int,
) -> float | None:
    """How far the saturation edges back a placement the gray plane chose.

    The view's saturation plane (``chroma``, on the template's grid, with its
    ``mask``) is correlated (masked ZNCC of its orientation field, two
    harmonics) with the map's over the placements within ``reach_px`` of
    ``placement`` (the template's top-left corner, raster px); the result is the
    score at the placement in standard deviations above that neighbourhood's
    mean. None when the raster has no saturation plane, the neighbourhood
    leaves it, or the view's colour is too flat to say anything
    (``_MIN_COLOUR_TEXTURE``) or is absent where the map's is (a mono tile).

    Why: the search ranks placements on the gray plane only, so this score has
    had no hand in choosing the placement, and colour edges (a crop boundary,
    a tree line against a field) show where the gray ones do: behind a right
    match a median of 2.1, behind a certainly-wrong one 0.9 (calibration pairs,
    400 m frames; see :func:`.gate.evidence`).
    """
    chans, texture = orientation_field(chroma, mask, harmonics=COLOUR_HARMONICS)
    if texture < _MIN_COLOUR_TEXTURE:
        return None
    box = _neighbourhood(mask, placement, reach_px)
    win = raster.window(*box, COLOUR_HARMONICS, chroma=True)
    if win is None:
        return None
    # None where the map's plane is flat there (mono tiles): no witness
    return _standing(prepare_template(chans, mask), window_spectra(win), reach_px)


#: below this standard deviation of its gray levels (0-255 scale) under the mask a
#: view's brightness has no say: a uniform scene's ZNCC is noise
_MIN_GRAY_STD = 2.0


def intensity_support(
    gray: F32,
    mask: NDArray[np.uint8],
    raster: FieldRaster,
    placement: tuple[int, int],
    reach_px: int,
) -> float | None:
    """How far the brightness itself backs a placement the orientation field chose.

    The view's gray plane (``gray``, on the template's grid, with its ``mask``)
    is correlated (masked ZNCC of the gray levels, not of their edges) with the
    map's over the placements within ``reach_px`` of ``placement`` (the
    template's top-left corner, raster px); the result is the score at the
    placement in standard deviations above that neighbourhood's mean. None when
    the raster has no gray plane, the neighbourhood leaves it, or the view is
    too uniform to say anything (``_MIN_GRAY_STD``).

    Why: the search correlates the orientation of edges, which a field that
    changed crop keeps and its brightness does not; but most ground keeps its
    brightness's sign across the years too (woods dark, roads and roofs
    bright), and that is a look at the placement the orientation field never
    took. On the calibration pairs (400 m frames, searches of 360 m) its score
    behind 2,663 certainly-wrong matches had a median of 0.06 and correlated
    with the margin, the agreement and the colour support by -0.05, 0.00 and
    0.04; behind right ones a median of 1.58 (see :func:`.gate.evidence`).
    A camera in another band than the map (near infrared, where crops are
    bright) can invert the brightness: the witness then counts against right
    placements, which costs fixes but lets no more wrong ones through: behind
    a chance placement the score falls either side of zero alike, inverted or
    not, as the allowances were calibrated.
    """
    m = mask > 0
    if np.count_nonzero(m) < 2 or float(gray[m].std()) < _MIN_GRAY_STD:
        return None
    win = raster.gray_window(*_neighbourhood(mask, placement, reach_px))
    if win is None:
        return None
    # None where the map is flat there: no witness
    return _standing(prepare_template((gray,), mask), window_spectra((win,)), reach_px)


def _neighbourhood(
    mask: NDArray[np.uint8], placement: tuple[int, int], reach_px: int
) -> tuple[int, int, int, int]:
    """The raster window (x0, y0, cols, rows) of every placement of a template of
    ``mask``'s shape within ``reach_px`` of ``placement`` (its top-left corner)."""
    ht, wt = mask.shape
    return placement[0] - reach_px, placement[1] - reach_px, wt + 2 * reach_px, ht + 2 * reach_px


def _surface(tpl: Template, spectra: WindowSpectra, reach_px: int) -> F32:
    """The template's scores at every placement of :func:`_neighbourhood`."""
    return masked_zncc_within(spectra, tpl, (0, 0, 2 * reach_px + 1, 2 * reach_px + 1))


def _standing_in(s: F32, reach_px: int) -> float | None:
    """The score at the neighbourhood's centre (the placement), in standard
    deviations above the neighbourhood's mean; None when that is flat."""
    sd = float(s.std())
    if not sd > 0:
        return None
    return (float(s[reach_px, reach_px]) - float(s.mean())) / sd


def _standing(tpl: Template, spectra: WindowSpectra, reach_px: int) -> float | None:
    """The template's score at the placement (the centre of the window's placements,
    :func:`_neighbourhood`), in standard deviations above its neighbourhood's mean;
    None when that is flat."""
    return _standing_in(_surface(tpl, spectra, reach_px), reach_px)
