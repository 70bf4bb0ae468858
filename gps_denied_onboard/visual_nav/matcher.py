"""Where in the map is this frame? Coarse-to-fine correlation of orientation fields.

1. **Coarse** (``coarse_resolution_m``, cheap): the frame is rectified for each
   candidate heading offset and height scale around what the autopilot says
   (its yaw is good to a few degrees, its height above ground to ~10 %), and
   each candidate's orientation field is correlated over the whole search
   window (masked ZNCC, :mod:`.correlate`). The best candidate wins. A view
   searched on the fine raster (a stitched patch) that is wide enough for the
   coarse one is ranked there and only its best two searched on the fine raster.
2. **Fine**: around the coarse peak, a cross of heading and scale steps is
   correlated in a window only a few pixels wider than the template; a
   parabola through the scores refines heading and scale, once at the coarse
   resolution and again with half the steps at ``resolution_m``, and the
   translation peak is refined to sub-pixel at the refined pair.

The runner-up peak (best score farther than ``exclusion_m`` from the winner) is
found over the coarse search window, where an aliased place would show up;
the *margin* between the two is what the confidence gate judges. A winner on
the window's border is no peak the search can vouch for: the surface may go on
rising beyond the window, toward the truth that a prior off by more than its
radius left just outside, and the placement nearest to it scores highest by
the true peak's slope, with a margin that says nothing. Priors 420-700 m off
in a 360 m search put 1 km frames 35-54 m from the truth with margins of
3.7-5.0 sigma (6 of 300, calibration pairs), and 4 more 15-30 m off. The
refinement below, searching a few pixels around it, reaches a true peak just
beyond the border; only when its own best is on its border too is the match
``MatchResult.on_edge``, which the estimator refuses (then 1 of the 300 is
35 m off, none 15-30 m).

The search correlates ``orientation_harmonics`` harmonics of the edge
orientation (:mod:`.features`): with the second, a right match stands further
above its runner-up. The refinement correlates ``refine_harmonics``: the
doubled angle alone placed 1 km frames better (calibration pairs, 180 frames:
median 2.52 against 2.61 m, p95 4.87 against 5.27 m with both).

A colour frame against colour tiles gets a witness from another plane: the
edges of its colour saturation (:func:`.features.saturation_f32`) are
correlated around the placement the gray search chose
(:meth:`.witness.PlacedTemplate.colour_support`), which the gate weighs into a frame's
evidence when the prior does not corroborate the match (:func:`.gate.evidence`).
The saturation plane stays out of the search itself: correlated beside the
gray one there, it passed more right 400 m frames (reported pairs 66.5 / 91.5
/ 50.5 % against 53.5 / 86.5 / 40.5 %) but also more certainly-wrong ones, the
best at 5.04 sigma in 2,227, so a gate as safe (3.8) passed fewer right ones
than gray alone at 3.25 (calibration pairs 61 against 67 %). Judged where the
gray plane put the template, it has no say in where that is, and a chance
placement rarely has colour behind it.

A rotation of the body about the vertical turns the ground image about the
nadir, and a height error scales it about the nadir, so the view
(:mod:`.views`) applies both: a frame is re-rectified with a turned attitude
and a scaled height, a stitched patch is turned and scaled as one. The nadir
stays the answer's anchor throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.correlate import (
    Peak,
    Template,
    WindowSpectra,
    find_peak,
    masked_zncc_within,
    prepare_template,
    window_spectra,
)
from gps_denied_onboard.visual_nav.features import orientation_field
from gps_denied_onboard.visual_nav.raster import FieldRaster
from gps_denied_onboard.visual_nav.rectify import RectifiedFrame
from gps_denied_onboard.visual_nav.views import MatchView
from gps_denied_onboard.visual_nav.witness import PlacedTemplate

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]


@dataclass(frozen=True)
class MatchConfig:
    """Matcher settings (from the node's parameters)."""

    resolution_m: float = 5.0
    coarse_resolution_m: float = 10.0
    heading_candidates_deg: tuple[float, ...] = (-4.0, 0.0, 4.0)
    scale_candidates: tuple[float, ...] = (0.92, 1.0, 1.08)
    refine_heading_step_deg: float = 2.0
    refine_scale_step: float = 0.04
    refine_margin_px: int = 4
    exclusion_m: float = 80.0
    min_texture: float = 2.0
    min_map_coverage: float = 0.3
    min_coarse_template_px: float = 80.0
    # a patch ranked on the coarse raster keeps this many of its best candidates
    # for the fine one (matcher.match_frame)
    coarse_ranked_kept: int = 4
    # heading/scale candidates are ranked by peak score x (template pixels) ** this:
    # a smaller render's chance correlation runs higher, so by score alone the
    # 0.92 scale beat the nearer one (matcher._search_candidates says how much)
    rank_size_exponent: float = 0.25
    fine_refine: bool = True
    orientation_harmonics: int = 2  # searched (the gate's margin)
    refine_harmonics: int = 1  # refined (the position)
    agreement_reach_px: int = 8  # the quadrants' neighbourhood (fine px each way)
    witness_reach_px: int = 8  # the colour and intensity supports' neighbourhood (fine px each way)
    # where the refinement may take heading and scale (a correction measured
    # against the GNSS's velocity, :mod:`.gnss_correction`); None: anywhere
    heading_bounds_deg: tuple[float, float] | None = None
    scale_bounds: tuple[float, float] | None = None


@dataclass(frozen=True)
class MatchResult:
    """A match of one frame.

    Attributes:
        nadir_x / nadir_y: the camera's nadir in map-zoom world pixels.
        heading_offset_deg: correction to the autopilot's heading, ENU sense
            (counter-clockwise positive; the compass correction is its negative).
        scale: correction factor to the height above ground.
        coarse: the coarse peak (its margin feeds the gate).
        fine_score: ZNCC at the refined placement (fine resolution).
        curvature: sharpness of the fine peak (per px^2).
        footprint_m: diameter of the ground seen.
        texture: mean gradient magnitude of the frame.
        template_px: valid pixels of the coarse template (the gate scales with it).
        template_side_m: square root of the ground area that template covers:
            how much ground the gate's correlation surface was judged on.
        placed: the refined template where it was placed, for the gate's
            second look (:mod:`.witness`), which costs 2-8 ms and so
            is only taken for a frame alone the prior does not corroborate, or
            when the margin alone falls short.
        on_edge: the search's best placement lies on its window's border and
            the refinement's on its own: no peak either could show (module docstring).
        ground_box_m: the box the placed template's ground fills, metres from the
            nadir (west, south, east, north; :attr:`.rectify.RectifiedFrame.ground_box_m`):
            a tilted frame's or a stitched patch's bulk lies off its nadir, and what
            the map holds there is what the match was made against.
    """

    nadir_x: float
    nadir_y: float
    heading_offset_deg: float
    scale: float
    coarse: Peak
    fine_score: float
    curvature: float
    footprint_m: float
    texture: float
    template_px: int
    template_side_m: float
    placed: PlacedTemplate | None = None
    on_edge: bool = False
    ground_box_m: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)


#: how much wider than one render's the refinement's shared window is (px each way)
_REFINE_SLACK_PX = 6


def _inside(box: tuple[int, int, int, int], outer: tuple[int, int, int, int]) -> bool:
    return box[0] >= outer[0] and box[1] >= outer[1] and box[2] <= outer[2] and box[3] <= outer[3]


def _on_border(pk: Peak, side: int) -> bool:
    """Whether a peak of a ``side`` x ``side`` surface lies on its border (no sub-pixel
    fit there: it is no maximum the surface can show)."""
    return not (0.0 < pk.col < side - 1 and 0.0 < pk.row < side - 1)


class OutsideMap(Exception):
    """The search window is not inside the map raster."""


def rank(score: float, template_px: int, cfg: MatchConfig) -> float:
    """How a search ranks a heading/scale candidate's peak: its ``score`` weighed by
    its template's valid pixels ** ``rank_size_exponent`` (why: :func:`_search_candidates`)."""
    return float(score * float(template_px) ** cfg.rank_size_exponent)


def _field(rf: RectifiedFrame, harmonics: int) -> tuple[tuple[F32, ...], float]:
    return orientation_field(rf.image, rf.mask, harmonics=harmonics)


@dataclass(frozen=True)
class _Searched:
    """The best of a view's heading/scale candidates over one search window."""

    best: tuple[float, float, Peak, RectifiedFrame, tuple[F32, ...], int, int]
    template_px: int  # the winner's valid template pixels
    texture: float  # the most texture any candidate showed
    span: int  # placements searched along each axis
    #: every candidate's (heading, scale), best score first
    ranking: tuple[tuple[float, float], ...]


def _search_candidates(
    view: MatchView,
    raster: FieldRaster,
    *,
    res: float,
    pairs: list[tuple[float, float]],
    predicted_nadir: tuple[float, float],
    search_radius_m: float,
    cfg: MatchConfig,
) -> _Searched | str:
    """Every (heading, scale) pair of ``pairs`` rendered at ``res`` and correlated over
    the search window on ``raster``; the reason to stop where one cannot be.

    Every candidate first: its render, field and window (and its reasons to stop,
    in candidate order), then one window around them all, transformed once.

    Raises:
        OutsideMap: the search window leaves the map raster.
    """
    cands: list[tuple[float, float, RectifiedFrame, tuple[F32, ...], Template, int, int]] = []
    texture = 0.0
    nx = (predicted_nadir[0] - raster.origin_x) / raster.step - 0.5
    ny = (predicted_nadir[1] - raster.origin_y) / raster.step - 0.5
    rad = search_radius_m / res
    span = math.ceil(2 * rad) + 1
    for dh, s in pairs:
        rf = view.render(dh, s, res)
        if rf is None:
            return "bad_geometry"
        chans, tex = _field(rf, cfg.orientation_harmonics)
        texture = max(texture, tex)
        if tex < cfg.min_texture:
            return "low_texture"
        tpl = prepare_template(chans, rf.mask)
        ht, wt = tpl.shape
        # window: placements that put the nadir within the search radius
        x0 = math.floor(nx - rf.nadir_col - rad)
        y0 = math.floor(ny - rf.nadir_row - rad)
        if raster.window(x0, y0, wt + span - 1, ht + span - 1, 1) is None:
            raise OutsideMap(f"search window at ({x0}, {y0}) leaves the map")
        covered = raster.coverage(x0, y0, wt + span - 1, ht + span - 1)
        if covered < cfg.min_map_coverage:
            raise OutsideMap(f"tiles cover only {covered:.0%} of the search window")
        cands.append((dh, s, rf, chans, tpl, x0, y0))
    ux0 = min(c[5] for c in cands)
    uy0 = min(c[6] for c in cands)
    ux1 = max(c[5] + c[4].shape[1] + span - 1 for c in cands)
    uy1 = max(c[6] + c[4].shape[0] + span - 1 for c in cands)
    union = raster.window(ux0, uy0, ux1 - ux0, uy1 - uy0, cfg.orientation_harmonics)
    assert union is not None  # each candidate's window is inside the map, so is their box
    spectra = window_spectra(union)
    # Candidates are ranked by their peak's score weighed by their template's size
    # (rank_size_exponent), not by the score alone. Why: a ZNCC over fewer pixels
    # scatters wider, so a render at a smaller scale peaks higher by chance, and the
    # scale candidates differ by 17 % in area each step. On the 2014 calibration
    # flights (400 m frames stitched, seed 188000, 16 flights per pair, 1,404 fixes)
    # by score alone the search's scale was a lower candidate than the one nearest
    # the truth for 14.0 % of fixes and a higher one for 1.8 %; 5.2 % of fixes ended
    # over 5 % too small against 0.6 % too large, and those carried the velocities'
    # worst errors (speed x scale error) and a patch's nadir by its lever. Weighed by
    # pixels ** 0.25: 9.2 % and 2.5 %; fixes over 20 m off 18 -> 14, the first 6 s'
    # velocity error (RMS) 0.91 / 0.82 -> 0.89 / 0.79 m/s, single cold 400 m frames
    # fixed 592 -> 598 of 900 (wrong 2 -> 1). ** 0.5 (a z-score's weight) evened the
    # two shares (5.4 / 6.1 %) but let a larger scale carry a patch 37 m off.
    best: tuple[float, float, Peak, RectifiedFrame, tuple[F32, ...], int, int] | None = None
    best_rank = -math.inf
    template_px = 0
    scored: list[tuple[float, tuple[float, float]]] = []
    for dh, s, rf, chans, tpl, x0, y0 in cands:
        score = masked_zncc_within(spectra, tpl, (x0 - ux0, y0 - uy0, span, span))
        pk = find_peak(score, cfg.exclusion_m / res)
        ranked = rank(pk.score, int(tpl.count), cfg)
        scored.append((ranked, (dh, s)))
        if best is None or ranked > best_rank:
            best = (dh, s, pk, rf, chans, x0, y0)
            best_rank = ranked
            template_px = int(tpl.count)
    assert best is not None
    ranking = tuple(pair for _, pair in sorted(scored, key=lambda c: -c[0]))
    return _Searched(best, template_px, texture, span, ranking)


def match_frame(
    view: MatchView,
    *,
    fine: FieldRaster,
    coarse: FieldRaster,
    metres_per_world_px: float,
    predicted_nadir: tuple[float, float],
    search_radius_m: float,
    cfg: MatchConfig,
    fine_only: bool = False,
) -> tuple[MatchResult | None, str]:
    """Match one view (a frame, or frames stitched); ``(None, reason)`` when it cannot be.

    Args:
        metres_per_world_px: true ground metres per map-zoom world pixel here.
        predicted_nadir: where the prior puts the camera's nadir (world px).
        search_radius_m: how far from the prediction the answer may be.
        fine_only: search on the fine raster whatever the view's size (frames
            stitched: the gate's template size is then counted in fine pixels,
            as for the small single frames the stitch replaces). A view wide
            enough for the coarse raster still ranks its heading/scale
            candidates there first and searches the best ``coarse_ranked_kept``
            (4) on the fine raster: nearly always the same winner, at four
            ninths of the fine correlations.

    Raises:
        OutsideMap: the search window leaves the map raster.
    """
    # the coarse level needs ~100 px across the footprint: a small footprint is
    # searched on the fine raster, a large one on the coarse raster
    wide = view.width_m / cfg.coarse_resolution_m >= cfg.min_coarse_template_px
    pairs = [(dh, s) for dh in cfg.heading_candidates_deg for s in cfg.scale_candidates]
    if fine_only and wide and len(pairs) > 1:
        # a patch wide enough for the coarse raster ranks its heading/scale pairs
        # there, then searches the best four on the fine raster (the gate's margin
        # and template stay fine ones). Why: the sample flight's patches in its
        # 200 m turns are 700-1300 m across, and their nine fine candidates took
        # a third of a frame's time. Why four: the coarse winner is not always the
        # fine one, and a patch whose right pair is not kept is placed by a wrong
        # one (reported 400 m flights, 8-year pair: 8 wrong fixes with the best
        # alone, 2 with two kept, none with four or nine; README, item 6)
        # (where the coarse raster cannot rank them, at the mosaic's edge or too
        # little texture at 10 m, every candidate goes to the fine raster as before)
        try:
            ranked = _search_candidates(
                view,
                coarse,
                res=cfg.coarse_resolution_m,
                pairs=pairs,
                predicted_nadir=predicted_nadir,
                search_radius_m=search_radius_m,
                cfg=cfg,
            )
        except OutsideMap:
            ranked = "outside"
        if isinstance(ranked, _Searched):
            pairs = list(ranked.ranking[: cfg.coarse_ranked_kept])
    if fine_only or not wide:
        coarse, res_c = fine, cfg.resolution_m
    else:
        res_c = cfg.coarse_resolution_m
    found = _search_candidates(
        view,
        coarse,
        res=res_c,
        pairs=pairs,
        predicted_nadir=predicted_nadir,
        search_radius_m=search_radius_m,
        cfg=cfg,
    )
    if isinstance(found, str):
        return None, found
    best, template_px, texture, span = found.best, found.template_px, found.texture, found.span
    dh0, s0, coarse_pk, rf_c, chans_c, x0c, y0c = best
    # the coarse answer, as the nadir in world px
    cx = coarse.origin_x + (x0c + coarse_pk.col + rf_c.nadir_col + 0.5) * coarse.step
    cy = coarse.origin_y + (y0c + coarse_pk.row + rf_c.nadir_row + 0.5) * coarse.step
    m = cfg.refine_margin_px

    # the search's winner, rendered at res_c: its field's first harmonics are the
    # refinement's (features.orientation_field), so it is not rendered again
    reuse = cfg.refine_harmonics <= cfg.orientation_harmonics
    shared: dict[int, tuple[tuple[int, int, int, int], WindowSpectra]] = {}

    def local(
        raster: FieldRaster, res: float, pair: tuple[float, float], margin: int
    ) -> tuple[Peak, RectifiedFrame, int, int, tuple[F32, ...]] | None:
        """The peak within ``margin`` px of the coarse answer for one heading/scale pair."""
        if reuse and res == res_c and pair == (dh0, s0):
            rf, chans = rf_c, chans_c[: 2 * cfg.refine_harmonics]
        else:
            got = view.render(pair[0], pair[1], res)
            if got is None:
                return None
            rf, chans = got, _field(got, cfg.refine_harmonics)[0]
        tpl = prepare_template(chans, rf.mask)
        ht, wt = tpl.shape
        nx = (cx - raster.origin_x) / raster.step - 0.5
        ny = (cy - raster.origin_y) / raster.step - 0.5
        fx0 = round(nx - rf.nadir_col) - margin
        fy0 = round(ny - rf.nadir_row) - margin
        need = (fx0, fy0, fx0 + wt + 2 * margin, fy0 + ht + 2 * margin)
        box, spectra = shared.get(id(raster), ((0, 0, 0, 0), None))
        if spectra is None or not _inside(need, box):
            # the cross's renders differ by a few px in size and offset: a window a
            # little wider than this one's is transformed once for all of them
            p = _REFINE_SLACK_PX
            win = None
            for box in ((need[0] - p, need[1] - p, need[2] + p, need[3] + p), need):
                # the slack may leave the raster where this window alone does not
                win = raster.window(
                    box[0], box[1], box[2] - box[0], box[3] - box[1], cfg.refine_harmonics
                )
                if win is not None:
                    break
            if win is None:
                return None
            spectra = window_spectra(win)
            shared[id(raster)] = (box, spectra)
        score = masked_zncc_within(
            spectra, tpl, (fx0 - box[0], fy0 - box[1], 2 * margin + 1, 2 * margin + 1)
        )
        return find_peak(score, 1.0), rf, fx0, fy0, chans

    # heading and scale: two parabolas through a cross of steps, at the coarse resolution.
    # The cross's scores are not weighed by template size as the ranking is: weighed
    # (** 0.125 / 0.25), the scale's median error on the 2014 calibration flights went
    # from -0.5 % to 0 (400 m frames stitched, seed 188000, 16 flights per pair), but
    # neither the fixes got better (median 4.21 -> 4.32 / 4.32 m, p95 11.96 -> 12.05 /
    # 12.75 m) nor the velocities (RMS 0.72 -> 0.71 / 0.73 m/s at 6-20 s)
    hs = cfg.refine_heading_step_deg
    ss = cfg.refine_scale_step

    def vertex(a: float, b: float, c: float) -> float:
        den = a - 2 * b + c
        return 0.0 if den >= 0 else max(-1.0, min(1.0, 0.5 * (a - c) / den))

    def climb(a: float, b: float, c: float) -> float:
        # a pair on the convex flank of its peak (no parabola's vertex) steps toward
        # the higher side: with vertex() alone it never moves, and a tracking pair
        # held scale 0.927 so for 17 s, its fixes 10-19 m off
        if a - 2 * b + c < 0:
            return vertex(a, b, c)
        if b >= a and b >= c:
            return 0.0
        return 1.0 if c > a else -1.0

    def bounded(dh: float, s: float) -> tuple[float, float]:
        hb, sb = cfg.heading_bounds_deg, cfg.scale_bounds
        if hb is not None:
            dh = min(max(dh, hb[0]), hb[1])
        if sb is not None:
            s = min(max(s, sb[0]), sb[1])
        return dh, s

    # tracking (one candidate: the last frame's refined pair) goes straight to the
    # fine cross below; a wider search first brings the pair within a coarse step
    tracking = len(cfg.heading_candidates_deg) == 1 and len(cfg.scale_candidates) == 1
    dh_f, s_f = dh0, s0
    if not (tracking and cfg.fine_refine):
        # every score of the cross from the same correlation: the search's peak
        # (other harmonics) is on another scale, and a parabola through mixed
        # scores bends to its clamp (seen: 1 km p95 error 4.6 -> 11 m)
        scores: dict[tuple[int, int], float] = {}
        for i, j in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)):
            got = local(coarse, res_c, (dh0 + i * hs, s0 * (1 + j * ss)), 2)
            scores[(i, j)] = got[0].score if got is not None else -1.0
        di = vertex(scores[(-1, 0)], scores[(0, 0)], scores[(1, 0)])
        dj = vertex(scores[(0, -1)], scores[(0, 0)], scores[(0, 1)])
        dh_f, s_f = bounded(dh0 + di * hs, s0 * (1 + dj * ss))
    fine_got = local(fine, cfg.resolution_m, (dh_f, s_f), m)
    if fine_got is not None and cfg.fine_refine:
        # again at the fine resolution with half the steps: a long view (frames
        # stitched) turns its far end by its length times the heading error
        fs = {(0, 0): fine_got[0].score}
        for i, j in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            got = local(fine, cfg.resolution_m, (dh_f + i * hs / 2, s_f * (1 + j * ss / 2)), m)
            fs[(i, j)] = got[0].score if got is not None else -1.0
        di = climb(fs[(-1, 0)], fs[(0, 0)], fs[(1, 0)])
        dj = climb(fs[(0, -1)], fs[(0, 0)], fs[(0, 1)])
        if di != 0.0 or dj != 0.0:
            dh_f, s_f = bounded(dh_f + di * hs / 2, s_f * (1 + dj * ss / 2))
            fine_got = local(fine, cfg.resolution_m, (dh_f, s_f), m)
    if fine_got is None:
        return None, "bad_geometry"
    pk, rf, fx0, fy0, chans_f = fine_got
    nadir_x = fine.origin_x + (fx0 + pk.col + rf.nadir_col + 0.5) * fine.step
    nadir_y = fine.origin_y + (fy0 + pk.row + rf.nadir_row + 0.5) * fine.step

    def colour_plane() -> F32 | None:
        # the same render as the placed one, with its saturation plane (the same
        # geometry: rendering is deterministic); only the gate's uncorroborated
        # matches ask, so tracking frames never pay for it
        got = view.render(dh_f, s_f, cfg.resolution_m, colour=True)
        if got is None or got.chroma is None or got.mask.shape != rf.mask.shape:
            return None
        return got.chroma

    placed = PlacedTemplate(
        chans_f,
        rf.mask,
        fine,
        fx0 + round(pk.col),
        fy0 + round(pk.row),
        cfg.refine_harmonics,
        cfg.agreement_reach_px,
        colour_plane if fine.colour is not None else None,
        cfg.witness_reach_px,
        rf.image,
    )
    return (
        MatchResult(
            nadir_x,
            nadir_y,
            dh_f,
            s_f,
            coarse_pk,
            pk.score,
            pk.curvature,
            rf.footprint_m,
            texture,
            template_px,
            math.sqrt(template_px) * res_c,
            placed,
            _on_border(coarse_pk, span) and _on_border(pk, 2 * m + 1),
            rf.ground_box_m,
        ),
        "",
    )


def frame_offset_m(
    frame: MatchView,
    placed: MatchResult,
    *,
    fine: FieldRaster,
    metres_per_world_px: float,
    radius_m: float,
    cfg: MatchConfig,
) -> float | None:
    """How far the newest frame alone puts its nadir from where its stitched patch put it (m).

    A patch is placed as one rigid template, and its nadir (the newest frame's)
    hangs a lever of 100-400 m off the bulk that the correlation pins down, so
    the patch's heading and scale carry to the fix times that lever. Over a
    patch both are weakly seen: the score along a ridge of heading and scale
    changes by about 1 % (calibration flight on the 5-year pair: 0.250 at 3 deg
    and 0.92 where the fix lands 32 m off, 0.254 at 2 deg and 0.98 where it
    lands 4 m off), so a patch can settle on the wrong end of it and the
    following ones, centred on its track, stay there. The frame alone, searched
    only ``radius_m`` around the patch's nadir at the patch's heading and scale
    (refined on its own), has a lever of a few metres and no stake in the ridge:
    where the two disagree, the fix is less sure. ``radius_m`` when the frame's
    best lies on the window's edge (its own peak is that far or farther); None
    when the frame alone has no answer there (no render, too little texture).
    """
    one = replace(
        cfg,
        heading_candidates_deg=(placed.heading_offset_deg,),
        scale_candidates=(placed.scale,),
    )
    try:
        got, _ = match_frame(
            frame,
            fine=fine,
            coarse=fine,
            metres_per_world_px=metres_per_world_px,
            predicted_nadir=(placed.nadir_x, placed.nadir_y),
            search_radius_m=radius_m,
            cfg=one,
            fine_only=True,
        )
    except OutsideMap:
        return None
    if got is None:
        return None
    if got.on_edge:
        return radius_m
    moved_px = math.hypot(got.nadir_x - placed.nadir_x, got.nadir_y - placed.nadir_y)
    return moved_px * metres_per_world_px  # world px at the map's zoom -> ground metres
