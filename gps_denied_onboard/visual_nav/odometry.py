"""Frame-to-frame registration: motion between frames, and frames stitched into one patch.

Consecutive frames see mostly the same ground, minutes (not years) apart, so
registering one rectified frame on the previous is easy and precise where
matching against the map is hard. It gives:

- the **displacement** of the nadir between captures, hence a velocity with
  its covariance (what PX4 needs beside the position), and a prior between
  map fixes far tighter than dead reckoning;
- a **track** of recent frames in one local frame, so that several small
  footprints are **stitched** into one larger patch (:func:`stitch`), which
  the matcher then matches as one view (:class:`.views.PatchView`);
- for a frame that is stitched, the **zoom** from the previous one (:mod:`.zoom`):
  where the ground rises or falls under the aircraft and no rangefinder says so,
  frames rectified at the same reported height show it at different sizes, and
  the patch is built at its newest frame's.

Both frames are rectified north-up at the same resolution with the same
heading correction and height scale, so registration is a pure translation:
ZNCC of their orientation fields around the predicted shift, refined to
sub-pixel. Its error model: ``sigma_px / score`` pixels, plus the change of
the autopilot's attitude error between the two captures (``height *
tan(sigma_rel)`` for each), which registration cannot see. The two differ in
kind. The first is each registration's own and adds up along the track; the
second is each frame's own (where the attitude put that frame's nadir), so
over several registrations it cancels but for the two ends: a velocity over
two seconds carries the same attitude error as one over a single frame pair,
spread over twice the time. On the sample flight (500 m above ground, 2 frames
a second, scores 0.94-0.98) the registrations' errors against the truth were
0.8 m per axis on straight legs and 1.0 m in the banked turns, mostly
alternating in sign from frame to frame (runs of one sign over 2-3 frames
there made the velocities' tail, p95 3.0 and p99 4.5 m/s, which neither window helps).

Each placement is judged on the ground *both* frames see
(:func:`.correlate.overlap_zncc`). Normalised under the current frame's mask
alone, as a map match is, the previous frame's edge counted as zero field
where the shifted frame ran past it, and pulled the peak toward zero shift: a
frame 200 m above ground moved 10-30 m registered 0.3-0.9 m short. On the
synthetic world (200 and 500 m above ground) the along-track ratio went from
0.981 to 0.998, the RMS error from 0.52 to 0.35 m at 200 m and from 0.27 to
0.20 m at 500 m. The sigmas fitted on the short registration were fitted
again (``config/visual_nav.yaml``) and came out where they were.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.correlate import find_peak, overlap_zncc, prepare_template
from gps_denied_onboard.visual_nav.features import field_valid, orientation_field
from gps_denied_onboard.visual_nav.rectify import RectifiedFrame
from gps_denied_onboard.visual_nav.registration_noise import NoiseConfig, RegistrationNoise
from gps_denied_onboard.visual_nav.uncertainty import corrected
from gps_denied_onboard.visual_nav.velocity_leads import (
    HEADING_AGREE_SIGMAS,
    LONG_WINDOW_LIMIT,
    course_turn,
    innovation,
    speed_lead,
    steadier,
    turn_lead,
)
from gps_denied_onboard.visual_nav.zoom import zoom_between

F32 = NDArray[np.float32]
NS = 1_000_000_000

#: a registration's zoom (:mod:`.zoom`) is off by this much (log, 1-sigma): 0.16 % RMS
#: between 400 m frames of the 2014 calibration flights over flat ground, 0.25 % where
#: the ground rose by a fifth of the height over 10 s (seeds 188000 and 189000, 320 pairs)
ZOOM_SIGMA = 0.002
#: a patch takes the zoom since a frame less this many of its sigmas (its noise adds up
#: over the registrations between). Taken whole, the noise moved flat flights' fixes
#: (2014 calibration flights, seed 188000, 4 per pair, 400 m frames: median 3.48 /
#: 3.04 m, p95 7.54 / 7.11 m without zooms; 3.85 / 3.10 and 7.61 / 7.98 whole; 3.60 /
#: 3.01 and 7.36 / 7.15 at 1; 3.70 / 3.00 and 7.56 / 7.13 at 2); over rising ground 1
#: and 2 kept about as much (p95 12.0 / 8.9 and 8.9 / 8.4 m at 1, 12.6 / 8.7 and 9.9 /
#: 8.3 at 2: .zoom's docstring). 2: at 1 the main job's velocities (the sample flight,
#: farmland +-5 m under 500 m) came out 98.7 % within 3 sigma east (99.8 % without
#: zooms, 99.4 % at 2), at a median error of 0.60 m/s (0.53, 0.57)
ZOOM_SHRINK_SIGMAS = 2.0


@dataclass(frozen=True)
class OdometryConfig:
    """Frame-to-frame settings (the node's ``odometry_*`` and ``stitch_*`` parameters)."""

    enabled: bool = True
    search_m: float = 60.0
    min_score: float = 0.35
    min_margin: float = 0.05
    sigma_px: float = 0.07
    attitude_rel_sigma_deg: float = 0.05
    yaw_rel_sigma_deg: float = 0.1
    interpolation_k: float = 1.0
    max_gap_s: float = 1.5
    velocity_window_s: float = 1.0
    velocity_long_window_s: float = 2.0  # not above velocity_window_s: no long window
    history_s: float = 40.0
    stitch_below_area_m2: float = 300_000.0
    stitch_target_area_m2: float = 400_000.0
    turn_lead: bool = True
    heading_lead: bool = True
    stitch_zoom: bool = True
    noise: NoiseConfig = field(default_factory=NoiseConfig)


@dataclass(frozen=True)
class Displacement:
    """The current nadir minus the previous one (metres east, north), 1-sigma per axis."""

    de: float
    dn: float
    sigma_m: float
    score: float
    margin: float


def seen_area_m2(view: RectifiedFrame) -> float:
    """The ground ``view`` shows (m^2)."""
    return float(np.count_nonzero(view.mask)) * view.resolution_m**2


@dataclass(frozen=True)
class TrackEntry:
    """One registered frame: its rectified image and where its nadir is on the track."""

    stamp_ns: int
    view: RectifiedFrame
    e: float  # nadir east of the track's origin (metres)
    n: float
    var: float  # registrations' variance per axis accumulated since the track's first frame (m^2)
    height_m: float
    own_var: float = 0.0  # this frame's own placement variance per axis: its attitude's (m^2)
    heading: float | None = None  # the autopilot's heading at the capture (ENU, radians)
    #: log of this frame's true ground size per pixel over the track's first frame's,
    #: as the zooms between frames measured it (:mod:`.zoom`); 0 where none was
    log_zoom: float = 0.0

    @property
    def area_m2(self) -> float:
        return seen_area_m2(self.view)


def placement_var(
    cfg: OdometryConfig,
    view: RectifiedFrame,
    height_m: float,
    interpolation: tuple[float, float] = (0.0, 0.0),
) -> float:
    """A frame's own placement variance per axis (m^2): how far the autopilot's
    attitude error at its capture, changing from frame to frame, moves its nadir
    against the ground the frame shows.

    Roll and pitch move the nadir by ``height * tan`` of their error. Yaw turns
    the view about its nadir, which moves the ground it shows by the footprint's
    lever (its centroid's distance from the nadir) times the error: nothing
    looking straight down, hundreds of metres in a 20 deg bank at 500 m (past
    500 tan 20 deg = 182 m: a wide lens's far side reaches further than its
    near side). On the sample flight the FC's yaw error changed by 0.14 deg RMS
    over half a second (roll and pitch by 0.03-0.04 deg), and its velocities'
    largest errors were in its banked turns.

    ``interpolation`` (radians, tilt and yaw:
    :meth:`.state.AttitudeBuffer.interpolation_spread`) is how far the attitude
    at the capture depended on interpolating between samples of a vibrating
    airframe; ``interpolation_k`` times it joins each term.
    """
    ox, oy = view.centre_offset_px
    lever = math.hypot(ox, oy) * view.resolution_m
    k = cfg.interpolation_k
    terms = (
        height_m * math.tan(math.radians(cfg.attitude_rel_sigma_deg)),
        height_m * math.tan(k * interpolation[0]),
        lever * math.tan(math.radians(cfg.yaw_rel_sigma_deg)),
        lever * math.tan(k * interpolation[1]),
    )
    return sum(x * x for x in terms)


def prev_field_of(prev: RectifiedFrame) -> tuple[tuple[F32, ...], float]:
    """The orientation field :func:`register` correlates ``prev``'s side on, and its
    texture."""
    return orientation_field(prev.image, prev.mask, harmonics=1)


def register(
    prev: RectifiedFrame,
    cur: RectifiedFrame,
    predicted: tuple[float, float],
    search_m: float,
    *,
    prev_field: tuple[tuple[F32, ...], float] | None = None,
) -> tuple[float, float, float, float] | None:
    """Where ``cur``'s nadir is relative to ``prev``'s: ``(de, dn, score, margin)``.

    ``predicted`` is the expected displacement (east, north metres); the
    answer is searched within ``search_m`` of it. None when the frames do not
    overlap or share no texture. ``prev_field``: :func:`prev_field_of` ``prev``,
    where the caller registers several views on the same frame.
    """
    if prev.resolution_m != cur.resolution_m:
        raise ValueError("frames rectified at different resolutions")
    res = cur.resolution_m
    pch, ptex = prev_field if prev_field is not None else prev_field_of(prev)
    cch, ctex = orientation_field(cur.image, cur.mask, harmonics=1)
    if ptex <= 0.0 or ctex <= 0.0:
        return None
    tpl = prepare_template(cch, field_valid(cur.mask))
    if tpl.count < 64 or tpl.energy <= 0.0:
        return None
    ht, wt = tpl.shape
    rad = max(2, math.ceil(search_m / res))
    # placement (ox, oy): cur pixel (i, j) lies on prev pixel (i + ox, j + oy)
    ox_p = prev.nadir_col + predicted[0] / res - cur.nadir_col
    oy_p = prev.nadir_row - predicted[1] / res - cur.nadir_row
    x0 = math.floor(ox_p) - rad
    y0 = math.floor(oy_p) - rad
    span = 2 * rad + 1
    hp, wp = prev.mask.shape
    win_w, win_h = wt + span - 1, ht + span - 1
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(wp, x0 + win_w), min(hp, y0 + win_h)
    if sx1 - sx0 < 8 or sy1 - sy0 < 8:
        return None

    def window(plane: NDArray[np.generic]) -> F32:
        """``plane`` of the previous frame over the placements, zero beyond it."""
        w = np.zeros((win_h, win_w), np.float32)
        w[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = plane[sy0:sy1, sx0:sx1]
        return w

    # judged on the ground both frames see: a quarter of the frame at least
    score = overlap_zncc(
        tuple(window(ch) for ch in pch), window(field_valid(prev.mask)), tpl, 0.25 * tpl.count
    )
    pk = find_peak(score, 3.0)
    if not math.isfinite(pk.score):
        return None
    ox = x0 + pk.col
    oy = y0 + pk.row
    de = (cur.nadir_col + ox - prev.nadir_col) * res
    dn = -(cur.nadir_row + oy - prev.nadir_row) * res
    return de, dn, pk.score, pk.margin


class OdometryTrack:
    """Recent frames placed by registration, each on its predecessor."""

    def __init__(self, cfg: OdometryConfig) -> None:
        self.cfg = cfg
        self._frames: deque[TrackEntry] = deque()
        self.registrations = 0
        self.failures = 0
        # the registration's noise as measured in flight (registration_noise): it
        # describes the airframe, so it outlives a broken track
        self.noise = RegistrationNoise(cfg.noise)
        # velocity() of the track as it stands: the estimator asks twice a frame (the
        # odometry prior, the fix), and it leads two windows each time
        self._velocity: tuple[tuple[float, float], float] | None = None
        self._velocity_known = False

    @property
    def frames(self) -> tuple[TrackEntry, ...]:
        return tuple(self._frames)

    def reset(self) -> None:
        self._frames.clear()
        self._velocity_known = False

    def add(
        self,
        stamp_ns: int,
        view: RectifiedFrame,
        *,
        height_m: float,
        predicted_velocity: tuple[float, float] | None,
        interpolation: tuple[float, float] = (0.0, 0.0),
        heading: float | None = None,
    ) -> Displacement | None:
        """Register ``view`` on the last frame and append it; the displacement, or None.

        A failed registration (no overlap, too weak, too long a gap, another
        resolution) starts a new track at this frame.
        """
        cfg = self.cfg
        last = self._frames[-1] if self._frames else None
        own_var = placement_var(cfg, view, height_m, interpolation)
        disp: Displacement | None = None
        if last is not None and 0 < stamp_ns - last.stamp_ns <= cfg.max_gap_s * NS:
            dt = (stamp_ns - last.stamp_ns) / NS
            pv = predicted_velocity or (0.0, 0.0)
            same = last.view.resolution_m == view.resolution_m
            got = (
                register(last.view, view, (pv[0] * dt, pv[1] * dt), cfg.search_m) if same else None
            )
            if got is not None and got[2] >= cfg.min_score and got[3] >= cfg.min_margin:
                de, dn, score, margin = got
                sig_px = cfg.sigma_px / max(score, 0.1) * view.resolution_m
                sig_att = math.sqrt(last.own_var + own_var)
                disp = Displacement(de, dn, math.hypot(sig_px, sig_att), score, margin)
        if disp is None:
            if last is not None:
                self.failures += 1
            self._frames.clear()
            entry = TrackEntry(stamp_ns, view, 0.0, 0.0, 0.0, height_m, own_var, heading)
        else:
            self.registrations += 1
            assert last is not None
            log_zoom = last.log_zoom
            if cfg.stitch_zoom and self._stitched(view):
                z = zoom_between(last.view, view, (disp.de, disp.dn), register, prev_field_of)
                if z is not None:
                    log_zoom += math.log(z)
            entry = TrackEntry(
                stamp_ns,
                view,
                last.e + disp.de,
                last.n + disp.dn,
                last.var + sig_px**2,
                height_m,
                own_var,
                heading,
                log_zoom,
            )
        self._frames.append(entry)
        self._velocity_known = False
        while self._frames and (stamp_ns - self._frames[0].stamp_ns) > cfg.history_s * NS:
            self._frames.popleft()
        return disp

    def _stitched(self, view: RectifiedFrame) -> bool:
        """Whether a frame showing ``view`` is stitched into a patch (:meth:`stitch`)."""
        return seen_area_m2(view) < self.cfg.stitch_below_area_m2

    def velocity(self) -> tuple[tuple[float, float], float] | None:
        """Velocity of the nadir at the newest frame, and its 1-sigma per axis.

        The mean over ``velocity_long_window_s`` where the mean over
        ``velocity_window_s`` agrees with it (:func:`steadier`), else the latter:
        each frame's attitude error cancels along the track but for the window's
        two ends, so the long window halves it, and the short one follows a
        manoeuvre's onset the long one trails.
        """
        if not self._velocity_known:
            self._velocity = self._steadier_velocity()
            self._velocity_known = True
        return self._velocity

    def _steadier_velocity(self) -> tuple[tuple[float, float], float] | None:
        """:meth:`velocity`, worked out."""
        cfg = self.cfg
        short = self._window_velocity(cfg.velocity_window_s)
        if short is None:
            return None
        long_ = None
        if cfg.velocity_long_window_s > cfg.velocity_window_s:
            long_ = self._window_velocity(cfg.velocity_long_window_s)
        if long_ is None:  # no long window: nothing to measure the noise by this frame
            return short[0], short[1] * self.noise.scale()
        self.noise.add(innovation(short, long_))
        return steadier(short, long_, limit=LONG_WINDOW_LIMIT, noise_scale=self.noise.scale())

    def _window_velocity(self, window_s: float) -> tuple[tuple[float, float], float] | None:
        """The mean velocity over about ``window_s`` up to the newest frame, led.

        The mean over a window is the velocity at the window's middle: in a
        turn it trails the course by half the window's turn (a 20 deg banked
        turn at 28 m/s, 7.3 deg/s, trails 3.6 deg over 1 s, 1.8 m/s), and in an
        acceleration the speed by half the window's change.
        The autopilot's heading turns it on where the heading turns with the
        course (:meth:`_heading_led`: a fixed wing's does, to a fraction of a
        degree a frame and from a turn's first frame on); elsewhere
        :func:`turn_lead` turns it on by the course's own turn, measured from
        the window two before it (twice the turn for the same noise as the
        window just before), so that it holds for a vehicle that yaws without
        turning as for one that turns without yawing; :func:`speed_lead` does
        the same for the speed.
        """
        last = len(self._frames) - 1
        if last < 1:
            return None
        base = self._window_start(last, window_s)
        now = self._mean_velocity(base, last)
        if now is None or not self.cfg.turn_lead:
            return now
        # the course's turn: from the window before the previous one to this one
        prev = self._window_start(base, window_s) if base > 0 else 0
        first = self._window_start(prev, window_s) if prev > 0 else 0
        before = self._mean_velocity(first, prev)
        if before is None:
            return now
        f = self._frames
        between = f[last].stamp_ns + f[base].stamp_ns - f[prev].stamp_ns - f[first].stamp_ns
        lead = (f[last].stamp_ns - f[base].stamp_ns) / between
        led = None
        if self.cfg.heading_lead:
            led = self._heading_led(now, before, (first, prev, base, last))
        turned, sigma = led if led is not None else turn_lead(*now, *before, lead=lead)
        return speed_lead(
            turned, sigma, math.hypot(*before[0]), before[1], lead=lead, noise_sigma=now[1]
        )

    def _heading_led(
        self,
        now: tuple[tuple[float, float], float],
        before: tuple[tuple[float, float], float],
        windows: tuple[int, int, int, int],
    ) -> tuple[tuple[float, float], float] | None:
        """``now`` turned on by the autopilot's own heading: from its mean over the
        window to its value at the newest frame. None where a frame has no heading,
        or where the heading's turn between the two windows (``before``'s and
        ``now``'s) is not the course's within :data:`HEADING_AGREE_SIGMAS` of the
        course's noise: a multirotor that yaws without turning, or turns without
        yawing, is led by its course (:func:`turn_lead`).

        Why: the course measured on the track needs windows of it and is noisy
        (2-3 deg a window), so :func:`turn_lead` shrinks it and comes late; at a
        turn's onset and exit the velocity trailed by 2-3 m/s across the track.
        A fixed wing's course turns with its heading (their difference, the wind's
        crab, changes slowly), which the autopilot has at every frame. The
        sigma is the window's own: the heading's noise (0.1 deg) adds nothing
        worth a term."""
        first, prev, base, last = windows
        m_now = self._mean_heading(base, last)
        m_before = self._mean_heading(first, prev)
        if m_now is None or m_before is None:
            return None
        (v, sigma), (v0, sigma0) = now, before
        if math.hypot(*v) <= 2.0 * sigma or math.hypot(*v0) <= 2.0 * sigma0:
            return None  # within its noise of standing still: no course to turn
        measured = course_turn(v, sigma, v0, sigma0)
        assert measured is not None  # both move
        course, var = measured
        if (course - (m_now - m_before)) ** 2 > HEADING_AGREE_SIGMAS**2 * var:
            return None
        return corrected(v, math.degrees(-m_now), 1.0), sigma

    def _mean_heading(self, first: int, last: int) -> float | None:
        """The time-weighted mean heading over frames ``first`` to ``last``, relative
        to the newest frame's (radians); None where one has none."""
        f = self._frames
        ref = f[-1].heading
        if ref is None or last <= first:
            return None
        total = acc = 0.0
        prev_rel: float | None = None
        for i in range(first, last + 1):
            h = f[i].heading
            if h is None:
                return None
            rel = math.atan2(math.sin(h - ref), math.cos(h - ref))
            if prev_rel is not None:
                dt = (f[i].stamp_ns - f[i - 1].stamp_ns) / NS
                acc += 0.5 * (rel + prev_rel) * dt
                total += dt
            prev_rel = rel
        return acc / total if total > 0.0 else None

    def _mean_velocity(self, first: int, last: int) -> tuple[tuple[float, float], float] | None:
        """The mean velocity from frame ``first`` to frame ``last`` and its 1-sigma per
        axis (the registrations' variance between them and the two frames' own);
        None over no time."""
        a, b = self._frames[first], self._frames[last]
        dt = (b.stamp_ns - a.stamp_ns) / NS
        if dt <= 0:
            return None
        var = max(b.var - a.var, 0.0) + a.own_var + b.own_var
        return ((b.e - a.e) / dt, (b.n - a.n) / dt), math.sqrt(var) / dt

    def _window_start(self, last: int, window_s: float) -> int:
        """The index of the earliest frame within ``window_s`` before frame
        ``last`` (the one before it when none is)."""
        frames = self._frames
        start = last - 1
        # from the newest back: the history holds up to stitch_history_s of frames
        for i in range(last - 2, -1, -1):
            if (frames[last].stamp_ns - frames[i].stamp_ns) / NS > window_s:
                break
            start = i
        return start

    def stitch(self) -> RectifiedFrame | None:
        """Recent frames pasted into one patch about the newest frame's nadir.

        Only when the newest frame's footprint is below ``stitch_below_area_m2``;
        frames are added from the newest backwards until the union reaches
        ``stitch_target_area_m2`` (newer frames paint over older ones). Each frame
        and each registration's shift is scaled to the newest frame's ground size by
        the zooms measured since (:func:`_in_newest_scale`; ``stitch_zoom``). None
        when there is nothing to add.
        """
        cfg = self.cfg
        if len(self._frames) < 2:
            return None
        cur = self._frames[-1]
        if cur.area_m2 >= cfg.stitch_below_area_m2:
            return None
        res = cur.view.resolution_m
        frames = list(self._frames)
        placed = _in_newest_scale(frames)
        chosen = [len(frames) - 1]
        # the union grows roughly by each frame's new ground; stop at the target
        area = cur.area_m2
        for i in range(len(frames) - 2, -1, -1):
            (e0, n0, _), (e1, n1, _) = placed[i], placed[chosen[-1]]
            shift = math.hypot(e0 - e1, n0 - n1)
            if shift < 0.15 * math.sqrt(cur.area_m2):
                continue  # adds almost nothing
            chosen.append(i)
            area += shift * math.sqrt(frames[i].area_m2)
            if area >= cfg.stitch_target_area_m2:
                break
        if len(chosen) < 2:
            return None
        # canvas in metres relative to the newest nadir, at the newest frame's scale
        boxes = []
        for i in chosen:
            f = frames[i]
            de, dn, k = placed[i]
            rows, cols = f.view.mask.shape
            left = de - (f.view.nadir_col + 0.5) * res * k
            top = dn + (f.view.nadir_row + 0.5) * res * k
            boxes.append((left, top, left + cols * res * k, top - rows * res * k))
        emin = min(b[0] for b in boxes)
        nmax = max(b[1] for b in boxes)
        emax = max(b[2] for b in boxes)
        nmin = min(b[3] for b in boxes)
        cols = math.ceil((emax - emin) / res)
        rows = math.ceil((nmax - nmin) / res)
        image = np.zeros((rows, cols), np.float32)
        mask = np.zeros((rows, cols), np.uint8)
        for i, (left, top, _, _) in zip(reversed(chosen), reversed(boxes), strict=True):
            f = frames[i]
            k = placed[i][2]
            # f's pixel (i, j) lands on canvas (k i + tx, k j + ty), pixel centres kept
            tx = (left - emin) / res + 0.5 * k - 0.5
            ty = (nmax - top) / res + 0.5 * k - 0.5
            m = np.array([[k, 0.0, tx], [0.0, k, ty]])
            img = cv2.warpAffine(f.view.image, m, (cols, rows), flags=cv2.INTER_LINEAR)
            # shrink the pasted mask by a pixel: its edge pixels are interpolated with black
            fm = cv2.erode(f.view.mask, np.ones((3, 3), np.uint8))
            msk = cv2.warpAffine(fm, m, (cols, rows), flags=cv2.INTER_NEAREST)
            on = msk > 0
            image[on] = np.asarray(img)[on]
            mask[on] = 255
        nadir_col = -emin / res - 0.5
        nadir_row = nmax / res - 0.5
        diag = math.hypot(emax - emin, nmax - nmin)
        return RectifiedFrame(image, mask, nadir_col, nadir_row, res, diag)


def _in_newest_scale(frames: list[TrackEntry]) -> list[tuple[float, float, float]]:
    """Each frame's nadir east and north of the newest one's (metres) and its pixels'
    size, all at the newest frame's scale (:mod:`.zoom`): each registration's shift
    was measured in its own frames' pixels, which the ground's rise or fall since
    has made larger or smaller than the newest frame's."""
    last = len(frames) - 1
    ref = frames[last].log_zoom

    def size(j: int) -> float:
        # the zoom since frame j, less ZOOM_SHRINK_SIGMAS of its noise (module docstring)
        d = frames[j].log_zoom - ref
        slack = ZOOM_SHRINK_SIGMAS * ZOOM_SIGMA * math.sqrt(last - j)
        return math.exp(math.copysign(max(0.0, abs(d) - slack), d))

    out: list[tuple[float, float, float]] = [(0.0, 0.0, 0.0)] * len(frames)
    out[last] = (0.0, 0.0, 1.0)
    e = n = 0.0
    for j in range(last, 0, -1):
        k = size(j)
        e -= (frames[j].e - frames[j - 1].e) * k
        n -= (frames[j].n - frames[j - 1].n) * k
        out[j - 1] = (e, n, size(j - 1))
    return out
