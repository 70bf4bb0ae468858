"""The map frame: web-mercator pixels of one tile zoom, and local metres around a point.

Tiles are web-mercator (EPSG:3857) z/x/y. Mercator is conformal: around any
point it is a uniform scaling of true ground distances by ``1/cos(lat)``, with
north up. So a north-up ground image at the map's resolution is the same
thing as a patch of mercator pixels, to within the scale's variation across
the patch (under 0.05 % over 2 km at mid latitudes).

Every CRS transform goes through pyproj; this module only adds the tile
pixel arithmetic (``256 * 2**zoom`` pixels around the world).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
from numpy.typing import NDArray
from pyproj import CRS, Geod, Transformer

#: Half the width of the web-mercator world in metres (EPSG:3857).
MERC_HALF_M: Final = 20037508.342789244
TILE_PX: Final = 256
#: The web-mercator map's north and south edge (degrees): no tile lies beyond it.
MAX_LATITUDE: Final = 85.0511287798


def on_the_map(latitude: float, longitude: float) -> bool:
    """Whether a position can lie on a web-mercator tile map at all.

    Finite, within :data:`MAX_LATITUDE` and +-180 deg. Anything else that
    arrives as a position (a GNSS sample, a seed, a prior dead-reckoned over
    a bad stamp) is a bad sample, not a place: projected, it gives infinite
    or NaN pixels, and a mosaic sized from those.
    """
    return (
        math.isfinite(latitude)
        and math.isfinite(longitude)
        and abs(latitude) <= MAX_LATITUDE
        and abs(longitude) <= 180.0
    )


@lru_cache(maxsize=1)
def _to_merc() -> Transformer:
    return Transformer.from_crs(CRS.from_epsg(4326), CRS.from_epsg(3857), always_xy=True)


@lru_cache(maxsize=1)
def _from_merc() -> Transformer:
    return Transformer.from_crs(CRS.from_epsg(3857), CRS.from_epsg(4326), always_xy=True)


def merc_px_size(zoom: int) -> float:
    """Mercator metres per pixel at ``zoom``."""
    return 2.0 * MERC_HALF_M / (TILE_PX * (1 << zoom))


def ground_resolution_m(latitude: float, zoom: int) -> float:
    """True ground metres per map pixel at ``latitude``."""
    return merc_px_size(zoom) * math.cos(math.radians(latitude))


def zoom_for_resolution(latitude: float, resolution_m: float, max_zoom: int = 22) -> int:
    """The coarsest zoom whose pixels are no larger than ``resolution_m`` on the ground."""
    for z in range(0, max_zoom + 1):
        if ground_resolution_m(latitude, z) <= resolution_m:
            return z
    return max_zoom


def latlon_to_world_px(latitude: float, longitude: float, zoom: int) -> tuple[float, float]:
    """Global pixel coordinates (column from the antimeridian, row from the north) at ``zoom``.

    The column is in ``[0, world width)``: longitude 180 is the antimeridian's
    west edge, column 0, not a column past the last tile.
    """
    x, y = _to_merc().transform(longitude, latitude)
    size = merc_px_size(zoom)
    return ((x + MERC_HALF_M) / size) % (TILE_PX * (1 << zoom)), (MERC_HALF_M - y) / size


def tile_under(latitude: float, longitude: float, zoom: int) -> tuple[int, int]:
    """The tile ``(x, y)`` at ``zoom`` that holds the point."""
    px, py = latlon_to_world_px(latitude, longitude, zoom)
    return int(px // TILE_PX), int(py // TILE_PX)


def wrap_tile_x(x: int, zoom: int) -> int:
    """The tile column ``x`` names on the map: columns go round the world.

    A block of tiles around a point next to the antimeridian runs past the
    last column (or before the first); the tiles there are the first (last)
    ones, which the tile cache stores under their own column.
    """
    return x % (1 << zoom)


def world_px_to_latlon(px: float, py: float, zoom: int) -> tuple[float, float]:
    """Inverse of :func:`latlon_to_world_px`: (latitude, longitude).

    ``px`` may lie past either edge of the world (a match in a mosaic that
    runs across the antimeridian); the longitude comes back within +-180.
    """
    size = merc_px_size(zoom)
    lon, lat = _from_merc().transform(px * size - MERC_HALF_M, MERC_HALF_M - py * size)
    return float(lat), float(lon)


@lru_cache(maxsize=1)
def _geod() -> Geod:
    return Geod(ellps="WGS84")


@dataclass(frozen=True)
class LocalFrame:
    """A local tangent plane at ``(latitude, longitude)``: ENU metres <-> lat/lon.

    East/north are the geodesic from the centre (distance and azimuth, pyproj's
    ``Geod`` on WGS84): the azimuthal equidistant projection centred on the point,
    exact for distances and bearings from the centre, without building a new
    CRS transformer for every centre (that cost 20 ms a call).
    """

    latitude: float
    longitude: float

    def to_en(self, latitude: float, longitude: float) -> tuple[float, float]:
        az, _, dist = _geod().inv(self.longitude, self.latitude, longitude, latitude)
        a = math.radians(az)
        return float(dist * math.sin(a)), float(dist * math.cos(a))

    def to_latlon(self, east: float, north: float) -> tuple[float, float]:
        dist = math.hypot(east, north)
        if dist == 0.0:
            return self.latitude, self.longitude
        az = math.degrees(math.atan2(east, north))
        lon, lat, _ = _geod().fwd(self.longitude, self.latitude, az, dist)
        return float(lat), float(lon)

    def to_latlon_arrays(
        self, east: NDArray[np.float64], north: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """:meth:`to_latlon` for arrays (rendering, tests)."""
        e = np.asarray(east, np.float64)
        n = np.asarray(north, np.float64)
        dist = np.hypot(e, n)
        az = np.degrees(np.arctan2(e, n))
        lon, lat, _ = _geod().fwd(
            np.full(dist.shape, self.longitude), np.full(dist.shape, self.latitude), az, dist
        )
        return np.asarray(lat, np.float64), np.asarray(lon, np.float64)
