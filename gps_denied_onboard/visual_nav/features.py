"""Dense gradient-orientation fields: what the matcher correlates.

Across years, farmland changes its brightness, colour and even contrast sign
(a field ploughed dark one year is bright stubble the next), but field edges,
roads, shelter belts and shorelines stay where they are. So the matcher does not
compare intensities: it compares the *orientation* of intensity edges.

Each pixel's gradient ``g = gx + i gy`` becomes ``w * (g/|g|)**2``: the doubled
angle makes an edge and its contrast-reversed twin the same value (after Fitch
et al., "Orientation correlation", BMVC 2002), and the weight
``w = |g| / (|g| + mean|g|)`` keeps strong edges from drowning the rest while
leaving flat ground near zero. A light Gaussian smoothing of the field (the
"channel features" idea of CFOG, Ye et al. 2019) widens the correlation peak's
basin so a small heading or scale error still correlates.

The doubled angle has a blind spot: two perpendicular edges (a field corner, a
road crossing) have doubled angles 180 deg apart and cancel under that
smoothing, although corners are the most distinctive things a small frame
sees. The second harmonic ``w * (g/|g|)**4`` (the quadrupled angle) adds them
up instead: 0 and 90 deg both map to 0. The two harmonics are the first two
Fourier terms of the local orientation histogram (CFOG's bins, without the
bins). With both, the margin of a right match of a 400 m frame over its best
distinct runner-up grew from a median of 2.9 to 4.1 score-surface sigmas on
the calibration pairs; certainly-wrong matches' margins grew less (their tail
from 2.83 to 3.17 sigma), so a gate set above them passed 59 % of those frames
instead of 44 % (``bench/_visual_nav_calibration.py``).

The field is returned as float32 channels (real and imaginary part of each
harmonic) because the correlation runs on real DFTs.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]


def to_gray_f32(image: NDArray[np.generic]) -> F32:
    """A grayscale float32 copy of a mono, BGR or BGRA uint8/uint16/float image."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[:, :, :3]
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2GRAY)
    return np.asarray(img, dtype=np.float32)


def saturation_f32(image: NDArray[np.generic]) -> F32 | None:
    """The colour saturation ``(max - min) / max`` of a BGR(A) image, 0-255; None for mono.

    Why a second plane: the search ranks placements on gray edges alone, so
    the saturation's edges are a witness that had no hand in choosing the
    placement (:func:`.witness.colour_support`). A boundary between two crops,
    or between a crop and bare soil, is often a change of colour more than of
    brightness. Saturation, unlike hue or a colour difference, does not depend
    on the white balance's tint, and its edges' doubled-angle orientation does
    not care which side is the greener.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] < 3:
        return None
    if img.dtype == np.uint8:
        hsv = cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_BGR2HSV)
        return np.asarray(hsv[:, :, 1], np.float32)
    f = img[:, :, :3].astype(np.float32)
    hi = f.max(axis=2)
    lo = f.min(axis=2)
    eps = 1e-3 * max(float(hi.max()), 1e-6)
    return np.asarray(255.0 * (hi - lo) / np.maximum(hi, eps), np.float32)


#: no-data fill: pixels this dark in every channel, in a run at least FILL_RUN_PX
#: square, are not ground (a tile cut past the edge of its orthophoto, a camera's
#: black surround or overlay box); FILL_GROW_PX more covers the JPEG ringing
FILL_LEVEL = 6
FILL_RUN_PX = 9
FILL_GROW_PX = 3


def fill_mask(image: NDArray[np.generic]) -> NDArray[np.uint8]:
    """Where an image shows ground (255), not black fill (0).

    Fill is pixels at most ``FILL_LEVEL`` in every channel, in runs at least
    ``FILL_RUN_PX`` square (a real dark field or shadow is never that flat and
    that black), grown by ``FILL_GROW_PX`` over the JPEG ringing at its edge.
    Why it matters: the fill's straight edge against the imagery is the
    strongest edge there, and would be matched like a road or a field edge.
    """
    img = np.asarray(image)
    level = img.max(axis=2) if img.ndim == 3 else img
    dark = (level <= FILL_LEVEL).astype(np.uint8)
    if not dark.any():
        return np.full(level.shape, 255, np.uint8)
    fill = cv2.morphologyEx(dark, cv2.MORPH_OPEN, np.ones((FILL_RUN_PX, FILL_RUN_PX), np.uint8))
    if FILL_GROW_PX > 0:
        grow = 2 * FILL_GROW_PX + 1
        fill = cv2.dilate(fill, np.ones((grow, grow), np.uint8))
    return np.where(fill > 0, 0, 255).astype(np.uint8)


def field_valid(mask: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """Where :func:`orientation_field` leaves a frame's field valid: its mask less the
    rim from which the gradient sees the mask's border."""
    return np.asarray(cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0)


def orientation_field(
    gray: F32,
    mask: NDArray[np.uint8] | None = None,
    *,
    pre_blur: float = 1.0,
    post_blur: float = 1.0,
    harmonics: int = 1,
) -> tuple[tuple[F32, ...], float]:
    """Doubled-angle gradient orientation field of ``gray``, and its higher harmonics.

    Args:
        gray: float32 image.
        mask: valid pixels (non-zero); the field is zero elsewhere and within a
            pixel of the mask's border (where the gradient sees the border itself).
        pre_blur / post_blur: Gaussian sigmas in pixels before the gradient and
            on the field.
        harmonics: 1 gives the doubled angle ``2 theta`` (two channels); 2 adds
            ``4 theta`` (four channels): see the module's docstring.

    Returns:
        (channels, energy): real and imaginary channel of each harmonic, and the
        mean gradient magnitude over valid pixels (the frame's texture; near
        zero for a featureless frame).
    """
    if harmonics not in (1, 2):
        raise ValueError(f"harmonics must be 1 or 2, not {harmonics}")
    g = cv2.GaussianBlur(gray, (0, 0), pre_blur) if pre_blur > 0 else gray
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    mag = cv2.magnitude(gx, gy)
    if mask is not None:
        valid = field_valid(mask)
        mag = np.where(valid, mag, 0.0).astype(np.float32)
    else:
        valid = np.ones(gray.shape, dtype=bool)
    n = int(np.count_nonzero(valid))
    energy = float(mag.sum() / n) if n else 0.0
    if energy <= 0.0:
        return tuple(np.zeros_like(gray, dtype=np.float32) for _ in range(2 * harmonics)), 0.0
    # unit doubled angle (cos 2t, sin 2t) = (gx^2 - gy^2, 2 gx gy) / |g|^2
    # zero where the magnitude was zeroed (outside the mask, where gx and gy still see its
    # border: 1/|g|^2 would be 1e12 there, and the 4t products overflow float32)
    inv = np.where(mag > 0, 1.0 / np.maximum(mag * mag, 1e-12), 0.0).astype(np.float32)
    c2 = ((gx * gx - gy * gy) * inv).astype(np.float32)
    s2 = ((2.0 * gx * gy) * inv).astype(np.float32)
    w = (mag / (mag + energy)).astype(np.float32)  # |g| / (|g| + mean|g|)
    chans = [c2 * w, s2 * w]
    if harmonics == 2:
        chans += [(c2 * c2 - s2 * s2) * w, (2.0 * c2 * s2) * w]  # (cos 4t, sin 4t)
    out = []
    for raw in chans:
        ch = np.asarray(raw, np.float32)
        if mask is not None:
            ch[~valid] = 0.0
        if post_blur > 0:
            ch = np.asarray(cv2.GaussianBlur(ch, (0, 0), post_blur), np.float32)
        out.append(ch)
    return tuple(out), energy
