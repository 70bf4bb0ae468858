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
from gps_denied_onboard.visual_nav.witness import agreement_of, quadrant_peaks, spread_of

from .support import make_estimator, naip_tiles

F32 = np.float32


def _textured_raster() -> tuple[FieldRaster, tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(5)
    noise = rng.normal(0.0, 1.0, (300, 300)).astype(F32)
    gray = (cv2.GaussianBlur(noise, (0, 0), 2.0) * 40.0 + 128.0).astype(F32)
    chans, _ = orientation_field(gray, None, harmonics=1)
    return FieldRaster(chans, 0.0, 0.0, 1.0), chans


def quadrant_agreement(
    chans: tuple[np.ndarray, ...],
    mask: np.ndarray,
    raster: FieldRaster,
    placement: tuple[int, int],
    *,
    harmonics: int,
    reach_px: int,
) -> float:
    """What the gate reads: the mean standing of the placement's quadrants."""
    return agreement_of(
        quadrant_peaks(chans, mask, raster, placement, harmonics=harmonics, reach_px=reach_px)
    )


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


def test_quadrants_of_a_rigid_template_peak_together_and_a_bent_ones_apart() -> None:
    raster, chans = _textured_raster()
    mask = np.ones((80, 80), np.uint8)
    rigid = quadrant_peaks(_cut(chans, 100, 120), mask, raster, (100, 120), harmonics=1, reach_px=8)
    assert len(rigid) == 4
    assert all(abs(q.dx_px) < 0.3 and abs(q.dy_px) < 0.3 for q in rigid), rigid
    assert spread_of(rigid) == pytest.approx(0.0, abs=0.3)
    # the same ground with its right half cut 4 px further east: the template's
    # parts disagree about where it lies by 4 px, its quadrants say so
    left, shifted = _cut(chans, 100, 120), _cut(chans, 104, 120)
    right_half = np.arange(80)[None, :] >= 40
    bent = tuple(np.where(right_half, s, c).astype(F32) for c, s in zip(left, shifted, strict=True))
    peaks = quadrant_peaks(bent, mask, raster, (100, 120), harmonics=1, reach_px=8)
    east = sorted(q.dx_px for q in peaks)
    assert east[0] == pytest.approx(0.0, abs=0.5) and east[-1] == pytest.approx(4.0, abs=0.5)
    assert spread_of(peaks) == pytest.approx(2.0, abs=0.4)  # +-2 px about their mean
    # a bent template still stands at the placement in each quadrant, a little less
    assert 0.0 < agreement_of(peaks) < agreement_of(rigid)


def test_fewer_than_two_quadrants_give_no_spread() -> None:
    raster, chans = _textured_raster()
    mask = np.zeros((80, 80), np.uint8)
    mask[:40, :40] = 1  # one quadrant's worth of valid pixels: split, it is four small ones
    peaks = quadrant_peaks(_cut(chans, 100, 120), mask, raster, (100, 120), harmonics=1, reach_px=8)
    assert spread_of(peaks[:1]) is None
    assert spread_of(()) is None
