"""Camera frames and map mosaics rendered from a georeferenced orthophoto.

For tests and benchmarks (and nothing in flight): the estimator is measured
on frames rendered from one year of real orthophotos against a map from
another year. Rendering inverts the estimator's own model: every image pixel's
ray meets flat ground at the true height (:func:`camera.ground_points`),
the ground point goes to latitude/longitude and into the orthophoto's CRS
through pyproj, and the orthophoto is sampled there (bilinear). The orthophoto
and its web-mercator resampling are :mod:`.orthophoto`'s (the map's preparation
reads them too); they are named here as well for the tests and benchmarks.
"""

from __future__ import annotations

from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray
from pyproj import CRS, Transformer

from gps_denied_onboard.visual_nav.camera import CameraModel, ground_points
from gps_denied_onboard.visual_nav.orthophoto import (
    MercatorGrid,
    Orthophoto,
    render_map,
    tile_addresses,
    tile_grid,
)

__all__ = [
    "NAIP_FILES",
    "TEST_CAMERA",
    "MercatorGrid",
    "Orthophoto",
    "cut_tiles",
    "render_frame",
    "render_map",
    "synthetic_orthophoto",
]

F64 = NDArray[np.float64]
U8 = NDArray[np.uint8]

#: The shared NAIP clips (``../shared/data/naip``), by year.
NAIP_FILES: Final = {
    "2009": "m_4709963_se_14_1_20090818.tif",
    "2014": "m_4709963_se_14_1_20140720.tif",
    "2017": "m_4709963_se_14_1_20170827.tif",
    "2020": "m_4709963_se_14_1_20200831.tif",
}
#: The camera of the tests and benchmarks: 640x480, 90 deg across, mild barrel distortion.
TEST_CAMERA: Final = CameraModel(
    640,
    480,
    (320.0, 0.0, 320.0, 0.0, 320.0, 240.0, 0.0, 0.0, 1.0),
    "plumb_bob",
    (-0.05, 0.01, 0.0, 0.0, 0.0),
)


def render_frame(
    ortho: Orthophoto,
    camera: CameraModel,
    r_world_from_camera: F64,
    *,
    latitude: float,
    longitude: float,
    height_m: float,
    step: int = 4,
) -> U8:
    """What a camera at ``(latitude, longitude)``, ``height_m`` above flat ground, sees.

    Pixels whose rays miss the ground (above the horizon) are black. The ray
    geometry is computed on a grid every ``step`` pixels and interpolated
    (the mapping is smooth; the error is far below a pixel).
    """
    from gps_denied_onboard.visual_nav.geo import LocalFrame

    gu = np.arange(0, camera.width + step, step, dtype=np.float64)
    gv = np.arange(0, camera.height + step, step, dtype=np.float64)
    uu, vv = np.meshgrid(gu, gv)
    en, ok = ground_points(
        camera,
        r_world_from_camera,
        height_m,
        np.stack([uu.ravel(), vv.ravel()], 1),
        min_depression_rad=np.radians(3.0),
    )
    e = np.where(ok, en[:, 0], 0.0)
    n = np.where(ok, en[:, 1], 0.0)
    lat, lon = LocalFrame(latitude, longitude).to_latlon_arrays(e, n)
    col, row = ortho.latlon_to_px(lat, lon)
    col = np.where(ok, col, -1e6).reshape(uu.shape).astype(np.float32)
    row = np.where(ok, row, -1e6).reshape(uu.shape).astype(np.float32)
    # bilinear interpolation of the grid: pixel (u, v) is at grid position (u/step, v/step)
    gx, gy = np.meshgrid(
        np.arange(camera.width, dtype=np.float32) / step,
        np.arange(camera.height, dtype=np.float32) / step,
    )
    map_c = cv2.remap(col, gx, gy, cv2.INTER_LINEAR)
    map_r = cv2.remap(row, gx, gy, cv2.INTER_LINEAR)
    out = cv2.remap(ortho.pixels, map_c, map_r, cv2.INTER_LINEAR, borderValue=0)
    return np.asarray(out, np.uint8)


def cut_tiles(
    ortho: Orthophoto, zoom: int, *, jpeg_quality: int = 90, margin_tiles: int = 0
) -> dict[tuple[int, int, int], U8]:
    """Web-mercator tiles at ``zoom`` covering the orthophoto, through a JPEG round trip.

    Tiles only partly covered keep black where the orthophoto has no data. An
    orthophoto across the antimeridian gives the last columns and the first.
    Sampled bilinearly from ``ortho`` as it is (no reduction: the measured
    tiles were made so).
    """
    out: dict[tuple[int, int, int], U8] = {}
    for z, tx, ty in tile_addresses(ortho, zoom, margin_tiles):
        px = render_map(ortho, tile_grid(z, tx, ty))
        ok, buf = cv2.imencode(".jpg", px, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise RuntimeError("JPEG encode failed")
        out[(z, tx, ty)] = np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), np.uint8)
    return out


def synthetic_orthophoto(
    latitude: float,
    longitude: float,
    *,
    size_m: float = 6000.0,
    pixel_m: float = 2.5,
    seed: int = 1,
) -> Orthophoto:
    """A deterministic farmland-like texture (fields, roads, noise) in web mercator.

    ``size_m`` and ``pixel_m`` are ground metres; the image is centred on the point.
    For geometry tests that must not depend on real imagery.
    """
    rng = np.random.default_rng(seed)
    k = 1.0 / np.cos(np.radians(latitude))  # mercator metres per ground metre
    n = int(size_m / pixel_m)
    img = np.zeros((n, n), np.float32)
    for _ in range(int(n * n / 2500)):  # fields
        x, y = rng.integers(0, n, 2)
        w, h = rng.integers(n // 60, n // 12, 2)
        img[y : y + h, x : x + w] = rng.uniform(40, 220)
    for _ in range(n // 40):  # roads and tracks
        p0 = tuple(int(v) for v in rng.integers(0, n, 2))
        p1 = tuple(int(v) for v in rng.integers(0, n, 2))
        cv2.line(img, p0, p1, float(rng.uniform(0, 255)), int(rng.integers(1, 4)))
    img += cv2.GaussianBlur(rng.normal(0, 25, (n, n)).astype(np.float32), (0, 0), 2.0)
    img = np.asarray(cv2.GaussianBlur(img, (0, 0), 0.8), np.float32)
    pixels = np.clip(img, 0, 255).astype(np.uint8)
    to_merc = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_epsg(3857), always_xy=True)
    cx, cy = to_merc.transform(longitude, latitude)
    size = pixel_m * k
    return Orthophoto(
        np.ascontiguousarray(cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)),
        CRS.from_epsg(3857),
        cx - n / 2 * size,
        cy + n / 2 * size,
        size,
    )
