"""The autopilot's heading and height error, measured against the GNSS's velocity.

Registration (:mod:`.odometry`) measures the motion between frames as the
autopilot's attitude and height put them: a raw vector that is the true ground
motion turned by the heading error and shrunk or stretched by the height error.
While the GNSS is healthy, its velocity over ground (Doppler: centimetres per
second, whatever its position is worth) integrated over the same interval is the
true motion. So over a run of frames

    gnss_i = z * raw_i,   z = scale * exp(i * heading)   (complex east + i north)

and a least-squares ``z`` is the correction the map match otherwise has to find
on its own. Why it matters: a stitched patch's heading and scale lie on a ridge of
the match score, flat to 1 %; a patch that settles 8 % off in scale puts its
nadir, hundreds of metres from the ground that pins it, 20-50 m off, and the
track then follows it (stop 35's locked flight). Metric motion breaks the ridge.

Only a stitched patch is held to it. A frame alone sees its own heading and scale
well enough (its nadir lies inside it), and a fit over 30 s trails an EKF's yaw
error as it wanders: the sample flight's 600 m frames, held too, went from p95
5.6 m to 7.1 m.

After the GNSS is lost the correction is held, its sigma grown with the distance
flown (terrain under a flat-ground height, a barometer's drift) and with time (a
compass's error changes as the vehicle turns), until it is no tighter than the
match's own candidates and so no longer used.

Not trusted: pairs from a GNSS the estimator does not follow (a spoofed one drags
its position and velocity alike; :mod:`.prior` decides), and a fit outside the
heading and scale any autopilot could be that wrong by. A spoofer that drags
slowly stays inside both until :mod:`.prior` contests it, and its drag over the
ground speed becomes a scale and heading error that the match is then held to.
Seen at 2 m/s on stitched 400 m flights: frames gated that matched without it
(76 against 87 of 104 fixed right on the 8-year pair), no wrong fix (5 without it
on the 11-year pair). Watching the map fixes' offset from the GNSS for a trend
was tried and dropped: a track converging onto the map trends as fast (10 m in
10 s), and dropping the correction there let a patch lock 50 m off again.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, replace

from gps_denied_onboard.visual_nav.matcher import MatchConfig
from gps_denied_onboard.visual_nav.state import StampedSeries

NS = 1_000_000_000


@dataclass(frozen=True)
class GnssCorrectionConfig:
    """How the correction is measured and held (``config/visual_nav.yaml``).

    Attributes:
        enabled: measure and use it at all.
        window_s: frame pairs older than this before the newest are dropped.
        min_pairs / min_distance_m: a fit needs this many pairs and this much
            raw motion (a hovering vehicle measures nothing).
        max_velocity_gap_s: velocity samples must cover each frame interval
            this densely, else the pair is skipped.
        default_velocity_sigma_mps: a velocity whose accuracy is not reported.
        scale_floor / heading_floor_deg: the least 1-sigma a fit is held to
            (time-correlated GNSS velocity errors, the attitude's noise).
        scale_growth_per_km: relative scale sigma added per km flown since the
            GNSS's last pair (terrain under a flat-ground height, baro drift).
        heading_growth_deg_per_min: heading sigma added per minute since then.
        max_scale_sigma / max_heading_sigma_deg: past these the correction is
            not used (the match's own candidates cover more).
        max_scale_error / max_heading_error_deg: a fit further off than this
            from (1, 0) is no autopilot's error: it is not used.
        bound_k: the match keeps heading and scale within this many sigmas.
    """

    enabled: bool = True
    window_s: float = 30.0
    min_pairs: int = 5
    min_distance_m: float = 60.0
    max_velocity_gap_s: float = 0.6
    default_velocity_sigma_mps: float = 0.5
    scale_floor: float = 0.01
    heading_floor_deg: float = 0.5
    scale_growth_per_km: float = 0.03
    heading_growth_deg_per_min: float = 1.0
    max_scale_sigma: float = 0.03
    max_heading_sigma_deg: float = 2.0
    max_scale_error: float = 0.25
    max_heading_error_deg: float = 15.0
    bound_k: float = 2.5


@dataclass(frozen=True)
class Correction:
    """The autopilot's errors as measured: heading offset (ENU sense, degrees, the
    convention of :func:`.uncertainty.corrected`) and height scale, 1-sigma each;
    ``None`` sigmas past the config's limits (that part is not to be used)."""

    heading_deg: float
    heading_sigma_deg: float | None
    scale: float
    scale_sigma: float | None
    pairs: int

    def scale_bounds(self, k: float) -> tuple[float, float] | None:
        if self.scale_sigma is None:
            return None
        return self.scale * (1.0 - k * self.scale_sigma), self.scale * (1.0 + k * self.scale_sigma)

    def heading_bounds(self, k: float) -> tuple[float, float] | None:
        if self.heading_sigma_deg is None:
            return None
        return self.heading_deg - k * self.heading_sigma_deg, (
            self.heading_deg + k * self.heading_sigma_deg
        )


@dataclass(frozen=True)
class _Pair:
    stamp_ns: int
    raw: complex
    gnss: complex
    var: float  # per axis, m^2: registration and velocity integration together


class GnssCorrection:
    """Frame pairs' raw motion against the GNSS's, fitted to one heading and scale."""

    def __init__(self, cfg: GnssCorrectionConfig) -> None:
        self.cfg = cfg
        self._velocity: StampedSeries[tuple[float, float, float]] = StampedSeries(
            keep_s=cfg.window_s + 10.0
        )
        self._pairs: list[_Pair] = []
        #: registrations the GNSS's velocity does not cover yet: (t0, t1, raw, var)
        self._pending: list[tuple[int, int, complex, float]] = []
        self._fit: tuple[complex, float, int] | None = None  # z, relative sigma, pairs
        self._fit_stamp_ns: int | None = None
        self._flown_m = 0.0  # raw metres registered since the fit's last pair

    def add_velocity(
        self, stamp_ns: int, east: float, north: float, sigma_mps: float | None = None
    ) -> None:
        """The GNSS's velocity over ground at ``stamp_ns`` (ENU m/s); a value that is
        not finite is dropped, an accuracy that is not a positive number counts as
        ``default_velocity_sigma_mps``."""
        if not (math.isfinite(east) and math.isfinite(north)):
            return
        s = self.cfg.default_velocity_sigma_mps
        if sigma_mps is not None and math.isfinite(sigma_mps) and sigma_mps > 0:
            s = sigma_mps
        self._velocity.add(stamp_ns, (east, north, s))

    def velocity_at(self, stamp_ns: int) -> tuple[float, float, float] | None:
        """The GNSS's velocity at ``stamp_ns`` (east, north, sigma), between the samples
        around it; None where none are within ``max_velocity_gap_s`` of each other."""
        return _interpolated(self._velocity, stamp_ns, int(self.cfg.max_velocity_gap_s * NS))

    def add_motion(
        self,
        t0_ns: int,
        t1_ns: int,
        raw_en: tuple[float, float],
        raw_sigma_m: float,
        *,
        gnss_followed: bool,
    ) -> None:
        """One registration: the raw motion between the frames at ``t0_ns`` and ``t1_ns``.

        With ``gnss_followed`` (the GNSS is healthy and the estimator's prior is
        its position) it becomes a pair once the GNSS's velocity samples stamped
        up to a later frame cover the interval (usually the next frame's);
        otherwise, or when they never will, it only counts as distance flown since
        the fit.

        Why wait for a later frame: the velocity at ``t1_ns`` lies between the
        samples either side of it, and whether the one after it has arrived when
        this frame is answered depends on the machine and on a replay's rate.
        Taken when it happened to be there, two replays of the sample flight
        fitted scales 0.5-1 % apart in their first 20 s, and their fixes moved
        with them. The samples stamped up to this frame are there (the FC sent
        them before this frame's attitude), so the fit each frame gets is the same.
        """
        if not self.cfg.enabled or t1_ns <= t0_ns:
            return
        raw = complex(raw_en[0], raw_en[1])
        if gnss_followed:
            self._pending.append((t0_ns, t1_ns, raw, raw_sigma_m**2))
        else:
            self._flown_m += abs(raw)
        self._settle(t1_ns)

    def _settle(self, now_ns: int) -> None:
        """Pairs of the pending registrations that the velocity samples stamped up to
        ``now_ns`` cover; those they never will count as distance flown."""
        gap = int(self.cfg.max_velocity_gap_s * NS)
        newest: int | None = None  # the newest pair settled now
        waiting: list[tuple[int, int, complex, float]] = []
        for t0, t1, raw, var in self._pending:
            if not self._covered(t1, now_ns):
                if now_ns - t1 <= gap:
                    waiting.append((t0, t1, raw, var))  # the sample after it may still come
                else:
                    self._flown_m += abs(raw)  # it would come too late to fill the gap
                continue
            moved = self._integrate(t0, t1)
            if moved is None:
                self._flown_m += abs(raw)
                continue
            gnss, gnss_var = moved
            self._pairs.append(_Pair(t1, raw, gnss, var + gnss_var))
            newest = t1 if newest is None else max(newest, t1)
        self._pending = waiting
        if newest is None:
            return
        cut = newest - int(self.cfg.window_s * NS)
        self._pairs = [p for p in self._pairs if p.stamp_ns >= cut]
        fit = self._fitted()
        if fit is not None:
            self._fit, self._fit_stamp_ns, self._flown_m = fit, newest, 0.0

    def _covered(self, t1_ns: int, now_ns: int) -> bool:
        """Whether a velocity sample at ``t1_ns``, or the first one after it, is there
        and stamped no later than ``now_ns`` (one past it is not used yet, whether it
        arrived or not)."""
        before, after = self._velocity.around(t1_ns)
        return (before is not None and before[0] == t1_ns) or (
            after is not None and after[0] <= now_ns
        )

    def _integrate(self, t0_ns: int, t1_ns: int) -> tuple[complex, float] | None:
        """The GNSS's motion from ``t0_ns`` to ``t1_ns`` (trapezoids between its
        velocity samples, interpolated at the ends) and its variance per axis; None
        where the samples leave a gap."""
        ts = self._velocity.stamps
        gap = int(self.cfg.max_velocity_gap_s * NS)
        knots: list[tuple[int, complex, float]] = []
        # the ends and every sample between them; each knot is a sample or lies between
        # two no further than ``gap`` apart, so no stretch between knots is longer
        inner = ts[bisect.bisect_right(ts, t0_ns) : bisect.bisect_right(ts, t1_ns)]
        for t in (t0_ns, *inner, t1_ns):
            v = _interpolated(self._velocity, t, gap)
            if v is None:
                return None
            knots.append((t, complex(v[0], v[1]), v[2]))
        moved = 0j
        var = 0.0
        for (ta, va, sa), (tb, vb, sb) in itertools.pairwise(knots):
            dt = (tb - ta) / NS
            moved += 0.5 * (va + vb) * dt
            var += (0.5 * (sa + sb) * dt) ** 2
        return moved, var

    def _fitted(self) -> tuple[complex, float, int] | None:
        """Weighted least squares of ``gnss = z * raw`` over the pairs, refitted
        without those past 3 sigmas; its relative sigma from the scatter about it
        (never tighter than each pair's own noise says)."""
        cfg = self.cfg
        pairs = self._pairs
        for _ in range(3):
            if len(pairs) < cfg.min_pairs or sum(abs(p.raw) for p in pairs) < cfg.min_distance_m:
                return None
            sw_rr = sum(abs(p.raw) ** 2 / p.var for p in pairs)
            z = sum(p.raw.conjugate() * p.gnss / p.var for p in pairs) / sw_rr
            chi = [abs(p.gnss - z * p.raw) ** 2 / (2.0 * p.var) for p in pairs]
            keep = [p for p, c in zip(pairs, chi, strict=True) if c <= 9.0]
            if len(keep) == len(pairs):
                break
            pairs = keep
        else:
            return None  # still shedding pairs: no one motion explains them
        # chi^2 per degree of freedom (2 per pair, 2 fitted), at least 1
        scatter = max(1.0, sum(chi) / max(1, 2 * len(pairs) - 2))
        rel = math.sqrt(scatter / sw_rr) / max(abs(z), 1e-9)
        return z, rel, len(pairs)

    def correction_at(self, stamp_ns: int) -> Correction | None:
        """The correction for a frame at ``stamp_ns``: the last fit, its sigmas grown
        since its last pair; None with no fit, or one no autopilot's error explains."""
        if self._fit is None or self._fit_stamp_ns is None:
            return None
        cfg = self.cfg
        z, rel, n = self._fit
        scale = abs(z)
        heading = math.degrees(math.atan2(z.imag, z.real))
        if abs(scale - 1.0) > cfg.max_scale_error or abs(heading) > cfg.max_heading_error_deg:
            return None
        km = self._flown_m * scale / 1000.0
        minutes = max(0.0, (stamp_ns - self._fit_stamp_ns) / NS / 60.0)
        s_sigma = math.hypot(max(rel, cfg.scale_floor), cfg.scale_growth_per_km * km)
        h_sigma = max(math.degrees(rel), cfg.heading_floor_deg) + (
            cfg.heading_growth_deg_per_min * minutes
        )
        return Correction(
            heading_deg=heading,
            heading_sigma_deg=h_sigma if h_sigma <= cfg.max_heading_sigma_deg else None,
            scale=scale,
            scale_sigma=s_sigma if s_sigma <= cfg.max_scale_sigma else None,
            pairs=n,
        )


def _interpolated(
    series: StampedSeries[tuple[float, float, float]], t: int, gap_ns: int
) -> tuple[float, float, float] | None:
    """The velocity at ``t``: a sample there, else linear between the samples around
    it when they are no further than ``gap_ns`` apart (never carried past them)."""
    before, after = series.around(t)
    if before is not None and before[0] == t:
        return before[1]
    if before is None or after is None or after[0] - before[0] > gap_ns:
        return None
    (ta, a), (tb, b) = before, after
    w = (t - ta) / (tb - ta)
    return (a[0] + w * (b[0] - a[0]), a[1] + w * (b[1] - a[1]), max(a[2], b[2]))


def held_match(cfg: MatchConfig, c: Correction, k: float, *, headings: bool) -> MatchConfig:
    """The match's heading and scale held to a measured correction: the search takes
    it as its one candidate and the refinement stays within ``k`` sigmas of it. The
    heading only where the autopilot's is trusted (an all-round search has no
    heading to be corrected)."""
    if (sb := c.scale_bounds(k)) is not None:
        cfg = replace(cfg, scale_candidates=(c.scale,), scale_bounds=sb)
    if headings and (hb := c.heading_bounds(k)) is not None:
        cfg = replace(cfg, heading_candidates_deg=(c.heading_deg,), heading_bounds_deg=hb)
    return cfg
