"""The confidence gate: is this match the right place, or a chance peak?

A match is judged on its *margin* (best minus best distinct runner-up, in
standard deviations of the correlation surface, :attr:`.correlate.Peak.margin_sigmas`),
against a threshold calibrated on certainly-wrong matches (frames whose truth
lay outside the search window, on the 2014 calibration pairs only), and on
its score against a floor. Our own track can corroborate a match (a lower
threshold) or call it a jump (a higher one). A margin short of the threshold
gets a second look at how its template's quadrants agree
(:func:`.witness.agreement_of`).

A small template (a 400 m frame alone) the prior does not corroborate is
judged on more than its margin: its *evidence* adds the quadrants' agreement,
the colour saturation's backing of the placement
(:func:`.witness.colour_support`) and the gray levels' own
(:func:`.witness.intensity_support`), four scores that are nearly independent
for a chance placement (:func:`evidence`).

The settings are :class:`~.settings.EstimatorConfig`'s ``gate_*`` and
``jump_*`` fields (:class:`GateSettings`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np

from gps_denied_onboard.visual_nav.correlate import Peak
from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.geo import LocalFrame
from gps_denied_onboard.visual_nav.prior import OWN_TRACK
from gps_denied_onboard.visual_nav.state import Prior
from gps_denied_onboard.visual_nav.witness import PlacedTemplate


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
    def gate_dead_reckoning_corroborates(self) -> bool: ...
    @property
    def gate_min_score(self) -> tuple[float, float]: ...
    @property
    def gate_agreement_weight(self) -> float: ...
    @property
    def gate_agreement_extra_sigmas(self) -> float: ...
    @property
    def gate_evidence_max_side_m(self) -> float: ...
    @property
    def gate_evidence_agreement_weight(self) -> float: ...
    @property
    def gate_evidence_colour_weight(self) -> float: ...
    @property
    def gate_evidence_intensity_weight(self) -> float: ...
    @property
    def gate_sigmas_per_candidate_efold(self) -> float: ...
    @property
    def gate_evidence_extra_sigmas(self) -> tuple[float, ...]: ...
    @property
    def gate_mono_extra_sigmas(self) -> tuple[float, ...]: ...
    @property
    def jump_sigma_k(self) -> float: ...
    @property
    def min_jump_m(self) -> float: ...
    @property
    def jump_gate_factor(self) -> float: ...
    @property
    def stitch_flip_frame_offset_m(self) -> float: ...
    @property
    def stitch_flip_jump_m(self) -> float: ...


@dataclass(frozen=True)
class Verdict:
    """A match that cleared the gate.

    Attributes:
        gate: the threshold applied (sigmas): to the margin, or to the
            :attr:`evidence` when that was judged.
        jump_m: how far the match lies off our own track when it is a
            relocalisation (the autopilot should reset); None otherwise.
        agreement: the quadrants' agreement, when it was taken (the margin
            alone fell short, or the evidence was judged); None otherwise.
        colour_support: the saturation edges' backing of the placement
            (:meth:`.witness.PlacedTemplate.colour_support`), taken with the
            evidence when frame and map are in colour; None otherwise.
        evidence: what :func:`evidence` made of margin, agreement, colour and
            intensity for a small uncorroborated template; None when the margin
            was judged.
        intensity_support: the gray levels' backing of the placement
            (:meth:`.witness.PlacedTemplate.intensity_support`), taken with the
            evidence; None otherwise, or when the frame is too uniform.
    """

    gate: float
    jump_m: float | None
    agreement: float | None
    colour_support: float | None = None
    evidence: float | None = None
    intensity_support: float | None = None

    def strength(self, margin_sigmas: float) -> float:
        """What was judged over what it needed (1.0: just cleared)."""
        judged = self.evidence if self.evidence is not None else margin_sigmas
        return judged / max(self.gate, 0.01)


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


def sharp_side_m(side_m: float, resolution_m: float, map_pixel_m: float) -> float:
    """The side of the template the gate judges: ``side_m``, less where the map under
    it has coarser pixels (``map_pixel_m``) than the matching resolution (a tile
    enlarged from a coarser zoom: :meth:`.mapview.Mosaic.pixel_m_over`), to the
    side that holds as many of the map's own pixels at the resolution.

    Why: the gate's tables count a template's chance peaks by the ground it
    covers at the resolution they were calibrated at. An enlarged map has fewer
    independent pixels under the same ground, so its chance scores are as
    heavy-tailed as a smaller template's. On the 5-year calibration pair, judged
    by their own side, certainly-wrong frames (priors 0.9-1.3 km off) over a map
    enlarged from tiles one and two zooms coarser (6.5 and 13 m/px) cleared the
    gate 0 / 1 times in 200 at 1 km and 2 / 1 in 200 at 400 m, and 1 of the 27
    right-prior 400 m frames fixed over 13 m pixels was over 30 m off. Judged by
    this side: none of 4,800 (calibration pairs, 1 km and 400 m, both
    zooms), while 1 km frames fixed as often as before (98-100 %) and 400 m ones
    less (13-45 % against 27-59 % over 13 m pixels; 30-74 against 34-77 over 6.5).
    """
    if map_pixel_m <= resolution_m:
        return side_m
    return side_m * resolution_m / map_pixel_m


#: heading x scale candidates of the search the gate's tables were calibrated with
#: (3 x 3: ``heading_candidates_deg`` x ``scale_candidates`` at their defaults)
CALIBRATED_CANDIDATES = 9


def candidates_extra(cfg: GateSettings, candidates: int) -> float:
    """How much more than its tables the gate asks of a search over ``candidates``
    heading/scale pairs: ``gate_sigmas_per_candidate_efold`` per e-fold above
    :data:`CALIBRATED_CANDIDATES`, nothing at or below it.

    Why: the search keeps the best of its candidates' peaks, and the best of N
    chance peaks rises with log N (an exponential tail's maximum). A cold start
    with an untrusted heading searches 45 headings x 3 scales: on the
    calibration pairs (attitude error 0.15 deg, priors displaced 0.9-1.3 km, a
    360 m search) its certainly-wrong 400 m matches' evidence stood 0.7-1.0
    sigma above those of the 3 x 3 search at the 90th-99th percentiles (444
    against 4,370), and 1 of 240 certainly-wrong 1 km frames cleared the 1 km
    gate (none of 900 with 3 x 3). 0.37 per e-fold asks 1.0 more of 135.
    """
    return _draws_extra(cfg, candidates / CALIBRATED_CANDIDATES)


def searches_extra(cfg: GateSettings, searches: int) -> float:
    """How much more than its tables the gate asks of the ``searches``-th widened
    search of one lost run (:class:`.prior.LostClock`): the same rule per e-fold
    of searches as :func:`candidates_extra` per e-fold of candidates, nothing for
    the first.

    Why: every lost frame searches the widened window again, and a run keeps the
    first match that clears the gate, so n searches draw n times from the
    window's chance peaks. Without it, 11 lost searches of weak 400 m patches on
    a 5-year calibration pair (2014 map, 2009 frames) drew one of 3.48 sigma, 512 m
    off, over a gate of about 3.15, and the next patch, of nearly the same frames,
    confirmed it; 0.37 * ln(11) = 0.89 more refuses both.
    """
    return _draws_extra(cfg, searches)


def _draws_extra(cfg: GateSettings, draws: float) -> float:
    """``gate_sigmas_per_candidate_efold`` per e-fold of ``draws`` (times as many
    chance peaks as the gate was calibrated on) above one; nothing at or below."""
    return cfg.gate_sigmas_per_candidate_efold * math.log(draws) if draws > 1 else 0.0


def evidence_extra_at(cfg: GateSettings, radius_m: float, *, colour: bool = True) -> float:
    """How far a small template's :func:`evidence` must clear its gate, along the
    search radius (``gate_evidence_extra_sigmas`` per ``gate_radius_m``, held at the
    ends; ``gate_mono_extra_sigmas`` for evidence without ``colour``): certainly-wrong
    400 m frames' evidence ran higher in a 150 or 600 m search than in one of 360 m."""
    extra = cfg.gate_evidence_extra_sigmas if colour else cfg.gate_mono_extra_sigmas
    return float(np.interp(radius_m, cfg.gate_radius_m, extra))


def evidence_bar(cfg: GateSettings, gate: float, radius_m: float, *, colour: bool = True) -> float:
    """What a small uncorroborated template's :func:`evidence` must reach: ``gate``
    plus :func:`evidence_extra_at` the radius (see :func:`judge`)."""
    return gate + evidence_extra_at(cfg, radius_m, colour=colour)


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


def evidence(
    cfg: GateSettings,
    margin_sigmas: float,
    agreement: float,
    colour_support: float | None,
    intensity_support: float | None = None,
) -> float:
    """A small template's evidence: margin + agreement + colour + intensity, weighted.

    ``gate_evidence_agreement_weight`` times the quadrants' agreement,
    ``gate_evidence_colour_weight`` times the colour support (none where there
    is none: a mono camera or mono tiles, which :func:`evidence_extra_at` asks
    less of) and ``gate_evidence_intensity_weight`` times the intensity support
    (none for a uniform view) are added to the margin. For a chance placement
    the four are nearly independent (correlations 0.02-0.08 over 3,055
    certainly-wrong 400 m matches, the intensity's -0.05-0.04 over 2,663): the
    witnesses look at the placement the margin chose, through parts and planes
    the search never ranked on. For a right one they rise together. One sum
    clears more right matches at the same rate of wrong ones than each score
    against its own bar (see :func:`judge`): at the same count of certainly-wrong
    matches over the bar (8 or 12 of 11,916), the intensity term passed 2.6-3.7
    points more of the right ones (mono 4.1-5.6) than the sum without it.

    Measured and not taken (2014 calibration pairs, 360 m searches; 832 right
    matches of 900 searched frames and 1,707 certainly-wrong ones over the
    floor, seeds 4242, 20360 and 30360): at the third-best wrong one's value,
    this sum passes 598 right ones. Searching the three planes' standardised
    surfaces summed instead of the gray one's, and gating on that margin,
    passed 431-548 (weights 0-1.5); the saturation's levels as a fifth
    witness (behind right placements a median of 1.03, behind wrong ones
    0.12) passed 602-604 at weights 0.25-0.75. The peak's own height over its
    surface (``(score - mean) / spread``; the margin is that less the runner-up's
    height, which is chance for right and wrong alike) in the margin's place,
    alone or less 0.2-0.8 of the runner-up's height: 637-638 right ones of 1,055
    over the best of 1,283 wrong ones against the margin's 642 (seeds 91000 and
    93000, 6 December 2026); and the search's own features changed (the field's
    blurs 0.7 or 1.5 px, the fourth harmonic's pair swapped for the doubled
    angle at twice the scale) passed 255-300 of 450 right ones over the best of
    390-445 wrong ones against 294, 286-342 over their third against 335 (seed
    77000): the 0.7 px blur within noise of the 1 px, the others fewer. Nor
    did the placement's standing on the other heading/scale candidates' surfaces
    (each one's z-score within 1 px of the winner's nadir, averaged over all
    eight, over the adjacent ones, or their least; or how many of them peak
    there) add to this sum: at weights 0.25-1.5 it passed at most 445 / 461 right
    ones over the third / sixth best of 1,137 wrong ones against 435 / 458
    (seeds 92005 and 92360, 549 right; over the single best wrong one 211-396
    against 338, one sample's noise). It rises with the margin (correlation
    0.48 over the wrong ones): 4 deg or 8 % off, the next candidate still sees
    the coincidence of field edges that made a chance peak.
    """
    got = margin_sigmas + cfg.gate_evidence_agreement_weight * agreement
    if colour_support is not None:
        got += cfg.gate_evidence_colour_weight * colour_support
    if intensity_support is not None:
        got += cfg.gate_evidence_intensity_weight * intensity_support
    return got


class FlipGuard:
    """Refuses a stitched patch that both of its own witnesses contradict, until a
    second patch confirms it.

    A patch's heading and scale are weakly seen (scores within 1 % along a ridge
    of 2 deg and 6 %), and now and then it settles on the wrong end of that ridge
    for one frame: its nadir, 100-400 m off its bulk, swings 20-50 m. Two things
    see that which the margin does not: the newest frame alone, searched around
    the placement, lies more than ``stitch_flip_frame_offset_m`` off it
    (:func:`.matcher.frame_offset_m`), and the placement lies more than
    ``stitch_flip_jump_m`` off our own track's prediction. Either alone is common
    and mostly harmless (the frame alone is the weaker witness: 81 of 2,344
    stitched calibration fixes had it over 20 m, 70 of them within 15 m of the
    truth); both together were 10 of 2,344, 3 of them over 30 m off and 6 over 15 m
    (the 2014 calibration pairs, 30 flights each). A track held by the GNSS, or
    contested by it, is not ours to measure a jump from, and a frame that could
    not be placed alone says nothing.

    Unless a second patch confirms it: the track may be the one that is off, and
    the patch the one that found the ground again. A patch within ``window_ns``
    of a refused one that lands within ``stitch_flip_jump_m`` of where that one
    did (both as offsets from their priors) goes on to the gate. Refusing every
    such patch held a flight whose track had drifted 20 m off for 11 frames, then
    lost it (the 11-year pair's GNSS-velocity flights: 96.1 -> 89.4 % fixed);
    letting any second patch through let a flip of two frames in (32 m off,
    40 m from the first).
    """

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self._refused: tuple[int, float, float] | None = None  # stamp, east, north off

    def check(
        self,
        cfg: GateSettings,
        prior: Prior,
        lat: float,
        lon: float,
        *,
        frame_offset_m: float | None,
        stamp_ns: int,
    ) -> None:
        """Judge the patch placed at ``lat``, ``lon`` around ``prior`` at ``stamp_ns``.

        Raises:
            FrameRejected: ``gate``, with the frame offset and the jump.
        """
        if frame_offset_m is None or frame_offset_m <= cfg.stitch_flip_frame_offset_m:
            return
        if prior.source not in OWN_TRACK or prior.contested:
            return
        e, n = LocalFrame(prior.latitude, prior.longitude).to_en(lat, lon)
        jump = math.hypot(e, n)
        if jump <= cfg.stitch_flip_jump_m:
            return
        last = self._refused
        if (
            last is not None
            and 0 < stamp_ns - last[0] <= self.window_ns
            and math.hypot(e - last[1], n - last[2]) <= cfg.stitch_flip_jump_m
        ):
            self._refused = None  # confirmed: the track is the one off
            return
        self._refused = (stamp_ns, e, n)
        raise FrameRejected(
            "gate",
            f"patch {jump:.0f} m off the track and {frame_offset_m:.0f} m off its newest frame",
            frame_offset_m=round(frame_offset_m, 1),
            jump_m=round(jump, 1),
        )


#: from this share of its ground obscured (cloud masked, or clipped white) on, a single
#: frame is judged on its :func:`evidence` whatever its side (see :func:`judge`).
#: Why: on the calibration pair (2014 map, 2009 frames, seed 88000), 1 km frames with
#: the prior displaced 0.9-1.3 km (the truth outside the search window) were accepted
#: on their margin 6 times in 800 under cloud (15 / 30 / 45 %: 1, 3 and 1 of 200,
#: masks of 21-53 %) and overexposed 1.8x (1 of 200, 23 % clipped), against none of
#: 100 clear: margins of 3.1-3.4 sigma over gates of 2.9-3.2, 740-1,630 m off, roads
#: of the mile grid lined up where the fields between them were masked or washed out.
#: Their evidence fell 0.26-2.3 sigma short of the bar a small template's must reach,
#: while right frames of the same cases (prior 100-300 m off) that fixed with a side
#: of 600 m or more cleared it in 96 of 97 (15 %), 90 of 90 (30 %), 98 of 98
#: (overexposed) and 47 of 50 (45 %), and clear ones cleared it by 1.5 sigma at least
#: (99 of 99). Right frames overexposed that far still clip 6-49 % of their ground.
OBSCURED_SHARE: Final = 0.05


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
    single_frame: bool = True,
    extra_sigmas: float = 0.0,
    obscured_share: float = 0.0,
) -> Verdict:
    """The confidence gate: a :class:`Verdict`, or a ``gate`` reject.

    - A match the prior does not corroborate (the FC's GNSS, which may be the
      very thing being spoofed, a seed, or our track where it is contested by a
      healthy GNSS) needs :func:`gate_at` the radius.
    - A match within ``jump_sigma_k`` combined sigmas (and ``min_jump_m``) of
      our own track is corroborated by it: chance would have to put a wrong
      peak both above ``gate_corroborated_sigmas`` and inside that small
      circle of the window, so it needs only that. Not a track dead-reckoned
      from a fix seconds old (``visual_dead_reckoning``: frames refused since,
      registration broken) unless ``gate_dead_reckoning_corroborates``: its
      sigma has grown, and the circle with it, to a good share of the window
      (a match inside it is judged as uncorroborated, outside it as a jump).
    - A match farther off our own track is a relocalisation: it needs
      ``jump_gate_factor`` times the uncorroborated gate (and then the
      estimator bumps ``reset_counter`` so the autopilot resets instead of
      fighting it); a weaker one is held back while the track's uncertainty
      grows, until it either agrees or is sure.

    A margin short of the gate still passes when the margin plus
    ``gate_agreement_weight`` times the quadrants' agreement
    (:meth:`.witness.PlacedTemplate.agreement`, taken only then: 2-8 ms)
    clears the gate by ``gate_agreement_extra_sigmas``: a chance peak is
    carried by one part of the template, so its quadrants disagree.

    An uncorroborated ``single_frame`` (not frames stitched: their gate was
    calibrated on the margin) whose template sees less ground than
    ``gate_evidence_max_side_m`` (a 400 m frame alone) is judged on its
    :func:`evidence` instead, which must clear the gate by
    :func:`evidence_extra_at` the radius. On the calibration pairs (400 m
    frames, attitude error 0.15 deg, priors displaced 0.9-1.3 km, searches of
    150 / 360 / 600 m) the margin rule (margin, or margin + agreement, then
    colour support of at least 0.8) let 25 of 9,002 certainly-wrong matches
    over the score floor through: 2.8 per 1000, one at 5.05 sigma of margin,
    and three times as often at 150 m as at 360 m. The evidence, clearing a
    gate of 3.25 by 4.15 / 3.85 / 4.0 at 150 / 360 / 600 m (1 per 1000 at each
    radius of 11,916 certainly-wrong matches, seeds 20000-50000 and 140000),
    let 2 of 2,338 through on a fresh sample (seed 150000), where 596 of 900
    searched frames (360 m) passed: 575 with the evidence before the
    intensity term (allowances 3.9 / 3.4 / 3.55), which let 3 through. A mono
    frame's (or a frame on mono tiles) has no colour term and its own
    allowance, ``gate_mono_extra_sigmas`` (3.35 / 2.95 / 3.05): 3 of the 2,338
    clear it, and 572 of the 900 right ones (546 before; the margin rule with
    no colour to ask let through 4 per 1000).

    A single frame whose ground is :data:`OBSCURED_SHARE` or more obscured
    (``obscured_share``: :attr:`.views.FrameView.obscured_share`, cloud masked
    or clipped white) is judged on its evidence too, whatever its side: the
    margin tables were calibrated on clear frames, and what is left of a masked
    or clipped template is carried by fewer of the ground's features (on the
    plains' mile grid of roads, by roads that line up a mile off). See
    :data:`OBSCURED_SHARE` for the measurements.

    ``extra_sigmas`` (:func:`candidates_extra`) raises the uncorroborated
    gate, and so every bar built on it, for a search over more heading/scale
    candidates than the tables were calibrated with.

    Raises:
        FrameRejected: ``gate``, with the margin, agreement (colour support,
            evidence) and score.
    """
    gate = gate_at(cfg, radius_m, side_m) + extra_sigmas
    jump = 0.0
    # a contested track (PriorTracker.holds) is where we search, not evidence
    own = prior.source in OWN_TRACK and not prior.contested
    corroborated = False
    if own:
        e, n = LocalFrame(prior.latitude, prior.longitude).to_en(lat, lon)
        jump = math.hypot(e, n)
        if jump <= max(cfg.min_jump_m, cfg.jump_sigma_k * math.hypot(prior.sigma_m, sigma)):
            own = False  # no jump
            if prior.source != "visual_dead_reckoning" or cfg.gate_dead_reckoning_corroborates:
                gate = min(gate, cfg.gate_corroborated_sigmas)
                corroborated = True
        else:
            gate *= cfg.jump_gate_factor
    sigmas = peak.margin_sigmas
    jumping = f"jump of {jump:.0f} m off the track with " if own else ""
    on_evidence = side_m < cfg.gate_evidence_max_side_m or obscured_share >= OBSCURED_SHARE
    if not corroborated and single_frame and placed is not None and on_evidence:
        agreement = placed.agreement()
        colour = placed.colour_support()
        intensity = placed.intensity_support()
        got = evidence(cfg, sigmas, agreement, colour, intensity)
        need = evidence_bar(cfg, gate, radius_m, colour=colour is not None)
        if got < need:
            shown = "mono" if colour is None else f"{colour:.2f}"
            raise FrameRejected(
                "gate",
                f"{jumping}evidence {got:.2f} sigma < {need:.2f} (margin {sigmas:.2f}, "
                f"agreement {agreement:.2f}, colour {shown})",
                margin=round(peak.margin, 4),
                margin_sigmas=round(sigmas, 3),
                agreement=round(agreement, 3),
                **({} if colour is None else {"colour_support": round(colour, 3)}),
                **({} if intensity is None else {"intensity_support": round(intensity, 3)}),
                evidence=round(got, 3),
                score=round(peak.score, 4),
                search_radius_m=round(radius_m, 1),
                template_side_m=round(side_m, 1),
            )
        return Verdict(need, jump if own else None, agreement, colour, got, intensity)
    taken: float | None = None
    if sigmas < gate:
        taken = placed.agreement() if placed is not None else 0.0
    if not clears_gate(cfg, sigmas, taken or 0.0, gate):
        raise FrameRejected(
            "gate",
            f"{jumping}margin {sigmas:.2f} sigma < {gate:.2f}",
            margin=round(peak.margin, 4),
            margin_sigmas=round(sigmas, 3),
            agreement=round(taken or 0.0, 3),
            score=round(peak.score, 4),
            search_radius_m=round(radius_m, 1),
            template_side_m=round(side_m, 1),
        )
    return Verdict(gate, jump if own else None, taken)
