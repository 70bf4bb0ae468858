"""Masked zero-normalised cross-correlation of two-channel fields, by DFT.

The template (a rectified camera frame's orientation field) has an arbitrary
valid region: a tilted camera's footprint is a trapezoid, a turned one sits
diagonally in its north-up box. So the normalisation is the masked one
(Padfield, "Masked object registration in the Fourier domain", 2012): at every
placement the window's mean and energy are taken under the template's mask
only. Everything is a handful of real DFTs of one padded size:

    num(s)  = sum_c sum_x t~_c(x) w_c(x+s)          t~ = (t - mean_mask t) * mask
    S1_c(s) = sum_x m(x) w_c(x+s)
    S2(s)   = sum_x m(x) sum_c w_c(x+s)^2
    zncc(s) = num / sqrt(|t~|^2 * (S2 - sum_c S1_c^2 / N))

Only placements with the template wholly inside the window are returned, so
the circular wrap of the DFT never reaches them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]


def _dft(a: NDArray[np.float32], shape: tuple[int, int]) -> NDArray[np.float32]:
    """The spectrum of ``a`` zero-padded to ``shape``, in OpenCV's packed (CCS) form.

    A real input's spectrum is conjugate-symmetric, so the packed form holds
    it in one real array of the input's size: ``mulSpectrums`` and the real
    inverse work on it directly, at about a quarter of the time the full
    complex spectrum took (measured: 3.0 against 11.6 ms for a 400 m frame's
    search), with the same scores to 1e-7.
    """
    pad = np.zeros(shape, dtype=np.float32)
    pad[: a.shape[0], : a.shape[1]] = a
    return np.asarray(cv2.dft(pad), np.float32)


def _corr(fw: NDArray[np.float32], ft: NDArray[np.float32]) -> NDArray[np.float32]:
    """``sum_x t(x) w(x+s)`` from the two spectra (un-normalised inverse DFT)."""
    return np.asarray(cv2.mulSpectrums(fw, ft, 0, conjB=True), np.float32)


def _idft(spec: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.asarray(cv2.idft(spec, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE), np.float32)


@dataclass(frozen=True)
class Template:
    """A template prepared once for correlation against any window."""

    channels: tuple[F32, ...]  # zero-mean under the mask, zero outside it
    mask: F32
    count: float  # valid pixels
    energy: float  # sum of squares of the zero-mean channels

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.mask.shape[0]), int(self.mask.shape[1]))


def prepare_template(channels: tuple[F32, ...], mask: NDArray[np.generic]) -> Template:
    m = (np.asarray(mask) > 0).astype(np.float32)
    n = float(m.sum())
    out = []
    energy = 0.0
    for c in channels:
        mean = float((c * m).sum() / n) if n else 0.0
        z = ((c - mean) * m).astype(np.float32)
        energy += float((z * z).sum())
        out.append(z)
    return Template(tuple(out), m, n, energy)


@dataclass(frozen=True)
class WindowSpectra:
    """A window's spectra, taken once and correlated with several templates.

    The coarse search correlates every heading/scale candidate over nearly the
    same stretch of map: one window around them all, transformed once, saves
    each candidate the DFTs of the window's channels and of their squares.
    """

    shape: tuple[int, int]  # the window's rows, cols
    dft_shape: tuple[int, int]
    channels: tuple[F32, ...]  # spectra of the window's channels
    energy: F32  # spectrum of sum_c w_c^2


def window_spectra(window: tuple[F32, ...]) -> WindowSpectra:
    """The spectra of ``window``'s channels and of their summed squares."""
    hw, ww = window[0].shape
    shape = (cv2.getOptimalDFTSize(hw), cv2.getOptimalDFTSize(ww))
    sq = np.zeros_like(window[0])
    for w in window:
        sq += w * w
    return WindowSpectra((hw, ww), shape, tuple(_dft(w, shape) for w in window), _dft(sq, shape))


def masked_zncc(window: tuple[F32, ...], tpl: Template) -> F32:
    """ZNCC of ``tpl`` at every placement wholly inside ``window``.

    Returns an array of shape ``(Hw - Ht + 1, Ww - Wt + 1)``; entry ``[r, c]``
    is the score with the template's top-left corner at window pixel ``(c, r)``.
    """
    hw, ww = window[0].shape
    ht, wt = tpl.shape
    if ht > hw or wt > ww:
        raise ValueError(f"template {ht}x{wt} larger than window {hw}x{ww}")
    return masked_zncc_within(window_spectra(window), tpl, (0, 0, ww - wt + 1, hw - ht + 1))


def masked_zncc_within(
    ws: WindowSpectra, tpl: Template, placements: tuple[int, int, int, int]
) -> F32:
    """ZNCC of ``tpl`` at the placements ``(col0, row0, cols, rows)`` of ``ws``'s window.

    Entry ``[r, c]`` is the score with the template's top-left corner at window
    pixel ``(col0 + c, row0 + r)``; every placement must hold the template
    wholly inside the window. The same scores as :func:`masked_zncc` over the
    sub-window those placements span.
    """
    (hw, ww), shape = ws.shape, ws.dft_shape
    ht, wt = tpl.shape
    c0, r0, cols, rows = placements
    if c0 < 0 or r0 < 0 or c0 + cols + wt - 1 > ww or r0 + rows + ht - 1 > hw:
        raise ValueError(f"placements {placements} of a {ht}x{wt} template leave the window")
    cut = (slice(r0, r0 + rows), slice(c0, c0 + cols))
    fm = _dft(tpl.mask, shape)
    num_spec = None
    s1_sq = None
    for fw, t in zip(ws.channels, tpl.channels, strict=True):
        spec = _corr(fw, _dft(t, shape))
        num_spec = spec if num_spec is None else num_spec + spec
        s1 = _idft(_corr(fw, fm))[cut]
        s1_sq = s1 * s1 if s1_sq is None else s1_sq + s1 * s1
    assert num_spec is not None and s1_sq is not None
    num = _idft(num_spec)[cut]
    s2 = _idft(_corr(ws.energy, fm))[cut]
    var = s2 - s1_sq / max(tpl.count, 1.0)
    # A flat (textureless) stretch of map gives a tiny variance and a noisy ratio:
    # floor it at a fraction of the window's typical variance.
    floor = 0.02 * float(var.mean()) if var.size else 0.0
    var = np.maximum(var, max(floor, 1e-12))
    return (num / np.sqrt(var * max(tpl.energy, 1e-12))).astype(np.float32)


@dataclass(frozen=True)
class Peak:
    """The best placement and how distinct it is.

    Attributes:
        col / row: sub-pixel placement of the template's top-left corner.
        score: ZNCC at the peak (integer placement).
        second: best score outside ``exclusion_px`` of the peak.
        margin: ``score - second``.
        curvature: mean second difference at the peak (per px^2, positive);
            sharper peaks localise better.
        spread: standard deviation of the scores over all placements: the
            scale of the chance fluctuations that a runner-up comes from.
    """

    col: float
    row: float
    score: float
    second: float
    margin: float
    curvature: float
    spread: float = 0.0

    @property
    def margin_sigmas(self) -> float:
        """The margin in units of :attr:`spread`: what the confidence gate judges.

        A raw margin means different things for different templates: a small
        template's scores fluctuate more, so chance lifts its runner-up closer.
        Counted in the score surface's own standard deviation, the margin of a
        certainly-wrong match (truth outside the window) had the same
        distribution for 400 m and 1 km footprints in the calibration runs.
        """
        return self.margin / self.spread if self.spread > 0 else 0.0


def find_peak(score: F32, exclusion_px: float, region: NDArray[np.bool_] | None = None) -> Peak:
    """The best placement of ``score`` (optionally only where ``region``) and the runner-up."""
    s = score if region is None else np.where(region, score, -np.inf).astype(np.float32)
    idx = int(np.argmax(s))
    r, c = divmod(idx, s.shape[1])
    best = float(s[r, c])
    rr, cc = np.ogrid[: s.shape[0], : s.shape[1]]
    far = (rr - r) ** 2 + (cc - c) ** 2 > exclusion_px**2
    rest = s[far]
    second = float(rest.max()) if rest.size else -1.0
    if not math.isfinite(second):
        second = -1.0
    dc, dr, curv = _subpixel(score, r, c)
    finite = s[np.isfinite(s)]
    spread = float(finite.std()) if finite.size > 1 else 0.0
    return Peak(c + dc, r + dr, best, second, best - second, curv, spread)


def _subpixel(s: F32, r: int, c: int) -> tuple[float, float, float]:
    def parabola(a: float, b: float, d: float) -> tuple[float, float]:
        den = a - 2.0 * b + d
        if den >= 0:  # not a maximum along this axis
            return 0.0, 0.0
        return max(-0.5, min(0.5, 0.5 * (a - d) / den)), -den

    h, w = s.shape
    dc = dr = 0.0
    cx = cy = 0.0
    if 0 < c < w - 1:
        dc, cx = parabola(float(s[r, c - 1]), float(s[r, c]), float(s[r, c + 1]))
    if 0 < r < h - 1:
        dr, cy = parabola(float(s[r - 1, c]), float(s[r, c]), float(s[r + 1, c]))
    return dc, dr, 0.5 * (cx + cy)


def overlap_zncc(
    window: tuple[F32, ...], window_mask: NDArray[np.generic], tpl: Template, min_overlap: float
) -> F32:
    """ZNCC of ``tpl`` at every placement wholly inside ``window``, normalised over
    the overlap of *both* masks (where the template and the window are valid).

    :func:`masked_zncc` counts the window wherever the template is valid: right
    for a map, which is valid everywhere the search goes. Two camera frames are
    not: the previous frame's edge cuts the placements a shift off alignment,
    and counted there as zero field, the edge pulls the peak toward the shift
    at which the two footprints coincide, zero. Registration of consecutive
    frames came out 1-3 % short that way (a frame 200 m above ground moved
    10-30 m: 0.3-0.9 m short). Each placement is judged on the ground both
    frames see instead (Padfield's full form of the same correlation: the
    means and variances under the overlap, six correlations per channel).
    Packed float32 spectra at OpenCV's optimal sizes, as :func:`masked_zncc`:
    the same scores as float64 to 2e-7 on frame-sized fields, at a third to
    an eighth of numpy's float64 time (a 131-column window is prime-sized).

    ``window_mask`` (non-zero where the window is valid) has the window's
    shape; the template's own mask is ``tpl.mask``. A placement overlapping
    fewer than ``min_overlap`` valid pixels scores -1.
    """
    hw, ww = window[0].shape
    ht, wt = tpl.shape
    if ht > hw or wt > ww:
        raise ValueError(f"template {ht}x{wt} larger than window {hw}x{ww}")
    shape = (cv2.getOptimalDFTSize(hw), cv2.getOptimalDFTSize(ww))
    cut = (slice(0, hw - ht + 1), slice(0, ww - wt + 1))

    def corr(fw: F32, ft: F32) -> NDArray[np.float64]:
        return _idft(_corr(fw, ft))[cut].astype(np.float64)

    mw = (np.asarray(window_mask) > 0).astype(np.float32)
    mt = np.asarray(tpl.mask, np.float32)
    f_mw, f_mt = _dft(mw, shape), _dft(mt, shape)
    n = np.rint(corr(f_mw, f_mt))  # a count of pixels: exact, not FFT-rounded
    safe = np.maximum(n, 1.0)
    num = np.zeros_like(n)
    var_w = np.zeros_like(n)
    var_t = np.zeros_like(n)
    for w_c, t_c in zip(window, tpl.channels, strict=True):
        w = np.asarray(w_c, np.float32) * mw
        t = np.asarray(t_c, np.float32) * mt
        f_w, f_t = _dft(w, shape), _dft(t, shape)
        sw = corr(f_w, f_mt)
        st = corr(f_mw, f_t)
        num += corr(f_w, f_t) - sw * st / safe
        var_w += corr(_dft(w * w, shape), f_mt) - sw * sw / safe
        var_t += corr(f_mw, _dft(t * t, shape)) - st * st / safe
    ok = n >= max(min_overlap, 2.0)
    # a placement whose overlap holds almost no texture of the window's (a frame's
    # featureless corner) would divide by next to nothing: its variance is held to 2 %
    # of the mean placement's, so it scores low instead of anything at all
    floor = 0.02 * float(var_w[ok].mean()) if ok.any() else 0.0
    den = np.sqrt(np.maximum(var_w, max(floor, 1e-12)) * np.maximum(var_t, 1e-12))
    return np.where(ok, num / den, -1.0).astype(np.float32)
