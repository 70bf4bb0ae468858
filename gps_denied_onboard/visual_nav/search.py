"""One search of one view around a prior: which candidates, then the match and
the refusals that come before the gate.

:meth:`.estimator.VisualEstimator.process` decides *what* is matched (a frame,
or the patch it was stitched into) and *around where* (the prior and its
radius); this module decides *how widely* heading and scale are searched
(:func:`plan_search`) and runs the matcher, refusing what no gate should judge
(:func:`search_view`). The gate itself (:mod:`.gate`) and the fix that follows
stay with the estimator, which owns the track a verdict changes.

Heading and scale candidates, in order of precedence:

- **all-round**: the autopilot's heading is not trusted (compass interference,
  a gyro-only attitude) and there is neither an own track nor a recent fix to
  carry one from (a cold start, or lost): every ``heading_search_step_deg`` is
  searched;
- **tracking**: a frame alone within ``track_window_s`` of our last fix starts
  from that fix's refined heading and scale, and the refinement does the rest.
  The pair is the autopilot's heading bias and height error, which change
  slowly whatever the position prior is: on our own track or on the GNSS alike
  (on the sample flight's GNSS leg the nine candidates cost twice the time of
  one, 1.2 km frames at p50 150 against 82-109 ms in the main job). Not a stitched
  patch: its nadir lies hundreds of metres from its bulk, so a heading or scale
  carried over from a weak fix drags the next fixes along (seen: 2-3 m per
  frame, to 46 m); it searches every candidate each time;
- **held**: a patch whose heading and scale the GNSS's velocity measured
  (:mod:`.gnss_correction`) searches that as its one candidate, refined within
  ``bound_k`` sigmas of it. A frame alone sees its own heading and scale.

A search whose refined scale presses past its outermost scale candidate goes on
a rung further out (:func:`search_view`'s ``scale_rungs``): the flat-ground height
is off by more than the candidates reach where the ground under the aircraft
stands well above or below the home (hills, a valley) and no rangefinder reaches
it, or where the barometer has drifted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.gnss_correction import Correction, held_match
from gps_denied_onboard.visual_nav.mapview import Mosaic
from gps_denied_onboard.visual_nav.matcher import (
    MatchConfig,
    MatchResult,
    OutsideMap,
    match_frame,
    rank,
)
from gps_denied_onboard.visual_nav.views import MatchView, PatchView


@dataclass(frozen=True)
class SearchPlan:
    """What :func:`plan_search` chose.

    Attributes:
        match: the matcher's settings with the candidates (and bounds) chosen.
        held_scale / held_heading: the measured correction where it bounded the
            match's scale / heading (the fix records it); None where it did not.
    """

    match: MatchConfig
    held_scale: Correction | None = None
    held_heading: Correction | None = None

    @property
    def candidates(self) -> int:
        """Heading x scale pairs searched (the gate asks more of more draws)."""
        return len(self.match.heading_candidates_deg) * len(self.match.scale_candidates)


def plan_search(
    match: MatchConfig,
    view: MatchView,
    *,
    heading_trusted: bool,
    heading_search_step_deg: float,
    cold: bool,
    tracking_pair: tuple[float, float] | None,
    measured: Correction | None,
    bound_k: float,
) -> SearchPlan:
    """The candidates one search of ``view`` takes (module docstring).

    Args:
        match: the configured matcher settings.
        heading_trusted: whether the autopilot's heading is good to a few degrees.
        cold: no heading to carry: no fix yet, or the prior is not our own track
            (the GNSS, a seed) and our last fix is older than ``track_window_s``.
        tracking_pair: the last fix's refined (heading offset, scale) while it is
            recent and tracking candidates are configured; None otherwise.
        measured: the correction the GNSS's velocity measured now, if any.
        bound_k: how many of its sigmas the refinement may stray from it.
    """
    patch = isinstance(view, PatchView)
    if not heading_trusted and cold:
        step = heading_search_step_deg
        match = replace(
            match,
            heading_candidates_deg=tuple(-180.0 + step * k for k in range(round(360.0 / step))),
        )
    elif tracking_pair is not None and not patch:
        match = replace(
            match,
            heading_candidates_deg=(tracking_pair[0],),
            scale_candidates=(tracking_pair[1],),
        )
    if measured is None or not patch:
        return SearchPlan(match)
    held = held_match(match, measured, bound_k, headings=heading_trusted)
    return SearchPlan(
        held,
        measured if held.scale_bounds else None,
        measured if held.heading_bounds_deg else None,
    )


#: a refined scale this far (3/8 of a refinement step, 1.5 %) past the outermost
#: candidate presses on the edge: the refinement's own reach ends 1.5 steps beyond.
#: At a quarter step, a quarter of the calibration pairs' 400 m frames at heights
#: within the candidates' reach pressed (145 of 600), at 3/8 a fifth (124)
PRESS_STEPS = 0.375
#: how much better a rung's match must rank than the one before to replace it. A
#: small frame's scale is weakly seen, and a rung's placement at the wrong scale
#: may rank above the right one by chance: on the calibration pairs' 400 m frames
#: at heights within reach, the 124 that pressed kept 91 right placements taking
#: any better rung, 97 at 15 % (98 never taking one); with the height a fifth or
#: a quarter off, 281 / 272 (188 never)
RUNG_RANK_MARGIN = 0.15


def pressed_rung(match: MatchConfig, rung: tuple[float, ...], scale: float) -> tuple[float, ...]:
    """The next rung out from ``rung`` (scale candidates), where a refined ``scale``
    presses past its outermost one; () where it does not.

    A rung is the one before times (or over) its own span ``max / min``:
    (0.92, 1.0, 1.08) goes on to (1.08, 1.174, 1.268) or (0.784, 0.852, 0.92), of
    which the candidate the two share is not searched again. A single candidate
    (tracking) or a bounded scale (held by the GNSS's measurement) has no rung.
    """
    if len(rung) < 2 or match.scale_bounds is not None:
        return ()
    lo, hi = min(rung), max(rung)
    press = 1.0 + PRESS_STEPS * match.refine_scale_step
    if scale > hi * press:
        span = hi / lo
    elif scale < lo / press:
        span = lo / hi
    else:
        return ()
    return tuple(s * span for s in sorted(rung))


def _rank(match: MatchConfig, result: MatchResult) -> float:
    """A result ranked as :func:`.matcher.match_frame` ranks its candidates."""
    return rank(result.coarse.score, result.template_px, match)


def search_view(
    view: MatchView,
    mosaic: Mosaic,
    *,
    metres_per_world_px: float,
    predicted_nadir: tuple[float, float],
    radius_m: float,
    match: MatchConfig,
    min_score: Callable[[float], float],
    scale_rungs: int = 0,
) -> tuple[MatchResult, int]:
    """Match ``view`` within ``radius_m`` of ``predicted_nadir`` (map-zoom world px):
    the match, and how many heading/scale pairs were searched for it (the gate asks
    more of more draws: :func:`.gate.candidates_extra`).

    A patch is searched on the fine raster whatever its size
    (:func:`.matcher.match_frame`'s ``fine_only``). ``min_score`` gives the least
    score a match may have for the ground its template covers
    (:func:`.gate.min_score_at`).

    Up to ``scale_rungs`` times, a match whose refined scale presses past the
    outermost candidate is searched again on the next rung out
    (:func:`pressed_rung`), whose match replaces it where it ranks
    :data:`RUNG_RANK_MARGIN` above it; one still pressing past the last rung
    allowed, or whose next rung's window leaves the tiles, is refused. Why: the refinement reaches
    about 0.90-1.10 of the flat-ground height, and beyond it the scale held at
    that reach while the placement went on. On the calibration pairs (0.15 deg
    attitude error, 60 cold 1 km frames per height), with the height reported
    0.85 / 0.82 / 0.78 / 1.2 / 1.25 of the truth, 88 / 57 / 7 / 60 / 18 % were
    fixed with 1 / 4 / 2 / 5 / 8 over 30 m off; with two rungs 98 / 97 / 87 /
    100 / 98 % with 0 / 1 / 0 / 0 / 0 (1.35: 70 %). 400 m frames (120 per
    height) at 0.82 / 1.2 / 0.75: 34 / 56 / 6 % -> 55 / 64 / 37 %. Frames at
    heights within reach fixed as before (400 m, exact attitude: 389 of 600
    against 388, one wrong either way), and certainly-wrong ones (priors 0.9-1.3
    km off) passed the gate as often (1 of 900 either way).

    Raises:
        FrameRejected: ``prior_outside_map`` (the window leaves the tiles), the
            matcher's own reason (``bad_geometry``, ``low_texture``), or ``gate``
            for a best placement on the window's edge (the true peak may lie
            beyond it), a scale pressing past the last rung, or a score under
            ``min_score``.
    """
    radius = round(radius_m, 1)

    def matched(cfg: MatchConfig) -> tuple[MatchResult | None, str]:
        try:
            return match_frame(
                view,
                fine=mosaic.fine,
                coarse=mosaic.coarse,
                metres_per_world_px=metres_per_world_px,
                predicted_nadir=predicted_nadir,
                search_radius_m=radius_m,
                cfg=cfg,
                fine_only=isinstance(view, PatchView),
            )
        except OutsideMap as err:
            raise FrameRejected("prior_outside_map", str(err), search_radius_m=radius) from err

    result, why = matched(match)
    if result is None:
        raise FrameRejected(why, f"no match ({why})", search_radius_m=radius)
    headings = len(match.heading_candidates_deg)
    searched = headings * len(match.scale_candidates)
    rung = match.scale_candidates
    for climbed in range(scale_rungs + 1):
        before, rung = rung, pressed_rung(match, rung, result.scale)
        new = tuple(s for s in rung if all(abs(s / t - 1.0) > 0.01 for t in before))
        if not new:
            break
        pressing = FrameRejected(
            "gate",
            f"scale {result.scale:.3f} presses past the scales searched "
            f"({min(before):.3f}-{max(before):.3f}): the height is off by more",
            scale=round(result.scale, 4),
            search_radius_m=radius,
            scale_on_edge=1,
        )
        if climbed == scale_rungs:
            # the true scale lies past what was searched: the placement went on
            # without it, and such fixes were the ones 30 m and more off
            raise pressing
        # every heading candidate again: at the wrong scale the search's heading
        # is less sure, and the rung searched at that heading alone fixed 80 % of
        # 1 km frames with the height 22 % off (87 % with every heading) and left
        # their p95 at 13 m (6 m), for a third of the rung's time
        searched += headings * len(new)
        try:
            further, _ = matched(replace(match, scale_candidates=new))
        except FrameRejected as err:
            # the rung's larger view leaves the tiles the match before fitted in:
            # that match still presses, and nothing was searched past it
            raise pressing from err
        if further is None or _rank(match, further) <= (1.0 + RUNG_RANK_MARGIN) * _rank(
            match, result
        ):
            break
        result = further
    pk = result.coarse
    if result.on_edge:
        raise FrameRejected(
            "gate",
            "best placement on the search window's edge: the true peak may lie beyond it",
            score=round(pk.score, 4),
            margin_sigmas=round(pk.margin_sigmas, 3),
            search_radius_m=radius,
            on_edge=1,
        )
    least = min_score(result.template_side_m)
    if pk.score < least:
        raise FrameRejected(
            "gate",
            f"score {pk.score:.3f} < {least:.3f}",
            score=round(pk.score, 4),
            search_radius_m=radius,
        )
    return result, searched
