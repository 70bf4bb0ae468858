"""The reference map: web-mercator tiles cut from the NAIP reference year."""

from __future__ import annotations

import math

import cv2
import numpy as np
from pyproj import CRS, Transformer

from gps_denied_onboard.replay.geotiff import GeoRef
from sample_flight_gen.common import encode_jpeg
from sample_flight_gen.spec import MERC_HALF_M, TILE_JPEG_QUALITY


def cut_tiles(image: np.ndarray, geo: GeoRef, zoom: int) -> list[tuple[int, int, bytes, float]]:
    """Every tile at ``zoom`` that overlaps the clip: (x, y, jpeg, fraction covered)."""
    to_merc = Transformer.from_crs(CRS.from_epsg(geo.epsg), CRS.from_epsg(3857), always_xy=True)
    to_utm = Transformer.from_crs(CRS.from_epsg(3857), CRS.from_epsg(geo.epsg), always_xy=True)
    size = 2 * MERC_HALF_M / (256 * (1 << zoom))
    cx = np.array([geo.origin_x, geo.origin_x + geo.width * geo.scale_x] * 2)
    cy = np.repeat([geo.origin_y, geo.origin_y - geo.height * geo.scale_y], 2)
    mx, my = to_merc.transform(cx, cy)
    px0, px1 = (np.min(mx) + MERC_HALF_M) / size, (np.max(mx) + MERC_HALF_M) / size
    py0, py1 = (MERC_HALF_M - np.max(my)) / size, (MERC_HALF_M - np.min(my)) / size
    out = []
    centers = np.arange(256, dtype=np.float64) + 0.5
    for ty in range(int(py0 // 256), int(py1 // 256) + 1):
        for tx in range(int(px0 // 256), int(px1 // 256) + 1):
            gx, gy = np.meshgrid(tx * 256 + centers, ty * 256 + centers)
            x, y = to_utm.transform(
                gx.ravel() * size - MERC_HALF_M, MERC_HALF_M - gy.ravel() * size
            )
            col, row = geo.pixel_of(np.asarray(x), np.asarray(y))
            map_x = (col - 0.5).reshape(256, 256).astype(np.float32)
            map_y = (row - 0.5).reshape(256, 256).astype(np.float32)
            inside = (
                (map_x >= 0) & (map_y >= 0) & (map_x <= geo.width - 1) & (map_y <= geo.height - 1)
            )
            cover = float(inside.mean())
            if cover == 0.0:
                continue
            tile = cv2.remap(
                image,
                map_x,
                map_y,
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=(0, 0, 0),
            )
            out.append((tx, ty, encode_jpeg(tile, TILE_JPEG_QUALITY), cover))
    return out


def tile_center(zoom: int, x: int, y: int) -> tuple[float, float]:
    n = 1 << zoom
    lon = (x + 0.5) / n * 360.0 - 180.0
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 0.5) / n))))
    return lat, lon
