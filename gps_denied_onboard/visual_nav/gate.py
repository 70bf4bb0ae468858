"""The confidence gate: is this match the right place, or a chance peak?

A match is judged on its *margin* (best minus best distinct runner-up, in
standard deviations of the correlation surface, :attr:`.correlate.Peak.margin_sigmas`),
against a threshold calibrated on certainly-wrong matches (frames whose truth
lay outside the search window, on the 2014 calibration pairs only), and on
its score against a floor. Our own track can corroborate a match (a lower
threshold) or call it a jump (a higher one). A margin short of the threshold
gets a second look at how its template's quadrants agree
(:func:`.matcher.quadrant_agreement`).

The settings are :class:`~.estimator.EstimatorConfig`'s ``gate_*`` and
``jump_*`` fields (:class:`GateSettings`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from gps_denied_onboard.visual_nav.correlate import Peak
from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.geo import LocalFrame
from gps_denied_onboard.visual_nav.matcher import PlacedTemplate
from gps_denied_onboard.visual_nav.prior import OWN_TRACK
from gps_denied_onboard.visual_nav.state import Prior


class GateSettings(Protocol):
    """What the gate reads of the estimator's configuration."""

    @property
    def gate_radius_m(self) -> tuple[float, ...]: ...
    @property
    def gate_side_m(self) -> tuple[float, float]: ...
    @property
    def gate_margin_sigmas_small(self) -> tuple[float, ...]: ...
    @property
    def gate_margin_sigmas_large(self) -> tuple[float, ...]: ...
    @property
    def gate_small_side_m(self) -> float: ...
    @property
    def gate_small_side_sigmas_per_100m(self) -> float: ...
    @property
    def gate_corroborated_sigmas(self) -> float: ...
    @property
    def gate_min_score(self) -> tuple[float, float]: ...
    @property
    def gate_agreement_weight(self) -> float: ...
    @property
    def gate_agreement_extra_sigmas(self) -> float: ...
    @property
    def gate_min_colour_support(self) -> float: ...
    @property
    def gate_colour_max_side_m(self) -> float: ...
    @property
    def jump_sigma_k(self) -> float: ...
    @property
    def min_jump_m(self) -> float: ...
    @property
    def jump_gate_factor(self) -> float: ...


@dataclass(frozen=True)
class Verdict:
    """A match that cleared the gate.

    Attributes:
        gate: the threshold applied (margin sigmas).
        jump_m: how far the match lies off our own track when it is a
            relocalisation (the autopilot should reset); None otherwise.
        agreement: the quadrants' agreement, when the margin alone fell short
            and it was taken; None otherwise.
        colour_support: the saturation edges' backing of the placement
            (:meth:`.matcher.PlacedTemplate.colour_support`), taken for a match
            the prior does not corroborate when frame and map are in colour;
            None otherwise.
    """

    gate: float
    jump_m: float | None
    agreement: float | None
    colour_support: float | None = None


def gate_at(cfg: GateSettings, radius_m: float, side_m: float) -> float:
    """The margin (in score-surface sigmas) an uncorroborated match needs.

    Bilinear in the calibration table, held at its ends: along the search
    radius (``gate_radius_m``) because a small window's runner-up is the
    best of few chance peaks, so the gap to the best is wider by chance;
    along the ground the template covers (``side_m``, the square root of its
    area; ``gate_side_m`` gives the rows ``gate_margin_sigmas_small`` and
    ``_large``) because a small template's chance scores are heavier-tailed:
    certainly-wrong matches of 400 m frames reached 3.17 sigma in 1,190
    (150-600 m searches), those of 1 km frames 2.2 in 1,400 once
    :func:`min_score_at` was met.

    Below ``gate_small_side_m`` (a frame seeing less ground than a 400 m
    footprint: flying lower) the gate grows by ``gate_small_side_sigmas_per_100m``
    per 100 m less: such a template's chance peaks are heavier-tailed still. On
    the calibration pairs, certainly-wrong matches of frames from 150 m and
    100 m above ground (sides of about 255 and 170 m) cleared the 400 m gate
    5 times in 1,138 (3 in 2,023 for 400 m frames); at this growth, none.
    """
    small = float(np.interp(radius_m, cfg.gate_radius_m, cfg.gate_margin_sigmas_small))
    large = float(np.interp(radius_m, cfg.gate_radius_m, cfg.gate_margin_sigmas_large))
    gate = float(np.interp(side_m, cfg.gate_side_m, (small, large)))
    short = cfg.gate_small_side_m - side_m
    if short > 0:
        gate += cfg.gate_small_side_sigmas_per_100m * short / 100.0
    return gate


def min_score_at(cfg: GateSettings, side_m: float) -> float:
    """The least correlation score a match may have, for a template of ``side_m``.

    Along ``gate_side_m`` like :func:`gate_at`. A large template's chance
    scores are low, so a wrong match with a lucky margin still scores low:
    certainly-wrong 1 km matches reached 3.14 sigma of margin at a score of
    0.164, and none scored 0.17 with more than 2.2 sigma, while right ones
    scored 0.23 and up (1 %). A small template's chance scores reach 0.4,
    as far up as right ones go, so there the floor only drops the hopeless.
    """
    return float(np.interp(side_m, cfg.gate_side_m, cfg.gate_min_score))


def clears_gate(cfg: GateSettings, margin_sigmas: float, agreement: float, gate: float) -> bool:
    """Whether a match with this margin and quadrant agreement clears ``gate``:
    its margin does, or its margin plus ``gate_agreement_weight`` times the
    agreement clears it by ``gate_agreement_extra_sigmas`` (see :func:`judge`)."""
    if margin_sigmas >= gate:
        return True
    evidence = margin_sigmas + cfg.gate_agreement_weight * agreement
    return evidence >= gate + cfg.gate_agreement_extra_sigmas


def judge(
    cfg: GateSettings,
    prior: Prior,
    lat: float,
    lon: float,
    *,
    sigma: float,
    peak: Peak,
    radius_m: float,
    side_m: float,
    placed: PlacedTemplate | None = None,
) -> Verdict:
    """The confidence gate: a :class:`Verdict`, or a ``gate`` reject.

    - A match the prior does not corroborate (the FC's GNSS, which may be the
      very thing being spoofed, or a seed) needs :func:`gate_at` the radius.
    - A match within ``jump_sigma_k`` combined sigmas (and ``min_jump_m``) of
      our own track is corroborated by it: chance would have to put a wrong
      peak both above ``gate_corroborated_sigmas`` and inside that small
      circle of the window, so it needs only that.
    - A match farther off our own track is a relocalisation: it needs
      ``jump_gate_factor`` times the uncorroborated gate (and then the
      estimator bumps ``reset_counter`` so the autopilot resets instead of
      fighting it); a weaker one is held back while the track's uncertainty
      grows, until it either agrees or is sure.

    A margin short of the gate still passes when the margin plus
    ``gate_agreement_weight`` times the quadrants' agreement
    (:meth:`.matcher.PlacedTemplate.agreement`, taken only then: 2-8 ms)
    clears the gate by ``gate_agreement_extra_sigmas``: a chance peak is
    carried by one part of the template, so its quadrants disagree. On the
    calibration pairs (400 m frames, 2,023 certainly-wrong matches over the
    score floor) the best wrong one this would let through needed 1.42 over
    the gate, and it passes 7 % more of the right ones (377 of 541 against 352).

    A match that clears all that without our own track's corroboration
    faces one more witness when frame and map are in colour: the saturation
    edges around its placement (:meth:`.matcher.PlacedTemplate.colour_support`,
    the gray search never saw them) must stand ``gate_min_colour_support``
    sigmas above their neighbourhood. On the calibration pairs (400 m frames,
    attitude error 0.15 deg, 150-600 m searches) 6 of 1,763 certainly-wrong
    matches over the score floor cleared the gate above, at margins up to
    4.43 sigma; with colour support of at least 0.8, 1 did. On a second
    sample the threshold was not chosen on (360 and 600 m, 1,465 over the
    floor) 3 cleared the gate and 2 the witness too: 9 -> 3 in 3,228, 2.8 ->
    0.9 per 1000. Right ones lose little: 119 of 180 searched frames pass
    against 121. Only a template
    seeing less ground than ``gate_colour_max_side_m`` is asked: a 1 km
    frame's wrong matches stay far below its gate without it (0 of 3,000
    reported frames wrong, 0 displaced accepted), and asked, 0.5-2 % of its
    right ones fell short (its colour peak is broad across the 8 px around).

    Raises:
        FrameRejected: ``gate``, with the margin, agreement (colour support) and score.
    """
    gate = gate_at(cfg, radius_m, side_m)
    jump = 0.0
    own = prior.source in OWN_TRACK
    corroborated = False
    if own:
        e, n = LocalFrame(prior.latitude, prior.longitude).to_en(lat, lon)
        jump = math.hypot(e, n)
        if jump <= max(cfg.min_jump_m, cfg.jump_sigma_k * math.hypot(prior.sigma_m, sigma)):
            gate = min(gate, cfg.gate_corroborated_sigmas)
            own = False  # corroborated: no jump
            corroborated = True
        else:
            gate *= cfg.jump_gate_factor
    sigmas = peak.margin_sigmas
    agreement: float | None = None
    if sigmas < gate:
        agreement = placed.agreement() if placed is not None else 0.0
    if not clears_gate(cfg, sigmas, agreement or 0.0, gate):
        what = f"jump of {jump:.0f} m off the track with margin" if own else "margin"
        raise FrameRejected(
            "gate",
            f"{what} {sigmas:.2f} sigma < {gate:.2f}",
            margin=round(peak.margin, 4),
            margin_sigmas=round(sigmas, 3),
            agreement=round(agreement or 0.0, 3),
            score=round(peak.score, 4),
            search_radius_m=round(radius_m, 1),
        )
    colour: float | None = None
    if not corroborated and placed is not None and side_m < cfg.gate_colour_max_side_m:
        colour = placed.colour_support()
        if colour is not None and colour < cfg.gate_min_colour_support:
            raise FrameRejected(
                "gate",
                f"colour edges back the placement by {colour:.2f} sigma "
                f"< {cfg.gate_min_colour_support:.2f}",
                margin=round(peak.margin, 4),
                margin_sigmas=round(sigmas, 3),
                agreement=round(agreement or 0.0, 3),
                colour_support=round(colour, 3),
                score=round(peak.score, 4),
                search_radius_m=round(radius_m, 1),
            )
    return Verdict(gate, jump if own else None, agreement, colour)
