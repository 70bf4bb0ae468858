"""The committed sample flight is complete, georeferenced and reproducible."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from gps_denied_onboard.replay.bag import open_bag
from gps_denied_onboard.replay.geotiff import read_georef, utm_to_wgs84, wgs84_to_utm
from gps_denied_onboard.replay.tlog import read_tlog
from gps_denied_onboard.replay.types import project_typestore

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_flight"
NAIP = REPO.parent / "shared" / "data" / "naip"
LON = (-99.1856, -99.1240)
LAT = (47.0040, 47.0367)
TOL = 2e-4  # degrees


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def manifest() -> dict:  # type: ignore[type-arg]
    return json.loads((SAMPLE / "manifest.json").read_text())


def test_manifest_hashes_match_the_files(manifest: dict) -> None:  # type: ignore[type-arg]
    assert len(manifest["tiles"]) >= 24
    for tile in manifest["tiles"]:
        assert _sha(SAMPLE / tile["file"]) == tile["sha256"], tile["file"]
        assert tile["file"] == f"tiles/{tile['z']}/{tile['x']}/{tile['y']}.jpg"
    for name, digest in manifest["bag"]["files"].items():
        assert _sha(SAMPLE / "bag" / name) == digest
    assert _sha(SAMPLE / manifest["fc_stream"]["file"]) == manifest["fc_stream"]["sha256"]
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total < 5_000_000


def test_tiles_are_georeferenced_inside_the_naip_clip(manifest: dict) -> None:  # type: ignore[type-arg]
    import cv2

    for tile in manifest["tiles"] + manifest["snapshots"]:
        z, x, y = tile["z"], tile["x"], tile["y"]
        n = 2**z
        for fx, fy in ((x, y), (x + 1, y + 1)):
            lon = fx / n * 360 - 180
            lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * fy / n))))
            assert LON[0] - TOL <= lon <= LON[1] + TOL
            assert LAT[0] - TOL <= lat <= LAT[1] + TOL
        assert 16 <= z <= 17
    image = cv2.imread(str(SAMPLE / manifest["tiles"][0]["file"]))
    assert image.shape == (256, 256, 3)


def test_bag_holds_fixes_and_snapshots_over_the_clip(manifest: dict) -> None:  # type: ignore[type-arg]
    source = open_bag(SAMPLE / "bag")
    assert source.backend == "rosbags"
    assert source.topics["/nav/position_fix"].msgtype == "gps_denied_onboard/msg/PositionFix"
    assert source.topics["/tile_cache/snapshots"].msgtype == "gps_denied_onboard/msg/TileSnapshot"
    assert "/clock" not in source.topics
    counts = manifest["bag"]["topics"]
    assert source.topics["/nav/position_fix"].count == counts["/nav/position_fix"]
    duration = (source.end_ns - source.start_ns) / 1e9
    assert 60 <= duration <= 120
    store = project_typestore()
    snaps = 0
    for msg in source.messages():
        decoded = store.deserialize_cdr(msg.data, source.topics[msg.topic].msgtype)
        assert LAT[0] <= decoded.latitude <= LAT[1]
        assert LON[0] <= decoded.longitude <= LON[1]
        if msg.topic == "/tile_cache/snapshots":
            snaps += 1
            assert decoded.image.format == "jpeg"
            assert bytes(decoded.image.data[:2]) == b"\xff\xd8"
            assert decoded.flight_id == manifest["flight_id"]
    assert snaps == len(manifest["snapshots"]) >= 5
    source.close()


def test_fc_stream_is_a_tlog_with_a_gnss_loss(manifest: dict) -> None:  # type: ignore[type-arg]
    from pymavlink import mavutil

    frames = list(read_tlog(SAMPLE / "fc_stream.tlog"))
    assert len(frames) == manifest["fc_stream"]["frames"]
    assert [f.time_ns for f in frames] == sorted(f.time_ns for f in frames)
    conn = mavutil.mavlink_connection(str(SAMPLE / "fc_stream.tlog"), dialect="ardupilotmega")
    seen: dict[str, int] = {}
    fixes: list[tuple[float, int]] = []
    while (msg := conn.recv_match()) is not None:
        kind = msg.get_type()
        seen[kind] = seen.get(kind, 0) + 1
        if kind == "HEARTBEAT":
            assert msg.autopilot == mavutil.mavlink.MAV_AUTOPILOT_ARDUPILOTMEGA
            assert msg.base_mode & mavutil.mavlink.MAV_MODE_FLAG_SAFETY_ARMED
        if kind == "GPS_RAW_INT":
            fixes.append((msg._timestamp, msg.fix_type))
    conn.close()
    for kind in ("HEARTBEAT", "GLOBAL_POSITION_INT", "GPS_RAW_INT", "ATTITUDE", "SYS_STATUS",
                 "EKF_STATUS_REPORT", "VFR_HUD"):
        assert seen.get(kind, 0) > 0, kind
    loss_s = manifest["gnss_loss_ns"] / 1e9
    assert all(ft == 3 for t, ft in fixes if t < loss_s)
    assert all(ft <= 1 for t, ft in fixes if t >= loss_s)
    assert sum(1 for t, _ in fixes if t >= loss_s) > 10


def test_utm_matches_the_naip_readme_bounds() -> None:
    if not NAIP.is_dir():
        pytest.skip(f"NAIP clips not present at {NAIP}")
    for tif in sorted(NAIP.glob("*.tif")):
        corners = read_georef(tif).corners_wgs84()
        assert min(c[0] for c in corners) == pytest.approx(LAT[0], abs=TOL)
        assert max(c[0] for c in corners) == pytest.approx(LAT[1], abs=TOL)
        assert min(c[1] for c in corners) == pytest.approx(LON[0], abs=TOL)
        assert max(c[1] for c in corners) == pytest.approx(LON[1], abs=TOL)
    e, n = wgs84_to_utm(47.02, -99.15, 14)
    lat, lon = utm_to_wgs84(e, n, 14)
    assert (lat, lon) == pytest.approx((47.02, -99.15), abs=1e-8)


@pytest.mark.slow
def test_generator_reproduces_the_committed_sample(tmp_path: Path, manifest: dict) -> None:  # type: ignore[type-arg]
    if not NAIP.is_dir():
        pytest.skip(f"NAIP clips not present at {NAIP}")
    out = tmp_path / "sample"
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_sample_flight.py"),
                    "--naip", str(NAIP), "--out", str(out)], check=True, capture_output=True)
    again = json.loads((out / "manifest.json").read_text())
    assert again == manifest
