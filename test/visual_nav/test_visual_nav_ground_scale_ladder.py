"""A vehicle lower down is matched at a finer ground scale, where the tiles hold the
detail; one higher up at a coarser one.

At 120 m above ground the test camera sees about 240 m: 48 px at the calibrated
5 m/px, under any gate. Halved twice (1.25 m/px, a z17 map at 47 N) it is 192 px,
as a 960 m frame was at 5 m/px (:mod:`gps_denied_onboard.visual_nav.ground_scale`).
At 1000 m it sees 2 km: doubled (10 m/px, a z14 map) it is the 1 km frame of 5 m/px.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from gps_denied_onboard.errors import ConfigError
from gps_denied_onboard.visual_nav.config import VisualNavConfig
from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.ground_scale import SLACK, wanted_level
from gps_denied_onboard.visual_nav.outputs import fix_payload
from gps_denied_onboard.visual_nav.simulate import Orthophoto, cut_tiles, synthetic_orthophoto

from .support import (
    CAMERA,
    LAT0,
    LON0,
    NS,
    T0,
    Pose,
    error_m,
    feed,
    make_estimator,
    render,
    synthetic_world,
)

Tiles = dict[tuple[int, int, int], NDArray[np.uint8]]


@lru_cache(maxsize=1)
def _world() -> tuple[Orthophoto, Tiles, Tiles]:
    """A 3 km synthetic orthophoto at 1 m/px, cut at z15 (the 5 m map's zoom) and z17."""
    ortho = synthetic_orthophoto(LAT0, LON0, size_m=3000.0, pixel_m=1.0, seed=5)
    return ortho, cut_tiles(ortho, 15), cut_tiles(ortho, 17)


def test_the_rung_follows_the_frames_width_with_a_margin_each_way() -> None:
    side = 700.0
    # a 1 km frame at 5 m/px is what the calibration saw: rung 0
    assert wanted_level(1000.0, 0, 5.0, side, 3) == 0
    # 240 m (120 m up): 480 calibrated metres at 2.5 m/px, 960 at 1.25: rung 2
    assert wanted_level(240.0, 0, 5.0, side, 3) == 2
    # never past the ladder's last rung
    assert wanted_level(40.0, 0, 5.0, side, 3) == 3
    assert wanted_level(240.0, 0, 5.0, side, 0) == 0
    # on rung 2 (1.25 m/px): 300 m stays (rung 1 would see 600, under 700 + slack) ...
    assert wanted_level(300.0, 2, 1.25, side, 3) == 2
    # ... 420 m climbs to rung 1 (840), not to rung 0 (420)
    assert wanted_level(420.0, 2, 1.25, side, 3) == 1
    # on rung 1, 330 m (660, within the slack under 700) stays
    assert wanted_level(330.0, 1, 2.5, side, 3) == 1
    # 2 km (1000 m up) would still see 1000 calibrated metres at 10 m/px: rung -1 ...
    assert wanted_level(2000.0, 0, 5.0, side, 3, coarser_levels=1) == -1
    # ... given a coarser rung, and never past the coarsest
    assert wanted_level(2000.0, 0, 5.0, side, 3, coarser_levels=0) == 0
    assert wanted_level(9000.0, 0, 5.0, side, 3, coarser_levels=1) == -1
    assert wanted_level(9000.0, 0, 5.0, side, 3, coarser_levels=2) == -2
    # 1 km stays at 5 m/px (500 at 10 m/px) ...
    assert wanted_level(1000.0, 0, 5.0, side, 3, coarser_levels=1) == 0
    # ... on rung -1, 1.3 km (650, within the slack under 700) stays, 1.1 km (550) comes back
    assert wanted_level(1300.0, -1, 10.0, side, 3, coarser_levels=1) == -1
    assert wanted_level(1100.0, -1, 10.0, side, 3, coarser_levels=1) == 0


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    width=st.floats(1.0, 20000.0),
    level=st.integers(-2, 4),
    levels=st.integers(0, 4),
    coarser=st.integers(0, 2),
    base=st.sampled_from([5.0, 1.0, 10.0]),
)
def test_a_rung_once_chosen_is_kept_and_sees_enough_ground(
    width: float, level: int, levels: int, coarser: int, base: float
) -> None:
    """Whatever rung it starts on: the rung chosen sees at least the side less the slack
    (or is the finest), its coarser neighbour would not see the side plus the slack (or
    it is the coarsest), and asked again from there the answer is the same (no
    flapping)."""
    side = 700.0
    level = min(max(level, -coarser), levels)

    def across(k: int) -> float:
        return width * 5.0 / (base / 2.0**k)

    k = wanted_level(width, level, base / 2.0**level, side, levels, coarser_levels=coarser)
    assert -coarser <= k <= levels
    assert k == levels or across(k) >= side * (1.0 - SLACK)
    assert k == -coarser or across(k - 1) < side * (1.0 + SLACK)
    assert wanted_level(width, k, base / 2.0**k, side, levels, coarser_levels=coarser) == k


def test_the_config_refuses_a_ladder_it_cannot_keep() -> None:
    for key, bad in (
        ("ground_scale_finer_levels", 5),
        ("ground_scale_finer_levels", -1),
        ("ground_scale_coarser_levels", 3),
        ("ground_scale_coarser_levels", -1),
        ("ground_scale_side_m", 0.0),
        ("ground_scale_side_m", math.nan),
    ):
        with pytest.raises(ConfigError) as err:
            VisualNavConfig(**{key: bad})  # type: ignore[arg-type]
        assert err.value.key == key
    est = VisualNavConfig(
        ground_scale_finer_levels=2, ground_scale_coarser_levels=2, ground_scale_side_m=650.0
    )
    assert est.estimator_config().scale_finer_levels == 2
    assert est.estimator_config().scale_coarser_levels == 2
    assert est.estimator_config().scale_side_m == 650.0


def _fix_at(tiles: Tiles, pose: Pose, **cfg: object) -> VisualFix:
    ortho, _, _ = _world()
    est = make_estimator(tiles, **cfg)
    feed(est, T0, pose, prior=pose.offset(15.0, -20.0))
    return est.process(T0, render(ortho, pose), CAMERA)


@pytest.mark.parametrize("agl", [120.0, 60.0])
def test_a_low_frame_is_fixed_at_a_quarter_of_the_scale_over_z17_tiles(agl: float) -> None:
    """120 m and 60 m above ground over z15 and z17 tiles: matched at 1.25 m/px (60 m
    would take 0.625 m/px, but no z18 tile holds that detail), fixed within 1.5 m and
    3 sigma. At the configured 5 m/px the 120 m frame's fix claims a sigma over 5 times
    as wide, and the 60 m frame (24 px) none at all."""
    _, z15, z17 = _world()
    pose = Pose(LAT0, LON0, agl, roll_deg=2.0, pitch_deg=-3.0, yaw_deg=35.0)
    fix = _fix_at({**z15, **z17}, pose)
    assert fix.resolution_m == pytest.approx(1.25)
    err = math.hypot(*error_m(pose, fix.latitude, fix.longitude))
    assert err < 1.5, err
    assert err < 3.0 * fix.sigma_m
    assert fix_payload(fix, 10.0)["resolution_m"] == 1.25
    if agl > 100.0:
        coarse = _fix_at({**z15, **z17}, pose, scale_finer_levels=0)
        assert coarse.resolution_m == 5.0
        assert coarse.sigma_m > 5.0 * fix.sigma_m, (coarse.sigma_m, fix.sigma_m)
    else:
        with pytest.raises(FrameRejected):
            _fix_at({**z15, **z17}, pose, scale_finer_levels=0)


def test_without_finer_tiles_under_it_a_low_frame_stays_at_the_configured_scale() -> None:
    """Only z15 tiles: a finer rung would match an enlarged z15 map, no detail gained;
    the frame is matched at 5 m/px on a z15 map, though its width asks for rung 2."""
    ortho, z15, _ = _world()
    pose = Pose(LAT0, LON0, 120.0, yaw_deg=35.0)
    est = make_estimator(z15)
    feed(est, T0, pose, prior=pose.offset(15.0, -20.0))
    fix = est.process(T0, render(ortho, pose), CAMERA)
    assert fix.resolution_m == 5.0
    assert est.scales.level == 0 and est.scales.wanted == 2
    assert est.mosaic is not None and est.mosaic.zoom == 15


def test_a_descent_and_a_climb_move_the_scale_and_every_frame_is_fixed() -> None:
    """500 m -> 120 m -> 500 m above ground, a frame a second apart at each height: the
    frames are matched at 5, 1.25 and 5 m/px, each fixed within 3 sigma; the map window
    is built again at each move, and a jump off the track is confirmed at the scale's
    ``min_jump_m``."""
    ortho, z15, z17 = _world()
    est = make_estimator({**z15, **z17})
    heights = (500.0, 500.0, 120.0, 120.0, 500.0)
    got = []
    for i, agl in enumerate(heights):
        t = T0 + i * NS
        pose = Pose(LAT0, LON0, agl, yaw_deg=20.0).offset(12.0 * i, 8.0 * i)
        feed(est, t, pose, prior=pose.offset(10.0, -15.0))
        fix = est.process(t, render(ortho, pose), CAMERA)
        err = math.hypot(*error_m(pose, fix.latitude, fix.longitude))
        assert err < 3.0 * fix.sigma_m, (agl, err, fix.sigma_m)
        got.append(
            (fix.resolution_m, est.mosaic.zoom if est.mosaic else None, est.priors.cfg.min_jump_m)
        )
    # what counts as a jump follows the scale, in the track's confirmation as in the gate
    assert got == [
        (5.0, 15, 25.0),
        (5.0, 15, 25.0),
        (1.25, 17, 6.25),
        (1.25, 17, 6.25),
        (5.0, 15, 25.0),
    ]


def test_a_high_frame_is_matched_at_twice_the_scale_on_a_map_of_reduced_tiles() -> None:
    """1000 m above ground (a 2 km frame, 400 px at 5 m/px) over z15 tiles only: matched
    at 10 m/px on a z14 map composed of them, fixed within 3 sigma and a few metres, as
    it is at 5 m/px without the coarser rung."""
    ortho, z15 = synthetic_world()
    pose = Pose(LAT0, LON0, 1000.0, roll_deg=1.5, pitch_deg=-2.0, yaw_deg=35.0)
    got = {}
    for coarser in (1, 0):
        est = make_estimator(z15, scale_coarser_levels=coarser)
        feed(est, T0, pose, prior=pose.offset(60.0, -45.0))
        fix = est.process(T0, render(ortho, pose), CAMERA)
        err = math.hypot(*error_m(pose, fix.latitude, fix.longitude))
        assert err < 1.5 and err < 3.0 * fix.sigma_m, (coarser, err, fix.sigma_m)
        got[coarser] = (fix.resolution_m, est.mosaic.zoom if est.mosaic else None)
    assert got == {1: (10.0, 14), 0: (5.0, 15)}


def test_a_climb_and_a_descent_move_the_scale_up_and_back() -> None:
    """500 m -> 1000 m -> 500 m above ground over z15 tiles: matched at 5, 10 and 5 m/px
    (the coarser rung needs no finer tile), each frame fixed within 3 sigma."""
    ortho, z15 = synthetic_world()
    est = make_estimator(z15)
    got = []
    for i, agl in enumerate((500.0, 1000.0, 1000.0, 500.0)):
        t = T0 + i * NS
        pose = Pose(LAT0, LON0, agl, yaw_deg=-40.0).offset(15.0 * i, -10.0 * i)
        feed(est, t, pose, prior=pose.offset(20.0, 25.0))
        fix = est.process(t, render(ortho, pose), CAMERA)
        err = math.hypot(*error_m(pose, fix.latitude, fix.longitude))
        assert err < 3.0 * fix.sigma_m, (agl, err, fix.sigma_m)
        got.append(fix.resolution_m)
    assert got == [5.0, 10.0, 10.0, 5.0]


def test_over_coarser_tiles_only_a_high_frame_still_takes_the_coarser_rung() -> None:
    """A cache of z13 tiles only: the configured 5 m map (z15) would enlarge them 4x,
    the coarser rung's (z14) 2x, from the same pixels; a 1000 m frame is matched there
    and fixed within 3 sigma."""
    ortho, _ = synthetic_world()
    pose = Pose(LAT0, LON0, 1000.0, yaw_deg=60.0)
    est = make_estimator(cut_tiles(ortho, 13))
    feed(est, T0, pose, prior=pose.offset(-30.0, 40.0))
    fix = est.process(T0, render(ortho, pose), CAMERA)
    assert (fix.resolution_m, est.scales.level) == (10.0, -1)
    assert est.mosaic is not None and est.mosaic.zoom == 14
    err = math.hypot(*error_m(pose, fix.latitude, fix.longitude))
    assert err < 3.0 * fix.sigma_m, (err, fix.sigma_m)
