"""The visual position estimator's settings, as one frozen dataclass.

The node builds it from ``config/visual_nav.yaml`` (:class:`.config.VisualNavConfig`,
whose comments say how each number was measured); the bench and the tests build
it directly. The gate (:mod:`.gate`) and the error model (:mod:`.uncertainty`)
read it through their own protocols.

Every ground distance of the matcher, the gate and the error model was
calibrated with a 5 m/px map (``uncertainty.CALIBRATED_RESOLUTION_M``)
and frames 400 m to 1 km across. :meth:`EstimatorConfig.at_ground_scale`
carries them to another map resolution: a multirotor 100 m above ground sees
about 200 m, which at 5 m/px is a 40 px template (too small for the gate's
calibration, which starts at 80), and at 1 m/px the same 200 px a 1 km frame
makes at 5 m/px.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from gps_denied_onboard.visual_nav.boresight import BoresightConfig
from gps_denied_onboard.visual_nav.clouds import CloudMaskConfig
from gps_denied_onboard.visual_nav.flat_field import FlatFieldConfig
from gps_denied_onboard.visual_nav.gnss_correction import GnssCorrectionConfig
from gps_denied_onboard.visual_nav.matcher import MatchConfig
from gps_denied_onboard.visual_nav.odometry import OdometryConfig

#: the middle of the template sides the gate and the small-frame terms were calibrated
#: on (m, at ground scale 1): the geometric mean of ``gate_side_m``'s 400 and 850
CALIBRATED_TEMPLATE_SIDE_M = 583.0


def ground_scale_for(template_side_m: float) -> float:
    """The ground scale at which templates covering ``template_side_m`` (the square
    root of the ground area searched, m) sit in the middle of the calibration: 1 for
    the 400 m to 1 km frames it was made with, 0.33 for 200 m ones (a multirotor
    100 m above ground)."""
    return template_side_m / CALIBRATED_TEMPLATE_SIDE_M


@dataclass(frozen=True)
class EstimatorConfig:
    """The estimator's settings; the node builds it from ``config/visual_nav.yaml``."""

    match: MatchConfig = field(default_factory=MatchConfig)
    odometry: OdometryConfig = field(default_factory=OdometryConfig)
    gnss_correction: GnssCorrectionConfig = field(default_factory=GnssCorrectionConfig)
    flat_field: FlatFieldConfig = field(default_factory=FlatFieldConfig)
    clouds: CloudMaskConfig = field(default_factory=CloudMaskConfig)
    boresight: BoresightConfig = field(default_factory=BoresightConfig)
    mount_rotation: tuple[float, ...] = (0.0, -1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    gate_radius_m: tuple[float, ...] = (150.0, 360.0, 600.0)
    gate_side_m: tuple[float, float] = (400.0, 850.0)
    gate_margin_sigmas_small: tuple[float, ...] = (3.25, 3.25, 3.25)
    gate_margin_sigmas_large: tuple[float, ...] = (2.95, 2.8, 2.8)
    gate_small_side_m: float = 340.0
    gate_small_side_sigmas_per_100m: float = 0.5
    gate_corroborated_sigmas: float = 2.2
    gate_dead_reckoning_corroborates: bool = False
    gate_min_score: tuple[float, float] = (0.12, 0.18)
    gate_agreement_weight: float = 1.0
    gate_agreement_extra_sigmas: float = 1.5
    gate_evidence_max_side_m: float = 600.0
    gate_evidence_agreement_weight: float = 1.5
    gate_evidence_colour_weight: float = 0.6
    gate_evidence_intensity_weight: float = 0.5
    gate_sigmas_per_candidate_efold: float = 0.37
    gate_evidence_extra_sigmas: tuple[float, ...] = (4.15, 3.85, 4.0)
    gate_mono_extra_sigmas: tuple[float, ...] = (3.35, 2.95, 3.05)
    match_reference_px: float = 7000.0
    attitude_max_age_s: float = 0.1
    attitude_max_gap_s: float = 0.25
    attitude_sigma_deg: float = 0.5
    map_sigma_m: float = 1.5
    match_sigma_px: float = 0.15
    match_size_exponent: float = 2.0
    ground_elevation_msl: float | None = None
    max_height_m: float = 1500.0  # above it a frame is refused (state.HeightSource)
    search_sigma_k: float = 3.0
    min_search_radius_m: float = 150.0
    max_search_radius_m: float = 600.0
    prior_velocity_sigma: float = 3.0
    prior_accel_sigma: float = 1.0
    gnss_prior_sigma_m: float = 10.0
    fc_estimate_sigma_m: float = 100.0  # the FC's fused position (no track, no GNSS)
    max_velocity_dt_s: float = 2.0
    mosaic_half_size_m: float = 2200.0
    finer_zoom_levels: int = 3  # a tile missing at the map's zoom: composed from these
    coarser_zoom_levels: int = 2  # ...else enlarged from one this many zooms coarser
    #: how many times the ground scale may be halved for frames seeing little ground
    #: (:mod:`.ground_scale`; 0: matched at the configured scale whatever the height) ...
    scale_finer_levels: int = 3
    #: ... how many times it may be doubled for frames seeing much more ...
    scale_coarser_levels: int = 1
    #: ... and the width (the calibration's metres, never scaled) a frame is kept at
    scale_side_m: float = 700.0
    jump_sigma_k: float = 4.0
    min_jump_m: float = 25.0
    jump_gate_factor: float = 1.5
    jump_confirm_s: float = 3.0
    prior_consistency_k: float = 3.0
    prior_track_over_gnss_fixes: int = 3
    prior_track_over_gnss_s: float = 10.0
    lost_after_s: float = 5.0
    lost_sigma_growth_mps: float = 10.0
    track_candidates: bool = True
    track_window_s: float = 2.0
    heading_trusted: bool = True
    heading_search_step_deg: float = 8.0
    scale_search_rungs: int = 2
    stitch_sigma_margin_m: float = 0.0
    stitch_sigma_spread_k: float = 0.35
    stitch_sigma_frame_k: float = 0.4
    stitch_frame_check_m: float = 50.0
    stitch_flip_frame_offset_m: float = 20.0
    stitch_flip_jump_m: float = 10.0
    velocity_correction_k: float = 2.0
    single_sigma_margin_m: float = 20.0
    single_sigma_spread_k: float = 0.5

    def at_ground_scale(self, scale: float) -> EstimatorConfig:
        """These settings for a map whose pixels are ``scale`` times the ones they were
        calibrated with (0.2: 1 m for 5 m; ``uncertainty.CALIBRATED_RESOLUTION_M``):
        every ground distance that counts map pixels (the resolutions, the runner-up's
        exclusion, the gate's table axes, the search's bounds, the mosaic, the
        registration's search, the stitched and single-frame error terms, what
        counts as a jump) times ``scale``, the stitch areas times its square and
        the gate's growth per 100 m below its small side over it.

        What is a property of the world stays: the map's georeference floor
        (``map_sigma_m``), the attitude's error, the GNSS's and the FC's sigmas,
        speeds and accelerations, times. Why this is enough: at 0.2, NAIP's 5 m
        clips laid down at 1 m/px and flown at a fifth of the height (100 m
        above ground, 200 m frames) fix like the 5 m map at 500 m, to a fifth
        of the error (``bench/visual_fix_accuracy.py``, ``low_altitude``).
        """
        if not (math.isfinite(scale) and scale > 0.0):
            raise ValueError(f"a ground scale must be a positive number, got {scale}")
        if scale == 1.0:
            return self
        m, odo = self.match, self.odometry
        return replace(
            self,
            match=replace(
                m,
                resolution_m=m.resolution_m * scale,
                coarse_resolution_m=m.coarse_resolution_m * scale,
                exclusion_m=m.exclusion_m * scale,
            ),
            odometry=replace(
                odo,
                search_m=odo.search_m * scale,
                stitch_below_area_m2=odo.stitch_below_area_m2 * scale * scale,
                stitch_target_area_m2=odo.stitch_target_area_m2 * scale * scale,
            ),
            gate_radius_m=tuple(v * scale for v in self.gate_radius_m),
            gate_side_m=(self.gate_side_m[0] * scale, self.gate_side_m[1] * scale),
            gate_small_side_m=self.gate_small_side_m * scale,
            gate_small_side_sigmas_per_100m=self.gate_small_side_sigmas_per_100m / scale,
            gate_evidence_max_side_m=self.gate_evidence_max_side_m * scale,
            min_search_radius_m=self.min_search_radius_m * scale,
            max_search_radius_m=self.max_search_radius_m * scale,
            mosaic_half_size_m=self.mosaic_half_size_m * scale,
            min_jump_m=self.min_jump_m * scale,
            stitch_sigma_margin_m=self.stitch_sigma_margin_m * scale,
            stitch_frame_check_m=self.stitch_frame_check_m * scale,
            stitch_flip_frame_offset_m=self.stitch_flip_frame_offset_m * scale,
            stitch_flip_jump_m=self.stitch_flip_jump_m * scale,
            single_sigma_margin_m=self.single_sigma_margin_m * scale,
        )
