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


def search_view(
    view: MatchView,
    mosaic: Mosaic,
    *,
    metres_per_world_px: float,
    predicted_nadir: tuple[float, float],
    radius_m: float,
    match: MatchConfig,
    min_score: Callable[[float], float],
) -> MatchResult:
    """Match ``view`` within ``radius_m`` of ``predicted_nadir`` (map-zoom world px).

    A patch is searched on the fine raster whatever its size
    (:func:`.matcher.match_frame`'s ``fine_only``). ``min_score`` gives the least
    score a match may have for the ground its template covers
    (:func:`.gate.min_score_at`).

    Raises:
        FrameRejected: ``prior_outside_map`` (the window leaves the tiles), the
            matcher's own reason (``bad_geometry``, ``low_texture``), or ``gate``
            for a best placement on the window's edge (the true peak may lie
            beyond it) or a score under ``min_score``.
    """
    radius = round(radius_m, 1)
    try:
        result, why = match_frame(
            view,
            fine=mosaic.fine,
            coarse=mosaic.coarse,
            metres_per_world_px=metres_per_world_px,
            predicted_nadir=predicted_nadir,
            search_radius_m=radius_m,
            cfg=match,
            fine_only=isinstance(view, PatchView),
        )
    except OutsideMap as err:
        raise FrameRejected("prior_outside_map", str(err), search_radius_m=radius) from err
    if result is None:
        raise FrameRejected(why, f"no match ({why})", search_radius_m=radius)
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
    return result
