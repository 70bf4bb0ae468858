"""Camera frames and map mosaics rendered from a georeferenced orthophoto.

For tests and benchmarks (and nothing in flight): the estimator is measured
on frames rendered from one year of real orthophotos against a map from
another year. Rendering inverts the estimator's own model: every image pixel's
ray meets flat ground at the true height (:func:`camera.ground_points`),
the ground point goes to latitude/longitude and into the orthophoto's CRS
through pyproj, and the orthophoto is sampled there (bilinear).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray
from pyproj import CRS, Transformer

from gps_denied_onboard.replay.geotiff import read_geotiff
from gps_denied_onboard.visual_nav.camera import CameraModel, ground_points
from gps_denied_onboard.visual_nav.geo import MERC_HALF_M, merc_px_size

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


@dataclass(frozen=True)
class Orthophoto:
    """A north-up GeoTIFF in a projected CRS (pixel-is-area, one tie point, square pixels)."""

    pixels: U8  # rows x cols x bands (BGR order for 3+ bands)
    crs: CRS
    origin_x: float  # CRS coordinates of the top-left corner of pixel (0, 0)
    origin_y: float
    pixel_size: float

    @classmethod
    def read(cls, path: Path) -> Orthophoto:
        data, geo = read_geotiff(path)
        if data.shape[2] >= 3:
            data = np.ascontiguousarray(data[:, :, 2::-1])  # RGB(N) -> BGR
        return cls(data, CRS.from_epsg(geo.epsg), geo.origin_x, geo.origin_y, geo.scale_x)

    @cached_property
    def _from_wgs84(self) -> Transformer:
        return Transformer.from_crs(CRS.from_epsg(4326), self.crs, always_xy=True)

    @cached_property
    def _to_wgs84(self) -> Transformer:
        return Transformer.from_crs(self.crs, CRS.from_epsg(4326), always_xy=True)

    def latlon_to_px(self, lat: F64, lon: F64) -> tuple[F64, F64]:
        """Pixel coordinates (col, row; centres at integers) of WGS84 points."""
        x, y = self._from_wgs84.transform(lon, lat)
        return (np.asarray(x) - self.origin_x) / self.pixel_size - 0.5, (
            self.origin_y - np.asarray(y)
        ) / self.pixel_size - 0.5

    def px_to_latlon(self, col: float, row: float) -> tuple[float, float]:
        """WGS84 latitude and longitude of a pixel position (centres at integers): the
        inverse of :meth:`latlon_to_px`."""
        x = self.origin_x + (col + 0.5) * self.pixel_size
        y = self.origin_y - (row + 0.5) * self.pixel_size
        lon, lat = self._to_wgs84.transform(x, y)
        return float(lat), float(lon)

    def bounds_latlon(self) -> tuple[float, float, float, float]:
        """(min_lat, min_lon, max_lat, max_lon) of the image.

        An image across the antimeridian has its east edge's longitudes past
        180 (min_lon 179.9, max_lon 180.1), so the box still spans the image,
        not the rest of the world.
        """
        h, w = self.pixels.shape[:2]
        xs = np.array([0, w, 0, w]) * self.pixel_size + self.origin_x
        ys = self.origin_y - np.array([0, 0, h, h]) * self.pixel_size
        lon, lat = self._to_wgs84.transform(xs, ys)
        lon = np.asarray(lon, np.float64)
        if float(lon.max() - lon.min()) > 180.0:
            lon = np.where(lon < 0.0, lon + 360.0, lon)
        return float(min(lat)), float(lon.min()), float(max(lat)), float(lon.max())

    def sample(self, lat: F64, lon: F64) -> U8:
        """Bilinear samples at WGS84 points (any shape); 0 outside the image."""
        shape = np.shape(lat)
        col, row = self.latlon_to_px(np.ravel(lat), np.ravel(lon))
        out = cv2.remap(
            self.pixels,
            col.astype(np.float32).reshape(shape),
            row.astype(np.float32).reshape(shape),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        return np.asarray(out, np.uint8)


@dataclass(frozen=True)
class MercatorGrid:
    """Map pixels at ``zoom``: world pixel coordinates ``(x0, y0)`` at the top-left corner."""

    zoom: int
    x0: float
    y0: float
    cols: int
    rows: int

    def latlon(self) -> tuple[F64, F64]:
        """Latitude and longitude of every pixel centre (rows x cols)."""
        size = merc_px_size(self.zoom)
        xs = (self.x0 + np.arange(self.cols) + 0.5) * size - MERC_HALF_M
        ys = MERC_HALF_M - (self.y0 + np.arange(self.rows) + 0.5) * size
        mx, my = np.meshgrid(xs, ys)
        to_ll = Transformer.from_crs(CRS.from_epsg(3857), CRS.from_epsg(4326), always_xy=True)
        lon, lat = to_ll.transform(mx, my)
        return np.asarray(lat), np.asarray(lon)


def render_map(ortho: Orthophoto, grid: MercatorGrid) -> U8:
    """The orthophoto resampled onto a web-mercator pixel grid (what tiles hold)."""
    lat, lon = grid.latlon()
    return ortho.sample(lat, lon)


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
    """
    from gps_denied_onboard.visual_nav.geo import TILE_PX, latlon_to_world_px, wrap_tile_x

    lat0, lon0, lat1, lon1 = ortho.bounds_latlon()
    x0, y0 = latlon_to_world_px(lat1, lon0, zoom)
    x1, y1 = latlon_to_world_px(lat0, lon1, zoom)
    if x1 < x0:  # the east edge is past the antimeridian: its columns run on
        x1 += TILE_PX * (1 << zoom)
    out: dict[tuple[int, int, int], U8] = {}
    for ty in range(int(y0 // TILE_PX) - margin_tiles, int(y1 // TILE_PX) + 1 + margin_tiles):
        for column in range(
            int(x0 // TILE_PX) - margin_tiles, int(x1 // TILE_PX) + 1 + margin_tiles
        ):
            tx = wrap_tile_x(column, zoom)
            grid = MercatorGrid(zoom, tx * TILE_PX, ty * TILE_PX, TILE_PX, TILE_PX)
            px = render_map(ortho, grid)
            ok, buf = cv2.imencode(".jpg", px, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            if not ok:
                raise RuntimeError("JPEG encode failed")
            out[(zoom, tx, ty)] = np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), np.uint8)
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
