"""Masked ZNCC by DFT: the formula, one window's spectra shared by several templates, and
the form normalised over the overlap of two masks (frame-to-frame registration)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gps_denied_onboard.visual_nav.correlate import (
    masked_zncc,
    masked_zncc_within,
    overlap_zncc,
    prepare_template,
    window_spectra,
)


def _field(rng: np.random.Generator, rows: int, cols: int) -> tuple[np.ndarray, ...]:
    return tuple(rng.standard_normal((rows, cols)).astype(np.float32) for _ in range(2))


def _direct(
    window: tuple[np.ndarray, ...], t: tuple[np.ndarray, ...], m: np.ndarray, r: int, c: int
) -> float:
    """ZNCC at one placement, straight from the definition (means under the mask)."""
    ht, wt = m.shape
    sel = m > 0
    tz = np.concatenate([x[sel] - x[sel].mean() for x in t]).astype(np.float64)
    wz = np.concatenate(
        [w[r : r + ht, c : c + wt][sel] - w[r : r + ht, c : c + wt][sel].mean() for w in window]
    ).astype(np.float64)
    return float(tz @ wz / np.sqrt((tz @ tz) * (wz @ wz)))


def test_masked_zncc_is_the_zero_normalised_correlation_under_the_mask() -> None:
    rng = np.random.default_rng(3)
    window = _field(rng, 70, 80)
    mask = (rng.random((30, 25)) > 0.4).astype(np.uint8)
    t = tuple(
        w[12:42, 20:45].copy() + 0.3 * rng.standard_normal((30, 25)).astype(np.float32)
        for w in window
    )
    score = masked_zncc(window, prepare_template(t, mask))
    assert score.shape == (70 - 30 + 1, 80 - 25 + 1)
    assert divmod(int(score.argmax()), score.shape[1]) == (12, 20)
    for r, c in ((12, 20), (0, 0), (40, 55), (7, 33)):
        assert score[r, c] == pytest.approx(_direct(window, t, mask, r, c), abs=2e-4)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    ht=st.integers(8, 30),
    wt=st.integers(8, 30),
    extra_r=st.integers(0, 20),
    extra_c=st.integers(0, 20),
    r0=st.integers(0, 15),
    c0=st.integers(0, 15),
)
def test_a_shared_window_gives_the_scores_of_each_sub_window(
    seed: int, ht: int, wt: int, extra_r: int, extra_c: int, r0: int, c0: int
) -> None:
    """The coarse search and the refinement correlate several templates against one
    transformed window; each must score as if it had its own window."""
    rng = np.random.default_rng(seed)
    rows, cols = ht + extra_r, wt + extra_c  # the sub-window: placements over it
    window = _field(rng, r0 + rows + 9, c0 + cols + 5)
    mask = (rng.random((ht, wt)) > 0.3).astype(np.uint8)
    mask[ht // 2, wt // 2] = 1
    tpl = prepare_template(_field(rng, ht, wt), mask)
    own = masked_zncc(tuple(w[r0 : r0 + rows, c0 : c0 + cols] for w in window), tpl)
    shared = masked_zncc_within(window_spectra(window), tpl, (c0, r0, cols - wt + 1, rows - ht + 1))
    assert shared.shape == own.shape
    np.testing.assert_allclose(shared, own, atol=1e-4)


def test_placements_that_leave_the_shared_window_are_refused() -> None:
    rng = np.random.default_rng(5)
    spectra = window_spectra(_field(rng, 40, 40))
    tpl = prepare_template(_field(rng, 10, 10), np.ones((10, 10), np.uint8))
    assert masked_zncc_within(spectra, tpl, (0, 0, 31, 31)).shape == (31, 31)
    with pytest.raises(ValueError, match="leave the window"):
        masked_zncc_within(spectra, tpl, (1, 0, 31, 31))
    with pytest.raises(ValueError, match="leave the window"):
        masked_zncc_within(spectra, tpl, (-1, 0, 5, 5))


def _direct_overlap(
    window: tuple[np.ndarray, ...],
    wmask: np.ndarray,
    t: tuple[np.ndarray, ...],
    m: np.ndarray,
    r: int,
    c: int,
) -> tuple[float, int]:
    """ZNCC at one placement over the pixels both masks keep, and how many they are."""
    ht, wt = m.shape
    sel = (m > 0) & (wmask[r : r + ht, c : c + wt] > 0)
    if sel.sum() < 2:
        return math.nan, int(sel.sum())  # no correlation over fewer than two pixels
    tz = np.concatenate([x[sel] - x[sel].mean() for x in t]).astype(np.float64)
    wz = np.concatenate(
        [w[r : r + ht, c : c + wt][sel] - w[r : r + ht, c : c + wt][sel].mean() for w in window]
    ).astype(np.float64)
    return float(tz @ wz / np.sqrt((tz @ tz) * (wz @ wz))), int(sel.sum())


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), cut_r=st.integers(0, 30), cut_c=st.integers(0, 30))
def test_overlap_zncc_is_the_correlation_over_the_ground_both_masks_keep(
    seed: int, cut_r: int, cut_c: int
) -> None:
    """Where the window's own mask cuts into a placement, only the pixels both keep count:
    the window's invalid part neither scores nor dilutes the means and variances."""
    rng = np.random.default_rng(seed)
    window = _field(rng, 50, 60)
    wmask = np.ones((50, 60), np.uint8)
    wmask[:cut_r, :] = 0  # a frame's edge: its top rows and left columns invalid
    wmask[:, :cut_c] = 0
    mask = (rng.random((24, 28)) > 0.2).astype(np.uint8)
    t = _field(rng, 24, 28)
    tpl = prepare_template(t, mask)
    min_overlap = 0.25 * tpl.count
    score = overlap_zncc(window, wmask, tpl, min_overlap)
    assert score.shape == (50 - 24 + 1, 60 - 28 + 1)
    for r, c in ((0, 0), (26, 32), (10, 5), (cut_r // 2, cut_c // 2), (20, 30)):
        want, overlap = _direct_overlap(window, wmask, t, mask, r, c)
        if overlap < min_overlap:
            assert score[r, c] == -1.0
        else:
            assert score[r, c] == pytest.approx(want, abs=1e-4)


def test_overlap_zncc_finds_a_template_beside_the_windows_invalid_edge() -> None:
    """A window valid on its right half only, the template lying across the edge: the
    template's valid part still finds its place and scores as an exact copy there."""
    rng = np.random.default_rng(11)
    window = _field(rng, 60, 60)
    wmask = np.zeros((60, 60), np.uint8)
    wmask[:, 30:] = 1
    t = tuple(w[20:44, 22:46].copy() for w in window)  # 8 of its 24 columns off the edge
    tpl = prepare_template(t, np.ones((24, 24), np.uint8))
    score = overlap_zncc(tuple(w * wmask for w in window), wmask, tpl, 0.25 * tpl.count)
    assert divmod(int(score.argmax()), score.shape[1]) == (20, 22)
    assert score[20, 22] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="larger than window"):
        overlap_zncc(window, wmask, prepare_template(_field(rng, 70, 10), np.ones((70, 10))), 1)
