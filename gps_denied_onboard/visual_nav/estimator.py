"""The visual position estimator: frames in, absolute position fixes out.

One :class:`VisualEstimator` per camera. The node feeds it the autopilot's
attitude, altitude, rangefinder and GNSS as they arrive, and each camera frame
with its capture stamp; :meth:`VisualEstimator.process` returns a
:class:`VisualFix` or raises :class:`~.errors.FrameRejected` with a reason.

Per frame:

1. the frame's exposure is checked (black, saturated, flat, overexposed:
   ``bad_exposure``), and the lens's vignetting, measured over the frames,
   divided out (:mod:`.flat_field`);
   the camera is placed by the stated mount turned by its mounting error, learnt
   against a healthy GNSS (:mod:`.boresight`); both are kept across a restart by
   the node (:mod:`.learnt_camera`);
2. attitude at the capture stamp (slerp of the FC's stream; refused when stale)
   and height above ground (:mod:`.state`);
3. frame-to-frame registration on the last frame (:mod:`.registered_track`,
   :mod:`.odometry`): the motion between captures, hence the velocity and the
   position carried between fixes; and, for a small footprint, recent frames
   stitched into one patch that is matched instead (:class:`.views.PatchView`);
4. the prior: the FC's own GNSS while it is healthy, unless this estimator's
   own track is tighter and agrees with it, or disagrees with it but holds (a
   spoofed GNSS); the own track is the last frame's position carried by
   registration, else the last fix propagated with its velocity (:mod:`.prior`);
   the prior's uncertainty sets the search radius, and frames failing around
   the GNSS for a while are searched again in a wider window (``LostClock``);
5. the search is centred on the nadir the prior predicts, so the footprint
   (which a bank or a pitch throws hundreds of metres off the vehicle) is
   searched where it really is;
6. the map window (:mod:`.map_window` over :mod:`.mapview`), the heading and
   scale candidates and the refusals before any gate (:mod:`.search`), the coarse-to-fine match
   (:mod:`.matcher`) and the gate (:mod:`.gate`) on the margin between the best
   and the best distinct runner-up, for a small template alone on that and the
   witnesses of its placement;
7. the fix: the nadir is the vehicle's horizontal position, with the 1-sigma
   of :mod:`.uncertainty` (map floor, attitude, match, placement);
8. velocity from registration (from consecutive fixes when it failed), with
   the covariance that follows.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.boresight import Boresight
from gps_denied_onboard.visual_nav.camera import CameraModel, turned
from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.fix import GroundView, VisualFix
from gps_denied_onboard.visual_nav.flat_field import FlatField
from gps_denied_onboard.visual_nav.gate import (
    FlipGuard,
    candidates_extra,
    gate_at,
    judge,
    min_score_at,
    searches_extra,
    sharp_side_m,
)
from gps_denied_onboard.visual_nav.geo import (
    ground_resolution_m,
    latlon_to_world_px,
    on_the_map,
    world_px_to_latlon,
)
from gps_denied_onboard.visual_nav.gnss_correction import GnssCorrection
from gps_denied_onboard.visual_nav.ground_scale import GroundScaleLadder
from gps_denied_onboard.visual_nav.map_window import MapWindow
from gps_denied_onboard.visual_nav.mapview import Mosaic, TileSource
from gps_denied_onboard.visual_nav.matcher import frame_offset_m
from gps_denied_onboard.visual_nav.odometry import Displacement, OdometryTrack
from gps_denied_onboard.visual_nav.pixels import checked_gray
from gps_denied_onboard.visual_nav.prior import (
    OWN_TRACK,
    LostClock,
    PriorConfig,
    PriorTracker,
    yaw_enu,
)
from gps_denied_onboard.visual_nav.rectify import MAX_EXTENT_M
from gps_denied_onboard.visual_nav.registered_track import RegisteredTrack
from gps_denied_onboard.visual_nav.search import plan_search, search_view
from gps_denied_onboard.visual_nav.settings import EstimatorConfig
from gps_denied_onboard.visual_nav.state import AttitudeBuffer, HeightSample, HeightSource, Prior
from gps_denied_onboard.visual_nav.uncertainty import (
    correction_sigma,
    position_sigma,
    registration_velocity,
    small_frame_fade,
    velocity_from_fixes,
)
from gps_denied_onboard.visual_nav.views import FrameView, MatchView, PatchView

NS = 1_000_000_000
F64 = NDArray[np.float64]


class VisualEstimator:
    """Frames + FC stream + tiles -> fixes. Not thread-safe: one caller at a time."""

    def __init__(self, cfg: EstimatorConfig, tiles: TileSource) -> None:
        # the settings at the ground scale frames are matched at now (:mod:`.ground_scale`)
        self.scales = GroundScaleLadder(cfg)
        self.cfg = cfg
        self.attitude = AttitudeBuffer(
            max_age_s=cfg.attitude_max_age_s, max_gap_s=cfg.attitude_max_gap_s
        )
        self.height = HeightSource(
            ground_elevation_msl=cfg.ground_elevation_msl, max_height_m=cfg.max_height_m
        )
        self._mount = np.array(cfg.mount_rotation, dtype=np.float64).reshape(3, 3)
        self.priors = PriorTracker(
            PriorConfig(
                velocity_sigma=cfg.prior_velocity_sigma,
                accel_sigma=cfg.prior_accel_sigma,
                gnss_sigma_m=cfg.gnss_prior_sigma_m,
                consistency_k=cfg.prior_consistency_k,
                track_over_gnss_fixes=cfg.prior_track_over_gnss_fixes,
                track_over_gnss_s=cfg.prior_track_over_gnss_s,
                jump_confirm_s=cfg.jump_confirm_s,
                jump_sigma_k=cfg.jump_sigma_k,
                min_jump_m=cfg.min_jump_m,
                fc_estimate_sigma_m=cfg.fc_estimate_sigma_m,
            ),
            self.attitude,
        )
        self._last_fix: VisualFix | None = None
        self.lost = LostClock(cfg.lost_after_s, cfg.lost_sigma_growth_mps)
        self._recent: deque[VisualFix] = deque()
        self.map = MapWindow(cfg, tiles)
        # registration between frames, and the position it carries (:mod:`.registered_track`)
        self.registered = RegisteredTrack(cfg.odometry)
        # the autopilot's heading and height error, measured against the GNSS's velocity
        self.correction = GnssCorrection(cfg.gnss_correction)
        self.flat_field = FlatField(cfg.flat_field)
        self.boresight = Boresight(cfg.boresight)
        self.flip_guard = FlipGuard(int(cfg.track_window_s * NS))
        # the last frame's camera and stamp (what .learnt_camera keeps is learnt for it)
        self.last_camera: tuple[int, CameraModel] | None = None
        self.reset_counter = 0
        self.last_view: GroundView | None = None

    @property
    def odometry(self) -> OdometryTrack:
        """The registration track (:class:`.registered_track.RegisteredTrack`'s)."""
        return self.registered.odometry

    # -- the prior (:mod:`.prior`: the FC's GNSS goes to ``priors.add_gnss``) ------------

    def set_gnss_healthy(self, healthy: bool, stamp_ns: int | None = None) -> None:
        """The FC's GNSS verdict from ``stamp_ns`` on (no stamp: from now on)."""
        self.priors.set_healthy(healthy, stamp_ns)

    def add_gnss_velocity(
        self, stamp_ns: int, east: float, north: float, sigma_mps: float | None = None
    ) -> None:
        """The FC's GNSS velocity over ground (ENU m/s), which registration is measured
        against while the GNSS is healthy (:mod:`.gnss_correction`)."""
        self.correction.add_velocity(stamp_ns, east, north, sigma_mps)

    def resume_track(self, fix: Prior, reset_counter: int) -> bool:
        """The newest fix this estimator made before it was restarted (the FC bridge
        latched it): the track until our first fix (:meth:`.prior.PriorTracker.resume`),
        and its ``reset_counter``, which our fixes carry on. A restarted estimator's
        counter started at 0 again, and the FC bridge took the change for a
        relocalisation: an EKF reset (ArduPilot: a source-set switch) or, for a fix
        it was unsure of, fixes held back until three agreed. Returns whether the
        fix was taken; a track of our own is kept, with its counter.

        Raises:
            PriorError: the fix is off the map or its sigma is not a positive number.
        """
        if not self.priors.resume(fix):
            return False
        self.reset_counter = reset_counter % 256
        return True

    def seed_prior(self, stamp_ns: int, latitude: float, longitude: float, sigma_m: float) -> None:
        """A prior from outside (operator, cold start): the search grows from there."""
        self.priors.seed(stamp_ns, latitude, longitude, sigma_m)

    def prior_at(self, stamp_ns: int, own: Prior | None = None) -> Prior | None:
        """The prior at ``stamp_ns`` (:meth:`.prior.PriorTracker.prior_at`)."""
        return self.priors.prior_at(stamp_ns, own)

    def search_radius_m(self, prior: Prior) -> float:
        """``search_sigma_k`` sigmas of the prior, reaching a contested track's rival
        too (:attr:`.state.Prior.rival_m`), within the configured bounds."""
        c = self.cfg
        want = max(c.search_sigma_k * prior.sigma_m, prior.rival_m + c.min_search_radius_m)
        return min(c.max_search_radius_m, max(c.min_search_radius_m, want))

    # -- map ----------------------------------------------------------------------------

    @property
    def mosaic(self) -> Mosaic | None:
        """The map window's last mosaic (:class:`.map_window.MapWindow`)."""
        return self.map.mosaic

    @property
    def mosaic_builds(self) -> int:
        return self.map.builds

    # -- the frame ------------------------------------------------------------------------

    def process(
        self, stamp_ns: int, image: NDArray[np.generic], camera: CameraModel | None
    ) -> VisualFix:
        """Match one frame captured at ``stamp_ns``.

        Raises:
            FrameRejected: the frame gives no fix (reason and scores attached).
        """
        cfg = self.cfg
        if camera is None:
            raise FrameRejected("no_camera_info", "no CameraInfo received")
        img = np.asarray(image)
        raw = checked_gray(img, camera.width, camera.height)
        self.last_camera = (stamp_ns, camera)
        gray = self.flat_field.corrected(raw, camera)
        r_enu_flu = self.attitude.at(stamp_ns)
        r_world_cam = r_enu_flu @ self.boresight.rotation() @ self._mount
        tilt_cos = max(0.0, float(r_enu_flu[2, 2]))
        h = self.height.at(stamp_ns, tilt_cos)
        cfg = self._ground_scale_for(stamp_ns, h.height_m * camera.width / camera.focal_px)
        last = self._last_fix
        tracking = last is not None and 0 < stamp_ns - last.stamp_ns <= int(cfg.track_window_s * NS)
        # heading bias and height scale change slowly: the last fix's, while recent
        dh_t, s_t = (last.heading_offset_deg, last.scale) if tracking and last else (0.0, 1.0)
        color = img if img.ndim == 3 and img.shape[2] >= 3 else None  # for colour support
        frame_view = FrameView(
            gray, camera, r_world_cam, h.height_m, color, clouds=cfg.clouds, as_delivered=raw
        )
        view: MatchView = frame_view
        # registration runs on frames as the autopilot's attitude and height put
        # them (uncorrected), so the track never breaks when a fix refines the
        # correction; motion is turned and scaled by the last fix's correction
        corr = (last.heading_offset_deg, last.scale) if last is not None else (0.0, 1.0)
        disp: Displacement | None = None
        if cfg.odometry.enabled:
            disp, stitched = self.registered.register(
                stamp_ns,
                frame_view,
                resolution_m=cfg.match.resolution_m,
                height_m=h.height_m,
                corr=corr,
                heading=yaw_enu(r_enu_flu),
                track=self.priors.track,
                interpolation=self.attitude.interpolation_spread(stamp_ns),
            )
            if stitched is not None:
                view = PatchView(stitched, 0.0, 1.0)
        prior = self.prior_at(stamp_ns, self.registered.carry(stamp_ns, disp, corr))
        if disp is not None:
            # registration against the GNSS's motion, while the prior follows the GNSS
            followed = (
                self.priors.healthy_at(stamp_ns)
                and self.priors.gnss_at(stamp_ns) is not None
                and not (prior is not None and prior.contested)
            )
            self.correction.add_motion(
                self.odometry.frames[-2].stamp_ns,
                stamp_ns,
                (disp.de, disp.dn),
                disp.sigma_m,
                gnss_followed=followed,
            )
        if prior is None:
            raise FrameRejected("no_prior", "no GNSS and no visual track yet")
        self.flat_field.measure(raw, camera, (prior.latitude, prior.longitude), h.height_m)
        frame = _Frame(
            stamp_ns,
            gray,
            camera,
            r_enu_flu,
            r_world_cam,
            h,
            frame_view,
            view,
            disp,
            last,
            tracking,
            dh_t,
            s_t,
        )
        wide = self.lost.note_frame(
            stamp_ns,
            prior,
            cfg.max_search_radius_m / cfg.search_sigma_k,
            least_sigma_m=cfg.min_search_radius_m / cfg.search_sigma_k,
        )
        try:
            fix = self._fix_at(frame, prior)
        except FrameRejected as first:
            if wide is None:
                raise
            # lost around a GNSS that claims more than it knows: the same frame once
            # more, in the widened window, at a gate that counts the run's searches;
            # the first reject stands if this one fails
            try:
                fix = self._fix_at(frame, wide, searches_extra(cfg, self.lost.searched()))
            except FrameRejected:
                raise first from None
        self.lost.note_fix()
        self._learn_mounting(fix, r_enu_flu, h.height_m)
        return fix

    def _ground_scale_for(self, stamp_ns: int, width_m: float) -> EstimatorConfig:
        """The settings a frame ``width_m`` across is matched at (:mod:`.ground_scale`).

        Moving to another scale starts the map window and the registration track
        afresh (their pixels are the old scale's); the track of fixes, the prior and
        what was learnt of the camera and the autopilot stay, a jump confirmed within
        the scale's ``min_jump_m`` as the gate judges one.
        """
        where = self._last_fix or self.priors.prior_at(stamp_ns)
        if self.scales.choose(width_m, self.map.tiles, where):
            self.cfg = self.scales.cfg
            self.map = MapWindow(self.cfg, self.map.tiles)
            self.registered = RegisteredTrack(self.cfg.odometry)
            self.priors.cfg = replace(self.priors.cfg, min_jump_m=self.cfg.min_jump_m)
        return self.cfg

    def _learn_mounting(self, fix: VisualFix, r_enu_flu: F64, height_m: float) -> None:
        """The fix against a healthy GNSS sample (at most half a second from it), for the
        camera's mounting error (:mod:`.boresight`). Also where our track contests the
        GNSS: a mounting 1.5 deg off puts the fixes far enough off a right GNSS to
        contest it, and the fit itself refuses offsets no one mounting explains."""
        base = self.priors.gnss_at(fix.stamp_ns)
        if base is None or not self.priors.healthy_at(fix.stamp_ns):
            return
        if abs(fix.stamp_ns - base.stamp_ns) <= NS // 2:
            gnss = self.priors.propagate(base, fix.stamp_ns)
            self.boresight.add_fix(fix, gnss, base.sigma_m, yaw_enu(r_enu_flu), height_m)

    def _fix_at(self, f: _Frame, prior: Prior, extra_sigmas: float = 0.0) -> VisualFix:
        """Search for the frame ``f`` around ``prior``, judge the match (its gate raised
        by ``extra_sigmas``), make the fix."""
        cfg = self.cfg
        if not (on_the_map(prior.latitude, prior.longitude) and math.isfinite(prior.sigma_m)):
            # every input is checked as it arrives; this is what is left: a prior
            # dead-reckoned across a wild stamp
            raise FrameRejected(
                "no_prior", f"prior ({prior.latitude}, {prior.longitude}) is not on the map"
            )
        radius = self.search_radius_m(prior)
        # the footprint's half-diagonal (generously), or the stitched patch's; never
        # past a rectified frame's corner (a CameraInfo with a focal length of 1e-9 px
        # claims a footprint of 1e12 m, and sized a mosaic of petabytes from it)
        footprint = min(max(3.0 * f.h.height_m, f.view.width_m), math.sqrt(2.0) * MAX_EXTENT_M)
        reach = radius + footprint + 200.0
        mosaic = self.map.around(prior.latitude, prior.longitude, reach)
        zoom = mosaic.zoom
        mpp = ground_resolution_m(prior.latitude, zoom)
        nadir = latlon_to_world_px(prior.latitude, prior.longitude, zoom)
        # a patch (heading and scale weakly seen, nadir far off its bulk) is held to
        # what the GNSS's velocity measured; a frame alone sees its own (.search)
        stitched = isinstance(f.view, PatchView)
        own = prior.source in OWN_TRACK
        plan = plan_search(
            cfg.match,
            f.view,
            heading_trusted=cfg.heading_trusted,
            heading_search_step_deg=cfg.heading_search_step_deg,
            cold=f.last is None or not (own or f.tracking),
            tracking_pair=(f.dh_t, f.s_t) if cfg.track_candidates and f.tracking else None,
            measured=self.correction.correction_at(f.stamp_ns) if stitched else None,
            bound_k=cfg.gnss_correction.bound_k,
        )
        held_s, held_h = plan.held_scale, plan.held_heading
        result, searched = search_view(
            f.view,
            mosaic,
            metres_per_world_px=mpp,
            predicted_nadir=nadir,
            radius_m=radius,
            match=plan.match,
            min_score=self.min_score_at,
            scale_rungs=cfg.scale_search_rungs,
        )
        pk = result.coarse
        lat, lon = world_px_to_latlon(result.nadir_x, result.nadir_y, zoom)
        height_m = f.h.height_m * result.scale
        lever, spread_m, offset_m = 0.0, None, None
        if stitched or small_frame_fade(cfg, result.template_side_m) > 0.0:
            # how far the patch's (or a small frame's) quadrants disagree about where
            # it lies (4-8 ms; none where the gate's agreement already placed them)
            spread_px = result.placed.quadrant_spread_px() if result.placed else None
            spread_m = None if spread_px is None else spread_px * cfg.match.resolution_m
        if isinstance(f.view, PatchView):
            lever = f.view.lever_m
            # and how far the newest frame alone puts the nadir from it (about 8 ms)
            offset_m = frame_offset_m(
                f.frame,
                result,
                fine=mosaic.fine,
                metres_per_world_px=mpp,
                radius_m=cfg.stitch_frame_check_m,
                cfg=cfg.match,
            )
        self.flip_guard.check(cfg, prior, lat, lon, frame_offset_m=offset_m, stamp_ns=f.stamp_ns)
        # the ground size of the map's own pixels under the template, wherever its bulk
        # lies off the nadir (coarser than the resolution where a tile was enlarged
        # from a coarser zoom)
        map_px_m = mosaic.pixel_m_over(result.nadir_x, result.nadir_y, result.ground_box_m, mpp)
        sigma = position_sigma(
            cfg,
            resolution_m=cfg.match.resolution_m,
            height_m=height_m,
            fine_score=result.fine_score,
            template_px=result.template_px,
            template_side_m=result.template_side_m,
            margin_sigmas=pk.margin_sigmas,
            stitched=stitched,
            quadrant_spread_m=spread_m,
            frame_offset_m=offset_m,
            map_pixel_m=map_px_m,
        )
        odo_v = self.odometry.velocity() if f.disp is not None else None
        velocity: tuple[float, float] | None
        if odo_v is not None:
            # the refined correction of this very fix turns the raw track's motion
            velocity, vel_sigma = registration_velocity(
                odo_v,
                heading_offset_deg=result.heading_offset_deg,
                scale=result.scale,
                correction_rel=correction_sigma(
                    cfg, sigma_m=sigma, height_m=height_m, footprint_m=result.footprint_m
                ),
            )
        else:
            velocity, vel_sigma = velocity_from_fixes(
                self._recent, f.stamp_ns, lat, lon, sigma_m=sigma, max_dt_s=cfg.max_velocity_dt_s
            )
        yaw = yaw_enu(f.r_enu_flu) + math.radians(result.heading_offset_deg)
        verdict = judge(
            cfg,
            prior,
            lat,
            lon,
            sigma=sigma,
            peak=pk,
            radius_m=radius,
            side_m=sharp_side_m(result.template_side_m, cfg.match.resolution_m, map_px_m),
            placed=result.placed,
            single_frame=not stitched,
            extra_sigmas=extra_sigmas + candidates_extra(cfg, searched),
            obscured_share=f.view.obscured_share if isinstance(f.view, FrameView) else 0.0,
        )
        agreement = verdict.agreement
        jumped = verdict.jump_m is not None
        if verdict.jump_m is not None:  # a relocalisation: the autopilot should reset
            landing = replace(
                prior, stamp_ns=f.stamp_ns, latitude=lat, longitude=lon, sigma_m=sigma
            )
            if not self.priors.confirm_jump(landing):
                raise FrameRejected(
                    "gate",
                    f"jump of {verdict.jump_m:.0f} m off the track held until a second "
                    "frame makes it",
                    jump_m=round(verdict.jump_m, 1),
                )
            self.reset_counter = (self.reset_counter + 1) % 256
            self.last_jump_m = verdict.jump_m
        self.priors.forget_jump()
        sigmas = pk.margin_sigmas
        quality = int(max(1, min(100, round(100 * min(1.0, verdict.strength(sigmas) / 3)))))
        fix = VisualFix(
            stamp_ns=f.stamp_ns,
            latitude=lat,
            longitude=lon,
            altitude_msl=f.h.ground_msl + height_m,
            sigma_m=sigma,
            velocity_en=velocity,
            velocity_sigma=vel_sigma,
            yaw_enu=math.atan2(math.sin(yaw), math.cos(yaw)),
            yaw_sigma=math.radians(1.0),
            quality=quality,
            reset_counter=self.reset_counter,
            margin=pk.margin,
            margin_sigmas=sigmas,
            score=pk.score,
            template_px=result.template_px,
            height_m=height_m,
            height_source=f.h.source,
            heading_offset_deg=result.heading_offset_deg,
            scale=result.scale,
            search_radius_m=radius,
            prior_source=prior.source if not jumped else "relocalized",
            footprint_m=result.footprint_m,
            stitch_lever_m=lever,
            template_side_m=result.template_side_m,
            map_pixel_m=map_px_m,
            resolution_m=cfg.match.resolution_m,
            quadrant_spread_m=spread_m,
            frame_offset_m=offset_m,
            gnss_scale=held_s.scale if held_s else None,
            gnss_scale_sigma=held_s.scale_sigma if held_s else None,
            gnss_heading_deg=held_h.heading_deg if held_h else None,
            gnss_heading_sigma_deg=held_h.heading_sigma_deg if held_h else None,
            agreement=agreement,
            colour_support=verdict.colour_support,
            intensity_support=verdict.intensity_support,
            evidence=verdict.evidence,
            gnss_offset_m=self.priors.gnss_offset_m(f.stamp_ns, lat, lon),
        )
        self._last_fix = fix
        self._recent.append(fix)
        while self._recent and (f.stamp_ns - self._recent[0].stamp_ns) / NS > cfg.max_velocity_dt_s:
            self._recent.popleft()
        self.last_view = GroundView(
            f.gray,
            f.camera,
            turned(f.r_world_cam, result.heading_offset_deg),
            height_m,
            lat,
            lon,
            f.frame.fill,
        )
        v = velocity or (0.0, 0.0)
        here = Prior(
            f.stamp_ns,
            lat,
            lon,
            sigma,
            v,
            vel_sigma if velocity else cfg.prior_velocity_sigma * 3,
            "visual",
        )
        # the track to dead-reckon from, and where registration carries on from
        self.priors.add_fix(here)
        self.registered.note_fix(here)
        return fix

    def gate_at(self, radius_m: float, side_m: float) -> float:
        """The margin an uncorroborated match needs (:func:`.gate.gate_at`)."""
        return gate_at(self.cfg, radius_m, side_m)

    def min_score_at(self, side_m: float) -> float:
        """The least score a match may have (:func:`.gate.min_score_at`)."""
        return min_score_at(self.cfg, side_m)

    last_jump_m: float = 0.0


@dataclass(frozen=True)
class _Frame:
    """One frame as :meth:`VisualEstimator.process` prepared it for the search."""

    stamp_ns: int
    gray: NDArray[np.float32]
    camera: CameraModel
    r_enu_flu: NDArray[np.float64]
    r_world_cam: NDArray[np.float64]
    h: HeightSample
    frame: FrameView  # the frame alone, as its attitude and height put it
    view: MatchView  # what is matched: the frame, or the patch it was stitched into
    disp: Displacement | None
    last: VisualFix | None
    tracking: bool
    dh_t: float
    s_t: float
