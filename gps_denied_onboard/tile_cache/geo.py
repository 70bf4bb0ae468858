"""Web-mercator (slippy map) tile arithmetic: z/x/y <-> latitude/longitude.

Tile ``(z, x, y)`` covers ``x/2**z .. (x+1)/2**z`` of the longitude range
and rows counted from the north; latitudes beyond ±MAX_LATITUDE are outside
the projection and are clamped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from gps_denied_onboard.tile_cache.errors import TileValidationError

MAX_LATITUDE: Final = 85.0511287798066


def _finite(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range
        return False


@dataclass(frozen=True)
class BBox:
    """A latitude/longitude box in degrees. ``min_longitude > max_longitude``
    means the box crosses the antimeridian.

    Raises:
        TileValidationError: (a ``ValueError``) a corner that is not a finite
            number, or out of range.
    """

    min_latitude: float
    min_longitude: float
    max_latitude: float
    max_longitude: float

    def __post_init__(self) -> None:
        values = (self.min_latitude, self.min_longitude, self.max_latitude, self.max_longitude)
        if not all(_finite(v) for v in values):
            raise TileValidationError(
                f"bbox values must be finite numbers, got {values!r:.200}", field="bbox"
            )
        if not (-90.0 <= self.min_latitude <= self.max_latitude <= 90.0):
            raise TileValidationError(
                f"bbox latitudes must satisfy -90 <= min <= max <= 90, got "
                f"{self.min_latitude}..{self.max_latitude}",
                field="bbox",
            )
        for lon in (self.min_longitude, self.max_longitude):
            if not -180.0 <= lon <= 180.0:
                raise TileValidationError(f"bbox longitude {lon} outside -180..180", field="bbox")

    def contains(self, latitude: float, longitude: float) -> bool:
        if not self.min_latitude <= latitude <= self.max_latitude:
            return False
        if self.min_longitude <= self.max_longitude:
            return self.min_longitude <= longitude <= self.max_longitude
        return longitude >= self.min_longitude or longitude <= self.max_longitude


def lon_to_tile_x(longitude: float, zoom: int) -> int:
    n = 1 << zoom
    x = math.floor((longitude + 180.0) / 360.0 * n)
    return min(max(x, 0), n - 1)


def lat_to_tile_y(latitude: float, zoom: int) -> int:
    n = 1 << zoom
    lat = min(max(latitude, -MAX_LATITUDE), MAX_LATITUDE)
    rad = math.radians(lat)
    y = math.floor((1.0 - math.asinh(math.tan(rad)) / math.pi) / 2.0 * n)
    return min(max(y, 0), n - 1)


def latlon_to_tile(latitude: float, longitude: float, zoom: int) -> tuple[int, int]:
    """The (x, y) of the tile containing the point at ``zoom``."""
    return lon_to_tile_x(longitude, zoom), lat_to_tile_y(latitude, zoom)


def tile_x_to_lon(x: float, zoom: int) -> float:
    return x / (1 << zoom) * 360.0 - 180.0


def tile_y_to_lat(y: float, zoom: int) -> float:
    return math.degrees(math.atan(math.sinh(math.pi * (1.0 - 2.0 * y / (1 << zoom)))))


def tile_bbox(zoom: int, x: int, y: int) -> BBox:
    """The lat/lon box a tile covers."""
    return BBox(
        min_latitude=tile_y_to_lat(y + 1, zoom),
        min_longitude=tile_x_to_lon(x, zoom),
        max_latitude=tile_y_to_lat(y, zoom),
        max_longitude=tile_x_to_lon(x + 1, zoom),
    )


def tile_center(zoom: int, x: int, y: int) -> tuple[float, float]:
    """(latitude, longitude) of the tile's centre in projected space."""
    return tile_y_to_lat(y + 0.5, zoom), tile_x_to_lon(x + 0.5, zoom)


def bbox_tile_ranges(bbox: BBox, zoom: int) -> tuple[list[int], tuple[int, int]]:
    """The tile columns and the row range a bbox covers at ``zoom``.

    Returns:
        (xs, (y_min, y_max)): every column index the box touches (two runs when
        it crosses the antimeridian) and the inclusive row range.
    """
    n = 1 << zoom
    x0 = lon_to_tile_x(bbox.min_longitude, zoom)
    x1 = lon_to_tile_x(bbox.max_longitude, zoom)
    if bbox.min_longitude <= bbox.max_longitude:
        xs = list(range(x0, x1 + 1))
    elif x0 > x1:
        xs = [*range(x0, n), *range(0, x1 + 1)]
    else:  # crosses the antimeridian and wraps onto itself: every column
        xs = list(range(n))
    y0 = lat_to_tile_y(bbox.max_latitude, zoom)
    y1 = lat_to_tile_y(bbox.min_latitude, zoom)
    return xs, (y0, y1)
