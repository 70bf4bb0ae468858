"""How noisy registration really is, measured in flight: a scale on its modelled sigma.

The registration track's error model (:mod:`.odometry`) is a guess about the
airframe: ``attitude_rel_sigma_deg`` of roll and pitch change between frames
(0.05 deg, set on the sample flight, whose attitude changed by 0.025-0.04 deg a
frame), ``yaw_rel_sigma_deg`` and ``sigma_px``. Another autopilot, another
damping, another camera make it another number, and a velocity's sigma is
mostly that guess: with roll and pitch off by twice the model's change a frame,
85 % of the velocities were within 3 sigma instead of 99.

The track checks itself every frame: its short and long window's velocities
(:meth:`.odometry.OdometryTrack.velocity`) differ by noise whose variance the
model states (the short one's less the long one's, per axis), so their squared
difference over that variance, per axis, is a normalised innovation: an
exponential of mean 1 when the model is right. Its mean over the last
``samples`` frames is the model's variance ratio, and its square root scales
the velocity's registration sigma, within ``scale_min`` and ``scale_max``.

- Each innovation counts for at most :data:`INNOVATION_CAP`: a manoeuvre's
  onset, where the long window trails, is a large one that the window rule
  handles (:func:`.velocity_leads.steadier`), not noise.
- Until ``samples`` have come the configured model counts too, as innovations
  of 1: a third of ``samples`` of them at the first frame, fewer with each.
- ``scale_min`` is 1 by default: the model is the floor. A quieter airframe
  than the model measures below 1 (the calibration flights' 0.03 deg a frame:
  0.6), but the same sigma stands for what no window sees, an acceleration's
  onset (``config/visual_nav.yaml`` has the figures).
- The innovations outlive a broken track (they describe the airframe, not the
  ground), not the estimator.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

#: an innovation counts for at most this (per axis, in model variances): the model
#: puts 1 in 8,000 past it (half a chi-square of two degrees of freedom is an
#: exponential of mean 1), a manoeuvre's onset many; capped, one of those moves a
#: mean of 30 by under a third
INNOVATION_CAP = 9.0


@dataclass(frozen=True)
class NoiseConfig:
    """The node's ``odometry_noise_*`` parameters."""

    adapt: bool = True
    samples: int = 30
    scale_min: float = 1.0
    scale_max: float = 2.0


class RegistrationNoise:
    """Normalised innovations of the registration track, and the scale they give."""

    def __init__(self, cfg: NoiseConfig) -> None:
        self.cfg = cfg
        self._q: deque[float] = deque(maxlen=max(cfg.samples, 1))

    def add(self, q: float) -> None:
        """One frame's normalised innovation (:func:`.velocity_leads.innovation` of its
        short and long window, at their modelled sigmas); NaN, nothing measured, is
        skipped."""
        if not math.isnan(q):
            self._q.append(q)

    @property
    def count(self) -> int:
        return len(self._q)

    def scale(self) -> float:
        """What the modelled registration sigma is multiplied by (1 with ``adapt``
        off): the square root of the innovations' mean, each capped at
        :data:`INNOVATION_CAP`, within the bounds. Until the window is full the
        configured model counts too, as innovations of 1: ``samples`` / 3 of them
        at the first frame, none once ``samples`` have come."""
        cfg = self.cfg
        if not cfg.adapt:
            return 1.0
        n, window = len(self._q), max(cfg.samples, 1)
        prior = window / 3.0 * max(0.0, 1.0 - n / window)
        var_ratio = (prior + sum(min(q, INNOVATION_CAP) for q in self._q)) / (prior + n)
        return min(max(math.sqrt(var_ratio), cfg.scale_min), cfg.scale_max)
