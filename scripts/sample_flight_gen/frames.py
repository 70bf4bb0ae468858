"""The camera's frames: NAIP imagery seen through the camera model from the true pose."""

from __future__ import annotations

import math

import cv2
import numpy as np
from pyproj import CRS, Transformer

from gps_denied_onboard.replay.geotiff import GeoRef
from gps_denied_onboard.visual_nav.camera import (
    enu_from_flu_of_ned_euler,
    ground_points,
    mount_rotation,
)
from sample_flight_gen.common import libm
from sample_flight_gen.spec import (
    CAMERA,
    FRAME_GAMMA,
    FRAME_NOISE,
    GEOD,
    IMAGE_H,
    IMAGE_W,
    MOUNT_RPY_DEG,
    RAY_GRID_PX,
)
from sample_flight_gen.trajectory import Track


class FrameRenderer:
    """Renders what the camera sees from NAIP ``image`` placed by ``geo``."""

    def __init__(self, image: np.ndarray, geo: GeoRef) -> None:
        self.image = image
        self.geo = geo
        self.to_utm = Transformer.from_crs(
            CRS.from_epsg(4326), CRS.from_epsg(geo.epsg), always_xy=True
        )
        us = np.arange(0, IMAGE_W + RAY_GRID_PX, RAY_GRID_PX, dtype=np.float64)
        vs = np.arange(0, IMAGE_H + RAY_GRID_PX, RAY_GRID_PX, dtype=np.float64)
        self.knot_shape = (vs.size, us.size)
        uu, vv = np.meshgrid(us, vs)
        self.uv = np.stack([uu.ravel(), vv.ravel()], axis=1)
        self.rays_cam = CAMERA.rays(self.uv)  # distortion inverted once, by OpenCV
        self.r_body_cam = mount_rotation(MOUNT_RPY_DEG)
        levels = np.arange(256, dtype=np.float64) / 255.0
        lut = 255.0 * libm(lambda v: math.pow(v, FRAME_GAMMA), levels)
        self.gamma_lut = np.clip(np.rint(lut), 0, 255).astype(np.uint8)

        def weights(size: int) -> tuple[np.ndarray, np.ndarray]:
            pos = np.arange(size, dtype=np.float64) / RAY_GRID_PX
            i0 = np.floor(pos).astype(np.int64)
            return i0, pos - i0

        self.ix, self.wx = weights(IMAGE_W)
        self.iy, self.wy = weights(IMAGE_H)

    def _upsample(self, grid: np.ndarray) -> np.ndarray:
        rows = grid[self.iy] * (1 - self.wy)[:, None] + grid[self.iy + 1] * self.wy[:, None]
        out = rows[:, self.ix] * (1 - self.wx)[None, :] + rows[:, self.ix + 1] * self.wx[None, :]
        return np.asarray(out)

    def maps(self, track: Track, i: int) -> tuple[np.ndarray, np.ndarray, float]:
        """NAIP pixel maps for sample ``i`` of ``track`` and the fraction off the clip."""
        lat, lon, agl = float(track.lat[i]), float(track.lon[i]), float(track.agl[i])
        roll, pitch, yaw = float(track.roll[i]), float(track.pitch[i]), float(track.yaw[i])
        r_world_cam = enu_from_flu_of_ned_euler(roll, pitch, yaw) @ self.r_body_cam
        en, ok = ground_points(
            CAMERA, r_world_cam, agl, self.uv, min_depression_rad=math.radians(5.0)
        )
        e = np.where(ok, en[:, 0], 0.0)
        n = np.where(ok, en[:, 1], 0.0)
        # East/north of the aircraft's nadir -> lat/lon: the geodesic at that azimuth
        # and distance (what an azimuthal equidistant projection centred there means).
        n_pts = e.size
        g_lon, g_lat, _ = GEOD.fwd(
            np.full(n_pts, lon),
            np.full(n_pts, lat),
            np.degrees(libm(math.atan2, e, n)),
            np.hypot(e, n),
        )
        x, y = self.to_utm.transform(g_lon, g_lat)
        col, row = self.geo.pixel_of(np.asarray(x), np.asarray(y))
        col = np.where(ok, col - 0.5, -1e6).reshape(self.knot_shape)
        row = np.where(ok, row - 0.5, -1e6).reshape(self.knot_shape)
        map_x = self._upsample(col).astype(np.float32)
        map_y = self._upsample(row).astype(np.float32)
        off = (
            (map_x < 0) | (map_y < 0) | (map_x > self.geo.width - 1) | (map_y > self.geo.height - 1)
        )
        return map_x, map_y, float(off.mean())

    def render(self, maps: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> np.ndarray:
        img = cv2.remap(
            self.image,
            maps[0],
            maps[1],
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        # Mild photometric change: a camera's gamma and sensor noise.
        img = cv2.LUT(img, self.gamma_lut)
        noise = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(FRAME_NOISE)
        return np.clip(np.rint(img.astype(np.float32) + noise), 0, 255).astype(np.uint8)
