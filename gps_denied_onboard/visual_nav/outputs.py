"""What the estimator reports: record payloads, rate caps and running statistics.

The node publishes these; keeping them here means the vocabulary of the
``vnav.*`` records (``record_schema.VISUAL_NAV_KINDS``) and the diagnostics'
figures are defined and tested without ROS.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.settings import ground_scale_for

if TYPE_CHECKING:  # the node hands its estimator in; no import of it at run time
    from gps_denied_onboard.visual_nav.estimator import VisualEstimator

PRODUCER = "visual_nav"


def fix_payload(fix: VisualFix, latency_ms: float) -> dict[str, Any]:
    """The ``vnav.fix`` record's payload."""
    out: dict[str, Any] = {
        "latitude": round(fix.latitude, 8),
        "longitude": round(fix.longitude, 8),
        "sigma_m": round(fix.sigma_m, 2),
        "quality": fix.quality,
        "margin": round(fix.margin, 4),
        "margin_sigmas": round(fix.margin_sigmas, 3),
        "score": round(fix.score, 4),
        "altitude_msl": round(fix.altitude_msl, 2),
        "height_m": round(fix.height_m, 2),
        "height_source": fix.height_source,
        "heading_offset_deg": round(fix.heading_offset_deg, 2),
        "scale": round(fix.scale, 4),
        "search_radius_m": round(fix.search_radius_m, 1),
        "prior_source": fix.prior_source,
        "latency_ms": round(latency_ms, 1),
        "reset_counter": fix.reset_counter,
        "velocity_valid": fix.velocity_en is not None,
        "footprint_m": round(fix.footprint_m, 1),
        "stitch_lever_m": round(fix.stitch_lever_m, 1),
        # the map's own pixels under the template: coarser than the zoom's where a
        # tile was enlarged from a coarser zoom (its sigma and gate read it)
        "map_pixel_m": round(fix.map_pixel_m, 2),
        "resolution_m": round(fix.resolution_m, 3),  # the ground scale the frame chose
    }
    if fix.quadrant_spread_m is not None:  # a patch's or small frame's quadrants (its sigma)
        out["quadrant_spread_m"] = round(fix.quadrant_spread_m, 1)
    if fix.frame_offset_m is not None:  # the newest frame alone against its patch (its sigma)
        out["frame_offset_m"] = round(fix.frame_offset_m, 1)
    if fix.gnss_scale_sigma is not None:  # the GNSS's velocity held the match's scale
        out["gnss_scale"] = round(fix.gnss_scale or 0.0, 4)
        out["gnss_scale_sigma"] = round(fix.gnss_scale_sigma, 4)
    if fix.gnss_heading_sigma_deg is not None:  # ... and its heading
        out["gnss_heading_deg"] = round(fix.gnss_heading_deg or 0.0, 2)
        out["gnss_heading_sigma_deg"] = round(fix.gnss_heading_sigma_deg, 2)
    if fix.agreement is not None:  # taken for the evidence, or a margin short of the gate
        out["agreement"] = round(fix.agreement, 3)
    if fix.colour_support is not None:  # the evidence of a colour frame
        out["colour_support"] = round(fix.colour_support, 3)
    if fix.intensity_support is not None:  # the evidence's gray levels
        out["intensity_support"] = round(fix.intensity_support, 3)
    if fix.evidence is not None:  # a small template the prior does not corroborate
        out["evidence"] = round(fix.evidence, 3)
    if fix.gnss_offset_m is not None:  # the FC's GNSS healthy: how far it is from this fix
        out["gnss_offset_m"] = round(fix.gnss_offset_m, 1)
    return out


#: the detail keys of a reject that its ``vnav.reject`` record carries (the rest
#: stay in the message): each is listed in ``record_schema`` for the kind
REJECT_DETAIL_KEYS: frozenset[str] = frozenset(
    {
        "margin",
        "margin_sigmas",
        "agreement",
        "colour_support",
        "intensity_support",
        "evidence",
        "score",
        "search_radius_m",
        "template_side_m",
        "on_edge",
        "height_m",
        "age_ms",
        "gap_ms",
        "jump_m",
        "frame_offset_m",
    }
)


def reject_payload(rej: FrameRejected, latency_ms: float) -> dict[str, Any]:
    """The ``vnav.reject`` record's payload (reason plus the scores it carries)."""
    out: dict[str, Any] = {
        "reason": rej.reason,
        "message": str(rej),
        "latency_ms": round(latency_ms, 1),
    }
    out.update({k: v for k, v in rej.detail.items() if k in REJECT_DETAIL_KEYS})
    return out


class RateCap:
    """At most one event per ``period_ns`` of the caller's stamps; counts the rest."""

    def __init__(self, period_ns: int) -> None:
        self._period = period_ns
        self._last: int | None = None
        self.suppressed = 0

    def allow(self, stamp_ns: int) -> bool:
        if self._last is not None and 0 <= stamp_ns - self._last < self._period:
            self.suppressed += 1
            return False
        self._last = stamp_ns
        return True


@dataclass
class VisualNavStats:
    """Running figures for diagnostics: fix rate, accept ratio, latency, map coverage."""

    frames: int = 0
    fixes: int = 0
    rejects: Counter[str] = field(default_factory=Counter)
    dropped_busy: int = 0
    #: frames over frame_max_rate_hz, and frames let go as too late (.frame_pacing)
    frames_decimated: int = 0
    dropped_late: int = 0
    #: frames whose header.stamp was zero, stamped at their arrival instead
    frames_unstamped: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    fix_stamps_ns: deque[int] = field(default_factory=lambda: deque(maxlen=50))
    map_coverage: float = 0.0
    #: of the mosaic's ground with imagery, the share enlarged from coarser tiles
    #: (.mapview.Mosaic.coarser_share): fixes there are less sharp, and fewer pass
    map_enlarged_share: float = 0.0
    #: the ground resolution frames are matched at now (m/px; the ground scale their
    #: width chose, .ground_scale); 0 before the estimator ran
    resolution_m: float = 0.0
    tiles_cached: int = 0
    #: the last fix's distance from the FC's healthy GNSS (VisualFix.gnss_offset_m)
    gnss_offset_m: float | None = None
    #: the lens's vignetting as measured (corner against centre, .flat_field), and how
    #: many frames were divided by it
    lens_falloff: float | None = None
    frames_flattened: int = 0
    #: the camera's mounting error as measured against the GNSS (.boresight: degrees
    #: about the body's forward and left axes), and the correction in force
    mount_fit_deg: tuple[float, float, float] | None = None
    mount_correction_deg: tuple[float, float] = (0.0, 0.0)
    #: the registration's noise as measured in flight over its model (.registration_noise:
    #: what the velocity's sigma is scaled by), and how many frames measured it
    registration_noise_scale: float = 1.0
    registration_noise_frames: int = 0
    #: the ground the recent frames' templates covered (VisualFix.template_side_m, and
    #: a gate reject's): how far they sit from what the gate was calibrated on
    template_sides_m: deque[float] = field(default_factory=lambda: deque(maxlen=50))

    def on_fix(
        self,
        stamp_ns: int,
        latency_ms: float,
        gnss_offset_m: float | None = None,
        template_side_m: float | None = None,
    ) -> None:
        self.frames += 1
        self.fixes += 1
        self.gnss_offset_m = gnss_offset_m
        self.fix_stamps_ns.append(stamp_ns)
        self.latencies_ms.append(latency_ms)
        self._side(template_side_m)

    def on_reject(
        self, reason: str, latency_ms: float, template_side_m: float | None = None
    ) -> None:
        self.frames += 1
        self.rejects[reason] += 1
        self.latencies_ms.append(latency_ms)
        self._side(template_side_m)

    def _side(self, side_m: float | None) -> None:
        if side_m is not None and side_m > 0.0:
            self.template_sides_m.append(side_m)

    def note_estimator(self, est: VisualEstimator) -> None:
        """What the estimator's state says for the diagnostics: the resolution matched
        at, the map's coverage, the lens's vignetting once measured, the mounting's fit
        and the registration's noise."""
        self.resolution_m = est.cfg.match.resolution_m
        if est.mosaic is not None:
            self.map_coverage = est.mosaic.coverage
            self.map_enlarged_share = est.mosaic.coarser_share
        if est.flat_field.frames >= est.cfg.flat_field.min_frames:
            self.lens_falloff = est.flat_field.corner_falloff()
            self.frames_flattened = est.flat_field.divided
        self.mount_fit_deg = est.boresight.fit
        self.mount_correction_deg = est.boresight.correction_deg
        self.registration_noise_scale = est.odometry.noise.scale()
        self.registration_noise_frames = est.odometry.noise.count

    def ground_scale_hint(self) -> float | None:
        """The ground scale that would put the recent frames' templates (their median)
        in the middle of the calibration (:func:`.settings.ground_scale_for`); None
        before any was measured."""
        if not self.template_sides_m:
            return None
        return ground_scale_for(float(np.median(self.template_sides_m)))

    def ground_scale_mismatch(self, ground_scale: float) -> float | None:
        """:meth:`ground_scale_hint` where it is over twice off ``ground_scale`` (the
        frames see more than twice, or less than half, the ground it was set for),
        else None."""
        hint = self.ground_scale_hint()
        if hint is None or 0.5 <= hint / ground_scale <= 2.0:
            return None
        return hint

    def fix_rate_hz(self) -> float:
        s = self.fix_stamps_ns
        if len(s) < 2 or s[-1] <= s[0]:
            return 0.0
        return (len(s) - 1) / ((s[-1] - s[0]) / 1e9)

    def as_dict(self) -> dict[str, object]:
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        out: dict[str, object] = {
            "frames": self.frames,
            "fixes": self.fixes,
            "accept_ratio": round(self.fixes / self.frames, 3) if self.frames else 0.0,
            "fix_rate_hz": round(self.fix_rate_hz(), 2),
            "latency_p50_ms": round(float(np.percentile(lat, 50)), 1),
            "latency_p99_ms": round(float(np.percentile(lat, 99)), 1),
            "dropped_busy": self.dropped_busy,
            "dropped_late": self.dropped_late,
            "frames_decimated": self.frames_decimated,
            "frames_unstamped": self.frames_unstamped,
            "map_coverage": round(self.map_coverage, 3),
            "map_enlarged_share": round(self.map_enlarged_share, 3),
            "resolution_m": round(self.resolution_m, 3),
            "tiles_cached": self.tiles_cached,
        }
        if self.lens_falloff is not None:
            out["lens_falloff"] = round(self.lens_falloff, 3)
            out["frames_flattened"] = self.frames_flattened
        if self.mount_fit_deg is not None:
            fx, fy, fs = self.mount_fit_deg
            out["mount_fit_deg"] = f"{fx:.2f} {fy:.2f} +- {fs:.2f}"
        if self.mount_fit_deg is not None or any(self.mount_correction_deg):
            # one restored from learnt_camera_file is in force before any fit
            out["mount_correction_deg"] = " ".join(f"{c:.2f}" for c in self.mount_correction_deg)
        if self.registration_noise_frames:
            out["registration_noise_scale"] = round(self.registration_noise_scale, 2)
            out["registration_noise_frames"] = self.registration_noise_frames
        if self.gnss_offset_m is not None:  # a spoofed GNSS the FC calls healthy shows here
            out["gnss_offset_m"] = round(self.gnss_offset_m, 1)
        hint = self.ground_scale_hint()
        if hint is not None:
            out["template_side_m"] = round(float(np.median(self.template_sides_m)), 1)
            out["ground_scale_hint"] = round(hint, 2)
        out.update({f"rejects.{k}": v for k, v in sorted(self.rejects.items())})
        return out
