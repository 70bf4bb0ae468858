"""visual_nav over real DDS with a tile cache that holds only tiles finer than the map's zoom.

The map's zoom at 47 deg N for 5 m is z15; the tile cache here (real PostgreSQL,
real files) holds z16 tiles only. The node asks ``query_bbox`` for z15, finds
nothing, asks for z16, keeps each tile reduced to what it covers at z15, and
the estimator composes its map from them: frames still give fixes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from fc_bridge.node_support import spin_ros  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402

from gps_denied_onboard.visual_nav.geo import TILE_PX, latlon_to_world_px  # noqa: E402
from gps_denied_onboard.visual_nav.simulate import cut_tiles  # noqa: E402

from .support import LAT0, LON0, error_m, render, synthetic_world  # noqa: E402
from .test_visual_nav_node import (  # noqa: E402
    POSE,
    Probe,
    _lifecycle_up,
    _tile_cache_and_vnav,
    wait_until,
)


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    yield from spin_ros()


def test_frames_are_fixed_from_a_cache_of_z16_tiles_only(
    ros: MultiThreadedExecutor, pg_dsn: str, tmp_path: Path
) -> None:
    ortho, _ = synthetic_world()
    cx, cy = latlon_to_world_px(LAT0, LON0, 16)
    z16 = {
        k: v
        for k, v in cut_tiles(ortho, 16).items()
        if abs((k[1] + 0.5) * TILE_PX - cx) < 1600 and abs((k[2] + 0.5) * TILE_PX - cy) < 1600
    }
    assert len(z16) >= 36
    tile_cache, vnav = _tile_cache_and_vnav(pg_dsn, tmp_path)
    probe = Probe(ros)
    nodes = [tile_cache, vnav]
    try:
        for node in nodes:
            ros.add_node(node)
            _lifecycle_up(node)
        probe.put_tiles(z16)
        frame = render(ortho, POSE)

        def fixed() -> bool:
            if not probe.fixes:
                probe.fly(POSE, frame)
                return False
            return True

        assert wait_until(lambda: fixed() or time.sleep(2.0), 90.0), (
            f"no fix; diagnostics {vnav.stats.as_dict()}"
        )
        e, n = error_m(POSE, probe.fixes[-1].latitude, probe.fixes[-1].longitude)
        assert math.hypot(e, n) < 3.0, (e, n)
        # the node kept the z16 tiles it fetched, each reduced to its 128 px at z15
        kept = [k for k in z16 if vnav._map.tiles.has(*k)]
        assert kept
        assert all(vnav._map.tiles.tile(*k).shape[:2] == (128, 128) for k in kept)
        assert not any(vnav._map.tiles.has(15, x >> 1, y >> 1) for _, x, y in kept)
    finally:
        for node in reversed(nodes):
            ros.remove_node(node)
            node.shutdown()
            node.destroy_node()
        probe.node.destroy_node()
