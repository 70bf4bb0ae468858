"""The gate's second witness: do the placed template's quadrants, each on its
own, agree with the placement? A chance peak is carried by one part of the
template, a right one by all of it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gps_denied_onboard.visual_nav.features import orientation_field
from gps_denied_onboard.visual_nav.gate import clears_gate
from gps_denied_onboard.visual_nav.raster import FieldRaster
from gps_denied_onboard.visual_nav.witness import quadrant_agreement

from .support import make_estimator, naip_tiles

F32 = np.float32


def _textured_raster() -> tuple[FieldRaster, tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(5)
    noise = rng.normal(0.0, 1.0, (300, 300)).astype(F32)
    gray = (cv2.GaussianBlur(noise, (0, 0), 2.0) * 40.0 + 128.0).astype(F32)
    chans, _ = orientation_field(gray, None, harmonics=1)
    return FieldRaster(chans, 0.0, 0.0, 1.0), chans


def _cut(chans: tuple[np.ndarray, ...], x: int, y: int) -> tuple[np.ndarray, ...]:
    return tuple(c[y : y + 80, x : x + 80].copy() for c in chans)


def test_a_template_cut_where_it_is_placed_agrees_in_every_quadrant() -> None:
    raster, chans = _textured_raster()
    mask = np.ones((80, 80), np.uint8)
    here = quadrant_agreement(
        _cut(chans, 100, 120), mask, raster, (100, 120), harmonics=1, reach_px=8
    )
    # the same template placed 20 px off: no quadrant stands out there
    off = quadrant_agreement(
        _cut(chans, 100, 120), mask, raster, (120, 120), harmonics=1, reach_px=8
    )
    assert here > 3.5, here
    assert off < 1.5, off


def test_a_placement_carried_by_one_quadrant_has_a_low_agreement() -> None:
    raster, chans = _textured_raster()
    mask = np.ones((80, 80), np.uint8)
    right, other = _cut(chans, 100, 120), _cut(chans, 200, 30)
    top_left = (np.arange(80)[:, None] < 40) & (np.arange(80)[None, :] < 40)
    one_part = tuple(
        np.where(top_left, r, o).astype(F32) for r, o in zip(right, other, strict=True)
    )
    whole = quadrant_agreement(right, mask, raster, (100, 120), harmonics=1, reach_px=8)
    part = quadrant_agreement(one_part, mask, raster, (100, 120), harmonics=1, reach_px=8)
    assert part < 0.4 * whole, (part, whole)


def test_quadrants_without_valid_pixels_are_left_out() -> None:
    raster, chans = _textured_raster()
    mask = np.zeros((80, 80), np.uint8)
    assert (
        quadrant_agreement(_cut(chans, 100, 120), mask, raster, (100, 120), harmonics=1, reach_px=8)
        == 0.0
    )
    # only the left half valid: its two quadrants are counted, and agree
    mask[:, :40] = 1
    half = quadrant_agreement(
        _cut(chans, 100, 120), mask, raster, (100, 120), harmonics=1, reach_px=8
    )
    assert half > 3.5, half


def test_a_margin_short_of_the_gate_passes_only_with_the_quadrants_behind_it() -> None:
    est = make_estimator(naip_tiles("2017"))
    cfg = est.cfg
    gate = 3.25
    assert clears_gate(cfg, gate, 0.0, gate)  # the margin alone
    need = gate + cfg.gate_agreement_extra_sigmas
    margin = 2.5
    agreement = (need - margin) / cfg.gate_agreement_weight
    assert clears_gate(cfg, margin, agreement, gate)
    assert not clears_gate(cfg, margin, agreement - 0.05, gate)
    # the calibrated setting: the best certainly-wrong 400 m match of 2,023 needed
    # 1.42 sigma over the gate, so the allowance keeps above it
    assert cfg.gate_agreement_extra_sigmas >= 1.42
    assert cfg.gate_agreement_weight == pytest.approx(1.0)
