"""A cache that holds only finer tiles than the map's zoom still gives a map, and fixes.

The map's zoom is the coarsest whose pixels are no larger than ``resolution_m``
(z15 at 47 deg N for 5 m). A cache filled from a 0.6-1 m/px orthophoto holds
z17-z18 tiles: each missing z15 tile is composed from the finer ones, reduced
by area averaging, and ground that no level has stays out of the valid mask.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.features import to_gray_f32
from gps_denied_onboard.visual_nav.geo import TILE_PX, latlon_to_world_px
from gps_denied_onboard.visual_nav.mapview import DictTileSource, reduce_tile, tile_pixels
from gps_denied_onboard.visual_nav.simulate import Orthophoto, cut_tiles, synthetic_orthophoto

from .support import CAMERA, LAT0, LON0, T0, Pose, error_m, feed, make_estimator, render

Tiles = dict[tuple[int, int, int], NDArray[np.uint8]]
MAP_ZOOM = 15  # zoom_for_resolution(47.02, 5.0)


@lru_cache(maxsize=1)
def _world() -> tuple[Orthophoto, Tiles, Tiles]:
    """A 3 km synthetic orthophoto at 1 m/px, cut at the map's zoom and two finer."""
    ortho = synthetic_orthophoto(LAT0, LON0, size_m=3000.0, pixel_m=1.0, seed=3)
    return ortho, cut_tiles(ortho, MAP_ZOOM), cut_tiles(ortho, MAP_ZOOM + 2)


def _centre_tile() -> tuple[int, int]:
    px, py = latlon_to_world_px(LAT0, LON0, MAP_ZOOM)
    return int(px // TILE_PX), int(py // TILE_PX)


def _reduced(tiles: Tiles, levels: int) -> Tiles:
    """What the node keeps of finer tiles: each reduced to what it covers at the map's zoom."""
    return {k: reduce_tile(v, levels) for k, v in tiles.items()}


@pytest.mark.parametrize("kept", ["reduced", "full size"])
def test_a_missing_tile_is_composed_from_the_tiles_two_zooms_finer(kept: str) -> None:
    _, own, finer = _world()
    x, y = _centre_tile()
    source = DictTileSource(_reduced(finer, 2) if kept == "reduced" else finer)
    got = tile_pixels(source, MAP_ZOOM, x, y, finer_levels=3)
    assert got is not None
    gray, valid = got.gray, got.valid
    assert gray.shape == valid.shape == (TILE_PX, TILE_PX)
    assert np.all(valid == 255)
    truth = to_gray_f32(own[(MAP_ZOOM, x, y)])
    # the same ground: the z15 tile was rendered at its own pixels, the composite is the
    # area average of 16 z17 tiles (both through JPEG)
    assert float(np.mean(np.abs(gray - truth))) < 4.0
    assert float(np.corrcoef(gray.ravel(), truth.ravel())[0, 1]) > 0.97


def test_ground_no_level_has_is_left_out_of_the_valid_mask() -> None:
    _, _, finer = _world()
    x, y = _centre_tile()
    gone = (MAP_ZOOM + 2, 4 * x + 1, 4 * y + 2)  # column 1, row 2 of the 4 x 4 under it
    source = DictTileSource({k: v for k, v in finer.items() if k != gone})
    got = tile_pixels(source, MAP_ZOOM, x, y, finer_levels=3)
    assert got is not None
    valid = got.valid
    side = TILE_PX // 4
    hole = valid[2 * side : 3 * side, side : 2 * side]
    assert np.all(hole == 0)
    assert np.count_nonzero(valid) == TILE_PX * TILE_PX - side * side
    # finer zooms not looked at: no tile at all
    assert tile_pixels(source, MAP_ZOOM, x, y, finer_levels=1) is None
    assert tile_pixels(source, MAP_ZOOM, x, y, finer_levels=0) is None


def test_a_tile_of_the_maps_own_zoom_wins_over_finer_ones() -> None:
    _, _, finer = _world()
    x, y = _centre_tile()
    flat = np.full((TILE_PX, TILE_PX, 3), 77, np.uint8)
    source = DictTileSource({**finer, (MAP_ZOOM, x, y): flat})
    got = tile_pixels(source, MAP_ZOOM, x, y, finer_levels=3)
    assert got is not None
    assert np.all(got.gray == pytest.approx(77.0, abs=0.5))


def test_frames_are_fixed_against_a_cache_of_finer_tiles_only() -> None:
    """The same frame, fixed against the map's own z15 tiles and against z17 tiles
    only (kept reduced, as the node keeps them): both within the map's own pixels."""
    ortho, own, finer = _world()
    pose = Pose(LAT0, LON0, 500.0, roll_deg=6.0, pitch_deg=-4.0, yaw_deg=25.0)
    prior = pose.offset(70.0, -50.0)
    image = render(ortho, pose)
    errors = {}
    for name, tiles in (("z15", own), ("z17 only", _reduced(finer, 2))):
        est = make_estimator(tiles)
        feed(est, T0, pose, prior=prior)
        fix = est.process(T0, image, CAMERA)
        assert est.mosaic is not None and est.mosaic.zoom == MAP_ZOOM
        errors[name] = math.hypot(*error_m(pose, fix.latitude, fix.longitude))
    assert errors["z15"] < 2.0, errors
    assert errors["z17 only"] < 2.0, errors


def test_without_finer_levels_a_cache_of_finer_tiles_gives_no_map() -> None:
    ortho, _, finer = _world()
    pose = Pose(LAT0, LON0, 500.0, yaw_deg=-30.0)
    est = make_estimator(_reduced(finer, 2), finer_zoom_levels=0)
    feed(est, T0, pose, prior=pose.offset(40.0, 30.0))
    with pytest.raises(FrameRejected) as err:
        est.process(T0, render(ortho, pose), CAMERA)
    assert err.value.reason == "no_tiles"
