"""A cache that holds only finer, or only coarser, tiles than the map's zoom still gives
a map, and fixes.

The map's zoom is the coarsest whose pixels are no larger than ``resolution_m``
(z15 at 47 deg N for 5 m). A cache filled from a 0.6-1 m/px orthophoto holds
z17-z18 tiles: each missing z15 tile is composed from the finer ones, reduced
by area averaging, and ground that no level has stays out of the valid mask.
One cut from a 10 m/px satellite product holds z13-z14: each missing z15 tile
is its piece of the coarser one, enlarged, and the fixes there say so in their
sigma.
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

from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.features import to_gray_f32
from gps_denied_onboard.visual_nav.geo import TILE_PX, ground_resolution_m, latlon_to_world_px
from gps_denied_onboard.visual_nav.mapview import (
    DictTileSource,
    Mosaic,
    build_mosaic,
    reduce_tile,
    tile_pixels,
)
from gps_denied_onboard.visual_nav.simulate import Orthophoto, cut_tiles, synthetic_orthophoto

from .support import (
    CAMERA,
    LAT0,
    LON0,
    T0,
    Pose,
    error_m,
    feed,
    make_estimator,
    render,
    synthetic_world,
)

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


# -- coarser tiles only: enlarged --------------------------------------------------------


@lru_cache(maxsize=1)
def _coarser() -> tuple[Tiles, Tiles]:
    """The same world cut one and two zooms coarser than the map's (6.5 and 13 m/px)."""
    ortho, _, _ = _world()
    return cut_tiles(ortho, MAP_ZOOM - 1), cut_tiles(ortho, MAP_ZOOM - 2)


def test_a_tile_only_coarser_is_enlarged_from_its_piece_of_the_coarser_tile() -> None:
    """Each of the 4 z15 tiles under a z14 tile is its quarter enlarged twice, on the
    z15 tile's own pixel grid: the ground lies where the z15 tile has it, to a small
    fraction of a pixel (no half-pixel shift from the enlargement)."""
    _, own, _ = _world()
    z14, _ = _coarser()
    source = DictTileSource(z14)
    x, y = _centre_tile()
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        got = tile_pixels(source, MAP_ZOOM, x + dx, y + dy, finer_levels=3, coarser_levels=2)
        assert got is not None
        assert got.coarser_by == 1
        assert got.gray.shape == got.valid.shape == (TILE_PX, TILE_PX)
        assert np.all(got.valid == 255)
        truth = to_gray_f32(own[(MAP_ZOOM, x + dx, y + dy)])
        assert float(np.corrcoef(got.gray.ravel(), truth.ravel())[0, 1]) > 0.9
        (sx, sy), _ = cv2.phaseCorrelate(
            np.asarray(truth, np.float64), np.asarray(got.gray, np.float64)
        )
        assert math.hypot(sx, sy) < 0.15, (dx, dy, sx, sy)
    # not asked for coarser zooms, or not enough of them: no tile
    assert tile_pixels(source, MAP_ZOOM, x, y, finer_levels=3) is None
    assert tile_pixels(DictTileSource(_coarser()[1]), MAP_ZOOM, x, y, coarser_levels=1) is None


def test_the_maps_own_zoom_and_finer_tiles_win_over_a_coarser_one() -> None:
    _, own, finer = _world()
    z14, _ = _coarser()
    x, y = _centre_tile()
    for tiles in (own, finer):
        got = tile_pixels(DictTileSource({**z14, **tiles}), MAP_ZOOM, x, y, 3, coarser_levels=2)
        assert got is not None and got.coarser_by == 0


def test_a_coarser_tiles_no_data_stays_out_of_the_enlarged_valid_mask() -> None:
    z14, _ = _coarser()
    x, y = _centre_tile()
    key = (MAP_ZOOM - 1, x >> 1, y >> 1)
    cut = z14[key].copy()
    cut[:, : TILE_PX // 2] = 0  # the tile's western half is past its orthophoto's edge
    source = DictTileSource({key: cut})
    west, east = (x & ~1), (x & ~1) + 1
    got_w = tile_pixels(source, MAP_ZOOM, west, y, coarser_levels=1)
    got_e = tile_pixels(source, MAP_ZOOM, east, y, coarser_levels=1)
    assert got_w is not None and got_e is not None
    assert np.count_nonzero(got_w.valid) == 0
    # the eastern piece: ground, but for the margin the no-data mask keeps off the fill
    assert np.all(got_e.valid[:, 16:] == 255)
    assert np.all(got_e.valid[:, 0] == 0)


def test_the_mosaic_says_which_ground_came_from_coarser_tiles() -> None:
    """A mosaic of 3 x 3 z15 tiles with the middle one missing, filled from z13: the
    share enlarged, and the map pixel under a point (13 m there, 3.3 m elsewhere)."""
    _, own, _ = _world()
    _, z13 = _coarser()
    x, y = _centre_tile()

    def mosaic(tiles: Tiles) -> Mosaic:
        m = build_mosaic(
            DictTileSource(tiles),
            MAP_ZOOM,
            (x - 1, y - 1, 3, 3),
            resolution_m=5.0,
            coarse_resolution_m=15.0,
            latitude=LAT0,
            harmonics=2,
            coarser_levels=2,
        )
        assert m is not None
        return m

    m = mosaic({**z13, **{k: v for k, v in own.items() if k != (MAP_ZOOM, x, y)}})
    assert m.coarser_levels == 2
    assert m.coarser_share == pytest.approx(1 / 9)
    mpp = ground_resolution_m(LAT0, MAP_ZOOM)
    middle = ((x + 0.5) * TILE_PX, (y + 0.5) * TILE_PX)
    west = ((x - 0.5) * TILE_PX, (y + 0.5) * TILE_PX)

    def square(half_px: float) -> tuple[float, float, float, float]:
        """A ground box ``half_px`` world pixels each way about the nadir, in metres."""
        return -half_px * mpp, -half_px * mpp, half_px * mpp, half_px * mpp

    assert m.pixel_m_over(*middle, square(10.0), mpp) == pytest.approx(4 * mpp)
    assert m.pixel_m_over(*west, square(10.0), mpp) == pytest.approx(mpp)
    # a template reaching from the sharp ground onto the enlarged: its coarsest
    assert m.pixel_m_over(*west, square(150.0), mpp) == pytest.approx(4 * mpp)
    # ... also where its ground lies wholly to one side of its nadir (east of it)
    east_only = (140.0 * mpp, -10.0 * mpp, 160.0 * mpp, 10.0 * mpp)
    assert m.pixel_m_over(*west, east_only, mpp) == pytest.approx(4 * mpp)
    # a box wholly off the mosaic reads the zoom's own pixel
    assert m.pixel_m_over(west[0] - 4 * TILE_PX, west[1], square(10.0), mpp) == mpp
    # a mosaic with none enlarged: the zoom's own pixel everywhere
    sharp = mosaic(own)
    assert sharp.coarser_share == 0.0 and sharp.coarser_by is None
    assert sharp.pixel_m_over(*middle, square(400.0), mpp) == mpp


@pytest.mark.parametrize(("pitch_deg", "enlarged"), [(12.0, True), (-12.0, False)])
def test_a_tilted_frame_is_judged_on_the_map_pixels_under_its_ground_not_its_nadir(
    pitch_deg: float, enlarged: bool
) -> None:
    """A 400 m frame 205 m south of where the z15 tiles end (z13 tiles north of that):
    pitched 12 deg up it sees 90-230 m north of its nadir, so its ground reaches onto
    the enlarged tiles though its nadir and a square of its template's side around
    it (183 m each way) do not; pitched down it sees the sharp ground south. The
    fix's map pixel, which widens its sigma and sets its gate, is the one under its
    ground."""
    ortho, own, _ = _world()
    _, z13 = _coarser()
    _, y = _centre_tile()
    mpp = ground_resolution_m(LAT0, MAP_ZOOM)
    _, py = latlon_to_world_px(LAT0, LON0, MAP_ZOOM)
    north = (py / TILE_PX - y) * TILE_PX * mpp - 205.0  # 205 m south of row y's north edge
    pose = Pose(LAT0, LON0, 200.0, pitch_deg=pitch_deg).offset(0.0, north)
    mixed = {**z13, **{k: v for k, v in own.items() if k[2] >= y}}
    est = make_estimator(mixed)
    feed(est, T0, pose, prior=pose.offset(20.0, -30.0))
    fix = est.process(T0, render(ortho, pose), CAMERA)
    assert est.mosaic is not None and est.mosaic.coarser_levels == 2
    assert fix.template_side_m / 2.0 < 205.0
    assert fix.map_pixel_m == pytest.approx(4 * mpp if enlarged else mpp, rel=1e-3)
    err = math.hypot(*error_m(pose, fix.latitude, fix.longitude))
    assert err < 3.0 * fix.sigma_m, (err, fix.sigma_m)


@pytest.mark.parametrize("levels", [1, 2])
def test_frames_are_fixed_against_a_cache_of_coarser_tiles_only_with_a_wider_sigma(
    levels: int,
) -> None:
    """The same frame against the map's own z15 tiles and against z14 or z13 tiles only:
    fixed within the enlarged map's pixels, inside 3 sigma, and the sigma wider than
    over the sharp map."""
    ortho, own, _ = _world()
    coarse = _coarser()[levels - 1]
    pose = Pose(LAT0, LON0, 500.0, roll_deg=-5.0, pitch_deg=7.0, yaw_deg=-60.0)
    prior = pose.offset(-60.0, 80.0)
    image = render(ortho, pose)
    fixes = {}
    for name, tiles in (("sharp", own), ("enlarged", coarse)):
        est = make_estimator(tiles)
        feed(est, T0, pose, prior=prior)
        fixes[name] = est.process(T0, image, CAMERA)
        assert est.mosaic is not None
        assert est.mosaic.coarser_levels == (levels if name == "enlarged" else 0)
    err = math.hypot(*error_m(pose, fixes["enlarged"].latitude, fixes["enlarged"].longitude))
    assert err < ground_resolution_m(LAT0, MAP_ZOOM - levels), err
    assert err < 3.0 * fixes["enlarged"].sigma_m
    assert fixes["enlarged"].sigma_m > fixes["sharp"].sigma_m


def test_without_coarser_levels_a_cache_of_coarser_tiles_gives_no_map() -> None:
    ortho, _, _ = _world()
    pose = Pose(LAT0, LON0, 500.0, yaw_deg=40.0)
    est = make_estimator(_coarser()[0], coarser_zoom_levels=0)
    feed(est, T0, pose, prior=pose.offset(-30.0, 20.0))
    with pytest.raises(FrameRejected) as err:
        est.process(T0, render(ortho, pose), CAMERA)
    assert err.value.reason == "no_tiles"


class _Cache:
    """The tile cache's two services over a dict of tiles, answered through the cache's
    own bbox arithmetic, each zoom asked for written down."""

    def __init__(self, tiles: Tiles) -> None:
        self.tiles = tiles
        self.zooms: list[int] = []
        self.got: list[tuple[int, int, int]] = []

    def query(self, req: Any) -> Any:
        from gps_denied_onboard.tile_cache.geo import BBox, bbox_tile_ranges

        box = BBox(req.min_latitude, req.min_longitude, req.max_latitude, req.max_longitude)
        z = int(req.zoom)
        self.zooms.append(z)
        xs, (y0, y1) = bbox_tile_ranges(box, z)
        infos = [
            SimpleNamespace(x=x, y=y, source="ortho", flight_id="", tile_id=f"{z}/{x}/{y}")
            for x in xs
            for y in range(y0, y1 + 1)
            if (z, x, y) in self.tiles
        ]
        return SimpleNamespace(success=True, tiles=infos)

    def get(self, req: Any) -> Any:
        key = (int(req.zoom), int(req.x), int(req.y))
        self.got.append(key)
        ok, buf = cv2.imencode(".jpg", self.tiles[key])
        assert ok
        return SimpleNamespace(found=True, image=SimpleNamespace(data=buf.tobytes()))


def test_the_prefetch_takes_coarser_tiles_only_where_no_own_or_finer_tile_covers() -> None:
    """A cache of z14 tiles over the 3 km world and z15 tiles over the aircraft: the
    prefetch (2.5 km around) asks the map's zoom, then the finer ones (ground is still
    uncovered), then z14, and takes only the z14 tiles over ground that no z15 tile
    covers, kept whole; ground past the world is bare still, so it asks z13 too. The
    tile id under the aircraft is the z15 tile's; past the z15 tiles, the z14 tile's."""
    from gps_denied_onboard.nodes.tile_prefetch import TilePrefetch
    from gps_denied_onboard.visual_nav.config import VisualNavConfig

    _, own, _ = _world()
    z14, _ = _coarser()
    x, y = _centre_tile()
    near = {k: v for k, v in own.items() if abs(k[1] - x) <= 1 and abs(k[2] - y) <= 1}
    cache = _Cache({**z14, **near})
    prefetch = TilePrefetch(cache.query, cache.get)
    cfg = VisualNavConfig(prefetch_radius_m=2500.0)
    prefetch.fetch(cfg, LAT0, LON0)
    assert cache.zooms == [15, 16, 17, 18, 14, 13]
    got14 = {k for k in cache.got if k[0] == MAP_ZOOM - 1}
    assert got14
    for _, cx, cy in got14:  # each has a z15 cell under it with no z15 tile
        under = {(MAP_ZOOM, 2 * cx + i, 2 * cy + j) for i in range(2) for j in range(2)}
        assert not under <= near.keys()
    assert all(prefetch.tiles.tile(*k).shape[:2] == (TILE_PX, TILE_PX) for k in got14)
    assert prefetch.tile_id_under(cfg, LAT0, LON0) == f"{MAP_ZOOM}/{x}/{y}"
    away = Pose(LAT0, LON0, 500.0).offset(-1600.0, 0.0)
    assert prefetch.tile_id_under(cfg, away.latitude, away.longitude).startswith("14/")
    # without coarser levels, z14 is never asked for
    cache = _Cache({**z14, **near})
    TilePrefetch(cache.query, cache.get).fetch(
        VisualNavConfig(prefetch_radius_m=2500.0, coarser_zoom_levels=0), LAT0, LON0
    )
    assert MAP_ZOOM - 1 not in cache.zooms


def test_coarser_zoom_levels_is_checked() -> None:
    from gps_denied_onboard.errors import ConfigError
    from gps_denied_onboard.visual_nav.config import VisualNavConfig

    for bad in (-1, 5):
        with pytest.raises(ConfigError) as err:
            VisualNavConfig(coarser_zoom_levels=bad)
        assert err.value.key == "coarser_zoom_levels"
    assert VisualNavConfig().estimator_config().coarser_zoom_levels == 2


def test_an_enlarged_map_widens_the_match_term_by_the_root_of_its_pixel_ratio() -> None:
    """With the map's floor and the attitude's term at 0 and a 1 km template (no
    single-frame terms), the sigma is the match term alone: twice as wide on a map of
    20 m pixels matched at 5 m, unchanged on one of pixels finer than 5 m."""
    from gps_denied_onboard.visual_nav.settings import EstimatorConfig
    from gps_denied_onboard.visual_nav.uncertainty import enlarged_map_factor, position_sigma

    cfg = EstimatorConfig(map_sigma_m=0.0, attitude_sigma_deg=0.0)

    def sigma(map_pixel_m: float) -> float:
        return position_sigma(
            cfg,
            resolution_m=5.0,
            height_m=500.0,
            fine_score=0.4,
            template_px=4000,
            template_side_m=1000.0,
            margin_sigmas=5.0,
            stitched=False,
            map_pixel_m=map_pixel_m,
        )

    assert sigma(0.0) > 0.0
    assert sigma(3.26) == sigma(5.0) == sigma(0.0)
    assert sigma(20.0) == pytest.approx(2.0 * sigma(5.0))
    assert enlarged_map_factor(5.0, 13.0) == pytest.approx(math.sqrt(2.6))


def test_the_gate_judges_a_template_over_an_enlarged_map_by_its_own_pixels() -> None:
    """A 1 km template over a map of 13 m pixels holds as many of them as a 385 m one
    at 5 m: the gate asks what it asks of that smaller template."""
    from gps_denied_onboard.visual_nav.gate import gate_at, sharp_side_m
    from gps_denied_onboard.visual_nav.settings import EstimatorConfig

    cfg = EstimatorConfig()
    assert sharp_side_m(1000.0, 5.0, 3.26) == 1000.0
    assert sharp_side_m(1000.0, 5.0, 13.0) == pytest.approx(1000.0 * 5.0 / 13.0)
    assert gate_at(cfg, 360.0, sharp_side_m(1000.0, 5.0, 13.0)) > gate_at(cfg, 360.0, 1000.0)
    assert sharp_side_m(1000.0, 5.0, 13.0) < cfg.gate_evidence_max_side_m  # judged on evidence


def test_a_tile_kept_reduced_for_a_coarser_map_is_fetched_whole_for_its_own() -> None:
    """A cache of z17 tiles only: fetched for the 5 m map (z15) each is kept reduced to
    its 64 px there; fetched again for a map at half the scale (z16) it is kept at 128
    px, and for one at a quarter (z17 its own zoom) whole; the ladder's detail check
    finds each rung's detail only once it is there."""
    from gps_denied_onboard.nodes.tile_prefetch import TilePrefetch
    from gps_denied_onboard.visual_nav.config import VisualNavConfig
    from gps_denied_onboard.visual_nav.ground_scale import has_detail

    _, _, z17 = _world()
    cache = _Cache(z17)
    prefetch = TilePrefetch(cache.query, cache.get)
    cfg = VisualNavConfig(prefetch_radius_m=1000.0)
    prefetch.fetch(cfg, LAT0, LON0)
    px, py = latlon_to_world_px(LAT0, LON0, MAP_ZOOM + 2)
    under = (MAP_ZOOM + 2, int(px // TILE_PX), int(py // TILE_PX))
    assert prefetch.tiles.tile(*under).shape[:2] == (64, 64)
    fine = VisualNavConfig(prefetch_radius_m=1000.0, ground_scale=0.25)
    half = VisualNavConfig(prefetch_radius_m=1000.0, ground_scale=0.5)
    assert not has_detail(prefetch.tiles, fine.estimator_config(), LAT0, LON0)
    assert not has_detail(prefetch.tiles, half.estimator_config(), LAT0, LON0)
    # for a z16 map (half the scale) each is fetched again, kept at its 128 px there
    prefetch.fetch(half, LAT0, LON0)
    assert prefetch.tiles.tile(*under).shape[:2] == (128, 128)
    assert has_detail(prefetch.tiles, half.estimator_config(), LAT0, LON0)
    assert not has_detail(prefetch.tiles, fine.estimator_config(), LAT0, LON0)
    prefetch.fetch(fine, LAT0, LON0)
    assert prefetch.tiles.tile(*under).shape[:2] == (TILE_PX, TILE_PX)
    assert has_detail(prefetch.tiles, fine.estimator_config(), LAT0, LON0)
    # fetched for the coarse map again, the whole tile stays (it composes as well)
    got = len(cache.got)
    prefetch.fetch(cfg, LAT0, LON0)
    assert len(cache.got) == got
    assert prefetch.tiles.tile(*under).shape[:2] == (TILE_PX, TILE_PX)


def test_a_coarser_rungs_map_is_composed_of_the_tiles_held_for_the_configured_one() -> None:
    """A cache of z15 tiles only, fetched for the 5 m map: asked for the ladder's
    coarser rung too (a 10 m map, z14) the prefetch asks z14 first, finds none, and
    composes it of the z15 tiles it holds, fetching none again and keeping them whole;
    the rung's map is there by the detail check, which no cache of z13 tiles gives."""
    from gps_denied_onboard.nodes.tile_prefetch import TilePrefetch
    from gps_denied_onboard.visual_nav.config import VisualNavConfig
    from gps_denied_onboard.visual_nav.ground_scale import has_detail

    _, own, _ = _world()
    cache = _Cache(own)
    prefetch = TilePrefetch(cache.query, cache.get)
    cfg = VisualNavConfig(prefetch_radius_m=1000.0)
    prefetch.fetch(cfg, LAT0, LON0)
    held = set(cache.got)
    coarse = cfg.at_scale_factor(2.0)
    assert not has_detail(
        TilePrefetch(cache.query, cache.get).tiles, coarse.estimator_config(), LAT0, LON0
    )
    cache.zooms.clear()
    prefetch.fetch_rungs(cfg, (2.0, 1.0), LAT0, LON0)
    assert cache.zooms[:2] == [15, MAP_ZOOM - 1]  # finest first: z15 for the 5 m map, then z14
    assert held <= set(cache.got) and len(cache.got) == len(set(cache.got))  # none twice
    assert all(prefetch.tiles.tile(*k).shape[:2] == (TILE_PX, TILE_PX) for k in held)
    assert has_detail(prefetch.tiles, coarse.estimator_config(), LAT0, LON0)
    _, z13 = _coarser()
    assert not has_detail(DictTileSource(z13), coarse.estimator_config(), LAT0, LON0)


def _two_places() -> tuple[Pose, Tiles]:
    """A place 20 km east of LAT0, LON0, and a cache of 7 x 7 z15 tiles around each."""
    far = Pose(LAT0, LON0, 500.0).offset(20_000.0, 0.0)
    tiles: Tiles = {}
    for lat, lon in ((LAT0, LON0), (far.latitude, far.longitude)):
        px, py = latlon_to_world_px(lat, lon, MAP_ZOOM)
        cx, cy = int(px // TILE_PX), int(py // TILE_PX)
        for i in range(-3, 4):
            for j in range(-3, 4):
                tiles[(MAP_ZOOM, cx + i, cy + j)] = np.full((TILE_PX, TILE_PX, 3), 90, np.uint8)
    return far, tiles


def test_the_prefetch_drops_tiles_left_far_behind_and_fetches_them_again_on_return() -> None:
    """A cache of z15 tiles around two places 20 km apart, a 1 km prefetch radius: the
    first place's tiles are held there, kept 1 km on (under twice the radius), dropped
    at the second place with their ids, and fetched again back at the first."""
    from gps_denied_onboard.nodes.tile_prefetch import TilePrefetch
    from gps_denied_onboard.visual_nav.config import VisualNavConfig

    far, tiles = _two_places()
    cache = _Cache(tiles)
    prefetch = TilePrefetch(cache.query, cache.get)
    cfg = VisualNavConfig(prefetch_radius_m=1000.0)
    x, y = _centre_tile()
    prefetch.fetch_rungs(cfg, (1.0,), LAT0, LON0)
    held = set(prefetch.tiles.addresses())
    assert (MAP_ZOOM, x, y) in held and len(held) >= 9
    on = Pose(LAT0, LON0, 500.0).offset(1000.0, 0.0)
    prefetch.fetch_rungs(cfg, (1.0,), on.latitude, on.longitude)
    assert prefetch.tiles.has(MAP_ZOOM, x, y)
    prefetch.fetch_rungs(cfg, (1.0,), far.latitude, far.longitude)
    assert not prefetch.tiles.has(MAP_ZOOM, x, y)
    assert not held & set(prefetch.tiles.addresses())
    assert prefetch.tile_id_under(cfg, LAT0, LON0) == ""
    got = cache.got.count((MAP_ZOOM, x, y))
    prefetch.fetch_rungs(cfg, (1.0,), LAT0, LON0)
    assert cache.got.count((MAP_ZOOM, x, y)) == got + 1
    assert prefetch.tile_id_under(cfg, LAT0, LON0) == f"{MAP_ZOOM}/{x}/{y}"


def test_tiles_across_the_antimeridian_are_near_for_the_eviction() -> None:
    """At 179.99 W the last column of tiles (east of 180) is metres away, not a world."""
    from gps_denied_onboard.nodes.tile_prefetch import TilePrefetch

    prefetch = TilePrefetch(lambda _: None, lambda _: None)
    last = (1 << MAP_ZOOM) - 1
    row = (1 << MAP_ZOOM) // 2
    for x in (0, last, 100):
        prefetch.tiles.put(MAP_ZOOM, x, row, np.zeros((TILE_PX, TILE_PX), np.uint8))
    assert prefetch.evict([(-0.001, -179.999)], 2000.0) == 1
    assert sorted(prefetch.tiles.addresses()) == [(MAP_ZOOM, 0, row), (MAP_ZOOM, last, row)]


def test_a_map_wholly_composed_of_finer_tiles_asks_no_finer_zoom_still() -> None:
    """A z14 map (the ladder's coarser rung) over a cache of z15 tiles that cover its
    cells wholly: the prefetch asks z14, then z15, and stops there; with one z15 tile
    gone, the cell is not whole and z16 to z17 are asked for too (nothing to add
    there, but the cache might have had it)."""
    from gps_denied_onboard.nodes.tile_prefetch import TilePrefetch
    from gps_denied_onboard.visual_nav.config import VisualNavConfig

    _, z15 = synthetic_world()
    coarse = VisualNavConfig(prefetch_radius_m=500.0).at_scale_factor(2.0)
    cache = _Cache(z15)
    TilePrefetch(cache.query, cache.get).fetch(coarse, LAT0, LON0)
    assert cache.zooms == [14, 15]
    x, y = _centre_tile()
    cache = _Cache({k: v for k, v in z15.items() if k != (MAP_ZOOM, x, y)})
    TilePrefetch(cache.query, cache.get).fetch(coarse, LAT0, LON0)
    assert cache.zooms[:4] == [14, 15, 16, 17]


def test_where_a_healthy_gnss_leaves_our_track_the_prefetch_keeps_and_fetches_its_map() -> None:
    """Our last fix at the first place, then a GNSS still called healthy (a spoofer's
    drag) 20 km off: the prefetch centres on the GNSS, and fetches around our last
    fix too, keeping its tiles; once the GNSS agrees with a new fix, only one centre."""
    import logging

    from sensor_msgs.msg import NavSatFix

    from gps_denied_onboard.clock import ManualClock
    from gps_denied_onboard.nodes.tile_prefetch import TilePrefetch
    from gps_denied_onboard.nodes.visual_nav_inputs import EstimatorInputs
    from gps_denied_onboard.visual_nav.config import VisualNavConfig

    far, tiles = _two_places()
    inputs = EstimatorInputs(ManualClock(0), logging.getLogger("t"), lambda: None, lambda: True)
    inputs.fixed_at(LAT0, LON0)
    assert inputs.also_fetch() == []
    gnss = NavSatFix()
    gnss.status.status = 0  # STATUS_FIX
    gnss.latitude, gnss.longitude = far.latitude, far.longitude
    inputs.on_navsat(gnss)
    assert inputs.position == (far.latitude, far.longitude)
    assert inputs.also_fetch() == [(LAT0, LON0)]
    cache = _Cache(tiles)
    prefetch = TilePrefetch(cache.query, cache.get)
    cfg = VisualNavConfig(prefetch_radius_m=1000.0)
    x, y = _centre_tile()
    prefetch.fetch_rungs(cfg, (1.0,), *inputs.position, also=inputs.also_fetch())
    assert prefetch.tiles.has(MAP_ZOOM, x, y)  # under our track, 20 km from the GNSS
    fx, fy = (int(v // TILE_PX) for v in latlon_to_world_px(far.latitude, far.longitude, 15))
    assert prefetch.tiles.has(MAP_ZOOM, fx, fy)
    # without our track, the map under it is dropped
    prefetch.fetch_rungs(cfg, (1.0,), *inputs.position)
    assert not prefetch.tiles.has(MAP_ZOOM, x, y)
    inputs.fixed_at(far.latitude, far.longitude)
    assert inputs.also_fetch() == []
