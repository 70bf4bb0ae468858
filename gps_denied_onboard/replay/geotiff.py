"""GeoTIFF georeference and UTM <-> WGS84, standard library only.

Enough to cut web-mercator tiles from north-up UTM GeoTIFFs such as the NAIP
clips: :func:`read_georef` reads the two GeoTIFF tags that place the raster
(ModelPixelScale 33550, ModelTiepoint 33922) and the projected CRS code from
the GeoKey directory (34735, key 3072 ProjectedCSTypeGeoKey); the pixels
themselves are read by OpenCV.

:func:`utm_to_wgs84` / :func:`wgs84_to_utm` are Krüger's series for the
transverse Mercator projection to third order in the third flattening n, as
given by Karney, "Transverse Mercator with an accuracy of a few nanometers"
(J. Geodesy 85, 2011, eqs. 35-36 truncated) and used by the UTM article of
most references. Error is below a millimetre within a UTM zone, far below
the 5 m pixels at hand. No pyproj needed.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

# WGS84
_A = 6_378_137.0
_F = 1 / 298.257223563
_K0 = 0.9996
_E0 = 500_000.0
_N0_SOUTH = 10_000_000.0

_N = _F / (2 - _F)
_AA = _A / (1 + _N) * (1 + _N**2 / 4 + _N**4 / 64)
_ALPHA = (
    _N / 2 - 2 * _N**2 / 3 + 5 * _N**3 / 16,
    13 * _N**2 / 48 - 3 * _N**3 / 5,
    61 * _N**3 / 240,
)
_BETA = (
    _N / 2 - 2 * _N**2 / 3 + 37 * _N**3 / 96,
    _N**2 / 48 + _N**3 / 15,
    17 * _N**3 / 480,
)
_DELTA = (
    2 * _N - 2 * _N**2 / 3 - 2 * _N**3,
    7 * _N**2 / 3 - 8 * _N**3 / 5,
    56 * _N**3 / 15,
)
_TWO_SQRT_N = 2 * math.sqrt(_N) / (1 + _N)


def _central_meridian(zone: int) -> float:
    return math.radians(-183.0 + 6.0 * zone)


def wgs84_to_utm(lat_deg: float, lon_deg: float, zone: int, *, north: bool = True
                 ) -> tuple[float, float]:
    """Latitude/longitude (degrees) -> UTM easting, northing (metres) in ``zone``."""
    phi = math.radians(lat_deg)
    dlam = math.radians(lon_deg) - _central_meridian(zone)
    t = math.sinh(math.atanh(math.sin(phi)) - _TWO_SQRT_N * math.atanh(_TWO_SQRT_N * math.sin(phi)))
    xi_p = math.atan2(t, math.cos(dlam))
    eta_p = math.atanh(math.sin(dlam) / math.sqrt(1 + t * t))
    xi = xi_p + sum(a * math.sin(2 * j * xi_p) * math.cosh(2 * j * eta_p)
                    for j, a in enumerate(_ALPHA, start=1))
    eta = eta_p + sum(a * math.cos(2 * j * xi_p) * math.sinh(2 * j * eta_p)
                      for j, a in enumerate(_ALPHA, start=1))
    easting = _E0 + _K0 * _AA * eta
    northing = _K0 * _AA * xi + (0.0 if north else _N0_SOUTH)
    return easting, northing


def utm_to_wgs84(easting: float, northing: float, zone: int, *, north: bool = True
                 ) -> tuple[float, float]:
    """UTM easting, northing (metres) in ``zone`` -> latitude, longitude (degrees)."""
    xi = (northing - (0.0 if north else _N0_SOUTH)) / (_K0 * _AA)
    eta = (easting - _E0) / (_K0 * _AA)
    xi_p = xi - sum(b * math.sin(2 * j * xi) * math.cosh(2 * j * eta)
                    for j, b in enumerate(_BETA, start=1))
    eta_p = eta - sum(b * math.cos(2 * j * xi) * math.sinh(2 * j * eta)
                      for j, b in enumerate(_BETA, start=1))
    chi = math.asin(math.sin(xi_p) / math.cosh(eta_p))
    phi = chi + sum(d * math.sin(2 * j * chi) for j, d in enumerate(_DELTA, start=1))
    lam = _central_meridian(zone) + math.atan2(math.sinh(eta_p), math.cos(xi_p))
    return math.degrees(phi), math.degrees(lam)


@dataclass(frozen=True)
class GeoRef:
    """Placement of a north-up raster: pixel (col, row) -> projected (x, y).

    ``x = origin_x + col * scale_x``, ``y = origin_y - row * scale_y`` for
    pixel corners (GeoTIFF PixelIsArea). ``epsg`` is the projected CRS.
    """

    origin_x: float
    origin_y: float
    scale_x: float
    scale_y: float
    width: int
    height: int
    epsg: int

    @property
    def utm_zone(self) -> tuple[int, bool]:
        """(zone, north) for EPSG 326xx / 269xx (NAD83, same as WGS84 at this scale)."""
        if 32601 <= self.epsg <= 32660:
            return self.epsg - 32600, True
        if 32701 <= self.epsg <= 32760:
            return self.epsg - 32700, False
        if 26901 <= self.epsg <= 26923:
            return self.epsg - 26900, True
        raise ValueError(f"EPSG:{self.epsg} is not a UTM zone this module knows")

    def pixel_of(self, x: float, y: float) -> tuple[float, float]:
        """Projected (x, y) -> fractional pixel (col, row), pixel centres at .5."""
        return (x - self.origin_x) / self.scale_x, (self.origin_y - y) / self.scale_y

    def corners_wgs84(self) -> list[tuple[float, float]]:
        """(lat, lon) of the four outer corners."""
        zone, north = self.utm_zone
        xs = (self.origin_x, self.origin_x + self.width * self.scale_x)
        ys = (self.origin_y, self.origin_y - self.height * self.scale_y)
        return [utm_to_wgs84(x, y, zone, north=north) for x in xs for y in ys]


_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 11: 4, 12: 8, 16: 8}
_TYPE_FMT = {1: "B", 2: "c", 3: "H", 4: "I", 5: "II", 11: "f", 12: "d", 16: "Q"}


def _read_tags(data: bytes) -> dict[int, tuple[float | int, ...]]:
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or struct.unpack(order + "H", data[2:4])[0] != 42:
        raise ValueError("not a classic TIFF (BigTIFF is not supported)")
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd:ifd + 2])
    tags: dict[int, tuple[float | int, ...]] = {}
    for i in range(count):
        tag, typ, n, raw = struct.unpack(order + "HHI4s", data[ifd + 2 + 12 * i: ifd + 14 + 12 * i])
        size = _TYPE_SIZES.get(typ)
        if size is None or typ in {2, 5}:
            continue
        total = size * n
        blob = raw[:total] if total <= 4 else data[
            struct.unpack(order + "I", raw)[0]: struct.unpack(order + "I", raw)[0] + total]
        tags[tag] = struct.unpack(order + _TYPE_FMT[typ] * n, blob)
    return tags


def read_georef(path: str | Path) -> GeoRef:
    """The georeference of a north-up GeoTIFF (first image).

    Raises:
        ValueError: not a classic TIFF, or tags missing.
    """
    data = Path(path).read_bytes()
    tags = _read_tags(data)
    try:
        scale = tags[33550]
        tie = tags[33922]
        width = int(tags[256][0])
        height = int(tags[257][0])
    except KeyError as err:
        raise ValueError(f"{path}: GeoTIFF tag {err} missing") from err
    epsg = 0
    keys = tags.get(34735, ())
    for i in range(4, len(keys) - 3, 4):
        if int(keys[i]) == 3072:  # ProjectedCSTypeGeoKey
            epsg = int(keys[i + 3])
    i_px, j_px, x, y = tie[0], tie[1], tie[3], tie[4]
    return GeoRef(
        origin_x=float(x) - float(i_px) * float(scale[0]),
        origin_y=float(y) + float(j_px) * float(scale[1]),
        scale_x=float(scale[0]),
        scale_y=float(scale[1]),
        width=width,
        height=height,
        epsg=epsg,
    )
