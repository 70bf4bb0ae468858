"""What the estimator gives: a fix, and the ground view a snapshot is cut from.

A :class:`VisualFix` is what :meth:`.estimator.VisualEstimator.process` returns
and everything downstream reads: the node's ``PositionFix`` and diagnostics,
the ``vnav.fix`` record (:mod:`.outputs`), the benchmarks. Its position is the
vehicle's (the camera's nadir) with a calibrated 1-sigma (:mod:`.uncertainty`);
the match's scores ride along so a record says why the fix was trusted.
:class:`GroundView` is the last accepted frame with its corrected pose, which
:mod:`.snapshot` orthorectifies for the tile cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.camera import CameraModel

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class VisualFix:
    """One accepted fix. Position is the vehicle's (the camera's nadir), WGS84."""

    stamp_ns: int
    latitude: float
    longitude: float
    altitude_msl: float
    sigma_m: float  # 1-sigma per horizontal axis
    velocity_en: tuple[float, float] | None
    velocity_sigma: float
    yaw_enu: float
    yaw_sigma: float
    quality: int
    reset_counter: int
    margin: float
    margin_sigmas: float
    score: float
    template_px: int
    height_m: float
    height_source: str
    heading_offset_deg: float
    scale: float
    search_radius_m: float
    prior_source: str
    footprint_m: float
    stitch_lever_m: float = 0.0  # a stitched patch's centroid to the nadir (0: one frame)
    #: the square root of the ground area the searched template covered (m): what the
    #: gate and the small-frame terms of the sigma were judged on
    template_side_m: float = 0.0
    #: the ground resolution the frame was matched at (m/px): resolution_m at the ground
    #: scale its width chose (ground_scale; 0 where not said)
    resolution_m: float = 0.0
    #: the ground size of the map's own pixels under the placed template (m): the
    #: zoom's where its tiles were the zoom's own or finer, coarser where one was
    #: enlarged from a coarser zoom (mapview.Mosaic.pixel_m_over; its sigma and gate)
    map_pixel_m: float = 0.0
    #: how far a stitched patch's (or a small frame's) quadrants disagree about where
    #: it lies (m, witness.spread_of); None for a frame seeing gate_side_m[1] or more
    #: alone (its sigma has no such term), or when they could not say
    quadrant_spread_m: float | None = None
    #: how far the newest frame alone, searched around a stitched fix, puts the
    #: nadir from it (m, matcher.frame_offset_m); None for a frame alone, or when
    #: the frame could not say
    frame_offset_m: float | None = None
    #: the autopilot's height scale and heading error as the GNSS's velocity measured
    #: them (gnss_correction), which held the match's; None where not measured, or
    #: held so long that it no longer bound the match
    gnss_scale: float | None = None
    gnss_scale_sigma: float | None = None
    gnss_heading_deg: float | None = None
    gnss_heading_sigma_deg: float | None = None
    #: the template's quadrants on their own (witness.agreement_of); None when
    #: the margin alone cleared the gate and it was not needed
    agreement: float | None = None
    #: the saturation edges' backing of the placement (witness.colour_support); None
    #: unless the evidence was judged, or when frame or map is mono
    colour_support: float | None = None
    #: the gray levels' backing of the placement (witness.intensity_support); None
    #: unless the evidence was judged, or when the frame is too uniform
    intensity_support: float | None = None
    #: margin, agreement, colour and intensity weighed together (gate.evidence): a small
    #: template our own track does not corroborate; None when the margin was judged
    evidence: float | None = None
    #: how far the fix is from the FC's GNSS at its stamp (PriorTracker.gnss_offset_m):
    #: None while that GNSS is unhealthy or unheard; a spoofed one shows here
    gnss_offset_m: float | None = None

    @property
    def position_covariance(self) -> tuple[float, ...]:
        """ENU 3x3 row-major, m^2 (vertical: the height's own sigma, generous)."""
        v = self.sigma_m**2
        return (v, 0.0, 0.0, 0.0, v, 0.0, 0.0, 0.0, (3.0 * self.sigma_m) ** 2)


@dataclass(frozen=True)
class GroundView:
    """The last accepted frame with its corrected pose: what a snapshot is cut from."""

    gray: NDArray[np.float32]
    camera: CameraModel
    r_world_from_camera: F64
    height_m: float
    latitude: float
    longitude: float
    #: where the frame shows ground (255): not its black fill nor cloud
    #: (:attr:`.views.FrameView.fill`); None: worked out from ``gray`` (its fill alone)
    ground: NDArray[np.uint8] | None = None
