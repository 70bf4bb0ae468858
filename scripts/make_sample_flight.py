#!/usr/bin/env python3
"""Generate sample_flight/: a short synthetic flight over real NAIP imagery.

Deterministic: fixed seeds, fixed start time, fixed JPEG settings; running it
twice gives the same files (byte-identical with the same OpenCV, rosbags and
pymavlink versions; the manifest's sha256 values say which bytes ship).

Output (a few MB)::

    sample_flight/
      manifest.json          everything below with sha256, the trajectory's key times
      tiles/<z>/<x>/<y>.jpg  reference tiles, web-mercator z/x/y (z16 area, z17 along the
                             track), cut from NAIP 2017
      bag/                   rosbag2 (MCAP): /nav/position_fix, /tile_cache/snapshots
      fc_stream.tlog         the flight controller's MAVLink stream (ArduPilot Copter)

The flight: ~100 s, a constant-speed ellipse around the clip's centre at
~120 m above ground; GNSS is lost at t = 40 s (GPS_RAW_INT fix lost, EKF
absolute-position flags cleared, a STATUSTEXT). Mid-flight tile snapshots
are cut from NAIP 2020 ("what the camera sees now") under the aircraft.
/clock is not stored: the replay tool makes it.

Usage: scripts/make_sample_flight.py [--naip DIR] [--out DIR]
Needs: numpy, opencv, rosbags, pymavlink (all in scripts/requirements.txt).
"""

from __future__ import annotations

import argparse
import contextlib
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the replay helpers from the source tree

from gps_denied_onboard.replay.geotiff import GeoRef, read_georef, wgs84_to_utm  # noqa: E402
from gps_denied_onboard.replay.tlog import TlogFrame, write_tlog  # noqa: E402
from gps_denied_onboard.replay.types import project_typestore  # noqa: E402

S = 1_000_000_000
START_NS = 1_778_580_000 * S  # 2026-05-12T10:00:00Z
DURATION_S = 100.0
GNSS_LOSS_S = 40.0
ZOOM = 16
SNAPSHOT_ZOOM = 17
JPEG_QUALITY = 85
SEED = 20260512
GROUND_MSL_M = 580.0
AGL_M = 120.0
SPEED_MPS = 16.0
RADII_M = (900.0, 500.0)  # east, north semi-axes of the ellipse
REFERENCE_YEAR = "2017"
CAMERA_YEAR = "2020"
FLIGHT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "gps_denied_onboard/sample_flight/1"))
FC_BOOT_NS = START_NS - 300 * S


# --- web mercator ---------------------------------------------------------------
def tile_xy(lat: float, lon: float, z: int) -> tuple[float, float]:
    """Fractional tile coordinates."""
    n = 2**z
    x = (lon + 180.0) / 360.0 * n
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return x, y


def tile_lonlat(x: float, y: float, z: int) -> tuple[float, float]:
    """(lat, lon) of fractional tile coordinates."""
    n = 2**z
    lon = x / n * 360.0 - 180.0
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))
    return lat, lon


def cut_tile(image: np.ndarray, geo: GeoRef, z: int, x: int, y: int) -> np.ndarray | None:
    """A 256x256 BGR tile resampled from the UTM raster (bilinear); None if not covered."""
    zone, north = geo.utm_zone
    # Exact projection on a 33x33 grid (every 8 px), bilinear in between: over
    # a few hundred metres the mercator->UTM map is affine to well under a pixel.
    knots = np.arange(0, 257, 8, dtype=np.float64)
    grid_c = np.empty((knots.size, knots.size))
    grid_r = np.empty((knots.size, knots.size))
    for i, ky in enumerate(knots):
        lat, _ = tile_lonlat(x, y + ky / 256.0, z)
        for j, kx in enumerate(knots):
            _, lon = tile_lonlat(x + kx / 256.0, y, z)
            e, nn = wgs84_to_utm(lat, lon, zone, north=north)
            grid_c[i, j], grid_r[i, j] = geo.pixel_of(e, nn)
    centers = np.arange(256) + 0.5
    pos = np.interp(centers, knots, np.arange(knots.size))
    i0 = np.minimum(pos.astype(int), knots.size - 2)
    w = pos - i0

    def upsample(grid: np.ndarray) -> np.ndarray:
        rows = grid[i0] * (1 - w)[:, None] + grid[i0 + 1] * w[:, None]
        return rows[:, i0] * (1 - w)[None, :] + rows[:, i0 + 1] * w[None, :]

    map_x = (upsample(grid_c) - 0.5).astype(np.float32)
    map_y = (upsample(grid_r) - 0.5).astype(np.float32)
    if (map_x.min() < 0 or map_y.min() < 0 or map_x.max() > geo.width - 1
            or map_y.max() > geo.height - 1):
        return None
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def encode_jpeg(tile: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", tile, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY,
                                          cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _quiet_opencv() -> None:
    """OpenCV's TIFF reader warns about every GeoTIFF tag; we read those ourselves."""
    with contextlib.suppress(AttributeError):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def load_naip(naip_dir: Path, year: str) -> tuple[Path, np.ndarray, GeoRef]:
    (path,) = sorted(naip_dir.glob(f"*_{year}*.tif"))
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    # 4 bands R,G,B,NIR; OpenCV hands 4-channel TIFFs over as B,G,R,A: keep B,G,R.
    return path, np.ascontiguousarray(image[:, :, :3]), read_georef(path)


# --- trajectory -------------------------------------------------------------------
@dataclass(frozen=True)
class State:
    t: float
    lat: float
    lon: float
    alt_msl: float
    ve: float
    vn: float
    vu: float
    yaw_enu: float  # rad, 0 = east, CCW
    roll: float


def trajectory(center: tuple[float, float], t: float) -> State:
    """Ellipse at constant speed (approximately: constant angular rate)."""
    lat0, lon0 = center
    a, b = RADII_M
    perimeter = math.pi * (3 * (a + b) - math.sqrt((3 * a + b) * (a + 3 * b)))
    omega = 2 * math.pi * SPEED_MPS / perimeter
    th = omega * t
    east, north = a * math.cos(th), b * math.sin(th)
    ve, vn = -a * omega * math.sin(th), b * omega * math.cos(th)
    climb = min(t / 10.0, 1.0)
    alt = GROUND_MSL_M + AGL_M * (0.5 + 0.5 * climb)
    vu = AGL_M * 0.05 if t < 10.0 else 0.0
    m_per_deg_lat = 111_132.0
    m_per_deg_lon = 111_320.0 * math.cos(math.radians(lat0))
    lat = lat0 + north / m_per_deg_lat
    lon = lon0 + east / m_per_deg_lon
    speed = math.hypot(ve, vn)
    ax, ay = -a * omega**2 * math.cos(th), -b * omega**2 * math.sin(th)
    lateral = (ve * ay - vn * ax) / max(speed, 1e-6)
    roll = math.atan2(lateral, 9.81)
    return State(t, lat, lon, alt, ve, vn, vu, math.atan2(vn, ve), roll)


# --- bag --------------------------------------------------------------------------
def _time(store: Any, ns: int) -> Any:
    return store.types["builtin_interfaces/msg/Time"](sec=ns // S, nanosec=ns % S)


def _header(store: Any, ns: int, frame: str) -> Any:
    return store.types["std_msgs/msg/Header"](stamp=_time(store, ns), frame_id=frame)


def position_fix(store: Any, st: State, capture_ns: int, rng: np.random.Generator,
                 reset_counter: int) -> bytes:
    t = store.types
    sigma = 3.0
    dn, de = rng.normal(0.0, sigma, 2)
    lat = st.lat + dn / 111_132.0
    lon = st.lon + de / (111_320.0 * math.cos(math.radians(st.lat)))
    cov = np.zeros(9)
    cov[0] = cov[4] = sigma**2
    cov[8] = 4.0**2
    vcov = np.zeros(9)
    vcov[0] = vcov[4] = vcov[8] = 0.3**2
    msg = t["gps_denied_onboard/msg/PositionFix"](
        header=_header(store, capture_ns, "map"),
        latitude=lat, longitude=lon, altitude_msl=st.alt_msl + float(rng.normal(0.0, 1.0)),
        velocity_enu=t["geometry_msgs/msg/Vector3"](
            x=st.ve + float(rng.normal(0, 0.2)), y=st.vn + float(rng.normal(0, 0.2)), z=st.vu),
        velocity_valid=True, position_covariance=cov, velocity_covariance=vcov,
        yaw_enu=st.yaw_enu, yaw_valid=True, yaw_variance=0.05**2,
        reset_counter=reset_counter, quality=int(70 + rng.integers(0, 25)))
    return bytes(store.serialize_cdr(msg, "gps_denied_onboard/msg/PositionFix"))


def tile_snapshot(store: Any, capture_ns: int, zxy: tuple[int, int, int], jpeg: bytes, *,
                  frame_id: str, quality: dict[str, Any]) -> bytes:
    z, x, y = zxy
    t = store.types
    lat, lon = tile_lonlat(x + 0.5, y + 0.5, z)
    image = t["sensor_msgs/msg/CompressedImage"](
        header=_header(store, capture_ns, "tile"), format="jpeg",
        data=np.frombuffer(jpeg, dtype=np.uint8))
    msg = t["gps_denied_onboard/msg/TileSnapshot"](
        header=_header(store, capture_ns, "tile"), zoom=z, x=x, y=y, flight_id=FLIGHT_ID,
        frame_id=frame_id, latitude=lat, longitude=lon,
        quality_json=json.dumps(quality, sort_keys=True), image=image)
    return bytes(store.serialize_cdr(msg, "gps_denied_onboard/msg/TileSnapshot"))


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
def fc_stream(center: tuple[float, float]) -> list[TlogFrame]:
    """ArduCopter telemetry of the flight, as it would reach the companion computer."""
    from pymavlink.dialects.v20 import ardupilotmega as mavlink2

    class _Sink:
        def write(self, _data: bytes) -> None:
            pass

    mav = mavlink2.MAVLink(_Sink(), srcSystem=1, srcComponent=1)
    rng = np.random.default_rng(SEED + 1)
    frames: list[TlogFrame] = []

    def emit(ns: int, msg: Any) -> None:
        frames.append(TlogFrame(ns, bytes(msg.pack(mav))))

    armed = mavlink2.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | mavlink2.MAV_MODE_FLAG_SAFETY_ARMED \
        | mavlink2.MAV_MODE_FLAG_STABILIZE_ENABLED | mavlink2.MAV_MODE_FLAG_GUIDED_ENABLED
    copter_auto = 3
    loss_ns = START_NS + int(GNSS_LOSS_S * S)
    ok_flags = (mavlink2.EKF_ATTITUDE | mavlink2.EKF_VELOCITY_HORIZ | mavlink2.EKF_VELOCITY_VERT
                | mavlink2.EKF_POS_HORIZ_REL | mavlink2.EKF_POS_HORIZ_ABS
                | mavlink2.EKF_POS_VERT_ABS | mavlink2.EKF_PRED_POS_HORIZ_REL
                | mavlink2.EKF_PRED_POS_HORIZ_ABS)
    lost_flags = ok_flags & ~(mavlink2.EKF_POS_HORIZ_ABS | mavlink2.EKF_PRED_POS_HORIZ_ABS)
    step_ms = 20  # 50 Hz base tick; messages at divisors of it
    battery_mv = 16_400.0
    for k in range(int(DURATION_S * 1000 / step_ms) + 1):
        ms = k * step_ms
        ns = START_NS + ms * 1_000_000 + 1_000_000  # 1 ms link latency
        st = trajectory(center, ms / 1000.0)
        boot_ms = (ns - FC_BOOT_NS) // 1_000_000
        lost = ns >= loss_ns
        yaw_ned = math.pi / 2 - st.yaw_enu
        hdg = (math.degrees(yaw_ned) + 360.0) % 360.0
        if ms % 1000 == 0:
            emit(ns, mav.heartbeat_encode(mavlink2.MAV_TYPE_QUADROTOR,
                                          mavlink2.MAV_AUTOPILOT_ARDUPILOTMEGA, armed,
                                          copter_auto, mavlink2.MAV_STATE_ACTIVE))
            battery_mv -= 4.0
            emit(ns, mav.sys_status_encode(0x3FFFFF, 0x3FFFFF, 0x3FFFFF, 300,
                                           int(battery_mv), 1850, int(92 - ms / 5000), 0, 0,
                                           0, 0, 0, 0))
        if ms % 100 == 0:
            emit(ns, mav.attitude_encode(boot_ms, st.roll, 0.02 * math.sin(ms / 700.0),
                                         math.atan2(math.sin(yaw_ned), math.cos(yaw_ned)),
                                         0.0, 0.0, 0.0))
            emit(ns, mav.global_position_int_encode(
                boot_ms, round(st.lat * 1e7), round(st.lon * 1e7),
                round(st.alt_msl * 1000), round((st.alt_msl - GROUND_MSL_M) * 1000),
                round(st.vn * 100), round(st.ve * 100), round(-st.vu * 100),
                round(hdg * 100) % 36000))
        if ms % 200 == 0:
            if lost:
                emit(ns, mav.gps_raw_int_encode(
                    (ns // 1000), mavlink2.GPS_FIX_TYPE_NO_FIX, 0, 0, 0, 65535, 65535, 65535,
                    65535, 0))
            else:
                nlat = st.lat + float(rng.normal(0, 1.0)) / 111_132.0
                nlon = st.lon + float(rng.normal(0, 1.0)) / 75_900.0
                emit(ns, mav.gps_raw_int_encode(
                    (ns // 1000), mavlink2.GPS_FIX_TYPE_3D_FIX, round(nlat * 1e7),
                    round(nlon * 1e7), round(st.alt_msl * 1000), 80, 120,
                    round(math.hypot(st.ve, st.vn) * 100), round(hdg * 100) % 36000,
                    int(14 + rng.integers(0, 3))))
        if ms % 250 == 0:
            emit(ns, mav.vfr_hud_encode(math.hypot(st.ve, st.vn), math.hypot(st.ve, st.vn),
                                        int(hdg), 48, st.alt_msl, st.vu))
        if ms % 500 == 0:
            flags = lost_flags if lost else ok_flags
            pos_var = 0.9 if lost else 0.1
            emit(ns, mav.ekf_status_report_encode(flags, 0.1, pos_var, 0.1, 0.1, 0.0))
        if ns - 1_000_000 <= loss_ns < ns - 1_000_000 + step_ms * 1_000_000:
            emit(ns, mav.statustext_encode(mavlink2.MAV_SEVERITY_WARNING,
                                           b"GPS 1: lost fix"))
    return frames


# --- main -------------------------------------------------------------------------
def build(naip_dir: Path, out: Path) -> dict[str, Any]:
    from rosbags.rosbag2 import StoragePlugin, Writer

    _quiet_opencv()
    ref_path, ref_img, ref_geo = load_naip(naip_dir, REFERENCE_YEAR)
    cam_path, cam_img, cam_geo = load_naip(naip_dir, CAMERA_YEAR)
    corners = ref_geo.corners_wgs84()
    center = (sum(c[0] for c in corners) / 4, sum(c[1] for c in corners) / 4)

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    manifest: dict[str, Any] = {
        "generator": "scripts/make_sample_flight.py",
        "flight_id": FLIGHT_ID,
        "start_ns": START_NS,
        "duration_s": DURATION_S,
        "gnss_loss_ns": START_NS + int(GNSS_LOSS_S * S),
        "center": {"lat": center[0], "lon": center[1]},
        "naip": {
            "reference": {"file": ref_path.name, "sha256": sha256(ref_path.read_bytes()),
                          "year": REFERENCE_YEAR},
            "camera": {"file": cam_path.name, "sha256": sha256(cam_path.read_bytes()),
                       "year": CAMERA_YEAR},
            "crs": f"EPSG:{ref_geo.epsg}",
        },
    }

    # Reference tiles: every z16 tile in the flight's bounding box grown by one
    # tile that NAIP covers completely.
    track = [trajectory(center, t) for t in np.arange(0.0, DURATION_S + 0.01, 1.0)]
    fxy = [tile_xy(st.lat, st.lon, ZOOM) for st in track]
    xs = range(int(min(f[0] for f in fxy)) - 1, int(max(f[0] for f in fxy)) + 2)
    ys = range(int(min(f[1] for f in fxy)) - 1, int(max(f[1] for f in fxy)) + 2)
    wanted = {(ZOOM, x, y) for x in xs for y in ys}
    # ... and every z17 tile the ground track passes over (the snapshots' zoom).
    for st in track:
        fx, fy = tile_xy(st.lat, st.lon, SNAPSHOT_ZOOM)
        wanted.add((SNAPSHOT_ZOOM, int(fx), int(fy)))
    tiles = []
    for z, x, y in sorted(wanted):
        tile = cut_tile(ref_img, ref_geo, z, x, y)
        if tile is None:
            continue
        jpeg = encode_jpeg(tile)
        rel = Path("tiles") / str(z) / str(x) / f"{y}.jpg"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(jpeg)
        lat, lon = tile_lonlat(x + 0.5, y + 0.5, z)
        tiles.append({"z": z, "x": x, "y": y, "lat": round(lat, 7), "lon": round(lon, 7),
                      "source": "naip", "year": REFERENCE_YEAR, "file": str(rel),
                      "bytes": len(jpeg), "sha256": sha256(jpeg)})
    manifest["tiles"] = tiles

    # The bag.
    store = project_typestore(ROOT / "msg")
    rng = np.random.default_rng(SEED)
    bag_dir = out / "bag"
    snapshots = []
    counts = {"/nav/position_fix": 0, "/tile_cache/snapshots": 0}
    with Writer(bag_dir, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        writer.set_custom_data("gps_denied_onboard.sample_flight", FLIGHT_ID)
        fixes = writer.add_connection("/nav/position_fix", "gps_denied_onboard/msg/PositionFix",
                                      typestore=store, offered_qos_profiles=[reliable_qos(10)])
        snaps = writer.add_connection("/tile_cache/snapshots",
                                      "gps_denied_onboard/msg/TileSnapshot", typestore=store,
                                      offered_qos_profiles=[reliable_qos(10)])
        events: list[tuple[int, int, Any, bytes]] = []
        for k in range(int(DURATION_S * 5)):  # 5 Hz fixes
            capture_ns = START_NS + k * 200_000_000
            st = trajectory(center, k * 0.2)
            data = position_fix(store, st, capture_ns, rng, reset_counter=0)
            events.append((capture_ns + 60_000_000, 0, fixes, data))  # 60 ms processing
        for i, t in enumerate(np.arange(20.0, DURATION_S - 5.0, 8.0)):
            capture_ns = START_NS + int(t * S)
            st = trajectory(center, float(t))
            fx, fy = tile_xy(st.lat, st.lon, SNAPSHOT_ZOOM)
            x, y = int(fx), int(fy)
            tile = cut_tile(cam_img, cam_geo, SNAPSHOT_ZOOM, x, y)
            if tile is None:
                continue
            jpeg = encode_jpeg(tile)
            quality = {"gsd_m": 1.2, "sharpness": round(0.6 + 0.03 * (i % 5), 3),
                       "cloud_fraction": 0.0, "source_year": CAMERA_YEAR}
            data = tile_snapshot(store, capture_ns, (SNAPSHOT_ZOOM, x, y), jpeg,
                                 frame_id=f"cam0/{i:04d}", quality=quality)
            events.append((capture_ns + 400_000_000, 1, snaps, data))
            lat, lon = tile_lonlat(x + 0.5, y + 0.5, SNAPSHOT_ZOOM)
            snapshots.append({"z": SNAPSHOT_ZOOM, "x": x, "y": y, "lat": round(lat, 7),
                              "lon": round(lon, 7), "capture_ns": capture_ns,
                              "year": CAMERA_YEAR, "sha256": sha256(jpeg)})
        events.sort(key=lambda e: (e[0], e[1]))
        for stamp, _order, conn, data in events:
            writer.write(conn, stamp, data)
            counts[conn.topic] += 1
    manifest["snapshots"] = snapshots
    manifest["bag"] = {
        "dir": "bag", "storage": "mcap", "topics": counts,
        "files": {p.name: sha256(p.read_bytes()) for p in sorted(bag_dir.iterdir())},
    }

    frames = fc_stream(center)
    write_tlog(out / "fc_stream.tlog", frames)
    manifest["fc_stream"] = {
        "file": "fc_stream.tlog", "frames": len(frames), "autopilot": "ardupilot",
        "system_id": 1, "component_id": 1,
        "sha256": sha256((out / "fc_stream.tlog").read_bytes()),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--naip", type=Path, default=ROOT.parent / "shared" / "data" / "naip")
    p.add_argument("--out", type=Path, default=ROOT / "sample_flight")
    args = p.parse_args(argv)
    manifest = build(args.naip, args.out)
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{args.out}: {len(manifest['tiles'])} tiles, {len(manifest['snapshots'])} snapshots, "
          f"{manifest['bag']['topics']}, {manifest['fc_stream']['frames']} MAVLink frames, "
          f"{total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
