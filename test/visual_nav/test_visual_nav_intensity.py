"""The gray levels as the gate's witness: ``witness.intensity_support`` and the evidence."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gps_denied_onboard.visual_nav.config import VisualNavConfig
from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.gate import evidence
from gps_denied_onboard.visual_nav.outputs import fix_payload, reject_payload
from gps_denied_onboard.visual_nav.raster import FieldRaster, raster_from_mosaic
from gps_denied_onboard.visual_nav.witness import PlacedTemplate, intensity_support

from .support import draw_blobs, judge_placed, make_estimator, naip_tiles


def _ground() -> FieldRaster:
    """Fields of random brightness (blobs) over a little texture."""
    size = 300
    rng = np.random.default_rng(11)
    gray = (
        cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 1.5) * 8.0
        + 120.0
    ).astype(np.float32)
    draw_blobs(gray, rng, 150, (4, 16), (40, 220))
    valid = np.full((size, size), 255, np.uint8)
    return raster_from_mosaic(gray, valid, 0.0, 0.0, 1.0, harmonics=2)


def test_intensity_support_stands_high_where_the_gray_levels_fit_and_low_elsewhere() -> None:
    raster = _ground()
    assert raster.gray is not None
    mask = np.ones((80, 80), np.uint8)
    cut = raster.gray[120:200, 100:180].copy()
    here = intensity_support(cut, mask, raster, (100, 120), 8)
    off = intensity_support(cut, mask, raster, (124, 120), 8)
    elsewhere = intensity_support(raster.gray[20:100, 200:280].copy(), mask, raster, (100, 120), 8)
    assert here is not None and off is not None and elsewhere is not None
    assert here > 2.5
    assert off < 1.0 and elsewhere < 1.0
    # brighter and of more contrast (another year, another exposure): the same witness
    relit = intensity_support(1.6 * cut + 30.0, mask, raster, (100, 120), 8)
    assert relit == pytest.approx(here, abs=1e-3)
    # a neighbourhood past the raster's edge, a uniform view, a raster without its
    # gray plane: no say
    assert intensity_support(raster.gray[:80, :80].copy(), mask, raster, (2, 2), 8) is None
    flat = np.full((80, 80), 90.0, np.float32)
    assert intensity_support(flat, mask, raster, (100, 120), 8) is None
    bare = FieldRaster(raster.channels, 0.0, 0.0, 1.0, raster.valid)
    assert intensity_support(cut, mask, bare, (100, 120), 8) is None


def test_the_evidence_adds_the_weighted_intensity_support() -> None:
    cfg = VisualNavConfig().estimator_config()
    w = cfg.gate_evidence_intensity_weight
    assert 0.0 < w <= 1.0
    both = evidence(cfg, 3.0, 2.0, 1.5, 1.2)
    assert both == pytest.approx(evidence(cfg, 3.0, 2.0, 1.5) + w * 1.2)
    assert evidence(cfg, 3.0, 2.0, None, 1.2) == pytest.approx(
        evidence(cfg, 3.0, 2.0, None) + w * 1.2
    )
    # a negative witness (the brightness disagrees) counts against the placement
    assert evidence(cfg, 3.0, 2.0, 1.5, -1.0) < evidence(cfg, 3.0, 2.0, 1.5)


def test_a_small_uncorroborated_template_carries_its_intensity_into_the_evidence() -> None:
    raster = _ground()
    assert raster.gray is not None
    mask = np.ones((80, 80), np.uint8)
    # the orientation field from elsewhere (its quadrants do not agree here): the gray
    # levels are what tells the two placements apart
    chans = tuple(c[30:110, 180:260] for c in raster.channels[:2])
    right = PlacedTemplate(
        chans, mask, raster, 100, 120, 1, 8, None, 8, raster.gray[120:200, 100:180].copy()
    )
    wrong = PlacedTemplate(
        chans, mask, raster, 100, 120, 1, 8, None, 8, raster.gray[20:100, 200:280].copy()
    )
    cfg = make_estimator(naip_tiles("2017")).cfg
    i_right, i_wrong = right.intensity_support(), wrong.intensity_support()
    assert i_right is not None and i_wrong is not None and i_right > i_wrong + 2.0
    agreement = right.agreement()
    assert agreement < 1.5
    need = cfg.gate_margin_sigmas_small[1] + cfg.gate_mono_extra_sigmas[1]  # mono, 360 m
    margin = need - 1.5 * agreement - cfg.gate_evidence_intensity_weight * i_right + 0.05
    ok = judge_placed(right, "fc_gnss", margin)
    assert ok.intensity_support == pytest.approx(i_right)
    assert ok.evidence == pytest.approx(need + 0.05, abs=1e-6)
    # the same margin and agreement with the brightness of another place behind it
    with pytest.raises(FrameRejected) as err:
        judge_placed(wrong, "fc_gnss", margin)
    assert err.value.detail["intensity_support"] == pytest.approx(i_wrong, abs=1e-3)
    assert reject_payload(err.value, 3.0)["intensity_support"] == pytest.approx(i_wrong, abs=1e-3)


def test_a_fix_record_carries_the_intensity_support_when_it_was_taken() -> None:
    from dataclasses import replace

    base = VisualFix(
        stamp_ns=1,
        latitude=47.02,
        longitude=-99.15,
        altitude_msl=780.0,
        sigma_m=6.0,
        velocity_en=None,
        velocity_sigma=1.0,
        yaw_enu=0.3,
        yaw_sigma=0.02,
        quality=60,
        reset_counter=0,
        margin=0.2,
        margin_sigmas=4.0,
        score=0.3,
        template_px=6000,
        height_m=200.0,
        height_source="altitude",
        heading_offset_deg=1.0,
        scale=1.0,
        search_radius_m=360.0,
        prior_source="fc_gnss",
        footprint_m=400.0,
    )
    assert "intensity_support" not in fix_payload(base, 10.0)
    got = fix_payload(replace(base, intensity_support=1.23456, evidence=7.0), 10.0)
    assert got["intensity_support"] == 1.235 and got["evidence"] == 7.0
