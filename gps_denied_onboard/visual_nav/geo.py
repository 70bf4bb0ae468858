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

from pyproj import CRS, Transformer

#: Half the width of the web-mercator world in metres (EPSG:3857).
MERC_HALF_M: Final = 20037508.342789244
TILE_PX: Final = 256


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
    """Global pixel coordinates (column from the antimeridian, row from the north) at ``zoom``."""
    x, y = _to_merc().transform(longitude, latitude)
    size = merc_px_size(zoom)
    return (x + MERC_HALF_M) / size, (MERC_HALF_M - y) / size


def world_px_to_latlon(px: float, py: float, zoom: int) -> tuple[float, float]:
    """Inverse of :func:`latlon_to_world_px`: (latitude, longitude)."""
    size = merc_px_size(zoom)
    lon, lat = _from_merc().transform(px * size - MERC_HALF_M, MERC_HALF_M - py * size)
    return float(lat), float(lon)


@dataclass(frozen=True)
class LocalFrame:
    """A local tangent plane at ``(latitude, longitude)``: ENU metres <-> lat/lon.

    Built on pyproj's azimuthal equidistant projection centred on the point,
    which is exact for distances and bearings from the centre.
    """

    latitude: float
    longitude: float

    @property
    def _fwd(self) -> Transformer:
        return _aeqd(round(self.latitude, 9), round(self.longitude, 9), True)

    @property
    def _inv(self) -> Transformer:
        return _aeqd(round(self.latitude, 9), round(self.longitude, 9), False)

    def to_en(self, latitude: float, longitude: float) -> tuple[float, float]:
        e, n = self._fwd.transform(longitude, latitude)
        return float(e), float(n)

    def to_latlon(self, east: float, north: float) -> tuple[float, float]:
        lon, lat = self._inv.transform(east, north)
        return float(lat), float(lon)


@lru_cache(maxsize=64)
def _aeqd(latitude: float, longitude: float, forward: bool) -> Transformer:
    aeqd = CRS.from_proj4(f"+proj=aeqd +lat_0={latitude} +lon_0={longitude} +ellps=WGS84 +units=m")
    wgs = CRS.from_epsg(4326)
    if forward:
        return Transformer.from_crs(wgs, aeqd, always_xy=True)
    return Transformer.from_crs(aeqd, wgs, always_xy=True)
