"""The orientation field the matcher correlates: what each harmonic keeps and loses."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gps_denied_onboard.visual_nav.features import orientation_field


def _lines(vertical: bool, horizontal: bool) -> np.ndarray:
    """A 64x64 grey image with a bright vertical and/or horizontal bar through the centre."""
    img = np.full((64, 64), 80.0, np.float32)
    if vertical:
        img[:, 30:34] = 200.0
    if horizontal:
        img[30:34, :] = 200.0
    return img


def _magnitudes(img: np.ndarray, post_blur: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    (c2, s2, c4, s4), _ = orientation_field(img, harmonics=2, post_blur=post_blur)
    return np.hypot(c2, s2), np.hypot(c4, s4)


def test_perpendicular_edges_cancel_in_the_doubled_angle_but_add_in_the_quadrupled() -> None:
    """At a crossing the smoothed doubled angle all but vanishes, the quadrupled does not."""
    one2, one4 = _magnitudes(_lines(vertical=True, horizontal=False))
    cross2, cross4 = _magnitudes(_lines(vertical=True, horizontal=True))
    # the crossing's corners, a few pixels diagonally off the centre
    at = (slice(26, 30), slice(26, 30))
    on_edge = (slice(26, 30), slice(28, 32))  # the same rows beside the lone vertical bar
    # measured: the doubled angle keeps 25 % of a lone edge's, the quadrupled 58 %
    assert cross2[at].mean() < 0.35 * one2[on_edge].mean()
    assert cross4[at].mean() > 0.5 * one4[on_edge].mean()
    assert cross4[at].mean() > 2.0 * cross2[at].mean()


def test_contrast_reversal_leaves_every_channel_unchanged() -> None:
    img = _lines(vertical=True, horizontal=True)
    rng = np.random.default_rng(3)
    img = img + rng.normal(0, 5, img.shape).astype(np.float32)
    a, ea = orientation_field(img, harmonics=2)
    b, eb = orientation_field(255.0 - img, harmonics=2)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-5)
    assert ea == pytest.approx(eb, rel=1e-5)


def test_a_quarter_turn_flips_the_first_harmonic_and_keeps_the_second() -> None:
    rng = np.random.default_rng(5)
    img = np.asarray(rng.uniform(0, 255, (48, 48)), np.float32)
    (c2, s2, c4, s4), _ = orientation_field(img, harmonics=2, pre_blur=1.5)
    (c2r, s2r, c4r, s4r), _ = orientation_field(np.rot90(img).copy(), harmonics=2, pre_blur=1.5)
    inner = (slice(4, -4), slice(4, -4))
    # rot90 moves pixel (r, c) to (W-1-c, r); compare each field at the same scene point
    np.testing.assert_allclose(np.rot90(c2)[inner], -c2r[inner], atol=1e-4)
    np.testing.assert_allclose(np.rot90(s2)[inner], -s2r[inner], atol=1e-4)
    np.testing.assert_allclose(np.rot90(c4)[inner], c4r[inner], atol=1e-4)
    np.testing.assert_allclose(np.rot90(s4)[inner], s4r[inner], atol=1e-4)


def test_a_masked_frame_gives_finite_channels_that_are_zero_outside_the_mask() -> None:
    """Outside the mask the gradient still sees the frame's edge; nothing may overflow,
    not even at mono16 brightness (gradients of 1e5)."""
    rng = np.random.default_rng(9)
    img = np.asarray(rng.uniform(0, 65535, (64, 64)), np.float32)
    img[:, 40:] = 0.0  # a hard edge where the mask ends
    mask = np.zeros((64, 64), np.uint8)
    mask[:, :40] = 255
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        chans, _ = orientation_field(img, mask, harmonics=2, post_blur=0.0)
    for ch in chans:
        assert np.all(np.isfinite(ch))
        assert not np.any(ch[:, 40:])


def test_one_harmonic_is_the_first_two_channels_of_two() -> None:
    img = _lines(vertical=True, horizontal=False)
    one, e1 = orientation_field(img, harmonics=1)
    two, e2 = orientation_field(img, harmonics=2)
    assert len(one) == 2 and len(two) == 4
    for x, y in zip(one, two[:2], strict=True):
        np.testing.assert_allclose(x, y, atol=1e-6)
    assert e1 == pytest.approx(e2, rel=1e-6)


def test_an_unsupported_harmonic_count_is_refused() -> None:
    with pytest.raises(ValueError, match="harmonics"):
        orientation_field(_lines(vertical=True, horizontal=False), harmonics=3)
