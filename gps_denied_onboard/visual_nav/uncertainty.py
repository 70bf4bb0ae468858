"""What a fix claims: its position's 1-sigma and its velocity's.

The position sigma is the root sum of squares of the map's georeference floor
(``map_sigma_m``), the attitude term (height * tan(``attitude_sigma_deg``),
which the correlation cannot see), the match term (a fraction of a map pixel,
larger for weaker peaks and smaller templates) and a placement term: for a
stitched patch ``stitch_sigma_margin_m`` / margin in sigmas (0 since the next
term took its share), ``stitch_sigma_spread_k`` times how far its quadrants'
own peaks spread and ``stitch_sigma_frame_k`` times how far its newest frame
alone puts the nadir from it (:func:`.matcher.frame_offset_m`); for a small
frame alone ``single_sigma_margin_m`` / margin and ``single_sigma_spread_k``
times its quadrants' spread, fading out for larger ones.
Each was calibrated on the 2014 calibration pairs (``config/visual_nav.yaml``
says how).

The velocity comes from registration where there is one (its own sigma, with a
floor, and the error of the correction that turned and scaled it:
:func:`correction_sigma`), else from the longest recent baseline between fixes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol

import numpy as np

from gps_denied_onboard.visual_nav.geo import LocalFrame

NS = 1_000_000_000

#: velocity 1-sigma floor (m/s): what frame timing and the flat-ground model leave
VELOCITY_FLOOR = 0.2

#: the map resolution (m/px) every ground distance of the gate and the error model was
#: calibrated at (:meth:`.settings.EstimatorConfig.at_ground_scale` carries them to another)
CALIBRATED_RESOLUTION_M = 5.0

#: a stitched patch whose quadrants could not be measured (its neighbourhood left the
#: map, too few valid pixels) is taken to spread this far (m, on a map of
#: :data:`CALIBRATED_RESOLUTION_M`; in proportion on another): 9 in 10 of the 3,798
#: stitched calibration fixes spread less (median 6.2 m, 90th percentile 18.7 m)
UNMEASURED_SPREAD_M = 18.7


#: a stitched fix whose newest frame could not be placed alone near it (no render, too
#: little texture) is taken to be this far off (m, on a map of
#: :data:`CALIBRATED_RESOLUTION_M`; in proportion on another): 19 in 20 of the 3,800 stitched
#: calibration fixes measured less (median 2.3 m, 95th percentile 11.3 m)
UNMEASURED_FRAME_OFFSET_M = 11.3


def patch_frame_offset_m(
    frame_offset_m: float | None, resolution_m: float = CALIBRATED_RESOLUTION_M
) -> float:
    """The frame offset a stitched fix's sigma takes: the measured one, else
    :data:`UNMEASURED_FRAME_OFFSET_M` (on a map of ``resolution_m``)."""
    if frame_offset_m is None:
        return UNMEASURED_FRAME_OFFSET_M * (resolution_m / CALIBRATED_RESOLUTION_M)
    return frame_offset_m


def patch_spread_m(
    quadrant_spread_m: float | None, resolution_m: float = CALIBRATED_RESOLUTION_M
) -> float:
    """The quadrant spread a stitched fix's sigmas take: the measured one, else
    :data:`UNMEASURED_SPREAD_M` (on a map of ``resolution_m``; never that of a rigid
    patch)."""
    if quadrant_spread_m is None:
        return UNMEASURED_SPREAD_M * (resolution_m / CALIBRATED_RESOLUTION_M)
    return quadrant_spread_m


class SigmaSettings(Protocol):
    """What the error model reads of the estimator's configuration."""

    @property
    def map_sigma_m(self) -> float: ...
    @property
    def attitude_sigma_deg(self) -> float: ...
    @property
    def match_sigma_px(self) -> float: ...
    @property
    def match_reference_px(self) -> float: ...
    @property
    def match_size_exponent(self) -> float: ...
    @property
    def stitch_sigma_margin_m(self) -> float: ...
    @property
    def stitch_sigma_spread_k(self) -> float: ...
    @property
    def stitch_sigma_frame_k(self) -> float: ...
    @property
    def velocity_correction_k(self) -> float: ...
    @property
    def single_sigma_margin_m(self) -> float: ...
    @property
    def single_sigma_spread_k(self) -> float: ...
    @property
    def gate_side_m(self) -> tuple[float, float]: ...


class PastFix(Protocol):
    """What the velocity reads of an earlier fix."""

    @property
    def stamp_ns(self) -> int: ...
    @property
    def latitude(self) -> float: ...
    @property
    def longitude(self) -> float: ...
    @property
    def sigma_m(self) -> float: ...
    @property
    def velocity_en(self) -> tuple[float, float] | None: ...


def attitude_term(cfg: SigmaSettings, height_m: float) -> float:
    """Where the autopilot's roll/pitch error puts the nadir, 1-sigma per axis (m): a
    fix's position sigma holds it, and its correction's sigma leaves it out."""
    return height_m * math.tan(math.radians(cfg.attitude_sigma_deg))


def small_frame_fade(cfg: SigmaSettings, template_side_m: float) -> float:
    """How much of a frame alone's own placement terms its sigma takes: 1 for a
    template of ``gate_side_m[0]`` (a 400 m footprint) or less, falling to 0 at
    ``gate_side_m[1]``, where a frame sees enough ground to have none."""
    return float(np.interp(template_side_m, cfg.gate_side_m, (1.0, 0.0)))


def enlarged_map_factor(resolution_m: float, map_pixel_m: float) -> float:
    """How much wider a match is placed on a map whose own pixels (``map_pixel_m``) are
    coarser than the matching resolution: the square root of the ratio, 1 where they
    are not.

    Chosen by measurement, between no growth and the ratio itself. On the
    calibration pairs (single frames, 0.15 deg attitude error, 100 a pair and
    footprint) over tiles two zooms coarser (13 m/px, a ratio of 2.6), 1 km
    fixes' errors grew by 10-25 % (median 2.8-3.1 m to 3.3-3.5). Without a term
    1.0 % of their per-axis errors fell outside 3 sigma on two pairs of three
    (99.5 / 99.5 / 100 % within); the ratio itself took 92-95 % within 1 sigma;
    its square root keeps 100 % within 3 and 82-84 % within 1. One zoom coarser
    (6.5 m, 1.3): 99.5 / 99.0 / 100 % within 3 sigma without, 100 % with it, 71-78 %
    within 1.
    """
    if map_pixel_m <= resolution_m:
        return 1.0
    return math.sqrt(map_pixel_m / resolution_m)


def position_sigma(
    cfg: SigmaSettings,
    *,
    resolution_m: float,
    height_m: float,
    fine_score: float,
    template_px: int,
    template_side_m: float,
    margin_sigmas: float,
    stitched: bool,
    quadrant_spread_m: float | None = None,
    frame_offset_m: float | None = None,
    map_pixel_m: float = 0.0,
) -> float:
    """A fix's horizontal 1-sigma per axis, m (see the module's docstring).

    ``map_pixel_m``: the ground size of the map's own pixels under the template
    (:meth:`.mapview.Mosaic.pixel_m_over`). Where it is coarser than the matching
    resolution (a tile enlarged from a coarser zoom) the match term grows by the
    square root of the ratio (:func:`enlarged_map_factor`).
    """
    small = max(1.0, cfg.match_reference_px / max(template_px, 1))
    sig_att = attitude_term(cfg, height_m)
    sig_match = (
        cfg.match_sigma_px
        * resolution_m
        * enlarged_map_factor(resolution_m, map_pixel_m)
        / max(fine_score, 0.1)
        * small**cfg.match_size_exponent
    )
    if stitched:
        # a stitched patch carries its registration chain's distortion and its own
        # turn and scale: on the calibration flights its error hardly grew with the
        # lever (patch centroid to nadir) but fell with the margin; and where its
        # quadrants pull apart (ground two years' orthophotos place differently there,
        # a registration chain's bend) the whole lands between them. A margin term
        # alone left 3 sigma covering 98.4 % (96.4 % on one pair): the fixes past it
        # had quadrants spread 2.5 times as far as the others
        # and where the newest frame alone puts the nadir elsewhere than its patch,
        # the patch's heading and scale (weakly seen over a patch) may have carried
        # the nadir off along its lever (matcher.frame_offset_m)
        sig_patch = math.hypot(
            cfg.stitch_sigma_margin_m / max(margin_sigmas, 1.0),
            cfg.stitch_sigma_spread_k * patch_spread_m(quadrant_spread_m, resolution_m),
            cfg.stitch_sigma_frame_k * patch_frame_offset_m(frame_offset_m, resolution_m),
        )
    else:
        # a frame seeing little ground (a 400 m footprint alone) misplaces now and
        # then by 10-50 m with a fair margin, and most where its quadrants pull
        # apart (their spread told those near misses from the rest at an AUC of
        # 0.82, the margin at 0.71): terms like the patch's, fading out from a
        # template of gate_side_m[0] to one of gate_side_m[1]
        sig_patch = small_frame_fade(cfg, template_side_m) * math.hypot(
            cfg.single_sigma_margin_m / max(margin_sigmas, 1.0),
            cfg.single_sigma_spread_k * patch_spread_m(quadrant_spread_m, resolution_m),
        )
    return math.sqrt(cfg.map_sigma_m**2 + sig_att**2 + sig_match**2 + sig_patch**2)


def correction_sigma(
    cfg: SigmaSettings, *, sigma_m: float, height_m: float, footprint_m: float
) -> float:
    """The 1-sigma per axis, relative, of a fix's heading and height-scale correction:
    ``velocity_correction_k`` x its placement's sigma (``sigma_m`` less the attitude
    term, which moves the whole view and turns or scales none of it) over the view's
    radius (``footprint_m`` / 2).

    Why: a heading or scale off by x moves the view's rim by x times its radius, and
    the match places the rim no better than it places the view. On the 2014
    calibration flights (heading +-5 deg and height +-10 % off) the corrections'
    error per axis (RMS) was 1.5 and 1.25 times that ratio over the first 5 s of 400 m
    and 1 km frames (2.8 and 0.45 %), and 1.85 and 1.2 times it later. The factor
    (``config/visual_nav.yaml`` says how it was set) takes the velocities' tails.

    Measured and not taken: the correction averaged over the fixes of the last 3,
    5 or 8 s (plain, weighed by 1 / sigma^2, median, exponential over 3 s) before
    it turns the velocity. The error it leaves is the flight's, not the fix's:
    after 20 s of the calibration flights (400 m stitched, seeds 188000 and
    189000, 8 flights per pair, 557 velocities) what it makes of the speed stood
    at 0.40-0.47 m/s RMS against 0.41-0.45 for each fix's own, so no sigma could
    shrink with the count of fixes averaged.
    """
    att = attitude_term(cfg, height_m)
    placement = math.sqrt(max(sigma_m * sigma_m - att * att, 0.0))
    return cfg.velocity_correction_k * placement / max(footprint_m / 2.0, 1.0)


def registration_velocity(
    raw: tuple[tuple[float, float], float],
    *,
    heading_offset_deg: float,
    scale: float,
    correction_rel: float,
) -> tuple[tuple[float, float], float]:
    """A velocity from registration and its 1-sigma per axis, m/s.

    ``raw``: the registration track's motion and sigma, in the frames as the
    autopilot's attitude and height put them; the fix's own correction
    (``heading_offset_deg``, ``scale``) turns and scales it. The sigma is the
    registration's (times ``scale``) with :data:`VELOCITY_FLOOR`, and
    ``correction_rel`` (:func:`correction_sigma`) of the speed: the raw motion takes
    the fix's heading and scale, so a correction 2 % off is a velocity 2 % off.
    On the 2014 calibration flights (400 m frames stitched, 1 frame/s) the
    corrections' error fell from 2.0 % and 0.9 deg (median) in the first 3 s
    to 0.8 % and 0.3 deg after 26 s and the velocities' from 0.93 to 0.34 m/s
    (0.48 to 0.23 with the true correction), while their sigma, the
    registration's and a term for a patch's quadrant spread, stood at
    0.46-0.68 m/s: 42 % within 1 sigma and 86 % within 3 in the first 3 s, 93 %
    and 100 % after 26 s. The spread term had stood in for the correction's
    error on stitched fixes only.
    """
    velocity = corrected(raw[0], heading_offset_deg, scale)
    speed = math.hypot(velocity[0], velocity[1])
    sigma = math.hypot(raw[1] * scale, VELOCITY_FLOOR, correction_rel * speed)
    return velocity, sigma


def velocity_from_fixes(
    recent: Iterable[PastFix],
    stamp_ns: int,
    latitude: float,
    longitude: float,
    *,
    sigma_m: float,
    max_dt_s: float,
) -> tuple[tuple[float, float] | None, float]:
    """Velocity over the longest recent baseline (up to ``max_dt_s``) and its sigma,
    for a fix at ``latitude, longitude`` with ``sigma_m``.

    Two fixes a frame apart differ by their errors (metres) over half a second;
    over two seconds the same errors weigh a quarter as much. The price is a
    lag of half the baseline in turns, which the sigma carries too.
    """
    hist = [f for f in recent if 0.05 < (stamp_ns - f.stamp_ns) / NS <= max_dt_s]
    if not hist:
        return None, math.inf
    base = hist[0]  # the oldest within the window
    dt = (stamp_ns - base.stamp_ns) / NS
    e, n = LocalFrame(base.latitude, base.longitude).to_en(latitude, longitude)
    # independent errors of the two fixes (conservative: map and attitude terms
    # of nearby frames are correlated), plus the turn lag, plus a floor
    lag = 0.0
    if len(hist) >= 2 and hist[-1].velocity_en is not None and base.velocity_en is not None:
        dve = hist[-1].velocity_en[0] - base.velocity_en[0]
        dvn = hist[-1].velocity_en[1] - base.velocity_en[1]
        lag = 0.5 * math.hypot(dve, dvn)
    vs = math.sqrt((base.sigma_m**2 + sigma_m**2) / dt**2 + lag**2 + 0.3**2)
    return (e / dt, n / dt), vs


def corrected(v: tuple[float, float], heading_deg: float, scale: float) -> tuple[float, float]:
    """A raw ground vector with a heading correction (ENU sense) and height scale applied."""
    th = math.radians(heading_deg)
    c, s = math.cos(th), math.sin(th)
    return scale * (c * v[0] - s * v[1]), scale * (s * v[0] + c * v[1])
