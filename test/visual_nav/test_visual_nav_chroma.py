"""Saturation edges: the colour witness the gate asks of an uncorroborated match."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gps_denied_onboard.errors import ConfigError
from gps_denied_onboard.visual_nav.camera import CameraModel
from gps_denied_onboard.visual_nav.config import VisualNavConfig
from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.features import orientation_field, saturation_f32, to_gray_f32
from gps_denied_onboard.visual_nav.gate import (
    OBSCURED_SHARE,
    Verdict,
    evidence,
    evidence_extra_at,
    gate_at,
)
from gps_denied_onboard.visual_nav.raster import FieldRaster, raster_from_mosaic
from gps_denied_onboard.visual_nav.rectify import prepare, with_chroma
from gps_denied_onboard.visual_nav.views import FrameView
from gps_denied_onboard.visual_nav.witness import PlacedTemplate, colour_support

from .support import draw_blobs, judge_placed, make_estimator, naip_tiles


def _isoluminant_halves() -> np.ndarray:
    """BGR: a green left half and a gray right half of the same luma."""
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, :32] = (60, 140, 100)  # B, G, R: luma 0.114*60 + 0.587*140 + 0.299*100 = 118.9
    img[:, 32:] = (119, 119, 119)
    return img


def test_saturation_is_none_for_a_mono_frame_and_hsv_saturation_for_a_colour_one() -> None:
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert saturation_f32(bgr[:, :, 0]) is None
    assert saturation_f32(bgr[:, :, :1]) is None
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    got = saturation_f32(bgr)
    assert got is not None and got.dtype == np.float32
    np.testing.assert_array_equal(got, hsv[:, :, 1].astype(np.float32))
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)])
    np.testing.assert_array_equal(saturation_f32(bgra), got)
    # another depth: the same ratio (cv2 rounds to whole uint8 steps)
    as_float = saturation_f32(bgr.astype(np.float32) / 255.0)
    assert as_float is not None
    np.testing.assert_allclose(as_float, got, atol=1.0)
    assert float(saturation_f32(np.full((8, 8, 3), 77, np.uint8)).max()) == 0.0  # type: ignore[union-attr]


def test_a_boundary_of_colour_alone_is_an_edge_of_the_saturation_plane_only() -> None:
    img = _isoluminant_halves()
    gray_field, gray_energy = orientation_field(to_gray_f32(img), harmonics=1)
    sat = saturation_f32(img)
    assert sat is not None
    sat_field, sat_energy = orientation_field(sat, harmonics=1)
    assert gray_energy < 0.5  # the gray plane sees (almost) nothing
    assert float(np.abs(gray_field[0]).max()) < 0.05
    assert sat_energy > 5.0
    assert float(np.abs(sat_field[0][:, 28:36]).max()) > 0.3  # cos 2t of a vertical edge


def test_a_colour_frame_is_prepared_with_its_saturation_on_the_gray_grid() -> None:
    camera = CameraModel(320, 240, (300.0, 0.0, 160.0, 0.0, 300.0, 120.0, 0.0, 0.0, 1.0))
    rng = np.random.default_rng(2)
    bgr = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    # 500 m up, 300 px focal: 1.7 m per pixel, shrunk towards 5 m
    mono = prepare(to_gray_f32(bgr), camera, 500.0, 5.0)
    prep = with_chroma(mono, bgr, camera, 500.0, 5.0)
    assert prep.chroma is not None and prep.chroma.shape == prep.gray.shape
    assert prep.gray.shape[1] < 320  # shrunk
    assert mono.chroma is None
    with pytest.raises(ValueError, match="colour frame"):
        with_chroma(mono, bgr[:100], camera, 500.0, 5.0)


def test_a_frame_view_renders_its_saturation_only_when_asked_on_the_same_grid() -> None:
    camera = CameraModel(320, 240, (300.0, 0.0, 160.0, 0.0, 300.0, 120.0, 0.0, 0.0, 1.0))
    rng = np.random.default_rng(4)
    bgr = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    nadir_down = np.diag([1.0, -1.0, -1.0])  # optical axis straight down, image x east
    view = FrameView(to_gray_f32(bgr), camera, nadir_down, 500.0, bgr)
    gray = view.render(3.0, 1.02, 5.0)
    colour = view.render(3.0, 1.02, 5.0, colour=True)
    assert gray is not None and colour is not None
    assert gray.chroma is None  # the search's renders stay gray
    assert colour.chroma is not None and colour.chroma.shape == gray.image.shape
    np.testing.assert_array_equal(colour.mask, gray.mask)
    np.testing.assert_allclose(colour.image, gray.image, atol=1e-4)
    mono = FrameView(to_gray_f32(bgr), camera, nadir_down, 500.0)
    assert mono.render(3.0, 1.02, 5.0, colour=True).chroma is None  # type: ignore[union-attr]


def _coloured_ground() -> tuple[FieldRaster, np.ndarray]:
    """A raster whose saturation plane holds unique blobs; its gray plane is noise."""
    size = 300
    rng = np.random.default_rng(7)
    gray = (
        cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 2.0) * 40.0
        + 128.0
    ).astype(np.float32)
    sat = np.zeros((size, size), np.float32)
    draw_blobs(sat, rng, 120, (4, 14), (60, 200))
    valid = np.full((size, size), 255, np.uint8)
    return raster_from_mosaic(gray, valid, 0.0, 0.0, 1.0, harmonics=2, chroma=sat), sat


def _placed(
    raster: FieldRaster,
    plane: np.ndarray | None,
    at: tuple[int, int],
    gray_from: tuple[int, int] | None = None,
) -> PlacedTemplate:
    """A template placed at ``at``: its gray field cut from ``gray_from`` (default: the
    same place, so its quadrants agree), its saturation plane ``plane``."""
    mask = np.ones((80, 80), np.uint8)
    gx, gy = gray_from or at
    chans = tuple(c[gy : gy + 80, gx : gx + 80] for c in raster.channels[:2])
    return PlacedTemplate(
        chans, mask, raster, at[0], at[1], 1, 8, None if plane is None else (lambda: plane), 8
    )


def test_colour_support_stands_high_where_the_colour_edges_fit_and_low_elsewhere() -> None:
    raster, sat = _coloured_ground()
    mask = np.ones((80, 80), np.uint8)
    here = colour_support(sat[120:200, 100:180].copy(), mask, raster, (100, 120), 8)
    off = colour_support(sat[120:200, 100:180].copy(), mask, raster, (124, 120), 8)
    elsewhere = colour_support(sat[20:100, 200:280].copy(), mask, raster, (100, 120), 8)
    assert here is not None and off is not None and elsewhere is not None
    # measured: 3.28 at the place, 0.16 placed 24 px off, -0.49 cut from elsewhere
    assert here > 2.5
    assert off < 1.0 and elsewhere < 1.0
    # a neighbourhood past the raster's edge, or a raster without colour: no say
    assert colour_support(sat[:80, :80].copy(), mask, raster, (2, 2), 8) is None
    # a view whose colour is flat (a gray scene sent as BGR) has no say either
    assert colour_support(np.full((80, 80), 3.0, np.float32), mask, raster, (100, 120), 8) is None
    gray_only = FieldRaster(raster.channels, 0.0, 0.0, 1.0, raster.valid)
    assert colour_support(sat[:80, :80].copy(), mask, gray_only, (100, 120), 8) is None


def test_the_evidence_adds_weighted_agreement_and_colour_and_mono_has_its_own_bar() -> None:
    cfg = VisualNavConfig().estimator_config()
    assert evidence(cfg, 3.0, 2.0, 1.5) == pytest.approx(3.0 + 1.5 * 2.0 + 0.6 * 1.5)
    # a mono frame or map: no colour term, and a lower allowance at every radius
    assert evidence(cfg, 3.0, 2.0, None) == pytest.approx(3.0 + 1.5 * 2.0)
    for radius in (150.0, 360.0, 600.0):
        colour = evidence_extra_at(cfg, radius)
        mono = evidence_extra_at(cfg, radius, colour=False)
        # asked less, but never less than a right placement's typical colour (median
        # 2.0) would have added: a mono frame is not easier than a colour one
        assert colour - 0.6 * 2.0 <= mono < colour


def test_a_small_uncorroborated_template_passes_on_its_evidence_not_its_margin_alone() -> None:
    raster, sat = _coloured_ground()
    # the gray field from elsewhere (its quadrants do not agree here), the colour right
    placed = _placed(raster, sat[120:200, 100:180].copy(), (100, 120), gray_from=(180, 30))
    cfg = make_estimator(naip_tiles("2017")).cfg
    agreement, colour = placed.agreement(), placed.colour_support()
    assert colour is not None and colour > 2.5 and agreement < 1.5
    need = cfg.gate_margin_sigmas_small[1] + cfg.gate_evidence_extra_sigmas[1]  # 360 m search
    just = need - 1.5 * agreement - 0.6 * colour
    ok = judge_placed(placed, "fc_gnss", just + 0.05)
    assert isinstance(ok, Verdict) and ok.evidence == pytest.approx(need + 0.05, abs=1e-6)
    assert ok.gate == pytest.approx(need) and ok.colour_support == pytest.approx(colour)
    with pytest.raises(FrameRejected) as err:
        judge_placed(placed, "fc_gnss", just - 0.05)
    assert err.value.reason == "gate" and "evidence" in str(err.value)
    assert err.value.detail["evidence"] == pytest.approx(need - 0.05, abs=1e-3)
    assert err.value.detail["colour_support"] == pytest.approx(colour, abs=1e-3)
    # the same placement with no colour behind it needs more margin
    flat = _placed(raster, sat[20:100, 200:280].copy(), (100, 120), gray_from=(180, 30))
    flat_colour = flat.colour_support()
    assert flat_colour is not None and flat_colour < 1.0
    with pytest.raises(FrameRejected):
        judge_placed(flat, "fc_gnss", just + 0.05)
    # a mono frame: no colour term, against the mono allowance
    mono = _placed(raster, None, (100, 120), gray_from=(180, 30))
    with pytest.raises(FrameRejected):
        judge_placed(mono, "fc_gnss", just + 0.05)
    need_mono = cfg.gate_margin_sigmas_small[1] + cfg.gate_mono_extra_sigmas[1]
    passed = judge_placed(mono, "fc_gnss", need_mono - 1.5 * agreement + 0.05)
    assert isinstance(passed, Verdict) and passed.colour_support is None
    assert passed.evidence == pytest.approx(need_mono + 0.05, abs=1e-6)
    assert passed.gate == pytest.approx(need_mono)
    with pytest.raises(FrameRejected):
        judge_placed(mono, "fc_gnss", need_mono - 1.5 * agreement - 0.05)


def test_a_margin_over_the_gate_is_not_enough_without_agreement_or_colour() -> None:
    raster, sat = _coloured_ground()
    wrong = _placed(raster, sat[20:100, 200:280].copy(), (100, 120), gray_from=(180, 30))
    with pytest.raises(FrameRejected) as err:
        judge_placed(wrong, "fc_gnss", 4.5)  # a margin well over 3.25, nothing behind it
    assert err.value.reason == "gate" and "evidence" in str(err.value)
    # our own track corroborates it (the match lands on the prior): the margin is judged
    tracked = judge_placed(wrong, "visual", 4.5)
    assert isinstance(tracked, Verdict)
    assert tracked.evidence is None and tracked.colour_support is None
    # unless a healthy GNSS disagrees with that track (PriorTracker.holds): searched
    # there, the match still stands on its own evidence
    with pytest.raises(FrameRejected) as contested:
        judge_placed(wrong, "visual", 4.5, contested=True)
    assert "evidence" in str(contested.value) and "jump" not in str(contested.value)
    # a 1 km frame's template is judged on its margin too
    large = judge_placed(wrong, "fc_gnss", 4.5, side_m=900.0)
    assert isinstance(large, Verdict) and large.evidence is None
    # and so are frames stitched (their gate was calibrated on the margin)
    patch = judge_placed(wrong, "fc_gnss", 4.5, single_frame=False)
    assert isinstance(patch, Verdict) and patch.evidence is None


def test_the_evidence_gate_is_calibrated_above_the_certainly_wrong_matches() -> None:
    cfg = VisualNavConfig().estimator_config()
    # calibration pairs, 400 m frames, displaced priors, attitude error 0.15 deg, seeds
    # 20000-50000 and 140000: the best certainly-wrong evidence (margin + agreement +
    # colour + intensity; 3,106 / 4,370 / 4,440 over the score floor at 150 / 360 / 600
    # m) was 8.06, 7.62, 7.46, 7.38; 8.17, 8.15, 7.58, 7.24, 7.08; 8.14, 7.54, 7.34, 7.28,
    # 7.22; without the colour term 7.05, 6.87, 6.68, 6.57; 7.02, 7.02, 6.49, 6.24, 6.15;
    # 7.13, 6.84, 6.72, 6.27, 6.27: at most 1 per 1000 clears each bar
    radii = (150.0, 360.0, 600.0)
    bars = [gate_at(cfg, r, 380.0) + evidence_extra_at(cfg, r) for r in radii]
    assert bars[0] > 7.38 and bars[1] > 7.08 and bars[2] > 7.22
    # not above what needs it: right ones pay
    assert bars[0] < 7.46 and bars[1] < 7.24 and bars[2] < 7.28
    mono = [gate_at(cfg, r, 380.0) + evidence_extra_at(cfg, r, colour=False) for r in radii]
    assert mono[0] > 6.57 and mono[1] > 6.15 and mono[2] > 6.27
    assert mono[0] < 6.68 and mono[1] < 6.24 and mono[2] < 6.72
    with pytest.raises(ConfigError, match="gate_mono_extra_sigmas"):
        VisualNavConfig(gate_mono_extra_sigmas=(2.75, float("nan"), 2.9))
    with pytest.raises(ConfigError, match="gate_evidence_extra_sigmas"):
        VisualNavConfig(gate_evidence_extra_sigmas=(3.9, -1.0, 3.5))
    with pytest.raises(ConfigError, match="gate_evidence_extra_sigmas"):
        VisualNavConfig(gate_evidence_extra_sigmas=(3.4,))  # one per gate_radius_m
    with pytest.raises(ConfigError, match="gate_evidence_intensity_weight"):
        VisualNavConfig(gate_evidence_intensity_weight=-0.5)


def test_a_large_template_mostly_obscured_is_judged_on_its_evidence_not_its_margin() -> None:
    """A 1 km frame judged on its margin alone, but a fifth of its ground cloud or
    clipped: what is left of it is judged as a small template's evidence
    (gate.OBSCURED_SHARE: under cloud, roads of the mile grid lined up a mile off
    cleared the margin's gate, their evidence did not)."""
    raster, sat = _coloured_ground()
    cfg = make_estimator(naip_tiles("2017")).cfg
    side = 900.0  # past gate_side_m[1]: the margin's gate is the large one
    gate = cfg.gate_margin_sigmas_large[1]  # 360 m search
    # the gray field from elsewhere (its quadrants disagree), no colour behind it
    wrong = _placed(raster, sat[20:100, 200:280].copy(), (100, 120), gray_from=(180, 30))
    assert judge_placed(wrong, "fc_gnss", gate + 0.3, side).evidence is None  # clear: margin
    assert OBSCURED_SHARE > 0.0
    judged = judge_placed(wrong, "fc_gnss", gate + 0.3, side, obscured_share=OBSCURED_SHARE * 0.9)
    assert judged.evidence is None  # a little under the share: still the margin
    with pytest.raises(FrameRejected) as err:
        judge_placed(wrong, "fc_gnss", gate + 0.3, side, obscured_share=0.3)
    assert err.value.reason == "gate" and "evidence" in str(err.value)
    # a right placement of the same frame (its quadrants and colour agree) still passes
    right = _placed(raster, sat[120:200, 100:180].copy(), (100, 120))
    ok = judge_placed(right, "fc_gnss", gate + 0.3, side, obscured_share=0.3)
    need = gate + cfg.gate_evidence_extra_sigmas[1]
    assert ok.evidence is not None and ok.evidence >= need and ok.gate == pytest.approx(need)
