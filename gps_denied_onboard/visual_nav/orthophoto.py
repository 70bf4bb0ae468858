"""A georeferenced orthophoto and the web-mercator map pixels resampled from it.

Read by the map's preparation (:mod:`gps_denied_onboard.tile_cache.orthophoto_import`,
an operator's GeoTIFF cut into the tile cache's tiles) and by the tests' and
benchmarks' rendering (:mod:`.simulate`), so the tiles a flight uses are made
the way the measured ones were. pyproj does every coordinate transform; OpenCV
resamples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from pyproj import CRS, Geod, Transformer

from gps_denied_onboard.replay.geotiff import GeoTiffError, read_geotiff
from gps_denied_onboard.visual_nav.geo import (
    MERC_HALF_M,
    TILE_PX,
    ground_resolution_m,
    latlon_to_world_px,
    merc_px_size,
    wrap_tile_x,
)

F64 = NDArray[np.float64]
U8 = NDArray[np.uint8]

#: a reduction is worth its blur once the map's pixel spans this many source pixels
_REDUCE_FROM = 2.0
#: the latitude where web mercator's square world ends
MERC_MAX_LAT = math.degrees(math.atan(math.sinh(math.pi)))


@dataclass(frozen=True)
class Orthophoto:
    """A north-up GeoTIFF in a projected CRS (pixel-is-area, one tie point, square pixels)."""

    pixels: U8  # rows x cols x bands (BGR order for 3+ bands)
    crs: CRS
    origin_x: float  # CRS coordinates of the top-left corner of pixel (0, 0)
    origin_y: float
    pixel_size: float

    @classmethod
    def read(cls, path: Path, *, max_bytes: int | None = None) -> Orthophoto:
        """A GeoTIFF's first image: its first three bands as BGR (RGB, NIR or alpha
        after them dropped), or its first band as grey; other depths than 8 bits
        brought to 8 (:func:`eight_bit`).

        Raises:
            GeoTiffError: not a north-up projected GeoTIFF, its pixels not square
                (``gdalwarp -tr`` makes them so), or its decoded pixels over
                ``max_bytes`` (:func:`~gps_denied_onboard.replay.geotiff.read_geotiff`).
        """
        data, geo = read_geotiff(path, max_bytes=max_bytes)
        if not math.isclose(geo.scale_x, geo.scale_y, rel_tol=1e-6):
            raise GeoTiffError(f"{path}: pixels of {geo.scale_x} x {geo.scale_y} are not square")
        data = eight_bit(data)
        if data.shape[2] >= 3:
            data = np.ascontiguousarray(data[:, :, 2::-1])  # RGB(N) -> BGR
        elif data.shape[2] == 2:  # grey and alpha
            data = np.ascontiguousarray(data[:, :, :1])
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

    def ground_pixel_m(self) -> float:
        """Ground metres per pixel at the image's centre (a projected CRS's unit is
        not always a ground metre: web mercator's is ``1/cos(latitude)`` of one)."""
        h, w = self.pixels.shape[:2]
        lat0, lon0 = self.px_to_latlon(w / 2.0, h / 2.0)
        lat1, lon1 = self.px_to_latlon(w / 2.0 + 1.0, h / 2.0)
        return float(Geod(ellps="WGS84").inv(lon0, lat0, lon1, lat1)[2])

    def reduced(self, factor: int) -> Orthophoto:
        """Each ``factor`` x ``factor`` block of pixels averaged into one (``INTER_AREA``).

        The rows and columns past the last whole block are dropped, so the
        corners stay where they were and the pixel size is exactly ``factor``
        times the old one.
        """
        if factor < 1:
            raise ValueError(f"reduction factor {factor} is not a positive integer")
        if factor == 1:
            return self
        h, w = self.pixels.shape[:2]
        hh, ww = h // factor, w // factor
        if hh == 0 or ww == 0:
            raise ValueError(f"a {w}x{h} image has no {factor}x{factor} block")
        px = cv2.resize(
            np.ascontiguousarray(self.pixels[: hh * factor, : ww * factor]),
            (ww, hh),
            interpolation=cv2.INTER_AREA,
        )
        return Orthophoto(
            np.asarray(px, np.uint8),
            self.crs,
            self.origin_x,
            self.origin_y,
            self.pixel_size * factor,
        )

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


def eight_bit(data: NDArray[np.generic]) -> U8:
    """Pixels of any depth on 0-255, 0 kept for no data.

    8-bit images are as they are. Others (16-bit or float: satellite products,
    reflectances) carry no scale a tile could keep, and the matcher reads edges'
    orientation, not levels: the values between the 0.1st and 99.9th percentile of
    the image's data (over every band; 0 and non-finite values are no data) are
    stretched linearly onto 1-255, and no data stays 0. Cast as they were, 16-bit
    levels wrapped around 256 into noise.
    """
    if data.dtype == np.uint8:
        return np.asarray(data, np.uint8)
    rows = data.shape[0]
    stride = max(1, int(math.sqrt(data.size / 1_000_000)))  # about a million samples
    sample = np.asarray(data[::stride, ::stride], np.float64)
    sample = sample[np.isfinite(sample) & (sample != 0)]
    out = np.zeros(data.shape, np.uint8)
    if sample.size == 0:
        return out
    lo, hi = (float(v) for v in np.percentile(sample, (0.1, 99.9)))
    gain = 254.0 / (hi - lo) if hi > lo else 1.0
    for r in range(0, rows, 1024):  # in blocks: a float copy of the whole would be 4x it
        block = np.asarray(data[r : r + 1024], np.float32)
        valid = np.isfinite(block) & (block != 0)
        level = np.rint(np.clip(1.0 + (np.nan_to_num(block) - lo) * gain, 1.0, 255.0))
        out[r : r + 1024] = np.where(valid, level, 0.0).astype(np.uint8)
    return out


def tile_span(ortho: Orthophoto, zoom: int, margin_tiles: int = 0) -> tuple[range, range]:
    """The columns (unwrapped: past the antimeridian they run on) and rows of the
    web-mercator tiles covering the orthophoto at ``zoom``.

    Raises:
        ValueError: the image's corners have no finite latitude and longitude, or lie
            beyond web mercator's latitudes (+-85.05 deg).
    """
    lat0, lon0, lat1, lon1 = ortho.bounds_latlon()
    if not all(math.isfinite(v) for v in (lat0, lon0, lat1, lon1)):
        raise ValueError("the image's corners have no latitude and longitude")
    if max(abs(lat0), abs(lat1)) > MERC_MAX_LAT:
        raise ValueError(
            f"the image reaches latitude {max(abs(lat0), abs(lat1)):.2f}, beyond web "
            f"mercator's {MERC_MAX_LAT:.2f}"
        )
    x0, y0 = latlon_to_world_px(lat1, lon0, zoom)
    x1, y1 = latlon_to_world_px(lat0, lon1, zoom)
    if x1 < x0:  # the east edge is past the antimeridian: its columns run on
        x1 += TILE_PX * (1 << zoom)
    return (
        range(int(x0 // TILE_PX) - margin_tiles, int(x1 // TILE_PX) + 1 + margin_tiles),
        range(int(y0 // TILE_PX) - margin_tiles, int(y1 // TILE_PX) + 1 + margin_tiles),
    )


def tile_addresses(
    ortho: Orthophoto, zoom: int, margin_tiles: int = 0
) -> list[tuple[int, int, int]]:
    """The web-mercator tiles ``(zoom, x, y)`` covering the orthophoto, row by row
    (:func:`tile_span`).

    An orthophoto across the antimeridian gives the last columns and the first.
    """
    columns, rows = tile_span(ortho, zoom, margin_tiles)
    return [(zoom, wrap_tile_x(column, zoom), ty) for ty in rows for column in columns]


def tile_grid(zoom: int, x: int, y: int) -> MercatorGrid:
    """The pixel grid of tile ``(zoom, x, y)``."""
    return MercatorGrid(zoom, x * TILE_PX, y * TILE_PX, TILE_PX, TILE_PX)


def for_zoom(ortho: Orthophoto, zoom: int) -> Orthophoto:
    """``ortho`` reduced for resampling at ``zoom``: where a map pixel spans two or more
    of its pixels, blocks of them are averaged first (:meth:`Orthophoto.reduced`).

    Bilinear sampling reads four source pixels a map pixel: from a 1 m orthophoto at
    z15 (3.3 m at 47 N) it would take one pixel in ten and alias field texture into
    noise the matcher then correlates. After the reduction a map pixel spans one to
    two source pixels.
    """
    lat0, _, lat1, _ = ortho.bounds_latlon()
    ratio = ground_resolution_m((lat0 + lat1) / 2.0, zoom) / ortho.ground_pixel_m()
    return ortho.reduced(math.floor(ratio)) if ratio >= _REDUCE_FROM else ortho
