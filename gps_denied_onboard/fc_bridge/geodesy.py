"""WGS84 geodesy for the local-position outputs: geodetic <-> local NED about an origin.

ODOMETRY and VISION_POSITION_ESTIMATE carry positions in the autopilot's local NED
frame, whose origin is the EKF origin (set with SET_GPS_GLOBAL_ORIGIN, see
``origin.py``). The conversion goes through ECEF exactly (no flat-earth
approximation), so it stays right kilometres away from the origin.

Altitudes are MSL on both sides (the fix's ``altitude_msl`` and the origin's MSL
altitude); they are fed to the ellipsoid formulas as if they were ellipsoidal
heights. The geoid undulation is the same at both points to well under a
centimetre over the tens of kilometres a flight covers, so it cancels in the local
difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

WGS84_A: Final = 6_378_137.0
WGS84_F: Final = 1.0 / 298.257_223_563
WGS84_E2: Final = WGS84_F * (2.0 - WGS84_F)
WGS84_B: Final = WGS84_A * (1.0 - WGS84_F)
_EP2: Final = (WGS84_A**2 - WGS84_B**2) / WGS84_B**2


@dataclass(frozen=True)
class LocalOrigin:
    """The local frame's origin (the EKF origin): WGS84 degrees and metres MSL."""

    latitude_deg: float
    longitude_deg: float
    altitude_msl_m: float

    def __post_init__(self) -> None:
        if not (-90.0 <= self.latitude_deg <= 90.0):
            raise ValueError(f"origin latitude {self.latitude_deg!r} out of range")
        if not (-180.0 <= self.longitude_deg <= 180.0):
            raise ValueError(f"origin longitude {self.longitude_deg!r} out of range")
        if not math.isfinite(self.altitude_msl_m):
            raise ValueError("origin altitude must be finite")


def geodetic_to_ecef(lat_deg: float, lon_deg: float, h_m: float) -> tuple[float, float, float]:
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    s, c = math.sin(lat), math.cos(lat)
    n = WGS84_A / math.sqrt(1.0 - WGS84_E2 * s * s)
    return (
        (n + h_m) * c * math.cos(lon),
        (n + h_m) * c * math.sin(lon),
        (n * (1 - WGS84_E2) + h_m) * s,
    )


def ecef_to_geodetic(x: float, y: float, z: float) -> tuple[float, float, float]:
    """ECEF -> (lat deg, lon deg, h m); Bowring's method refined twice (sub-mm)."""
    lon = math.atan2(y, x)
    p = math.hypot(x, y)
    theta = math.atan2(z * WGS84_A, p * WGS84_B)
    lat = math.atan2(
        z + _EP2 * WGS84_B * math.sin(theta) ** 3, p - WGS84_E2 * WGS84_A * math.cos(theta) ** 3
    )
    for _ in range(2):
        s = math.sin(lat)
        n = WGS84_A / math.sqrt(1.0 - WGS84_E2 * s * s)
        h = p / math.cos(lat) - n if abs(lat) < math.radians(89.0) else z / s - n * (1 - WGS84_E2)
        lat = math.atan2(z, p * (1.0 - WGS84_E2 * n / (n + h)))
    s = math.sin(lat)
    n = WGS84_A / math.sqrt(1.0 - WGS84_E2 * s * s)
    h = p / math.cos(lat) - n if abs(lat) < math.radians(89.0) else z / s - n * (1 - WGS84_E2)
    return math.degrees(lat), math.degrees(lon), h


def geodetic_to_ned(
    lat_deg: float, lon_deg: float, alt_m: float, origin: LocalOrigin
) -> tuple[float, float, float]:
    """Position (WGS84 deg, m) -> (north, east, down) metres from ``origin``."""
    x0, y0, z0 = geodetic_to_ecef(origin.latitude_deg, origin.longitude_deg, origin.altitude_msl_m)
    x, y, z = geodetic_to_ecef(lat_deg, lon_deg, alt_m)
    dx, dy, dz = x - x0, y - y0, z - z0
    lat0, lon0 = math.radians(origin.latitude_deg), math.radians(origin.longitude_deg)
    sl, cl = math.sin(lat0), math.cos(lat0)
    so, co = math.sin(lon0), math.cos(lon0)
    east = -so * dx + co * dy
    north = -sl * co * dx - sl * so * dy + cl * dz
    up = cl * co * dx + cl * so * dy + sl * dz
    return north, east, -up


def ned_to_geodetic(
    north: float, east: float, down: float, origin: LocalOrigin
) -> tuple[float, float, float]:
    """Inverse of :func:`geodetic_to_ned`: (lat deg, lon deg, alt m)."""
    x0, y0, z0 = geodetic_to_ecef(origin.latitude_deg, origin.longitude_deg, origin.altitude_msl_m)
    lat0, lon0 = math.radians(origin.latitude_deg), math.radians(origin.longitude_deg)
    sl, cl = math.sin(lat0), math.cos(lat0)
    so, co = math.sin(lon0), math.cos(lon0)
    up = -down
    dx = -so * east - sl * co * north + cl * co * up
    dy = co * east - sl * so * north + cl * so * up
    dz = cl * north + sl * up
    return ecef_to_geodetic(x0 + dx, y0 + dy, z0 + dz)
