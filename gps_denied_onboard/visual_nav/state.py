"""What the estimator knows besides the frame: attitude, height and the prior.

Each buffer is fed from the autopilot's stream (via the node) and answered at
a frame's capture stamp. Nothing here reads a clock: every sample carries its
stamp and every question names the time it is about.

Height above ground, and its error budget
-----------------------------------------
With a rangefinder that the FC reports (fresh, in range, near vertical), the
height is its reading times the cosine of the tilt: a few centimetres to
decimetres. Without one, the height is the altitude above mean sea level minus
the ground elevation at home, which assumes the ground under the aircraft is
as high as at home. Its error is the barometer's drift (1-3 m over a flight)
plus the terrain's departure from the home elevation (on the North-Dakota
farmland of the sample, +-5 m; in hills, tens of metres). The matcher estimates
a height scale factor itself and the estimator reports the scale it found: a
search refines 0.90-1.10 of the flat-ground height, and goes a rung further out
where it presses past that (:mod:`.search`: 0.67-1.49 with two rungs); a frame
alone within ``track_window_s`` of a fix starts from that fix's scale, so it
follows ground that rises or falls under the aircraft.

What a rise costs (``visual_fix_accuracy.terrain``, the GNSS denied, the ground
rising by a fifth of the height over 40 s or 10 s, the three cross-year pairs,
276 frames each): 1 km frames from 500 m followed it (92 / 88 % fixed against 96 %
over flat ground, p95 5.7 / 5.8 m, none over 30 m off). Stitched 400 m
frames from 200 m hold frames of 16 s, taken from heights up to 8 % (or the whole
fifth) apart: matched as one, the patch's scale lagged the newest frame's by 10-20
%, and its nadir, 300-400 m along the patch from its bulk, went tens of metres off
(13 / 23 fixes over 30 m off, none over flat ground). Registration now measures
the zoom between frames and the patch is built at its newest frame's scale
(:mod:`.zoom`): 6 / 3 over 30 m off, all 6 from one 11-year flight that went 75 m
off without it (49 m with it); 86 / 76 % fixed (89 / 63 % before). Where the ground under a low
flight climbs or falls steeply, a rangefinder is still what keeps the height.

The ground elevation is, first, the one configured; else the FC's home
altitude (HOME_POSITION, which fc_bridge asks for); else the altitude learned
while the FC said it was disarmed. A node restarted in flight without a
rangefinder has only the FC's home to measure from.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Generic, TypeVar

import cv2
import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.errors import FrameRejected

F64 = NDArray[np.float64]
NS = 1_000_000_000
T = TypeVar("T")


class StampedSeries(Generic[T]):
    """Samples kept in stamp order for ``keep_s``, whatever order they arrived in.

    Why: the estimator answers each frame from the samples around its capture
    stamp, never from whichever sample happened to arrive last. The FC stream
    goes on while a frame waits for its attitude and is matched, so "the
    newest" depends on the machine's speed; "the one at the stamp" does not, and
    a replay at any rate then gives the fixes of the flight.
    """

    def __init__(self, keep_s: float = 60.0) -> None:
        self._t: list[int] = []
        self._v: list[T] = []
        self._keep = int(keep_s * NS)

    def add(self, stamp_ns: int, value: T) -> None:
        """Insert in stamp order (after any sample of the same stamp: the later word wins).

        The lists are changed in place, never rebound (:attr:`stamps` hands them out).
        """
        i = bisect.bisect_right(self._t, stamp_ns)
        self._t.insert(i, stamp_ns)
        self._v.insert(i, value)
        # what is older than keep_s before the sample just added, not before the newest:
        # one sample stamped far ahead (a bad stamp) must not make every later, true
        # sample "too old" and drop it on arrival
        cut = bisect.bisect_left(self._t, stamp_ns - self._keep)
        if cut:
            del self._t[:cut], self._v[:cut]

    def clear(self) -> None:
        self._t.clear()
        self._v.clear()

    @property
    def stamps(self) -> list[int]:
        """The stamps, ascending (the series' own list: read, never change it)."""
        return self._t

    @property
    def values(self) -> list[T]:
        """The values, in stamp order (the series' own list: read, never change it)."""
        return self._v

    def __len__(self) -> int:
        return len(self._t)

    def latest(self) -> tuple[int, T] | None:
        """The sample with the newest stamp."""
        return (self._t[-1], self._v[-1]) if self._t else None

    def around(self, stamp_ns: int) -> tuple[tuple[int, T] | None, tuple[int, T] | None]:
        """The last sample at or before ``stamp_ns`` and the first one after it."""
        i = bisect.bisect_right(self._t, stamp_ns)
        before = (self._t[i - 1], self._v[i - 1]) if i > 0 else None
        after = (self._t[i], self._v[i]) if i < len(self._t) else None
        return before, after

    def at_or_before(self, stamp_ns: int) -> tuple[int, T] | None:
        """The last sample at or before ``stamp_ns``, else the first one after it."""
        before, after = self.around(stamp_ns)
        return before if before is not None else after


def is_rotation(r: F64, tol: float = 1e-3) -> bool:
    """Whether ``r`` is a proper rotation: 3x3, finite, orthonormal within ``tol``, det +1.

    Why ask: a quaternion taken from anything else is still a unit quaternion
    (a zero matrix becomes a half turn about z), so a bad sample would be
    used as a real attitude, not refused.
    """
    m = np.asarray(r, dtype=np.float64)
    if m.shape != (3, 3) or not np.all(np.isfinite(m)):
        return False
    if float(np.abs(m.T @ m - np.eye(3)).max()) > tol:
        return False
    return float(np.linalg.det(m)) > 0.0


def _quat_of(r: F64) -> F64:
    """Unit quaternion (x, y, z, w) of a rotation matrix."""
    m = r
    t = m[0, 0] + m[1, 1] + m[2, 2]
    if t > 0:
        s = math.sqrt(t + 1.0) * 2
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    v = np.array(q, dtype=np.float64)
    unit: F64 = v / np.linalg.norm(v)
    return unit


def _matrix_of(q: F64) -> F64:
    x, y, z, w = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def slerp(q0: F64, q1: F64, t: float) -> F64:
    """Spherical interpolation between unit quaternions (shortest arc)."""
    d = float(np.dot(q0, q1))
    if d < 0:
        q1, d = -q1, -d
    if d > 0.9995:
        q = q0 + t * (q1 - q0)
        unit: F64 = q / np.linalg.norm(q)
        return unit
    th = math.acos(d)
    return (math.sin((1 - t) * th) * q0 + math.sin(t * th) * q1) / math.sin(th)


#: a body rate past this (rad/s, about 570 deg/s) is no aircraft's: the sample is kept
#: without its rates
MAX_BODY_RATE = 10.0


def hermite_rotation(r0: F64, w0: F64, r1: F64, w1: F64, *, dt_s: float, u: float) -> F64:
    """The rotation a fraction ``u`` of the way from ``r0`` to ``r1`` (``R_world_from_body``
    ``dt_s`` apart), on the cubic whose ends also have the body rates ``w0`` and ``w1``
    (rad/s, each in its own body frame).

    Why: between two attitude samples a vibrating airframe does not turn at a steady
    rate, and the autopilot's ATTITUDE carries its gyros' rates beside the angles. On
    the sample flight (25 Hz ATTITUDE, 2-7 Hz vibration of 0.4 deg RMS) a camera frame
    halfway between two samples is 0.08 deg RMS off in roll with slerp, 0.05 deg on
    this curve: 0.7 against 0.45 m at 500 m above ground. It is the rotation vector
    from ``r0`` on a cubic Hermite curve: exact for a steady rate, as slerp is.
    """
    rel = r0.T @ r1
    phi = cv2.Rodrigues(rel)[0].ravel()
    w1_in_0 = rel @ w1  # the end rate in the first body frame
    h10 = u**3 - 2 * u**2 + u
    h01 = -2 * u**3 + 3 * u**2
    h11 = u**3 - u**2
    theta = h10 * dt_s * w0 + h01 * phi + h11 * dt_s * w1_in_0
    return np.asarray(r0 @ cv2.Rodrigues(theta.reshape(3, 1))[0], dtype=np.float64)


class AttitudeBuffer:
    """Recent ``R_ENU_from_FLU`` samples, with the body rates where the autopilot gave
    them; answers at a stamp by slerp, or between two samples that both have rates on
    the curve those rates shape (:func:`hermite_rotation`).

    A frame is refused (``stale_attitude``) when no sample lies within
    ``max_gap_s`` on each side of its stamp, or, at the newest end, when the
    newest sample is older than ``max_age_s`` (no extrapolation beyond that).
    """

    def __init__(
        self, *, max_age_s: float = 0.1, max_gap_s: float = 0.25, keep_s: float = 120.0
    ) -> None:
        # unit quaternions, and the body rates (FLU, rad/s) or None
        self._series: StampedSeries[tuple[F64, F64 | None]] = StampedSeries(keep_s)
        self._t = self._series.stamps
        self._s = self._series.values
        self._max_age = int(max_age_s * NS)
        self._max_gap = int(max_gap_s * NS)

    def add(
        self,
        stamp_ns: int,
        r_enu_from_flu: F64,
        rates_flu: tuple[float, float, float] | None = None,
    ) -> None:
        """One attitude sample, with the body rates (FLU, rad/s) if known; one that is
        not a rotation is dropped (:func:`is_rotation`), rates that are not finite or
        past :data:`MAX_BODY_RATE` are not kept."""
        if not is_rotation(r_enu_from_flu):
            return
        w: F64 | None = None
        if rates_flu is not None:
            w = np.asarray(rates_flu, dtype=np.float64)
            if w.shape != (3,) or not np.all(np.isfinite(w)) or np.abs(w).max() > MAX_BODY_RATE:
                w = None
        self._series.add(stamp_ns, (_quat_of(r_enu_from_flu), w))

    def __len__(self) -> int:
        return len(self._t)

    def nearest(self, stamp_ns: int) -> F64 | None:
        """The sample closest to ``stamp_ns`` whatever its age (dead reckoning), or None."""
        if not self._t:
            return None
        i = bisect.bisect_left(self._t, stamp_ns)
        if i == len(self._t) or (i > 0 and stamp_ns - self._t[i - 1] < self._t[i] - stamp_ns):
            i -= 1
        return _matrix_of(self._s[i][0])

    def at(self, stamp_ns: int) -> F64:
        """``R_ENU_from_FLU`` at ``stamp_ns``.

        Raises:
            FrameRejected: ``no_attitude`` or ``stale_attitude``.
        """
        if not self._t:
            raise FrameRejected("no_attitude", "no attitude received")
        i = bisect.bisect_left(self._t, stamp_ns)
        if i < len(self._t) and self._t[i] == stamp_ns:
            return _matrix_of(self._s[i][0])
        if i == len(self._t):
            age = stamp_ns - self._t[-1]
            if age > self._max_age:
                raise FrameRejected(
                    "stale_attitude", "newest attitude too old", age_ms=round(age / 1e6, 1)
                )
            return _matrix_of(self._s[-1][0])
        if i == 0:
            ahead = self._t[0] - stamp_ns
            if ahead > self._max_age:
                raise FrameRejected(
                    "stale_attitude", "no attitude before the frame", ahead_ms=round(ahead / 1e6, 1)
                )
            return _matrix_of(self._s[0][0])
        t0, t1 = self._t[i - 1], self._t[i]
        if t1 - t0 > self._max_gap:
            raise FrameRejected(
                "stale_attitude", "gap in attitude", gap_ms=round((t1 - t0) / 1e6, 1)
            )
        return self._between(i, stamp_ns)[0]

    def _between(self, i: int, stamp_ns: int) -> tuple[F64, F64 | None]:
        """The rotation at ``stamp_ns`` between samples ``i - 1`` and ``i``: on the
        curve their rates shape, with the plain slerp beside it; or the slerp alone
        (and None) where either end has no rates."""
        t0, t1 = self._t[i - 1], self._t[i]
        (q0, w0), (q1, w1) = self._s[i - 1], self._s[i]
        u = (stamp_ns - t0) / (t1 - t0)
        plain = _matrix_of(slerp(q0, q1, u))
        if w0 is None or w1 is None:
            return plain, None
        curve = hermite_rotation(_matrix_of(q0), w0, _matrix_of(q1), w1, dt_s=(t1 - t0) / NS, u=u)
        return curve, plain

    def interpolation_spread(self, stamp_ns: int) -> tuple[float, float]:
        """How far the gyro-shaped curve and the plain slerp disagree at ``stamp_ns``
        (radians): ``(tilt, yaw)``, the world-frame rotation between the two split
        into its horizontal part (which moves a nadir) and its vertical one (which
        turns a view about it). Zero on a sample, outside the buffer, or where
        either end has no rates.

        Why: between samples a vibrating airframe's attitude is only as good as the
        interpolation, and the gyros say how far it bends: a frame halfway between
        two samples is off by up to the curve's departure from the steady turn,
        one on a sample by nothing. On the sample flight, whose frames fall
        alternately halfway between two 25 Hz samples and on one, the velocities'
        worst errors came from the halfway frames.
        """
        t = self._t
        i = bisect.bisect_left(t, stamp_ns)
        if i == 0 or i == len(t) or t[i] == stamp_ns or t[i] - t[i - 1] > self._max_gap:
            return 0.0, 0.0
        curve, plain = self._between(i, stamp_ns)
        if plain is None:
            return 0.0, 0.0
        v = cv2.Rodrigues(curve @ plain.T)[0].ravel()
        return math.hypot(float(v[0]), float(v[1])), abs(float(v[2]))


@dataclass(frozen=True)
class HeightSample:
    """Height above the ground under the aircraft, and that ground's elevation.

    ``ground_msl`` places a fix's altitude: ground + the height the match
    measured. Over flat ground from the barometer it is the home elevation;
    under a rangefinder it is the FC's altitude minus the range (the terrain
    there, which may be a hill above home), so the fix carries the FC's
    altitude and not home + the range.
    """

    height_m: float
    sigma_m: float
    source: str  # "rangefinder" | "baro_flat_ground"
    ground_msl: float


class HeightSource:
    """Height above ground at a stamp: rangefinder when fresh, else AMSL - ground elevation."""

    def __init__(
        self,
        *,
        ground_elevation_msl: float | None,
        max_age_s: float = 0.5,
        flat_ground_sigma_m: float = 8.0,
        rangefinder_sigma_m: float = 0.3,
        max_height_m: float = 1500.0,
    ) -> None:
        self.ground_elevation_msl = ground_elevation_msl
        #: configured by the operator: neither the FC's home nor the ground learns over it
        self.ground_configured = ground_elevation_msl is not None
        self.max_height_m = max_height_m
        self._alt: StampedSeries[float] = StampedSeries(keep_s=30.0)
        self._range: StampedSeries[float] = StampedSeries(keep_s=30.0)
        self._max_age = int(max_age_s * NS)
        self._flat_sigma = flat_ground_sigma_m
        self._range_sigma = rangefinder_sigma_m

    def add_altitude_msl(self, stamp_ns: int, amsl: float, *, on_ground: bool = False) -> None:
        if not math.isfinite(amsl):
            return
        if self.ground_elevation_msl is None and on_ground:
            self.ground_elevation_msl = amsl  # home: learned while on the ground
        self._alt.add(stamp_ns, amsl)

    def set_home_elevation(self, amsl: float) -> bool:
        """The FC's home altitude (HOME_POSITION) becomes the ground's elevation.

        It is where the FC's own height above home is zero, so it stands over one
        learned from altitudes while disarmed, and is the only ground a node
        (re)started in flight gets; a configured elevation stands over both.
        Returns whether it was taken.
        """
        if self.ground_configured or not math.isfinite(amsl):
            return False
        self.ground_elevation_msl = amsl
        return True

    def add_range(self, stamp_ns: int, range_m: float, min_m: float, max_m: float) -> None:
        if math.isfinite(range_m) and min_m <= range_m <= max_m:
            self._range.add(stamp_ns, range_m)

    def altitude_msl(self) -> float | None:
        """The newest altitude above mean sea level."""
        newest = self._alt.latest()
        return newest[1] if newest else None

    def at(self, stamp_ns: int, tilt_cos: float) -> HeightSample:
        """Height at ``stamp_ns``; ``tilt_cos`` is the body z axis' cosine to vertical.

        Each source is taken from its samples up to the stamp, carried on along
        their line to it (a climbing aircraft gains metres between two samples),
        if within its age limit (:func:`_carried`).

        Raises:
            FrameRejected: ``no_height``: none, too old, a range with no altitude
                above sea level to place it at, or not a height a frame can
                be matched from (5 m or less, or above ``max_height_m``: an
                altitude glitch would otherwise size a map mosaic kilometres
                across, and beyond the heights the gate was calibrated for).
        """
        rng = _carried(self._range, stamp_ns, self._max_age)
        if rng is not None:
            h = rng * tilt_cos
            amsl = _carried(self._alt, stamp_ns, self._max_age * 4)
            ground = amsl - h if amsl is not None else self.ground_elevation_msl
            if ground is None:
                # started in flight with no home elevation: home + range would put
                # the fix at the range above sea level
                raise FrameRejected(
                    "no_height", "a range but no altitude above sea level to place the fix at"
                )
            return self._usable(HeightSample(h, self._range_sigma, "rangefinder", ground))
        if not len(self._alt) or self.ground_elevation_msl is None:
            raise FrameRejected("no_height", "no altitude or no ground elevation")
        alt = _carried(self._alt, stamp_ns, self._max_age * 4)
        if alt is None:
            age = _nearest_age(self._alt, stamp_ns)
            raise FrameRejected("no_height", "altitude too old", age_ms=round(age / 1e6, 1))
        h = alt - self.ground_elevation_msl
        return self._usable(
            HeightSample(h, self._flat_sigma, "baro_flat_ground", self.ground_elevation_msl)
        )

    def _usable(self, sample: HeightSample) -> HeightSample:
        h = sample.height_m
        if not math.isfinite(h) or h <= 5.0:
            raise FrameRejected("no_height", "too low above ground", height_m=round(h, 1))
        if h > self.max_height_m:
            raise FrameRejected(
                "no_height",
                f"{h:.4g} m above ground, more than max_height_m {self.max_height_m:g}",
                height_m=round(h, 1),
            )
        return sample


def _nearest_age(series: StampedSeries[float], stamp_ns: int) -> int:
    before, after = series.around(stamp_ns)
    ages = [abs(stamp_ns - s[0]) for s in (before, after) if s is not None]
    return min(ages) if ages else 0


def _carried(series: StampedSeries[float], stamp_ns: int, max_age_ns: int) -> float | None:
    """The value at ``stamp_ns`` from the samples up to it: the last one at or
    before it, carried on along the line from the one before that (a climb)
    when that is within ``max_age_ns`` too; with none before it, the first one
    after (the stream's start). None when that is not within ``max_age_ns``.
    The line is carried no further than its two samples lie apart.

    Why not between the samples either side: whether the one after has
    arrived when a frame is answered depends on the machine and on a replay's
    rate, and the height would too (a replay of the sample flight ran 0.4-1.6 m
    apart in its climb from run to run). The FC's streams come every 20-200 ms,
    so the line spans at most one of those and follows a steady climb exactly.
    """
    t, v = series.stamps, series.values
    i = bisect.bisect_right(t, stamp_ns)
    if i == 0:
        if t and t[0] - stamp_ns <= max_age_ns:
            return v[0]
        return None
    t1, v1 = t[i - 1], v[i - 1]
    if stamp_ns - t1 > max_age_ns:
        return None
    if i >= 2 and stamp_ns - t[i - 2] <= max_age_ns and t1 > t[i - 2]:
        # no further than the two samples lie apart: a stream that stalls holds its
        # last climb's step, not a climb carried on for seconds
        step = min(stamp_ns - t1, t1 - t[i - 2])
        return v1 + (v1 - v[i - 2]) * step / (t1 - t[i - 2])
    return v1


@dataclass
class Prior:
    """Where the aircraft is believed to be before the frame is matched.

    ``sigma_m`` is the 1-sigma horizontal uncertainty; the search radius is a
    multiple of it.
    """

    stamp_ns: int
    latitude: float
    longitude: float
    sigma_m: float
    velocity_en: tuple[float, float]
    velocity_sigma: float
    #: "fc_gnss" | "fc_estimate" | "seed" | "resumed" | "visual" | "visual_dead_reckoning"
    #: | "visual_odometry"
    source: str
    #: our own track, taken over a healthy GNSS that disagrees with it
    #: (PriorTracker.holds): searched around, but it corroborates no match
    contested: bool = False
    #: how far from a contested track that GNSS is (m): the search reaches it too
    rival_m: float = 0.0
