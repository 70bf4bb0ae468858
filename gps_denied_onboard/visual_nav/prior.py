"""Where to search: the FC's GNSS, our own track, and the choice between them.

The estimator hands in the FC's GNSS as it arrives and its own positions as
they are fixed (or carried from frame to frame by registration); for each
frame :meth:`PriorTracker.prior_at` propagates both to the capture stamp and
picks one. With neither (a visual_nav restarted in flight with the GNSS
denied: no track, no healthy GNSS ever heard) the FC's own fused position is
the last resort (:meth:`PriorTracker.add_fc_estimate`): the autopilot's EKF
followed our fixes until the restart and dead-reckoned since, so it is near,
at a sigma nobody reports (``fc_estimate_sigma_m``), widened like the GNSS's
when frames go unfixed (:class:`LostClock`). Before, every frame was
``no_prior`` until an operator seeded the search.

A prior's sigma sets the search radius, so a prior that claims too much makes
the window miss the truth, and one that claims too little makes the search
slow and the gate strict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.errors import PriorError
from gps_denied_onboard.visual_nav.geo import LocalFrame, on_the_map
from gps_denied_onboard.visual_nav.state import AttitudeBuffer, Prior, StampedSeries

NS = 1_000_000_000
#: a GNSS sigma above this says "I know nothing" as well as any larger one does
#: (the search radius stops at hundreds of metres); held here, the sigma's square
#: and sums stay finite whatever a receiver reports
MAX_PRIOR_SIGMA_M = 100_000.0
#: faster than any aircraft this serves: a GNSS velocity beyond it is a bad sample,
#: and dead-reckoned it would carry the prior off the map
MAX_SPEED_MPS = 400.0

#: velocity 1-sigma (m/s per axis) of a resumed fix that carried no velocity: a cruise
#: speed, since the aircraft may be anywhere along its track
RESUMED_UNKNOWN_VELOCITY_SIGMA = 20.0

#: priors from this estimator's own track (not the FC's GNSS, not a seed)
OWN_TRACK = ("visual", "visual_dead_reckoning", "visual_odometry")
#: priors from the FC that claim more than they may know: widened when lost (LostClock)
WIDENED = ("fc_gnss", "fc_estimate")


@dataclass(frozen=True)
class PriorConfig:
    """The prior's settings (from the estimator's configuration)."""

    velocity_sigma: float = 3.0  # of a seed, m/s per axis
    accel_sigma: float = 1.0  # unmodelled acceleration while dead-reckoning, m/s^2
    gnss_sigma_m: float = 10.0  # a GNSS fix that reports none
    consistency_k: float = 3.0  # own track vs GNSS agreement, combined sigmas
    #: a track that disagrees with a healthy GNSS is searched around while its last
    #: fix is at most ``track_over_gnss_s`` old, the search reaching the GNSS too
    #: until this many fixes came in a row, each where the one before put it (0:
    #: the healthy GNSS always wins)
    track_over_gnss_fixes: int = 3
    track_over_gnss_s: float = 10.0
    #: a jump off our track is held until a frame this soon after makes it (0: at once)
    jump_confirm_s: float = 3.0
    jump_sigma_k: float = 4.0  # ... within this many combined sigmas of the held one
    min_jump_m: float = 25.0  # ... or this close
    #: the FC's fused position, which states no accuracy (used with no track and no GNSS)
    fc_estimate_sigma_m: float = 100.0


def yaw_enu(r_enu_flu: NDArray[np.float64]) -> float:
    """Heading of the body x axis, ENU (0 = east, counter-clockwise)."""
    return math.atan2(float(r_enu_flu[1, 0]), float(r_enu_flu[0, 0]))


class PriorTracker:
    """The FC's GNSS and our own track, each propagated to a frame's stamp."""

    def __init__(self, cfg: PriorConfig, attitude: AttitudeBuffer) -> None:
        self.cfg = cfg
        self._attitude = attitude
        # by stamp, not by arrival: a frame is answered from the GNSS and the health
        # verdict of its capture time, whatever arrived while it waited
        self._gnss: StampedSeries[Prior] = StampedSeries(keep_s=60.0)
        self._health: StampedSeries[bool] = StampedSeries(keep_s=60.0)
        self._health_before = False  # before the first stamped verdict
        self._fc: StampedSeries[Prior] = StampedSeries(keep_s=60.0)  # the FC's EKF
        self.track: Prior | None = None  # the last fix (or a seed)
        #: fixes in a row, each within consistency_k combined sigmas of where the
        #: track before it stood (:meth:`add_fix`)
        self.streak = 0
        self._held_jump: Prior | None = None  # a relocalisation awaiting its second frame

    def add_gnss(
        self,
        stamp_ns: int,
        latitude: float,
        longitude: float,
        *,
        healthy: bool,
        sigma_m: float | None = None,
        velocity_en: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        """The FC's own GNSS position at ``stamp_ns``; a candidate only while ``healthy``.

        A position off the map (:func:`.geo.on_the_map`) is dropped; a sigma
        that is not a positive number counts as none reported
        (``gnss_sigma_m``), one beyond :data:`MAX_PRIOR_SIGMA_M` as that; a
        velocity that is not finite, or faster than :data:`MAX_SPEED_MPS`, as
        none (zero).
        """
        self._health.add(stamp_ns, healthy)
        if not healthy or not on_the_map(latitude, longitude):
            return
        s = self.cfg.gnss_sigma_m
        if sigma_m is not None and math.isfinite(sigma_m) and sigma_m > 0:
            s = min(sigma_m, MAX_PRIOR_SIGMA_M)
        ve, vn = velocity_en
        if not (math.isfinite(ve) and math.isfinite(vn) and math.hypot(ve, vn) <= MAX_SPEED_MPS):
            ve = vn = 0.0
        self._gnss.add(
            stamp_ns,
            Prior(stamp_ns, latitude, longitude, max(s, 1.0), (ve, vn), 1.0, "fc_gnss"),
        )

    def add_fc_estimate(self, stamp_ns: int, latitude: float, longitude: float) -> None:
        """The FC's own fused position at ``stamp_ns`` (its EKF says it holds an absolute
        horizontal position): the prior only when there is neither a track nor a healthy
        GNSS sample (:meth:`prior_at`). One off the map is dropped."""
        if not on_the_map(latitude, longitude):
            return
        self._fc.add(
            stamp_ns,
            Prior(
                stamp_ns,
                latitude,
                longitude,
                max(self.cfg.fc_estimate_sigma_m, 1.0),
                (0.0, 0.0),
                self.cfg.velocity_sigma,
                "fc_estimate",
            ),
        )

    def set_healthy(self, healthy: bool, stamp_ns: int | None = None) -> None:
        """The FC's verdict on its GNSS, from ``stamp_ns`` on; with no stamp, for every
        frame from now on (earlier verdicts are forgotten)."""
        if stamp_ns is None:
            self._health.clear()
            self._health_before = healthy
        else:
            self._health.add(stamp_ns, healthy)

    def healthy_at(self, stamp_ns: int) -> bool:
        """The verdict in force at ``stamp_ns``."""
        before, _ = self._health.around(stamp_ns)
        return before[1] if before is not None else self._health_before

    def gnss_at(self, stamp_ns: int) -> Prior | None:
        """The GNSS sample a frame of ``stamp_ns`` starts from: the last one at or
        before it, else the first one after it."""
        sample = self._gnss.at_or_before(stamp_ns)
        return sample[1] if sample is not None else None

    def seed(self, stamp_ns: int, latitude: float, longitude: float, sigma_m: float) -> None:
        """A prior from outside (operator, cold start): the search grows from there.

        Raises:
            PriorError: the position is off the map, or the sigma is not a
                positive number (held at :data:`MAX_PRIOR_SIGMA_M`).
        """
        if not on_the_map(latitude, longitude):
            raise PriorError(f"seed ({latitude}, {longitude}) is not on the map")
        if not (math.isfinite(sigma_m) and sigma_m > 0):
            raise PriorError(f"seed sigma {sigma_m} m is not a positive number")
        sigma_m = min(sigma_m, MAX_PRIOR_SIGMA_M)
        self.track = Prior(
            stamp_ns, latitude, longitude, sigma_m, (0.0, 0.0), self.cfg.velocity_sigma, "seed"
        )
        self.streak = 0

    def resume(self, fix: Prior) -> bool:
        """A fix this estimator made before it was restarted (the newest one the FC
        bridge took for the autopilot, latched on ``/fc/sent_fix``): the track until
        our first fix, dead-reckoned with its velocity and turned with the heading
        (source ``resumed``). Before, a visual_nav restarted in flight with the GNSS
        denied searched only around the FC's fused position, which an autopilot that
        lost our fixes for the restart may no longer claim.

        Not our own track for the gate: a match near it corroborates nothing. Taken
        only when it is newer than the track and the track is not our own; returns
        whether it was.

        Raises:
            PriorError: the position is off the map, or the sigma is not a positive
                number.
        """
        if not on_the_map(fix.latitude, fix.longitude):
            raise PriorError(f"resumed fix ({fix.latitude}, {fix.longitude}) is not on the map")
        if not (math.isfinite(fix.sigma_m) and fix.sigma_m > 0):
            raise PriorError(f"resumed fix sigma {fix.sigma_m} m is not a positive number")
        track = self.track
        if track is not None and (track.source in OWN_TRACK or track.stamp_ns >= fix.stamp_ns):
            return False
        ve, vn = fix.velocity_en
        known = (
            math.isfinite(ve)
            and math.isfinite(vn)
            and math.hypot(ve, vn) <= MAX_SPEED_MPS
            and math.isfinite(fix.velocity_sigma)
            and fix.velocity_sigma > 0
        )
        self.track = replace(
            fix,
            sigma_m=min(fix.sigma_m, MAX_PRIOR_SIGMA_M),
            velocity_en=fix.velocity_en if known else (0.0, 0.0),
            velocity_sigma=fix.velocity_sigma if known else RESUMED_UNKNOWN_VELOCITY_SIGMA,
            source="resumed",
        )
        self.streak = 0
        return True

    def add_fix(self, fix: Prior) -> None:
        """Our own fix (source ``visual``): the track from now on.

        It continues the streak when it lies within ``consistency_k`` combined
        sigmas of the track before it, carried to its stamp, and that track was a
        fix at most ``track_over_gnss_s`` old; otherwise a streak starts with it.
        """
        before = self.track
        continues = False
        if before is not None and before.source == "visual":
            age_s = (fix.stamp_ns - before.stamp_ns) / NS
            if 0 < age_s <= self.cfg.track_over_gnss_s:
                continues = _near(self.propagate(before, fix.stamp_ns), fix, self.cfg.consistency_k)
        # only the threshold matters: a streak counts no further
        cap = max(self.cfg.track_over_gnss_fixes, 1)
        self.streak = min(self.streak + 1, cap) if continues else 1
        self.track = fix

    def confirm_jump(self, landing: Prior) -> bool:
        """Whether a jump off our track to ``landing`` may go through now.

        A relocalisation resets the autopilot's EKF onto our fix. One frame that
        is not where the aircraft is (a stale frame re-stamped by a camera driver,
        a look-alike cleared by the gate) would reset it twice: away, and back with
        the next frame. So a jump goes through only when the one before it, held,
        at most ``jump_confirm_s`` earlier, carried with the track's velocity
        (``landing`` carries it), lands within ``jump_sigma_k`` combined sigmas
        (or ``min_jump_m``) of this one; otherwise this one is held. A fix back on
        the track forgets a held jump (:meth:`forget_jump`). ``jump_confirm_s`` 0:
        every jump at once.
        """
        cfg = self.cfg
        held, self._held_jump = self._held_jump, None
        if cfg.jump_confirm_s <= 0:
            return True
        if held is not None and 0 < landing.stamp_ns - held.stamp_ns <= cfg.jump_confirm_s * NS:
            was = self.propagate(held, landing.stamp_ns)
            if _near(was, landing, cfg.jump_sigma_k, cfg.min_jump_m):
                return True
        self._held_jump = landing
        return False

    def forget_jump(self) -> None:
        """A fix was accepted: a jump still held was not the aircraft's."""
        self._held_jump = None

    def prior_at(self, stamp_ns: int, own: Prior | None = None) -> Prior | None:
        """The prior at ``stamp_ns``.

        Candidates: our own track (``own``, the last frame carried by
        registration, else the last fix dead-reckoned) and the FC's GNSS while
        it is healthy. With the GNSS unhealthy our track is the prior (a seed or a
        resumed fix only while it is tighter than the FC's fused position), else
        the GNSS's last position. With it healthy:

        - where they agree within ``consistency_k`` combined sigmas, the tighter
          one: a degraded GNSS (tens to hundreds of metres) does not widen the
          search around a track that knows better;
        - where they disagree, our track while it :meth:`holds` (its last fix
          recent), else the GNSS. A spoofed GNSS reports itself healthy and
          drags its position off; searched around it the truth soon falls
          outside the window and no frame is fixed again. A track that holds is
          ``contested``: a match must clear the gate as if nothing corroborated
          it, and until ``track_over_gnss_fixes`` fixes came in a row the search
          also reaches the GNSS's position (``rival_m``, as far as the search may
          reach). So a wrong fix that beat a right GNSS can neither carry itself
          on weak matches nor hide the truth from the next window; a track of
          fixes in a row stops paying for the wider search.
        """
        track = own
        if track is None and self.track is not None:
            track = self.propagate(self.track, stamp_ns)
        base = self.gnss_at(stamp_ns)
        gnss = self.propagate(base, stamp_ns) if base is not None else None
        if self.healthy_at(stamp_ns) and gnss is not None:
            if track is not None and track.source in OWN_TRACK:
                limit = self.cfg.consistency_k * math.hypot(track.sigma_m, gnss.sigma_m)
                apart = _apart_m(gnss, track)
                if apart <= limit:
                    if track.sigma_m < gnss.sigma_m:
                        return track
                elif self.holds(stamp_ns):
                    sure = self.streak >= self.cfg.track_over_gnss_fixes
                    return replace(track, contested=True, rival_m=0.0 if sure else apart)
            return gnss
        fc = self._fc.at_or_before(stamp_ns)
        estimate = self.propagate(fc[1], stamp_ns) if fc is not None else None
        if track is not None:
            # a seed or a resumed fix carried so long that it has grown wider than
            # the FC's fused position gives way to it; our own track never does
            if track.source in OWN_TRACK or estimate is None or track.sigma_m <= estimate.sigma_m:
                return track
            return estimate
        if gnss is None or (estimate is not None and estimate.sigma_m < gnss.sigma_m):
            return estimate
        return gnss

    def holds(self, stamp_ns: int) -> bool:
        """Whether our track holds against a disagreeing GNSS at ``stamp_ns``: it is a
        fix at most ``track_over_gnss_s`` from the frame (and holding is on)."""
        fix = self.track
        return (
            self.cfg.track_over_gnss_fixes > 0
            and fix is not None
            and fix.source == "visual"
            and abs(stamp_ns - fix.stamp_ns) <= self.cfg.track_over_gnss_s * NS
        )

    def gnss_offset_m(self, stamp_ns: int, latitude: float, longitude: float) -> float | None:
        """How far a position at ``stamp_ns`` is from the healthy GNSS there (propagated);
        None while the GNSS is unhealthy or has not been heard."""
        base = self.gnss_at(stamp_ns)
        if base is None or not self.healthy_at(stamp_ns):
            return None
        g = self.propagate(base, stamp_ns)
        e, n = LocalFrame(g.latitude, g.longitude).to_en(latitude, longitude)
        return math.hypot(e, n)

    def propagate(self, base: Prior, stamp_ns: int) -> Prior:
        """``base`` dead-reckoned to ``stamp_ns``, its sigma grown with the time."""
        dt = (stamp_ns - base.stamp_ns) / NS
        de, dn = self._dead_reckon(base, stamp_ns)
        lat, lon = LocalFrame(base.latitude, base.longitude).to_latlon(de, dn)
        adt = abs(dt)
        sigma = math.sqrt(
            base.sigma_m**2
            + (base.velocity_sigma * adt) ** 2
            + (0.5 * self.cfg.accel_sigma * adt * adt) ** 2
        )
        source = base.source if base.source != "visual" or adt < 1.5 else "visual_dead_reckoning"
        return Prior(stamp_ns, lat, lon, sigma, base.velocity_en, base.velocity_sigma, source)

    def _dead_reckon(self, base: Prior, stamp_ns: int) -> tuple[float, float]:
        """Displacement since ``base``: its velocity, turned with the aircraft's heading.

        A fixed-wing in a turn keeps its speed and turns its course with its
        heading (the crab angle of the wind stays as it was at ``base``), so the
        velocity is rotated by the heading change the autopilot reports, step by
        step; without attitude it is extrapolated straight.
        """
        dt = (stamp_ns - base.stamp_ns) / NS
        ve, vn = base.velocity_en
        if dt <= 0.5 or (ve == 0.0 and vn == 0.0):
            return ve * dt, vn * dt
        r0 = self._attitude.nearest(base.stamp_ns)
        if r0 is None:
            return ve * dt, vn * dt
        yaw0 = yaw_enu(r0)
        steps = min(200, max(2, int(dt / 0.25)))
        h = dt / steps
        de = dn = 0.0
        for k in range(steps):
            t = base.stamp_ns + int((k + 0.5) * h * NS)
            r = self._attitude.nearest(t)
            turn = (yaw_enu(r) - yaw0) if r is not None else 0.0
            c, s = math.cos(turn), math.sin(turn)
            de += (c * ve - s * vn) * h
            dn += (s * ve + c * vn) * h
        return de, dn


def _apart_m(a: Prior, b: Prior) -> float:
    """Horizontal distance between two priors' positions, m."""
    e, n = LocalFrame(a.latitude, a.longitude).to_en(b.latitude, b.longitude)
    return math.hypot(e, n)


def _near(a: Prior, b: Prior, k: float, floor_m: float = 0.0) -> bool:
    """Whether ``a`` and ``b`` lie within ``k`` combined sigmas (or ``floor_m``)."""
    return _apart_m(a, b) <= max(floor_m, k * math.hypot(a.sigma_m, b.sigma_m))


class LostClock:
    """How long frames have been searched without a fix, and the wider prior that earns.

    Frames searched for more than ``after_s`` without a fix, each within
    ``after_s`` of the one before, are lost: a prior from the FC's GNSS (or its
    fused position, :data:`WIDENED`) is then also searched with its sigma widened
    by ``growth_mps`` per second beyond that (up to ``max_sigma_m``), once the
    search around it has failed. A GNSS that claims metres but is wrong (spoofed
    before any fix of ours, or dragged off while we could not see the ground) is
    so searched ever wider until a frame is fixed where it really is, while a
    frame that its own window fixes is judged there, not at a wider window's
    stricter gate. Our own track's
    sigma already grows as it is carried; a gap in the frames (the camera off, a
    bench of unrelated frames) starts the count again.

    ``searches`` counts the widened searches of the current run (:meth:`searched`):
    each is one more draw of the window's chance peaks, so the gate asks more of
    the n-th (:func:`.gate.searches_extra`).
    """

    def __init__(self, after_s: float, growth_mps: float) -> None:
        self.after_s = after_s
        self.growth_mps = growth_mps
        self._run: tuple[int, int] | None = None  # first and last frame since the last fix
        self.searches = 0  # widened searches made in this run

    def note_frame(
        self, stamp_ns: int, prior: Prior, max_sigma_m: float, *, least_sigma_m: float = 0.0
    ) -> Prior | None:
        """A frame about to be searched around ``prior``: the widened prior to search
        with when that fails, or None (not lost, not the GNSS, or no wider). The
        sigmas the search window's bounds stand for clamp it: up to ``max_sigma_m``,
        and no wider than ``least_sigma_m`` (the least window) is no wider at all."""
        run = self._run
        if run is None or abs(stamp_ns - run[1]) > self.after_s * NS:
            run = (stamp_ns, stamp_ns)  # a gap, or the first frame since a fix
            self.searches = 0
        self._run = (run[0], stamp_ns)
        lost_s = (stamp_ns - run[0]) / NS - self.after_s
        if prior.source not in WIDENED or lost_s <= 0 or self.growth_mps <= 0:
            return None
        grown = min(math.hypot(prior.sigma_m, self.growth_mps * lost_s), max_sigma_m)
        return replace(prior, sigma_m=grown) if grown > max(prior.sigma_m, least_sigma_m) else None

    def searched(self) -> int:
        """A widened search is made: how many this run has made, this one included."""
        self.searches += 1
        return self.searches

    def note_fix(self) -> None:
        """A frame was fixed: no longer lost."""
        self._run = None
        self.searches = 0
