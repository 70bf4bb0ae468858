"""visual_nav over real DDS with a tile cache that holds tiles of another zoom than the
5 m map's.

The map's zoom at 47 deg N for 5 m is z15. When the tile cache here (real
PostgreSQL, real files) holds z16 tiles only, the node asks ``query_bbox`` for
z15, finds nothing, asks for z16, keeps each tile reduced to what it covers at
z15, and the estimator composes its map from them: frames still give fixes.
When it holds z14 tiles only, the node asks for z15 to z18, then z14, and the
estimator enlarges them: fixes, with a wider sigma. At ``ground_scale`` 0.2 the
map's zoom is z17 itself, and a frame from 100 m above ground is matched at
1 m/px. At ``ground_scale`` 1 a frame from 60 m above ground asks for a finer
scale: the node fetches the z17 tiles whole and the estimator matches it at
1.25 m/px. A frame from 1000 m asks for a coarser one: matched at 10 m/px on a
z14 map of the z15 tiles.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from fc_bridge.node_support import spin_ros  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402

from gps_denied_onboard.visual_nav.geo import TILE_PX, latlon_to_world_px  # noqa: E402
from gps_denied_onboard.visual_nav.simulate import (  # noqa: E402
    Orthophoto,
    cut_tiles,
    synthetic_orthophoto,
)

from .support import LAT0, LON0, Pose, error_m, render, synthetic_world  # noqa: E402
from .test_visual_nav_node import (  # noqa: E402
    POSE,
    Probe,
    _running,
    _tile_cache_and_vnav,
    wait_until,
)


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    yield from spin_ros()


def _tiles_near(ortho: Orthophoto, zoom: int, reach_px: float) -> dict[tuple[int, int, int], Any]:
    """``ortho``'s tiles at ``zoom`` whose centres lie within ``reach_px`` of LAT0, LON0."""
    cx, cy = latlon_to_world_px(LAT0, LON0, zoom)
    return {
        k: v
        for k, v in cut_tiles(ortho, zoom).items()
        if max(abs((k[1] + 0.5) * TILE_PX - cx), abs((k[2] + 0.5) * TILE_PX - cy)) < reach_px
    }


@contextmanager
def _first_fix(
    ros: MultiThreadedExecutor,
    pg_dsn: str,
    tmp_path: Path,
    tiles: dict[tuple[int, int, int], Any],
    frame: Any,
    pose: Pose,
    **vnav_params: object,
) -> Iterator[tuple[Any, Any]]:
    """A tile cache holding ``tiles`` and a visual_nav (with ``vnav_params``) over DDS,
    ``frame`` flown at ``pose`` until the first fix: (the visual_nav node, that fix)."""
    tile_cache, vnav = _tile_cache_and_vnav(pg_dsn, tmp_path, **vnav_params)
    probe = Probe(ros)
    with _running(ros, probe, [tile_cache, vnav]):
        probe.put_tiles(tiles)

        def fixed() -> bool:
            if not probe.fixes:
                probe.fly(pose, frame)
                return False
            return True

        assert wait_until(lambda: fixed() or time.sleep(2.0), 90.0), (
            f"no fix; diagnostics {vnav.stats.as_dict()}"
        )
        yield vnav, probe.fixes[-1]


def test_frames_are_fixed_from_a_cache_of_z16_tiles_only(
    ros: MultiThreadedExecutor, pg_dsn: str, tmp_path: Path
) -> None:
    ortho, _ = synthetic_world()
    z16 = _tiles_near(ortho, 16, 1600)
    assert len(z16) >= 36
    with _first_fix(ros, pg_dsn, tmp_path, z16, render(ortho, POSE), POSE) as (vnav, fix):
        e, n = error_m(POSE, fix.latitude, fix.longitude)
        assert math.hypot(e, n) < 3.0, (e, n)
        # the node kept the z16 tiles it fetched, each reduced to its 128 px at z15
        kept = [k for k in z16 if vnav._map.tiles.has(*k)]
        assert kept
        assert all(vnav._map.tiles.tile(*k).shape[:2] == (128, 128) for k in kept)
        assert not any(vnav._map.tiles.has(15, x >> 1, y >> 1) for _, x, y in kept)


def test_frames_are_fixed_from_a_cache_of_z14_tiles_only(
    ros: MultiThreadedExecutor, pg_dsn: str, tmp_path: Path
) -> None:
    ortho, _ = synthetic_world()
    z14 = _tiles_near(ortho, 14, 1000)
    assert len(z14) >= 9
    with _first_fix(ros, pg_dsn, tmp_path, z14, render(ortho, POSE), POSE) as (vnav, fix):
        e, n = error_m(POSE, fix.latitude, fix.longitude)
        assert math.hypot(e, n) < 6.5, (e, n)  # a z14 pixel here
        sigma = math.sqrt(fix.position_covariance[0])
        assert math.hypot(e, n) < 3.0 * sigma, (e, n, sigma)
        # the node kept the z14 tiles whole; the map was enlarged from them
        kept = [k for k in z14 if vnav._map.tiles.has(*k)]
        assert kept and all(vnav._map.tiles.tile(*k).shape[:2] == (256, 256) for k in kept)
        mosaic = vnav._estimator.mosaic
        assert mosaic is not None and mosaic.zoom == 15 and mosaic.coarser_levels == 1
        # and the diagnostics say the map was all enlarged
        assert wait_until(lambda: vnav.stats.as_dict()["map_enlarged_share"] == 1.0, 10.0)


def test_at_ground_scale_0_2_a_frame_from_100_m_is_matched_on_z17_tiles_to_decimetres(
    ros: MultiThreadedExecutor, pg_dsn: str, tmp_path: Path
) -> None:
    """A 0.5 m/px world cut at z17 (0.81 m/px) around the aircraft, a frame from 100 m
    (200 m across): the node fetches z17, the map's own zoom at 1 m/px, and fixes it
    to what the attitude leaves (0.5 deg at 100 m: 0.9 m)."""
    ortho = synthetic_orthophoto(LAT0, LON0, size_m=1500.0, pixel_m=0.5, seed=3)
    z17 = _tiles_near(ortho, 17, 800)  # the 600 m prefetch at 0.2, and some
    assert len(z17) >= 36
    pose = Pose(LAT0, LON0, 100.0, roll_deg=6.0, pitch_deg=-3.0, yaw_deg=75.0)
    params = {"ground_scale": 0.2, "map_sigma_m": 0.3}
    with _first_fix(ros, pg_dsn, tmp_path, z17, render(ortho, pose), pose, **params) as (
        vnav,
        fix,
    ):
        e, n = error_m(pose, fix.latitude, fix.longitude)
        assert math.hypot(e, n) < 0.5, (e, n)
        sigma = math.sqrt(fix.position_covariance[0])
        assert math.hypot(e, n) < 3.0 * sigma < 4.0, (e, n, sigma)
        kept = [k for k in z17 if vnav._map.tiles.has(*k)]
        assert kept and all(vnav._map.tiles.tile(*k).shape[:2] == (256, 256) for k in kept)
        # the frames fit the ground scale set (200 m frames: 0.33, within 2x of 0.2)
        assert vnav.stats.ground_scale_mismatch(0.2) is None
        assert vnav.stats.ground_scale_mismatch(1.0) == pytest.approx(0.33, abs=0.05)


def test_a_frame_from_60_m_moves_the_node_to_a_finer_scale_where_z17_tiles_are(
    ros: MultiThreadedExecutor, pg_dsn: str, tmp_path: Path
) -> None:
    """The configured ground scale (5 m/px, a z15 map) and a cache of z15 and z17 tiles:
    a frame from 60 m above ground (120 m across, 24 px at 5 m/px) is refused there, and
    asks for the scale halved three times (0.625 m/px). The node fetches that zoom's
    tiles, and finding none past z17 (which it keeps whole), the estimator matches the
    frame at 1.25 m/px on a z17 map: a fix within a metre, inside 3 sigma, and the
    diagnostics say the resolution."""
    ortho = synthetic_orthophoto(LAT0, LON0, size_m=1500.0, pixel_m=0.5, seed=3)
    tiles = {**_tiles_near(ortho, 15, 300), **_tiles_near(ortho, 17, 1000)}
    pose = Pose(LAT0, LON0, 60.0, roll_deg=3.0, pitch_deg=-2.0, yaw_deg=40.0)
    with _first_fix(ros, pg_dsn, tmp_path, tiles, render(ortho, pose), pose) as (vnav, fix):
        e, n = error_m(pose, fix.latitude, fix.longitude)
        assert math.hypot(e, n) < 1.0, (e, n)
        sigma = math.sqrt(fix.position_covariance[0])
        assert math.hypot(e, n) < 3.0 * sigma, (e, n, sigma)
        est = vnav._estimator
        assert est.cfg.match.resolution_m == 1.25 and est.scales.wanted == 3
        assert est.mosaic is not None and est.mosaic.zoom == 17
        kept = [k for k in tiles if k[0] == 17 and vnav._map.tiles.has(*k)]
        assert kept and all(vnav._map.tiles.tile(*k).shape[:2] == (256, 256) for k in kept)
        assert wait_until(lambda: vnav.stats.as_dict()["resolution_m"] == 1.25, 10.0)
        # its snapshots of the ground are cut two zooms finer too (z16 at the configured
        # scale; a 120 m frame covers no z18 tile well enough to send one here)
        scaled = vnav._scaled_cfg()
        assert scaled.ground_scale == 0.25 and scaled.map_snapshot_zoom == 18


def test_a_frame_from_1000_m_moves_the_node_to_a_coarser_scale_on_the_same_tiles(
    ros: MultiThreadedExecutor, pg_dsn: str, tmp_path: Path
) -> None:
    """The configured ground scale (5 m/px) and a cache of z15 tiles only: a frame from
    1000 m above ground (2 km across) asks for the scale doubled. The node asks the
    cache for z14, finds none, and composes that map of the z15 tiles; the estimator
    matches the frame at 10 m/px on it: a fix within a few metres, inside 3 sigma,
    the diagnostics say the resolution, and snapshots are cut a zoom coarser."""
    ortho, z15 = synthetic_world()
    pose = Pose(LAT0, LON0, 1000.0, roll_deg=2.0, pitch_deg=-1.0, yaw_deg=-30.0)
    with _first_fix(ros, pg_dsn, tmp_path, z15, render(ortho, pose), pose) as (vnav, fix):
        e, n = error_m(pose, fix.latitude, fix.longitude)
        sigma = math.sqrt(fix.position_covariance[0])
        assert math.hypot(e, n) < min(3.0, 3.0 * sigma), (e, n, sigma)
        est = vnav._estimator
        assert est.cfg.match.resolution_m == 10.0 and est.scales.level == -1
        assert est.mosaic is not None and est.mosaic.zoom == 14
        assert wait_until(lambda: vnav.stats.as_dict()["resolution_m"] == 10.0, 10.0)
        scaled = vnav._scaled_cfg()
        assert scaled.ground_scale == 2.0 and scaled.map_snapshot_zoom == 15
