#!/usr/bin/env python3
"""Generate sample_flight/: a fixed-wing survey with a nadir camera over real NAIP imagery.

Deterministic: fixed seeds, fixed start time, fixed JPEG settings; running it
twice gives the same files (byte-identical with the same OpenCV, numpy, pyproj,
rosbags and pymavlink versions; the manifest's sha256 values say which bytes ship).

Output (about 12 MB; the manifest says exactly)::

    sample_flight/
      manifest.json          every file with its sha256, the flight's legs, camera, key times
      tiles/15/<x>/<y>.jpg   reference tiles, web-mercator z15 (3.26 m/px here), cut from
                             NAIP 2017, covering the whole clip (no data = black)
      bag/                   rosbag2 (MCAP): /camera/image_raw/compressed (JPEG, 2 Hz),
                             /camera/camera_info (1 Hz, plumb_bob); no fixes
      fc_stream.tlog         the flight controller's MAVLink stream (ArduPlane)
      truth.csv              ground truth at 25 Hz on the bag's clock

The flight (240 s, 28 m/s ground speed, no wind): climbing out eastbound from
~170 m to 500 m above ground, a lawnmower survey of three east-west legs
joined by coordinated 90 degree turns (20 degree bank), a descent to 200 m
above ground on the second leg, the last turns and leg at 200 m. GNSS is lost
at t = 60 s: GPS_RAW_INT reports no fix, the EKF's absolute-position flags
clear, a STATUSTEXT says so, and the FC's own GLOBAL_POSITION_INT position
dead-reckons from then on (a 1.6 m/s velocity error, so it drifts away from
the truth as a real EKF without GNSS would); its altitude stays barometric
and true. Its ATTITUDE is an estimate: the truth plus a slowly wandering
error (0.15 degrees RMS in roll and pitch, 1 degree in heading, time constant
30 s), as an EKF's is; the camera sees the true attitude. The true attitude
carries the turns' bank, a 3 degree cruise pitch plus the flight-path angle,
low-frequency turbulence and 2-7 Hz vibration (about 0.4 degrees RMS per axis).

The camera (640x480, 90 degree HFOV, plumb_bob with small distortion, nadir,
image top towards the nose) sees NAIP 2020 ("now"); the reference tiles are
NAIP 2017 ("the map"). Each frame is rendered through
gps_denied_onboard.visual_nav.camera (the same model CameraInfo states): a
pixel's ray, rotated by the true attitude, meets flat ground at the true height
above ground; the ground point's east/north offset from the aircraft becomes
lat/lon along the geodesic (pyproj Geod), then UTM 14N (pyproj), then a NAIP
pixel. Rays are cast on an 8-pixel grid
and the maps are bilinear in between (sub-0.05 px over the frame). Ground
elevation is flat at 580 m MSL, the home altitude. /clock is not stored: the
replay tool makes it.

Usage: scripts/make_sample_flight.py [--naip DIR] [--out DIR]
Needs: numpy, opencv, pyproj, tifffile, rosbags, pymavlink (scripts/requirements.txt).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pyproj import CRS, Geod, Transformer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the replay helpers and camera model from the source tree

from gps_denied_onboard.replay.geotiff import GeoRef, read_geotiff  # noqa: E402
from gps_denied_onboard.replay.tlog import TlogFrame, write_tlog  # noqa: E402
from gps_denied_onboard.replay.types import project_typestore  # noqa: E402
from gps_denied_onboard.visual_nav.camera import (  # noqa: E402
    CameraModel,
    enu_from_flu_of_ned_euler,
    ground_points,
    mount_rotation,
)

S = 1_000_000_000
START_NS = 1_778_580_000 * S  # 2026-05-12T10:00:00Z
FC_BOOT_NS = START_NS - 300 * S
DURATION_S = 240.0
GNSS_LOSS_S = 60.0
SEED = 20260512
REFERENCE_YEAR = "2017"
CAMERA_YEAR = "2020"
FLIGHT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "gps_denied_onboard/sample_flight/2"))

# The world and the aircraft.
GROUND_MSL_M = 580.0
SPEED_MPS = 28.0
G = 9.80665
BANK_DEG = 20.0
ROLL_RAMP_S = 2.0
CRUISE_PITCH_DEG = 3.0
DT_S = 0.01  # integration step; every stream is sampled on this grid
START_EN = (-1500.0, -600.0)  # metres east/north of the clip's centre
START_YAW_DEG = 90.0  # NED heading: east
DR_VELOCITY_ERROR = (1.2, -1.05)  # m/s east/north: the FC's dead-reckoning error after the loss

# The plan: (name, kind, value): straight = metres, turn = degrees (+ right).
PLAN: tuple[tuple[str, str, float], ...] = (
    ("climb-out and leg 1 eastbound", "straight", 2030.0),
    ("turn 1 left", "turn", -90.0),
    ("connector north", "straight", 250.0),
    ("turn 2 left", "turn", -90.0),
    ("leg 2 westbound, descent to 200 m", "straight", 2000.0),
    ("turn 3 right", "turn", 90.0),
    ("connector north", "straight", 250.0),
    ("turn 4 right", "turn", 90.0),
    ("leg 3 eastbound at 200 m", "straight", 1000.0),
)
# Height above ground: (t0, t1, agl0, agl1) raised-cosine blends; constant between.
ALTITUDE_PROFILE: tuple[tuple[float, float, float, float], ...] = (
    (-20.0, 58.0, 150.0, 500.0),
    (122.0, 182.0, 500.0, 200.0),
)

# The camera.
CAMERA_HZ = 2.0
CAMERA_INFO_HZ = 1.0
CAMERA_FRAME_ID = "camera_optical"
IMAGE_W, IMAGE_H = 640, 480
CAMERA = CameraModel(
    IMAGE_W, IMAGE_H,
    (320.0, 0.0, 321.7, 0.0, 320.0, 238.9, 0.0, 0.0, 1.0),
    "plumb_bob",
    (-0.045, 0.012, 0.0004, -0.0003, 0.0),
)
MOUNT_RPY_DEG = (0.0, 0.0, 0.0)
RAY_GRID_PX = 8
FRAME_JPEG_QUALITY = 80
FRAME_GAMMA = 0.93
FRAME_NOISE = 1.2  # grey levels, 1 sigma
FRAME_LATENCY_NS = 25_000_000  # capture -> bag (driver + transport)

# The map.
TILE_ZOOM = 15
TILE_JPEG_QUALITY = 85
MERC_HALF_M = 20037508.342789244

GEOD = Geod(ellps="WGS84")

# Streams.
TRUTH_HZ = 25
ATTITUDE_HZ = 25
POSITION_HZ = 10
VFR_HZ = 5
GPS_HZ = 5
FC_LINK_LATENCY_NS = 1_000_000
# What ATTITUDE reports is the autopilot's estimate: the truth plus an EKF's error, which
# wanders over tens of seconds rather than jumping between frames. Roll and pitch as a real
# autopilot's (bench/_visual_nav_env.py ATT_NOISE_DEG), a degree of heading.
FC_ATTITUDE_ERROR_RMS_DEG = {"roll": 0.15, "pitch": 0.15, "yaw": 1.0}
FC_ATTITUDE_ERROR_TAU_S = 30.0


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality,
                                           cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf)


def load_naip(naip_dir: Path, year: str) -> tuple[Path, np.ndarray, GeoRef]:
    """The clip of ``year`` as BGR (OpenCV order) and its georeference."""
    (path,) = sorted(naip_dir.glob(f"*_{year}*.tif"))
    image, geo = read_geotiff(path)
    if image.shape[2] < 3:
        raise SystemExit(f"{path}: expected R, G, B bands, got {image.shape[2]}")
    return path, np.ascontiguousarray(image[:, :, 2::-1]), geo


def aeqd(lat: float, lon: float) -> CRS:
    return CRS.from_proj4(
        f"+proj=aeqd +lat_0={float(lat)!r} +lon_0={float(lon)!r} +ellps=WGS84 +units=m")


def _libm(f: Any, *arrays: Any) -> np.ndarray:
    """Elementwise ``f`` from Python's ``math`` over same-shape arrays.

    numpy's transcendental kernels are SIMD-dispatched (SVML on AVX-512), so
    their last bit depends on the CPU; libm's do not vary that way. Byte-identical
    output on another machine needs the same bits here.
    """
    arrs = [np.asarray(a, dtype=np.float64) for a in arrays]
    shape = arrs[0].shape
    flat = [a.ravel().tolist() for a in arrs]
    return np.array([f(*v) for v in zip(*flat, strict=True)], dtype=np.float64).reshape(shape)


# --- trajectory -------------------------------------------------------------------
@dataclass(frozen=True)
class Track:
    """The true flight on the DT_S grid (arrays of equal length)."""

    t: np.ndarray  # s since START_NS
    east: np.ndarray  # m, clip-centre aeqd frame
    north: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    agl: np.ndarray
    ve: np.ndarray
    vn: np.ndarray
    vu: np.ndarray
    roll: np.ndarray  # rad, NED/FRD Euler
    pitch: np.ndarray
    yaw: np.ndarray  # rad, NED: 0 = north, clockwise, wrapped to (-pi, pi]
    legs: list[dict[str, Any]]

    @property
    def alt_msl(self) -> np.ndarray:
        return GROUND_MSL_M + self.agl


def _smooth(x: np.ndarray) -> np.ndarray:
    """0 -> 1 raised cosine on [0, 1], clamped."""
    return 0.5 - 0.5 * _libm(math.cos, np.pi * np.clip(x, 0.0, 1.0))


def _agl(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Height above ground and its rate."""
    h = np.full_like(t, ALTITUDE_PROFILE[0][2])
    rate = np.zeros_like(t)
    for t0, t1, h0, h1 in ALTITUDE_PROFILE:
        x = (t - t0) / (t1 - t0)
        inside = (x > 0.0) & (x < 1.0)
        h = np.where(x >= 1.0, h1, np.where(inside, h0 + (h1 - h0) * _smooth(x), h))
        rate = np.where(inside, (h1 - h0) * 0.5 * np.pi / (t1 - t0) * _libm(math.sin, np.pi * x),
                        rate)
    return h, rate


def _bank_schedule() -> tuple[list[tuple[float, float, float, float]], list[dict[str, Any]]]:
    """Turns as (t_start, ramp, plateau, signed bank rad) and the legs' times."""
    bank = math.radians(BANK_DEG)
    rate = G * math.tan(bank) / SPEED_MPS  # heading rate at full bank, rad/s
    # Heading change of one linear roll ramp of ROLL_RAMP_S (numerically, fine grid).
    s = np.linspace(0.0, 1.0, 2001)
    ramp_turn = float(np.trapezoid(G * _libm(math.tan, bank * s) / SPEED_MPS, s * ROLL_RAMP_S))
    turns = []
    legs = []
    t = 0.0
    for name, kind, value in PLAN:
        if kind == "straight":
            dur = value / SPEED_MPS
        else:
            plateau = (math.radians(abs(value)) - 2 * ramp_turn) / rate
            if plateau < 0:
                raise ValueError(f"{name}: {value} degrees is too small a turn for the ramps")
            turns.append((t, ROLL_RAMP_S, plateau, math.copysign(bank, value)))
            dur = 2 * ROLL_RAMP_S + plateau
        legs.append({"name": name, "t0_s": round(t, 3), "t1_s": round(min(t + dur, DURATION_S), 3)})
        t += dur
    return turns, legs


def _bank(t: np.ndarray, turns: list[tuple[float, float, float, float]]) -> np.ndarray:
    phi = np.zeros_like(t)
    for t0, ramp, plateau, bank in turns:
        up = np.clip((t - t0) / ramp, 0.0, 1.0)
        down = np.clip((t - (t0 + ramp + plateau)) / ramp, 0.0, 1.0)
        phi += bank * (up - down)
    return phi


def _band_noise(rng: np.random.Generator, n: int, tau_s: float, rms: float) -> np.ndarray:
    """First-order low-pass of white noise (time constant ``tau_s``), scaled to ``rms``."""
    a = math.exp(-DT_S / tau_s)
    white = rng.normal(0.0, 1.0, n + 2000)
    out = np.empty_like(white)
    acc = 0.0
    for i, w in enumerate(white):  # deterministic recursion; n is a few 10k
        acc = a * acc + w
        out[i] = acc
    out = out[2000:]
    return np.asarray(out / np.std(out) * rms)


def _vibration(rng: np.random.Generator, t: np.ndarray, rms_deg: float) -> np.ndarray:
    """Turbulence (0.5 s) plus three 2-7 Hz sinusoids, about ``rms_deg`` RMS together."""
    freqs = rng.uniform(2.0, 7.0, 3)
    phases = rng.uniform(0.0, 2 * math.pi, 3)
    amps = rng.uniform(0.6, 1.0, 3)
    sines = sum(a * _libm(math.sin, 2 * math.pi * f * t + p)
                for a, f, p in zip(amps, freqs, phases, strict=True))
    sines = sines / np.sqrt(np.mean(np.square(sines)))
    turb = _band_noise(rng, t.size, 0.5, 1.0)
    return np.asarray(np.radians(rms_deg * (0.6 * sines + 0.8 * turb)))


def trajectory(center: tuple[float, float]) -> Track:
    turns, legs = _bank_schedule()
    n = round(DURATION_S / DT_S) + 1
    t = np.arange(n) * DT_S
    bank = _bank(t, turns)
    yaw_rate = G * _libm(math.tan, bank) / SPEED_MPS
    # Heading and position: trapezoidal integration on the grid.
    course = math.radians(START_YAW_DEG) + np.concatenate(
        [[0.0], np.cumsum(0.5 * (yaw_rate[1:] + yaw_rate[:-1]) * DT_S)])
    ve = SPEED_MPS * _libm(math.sin, course)
    vn = SPEED_MPS * _libm(math.cos, course)
    east = START_EN[0] + np.concatenate([[0.0], np.cumsum(0.5 * (ve[1:] + ve[:-1]) * DT_S)])
    north = START_EN[1] + np.concatenate([[0.0], np.cumsum(0.5 * (vn[1:] + vn[:-1]) * DT_S)])
    agl, vu = _agl(t)
    rng = np.random.default_rng(SEED)
    gamma = _libm(math.atan2, vu, np.full_like(vu, SPEED_MPS))
    load = 1.0 / _libm(math.cos, bank) - 1.0
    pitch = (np.radians(CRUISE_PITCH_DEG) + gamma + np.radians(1.5) * load / (
        1.0 / math.cos(math.radians(BANK_DEG)) - 1.0))
    roll = bank + _vibration(rng, t, 0.4)
    pitch = pitch + _vibration(rng, t, 0.35)
    yaw = course + _vibration(rng, t, 0.25)
    yaw = _libm(lambda a: math.atan2(math.sin(a), math.cos(a)), yaw)
    to_ll = Transformer.from_crs(aeqd(*center), CRS.from_epsg(4326), always_xy=True)
    lon, lat = to_ll.transform(east, north)
    for leg in legs:
        i0, i1 = round(leg["t0_s"] / DT_S), min(round(leg["t1_s"] / DT_S), n - 1)
        lo, hi = float(agl[i0:i1 + 1].min()), float(agl[i0:i1 + 1].max())
        leg["agl_m"] = [round(lo, 1), round(hi, 1)]
        tan_h = (IMAGE_W / 2) / CAMERA.matrix[0, 0]
        tan_v = (IMAGE_H / 2) / CAMERA.matrix[1, 1]
        leg["footprint_m"] = {"across": [round(2 * lo * tan_h), round(2 * hi * tan_h)],
                              "along": [round(2 * lo * tan_v), round(2 * hi * tan_v)]}
    return Track(t, east, north, np.asarray(lat), np.asarray(lon), agl, ve, vn, vu,
                 roll, pitch, yaw, legs)


# --- camera frames ----------------------------------------------------------------
class FrameRenderer:
    """Renders what the camera sees from NAIP ``image`` placed by ``geo``."""

    def __init__(self, image: np.ndarray, geo: GeoRef) -> None:
        self.image = image
        self.geo = geo
        self.to_utm = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_epsg(geo.epsg),
                                           always_xy=True)
        us = np.arange(0, IMAGE_W + RAY_GRID_PX, RAY_GRID_PX, dtype=np.float64)
        vs = np.arange(0, IMAGE_H + RAY_GRID_PX, RAY_GRID_PX, dtype=np.float64)
        self.knot_shape = (vs.size, us.size)
        uu, vv = np.meshgrid(us, vs)
        self.uv = np.stack([uu.ravel(), vv.ravel()], axis=1)
        self.rays_cam = CAMERA.rays(self.uv)  # distortion inverted once, by OpenCV
        self.r_body_cam = mount_rotation(MOUNT_RPY_DEG)
        levels = np.arange(256, dtype=np.float64) / 255.0
        lut = 255.0 * _libm(lambda v: math.pow(v, FRAME_GAMMA), levels)
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
        en, ok = ground_points(CAMERA, r_world_cam, agl, self.uv,
                               min_depression_rad=math.radians(5.0))
        e = np.where(ok, en[:, 0], 0.0)
        n = np.where(ok, en[:, 1], 0.0)
        # East/north of the aircraft's nadir -> lat/lon: the geodesic at that azimuth
        # and distance (what an azimuthal equidistant projection centred there means).
        n_pts = e.size
        g_lon, g_lat, _ = GEOD.fwd(np.full(n_pts, lon), np.full(n_pts, lat),
                                   np.degrees(_libm(math.atan2, e, n)), np.hypot(e, n))
        x, y = self.to_utm.transform(g_lon, g_lat)
        col, row = self.geo.pixel_of(np.asarray(x), np.asarray(y))
        col = np.where(ok, col - 0.5, -1e6).reshape(self.knot_shape)
        row = np.where(ok, row - 0.5, -1e6).reshape(self.knot_shape)
        map_x = self._upsample(col).astype(np.float32)
        map_y = self._upsample(row).astype(np.float32)
        off = ((map_x < 0) | (map_y < 0) | (map_x > self.geo.width - 1)
               | (map_y > self.geo.height - 1))
        return map_x, map_y, float(off.mean())

    def render(self, maps: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
               ) -> np.ndarray:
        img = cv2.remap(self.image, maps[0], maps[1], cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        # Mild photometric change: a camera's gamma and sensor noise.
        img = cv2.LUT(img, self.gamma_lut)
        noise = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(FRAME_NOISE)
        return np.clip(np.rint(img.astype(np.float32) + noise), 0, 255).astype(np.uint8)


# --- reference tiles ---------------------------------------------------------------
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
            x, y = to_utm.transform(gx.ravel() * size - MERC_HALF_M,
                                    MERC_HALF_M - gy.ravel() * size)
            col, row = geo.pixel_of(np.asarray(x), np.asarray(y))
            map_x = (col - 0.5).reshape(256, 256).astype(np.float32)
            map_y = (row - 0.5).reshape(256, 256).astype(np.float32)
            inside = ((map_x >= 0) & (map_y >= 0) & (map_x <= geo.width - 1)
                      & (map_y <= geo.height - 1))
            cover = float(inside.mean())
            if cover == 0.0:
                continue
            tile = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
            out.append((tx, ty, encode_jpeg(tile, TILE_JPEG_QUALITY), cover))
    return out


def tile_center(zoom: int, x: int, y: int) -> tuple[float, float]:
    n = 1 << zoom
    lon = (x + 0.5) / n * 360.0 - 180.0
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 0.5) / n))))
    return lat, lon


# --- bag --------------------------------------------------------------------------
def _time(store: Any, ns: int) -> Any:
    return store.types["builtin_interfaces/msg/Time"](sec=ns // S, nanosec=ns % S)


def _header(store: Any, ns: int, frame: str) -> Any:
    return store.types["std_msgs/msg/Header"](stamp=_time(store, ns), frame_id=frame)


def camera_info(store: Any, ns: int) -> bytes:
    t = store.types
    k = np.array(CAMERA.k, dtype=np.float64)
    p = np.array([k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0])
    msg = t["sensor_msgs/msg/CameraInfo"](
        header=_header(store, ns, CAMERA_FRAME_ID), height=IMAGE_H, width=IMAGE_W,
        distortion_model=CAMERA.distortion_model, d=np.array(CAMERA.d, dtype=np.float64),
        k=k, r=np.eye(3).ravel(), p=p, binning_x=0, binning_y=0,
        roi=t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                  do_rectify=False))
    return bytes(store.serialize_cdr(msg, "sensor_msgs/msg/CameraInfo"))


def compressed_image(store: Any, ns: int, jpeg: bytes) -> bytes:
    msg = store.types["sensor_msgs/msg/CompressedImage"](
        header=_header(store, ns, CAMERA_FRAME_ID), format="jpeg",
        data=np.frombuffer(jpeg, dtype=np.uint8))
    return bytes(store.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage"))


def reliable_qos(depth: int) -> Any:
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE, QosDurability.VOLATILE,
               zero, zero, QosLiveliness.AUTOMATIC, zero, False)


# --- MAVLink ----------------------------------------------------------------------
def fc_stream(track: Track, center: tuple[float, float]) -> list[TlogFrame]:
    """ArduPlane telemetry of the flight, as it reaches the companion computer."""
    from pymavlink.dialects.v20 import ardupilotmega as mavlink2

    class _Sink:
        def write(self, _data: bytes) -> None:
            pass

    mav = mavlink2.MAVLink(_Sink(), srcSystem=1, srcComponent=1)
    rng = np.random.default_rng(SEED + 1)
    # its own generator: the GNSS noise above stays what it was
    att_rng = np.random.default_rng(SEED + 3)
    att_err = {}
    for axis, rms in FC_ATTITUDE_ERROR_RMS_DEG.items():
        e = _band_noise(att_rng, track.t.size, FC_ATTITUDE_ERROR_TAU_S, rms)
        # over one flight a 30 s wander has a mean (a bias) too: the RMS is what is stated
        att_err[axis] = np.radians(e * rms / np.sqrt(np.mean(e**2)))
    fc_yaw = track.yaw + att_err["yaw"]
    fc_yaw = np.arctan2(np.sin(fc_yaw), np.cos(fc_yaw))
    frames: list[TlogFrame] = []

    def emit(ns: int, msg: Any) -> None:
        frames.append(TlogFrame(ns, bytes(msg.pack(mav))))

    armed = mavlink2.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | mavlink2.MAV_MODE_FLAG_SAFETY_ARMED \
        | mavlink2.MAV_MODE_FLAG_STABILIZE_ENABLED | mavlink2.MAV_MODE_FLAG_GUIDED_ENABLED \
        | mavlink2.MAV_MODE_FLAG_AUTO_ENABLED
    plane_auto = 10
    loss_i = round(GNSS_LOSS_S / DT_S)
    ok_flags = (mavlink2.EKF_ATTITUDE | mavlink2.EKF_VELOCITY_HORIZ | mavlink2.EKF_VELOCITY_VERT
                | mavlink2.EKF_POS_HORIZ_REL | mavlink2.EKF_POS_HORIZ_ABS
                | mavlink2.EKF_POS_VERT_ABS | mavlink2.EKF_PRED_POS_HORIZ_REL
                | mavlink2.EKF_PRED_POS_HORIZ_ABS)
    lost_flags = ok_flags & ~(mavlink2.EKF_POS_HORIZ_ABS | mavlink2.EKF_PRED_POS_HORIZ_ABS)
    # The FC's own horizontal estimate: truth while GNSS is healthy, then dead
    # reckoning with a constant velocity error.
    dt_after = np.maximum(track.t - GNSS_LOSS_S, 0.0)
    fc_e = track.east + DR_VELOCITY_ERROR[0] * dt_after
    fc_n = track.north + DR_VELOCITY_ERROR[1] * dt_after
    lost_mask = track.t >= GNSS_LOSS_S
    fc_ve = track.ve + np.where(lost_mask, DR_VELOCITY_ERROR[0], 0.0)
    fc_vn = track.vn + np.where(lost_mask, DR_VELOCITY_ERROR[1], 0.0)
    to_ll = Transformer.from_crs(aeqd(*center), CRS.from_epsg(4326), always_xy=True)
    fc_lon, fc_lat = (np.asarray(a) for a in to_ll.transform(fc_e, fc_n))
    home_lat, home_lon = float(track.lat[0]), float(track.lon[0])
    # Body rates for ATTITUDE: central differences of the Euler angles (small-angle).
    roll_rate = np.gradient(track.roll, DT_S)
    pitch_rate = np.gradient(track.pitch, DT_S)
    yaw_rate = np.gradient(np.unwrap(track.yaw), DT_S)
    battery_mv = 16_400.0
    tick = {name: round(1.0 / hz / DT_S) for name, hz in (
        ("att", ATTITUDE_HZ), ("pos", POSITION_HZ), ("vfr", VFR_HZ), ("gps", GPS_HZ))}
    for i in range(track.t.size):
        t_ns = START_NS + i * int(DT_S * S)
        ns = t_ns + FC_LINK_LATENCY_NS
        boot_ms = (t_ns - FC_BOOT_NS) // 1_000_000
        lost = i >= loss_i
        hdg = (math.degrees(float(fc_yaw[i])) + 360.0) % 360.0
        course = (math.degrees(math.atan2(float(fc_ve[i]), float(fc_vn[i]))) + 360.0) % 360.0
        alt_mm = round(float(track.alt_msl[i]) * 1000)
        if i % round(1.0 / DT_S) == 0:
            emit(ns, mav.heartbeat_encode(mavlink2.MAV_TYPE_FIXED_WING,
                                          mavlink2.MAV_AUTOPILOT_ARDUPILOTMEGA, armed,
                                          plane_auto, mavlink2.MAV_STATE_ACTIVE))
            battery_mv -= 4.0
            emit(ns, mav.sys_status_encode(0x3FFFFF, 0x3FFFFF, 0x3FFFFF, 300,
                                           int(battery_mv), 1850, int(92 - i * DT_S / 5), 0,
                                           0, 0, 0, 0, 0))
        if i % round(5.0 / DT_S) == 0:
            q = [1.0, 0.0, 0.0, 0.0]
            emit(ns, mav.home_position_encode(
                round(home_lat * 1e7), round(home_lon * 1e7), round(GROUND_MSL_M * 1000),
                0.0, 0.0, 0.0, q, 0.0, 0.0, 0.0, t_ns // 1000))
        if i % tick["att"] == 0:
            emit(ns, mav.attitude_encode(boot_ms, float(track.roll[i] + att_err["roll"][i]),
                                         float(track.pitch[i] + att_err["pitch"][i]),
                                         float(fc_yaw[i]), float(roll_rate[i]),
                                         float(pitch_rate[i]), float(yaw_rate[i])))
        if i % tick["pos"] == 0:
            emit(ns, mav.global_position_int_encode(
                boot_ms, round(float(fc_lat[i]) * 1e7), round(float(fc_lon[i]) * 1e7),
                alt_mm, round(float(track.agl[i]) * 1000),
                round(float(fc_vn[i]) * 100), round(float(fc_ve[i]) * 100),
                round(-float(track.vu[i]) * 100), round(hdg * 100) % 36000))
        if i % tick["gps"] == 0:
            if lost:
                emit(ns, mav.gps_raw_int_encode(
                    t_ns // 1000, mavlink2.GPS_FIX_TYPE_NO_FIX, 0, 0, 0, 65535, 65535, 65535,
                    65535, 0))
            else:
                dn, de = rng.normal(0, 1.0, 2)
                m_lat = 111_132.0
                m_lon = 111_320.0 * math.cos(math.radians(float(track.lat[i])))
                emit(ns, mav.gps_raw_int_encode(
                    t_ns // 1000, mavlink2.GPS_FIX_TYPE_3D_FIX,
                    round((float(track.lat[i]) + dn / m_lat) * 1e7),
                    round((float(track.lon[i]) + de / m_lon) * 1e7),
                    alt_mm + round(float(rng.normal(0, 1.5)) * 1000), 80, 120,
                    round(SPEED_MPS * 100), round(course * 100) % 36000,
                    int(14 + rng.integers(0, 3))))
        if i % tick["vfr"] == 0:
            emit(ns, mav.vfr_hud_encode(SPEED_MPS, SPEED_MPS, int(hdg) % 360, 55,
                                        float(track.alt_msl[i]), float(track.vu[i])))
        if i % round(0.5 / DT_S) == 0:
            flags = lost_flags if lost else ok_flags
            pos_var = min(0.9, 0.1 + 0.01 * float(dt_after[i])) if lost else 0.1
            emit(ns, mav.ekf_status_report_encode(flags, 0.1, pos_var, 0.1, 0.1, 0.0))
        if i == loss_i:
            emit(ns, mav.statustext_encode(mavlink2.MAV_SEVERITY_WARNING, b"GPS 1: lost fix"))
    return frames


# --- truth ------------------------------------------------------------------------
TRUTH_COLUMNS = ("t_ns", "lat", "lon", "alt_msl", "agl_m", "roll_deg", "pitch_deg", "yaw_deg",
                 "vel_east", "vel_north", "vel_up")


def truth_csv(track: Track) -> bytes:
    step = round(1.0 / TRUTH_HZ / DT_S)
    lines = [",".join(TRUTH_COLUMNS)]
    for i in range(0, track.t.size, step):
        lines.append(
            f"{START_NS + i * int(DT_S * S)},{track.lat[i]:.9f},{track.lon[i]:.9f},"
            f"{track.alt_msl[i]:.3f},{track.agl[i]:.3f},{math.degrees(track.roll[i]):.4f},"
            f"{math.degrees(track.pitch[i]):.4f},{math.degrees(track.yaw[i]):.4f},"
            f"{track.ve[i]:.4f},{track.vn[i]:.4f},{track.vu[i]:.4f}")
    return ("\n".join(lines) + "\n").encode()


# --- main -------------------------------------------------------------------------
def build(naip_dir: Path, out: Path, *, log: Any = print) -> dict[str, Any]:
    from rosbags.rosbag2 import StoragePlugin, Writer

    ref_path, ref_img, ref_geo = load_naip(naip_dir, REFERENCE_YEAR)
    cam_path, cam_img, cam_geo = load_naip(naip_dir, CAMERA_YEAR)
    center = ref_geo.center_wgs84()
    track = trajectory(center)

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    manifest: dict[str, Any] = {
        "generator": "scripts/make_sample_flight.py",
        "flight_id": FLIGHT_ID,
        "aircraft": "fixed-wing (ArduPlane), 28 m/s ground speed, no wind",
        "start_ns": START_NS,
        "fc_boot_ns": FC_BOOT_NS,
        "duration_s": DURATION_S,
        "gnss_loss_ns": START_NS + int(GNSS_LOSS_S * S),
        "center": {"lat": center[0], "lon": center[1]},
        "ground_msl_m": GROUND_MSL_M,
        "home": {"lat": float(track.lat[0]), "lon": float(track.lon[0]),
                 "alt_msl": GROUND_MSL_M},
        "legs": track.legs,
        "fc_dead_reckoning_error_mps": {"east": DR_VELOCITY_ERROR[0],
                                        "north": DR_VELOCITY_ERROR[1]},
        "naip": {
            "reference": {"file": ref_path.name, "sha256": sha256(ref_path.read_bytes()),
                          "year": REFERENCE_YEAR},
            "camera": {"file": cam_path.name, "sha256": sha256(cam_path.read_bytes()),
                       "year": CAMERA_YEAR},
            "crs": f"EPSG:{ref_geo.epsg}",
        },
        "snapshots": [],
    }

    tiles = []
    for x, y, jpeg, cover in cut_tiles(ref_img, ref_geo, TILE_ZOOM):
        rel = Path("tiles") / str(TILE_ZOOM) / str(x) / f"{y}.jpg"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(jpeg)
        lat, lon = tile_center(TILE_ZOOM, x, y)
        tiles.append({"z": TILE_ZOOM, "x": x, "y": y, "lat": round(lat, 7), "lon": round(lon, 7),
                      "source": "naip", "year": REFERENCE_YEAR, "file": str(rel),
                      "coverage": round(cover, 4), "bytes": len(jpeg), "sha256": sha256(jpeg)})
    manifest["tiles"] = tiles
    log(f"{len(tiles)} reference tiles at z{TILE_ZOOM}")

    truth = truth_csv(track)
    (out / "truth.csv").write_bytes(truth)
    manifest["truth"] = {"file": "truth.csv", "rate_hz": TRUTH_HZ, "columns": list(TRUTH_COLUMNS),
                         "rows": truth.count(b"\n") - 1, "sha256": sha256(truth),
                         "clock": "t_ns is the bag's clock (header stamps, ns since the epoch)",
                         "yaw": "NED: 0 = north, clockwise, degrees"}

    store = project_typestore(ROOT / "msg")
    renderer = FrameRenderer(cam_img, cam_geo)
    rng = np.random.default_rng(SEED + 2)
    bag_dir = out / "bag"
    frame_step = round(1.0 / CAMERA_HZ / DT_S)
    info_step = round(1.0 / CAMERA_INFO_HZ / DT_S)
    off_clip = []
    jpeg_bytes = 0
    counts = {"/camera/image_raw/compressed": 0, "/camera/camera_info": 0}
    with Writer(bag_dir, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        writer.set_custom_data("gps_denied_onboard.sample_flight", FLIGHT_ID)
        images = writer.add_connection("/camera/image_raw/compressed",
                                       "sensor_msgs/msg/CompressedImage", typestore=store,
                                       offered_qos_profiles=[reliable_qos(10)])
        infos = writer.add_connection("/camera/camera_info", "sensor_msgs/msg/CameraInfo",
                                      typestore=store, offered_qos_profiles=[reliable_qos(10)])
        for i in range(0, track.t.size - 1, min(frame_step, info_step)):
            capture_ns = START_NS + i * int(DT_S * S)
            if i % info_step == 0:
                writer.write(infos, capture_ns, camera_info(store, capture_ns))
                counts["/camera/camera_info"] += 1
            if i % frame_step == 0:
                map_x, map_y, off = renderer.maps(track, i)
                jpeg = encode_jpeg(renderer.render((map_x, map_y), rng), FRAME_JPEG_QUALITY)
                jpeg_bytes += len(jpeg)
                off_clip.append(off)
                writer.write(images, capture_ns + FRAME_LATENCY_NS,
                             compressed_image(store, capture_ns, jpeg))
                counts["/camera/image_raw/compressed"] += 1
    manifest["bag"] = {
        "dir": "bag", "storage": "mcap", "topics": counts,
        "files": {p.name: sha256(p.read_bytes()) for p in sorted(bag_dir.iterdir())},
    }
    off = np.array(off_clip)
    tan_h = (IMAGE_W / 2) / CAMERA.matrix[0, 0]
    manifest["camera"] = {
        "topic": "/camera/image_raw/compressed", "info_topic": "/camera/camera_info",
        "frame_id": CAMERA_FRAME_ID, "rate_hz": CAMERA_HZ, "info_rate_hz": CAMERA_INFO_HZ,
        "width": IMAGE_W, "height": IMAGE_H, "k": list(CAMERA.k),
        "distortion_model": CAMERA.distortion_model, "d": list(CAMERA.d),
        "hfov_deg": round(math.degrees(2 * math.atan(tan_h)), 2),
        "mount_rpy_deg": list(MOUNT_RPY_DEG),
        "mount": "nadir, image top towards the nose (visual_nav.camera default)",
        "jpeg_quality": FRAME_JPEG_QUALITY, "year": CAMERA_YEAR,
        "stamp": "header.stamp = capture time; bag time = capture + 25 ms",
        "frames_with_pixels_off_the_clip": int(np.count_nonzero(off > 0)),
        "max_fraction_off_the_clip": round(float(off.max()), 4),
        "jpeg_bytes": jpeg_bytes,
    }
    log(f"{counts['/camera/image_raw/compressed']} frames, {jpeg_bytes / 1e6:.1f} MB of JPEG, "
        f"{int(np.count_nonzero(off > 0))} frames partly off the clip (max {off.max():.3f})")

    frames = fc_stream(track, center)
    write_tlog(out / "fc_stream.tlog", frames)
    manifest["fc_stream"] = {
        "file": "fc_stream.tlog", "frames": len(frames), "autopilot": "ardupilot",
        "vehicle": "plane", "system_id": 1, "component_id": 1,
        "rates_hz": {"ATTITUDE": ATTITUDE_HZ, "GLOBAL_POSITION_INT": POSITION_HZ,
                     "VFR_HUD": VFR_HZ, "GPS_RAW_INT": GPS_HZ, "EKF_STATUS_REPORT": 2,
                     "HEARTBEAT": 1, "SYS_STATUS": 1, "HOME_POSITION": 0.2},
        "attitude_error": {"rms_deg": FC_ATTITUDE_ERROR_RMS_DEG,
                           "tau_s": FC_ATTITUDE_ERROR_TAU_S,
                           "what": "ATTITUDE minus the truth (truth.csv): an EKF's slowly "
                                   "wandering error; the camera saw the true attitude"},
        "sha256": sha256((out / "fc_stream.tlog").read_bytes()),
    }
    manifest["bytes_without_manifest"] = sum(
        p.stat().st_size for p in out.rglob("*") if p.is_file())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--naip", type=Path, default=ROOT.parent / "shared" / "data" / "naip")
    p.add_argument("--out", type=Path, default=ROOT / "sample_flight")
    args = p.parse_args(argv)
    manifest = build(args.naip, args.out)
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{args.out}: {len(manifest['tiles'])} tiles, {manifest['bag']['topics']}, "
          f"{manifest['fc_stream']['frames']} MAVLink frames, {manifest['truth']['rows']} truth "
          f"rows, {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
