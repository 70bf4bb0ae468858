"""The operator's way to put a map on the aircraft, end to end: a GeoTIFF imported with
``gdo-tile-cache import`` (real PostgreSQL, real files), served by the tile_cache node
and read by visual_nav over real DDS, gives fixes."""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from fc_bridge.node_support import spin_ros  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402

from gps_denied_onboard.tile_cache.tools import main as tile_cache_tool  # noqa: E402
from gps_denied_onboard.visual_nav.simulate import NAIP_FILES  # noqa: E402

from .support import NAIP_DIR, Pose, error_m, naip, render  # noqa: E402
from .test_visual_nav_node import Probe, _running, _tile_cache_and_vnav, wait_until  # noqa: E402


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    yield from spin_ros()


def test_a_geotiff_imported_by_the_operator_is_the_map_visual_nav_fixes_on(
    ros: MultiThreadedExecutor, pg_dsn: str, tmp_path: Path
) -> None:
    ortho = naip("2017")  # skips where the shared NAIP clips are not beside the checkout
    out = io.StringIO()
    code = tile_cache_tool(
        [
            *("--dsn", pg_dsn, "--tile-root", str(tmp_path / "tiles")),
            *("import", str(NAIP_DIR / NAIP_FILES["2017"])),
            *("--source", "naip", "--captured", "2017-08-27", "--json"),
        ],
        out=out,
    )
    assert code == 0
    assert json.loads(out.getvalue())["stored"] > 40  # z15 and z14 over the clip

    lat0, lon0, lat1, lon1 = ortho.bounds_latlon()
    pose = Pose((lat0 + lat1) / 2, (lon0 + lon1) / 2, 500.0, yaw_deg=30.0)
    tile_cache, vnav = _tile_cache_and_vnav(pg_dsn, tmp_path)  # the same tile root
    probe = Probe(ros)
    with _running(ros, probe, [tile_cache, vnav]):
        deadline = time.monotonic() + 60.0
        while not probe.fixes and time.monotonic() < deadline:
            probe.fly(pose, render(ortho, pose))
            wait_until(lambda: bool(probe.fixes), 1.0)
        assert probe.fixes, f"no fix; diagnostics {vnav.stats.as_dict()}"
        fix = probe.fixes[-1]
        assert math.hypot(*error_m(pose, fix.latitude, fix.longitude)) < 5.0
        assert vnav.stats.tiles_cached > 0
