"""A camera frame's pixels before anything is matched: can they be a frame, and how bright.

The node decodes ``mono8``/``bgr8``-like encodings to ``uint8`` and ``mono16``
/ ``16UC1`` (thermal and machine-vision cameras, 16-bit PNG) to ``uint16``;
the estimator's own callers may hand in float frames. Everything downstream
with an absolute threshold (the exposure check here, the matcher's
``min_texture``) is set on the 0-255 scale, so the gray plane is brought to
that scale first (:func:`gray_8bit`), and a frame that cannot be one is
refused with a reason before any filter sees it (:func:`pixels_problem`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.features import to_gray_f32

F32 = NDArray[np.float32]

#: the pixel types a frame may come in: uint8, uint16 (any bit depth up to 16)
#: and float on 0-1 (OpenCV's convention for float images)
PIXEL_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32), np.dtype(np.float64))


def pixels_problem(img: NDArray[np.generic]) -> str | None:
    """Why an array cannot be a camera frame, or None.

    Two-dimensional, or with 1, 3 or 4 channels (mono, BGR, BGRA), of a
    :data:`PIXEL_DTYPES` type, not empty, and, when float, finite: a NaN
    spreads through every filter into the correlation, whose best placement
    would then be wherever ``argmax`` meets the first NaN.
    """
    if img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        return f"image of shape {img.shape}"
    if img.ndim == 3 and img.shape[2] not in (1, 3, 4):
        return f"image with {img.shape[2]} channels"
    if img.dtype not in PIXEL_DTYPES:
        return f"pixels of type {img.dtype}"
    if img.dtype.kind == "f" and not np.all(np.isfinite(img)):
        return "pixels that are not finite numbers"
    return None


def eight_bit_scale(img: NDArray[np.generic]) -> float:
    """The factor that brings ``img``'s levels to 0-255.

    ``uint16`` carries 10-, 12-, 14- or 16-bit sensor data, and no message
    says which: the depth is taken as the fewest bits (at least 8) that hold
    the frame's brightest pixel, so a 12-bit frame that reaches 4095 is
    saturated and one at 1500 is mid-grey, not "saturated" against 255
    (which refused every ``mono16`` frame). Float is taken as 0-1.
    """
    if img.dtype == np.uint16:
        depth = max(8, int(img.max()).bit_length())
        return 255.0 / float((1 << depth) - 1)
    if img.dtype.kind == "f":
        return 255.0
    return 1.0


def gray_8bit(img: NDArray[np.generic]) -> F32:
    """The frame's gray plane on the 0-255 scale (:func:`eight_bit_scale`)."""
    gray = to_gray_f32(img)
    scale = eight_bit_scale(img)
    # (a new array: to_gray_f32 may hand back the caller's own float frame)
    return gray if scale == 1.0 else np.asarray(gray * np.float32(scale), np.float32)


#: the level from which a pixel is taken as clipped (0-255), and the share of a frame
#: that may be clipped before it is refused as overexposed (see :func:`exposure_problem`)
CLIPPED_LEVEL = 250.0
MAX_CLIPPED_SHARE = 0.5


def exposure_problem(gray: F32) -> str | None:
    """Why a frame (its gray plane on 0-255) cannot be matched on its pixels alone, or None.

    Black, saturated (mean 247 and up), flat, or overexposed: more than
    :data:`MAX_CLIPPED_SHARE` of its pixels at :data:`CLIPPED_LEVEL` and up. Why
    the last: what is left of such a frame is the dark half of its ground, whose
    pattern is the scene's own (not a cloud's blob), and it matched wrongly where
    a frame half under cloud did not. Cold 1 km frames on the calibration pair
    (2014 map, 2009 frames, seeds 85000 and 86000, every level times 2.0, 2.2
    and 2.5; 480 frames): under 40 % clipped, 125 fixes and none over 30 m off;
    40-50 %, 28 and one 33 m off (8.5 m sigma); 50 % and more, 14 and three 39,
    50 and 116 m off. A white cloud clipped over half the frame is refused too.
    """
    if gray.size == 0:
        return "empty"
    mean = float(gray.mean())
    std = float(gray.std())
    if mean < 8.0:
        return f"black (mean {mean:.1f})"
    if mean > 247.0:
        return f"saturated (mean {mean:.1f})"
    if std < 3.0:
        return f"flat (std {std:.2f})"
    clipped = float(np.count_nonzero(gray >= CLIPPED_LEVEL)) / gray.size
    if clipped > MAX_CLIPPED_SHARE:
        return f"overexposed ({100.0 * clipped:.0f} % of pixels clipped)"
    return None


def checked_gray(img: NDArray[np.generic], width: int, height: int) -> F32:
    """The frame's gray plane on the 0-255 scale, once its pixels pass every check.

    Raises:
        FrameRejected: ``corrupt_image`` (:func:`pixels_problem`, or not the
            ``width`` x ``height`` its CameraInfo says), ``bad_exposure``
            (:func:`exposure_problem`).
    """
    problem = pixels_problem(img)
    if problem is not None:
        raise FrameRejected("corrupt_image", problem)
    gray = gray_8bit(img)
    if gray.shape != (height, width):
        raise FrameRejected(
            "corrupt_image",
            f"image {gray.shape[1]}x{gray.shape[0]} does not match CameraInfo {width}x{height}",
        )
    problem = exposure_problem(gray)
    if problem is not None:
        raise FrameRejected("bad_exposure", problem)
    return gray
