"""The visual_nav node over real DDS, with the real tile cache and FC bridge beside it.

Tiles go into the ``tile_cache`` node (real PostgreSQL, real files) through its
``put_tile`` service; ``visual_nav`` prefetches them through ``query_bbox`` and
``get_tile``. A probe publishes CameraInfo, camera frames and the FC topics
(remapped for this node only, so the bridge's own telemetry from the simulated
FC does not mix in); the ``PositionFix`` that comes out goes through ``fc_bridge``
to the simulated ArduPilot as GPS_INPUT, whose decoded fields are checked.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from fc_bridge.node_support import spin_ros  # noqa: E402
from gps_denied_onboard.msg import FcAltitude, FcStatus, FdrRecord, PositionFix  # noqa: E402
from gps_denied_onboard.srv import PutTile  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import (  # noqa: E402
    CameraInfo,
    CompressedImage,
    Image,
    Imu,
    NavSatFix,
    NavSatStatus,
)

from gps_denied_onboard.fc_bridge.sim_fc import SimFc  # noqa: E402
from gps_denied_onboard.nodes.fc_bridge_node import FcBridgeNode  # noqa: E402
from gps_denied_onboard.nodes.tile_cache_node import TileCacheNode  # noqa: E402
from gps_denied_onboard.nodes.visual_nav_node import VisualNavNode  # noqa: E402
from gps_denied_onboard.ros_topics import (  # noqa: E402
    LATCHED_QOS,
    RECORD_QOS,
    TOPIC_FDR_RECORDS,
    TOPIC_NAV_NAVSAT,
    ns_to_time_msg,
)
from gps_denied_onboard.visual_nav.geo import TILE_PX, latlon_to_world_px, world_px_to_latlon  # noqa: E402
from gps_denied_onboard.visual_nav.state import _quat_of  # noqa: E402

from .support import CAMERA, GROUND_MSL, LAT0, LON0, Pose, error_m, render, synthetic_world  # noqa: E402

REMAP = {
    "/fc/imu": "/vn_test/imu",
    "/fc/altitude": "/vn_test/alt",
    "/fc/status": "/vn_test/status",
    "/fc/navsat": "/vn_test/navsat",
}
POSE = Pose(LAT0, LON0, 500.0, roll_deg=6.0, pitch_deg=-3.0, yaw_deg=75.0)


def wait_until(cond: Callable[[], object], timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    yield from spin_ros()


class Probe:
    """Publishes what a camera and an FC bridge would; collects fixes and records."""

    def __init__(self, ros: MultiThreadedExecutor) -> None:
        self.node = Node("vn_probe")
        n = self.node
        self.info = n.create_publisher(CameraInfo, "/camera/camera_info", 10)
        self.frames = n.create_publisher(CompressedImage, "/camera/image_raw/compressed", 10)
        self.raw = n.create_publisher(Image, "/camera/image_raw", 10)
        self.imu = n.create_publisher(Imu, REMAP["/fc/imu"], qos_profile_sensor_data)
        self.alt = n.create_publisher(FcAltitude, REMAP["/fc/altitude"], qos_profile_sensor_data)
        self.status = n.create_publisher(FcStatus, REMAP["/fc/status"], 10)
        self.navsat = n.create_publisher(NavSatFix, REMAP["/fc/navsat"], qos_profile_sensor_data)
        self.fixes: list[PositionFix] = []
        self.navsat_fixes: list[NavSatFix] = []
        self.records: list[FdrRecord] = []
        n.create_subscription(PositionFix, "/nav/position_fix", self.fixes.append, 20)
        n.create_subscription(NavSatFix, TOPIC_NAV_NAVSAT, self.navsat_fixes.append, 20)
        n.create_subscription(FdrRecord, TOPIC_FDR_RECORDS, self.records.append, RECORD_QOS)
        ros.add_node(n)

    def now(self) -> int:
        return int(self.node.get_clock().now().nanoseconds)

    def put_tiles(self, tiles: dict[tuple[int, int, int], np.ndarray]) -> None:
        client = self.node.create_client(PutTile, "/tile_cache/put_tile")
        assert client.wait_for_service(timeout_sec=20)
        for (z, x, y), px in tiles.items():
            _, buf = cv2.imencode(".jpg", px, [cv2.IMWRITE_JPEG_QUALITY, 90])
            data = bytes(buf)
            lat, lon = world_px_to_latlon((x + 0.5) * TILE_PX, (y + 0.5) * TILE_PX, z)
            req = PutTile.Request(
                zoom=z,
                x=x,
                y=y,
                source="satellite",
                flight_id="",
                latitude=lat,
                longitude=lon,
                captured_at=ns_to_time_msg(self.now()),
                quality_json=json.dumps({"score": 0.9}),
                content_sha256=hashlib.sha256(data).hexdigest(),
                image=CompressedImage(format="jpeg", data=data),
            )
            fut = client.call_async(req)
            assert wait_until(fut.done, 20), "put_tile did not answer"
            assert fut.result().success, fut.result().error

    def fc_state(self, pose: Pose, stamp: int, *, gnss: bool = True) -> None:
        q = _quat_of(pose.r_enu_flu())
        m = Imu()
        m.header.stamp = ns_to_time_msg(stamp)
        m.orientation.x, m.orientation.y, m.orientation.z, m.orientation.w = (float(v) for v in q)
        self.imu.publish(m)
        a = FcAltitude(amsl=GROUND_MSL + pose.agl_m, source="vfr_hud")
        a.header.stamp = ns_to_time_msg(stamp)
        self.alt.publish(a)
        s = FcStatus()
        s.header.stamp = ns_to_time_msg(stamp)
        s.armed, s.gnss_healthy = True, gnss
        self.status.publish(s)
        if gnss:
            prior = pose.offset(40.0, -30.0)
            f = NavSatFix()
            f.header.stamp = ns_to_time_msg(stamp)
            f.status.status = 0
            f.latitude, f.longitude, f.altitude = prior.latitude, prior.longitude, 1080.0
            f.position_covariance = [25.0, 0, 0, 0, 25.0, 0, 0, 0, 100.0]
            f.position_covariance_type = 2
            self.navsat.publish(f)

    def camera_info(self) -> None:
        m = CameraInfo()
        m.width, m.height = CAMERA.width, CAMERA.height
        m.k = list(CAMERA.k)
        m.distortion_model = CAMERA.distortion_model
        m.d = list(CAMERA.d)
        self.info.publish(m)

    def frame(self, image: np.ndarray, stamp: int) -> None:
        _, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        m = CompressedImage(format="jpeg", data=bytes(buf))
        m.header.stamp = ns_to_time_msg(stamp)
        self.frames.publish(m)

    def fly(self, pose: Pose, image: np.ndarray, *, gnss: bool = True) -> int:
        """FC state around a frame's capture, then the frame; returns its stamp."""
        stamp = self.now()
        for dt in (-0.08, -0.04, 0.0, 0.04):
            self.fc_state(pose, stamp + int(dt * 1e9), gnss=gnss)
        self.camera_info()
        self.frame(image, stamp)
        self.fc_state(pose, stamp + 40_000_000, gnss=gnss)
        return stamp


def _lifecycle_up(node: Any) -> None:
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS


@contextmanager
def _running(ros: MultiThreadedExecutor, probe: Probe, nodes: list[Any]) -> Iterator[None]:
    """``nodes`` spun by ``ros`` and brought up in order; afterwards shut down in
    reverse and destroyed, and the probe with them."""
    try:
        for node in nodes:
            ros.add_node(node)
            _lifecycle_up(node)
        yield
    finally:
        for node in reversed(nodes):
            ros.remove_node(node)
            node.shutdown()
            node.destroy_node()
        probe.node.destroy_node()


def _near_tiles() -> tuple[np.ndarray, dict[tuple[int, int, int], np.ndarray]]:
    """The synthetic world's orthophoto and its z15 tiles within 2.5 km of the flight."""
    ortho, tiles = synthetic_world()
    cx, cy = latlon_to_world_px(LAT0, LON0, 15)
    near = {
        k: v
        for k, v in tiles.items()
        if abs((k[1] + 0.5) * TILE_PX - cx) < 800 and abs((k[2] + 0.5) * TILE_PX - cy) < 800
    }
    assert len(near) >= 9
    return ortho, near


def _tile_cache_and_vnav(
    pg_dsn: str, tmp_path: Path, **vnav_params: object
) -> tuple[TileCacheNode, VisualNavNode]:
    tile_cache = TileCacheNode(
        parameter_overrides=[
            Parameter("dsn", value=pg_dsn),
            Parameter("tile_root", value=str(tmp_path / "tiles")),
        ]
    )
    remaps = [a for src, dst in REMAP.items() for a in ("-r", f"{src}:={dst}")]
    vnav = VisualNavNode(
        cli_args=["--ros-args", *remaps],
        parameter_overrides=[
            Parameter("ground_elevation_msl", value=GROUND_MSL),
            Parameter("prefetch_period_s", value=0.2),
            Parameter("reject_record_rate_hz", value=1e9),
            Parameter("image_topic", value="/camera/image_raw"),
            # the probe's frames come as fast as a test needs them: every one is matched
            Parameter("frame_max_rate_hz", value=0.0),
            *(Parameter(k, value=v) for k, v in vnav_params.items()),
        ],
    )
    return tile_cache, vnav


def test_frames_in_position_fix_out_and_gps_input_at_the_fc(
    ros: MultiThreadedExecutor, pg_dsn: str, tmp_path: Path
) -> None:
    ortho, near = _near_tiles()
    tile_cache, vnav = _tile_cache_and_vnav(pg_dsn, tmp_path)
    fc = SimFc("ardupilot", heartbeat_hz=5.0, telemetry_hz=10.0)
    fc.start()
    bridge = FcBridgeNode(
        parameter_overrides=[
            Parameter(k, value=v)
            for k, v in {
                "connection": fc.connection,
                "heartbeat_period_s": 0.2,
                "activate_timeout_s": 5.0,
                "preflight_timeout_s": 2.0,
                "max_fix_age_s": 5.0,
            }.items()
        ]
    )
    probe = Probe(ros)
    nodes = [tile_cache, vnav, bridge]
    try:
        for node in nodes:
            ros.add_node(node)
            _lifecycle_up(node)
        probe.put_tiles(near)

        # GNSS healthy: the prior is the FC's position, 50 m off the truth
        def fixed() -> bool:
            if not probe.fixes:
                probe.fly(POSE, render(ortho, POSE))
                return False
            return True

        assert wait_until(lambda: fixed() or time.sleep(2.0), 90.0), (
            f"no fix; diagnostics {vnav.stats.as_dict()}"
        )
        fix = probe.fixes[-1]
        e, n = error_m(POSE, fix.latitude, fix.longitude)
        assert math.hypot(e, n) < 3.0, (e, n)
        sigma = math.sqrt(fix.position_covariance[0])
        assert 2.0 <= sigma < 15.0
        assert fix.quality > 0

        # the same fix as a standard NavSatFix, for tools that read no message of ours
        def navsat() -> NavSatFix | None:
            return next((m for m in probe.navsat_fixes if m.header.stamp == fix.header.stamp), None)

        assert wait_until(navsat, 10.0), "no NavSatFix with the fix's stamp on /nav/navsat"
        nav = navsat()
        assert nav is not None
        assert (nav.latitude, nav.longitude) == (fix.latitude, fix.longitude)
        assert nav.altitude == fix.altitude_msl
        assert list(nav.position_covariance) == list(fix.position_covariance)
        assert nav.position_covariance_type == NavSatFix.COVARIANCE_TYPE_DIAGONAL_KNOWN
        assert (nav.status.status, nav.status.service) == (NavSatStatus.STATUS_FIX, 0)
        assert nav.header.frame_id == "base_link"

        # the bridge turned it into GPS_INPUT with the same position and accuracy
        def gps_input() -> Any:
            for r in fc.received("GPS_INPUT"):
                m = r.msg
                if m.fix_type >= 2 and abs(m.lat - fix.latitude * 1e7) <= 1:
                    return m
            return None

        assert wait_until(gps_input, 10.0), "no GPS_INPUT with the fix at the FC"
        m = gps_input()
        assert m.lon == round(fix.longitude * 1e7)
        assert m.horiz_accuracy == pytest.approx(sigma, rel=0.05)

        # bad input: typed rejects, recorded, and the node goes on fixing
        assert wait_until(lambda: len(vnav._frames) == 0, 30.0)
        raw = Image(encoding="nv21", width=4, height=4, step=4, data=bytes(24))
        raw.header.stamp = ns_to_time_msg(probe.now())
        probe.raw.publish(raw)
        probe.fly(POSE, np.zeros((480, 640, 3), np.uint8))

        def rejected() -> set[str]:
            return {
                json.loads(r.payload_json)["reason"]
                for r in probe.records
                if r.kind == "vnav.reject"
            }

        assert wait_until(lambda: {"unknown_encoding", "bad_exposure"} <= rejected(), 30.0), (
            rejected(),
            vnav.stats.as_dict(),
        )
        before = len(probe.fixes)
        probe.fly(POSE, render(ortho, POSE))
        assert wait_until(lambda: len(probe.fixes) > before, 30.0)
        assert any(r.kind == "vnav.fix" for r in probe.records)
        stats = vnav.stats.as_dict()
        assert stats["rejects.unknown_encoding"] >= 1 and stats["rejects.bad_exposure"] >= 1

        # a 12-bit camera's mono16 Image (every such frame was "saturated" on the 8-bit
        # scale) fixes where the JPEG frame does
        before = len(probe.fixes)
        gray = cv2.cvtColor(render(ortho, POSE), cv2.COLOR_BGR2GRAY).astype(np.uint16) * 16
        stamp = probe.now()
        for dt in (-0.08, -0.04, 0.0, 0.04):
            probe.fc_state(POSE, stamp + int(dt * 1e9))
        probe.camera_info()
        m16 = Image(encoding="mono16", width=640, height=480, step=1280)
        m16.is_bigendian = int(sys.byteorder == "big")
        m16.data = gray.tobytes()
        m16.header.stamp = ns_to_time_msg(stamp)
        probe.raw.publish(m16)
        probe.fc_state(POSE, stamp + 40_000_000)
        assert wait_until(lambda: len(probe.fixes) > before, 30.0), vnav.stats.as_dict()
        e, n = error_m(POSE, probe.fixes[-1].latitude, probe.fixes[-1].longitude)
        assert math.hypot(e, n) < 3.0, (e, n)
    finally:
        for node in reversed(nodes):
            ros.remove_node(node)
            node.shutdown() if hasattr(node, "shutdown") else None
            node.destroy_node()
        probe.node.destroy_node()
        fc.stop()


def test_without_gnss_a_seed_position_starts_the_search(
    ros: MultiThreadedExecutor, pg_dsn: str, tmp_path: Path
) -> None:
    """GNSS jammed from the start: nothing to search around until the operator's
    ``~/seed_position`` (latched) says where the aircraft is; then frames fix."""
    ortho, near = _near_tiles()
    tile_cache, vnav = _tile_cache_and_vnav(pg_dsn, tmp_path)
    probe = Probe(ros)
    with _running(ros, probe, [tile_cache, vnav]):
        probe.put_tiles(near)

        def rejects() -> list[str]:
            return [
                json.loads(r.payload_json)["reason"]
                for r in probe.records
                if r.kind == "vnav.reject"
            ]

        frame = render(ortho, POSE)

        def refused_for_no_prior() -> bool:
            if "no_prior" in rejects():
                return True
            probe.fly(POSE, frame, gnss=False)  # (the first may beat its CameraInfo)
            return False

        assert wait_until(lambda: refused_for_no_prior() or time.sleep(1.0), 30.0), rejects()
        assert not probe.fixes

        seed = probe.node.create_publisher(NavSatFix, "/visual_nav/seed_position", LATCHED_QOS)
        off = POSE.offset(60.0, 45.0)  # the operator's idea of the launch point: 75 m off
        msg = NavSatFix()
        msg.header.stamp = ns_to_time_msg(probe.now())
        msg.latitude, msg.longitude = off.latitude, off.longitude
        msg.position_covariance = [50.0**2, 0, 0, 0, 50.0**2, 0, 0, 0, 100.0]
        msg.position_covariance_type = NavSatFix.COVARIANCE_TYPE_DIAGONAL_KNOWN
        seed.publish(msg)

        def fixed() -> bool:
            if not probe.fixes:
                probe.fly(POSE, frame, gnss=False)
                return False
            return True

        assert wait_until(lambda: fixed() or time.sleep(2.0), 60.0), (
            f"no fix; rejects {rejects()[-5:]}; diagnostics {vnav.stats.as_dict()}"
        )
        e, n = error_m(POSE, probe.fixes[-1].latitude, probe.fixes[-1].longitude)
        assert math.hypot(e, n) < 3.0, (e, n)


def test_a_snapshot_is_the_open_flights_and_waits_in_the_tile_cache_for_upload(
    ros: MultiThreadedExecutor, pg_dsn: str, tmp_path: Path
) -> None:
    """The flight recorder's open flight (``/fdr/flight``, latched) tags the in-flight
    snapshots: the tile cache keeps them as that flight's, pending upload. Without
    it they were no flight's, and no upload ever listed them."""
    from gps_denied_onboard.msg import TileSnapshot
    from gps_denied_onboard.srv import ListUploads
    from std_msgs.msg import String

    from gps_denied_onboard.ros_topics import TOPIC_FDR_FLIGHT, TOPIC_TILE_SNAPSHOTS
    from gps_denied_onboard.tile_cache.identity import derive_flight_uuid

    ortho, near = _near_tiles()
    tile_cache, vnav = _tile_cache_and_vnav(pg_dsn, tmp_path)
    probe = Probe(ros)
    flight = probe.node.create_publisher(String, TOPIC_FDR_FLIGHT, LATCHED_QOS)
    flight.publish(String(data="flight-20261205T221800Z"))  # as the recorder does at open
    snapshots: list[TileSnapshot] = []
    probe.node.create_subscription(TileSnapshot, TOPIC_TILE_SNAPSHOTS, snapshots.append, 10)
    with _running(ros, probe, [tile_cache, vnav]):
        probe.put_tiles(near)

        def snapped() -> bool:
            if not snapshots:
                probe.fly(POSE, render(ortho, POSE))
                return False
            return True

        assert wait_until(lambda: snapped() or time.sleep(2.0), 90.0), (
            f"no snapshot; fixes {len(probe.fixes)}; diagnostics {vnav.stats.as_dict()}"
        )
        want = str(derive_flight_uuid("flight-20261205T221800Z"))
        assert snapshots[0].flight_id == want
        client = probe.node.create_client(ListUploads, "/tile_cache/list_uploads")
        assert client.wait_for_service(timeout_sec=20)

        def pending() -> list[Any]:
            fut = client.call_async(ListUploads.Request(limit=0))
            assert wait_until(fut.done, 20), "list_uploads did not answer"
            return list(fut.result().tiles)

        assert wait_until(lambda: bool(pending()), 20.0)
        tile = pending()[0]
        assert (tile.source, tile.flight_id) == ("in_flight", want)
        assert (tile.zoom, tile.x, tile.y) == (
            snapshots[0].zoom,
            snapshots[0].x,
            snapshots[0].y,
        )


REPO = Path(__file__).resolve().parents[2]


def test_the_recorder_refuses_the_camera_topics_visual_nav_reads() -> None:
    from gps_denied_onboard.config import load_ros_params_file
    from gps_denied_onboard.nodes.fdr_recorder_node import plan_raw_topics

    params = load_ros_params_file(REPO / "config" / "visual_nav.yaml", "visual_nav")
    entries = [
        f"{params['compressed_image_topic']}:sensor_msgs/msg/CompressedImage",
        "/camera/image_raw:sensor_msgs/msg/Image",
        f"{params['camera_info_topic']}:sensor_msgs/msg/CameraInfo",
    ]
    record, refused = plan_raw_topics(entries)
    assert [r.topic for r in refused] == [params["compressed_image_topic"], "/camera/image_raw"]
    assert [r.topic for r in record] == [params["camera_info_topic"]]  # intrinsics are not frames


def test_visual_nav_yaml_is_exactly_the_config_dataclass() -> None:
    import dataclasses

    from gps_denied_onboard.config import build_config, load_ros_params_file
    from gps_denied_onboard.visual_nav.config import VisualNavConfig

    params = load_ros_params_file(REPO / "config" / "visual_nav.yaml", "visual_nav")
    assert set(params) == {f.name for f in dataclasses.fields(VisualNavConfig)}
    params["ground_elevation_msl"] = params["ground_elevation_msl"] or None
    cfg = build_config(VisualNavConfig, params, strict=True)
    assert cfg == VisualNavConfig()  # the yaml states the code's defaults


def test_an_empty_navsat_frame_id_is_a_config_error() -> None:
    from gps_denied_onboard.errors import ConfigError
    from gps_denied_onboard.visual_nav.config import VisualNavConfig

    with pytest.raises(ConfigError) as err:
        VisualNavConfig(navsat_frame_id=" ")
    assert err.value.key == "navsat_frame_id"


@pytest.mark.parametrize(
    "bad",
    [
        {"gate_side_m": (850.0, 400.0)},  # not increasing
        {"gate_side_m": (400.0,)},  # one side: no table
        {"gate_side_m": (0.0, 850.0)},
        {"gate_margin_sigmas_small": (3.0, 3.0)},  # one per radius
        {"gate_margin_sigmas_large": (2.95, float("nan"), 2.8)},
        {"gate_min_score": (0.12,)},  # one per side
        {"gate_min_score": (0.12, 1.5)},  # a ZNCC never reaches 1.5
        {"orientation_harmonics": 3},
    ],
)
def test_a_malformed_gate_table_is_a_config_error_naming_its_parameter(
    bad: dict[str, object],
) -> None:
    from gps_denied_onboard.errors import ConfigError
    from gps_denied_onboard.visual_nav.config import VisualNavConfig

    with pytest.raises(ConfigError) as err:
        VisualNavConfig(**bad)  # type: ignore[arg-type]
    assert err.value.key == next(iter(bad))
