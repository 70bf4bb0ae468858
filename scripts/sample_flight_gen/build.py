"""Writes sample_flight/: tiles, truth, bag, FC stream, and the manifest that lists them."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from gps_denied_onboard.replay.tlog import write_tlog
from gps_denied_onboard.replay.types import project_typestore
from sample_flight_gen.bag import camera_info, compressed_image, reliable_qos
from sample_flight_gen.common import encode_jpeg, load_naip, sha256
from sample_flight_gen.frames import FrameRenderer
from sample_flight_gen.mavlink import fc_stream
from sample_flight_gen.spec import (
    ATTITUDE_HZ,
    CAMERA,
    CAMERA_FRAME_ID,
    CAMERA_HZ,
    CAMERA_INFO_HZ,
    CAMERA_YEAR,
    DR_VELOCITY_ERROR,
    DT_S,
    DURATION_S,
    FC_ATTITUDE_ERROR_RMS_DEG,
    FC_ATTITUDE_ERROR_TAU_S,
    FC_BOOT_NS,
    FLIGHT_ID,
    FRAME_JPEG_QUALITY,
    FRAME_LATENCY_NS,
    GNSS_LOSS_S,
    GPS_HZ,
    GROUND_MSL_M,
    IMAGE_H,
    IMAGE_W,
    MOUNT_RPY_DEG,
    POSITION_HZ,
    REFERENCE_YEAR,
    ROOT,
    SEED,
    START_NS,
    TILE_ZOOM,
    TRUTH_HZ,
    VFR_HZ,
    S,
)
from sample_flight_gen.tiles import cut_tiles, tile_center
from sample_flight_gen.trajectory import trajectory
from sample_flight_gen.truth import TRUTH_COLUMNS, truth_csv


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
        "home": {"lat": float(track.lat[0]), "lon": float(track.lon[0]), "alt_msl": GROUND_MSL_M},
        "legs": track.legs,
        "fc_dead_reckoning_error_mps": {
            "east": DR_VELOCITY_ERROR[0],
            "north": DR_VELOCITY_ERROR[1],
        },
        "naip": {
            "reference": {
                "file": ref_path.name,
                "sha256": sha256(ref_path.read_bytes()),
                "year": REFERENCE_YEAR,
            },
            "camera": {
                "file": cam_path.name,
                "sha256": sha256(cam_path.read_bytes()),
                "year": CAMERA_YEAR,
            },
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
        tiles.append(
            {
                "z": TILE_ZOOM,
                "x": x,
                "y": y,
                "lat": round(lat, 7),
                "lon": round(lon, 7),
                "source": "naip",
                "year": REFERENCE_YEAR,
                "file": str(rel),
                "coverage": round(cover, 4),
                "bytes": len(jpeg),
                "sha256": sha256(jpeg),
            }
        )
    manifest["tiles"] = tiles
    log(f"{len(tiles)} reference tiles at z{TILE_ZOOM}")

    truth = truth_csv(track)
    (out / "truth.csv").write_bytes(truth)
    manifest["truth"] = {
        "file": "truth.csv",
        "rate_hz": TRUTH_HZ,
        "columns": list(TRUTH_COLUMNS),
        "rows": truth.count(b"\n") - 1,
        "sha256": sha256(truth),
        "clock": "t_ns is the bag's clock (header stamps, ns since the epoch)",
        "yaw": "NED: 0 = north, clockwise, degrees",
    }

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
        images = writer.add_connection(
            "/camera/image_raw/compressed",
            "sensor_msgs/msg/CompressedImage",
            typestore=store,
            offered_qos_profiles=[reliable_qos(10)],
        )
        infos = writer.add_connection(
            "/camera/camera_info",
            "sensor_msgs/msg/CameraInfo",
            typestore=store,
            offered_qos_profiles=[reliable_qos(10)],
        )
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
                writer.write(
                    images, capture_ns + FRAME_LATENCY_NS, compressed_image(store, capture_ns, jpeg)
                )
                counts["/camera/image_raw/compressed"] += 1
    manifest["bag"] = {
        "dir": "bag",
        "storage": "mcap",
        "topics": counts,
        "files": {p.name: sha256(p.read_bytes()) for p in sorted(bag_dir.iterdir())},
    }
    off = np.array(off_clip)
    tan_h = (IMAGE_W / 2) / CAMERA.matrix[0, 0]
    manifest["camera"] = {
        "topic": "/camera/image_raw/compressed",
        "info_topic": "/camera/camera_info",
        "frame_id": CAMERA_FRAME_ID,
        "rate_hz": CAMERA_HZ,
        "info_rate_hz": CAMERA_INFO_HZ,
        "width": IMAGE_W,
        "height": IMAGE_H,
        "k": list(CAMERA.k),
        "distortion_model": CAMERA.distortion_model,
        "d": list(CAMERA.d),
        "hfov_deg": round(math.degrees(2 * math.atan(tan_h)), 2),
        "mount_rpy_deg": list(MOUNT_RPY_DEG),
        "mount": "nadir, image top towards the nose (visual_nav.camera default)",
        "jpeg_quality": FRAME_JPEG_QUALITY,
        "year": CAMERA_YEAR,
        "stamp": "header.stamp = capture time; bag time = capture + 25 ms",
        "frames_with_pixels_off_the_clip": int(np.count_nonzero(off > 0)),
        "max_fraction_off_the_clip": round(float(off.max()), 4),
        "jpeg_bytes": jpeg_bytes,
    }
    log(
        f"{counts['/camera/image_raw/compressed']} frames, {jpeg_bytes / 1e6:.1f} MB of JPEG, "
        f"{int(np.count_nonzero(off > 0))} frames partly off the clip (max {off.max():.3f})"
    )

    frames = fc_stream(track, center)
    write_tlog(out / "fc_stream.tlog", frames)
    manifest["fc_stream"] = {
        "file": "fc_stream.tlog",
        "frames": len(frames),
        "autopilot": "ardupilot",
        "vehicle": "plane",
        "system_id": 1,
        "component_id": 1,
        "rates_hz": {
            "ATTITUDE": ATTITUDE_HZ,
            "GLOBAL_POSITION_INT": POSITION_HZ,
            "VFR_HUD": VFR_HZ,
            "GPS_RAW_INT": GPS_HZ,
            "EKF_STATUS_REPORT": 2,
            "HEARTBEAT": 1,
            "SYS_STATUS": 1,
            "HOME_POSITION": 0.2,
        },
        "attitude_error": {
            "rms_deg": FC_ATTITUDE_ERROR_RMS_DEG,
            "tau_s": FC_ATTITUDE_ERROR_TAU_S,
            "what": "ATTITUDE minus the truth (truth.csv): an EKF's slowly "
            "wandering error; the camera saw the true attitude",
        },
        "sha256": sha256((out / "fc_stream.tlog").read_bytes()),
    }
    manifest["bytes_without_manifest"] = sum(
        p.stat().st_size for p in out.rglob("*") if p.is_file()
    )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest
