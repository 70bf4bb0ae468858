"""The camera's mounting error, measured against the GNSS while it is healthy.

A camera mounted a degree off its stated ``mount_rpy_deg`` (a bracket, a
gimbal's zero, a principal point calibrated a few pixels off) looks a degree off
nadir: at 500 m above ground every fix lands 9 m off, along a direction fixed
to the airframe, and the fix's sigma (``attitude_sigma_deg``, 0.5 deg: the
autopilot's error) does not cover it. Measured on cross-year NAIP frames (2017
map, 2009 frames, 1 km footprints): a principal point 10 px (1.8 deg) off put
the median fix 23 m off, 25 % of them within 3 sigma.

While the GNSS is healthy and followed, each fix's offset from it is

    fix - gnss = h A(psi) (C - c) + m + noise

with ``h`` the height above ground, ``psi`` the heading, ``C`` the mounting
error (rotations about the body's forward and left axes), ``c`` the
correction in force when the frame was matched, and ``m`` where the map's
georeference sits against the GNSS's (metres, fixed on the ground). ``A``
turns the body's forward / left into east / north: the error turns with the
airframe, the map's offset does not, so headings that differ separate them
(:attr:`BoresightConfig.min_heading_spread`). A weighted least squares over
the last ``window_s`` gives ``C`` and its covariance; it is used, as a
rotation between the body and the stated mount, where it is significant
(``min_tilt_deg`` and 3 sigmas) and plausible (``max_tilt_deg``), and kept
after the GNSS is lost: a mounting does not move in flight.

Learnt from every fix while the GNSS is healthy, also where the estimator's
track contests it: a mounting 1.5 deg off puts the fixes far enough off a right
GNSS for that. A spoofer's drag grows with time, which no mounting and map
offset explain: such a fit scatters past ``max_scatter`` and is not used. Not
learnt from: a GNSS looser than ``max_gnss_sigma_m`` (a 2 m error at 500 m is
0.2 deg).

Flights at 500 m above ground (2017 map, 2009 frames, 4 per seed turning 90 deg
or more, GNSS 1.5 m noisy until 50 s): a camera 1.5 deg about the forward axis
and 1 deg about the left one off put the fixes after the GNSS's loss 19.6 m
off at the median, 15 % within 3 sigma; measured (1.25-1.60 and 1.06-1.58 deg)
and corrected, 2.7 m and 100 %. Off by 0.8 and 0.4 deg: 8.9 -> 2.8 m. With no
mounting error (the autopilot's own 0.15 deg) the fits stood at 0.03-0.40 deg
and no correction was made.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.camera import rot_x, rot_y
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.geo import LocalFrame
from gps_denied_onboard.visual_nav.state import Prior

F64 = NDArray[np.float64]
NS = 1_000_000_000


@dataclass(frozen=True)
class BoresightConfig:
    """How the mounting error is measured (``config/visual_nav.yaml``: ``boresight_*``).

    Attributes:
        enabled: measure and correct at all.
        window_s: pairs older than this before the newest are dropped.
        min_pairs: a fit needs this many pairs.
        min_heading_spread: the headings' mean resultant length must be at most
            this (1: all one heading; 0.87: two headings 60 deg apart).
        max_gnss_sigma_m: GNSS samples claiming more than this teach nothing.
        min_tilt_deg: a smaller error is not corrected (within the attitude's).
        max_tilt_deg: a larger fit is no mounting's error: not used.
        max_scatter: a fit whose pairs scatter about it by more than this many
            times their own variance is no one mounting: not used (a spoofer's
            drag grows with time, which no mounting and map offset explain).
    """

    enabled: bool = True
    window_s: float = 120.0
    min_pairs: int = 20
    min_heading_spread: float = 0.95
    max_gnss_sigma_m: float = 5.0
    min_tilt_deg: float = 0.5
    max_tilt_deg: float = 3.0
    max_scatter: float = 4.0


@dataclass(frozen=True)
class _Pair:
    stamp_ns: int
    design: tuple[float, float, float, float, float, float, float, float]  # 2 x 4 rows
    y: tuple[float, float]  # fix - gnss, with the correction then in force added back
    var: float  # per axis, m^2
    heading: float


class Boresight:
    """Fix-against-GNSS pairs fitted to one mounting error; the correction in force."""

    def __init__(self, cfg: BoresightConfig) -> None:
        self.cfg = cfg
        self._pairs: deque[_Pair] = deque()
        self._correction = (0.0, 0.0)  # radians about body forward (x) and left (y)
        self._rotation: F64 = np.eye(3)
        self.fit: tuple[float, float, float] | None = None  # C (deg, deg), its sigma (deg)

    @property
    def correction_deg(self) -> tuple[float, float]:
        """The correction in force: degrees about the body's forward and left axes."""
        return math.degrees(self._correction[0]), math.degrees(self._correction[1])

    def restore(self, correction_deg: tuple[float, float]) -> None:
        """Put a correction learnt before (:mod:`.learnt_camera`) in force. The pairs
        measured from now on carry it back (:meth:`add`), so a fit still measures
        the whole mounting error and replaces it; one larger than ``max_tilt_deg``
        is no mounting's and is not taken."""
        cx, cy = (math.radians(v) for v in correction_deg)
        if not (math.isfinite(cx) and math.isfinite(cy)):
            return
        if math.degrees(math.hypot(cx, cy)) > self.cfg.max_tilt_deg:
            return
        self._correction = (cx, cy)
        self._rotation = rot_y(cy) @ rot_x(cx)

    def rotation(self) -> F64:
        """``R`` with ``r_world_from_body @ R @ mount`` the camera as it is mounted."""
        return self._rotation

    def add_fix(
        self, fix: VisualFix, gnss: Prior, gnss_sigma_m: float, heading: float, height_m: float
    ) -> None:
        """:meth:`add` of ``fix`` against ``gnss`` (the GNSS carried to the fix's stamp,
        its reported sigma ``gnss_sigma_m``)."""
        e, n = LocalFrame(gnss.latitude, gnss.longitude).to_en(fix.latitude, fix.longitude)
        self.add(
            fix.stamp_ns,
            (e, n),
            heading=heading,
            height_m=height_m,
            sigma_m=fix.sigma_m,
            gnss_sigma_m=gnss_sigma_m,
        )

    def add(
        self,
        stamp_ns: int,
        offset_en: tuple[float, float],
        *,
        heading: float,
        height_m: float,
        sigma_m: float,
        gnss_sigma_m: float,
    ) -> None:
        """One fix's offset from the GNSS (``fix - gnss``, east / north metres) at
        ``stamp_ns``, matched with the correction now in force; ``heading`` the
        body's ENU yaw (radians), ``sigma_m`` the fix's own 1-sigma per axis."""
        cfg = self.cfg
        if not cfg.enabled or gnss_sigma_m > cfg.max_gnss_sigma_m or height_m <= 0:
            return
        if not all(math.isfinite(v) for v in (*offset_en, heading, height_m, sigma_m)):
            return
        s, c = math.sin(heading), math.cos(heading)
        # body forward (cos, sin), left (-sin, cos); a rotation cx about forward points
        # the camera left by cx, one cy about left points it back by cy
        a = (-height_m * s, -height_m * c, height_m * c, -height_m * s)  # e: (cx, cy); n: ...
        cx, cy = self._correction
        y = (
            offset_en[0] + a[0] * cx + a[1] * cy,
            offset_en[1] + a[2] * cx + a[3] * cy,
        )
        design = (a[0], a[1], 1.0, 0.0, a[2], a[3], 0.0, 1.0)
        self._pairs.append(
            _Pair(stamp_ns, design, y, sigma_m * sigma_m + gnss_sigma_m * gnss_sigma_m, heading)
        )
        cut = stamp_ns - int(cfg.window_s * NS)
        while self._pairs and self._pairs[0].stamp_ns < cut:
            self._pairs.popleft()
        self._refit()

    def _refit(self) -> None:
        cfg = self.cfg
        pairs = list(self._pairs)
        if len(pairs) < cfg.min_pairs:
            return
        spread = math.hypot(
            sum(math.cos(p.heading) for p in pairs), sum(math.sin(p.heading) for p in pairs)
        ) / len(pairs)
        if spread > cfg.min_heading_spread:
            return  # one heading: the mounting and the map's offset look alike
        for _ in range(3):
            a = np.array([p.design for p in pairs], np.float64).reshape(-1, 4)
            y = np.array([p.y for p in pairs], np.float64).reshape(-1)
            w = np.repeat([1.0 / p.var for p in pairs], 2)
            aw = a * w[:, None]
            normal = a.T @ aw
            if np.linalg.cond(normal) > 1e12:
                return
            x = np.linalg.solve(normal, aw.T @ y)
            res = (y - a @ x).reshape(-1, 2)
            chi = np.array([float(r @ r) / (2.0 * p.var) for r, p in zip(res, pairs, strict=True)])
            keep = [p for p, k in zip(pairs, chi, strict=True) if k <= 9.0]
            if len(keep) == len(pairs):
                break
            pairs = keep
            if len(pairs) < cfg.min_pairs:
                return
        else:
            return
        dof = max(1, 2 * len(pairs) - 4)
        scatter = max(1.0, float(chi.sum()) / dof)
        if scatter > cfg.max_scatter:
            return
        cov = np.linalg.inv(normal) * scatter
        cx, cy = float(x[0]), float(x[1])
        sigma = math.sqrt(max(float(cov[0, 0]), float(cov[1, 1]), 0.0))
        tilt = math.hypot(cx, cy)
        self.fit = (math.degrees(cx), math.degrees(cy), math.degrees(sigma))
        if math.degrees(tilt) > cfg.max_tilt_deg:
            return
        if math.degrees(tilt) < cfg.min_tilt_deg or tilt < 3.0 * sigma:
            cx = cy = 0.0
        self._correction = (cx, cy)
        self._rotation = rot_y(cy) @ rot_x(cx)
