"""The estimator navigates the same anywhere on the web-mercator map.

Every other test flies at 47 deg N, where a z15 map pixel is 3.3 m and the
UTM grid of the imagery is within 0.1 deg of true north. Here the same
synthetic farmland is laid down, in the UTM zone of the place, at high
latitude (another zoom: z14), south of the equator, on the equator and
across the antimeridian (Taveuni, Fiji: 180 deg runs through the island),
and frames flown over it must come back as fixes of the same accuracy, with
the longitude on the right side of 180 deg.
"""

from __future__ import annotations

import math
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from pyproj import CRS, Transformer

from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.geo import (
    TILE_PX,
    latlon_to_world_px,
    world_px_to_latlon,
    wrap_tile_x,
    zoom_for_resolution,
)
from gps_denied_onboard.visual_nav.mapview import DictTileSource, build_mosaic, tiles_around
from gps_denied_onboard.visual_nav.simulate import Orthophoto, cut_tiles, synthetic_orthophoto

from .support import CAMERA, T0, Pose, error_m, feed, make_estimator, render

PLACES = {
    "north_70": (70.0, 25.0),  # northern Norway: z14, 2.9x mercator scale
    "south_35": (-35.0, 149.0),  # Canberra
    "equator": (0.2, -78.5),  # Ecuador
    "antimeridian": (-16.8, 180.0),  # Taveuni, Fiji
}


def _utm(latitude: float, longitude: float) -> CRS:
    zone = min(60, int((longitude + 180.0) // 6.0) + 1)
    return CRS.from_epsg((32600 if latitude >= 0 else 32700) + zone)


@lru_cache(maxsize=4)
def farmland_at(
    latitude: float, longitude: float
) -> tuple[Orthophoto, dict[tuple[int, int, int], NDArray[np.uint8]]]:
    """The synthetic farmland (6 km, 2.5 m pixels) in the place's UTM zone, and its tiles."""
    texture = synthetic_orthophoto(47.0, -99.0, size_m=6000.0, pixel_m=2.5, seed=5)
    crs = _utm(latitude, longitude)
    east, north = Transformer.from_crs(CRS.from_epsg(4326), crs, always_xy=True).transform(
        longitude, latitude
    )
    n = texture.pixels.shape[0]
    ortho = Orthophoto(texture.pixels, crs, east - n / 2 * 2.5, north + n / 2 * 2.5, 2.5)
    return ortho, cut_tiles(ortho, zoom_for_resolution(latitude, 5.0))


def _fly(
    place: str,
    east_m: float = 0.0,
    prior_off: tuple[float, float] = (-170.0, 120.0),
    prior_sigma_m: float = 120.0,
) -> tuple[Pose, VisualFix]:
    lat, lon = PLACES[place]
    ortho, tiles = farmland_at(lat, lon)
    pose = Pose(lat, lon, 500.0, roll_deg=6.0, pitch_deg=-5.0, yaw_deg=35.0).offset(east_m, 0.0)
    est = make_estimator(tiles)
    feed(est, T0, pose, prior=pose.offset(*prior_off), prior_sigma_m=prior_sigma_m)
    got = est.process(T0, render(ortho, pose), CAMERA)
    assert isinstance(got, VisualFix)
    return pose, got


@pytest.mark.parametrize("place", sorted(PLACES))
def test_a_tilted_frame_fixes_to_the_metre_wherever_it_is_flown(place: str) -> None:
    """A cold frame (prior 200 m off, 360 m search) at 500 m with 6/5 deg of tilt."""
    pose, fix = _fly(place)
    e, n = error_m(pose, fix.latitude, fix.longitude)
    assert math.hypot(e, n) < 2.0, (place, e, n)
    assert fix.sigma_m < 10.0


@pytest.mark.parametrize(
    ("east_m", "prior_east_m"),
    [(-400.0, -570.0), (120.0, -50.0), (350.0, -100.0), (-350.0, 100.0)],
)
def test_a_search_across_the_antimeridian_fixes_on_either_side(
    east_m: float, prior_east_m: float
) -> None:
    """Frames 120-400 m either side of 180 deg, some with the prior on the other side
    (a 600 m search): the footprint, the search window and the map mosaic run across
    it (the tiles there are the world's last and first columns), and the fix's
    longitude comes back on the frame's side, within +-180."""
    pose, fix = _fly("antimeridian", east_m, (prior_east_m - east_m, 60.0), 200.0)
    assert (fix.longitude < 0.0) == (east_m > 0.0), fix.longitude
    assert -180.0 <= fix.longitude <= 180.0
    e, n = error_m(pose, fix.latitude, fix.longitude)
    assert math.hypot(e, n) < 2.0, (east_m, e, n)


def test_the_antimeridian_map_mosaic_is_whole_on_both_sides() -> None:
    """The block around a point 100 m east of 180 deg starts before column 0; the
    mosaic takes those columns from the world's last ones, so its ground is covered."""
    lat, lon = PLACES["antimeridian"]
    _, tiles = farmland_at(lat, lon)
    zoom = zoom_for_resolution(lat, 5.0)
    assert {x for (_, x, _) in tiles} >= {0, (1 << zoom) - 1}  # both sides were cut
    east = Pose(lat, lon, 500.0).offset(100.0, 0.0)
    block = tiles_around(east.latitude, east.longitude, zoom, 1000.0)
    assert block[0] < 0 and wrap_tile_x(block[0], zoom) == (1 << zoom) + block[0]
    mosaic = build_mosaic(
        DictTileSource(tiles),
        zoom,
        block,
        resolution_m=5.0,
        coarse_resolution_m=10.0,
        latitude=lat,
        harmonics=2,
    )
    # the texture's own black runs leave a few tiles a little short of whole (0.99);
    # a column missing would leave half this two-column block without imagery
    assert mosaic is not None and mosaic.tiles_x == 2
    assert mosaic.coverage > 0.98


def test_world_pixels_go_round_the_antimeridian() -> None:
    """180 deg is column 0 (not one past the last tile), and a pixel past either edge
    of the world names a longitude within +-180 on the far side."""
    zoom = 15
    width = TILE_PX * (1 << zoom)
    assert latlon_to_world_px(-16.8, 180.0, zoom)[0] == pytest.approx(0.0, abs=1e-6)
    assert latlon_to_world_px(-16.8, -180.0, zoom)[0] == pytest.approx(0.0, abs=1e-6)
    _, y = latlon_to_world_px(-16.8, 179.999, zoom)
    lat, lon = world_px_to_latlon(width + 10.0, y, zoom)
    assert lat == pytest.approx(-16.8, abs=1e-9)
    assert -180.0 < lon < -179.99
    _, lon = world_px_to_latlon(-10.0, y, zoom)
    assert 179.99 < lon < 180.0


def test_tiles_are_prefetched_from_both_sides_of_the_antimeridian() -> None:
    """visual_nav's prefetch 100 m east of 180 deg asks the tile cache for a box that
    crosses it (west edge east of the east edge, as the cache reads a crossing box),
    gets the last columns and the first, and counts those as the map's zoom covered:
    it goes on to no finer zoom. The cache's services are answered here from the
    farmland's tiles through the cache's own bbox arithmetic."""
    from gps_denied_onboard.nodes.tile_prefetch import TilePrefetch
    from gps_denied_onboard.tile_cache.geo import BBox, bbox_tile_ranges
    from gps_denied_onboard.visual_nav.config import VisualNavConfig

    lat, lon = PLACES["antimeridian"]
    _, tiles = farmland_at(lat, lon)
    zoom = zoom_for_resolution(lat, 5.0)
    boxes: list[BBox] = []
    zooms: list[int] = []

    def query(req: Any) -> Any:
        box = BBox(req.min_latitude, req.min_longitude, req.max_latitude, req.max_longitude)
        boxes.append(box)
        zooms.append(int(req.zoom))
        xs, (y0, y1) = bbox_tile_ranges(box, int(req.zoom))
        infos = [
            SimpleNamespace(x=x, y=y, source="ortho", flight_id="", tile_id=f"{x}/{y}")
            for x in xs
            for y in range(y0, y1 + 1)
            if (int(req.zoom), x, y) in tiles
        ]
        return SimpleNamespace(success=True, tiles=infos)

    def get(req: Any) -> Any:
        ok, buf = cv2.imencode(".jpg", tiles[(int(req.zoom), int(req.x), int(req.y))])
        assert ok
        return SimpleNamespace(found=True, image=SimpleNamespace(data=buf.tobytes()))

    prefetch = TilePrefetch(query, get)
    east = Pose(lat, lon, 500.0).offset(100.0, 0.0)
    prefetch.fetch(VisualNavConfig(), east.latitude, east.longitude)
    assert boxes[0].min_longitude > 179.9 and boxes[0].max_longitude < -179.9
    assert zooms == [zoom]  # the map's zoom covered the ground: no finer one asked
    last = (1 << zoom) - 1
    assert any(prefetch.tiles.has(zoom, last, y) for y in range(1 << zoom))
    assert any(prefetch.tiles.has(zoom, 0, y) for y in range(1 << zoom))
    assert prefetch.tile_id_under(None, east.latitude, east.longitude).startswith("0/")
