"""A map finer than the calibration's: the ground distances follow ``ground_scale``."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest

from gps_denied_onboard.errors import ConfigError
from gps_denied_onboard.visual_nav.config import VisualNavConfig
from gps_denied_onboard.visual_nav.estimator import VisualEstimator
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.geo import zoom_for_resolution
from gps_denied_onboard.visual_nav.mapview import DictTileSource
from gps_denied_onboard.visual_nav.settings import EstimatorConfig
from gps_denied_onboard.visual_nav.simulate import cut_tiles, synthetic_orthophoto
from gps_denied_onboard.visual_nav.uncertainty import (
    UNMEASURED_FRAME_OFFSET_M,
    UNMEASURED_SPREAD_M,
    patch_frame_offset_m,
    patch_spread_m,
)

from .support import CAMERA, GROUND_MSL, LAT0, LON0, NS, T0, Pose, error_m, feed, render

#: what counts map pixels: scaled by the ground scale (areas by its square, a growth
#: per 100 m by its inverse)
SCALED = {
    "gate_radius_m",
    "gate_side_m",
    "gate_small_side_m",
    "gate_evidence_max_side_m",
    "min_search_radius_m",
    "max_search_radius_m",
    "mosaic_half_size_m",
    "min_jump_m",
    "stitch_sigma_margin_m",
    "stitch_frame_check_m",
    "stitch_flip_frame_offset_m",
    "stitch_flip_jump_m",
    "single_sigma_margin_m",
}


def _changed(a: object, b: object) -> set[str]:
    return {f.name for f in fields(a) if getattr(a, f.name) != getattr(b, f.name)}  # type: ignore[arg-type]


def test_ground_scale_one_is_the_calibration_and_the_node_scales_the_calibration() -> None:
    cfg = EstimatorConfig()
    assert cfg.at_ground_scale(1.0) is cfg
    calibrated = VisualNavConfig().estimator_config()
    assert VisualNavConfig(ground_scale=0.2).estimator_config() == calibrated.at_ground_scale(0.2)


def test_a_fifth_scales_what_counts_pixels_and_leaves_the_world_in_metres() -> None:
    cfg = EstimatorConfig(stitch_sigma_margin_m=4.0)  # not 0: its scaling shows
    got = cfg.at_ground_scale(0.2)
    assert _changed(got, cfg) == SCALED | {"match", "odometry", "gate_small_side_sigmas_per_100m"}
    for name in SCALED:
        was, now = getattr(cfg, name), getattr(got, name)
        if isinstance(was, tuple):
            assert now == pytest.approx(tuple(0.2 * v for v in was)), name
        else:
            assert now == pytest.approx(0.2 * was), name
    assert got.gate_small_side_sigmas_per_100m == pytest.approx(
        5.0 * cfg.gate_small_side_sigmas_per_100m
    )
    assert _changed(got.match, cfg.match) == {"resolution_m", "coarse_resolution_m", "exclusion_m"}
    assert (got.match.resolution_m, got.match.coarse_resolution_m) == pytest.approx((1.0, 2.0))
    assert got.match.exclusion_m == pytest.approx(0.2 * cfg.match.exclusion_m)
    assert _changed(got.odometry, cfg.odometry) == {
        "search_m",
        "stitch_below_area_m2",
        "stitch_target_area_m2",
    }
    assert got.odometry.search_m == pytest.approx(0.2 * cfg.odometry.search_m)
    assert got.odometry.stitch_target_area_m2 == pytest.approx(
        0.04 * cfg.odometry.stitch_target_area_m2
    )
    # the world's own: the map's georeference, the attitude, GNSS and FC sigmas, speeds
    for name in ("map_sigma_m", "attitude_sigma_deg", "gnss_prior_sigma_m", "fc_estimate_sigma_m"):
        assert getattr(got, name) == getattr(cfg, name), name
    assert got.prior_velocity_sigma == cfg.prior_velocity_sigma


def test_an_unmeasured_patch_term_is_taken_at_the_map_resolution() -> None:
    assert patch_spread_m(None) == UNMEASURED_SPREAD_M
    assert patch_frame_offset_m(None) == UNMEASURED_FRAME_OFFSET_M
    assert patch_spread_m(None, 1.0) == pytest.approx(0.2 * UNMEASURED_SPREAD_M)
    assert patch_frame_offset_m(None, 1.0) == pytest.approx(0.2 * UNMEASURED_FRAME_OFFSET_M)
    assert patch_spread_m(3.0, 1.0) == 3.0  # a measured one stands
    assert patch_frame_offset_m(3.0, 1.0) == 3.0


@pytest.mark.parametrize("scale", [0.0, -0.2, math.nan, math.inf])
def test_a_ground_scale_that_is_not_a_positive_number_is_refused(scale: float) -> None:
    with pytest.raises(ValueError, match="ground scale"):
        EstimatorConfig().at_ground_scale(scale)
    with pytest.raises(ConfigError) as err:
        VisualNavConfig(ground_scale=scale)
    assert err.value.key == "ground_scale"


def test_the_node_fetches_matches_and_snapshots_at_the_scaled_map() -> None:
    at_one, fine = VisualNavConfig(), VisualNavConfig(ground_scale=0.2)
    assert (at_one.map_resolution_m, at_one.map_prefetch_radius_m) == (5.0, 3000.0)
    assert at_one.map_snapshot_zoom == at_one.snapshot_zoom == 16
    assert fine.map_resolution_m == pytest.approx(1.0)
    assert fine.map_prefetch_radius_m == pytest.approx(600.0)  # as many tiles, 2 zooms finer
    assert fine.map_snapshot_zoom == 18
    assert zoom_for_resolution(LAT0, fine.map_resolution_m) == 17
    assert fine.estimator_config().match.resolution_m == pytest.approx(1.0)
    assert VisualNavConfig(ground_scale=1e-6).map_snapshot_zoom == 22  # held at the top


def test_frames_from_100_m_on_a_1_m_map_fix_to_decimetres_with_a_metre_sigma() -> None:
    """200 m frames (100 m above ground, 90 deg lens) over a 0.5 m/px world: matched
    at 5 m/px they are 40 px templates, below the gate's calibration, and their fixes
    claim tens of metres; at ground scale 0.2 (1 m/px) they are what a 1 km frame is
    at 5 m/px, and claim what the attitude's error leaves (0.5 deg at 100 m)."""
    ortho = synthetic_orthophoto(LAT0, LON0, size_m=1500.0, pixel_m=0.5, seed=3)
    got: dict[float, list[tuple[float, float]]] = {}
    for scale in (0.2, 1.0):
        cfg = EstimatorConfig(ground_elevation_msl=GROUND_MSL, map_sigma_m=0.3)
        cfg = cfg.at_ground_scale(scale)
        tiles = cut_tiles(ortho, zoom_for_resolution(LAT0, cfg.match.resolution_m))
        est = VisualEstimator(cfg, DictTileSource(tiles))
        rng = np.random.default_rng(5)
        got[scale] = []
        for k in range(6):
            roll, pitch, yaw = rng.uniform(-8, 8), rng.uniform(-8, 8), rng.uniform(-180, 180)
            pose = Pose(LAT0, LON0, 100.0, roll, pitch, yaw).offset(*rng.uniform(-300, 300, 2))
            a = rng.uniform(0, 2 * math.pi)
            stamp = T0 + k * 100 * NS
            prior = pose.offset(40 * math.cos(a), 40 * math.sin(a))
            feed(est, stamp, pose, prior=prior, prior_sigma_m=20.0)
            fix = est.process(stamp, render(ortho, pose), CAMERA)
            assert isinstance(fix, VisualFix)
            e, n = error_m(pose, fix.latitude, fix.longitude)
            got[scale].append((math.hypot(e, n), fix.sigma_m))
    fine, coarse = np.array(got[0.2]), np.array(got[1.0])
    assert np.all(fine[:, 0] < 0.3), fine
    assert np.all(fine[:, 1] < 1.5), fine  # the attitude term, 0.87 m, and the map's 0.3
    assert np.all(fine[:, 0] <= fine[:, 1]), fine
    assert np.all(coarse[:, 1] > 10.0 * fine[:, 1]), coarse


def test_the_diagnostics_say_which_ground_scale_the_frames_fit() -> None:
    from gps_denied_onboard.visual_nav.outputs import VisualNavStats
    from gps_denied_onboard.visual_nav.settings import ground_scale_for

    assert ground_scale_for(583.0) == pytest.approx(1.0)
    stats = VisualNavStats()
    assert stats.ground_scale_hint() is None and stats.ground_scale_mismatch(1.0) is None
    assert "ground_scale_hint" not in stats.as_dict()
    # 100 m above ground: 190 m templates, fixed or turned down by the gate alike
    for k in range(10):
        stats.on_fix(k, 20.0, template_side_m=190.0)
        stats.on_reject("gate", 20.0, template_side_m=195.0)
    stats.on_reject("no_tiles", 1.0)  # says nothing about the ground
    stats.on_fix(99, 20.0, template_side_m=0.0)
    assert stats.ground_scale_hint() == pytest.approx(192.5 / 583.0)
    values = stats.as_dict()
    assert values["template_side_m"] == 192.5 and values["ground_scale_hint"] == 0.33
    assert stats.ground_scale_mismatch(1.0) == pytest.approx(0.33, abs=0.005)  # 3x off
    assert stats.ground_scale_mismatch(0.2) is None  # within 2x of what is set
    assert stats.ground_scale_mismatch(0.1) is not None
