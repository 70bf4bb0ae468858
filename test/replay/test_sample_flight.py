"""The committed sample flight: complete, georeferenced, self-consistent and reproducible.

``GDO_SAMPLE_FLIGHT=DIR`` points these tests at another generated sample (a
scratch output of scripts/make_sample_flight.py) instead of sample_flight/.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gps_denied_onboard.replay.accuracy import Truth
from gps_denied_onboard.replay.bag import open_bag
from gps_denied_onboard.replay.geotiff import GeoRef, read_georef, read_geotiff
from gps_denied_onboard.replay.tlog import read_tlog
from gps_denied_onboard.replay.types import project_typestore
from gps_denied_onboard.tile_cache.geo import tile_bbox
from gps_denied_onboard.visual_nav.camera import (
    CameraModel,
    enu_from_flu_of_ned_euler,
    mount_rotation,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = Path(os.environ.get("GDO_SAMPLE_FLIGHT", REPO / "sample_flight"))
NAIP = REPO.parent / "shared" / "data" / "naip"
LON = (-99.1856, -99.1240)
LAT = (47.0040, 47.0367)
TOL = 2e-4  # degrees
S = 1_000_000_000
IMAGES = "/camera/image_raw/compressed"
INFO = "/camera/camera_info"

Manifest = dict[str, Any]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _need_naip() -> None:
    if not NAIP.is_dir():
        pytest.skip(f"NAIP clips not present at {NAIP}")


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return json.loads((SAMPLE / "manifest.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def truth(manifest: Manifest) -> Truth:
    return Truth.load(SAMPLE / manifest["truth"]["file"])


def _messages(topic: str) -> list[tuple[int, Any]]:
    source = open_bag(SAMPLE / "bag")
    store = project_typestore()
    out = []
    try:
        for msg in source.messages():
            if msg.topic == topic:
                out.append((msg.timestamp_ns,
                            store.deserialize_cdr(msg.data, source.topics[topic].msgtype)))
    finally:
        source.close()
    return out


def _stamp(msg: Any) -> int:
    return int(msg.header.stamp.sec) * S + int(msg.header.stamp.nanosec)


def test_manifest_hashes_match_the_files(manifest: Manifest) -> None:
    listed = {SAMPLE / "manifest.json"}
    assert len(manifest["tiles"]) >= 24
    for tile in manifest["tiles"]:
        assert _sha(SAMPLE / tile["file"]) == tile["sha256"], tile["file"]
        assert tile["file"] == f"tiles/{tile['z']}/{tile['x']}/{tile['y']}.jpg"
        listed.add(SAMPLE / tile["file"])
    for name, digest in manifest["bag"]["files"].items():
        assert _sha(SAMPLE / "bag" / name) == digest
        listed.add(SAMPLE / "bag" / name)
    for key in ("fc_stream", "truth"):
        assert _sha(SAMPLE / manifest[key]["file"]) == manifest[key]["sha256"]
        listed.add(SAMPLE / manifest[key]["file"])
    on_disk = {p for p in SAMPLE.rglob("*") if p.is_file()}
    assert on_disk == listed, "files the manifest does not vouch for"
    total = sum(p.stat().st_size for p in on_disk)
    assert total - (SAMPLE / "manifest.json").stat().st_size == manifest["bytes_without_manifest"]
    assert total < 25_000_000


def test_tiles_are_z15_over_the_naip_clip(manifest: Manifest) -> None:
    import cv2

    for tile in manifest["tiles"]:
        assert tile["z"] == 15
        box = tile_bbox(tile["z"], tile["x"], tile["y"])
        # Overlaps the clip, and the clip is covered: every tile touching it is there.
        assert box.min_longitude < LON[1] and box.max_longitude > LON[0]
        assert box.min_latitude < LAT[1] and box.max_latitude > LAT[0]
        assert 0.0 < tile["coverage"] <= 1.0
    xs = {t["x"] for t in manifest["tiles"]}
    ys = {t["y"] for t in manifest["tiles"]}
    assert len(manifest["tiles"]) == len(xs) * len(ys)
    assert tile_bbox(15, min(xs), min(ys)).min_longitude <= LON[0]
    assert tile_bbox(15, max(xs), max(ys)).max_longitude >= LON[1]
    assert tile_bbox(15, max(xs), max(ys)).min_latitude <= LAT[0]
    assert tile_bbox(15, min(xs), min(ys)).max_latitude >= LAT[1]
    assert sum(t["coverage"] == 1.0 for t in manifest["tiles"]) >= 12
    image = cv2.imread(str(SAMPLE / manifest["tiles"][0]["file"]))
    assert image.shape == (256, 256, 3)


def test_tiles_sit_where_the_slippy_map_arithmetic_puts_them(manifest: Manifest) -> None:
    """A tile's pixels are the reference NAIP year at the places tile_cache.geo computes."""
    import cv2

    from gps_denied_onboard.tile_cache.geo import tile_x_to_lon, tile_y_to_lat

    _need_naip()
    image, geo = read_geotiff(next(NAIP.glob(f"*_{manifest['naip']['reference']['year']}*.tif")))
    naip = cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), cv2.COLOR_RGB2GRAY)
    full = [t for t in manifest["tiles"] if t["coverage"] == 1.0]
    for tile in (full[0], full[len(full) // 2], full[-1]):
        z, tx, ty = tile["z"], tile["x"], tile["y"]
        jpeg = cv2.imread(str(SAMPLE / tile["file"]), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        px = np.arange(256) + 0.5
        lons = np.array([tile_x_to_lon(tx + p / 256, z) for p in px])
        lats = np.array([tile_y_to_lat(ty + p / 256, z) for p in px])
        lon_g, lat_g = np.meshgrid(lons, lats)

        def agreement(shift_px: float, jpeg: Any = jpeg, lon_g: Any = lon_g,
                      lat_g: Any = lat_g) -> float:
            col, row = geo.pixel_of(*geo.from_wgs84(lat_g, lon_g))
            ref = cv2.remap(naip, (col - 0.5 + shift_px).astype(np.float32),
                            (row - 0.5).astype(np.float32), cv2.INTER_LINEAR)
            return float(np.corrcoef(ref.ravel(), jpeg.ravel())[0, 1])

        right, off = agreement(0.0), agreement(1.0)  # 1 NAIP pixel = 5 m
        assert right > 0.99, (tile["file"], right)
        assert right - off > 0.015, (tile["file"], right, off)


def test_bag_holds_camera_frames_and_no_fixes(manifest: Manifest) -> None:
    import cv2

    source = open_bag(SAMPLE / "bag")
    try:
        assert set(source.topics) == {IMAGES, INFO}
        assert source.topics[IMAGES].msgtype == "sensor_msgs/msg/CompressedImage"
        assert source.topics[INFO].msgtype == "sensor_msgs/msg/CameraInfo"
        for topic, count in manifest["bag"]["topics"].items():
            assert source.topics[topic].count == count
    finally:
        source.close()
    frames = _messages(IMAGES)
    stamps = [_stamp(m) for _, m in frames]
    assert stamps[0] == manifest["start_ns"]
    assert set(np.diff(stamps)) == {S // 2}  # 2 Hz, capture time
    assert (stamps[-1] - stamps[0]) / S >= 180
    assert all(log >= _stamp(m) for log, m in frames)
    for _, m in frames[:: len(frames) // 6]:
        assert m.format == "jpeg"
        assert m.header.frame_id == "camera_optical"
        img = cv2.imdecode(np.frombuffer(bytes(m.data), np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (480, 640, 3)
        assert 20 < float(img.mean()) < 235 and float(img.std()) > 5
    infos = _messages(INFO)
    assert _stamp(infos[0][1]) == manifest["start_ns"]
    assert infos[0][0] <= frames[0][0]  # CameraInfo before the first frame
    cam = manifest["camera"]
    for _, info in infos:
        assert info.distortion_model == "plumb_bob"
        assert list(info.d) == cam["d"] and any(v != 0 for v in info.d)
        assert list(info.k) == cam["k"]
        assert (info.width, info.height) == (640, 480)
    assert cam["hfov_deg"] == pytest.approx(90.0, abs=0.5)


def test_truth_is_a_fixed_wing_survey(manifest: Manifest, truth: Truth) -> None:
    t = (truth.t_ns - truth.t_ns[0]) / 1e9
    assert truth.start_ns == manifest["start_ns"]
    assert t[-1] >= 180 and float(np.median(np.diff(t))) <= 0.1  # >= 10 Hz
    c = truth.columns
    roll = c["roll_deg"]
    assert 15 <= float(np.max(np.abs(roll))) <= 25  # banked turns
    assert float(np.mean(np.abs(roll) > 15)) > 0.1
    speed = np.hypot(c["vel_east"], c["vel_north"])
    assert float(speed.min()) > 15  # fixed wing: never hovers
    agl = c["agl_m"]
    assert float(np.mean(np.abs(agl - 500) < 5)) > 0.3  # cruise at 500 m
    assert float(np.mean(np.abs(agl - 200) < 5)) > 0.15  # the low stretch at 200 m
    # Vibration: attitude noise a few tenths of a degree, at several Hz.
    straight = np.abs(roll) < 3
    assert 0.15 < float(np.std(roll[straight])) < 1.0
    assert 0.1 < float(np.std(np.diff(roll)[straight[1:]])) / 0.04 < 50  # deg/s
    # GNSS is lost partway.
    assert truth.start_ns + 30 * S < manifest["gnss_loss_ns"] < truth.end_ns - 60 * S


def test_track_stays_inside_the_clip(manifest: Manifest, truth: Truth) -> None:
    _need_naip()
    geo = read_georef(next(NAIP.glob(f"*_{manifest['naip']['reference']['year']}*.tif")))
    x, y = geo.from_wgs84(truth.columns["lat"], truth.columns["lon"])
    col, row = geo.pixel_of(x, y)
    margin_m = np.minimum.reduce([col, geo.width - col, row, geo.height - row]) * geo.scale_x
    cruise = truth.columns["agl_m"] > 450
    assert float(margin_m[cruise].min()) >= 700
    assert manifest["camera"]["max_fraction_off_the_clip"] == 0.0  # every frame sees NAIP


def test_fc_stream_carries_an_ekf_attitude_the_true_altitude_and_gnss(
        manifest: Manifest, truth: Truth) -> None:
    from pymavlink import mavutil

    frames = list(read_tlog(SAMPLE / "fc_stream.tlog"))
    assert len(frames) == manifest["fc_stream"]["frames"]
    assert [f.time_ns for f in frames] == sorted(f.time_ns for f in frames)
    conn = mavutil.mavlink_connection(str(SAMPLE / "fc_stream.tlog"), dialect="ardupilotmega")
    seen: dict[str, int] = {}
    gps: list[tuple[int, Any]] = []
    att_err: dict[str, list[float]] = {"roll": [], "pitch": [], "yaw": []}
    alt_err: list[float] = []
    boot = manifest["fc_boot_ns"]
    loss = manifest["gnss_loss_ns"]
    while (msg := conn.recv_match()) is not None:
        kind = msg.get_type()
        seen[kind] = seen.get(kind, 0) + 1
        if kind == "HEARTBEAT":
            assert msg.autopilot == mavutil.mavlink.MAV_AUTOPILOT_ARDUPILOTMEGA
            assert msg.type == mavutil.mavlink.MAV_TYPE_FIXED_WING
            assert msg.base_mode & mavutil.mavlink.MAV_MODE_FLAG_SAFETY_ARMED
        elif kind == "ATTITUDE":
            ts = boot + msg.time_boot_ms * 1_000_000
            if truth.covers(ts):
                s = truth.at(ts)
                att_err["roll"].append(math.degrees(msg.roll) - s.roll_deg)
                att_err["pitch"].append(math.degrees(msg.pitch) - s.pitch_deg)
                att_err["yaw"].append((math.degrees(msg.yaw) - s.yaw_deg + 180) % 360 - 180)
        elif kind == "GLOBAL_POSITION_INT":
            ts = boot + msg.time_boot_ms * 1_000_000
            if truth.covers(ts):
                s = truth.at(ts)
                alt_err += [abs(msg.relative_alt / 1000 - s.agl_m),
                            abs(msg.alt / 1000 - s.alt_msl)]
        elif kind == "GPS_RAW_INT":
            gps.append((msg.time_usec * 1000, msg))
    conn.close()
    for kind in ("HEARTBEAT", "GLOBAL_POSITION_INT", "GPS_RAW_INT", "ATTITUDE", "SYS_STATUS",
                 "EKF_STATUS_REPORT", "VFR_HUD", "STATUSTEXT"):
        assert seen.get(kind, 0) > 0, kind
    duration = manifest["duration_s"]
    assert seen["ATTITUDE"] == pytest.approx(25 * duration, abs=2)
    # the autopilot's estimate: the truth (vibration included) plus the manifest's EKF
    # error, which wanders slowly (25 Hz steps are small against its size)
    stated = manifest["fc_stream"]["attitude_error"]["rms_deg"]
    for axis, err in att_err.items():
        e = np.array(err)
        rms = float(np.sqrt(np.mean(e**2)))
        assert 0.8 * stated[axis] <= rms <= 1.2 * stated[axis], (axis, rms)
        step = float(np.abs(np.diff(e)).max())
        assert step < 0.3 * stated[axis], (axis, step)
    assert max(alt_err) < 0.01
    before = [m for t, m in gps if t < loss]
    after = [m for t, m in gps if t >= loss]
    assert all(m.fix_type == 3 for m in before) and len(before) > 100
    assert all(m.fix_type <= 1 for m in after) and len(after) > 10
    for t, m in gps[:: 20]:
        if t < loss:
            s = truth.at(t)
            dn = (m.lat / 1e7 - s.lat) * 111_132
            de = (m.lon / 1e7 - s.lon) * 111_320 * math.cos(math.radians(s.lat))
            assert math.hypot(de, dn) < 6  # GNSS noise of about 1 m


def _frame_agreement(frame: Any, cam: CameraModel, sample: Any, shift_e: float,
                     geo: GeoRef, naip: Any) -> float:
    """Correlation of a frame with NAIP pixels projected into it from the given pose.

    Forward projection (ground -> pixel, OpenCV's distortion), the inverse of
    what the generator did, so a wrong convention on either side shows.
    """
    import cv2
    from pyproj import CRS, Transformer

    aeqd = CRS.from_proj4(f"+proj=aeqd +lat_0={sample.lat} +lon_0={sample.lon} +ellps=WGS84")
    to_local = Transformer.from_crs(CRS.from_epsg(geo.epsg), aeqd, always_xy=True)
    col0, row0 = geo.pixel_of(*geo.from_wgs84(sample.lat, sample.lon))
    half = int(sample.agl_m / geo.scale_x)
    cols, rows = np.meshgrid(np.arange(int(col0) - half, int(col0) + half),
                             np.arange(int(row0) - half, int(row0) + half))
    inside = (cols >= 0) & (rows >= 0) & (cols < geo.width) & (rows < geo.height)
    cols, rows = cols[inside], rows[inside]
    x, y = geo.xy_of(cols + 0.5, rows + 0.5)
    e, n = to_local.transform(x, y)
    world = np.stack([np.asarray(e) - shift_e, np.asarray(n),
                      np.full(cols.size, -sample.agl_m)], axis=1)
    r_wc = enu_from_flu_of_ned_euler(math.radians(sample.roll_deg), math.radians(sample.pitch_deg),
                                     math.radians(sample.yaw_deg)) @ mount_rotation((0, 0, 0))
    pts = world @ r_wc  # camera frame: R_wc^T p, row-wise
    front = pts[:, 2] > 1
    uv = cam.project(pts[front])
    seen = (uv[:, 0] > 5) & (uv[:, 1] > 5) & (uv[:, 0] < 634) & (uv[:, 1] < 474)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)
    got = cv2.remap(gray, uv[seen, 0:1].astype(np.float32), uv[seen, 1:2].astype(np.float32),
                    cv2.INTER_LINEAR).ravel()
    ref = naip[rows[front][seen], cols[front][seen]].astype(np.float32)
    assert got.size > 2000
    return float(np.corrcoef(got, ref)[0, 1])


def test_frames_show_the_ground_under_the_true_pose(manifest: Manifest, truth: Truth) -> None:
    """Frames agree with truth + CameraInfo: the NAIP year they were made from, projected
    into the frame from the true pose, matches; from a pose 25 m off it does not."""
    import cv2

    _need_naip()
    year = manifest["camera"]["year"]
    image, geo = read_geotiff(next(NAIP.glob(f"*_{year}*.tif")))
    naip = cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), cv2.COLOR_RGB2GRAY)
    infos = _messages(INFO)
    info = infos[0][1]
    cam = CameraModel(int(info.width), int(info.height), tuple(float(v) for v in info.k),
                      info.distortion_model, tuple(float(v) for v in info.d))
    frames = _messages(IMAGES)
    # Level cruise, a banked turn, the low stretch: pick by the truth.
    picks: list[Any] = []
    for want in (lambda s: s.agl_m > 490 and abs(s.roll_deg) < 3,
                 lambda s: abs(s.roll_deg) > 15 and s.agl_m > 490,
                 lambda s: s.agl_m < 210 and abs(s.roll_deg) < 3):
        picks.append(next(m for _, m in frames if want(truth.at(_stamp(m)))))
    for m in picks:
        frame = cv2.imdecode(np.frombuffer(bytes(m.data), np.uint8), cv2.IMREAD_COLOR)
        s = truth.at(_stamp(m))
        right = _frame_agreement(frame, cam, s, 0.0, geo, naip)
        wrong = _frame_agreement(frame, cam, s, 25.0, geo, naip)
        assert right > 0.97, (s, right)  # 1 degree of roll or no distortion: < 0.96
        assert right - wrong > 0.1, (s, right, wrong)


def test_naip_georeference_matches_its_readme() -> None:
    _need_naip()
    for tif in sorted(NAIP.glob("*.tif")):
        corners = read_georef(tif).corners_wgs84()
        assert min(c[0] for c in corners) == pytest.approx(LAT[0], abs=TOL)
        assert max(c[0] for c in corners) == pytest.approx(LAT[1], abs=TOL)
        assert min(c[1] for c in corners) == pytest.approx(LON[0], abs=TOL)
        assert max(c[1] for c in corners) == pytest.approx(LON[1], abs=TOL)
    geo = read_georef(next(NAIP.glob("*.tif")))
    assert geo.epsg == 26914 and geo.scale_x == geo.scale_y == 5.0
    x, y = geo.from_wgs84(47.02, -99.15)
    lat, lon = geo.to_wgs84(x, y)
    assert (float(lat), float(lon)) == pytest.approx((47.02, -99.15), abs=1e-9)
    # UTM 14N: central meridian -99, so -99.15 lies ~11.4 km west of 500 km easting.
    assert float(x) == pytest.approx(500_000 - 11_400, abs=200)


def test_geotiff_refuses_a_plain_tiff(tmp_path: Path) -> None:
    import tifffile

    from gps_denied_onboard.replay.geotiff import GeoTiffError

    p = tmp_path / "plain.tif"
    tifffile.imwrite(p, np.zeros((8, 8), np.uint8))
    with pytest.raises(GeoTiffError, match="GeoTIFF"):
        read_georef(p)
    q = tmp_path / "junk.tif"
    q.write_bytes(b"not a tiff at all")
    with pytest.raises(GeoTiffError):
        read_geotiff(q)


@pytest.mark.slow
def test_generator_reproduces_the_committed_sample(tmp_path: Path, manifest: Manifest) -> None:
    _need_naip()
    out = tmp_path / "sample"
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_sample_flight.py"),
                    "--naip", str(NAIP), "--out", str(out)], check=True, capture_output=True)
    again = json.loads((out / "manifest.json").read_text())
    assert again == manifest  # every file's sha256 is in it
    for p in sorted(out.rglob("*")):
        if p.is_file():
            assert _sha(p) == _sha(SAMPLE / p.relative_to(out)), p.relative_to(out)
