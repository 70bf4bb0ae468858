"""What the sky and the camera do to a frame that a rendered one never shows.

The benchmark ``camera_weather`` lays these over rendered frames (the helper
holds the image work, the benchmark the protocol):

- ``clouds``: white cloud (level 245) over a share of the frame, with soft edges
  (a ramp over about a tenth of a cloud's size): low stratus or fog patches under
  the aircraft;
- ``shadows``: the ground under a share of the frame darkened to 45 % (a cumulus
  day's cloud shadows), with a soft penumbra;
- ``haze``: contrast cut to 35 % and lifted towards white (a hazy day seen
  through 500 m of air);
- ``blur``: motion blur along a line of so many pixels (vibration, a long
  exposure in low light);
- ``noise``: Gaussian sensor noise of so many grey levels (high gain);
- ``jpeg``: the frame through a JPEG of that quality (a starved compressed
  stream);
- ``overexposed``: every level times that gain, clipped at 255 (an exposure set
  for darker ground, or an auto-exposure that has not caught up): pale ground
  goes bright and colourless, as a cloud is;
- ``mono_<kind>``: ``<kind>``, then the frame's gray plane alone (a mono camera,
  whose cloud and pale ground only brightness tells apart).

Cloud and shadow outlines are a smoothed random field cut at the share wanted.
Their size is set on the ground (``PATCH_GROUND_M``: cumulus shadows and fog
patches are hundreds of metres across), so a 400 m frame sees fewer, larger
ones than a 1 km frame.

Not weather but what the cloud mask must not take for it: :func:`bright_ground`
lays concrete roads and white roofs on a year's clip, at the same places in
every year, so map and frames both have them (the opposite of a cloud).
"""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.simulate import Orthophoto

#: bright ground laid by :func:`bright_ground`: its seed (the same places every year),
#: how many features a square kilometre, their gray levels, a road's width and length
#: and a roof's side (m): a concrete highway is 25-50 m across, a warehouse 30-80 m
BRIGHT_SEED = 4242
BRIGHT_PER_KM2 = 6.0
BRIGHT_LEVELS = (225.0, 245.0)
ROAD_WIDTH_M = (20.0, 50.0)
ROAD_LENGTH_M = (200.0, 600.0)
ROOF_SIDE_M = (30.0, 80.0)

#: the smoothing length of the cloud and shadow field on the ground (m)
PATCH_GROUND_M = 60.0
CLOUD_LEVEL = 245.0
SHADOW_GAIN = 0.45


def patches(
    shape: tuple[int, ...], share: float, pixel_m: float, rng: np.random.Generator, edge: float
) -> NDArray[np.float32]:
    """A soft mask (0..1, one channel kept for broadcasting) over about ``share`` of a
    frame of ``shape`` whose pixels see ``pixel_m`` of ground; ``edge`` sets how
    sharp the outlines are (the mask's slope per standard deviation of the field)."""
    h, w = shape[:2]
    sigma_px = PATCH_GROUND_M / pixel_m
    field = cv2.GaussianBlur(rng.normal(0.0, 1.0, (h, w)).astype(np.float32), (0, 0), sigma_px)
    field = (field - field.mean()) / max(float(field.std()), 1e-9)
    cut = float(np.quantile(field, 1.0 - share))
    mask = np.clip((field - cut) * edge + 0.5, 0.0, 1.0)
    return np.asarray(mask, np.float32)[..., None]


def weathered(
    image: NDArray[np.uint8], kind: str, amount: float, pixel_m: float, rng: np.random.Generator
) -> NDArray[np.uint8]:
    """``image`` (BGR uint8) under ``kind`` at ``amount`` (see the module's docstring).

    Raises:
        ValueError: an unknown ``kind``.
    """
    if kind.startswith("mono_"):
        seen = weathered(image, kind.removeprefix("mono_"), amount, pixel_m, rng)
        return np.asarray(cv2.cvtColor(seen, cv2.COLOR_BGR2GRAY), np.uint8)
    x: NDArray[np.float64] = image.astype(np.float64)
    if kind == "clouds":
        m = patches(x.shape, amount, pixel_m, rng, edge=6.0)
        x = x * (1.0 - m) + CLOUD_LEVEL * m
    elif kind == "shadows":
        m = patches(x.shape, amount, pixel_m, rng, edge=1.0)
        x = x * (1.0 - (1.0 - SHADOW_GAIN) * m)
    elif kind == "haze":
        x = x * amount + 230.0 * (1.0 - amount)
    elif kind == "blur":
        n = max(int(amount), 1)
        line = np.zeros((n, n), np.float32)
        line[n // 2, :] = 1.0
        turn = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), rng.uniform(0.0, 180.0), 1.0)
        kernel = cv2.warpAffine(line, turn, (n, n))
        x = np.asarray(cv2.filter2D(x, -1, kernel / kernel.sum()), np.float64)
    elif kind == "overexposed":
        x = x * amount
    elif kind == "noise":
        x = x + rng.normal(0.0, amount, x.shape)
    elif kind == "jpeg":
        level = np.clip(x, 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", level, [cv2.IMWRITE_JPEG_QUALITY, int(amount)])
        if not ok:
            raise ValueError("JPEG encode failed")
        back = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if back is None:
            raise ValueError("JPEG decode failed")
        x = back.astype(np.float64)
    else:
        raise ValueError(f"unknown weather {kind!r}")
    return np.clip(x, 0, 255).astype(np.uint8)


def ground_pixel_m(height_m: float, width_px: int, fov_deg: float = 90.0) -> float:
    """The ground a nadir pixel sees from ``height_m`` with a lens ``fov_deg`` across
    ``width_px`` (m)."""
    return 2.0 * height_m * math.tan(math.radians(fov_deg / 2.0)) / width_px


def bright_ground(clip: Orthophoto, per_km2: float = BRIGHT_PER_KM2) -> Orthophoto:
    """``clip`` with concrete roads and white roofs laid on it: half of them roads
    (``ROAD_WIDTH_M`` by ``ROAD_LENGTH_M``), half square roofs (``ROOF_SIDE_M``), at
    random headings, of a gray level in ``BRIGHT_LEVELS`` and nearly colourless. The
    places are drawn in the clip's pixels from ``BRIGHT_SEED``, and the years' clips
    cover the same ground on the same grid, so every year has them where the others do.
    """
    pixels = clip.pixels.copy()
    h, w = pixels.shape[:2]
    px_m = clip.pixel_size
    rng = np.random.default_rng(BRIGHT_SEED)
    for _ in range(round(per_km2 * h * w * px_m * px_m / 1e6)):
        cx, cy = rng.uniform(0.0, w), rng.uniform(0.0, h)
        turn = rng.uniform(0.0, math.pi)
        if rng.uniform() < 0.5:
            across, along = rng.uniform(*ROAD_WIDTH_M), rng.uniform(*ROAD_LENGTH_M)
        else:
            across = along = rng.uniform(*ROOF_SIDE_M)
        c, s = math.cos(turn), math.sin(turn)
        corners = [
            (
                cx + (a * along * c - b * across * s) / (2.0 * px_m),
                cy + (a * along * s + b * across * c) / (2.0 * px_m),
            )
            for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))
        ]
        level = rng.uniform(*BRIGHT_LEVELS)
        colour = (level - 8.0, level, level)[: pixels.shape[2]] if pixels.ndim == 3 else level
        cv2.fillPoly(pixels, [np.round(np.array(corners)).astype(np.int32)], colour)
    return replace(clip, pixels=pixels)
