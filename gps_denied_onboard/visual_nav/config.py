"""The ``visual_nav`` node's parameters (``config/visual_nav.yaml``) as a frozen dataclass."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

from gps_denied_onboard.errors import ConfigError
from gps_denied_onboard.visual_nav.boresight import BoresightConfig
from gps_denied_onboard.visual_nav.camera import mount_rotation
from gps_denied_onboard.visual_nav.clouds import CloudMaskConfig
from gps_denied_onboard.visual_nav.errors import CameraModelError
from gps_denied_onboard.visual_nav.flat_field import FlatFieldConfig
from gps_denied_onboard.visual_nav.frame_pacing import PacingConfig
from gps_denied_onboard.visual_nav.gnss_correction import GnssCorrectionConfig
from gps_denied_onboard.visual_nav.matcher import MatchConfig
from gps_denied_onboard.visual_nav.odometry import OdometryConfig
from gps_denied_onboard.visual_nav.registration_noise import NoiseConfig
from gps_denied_onboard.visual_nav.settings import EstimatorConfig


@dataclass(frozen=True)
class VisualNavConfig:
    """Parameters of the visual position estimator node (field names = parameter names)."""

    compressed_image_topic: str = "/camera/image_raw/compressed"
    image_topic: str = ""
    camera_info_topic: str = "/camera/camera_info"
    image_is_rectified: bool = False
    mount_rpy_deg: tuple[float, ...] = (0.0, 0.0, 0.0)
    camera_time_offset_s: float = 0.0
    resolution_m: float = 5.0
    coarse_resolution_m: float = 10.0
    ground_scale: float = 1.0
    heading_candidates_deg: tuple[float, ...] = (-4.0, 0.0, 4.0)
    heading_trusted: bool = True
    heading_search_step_deg: float = 8.0
    scale_candidates: tuple[float, ...] = (0.92, 1.0, 1.08)
    scale_search_rungs: int = 2
    orientation_harmonics: int = 2
    gate_evidence_max_side_m: float = 600.0
    gate_evidence_agreement_weight: float = 1.5
    gate_evidence_colour_weight: float = 0.6
    gate_evidence_intensity_weight: float = 0.5
    gate_sigmas_per_candidate_efold: float = 0.37
    gate_evidence_extra_sigmas: tuple[float, ...] = (4.15, 3.85, 4.0)
    gate_mono_extra_sigmas: tuple[float, ...] = (3.35, 2.95, 3.05)
    gate_radius_m: tuple[float, ...] = (150.0, 360.0, 600.0)
    gate_side_m: tuple[float, ...] = (400.0, 850.0)
    gate_margin_sigmas_small: tuple[float, ...] = (3.25, 3.25, 3.25)
    gate_margin_sigmas_large: tuple[float, ...] = (2.95, 2.8, 2.8)
    gate_small_side_m: float = 340.0
    gate_small_side_sigmas_per_100m: float = 0.5
    gate_corroborated_sigmas: float = 2.2
    gate_dead_reckoning_corroborates: bool = False
    gate_min_score: tuple[float, ...] = (0.12, 0.18)
    gate_agreement_weight: float = 1.0
    gate_agreement_extra_sigmas: float = 1.5
    uncorroborated_gate_factor: float = 1.5
    jump_confirm_s: float = 3.0
    prior_consistency_k: float = 3.0
    prior_track_over_gnss_fixes: int = 3
    prior_track_over_gnss_s: float = 10.0
    lost_after_s: float = 5.0
    lost_sigma_growth_mps: float = 10.0
    fc_estimate_sigma_m: float = 100.0
    attitude_max_age_s: float = 0.1
    attitude_max_gap_s: float = 0.25
    attitude_wait_s: float = 0.05
    attitude_sigma_deg: float = 0.5
    map_sigma_m: float = 1.5
    match_sigma_px: float = 0.15
    match_reference_px: float = 7000.0
    match_size_exponent: float = 2.0
    ground_elevation_msl: float | None = None
    max_height_m: float = 1500.0
    min_search_radius_m: float = 150.0
    max_search_radius_m: float = 600.0
    odometry_enabled: bool = True
    odometry_search_m: float = 60.0
    odometry_min_score: float = 0.35
    odometry_sigma_px: float = 0.07
    odometry_attitude_rel_sigma_deg: float = 0.05
    odometry_yaw_rel_sigma_deg: float = 0.1
    odometry_interpolation_k: float = 1.0
    odometry_max_gap_s: float = 1.5
    odometry_velocity_window_s: float = 1.0
    odometry_velocity_long_window_s: float = 2.0
    odometry_turn_lead: bool = True
    odometry_heading_lead: bool = True
    odometry_noise_adapt: bool = True
    odometry_noise_samples: int = 30
    odometry_noise_scale_min: float = 1.0
    odometry_noise_scale_max: float = 2.0
    stitch_history_s: float = 40.0
    stitch_below_area_m2: float = 300_000.0
    stitch_target_area_m2: float = 400_000.0
    stitch_zoom: bool = True
    stitch_sigma_margin_m: float = 0.0
    stitch_sigma_spread_k: float = 0.35
    stitch_sigma_frame_k: float = 0.4
    stitch_frame_check_m: float = 50.0
    stitch_flip_frame_offset_m: float = 20.0
    stitch_flip_jump_m: float = 10.0
    velocity_correction_k: float = 2.0
    single_sigma_margin_m: float = 20.0
    single_sigma_spread_k: float = 0.5
    tile_cache_node: str = "tile_cache"
    prefetch_radius_m: float = 3000.0
    finer_zoom_levels: int = 3
    coarser_zoom_levels: int = 2
    ground_scale_finer_levels: int = 3
    ground_scale_coarser_levels: int = 1
    ground_scale_side_m: float = 700.0
    gnss_correction_enabled: bool = True
    gnss_correction_bound_k: float = 2.5
    gnss_correction_scale_floor: float = 0.01
    gnss_correction_scale_growth_per_km: float = 0.03
    gnss_correction_heading_growth_deg_per_min: float = 1.0
    flat_field_enabled: bool = True
    flat_field_frames: int = 30
    flat_field_min_frames: int = 10
    flat_field_min_move: float = 1.0
    flat_field_min_falloff: float = 0.15
    cloud_mask_enabled: bool = True
    cloud_mask_level: float = 215.0
    cloud_mask_max_saturation: float = 30.0
    cloud_mask_min_run_m: float = 60.0
    cloud_mask_grow_m: float = 20.0
    cloud_mask_surround_sigmas: float = 3.0
    boresight_enabled: bool = True
    boresight_window_s: float = 120.0
    boresight_min_tilt_deg: float = 0.5
    boresight_max_tilt_deg: float = 3.0
    boresight_max_gnss_sigma_m: float = 5.0
    learnt_camera_file: str = ""
    learnt_camera_save_s: float = 10.0
    prefetch_period_s: float = 1.0
    exclude_tile_sources: tuple[str, ...] = ("in_flight",)
    snapshot_zoom: int = 16
    snapshot_period_s: float = 10.0
    snapshot_min_quality: int = 60
    navsat_frame_id: str = "base_link"
    fix_record_rate_hz: float = 2.0
    reject_record_rate_hz: float = 1.0
    thumbnail_period_s: float = 10.0
    queue_depth: int = 8
    frame_max_rate_hz: float = 2.0
    frame_max_lag_s: float = 1.0
    diagnostics_period_s: float = 2.0

    def __post_init__(self) -> None:
        positive = (
            "resolution_m",
            "coarse_resolution_m",
            "ground_scale",
            "attitude_max_age_s",
            "attitude_max_gap_s",
            "min_search_radius_m",
            "max_search_radius_m",
            "max_height_m",
            "prefetch_radius_m",
            "prefetch_period_s",
            "snapshot_period_s",
            "fix_record_rate_hz",
            "reject_record_rate_hz",
            "thumbnail_period_s",
            "diagnostics_period_s",
            "heading_search_step_deg",
            "match_reference_px",
            "prior_consistency_k",
            "prior_track_over_gnss_s",
            "lost_after_s",
            "fc_estimate_sigma_m",
            "odometry_search_m",
            "odometry_sigma_px",
            "odometry_max_gap_s",
            "odometry_velocity_window_s",
            "stitch_history_s",
            "stitch_target_area_m2",
            "stitch_frame_check_m",
            "boresight_window_s",
            "boresight_max_tilt_deg",
            "boresight_max_gnss_sigma_m",
            "learnt_camera_save_s",
        )
        for name in positive:
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(
                    f"parameter {name!r} must be a positive number, got {v}", key=name
                )
        for name in (
            "attitude_wait_s",
            "gate_corroborated_sigmas",
            "gate_small_side_m",
            "gate_small_side_sigmas_per_100m",
            "gate_agreement_weight",
            "gate_agreement_extra_sigmas",
            "gate_evidence_max_side_m",
            "gate_evidence_agreement_weight",
            "gate_evidence_colour_weight",
            "gate_evidence_intensity_weight",
            "gate_sigmas_per_candidate_efold",
            "attitude_sigma_deg",
            "map_sigma_m",
            "match_sigma_px",
            "odometry_min_score",
            "odometry_attitude_rel_sigma_deg",
            "odometry_yaw_rel_sigma_deg",
            "odometry_interpolation_k",
            "odometry_velocity_long_window_s",
            "stitch_below_area_m2",
            "stitch_sigma_margin_m",
            "stitch_sigma_spread_k",
            "stitch_sigma_frame_k",
            "stitch_flip_frame_offset_m",
            "stitch_flip_jump_m",
            "velocity_correction_k",
            "gnss_correction_bound_k",
            "gnss_correction_scale_floor",
            "gnss_correction_scale_growth_per_km",
            "gnss_correction_heading_growth_deg_per_min",
            "boresight_min_tilt_deg",
            "flat_field_min_move",
            "cloud_mask_grow_m",
            "single_sigma_margin_m",
            "single_sigma_spread_k",
            "lost_sigma_growth_mps",
            "jump_confirm_s",
        ):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"parameter {name!r} must be >= 0, got {v}", key=name)
        if self.coarse_resolution_m < self.resolution_m:
            raise ConfigError(
                "coarse_resolution_m must be >= resolution_m", key="coarse_resolution_m"
            )
        if self.min_search_radius_m > self.max_search_radius_m:
            raise ConfigError(
                "min_search_radius_m > max_search_radius_m", key="min_search_radius_m"
            )
        if not self.navsat_frame_id.strip():
            raise ConfigError("navsat_frame_id must name a frame", key="navsat_frame_id")
        if not self.compressed_image_topic and not self.image_topic:
            raise ConfigError(
                "one of image_topic or compressed_image_topic is needed", key="image_topic"
            )
        radii = self.gate_radius_m
        for key in (
            "gate_margin_sigmas_small",
            "gate_margin_sigmas_large",
            "gate_evidence_extra_sigmas",
            "gate_mono_extra_sigmas",
        ):
            gates = getattr(self, key)
            if (
                not radii
                or len(radii) != len(gates)
                or any(not math.isfinite(v) or v < 0 for v in (*radii, *gates))
                or any(b <= a for a, b in itertools.pairwise(radii))
            ):
                raise ConfigError(
                    f"gate_radius_m must be increasing, one {key} (>= 0) per radius", key=key
                )
        if len(self.gate_min_score) != 2 or not all(
            math.isfinite(v) and 0 <= v < 1 for v in self.gate_min_score
        ):
            raise ConfigError(
                "gate_min_score must be [small, large] scores in 0..1, one per gate_side_m",
                key="gate_min_score",
            )
        sides = self.gate_side_m
        if (
            len(sides) != 2
            or not all(math.isfinite(v) and v > 0 for v in sides)
            or sides[1] <= sides[0]
        ):
            raise ConfigError(
                "gate_side_m must be [small, large] template sides in metres, increasing",
                key="gate_side_m",
            )
        if not self.heading_candidates_deg or not self.scale_candidates:
            raise ConfigError("candidate lists must not be empty", key="heading_candidates_deg")
        if any(s <= 0 for s in self.scale_candidates):
            raise ConfigError("scale candidates must be positive", key="scale_candidates")
        if self.orientation_harmonics not in (1, 2):
            raise ConfigError("orientation_harmonics must be 1 or 2", key="orientation_harmonics")
        if not 0 <= self.snapshot_zoom <= 22:
            raise ConfigError("snapshot_zoom must be 0..22", key="snapshot_zoom")
        if not 0 <= self.finer_zoom_levels <= 4:
            raise ConfigError("finer_zoom_levels must be 0..4", key="finer_zoom_levels")
        if not 0 <= self.coarser_zoom_levels <= 4:
            raise ConfigError("coarser_zoom_levels must be 0..4", key="coarser_zoom_levels")
        if not 0 <= self.ground_scale_finer_levels <= 4:
            raise ConfigError(
                "ground_scale_finer_levels must be 0..4", key="ground_scale_finer_levels"
            )
        if not 0 <= self.ground_scale_coarser_levels <= 2:
            raise ConfigError(
                "ground_scale_coarser_levels must be 0..2", key="ground_scale_coarser_levels"
            )
        if not (math.isfinite(self.ground_scale_side_m) and self.ground_scale_side_m > 0.0):
            raise ConfigError(
                "ground_scale_side_m must be a positive number", key="ground_scale_side_m"
            )
        if self.prior_track_over_gnss_fixes < 0:
            raise ConfigError(
                "prior_track_over_gnss_fixes must be >= 0 (0: a healthy GNSS always wins)",
                key="prior_track_over_gnss_fixes",
            )
        self.pacing_config()  # frame_max_rate_hz, frame_max_lag_s, queue_depth
        if not (math.isfinite(self.camera_time_offset_s) and abs(self.camera_time_offset_s) <= 1.0):
            raise ConfigError(
                "camera_time_offset_s must be within -1..1 s", key="camera_time_offset_s"
            )
        for name in ("flat_field_frames", "flat_field_min_frames"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1", key=name)
        if not 0 <= self.scale_search_rungs <= 4:
            raise ConfigError(
                "scale_search_rungs must be within 0..4 (4: scales 0.48-2.05)",
                key="scale_search_rungs",
            )
        if self.odometry_noise_samples < 3:
            raise ConfigError("odometry_noise_samples must be >= 3", key="odometry_noise_samples")
        lo, hi = self.odometry_noise_scale_min, self.odometry_noise_scale_max
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= 1 <= hi):
            raise ConfigError(
                "odometry_noise_scale_min must be in (0, 1] and odometry_noise_scale_max >= 1,"
                f" got {lo} and {hi}",
                key="odometry_noise_scale_min" if not 0 < lo <= 1 else "odometry_noise_scale_max",
            )
        for name in ("cloud_mask_level", "cloud_mask_max_saturation"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0 <= v <= 255):
                raise ConfigError(f"{name} must be a level in 0..255, got {v}", key=name)
        above = self.cloud_mask_surround_sigmas
        if not (math.isfinite(above) and above >= 0):
            raise ConfigError(
                f"cloud_mask_surround_sigmas must be >= 0, got {above}",
                key="cloud_mask_surround_sigmas",
            )
        run = self.cloud_mask_min_run_m
        if not (math.isfinite(run) and run > 0):
            raise ConfigError(
                f"cloud_mask_min_run_m must be > 0, got {run}", key="cloud_mask_min_run_m"
            )
        falloff = self.flat_field_min_falloff
        if not (math.isfinite(falloff) and 0 <= falloff < 1):
            raise ConfigError(
                "flat_field_min_falloff must be a fraction in 0..1", key="flat_field_min_falloff"
            )
        try:
            mount_rotation(self.mount_rpy_deg)
        except CameraModelError as err:
            raise ConfigError(str(err), key="mount_rpy_deg") from err

    def pacing_config(self) -> PacingConfig:
        """Which frames the estimator takes (:mod:`~.visual_nav.frame_pacing`)."""
        return PacingConfig(self.frame_max_rate_hz, self.frame_max_lag_s, self.queue_depth)

    def at_scale_factor(self, factor: float) -> VisualNavConfig:
        """This configuration with ``ground_scale`` times ``factor``: a rung of the
        estimator's ladder (:mod:`.ground_scale`; 0.5: halved once)."""
        return self if factor == 1.0 else replace(self, ground_scale=self.ground_scale * factor)

    @property
    def map_resolution_m(self) -> float:
        """The map's resolution as matched: ``resolution_m`` at ``ground_scale``."""
        return self.resolution_m * self.ground_scale

    @property
    def map_prefetch_radius_m(self) -> float:
        """How far around the aircraft tiles are fetched: ``prefetch_radius_m`` at
        ``ground_scale`` (as many tiles as at 1)."""
        return self.prefetch_radius_m * self.ground_scale

    @property
    def map_snapshot_zoom(self) -> int:
        """``snapshot_zoom`` at ``ground_scale``: a map twice as fine, a zoom finer."""
        return min(22, max(0, self.snapshot_zoom + round(-math.log2(self.ground_scale))))

    def estimator_config(self) -> EstimatorConfig:
        """The estimator's settings, its ground distances at ``ground_scale``
        (:meth:`.settings.EstimatorConfig.at_ground_scale`)."""
        return self._estimator_config_as_calibrated().at_ground_scale(self.ground_scale)

    def _estimator_config_as_calibrated(self) -> EstimatorConfig:
        return EstimatorConfig(
            match=MatchConfig(
                resolution_m=self.resolution_m,
                coarse_resolution_m=self.coarse_resolution_m,
                heading_candidates_deg=self.heading_candidates_deg,
                scale_candidates=self.scale_candidates,
                orientation_harmonics=self.orientation_harmonics,
            ),
            mount_rotation=tuple(float(v) for v in mount_rotation(self.mount_rpy_deg).ravel()),
            gate_radius_m=self.gate_radius_m,
            gate_side_m=(float(self.gate_side_m[0]), float(self.gate_side_m[1])),
            gate_margin_sigmas_small=self.gate_margin_sigmas_small,
            gate_margin_sigmas_large=self.gate_margin_sigmas_large,
            gate_small_side_m=self.gate_small_side_m,
            gate_small_side_sigmas_per_100m=self.gate_small_side_sigmas_per_100m,
            gate_corroborated_sigmas=self.gate_corroborated_sigmas,
            gate_dead_reckoning_corroborates=self.gate_dead_reckoning_corroborates,
            gate_min_score=(float(self.gate_min_score[0]), float(self.gate_min_score[1])),
            gate_agreement_weight=self.gate_agreement_weight,
            gate_agreement_extra_sigmas=self.gate_agreement_extra_sigmas,
            gate_evidence_max_side_m=self.gate_evidence_max_side_m,
            gate_evidence_agreement_weight=self.gate_evidence_agreement_weight,
            gate_evidence_colour_weight=self.gate_evidence_colour_weight,
            gate_evidence_intensity_weight=self.gate_evidence_intensity_weight,
            gate_sigmas_per_candidate_efold=self.gate_sigmas_per_candidate_efold,
            gate_evidence_extra_sigmas=self.gate_evidence_extra_sigmas,
            gate_mono_extra_sigmas=self.gate_mono_extra_sigmas,
            match_reference_px=self.match_reference_px,
            jump_gate_factor=self.uncorroborated_gate_factor,
            jump_confirm_s=self.jump_confirm_s,
            prior_consistency_k=self.prior_consistency_k,
            prior_track_over_gnss_fixes=self.prior_track_over_gnss_fixes,
            prior_track_over_gnss_s=self.prior_track_over_gnss_s,
            lost_after_s=self.lost_after_s,
            lost_sigma_growth_mps=self.lost_sigma_growth_mps,
            fc_estimate_sigma_m=self.fc_estimate_sigma_m,
            attitude_max_age_s=self.attitude_max_age_s,
            attitude_max_gap_s=self.attitude_max_gap_s,
            attitude_sigma_deg=self.attitude_sigma_deg,
            map_sigma_m=self.map_sigma_m,
            match_sigma_px=self.match_sigma_px,
            match_size_exponent=self.match_size_exponent,
            ground_elevation_msl=self.ground_elevation_msl,
            max_height_m=self.max_height_m,
            min_search_radius_m=self.min_search_radius_m,
            max_search_radius_m=self.max_search_radius_m,
            heading_trusted=self.heading_trusted,
            heading_search_step_deg=self.heading_search_step_deg,
            scale_search_rungs=self.scale_search_rungs,
            odometry=OdometryConfig(
                enabled=self.odometry_enabled,
                search_m=self.odometry_search_m,
                min_score=self.odometry_min_score,
                sigma_px=self.odometry_sigma_px,
                attitude_rel_sigma_deg=self.odometry_attitude_rel_sigma_deg,
                yaw_rel_sigma_deg=self.odometry_yaw_rel_sigma_deg,
                interpolation_k=self.odometry_interpolation_k,
                max_gap_s=self.odometry_max_gap_s,
                velocity_window_s=self.odometry_velocity_window_s,
                velocity_long_window_s=self.odometry_velocity_long_window_s,
                turn_lead=self.odometry_turn_lead,
                heading_lead=self.odometry_heading_lead,
                noise=NoiseConfig(
                    adapt=self.odometry_noise_adapt,
                    samples=self.odometry_noise_samples,
                    scale_min=self.odometry_noise_scale_min,
                    scale_max=self.odometry_noise_scale_max,
                ),
                history_s=self.stitch_history_s,
                stitch_below_area_m2=self.stitch_below_area_m2,
                stitch_target_area_m2=self.stitch_target_area_m2,
                stitch_zoom=self.stitch_zoom,
            ),
            stitch_sigma_margin_m=self.stitch_sigma_margin_m,
            stitch_sigma_spread_k=self.stitch_sigma_spread_k,
            stitch_sigma_frame_k=self.stitch_sigma_frame_k,
            stitch_frame_check_m=self.stitch_frame_check_m,
            stitch_flip_frame_offset_m=self.stitch_flip_frame_offset_m,
            stitch_flip_jump_m=self.stitch_flip_jump_m,
            velocity_correction_k=self.velocity_correction_k,
            single_sigma_margin_m=self.single_sigma_margin_m,
            single_sigma_spread_k=self.single_sigma_spread_k,
            finer_zoom_levels=self.finer_zoom_levels,
            coarser_zoom_levels=self.coarser_zoom_levels,
            scale_finer_levels=self.ground_scale_finer_levels,
            scale_coarser_levels=self.ground_scale_coarser_levels,
            scale_side_m=self.ground_scale_side_m,
            boresight=BoresightConfig(
                enabled=self.boresight_enabled,
                window_s=self.boresight_window_s,
                min_tilt_deg=self.boresight_min_tilt_deg,
                max_tilt_deg=self.boresight_max_tilt_deg,
                max_gnss_sigma_m=self.boresight_max_gnss_sigma_m,
            ),
            flat_field=FlatFieldConfig(
                enabled=self.flat_field_enabled,
                frames=self.flat_field_frames,
                min_frames=self.flat_field_min_frames,
                min_move=self.flat_field_min_move,
                min_falloff=self.flat_field_min_falloff,
            ),
            clouds=CloudMaskConfig(
                enabled=self.cloud_mask_enabled,
                level=self.cloud_mask_level,
                max_saturation=self.cloud_mask_max_saturation,
                min_run_m=self.cloud_mask_min_run_m,
                grow_m=self.cloud_mask_grow_m,
                surround_sigmas=self.cloud_mask_surround_sigmas,
            ),
            gnss_correction=GnssCorrectionConfig(
                enabled=self.gnss_correction_enabled,
                bound_k=self.gnss_correction_bound_k,
                scale_floor=self.gnss_correction_scale_floor,
                scale_growth_per_km=self.gnss_correction_scale_growth_per_km,
                heading_growth_deg_per_min=self.gnss_correction_heading_growth_deg_per_min,
            ),
        )
