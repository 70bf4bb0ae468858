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

The field is returned as two float32 channels (real, imaginary) because the
correlation runs on real DFTs.
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


def orientation_field(
    gray: F32,
    mask: NDArray[np.uint8] | None = None,
    *,
    pre_blur: float = 1.0,
    post_blur: float = 1.0,
) -> tuple[F32, F32, float]:
    """Doubled-angle gradient orientation field of ``gray``.

    Args:
        gray: float32 image.
        mask: valid pixels (non-zero); the field is zero elsewhere and within a
            pixel of the mask's border (where the gradient sees the border itself).
        pre_blur / post_blur: Gaussian sigmas in pixels before the gradient and
            on the field.

    Returns:
        (re, im, energy): the two channels and the mean gradient magnitude over
        valid pixels (the frame's texture; near zero for a featureless frame).
    """
    g = cv2.GaussianBlur(gray, (0, 0), pre_blur) if pre_blur > 0 else gray
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    mag = cv2.magnitude(gx, gy)
    if mask is not None:
        inner = cv2.erode(mask, np.ones((5, 5), np.uint8))
        valid = inner > 0
        mag = np.where(valid, mag, 0.0).astype(np.float32)
    else:
        valid = np.ones(gray.shape, dtype=bool)
    n = int(np.count_nonzero(valid))
    energy = float(mag.sum() / n) if n else 0.0
    if energy <= 0.0:
        zero = np.zeros_like(gray, dtype=np.float32)
        return zero, zero.copy(), 0.0
    # w * (g/|g|)^2 = (gx^2 - gy^2, 2 gx gy) * w / |g|^2, with w = |g| / (|g| + mean)
    scale = 1.0 / (np.maximum(mag, 1e-6) * (mag + energy))
    re = ((gx * gx - gy * gy) * scale).astype(np.float32)
    im = ((2.0 * gx * gy) * scale).astype(np.float32)
    if mask is not None:
        re[~valid] = 0.0
        im[~valid] = 0.0
    if post_blur > 0:
        re = cv2.GaussianBlur(re, (0, 0), post_blur)
        im = cv2.GaussianBlur(im, (0, 0), post_blur)
    return re, im, energy
