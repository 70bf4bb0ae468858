"""Frame-to-frame registration, and the position it carries from one frame to the next.

Each frame, rendered as the autopilot's attitude and height put it (uncorrected, so
that the track never breaks when a fix refines the correction), is registered on the
last one (:class:`.odometry.OdometryTrack`); recent frames are stitched into a patch
when one is too small to match alone. Between map fixes the last frame's position,
carried by that registration, is the prior: each registration adds its own small
error instead of a velocity's error times the time (:meth:`RegisteredTrack.carry`).
The motion is turned and scaled into the world by the last fix's heading and height
correction (``corr``: degrees, factor).
"""

from __future__ import annotations

import math

from gps_denied_onboard.visual_nav.geo import LocalFrame
from gps_denied_onboard.visual_nav.odometry import Displacement, OdometryConfig, OdometryTrack
from gps_denied_onboard.visual_nav.rectify import RectifiedFrame
from gps_denied_onboard.visual_nav.state import Prior
from gps_denied_onboard.visual_nav.uncertainty import corrected
from gps_denied_onboard.visual_nav.views import FrameView


class RegisteredTrack:
    """The registration track and the position it carries. One caller at a time."""

    def __init__(self, cfg: OdometryConfig) -> None:
        self.odometry = OdometryTrack(cfg)
        self.carried: Prior | None = None  # the last frame's nadir, carried by registration

    def register(
        self,
        stamp_ns: int,
        frame: FrameView,
        *,
        resolution_m: float,
        height_m: float,
        corr: tuple[float, float],
        heading: float,
        track: Prior | None,
        interpolation: tuple[float, float],
    ) -> tuple[Displacement | None, RectifiedFrame | None]:
        """Register the (uncorrected) frame on the last one: raw displacement, stitched
        patch. ``track``: our track when nothing is carried (its velocity predicts the
        motion); ``interpolation``: the attitude's interpolation spread at the stamp
        (:meth:`.state.AttitudeBuffer.interpolation_spread`)."""
        rf = frame.render(0.0, 1.0, resolution_m)
        if rf is None:
            self.odometry.reset()
            return None, None
        prev = self.carried or track
        pv = None
        if prev is not None:  # the true velocity, back into the raw frame
            pv = corrected(prev.velocity_en, -corr[0], 1.0 / corr[1])
        disp = self.odometry.add(
            stamp_ns,
            rf,
            height_m=height_m,
            predicted_velocity=pv,
            interpolation=interpolation,
            heading=heading,
        )
        return disp, self.odometry.stitch()

    def carry(
        self, stamp_ns: int, disp: Displacement | None, corr: tuple[float, float]
    ) -> Prior | None:
        """The last frame's position carried to this one by registration (GNSS lost);
        None where there was no registration, or it measured from a frame whose
        position is not known."""
        last = self.carried
        frames = self.odometry.frames
        if disp is None or last is None or last.stamp_ns != frames[-2].stamp_ns:
            self.carried = None
            return None
        odo_v = self.odometry.velocity()
        v, vs = (
            (corrected(odo_v[0], *corr), odo_v[1] * corr[1])
            if odo_v is not None
            else (last.velocity_en, last.velocity_sigma)
        )
        e, n = corrected((disp.de, disp.dn), *corr)
        lat, lon = LocalFrame(last.latitude, last.longitude).to_latlon(e, n)
        sigma = math.hypot(last.sigma_m, disp.sigma_m * corr[1])
        self.carried = Prior(stamp_ns, lat, lon, sigma, v, vs, "visual_odometry")
        return self.carried

    def note_fix(self, here: Prior) -> None:
        """A fix at this frame: registration carries on from it."""
        self.carried = here
