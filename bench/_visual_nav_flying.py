"""Simulated flights for the visual-nav benchmarks: frames one after another.

Where :mod:`_visual_nav_env` holds the NAIP years, the camera and single
frames searched cold, this holds what registration, stitching and velocity
need: a course flown at a frame rate (:func:`flights`, :func:`turn_flights`),
and an estimator fed along it with the autopilot's attitude and height, the
GNSS (displaced, dragged by a spoofer, or denied) and its velocity (:func:`fly`,
:func:`fly_spoofed`, :func:`fly_restarted`). Same protocol as
:mod:`_visual_nav_env`'s docstring says.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from _visual_nav_env import (
    ATT_NOISE_DEG,
    NS,
    _feed_and_match,
    _render,
    estimator,
    ortho,
)
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.estimator import VisualEstimator
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.geo import LocalFrame
from gps_denied_onboard.visual_nav.state import Prior


@dataclass(frozen=True)
class Pose:
    """One frame of a simulated flight: truth and what the autopilot reports."""

    stamp_ns: int
    lat: float
    lon: float
    ve: float  # true ground velocity of the vehicle (m/s)
    vn: float
    roll: float
    pitch: float
    yaw: float
    roll_rep: float  # as the autopilot reports them (degrees)
    pitch_rep: float
    yaw_rep: float


@dataclass(frozen=True)
class Flight:
    poses: tuple[Pose, ...]
    agl: float
    height_factor: float
    prior_e: float
    prior_n: float


def _course(
    rng: np.random.Generator,
    centre: LocalFrame,
    start: tuple[float, float, float],
    t0: int,
    dt: float,
    frames: int,
    speed: float,
    turn_roll: Callable[[float], tuple[float, float]],
    pitch: float,
    bias: tuple[float, float, float],
    jitter: float,
    *,
    yaw_jitter_deg: float = 0.0,
) -> tuple[list[Pose], list[tuple[float, float]]]:
    """A fixed-wing's frames along a course: from ``start`` (east, north m from
    ``centre``, course in ENU radians from east), ``turn_roll(t)`` giving the turn
    rate (rad/s, ENU) and the roll (deg) at ``t`` s, integrated along arcs. What the
    autopilot reports: the truth plus ``bias`` (roll, pitch, yaw, deg) plus ``jitter``
    (roll, pitch) and ``yaw_jitter_deg`` (none: no draw) of noise per frame. Also
    the nadir's track (east, north) frame by frame."""
    e, nn, course = start
    b_roll, b_pitch, b_yaw = bias
    poses: list[Pose] = []
    track: list[tuple[float, float]] = []
    for k in range(frames):
        turn, roll = turn_roll(k * dt)
        ve, vn = speed * math.cos(course), speed * math.sin(course)
        lat, lon = centre.to_latlon(e, nn)
        track.append((e, nn))
        yaw_ned = 90.0 - math.degrees(course)  # NED yaw from north, clockwise
        roll_rep = roll + b_roll + rng.normal(0, 1) * jitter
        pitch_rep = pitch + b_pitch + rng.normal(0, 1) * jitter
        yaw_rep = yaw_ned + b_yaw + (rng.normal(0, yaw_jitter_deg) if yaw_jitter_deg else 0.0)
        poses.append(
            Pose(
                t0 + int(k * dt * NS),
                lat,
                lon,
                ve,
                vn,
                roll,
                pitch,
                yaw_ned,
                roll_rep,
                pitch_rep,
                yaw_rep,
            )
        )
        # integrate one frame interval
        course_next = course + turn * dt
        if abs(turn) > 1e-9:
            r = speed / turn
            e += r * (math.sin(course_next) - math.sin(course))
            nn -= r * (math.cos(course_next) - math.cos(course))
        else:
            e += ve * dt
            nn += vn * dt
        course = course_next
    return poses, track


def flights(
    seed: int,
    n: int,
    agl: float,
    *,
    frames: int = 14,
    rate_hz: float = 2.0,
    speed: float = 25.0,
    att_noise_deg: float = ATT_NOISE_DEG,
) -> list[Flight]:
    """Short flights for frame-to-frame figures (velocity, stitching).

    A fixed-wing at ``speed`` on a gently curving course (turn rate up to
    3 deg/s, coordinated bank), ``rate_hz`` frames. The autopilot's roll and
    pitch error is a bias per flight (``att_noise_deg``) plus a fifth of that
    as noise per frame: an EKF's attitude error wanders slowly, it does not
    jump between frames a second apart. Heading bias +-5 deg, height +-10 %
    per flight; the prior 100-300 m off as in :func:`trials`.
    """
    rng = np.random.default_rng(seed)
    lat0, lon0, lat1, lon1 = ortho("2017").bounds_latlon()
    lc, oc = (lat0 + lat1) / 2, (lon0 + lon1) / 2
    half_e = (lon1 - lon0) / 2 * 111_320 * math.cos(math.radians(lc)) - 1300
    half_n = (lat1 - lat0) / 2 * 111_320 - 1300
    centre = LocalFrame(lc, oc)
    dt = 1.0 / rate_hz
    out = []
    for _ in range(n):
        e = rng.uniform(-half_e, half_e)
        nn = rng.uniform(-half_n, half_n)
        course = rng.uniform(-math.pi, math.pi)  # ENU, from east
        turn = math.radians(rng.uniform(-3, 3))
        pitch = rng.uniform(0, 6)
        b_roll, b_pitch = rng.normal(0, 1, 2) * att_noise_deg
        jitter = 0.2 * att_noise_deg
        b_yaw = rng.uniform(-5, 5)
        ang = rng.uniform(0, 2 * math.pi)
        d = rng.uniform(100, 300)
        roll = math.degrees(math.atan(speed * turn / 9.81))
        t0 = (1_900_000_000 + int(rng.integers(0, 10_000)) * 100) * NS
        poses, _ = _course(
            rng,
            centre,
            (e, nn, course),
            t0,
            dt,
            frames,
            speed,
            lambda _t, turn=turn, roll=roll: (turn, roll),
            pitch,
            (b_roll, b_pitch, b_yaw),
            jitter,
            yaw_jitter_deg=0.1,
        )
        out.append(
            Flight(
                tuple(poses),
                agl,
                float(rng.uniform(0.9, 1.1)),
                d * math.cos(ang),
                d * math.sin(ang),
            )
        )
    return out


def flight_frame(year: str, f: Flight, p: Pose) -> NDArray[np.uint8]:
    return _render(year, p.lat, p.lon, f.agl, p.roll, p.pitch, p.yaw)


#: the GNSS velocity's accuracy as an FC reports it (GPS_RAW_INT ``vel_acc``), and
#: what the simulated one is off by: a bias per flight and noise per sample (m/s)
GNSS_VELOCITY_SIGMA = 0.3
GNSS_VELOCITY_BIAS = 0.05
GNSS_VELOCITY_NOISE = 0.1


def _feed_velocity(
    est: VisualEstimator,
    prev: Pose | None,
    p: Pose,
    rng: np.random.Generator,
    bias: NDArray[np.float64],
    drift: tuple[float, float] = (0.0, 0.0),
) -> None:
    """The GNSS's velocity at 5 Hz from the last frame up to this one (the truth
    linear between the frames, plus ``bias``, the rate its reported position is
    moving off the truth, ``drift``, and noise), as the FC streams it."""
    if prev is None:
        stamps, vels = [p.stamp_ns - NS // 5, p.stamp_ns], [(p.ve, p.vn)] * 2
    else:
        k = max(1, round((p.stamp_ns - prev.stamp_ns) / (NS // 5)))
        stamps = [prev.stamp_ns + (p.stamp_ns - prev.stamp_ns) * j // k for j in range(1, k + 1)]
        vels = [
            (prev.ve + (p.ve - prev.ve) * j / k, prev.vn + (p.vn - prev.vn) * j / k)
            for j in range(1, k + 1)
        ]
    for t, (ve, vn) in zip(stamps, vels, strict=True):
        noise = rng.normal(0.0, GNSS_VELOCITY_NOISE, 2)
        east = ve + bias[0] + drift[0] + noise[0]
        north = vn + bias[1] + drift[1] + noise[1]
        est.add_gnss_velocity(t, east, north, GNSS_VELOCITY_SIGMA)


def fly(
    est: VisualEstimator,
    year: str,
    f: Flight,
    *,
    prior_sigma: float = 120.0,
    gnss_off: Sequence[tuple[float, float]] | None = None,
    gnss_velocity_seed: int | None = None,
    gnss_lost_s: float | None = None,
) -> list[VisualFix | FrameRejected]:
    """Feed one flight frame by frame: attitude at 50 Hz, altitude, the GNSS prior.

    The GNSS is displaced by the flight's ``(prior_e, prior_n)``, or per frame by
    ``gnss_off`` (east, north metres off the truth); from ``gnss_lost_s`` on it is
    denied. With ``gnss_velocity_seed`` its velocity over ground is streamed too
    while it is healthy (:func:`_feed_velocity`, noise from that seed): a GNSS
    whose offset changes (a spoofer's drag) reports that motion in its velocity.
    """
    offs = gnss_off if gnss_off is not None else [(f.prior_e, f.prior_n)] * len(f.poses)
    rng = np.random.default_rng(gnss_velocity_seed) if gnss_velocity_seed is not None else None
    bias = rng.normal(0.0, GNSS_VELOCITY_BIAS, 2) if rng is not None else np.zeros(2)
    t0 = f.poses[0].stamp_ns
    prev: Pose | None = None
    out: list[VisualFix | FrameRejected] = []
    last_off = offs[0]
    for p, (e, n) in zip(f.poses, offs, strict=True):
        healthy = gnss_lost_s is None or (p.stamp_ns - t0) / NS < gnss_lost_s
        if rng is not None and healthy:
            dt = (p.stamp_ns - prev.stamp_ns) / NS if prev is not None else 1.0
            drift = ((e - last_off[0]) / dt, (n - last_off[1]) / dt)
            _feed_velocity(est, prev, p, rng, bias, drift)
        prev, last_off = p, (e, n)
        out.append(
            _feed_and_match(
                est,
                p.stamp_ns,
                flight_frame(year, f, p),
                (p.roll_rep, p.pitch_rep, p.yaw_rep),
                f.agl * f.height_factor,
                LocalFrame(p.lat, p.lon).to_latlon(e, n) if healthy else None,
                prior_sigma,
                (-40, -20, 0, 20, 40),
            )
        )
    return out


def fly_spoofed(
    est: VisualEstimator,
    year: str,
    f: Flight,
    *,
    honest_s: float,
    drag_mps: float,
    start_m: float = 0.0,
    sigma_m: float = 3.0,
    gnss_velocity_seed: int | None = None,
) -> list[tuple[float, VisualFix | FrameRejected]]:
    """One flight under a spoofed GNSS: (its offset in m, the outcome) per frame.

    The GNSS is ``start_m`` off the truth (claiming ``sigma_m``) until
    ``honest_s``, then a spoofer drags it at ``drag_mps`` farther, in the
    flight's prior direction, while the FC keeps calling it healthy; with
    ``gnss_velocity_seed`` its velocity, dragged alike, is streamed too.
    """
    ang = math.atan2(f.prior_n, f.prior_e)
    t0 = f.poses[0].stamp_ns
    drags = [start_m + max(0.0, (p.stamp_ns - t0) / NS - honest_s) * drag_mps for p in f.poses]
    offs = [(d * math.cos(ang), d * math.sin(ang)) for d in drags]
    got = fly(
        est, year, f, prior_sigma=sigma_m, gnss_off=offs, gnss_velocity_seed=gnss_velocity_seed
    )
    return list(zip(drags, got, strict=True))


def turn_flights(
    seed: int,
    n: int,
    agl: float,
    *,
    bank_deg: float = 20.0,
    speed: float = 28.0,
    straight_s: float = 22.0,
    turn_s: float = 14.0,
    after_s: float = 8.0,
    rate_hz: float = 2.0,
    att_noise_deg: float = ATT_NOISE_DEG,
) -> list[Flight]:
    """Fixed-wing flights with one steep coordinated turn, like the sample flight's.

    Straight and level for ``straight_s``, then banked ``bank_deg`` (left or
    right) for ``turn_s`` (at 20 deg and 28 m/s, 7.3 deg/s: about 100 deg of
    heading), then straight for ``after_s``; 2 deg of pitch, ``rate_hz`` frames.
    :func:`flights` turns at most 3 deg/s. The autopilot's roll and pitch error
    is a bias per flight plus a fifth of it as noise, the heading bias +-3 deg;
    the height exact, the prior on the truth (the GNSS is healthy until it is
    denied, see :func:`fly_restarted`). The whole flight stays 900 m inside the
    clip (a footprint and the widest search around it).
    """
    rng = np.random.default_rng(seed)
    lat0, lon0, lat1, lon1 = ortho("2017").bounds_latlon()
    lc = (lat0 + lat1) / 2
    centre = LocalFrame(lc, (lon0 + lon1) / 2)
    half_e = (lon1 - lon0) / 2 * 111_320 * math.cos(math.radians(lc)) - 900
    half_n = (lat1 - lat0) / 2 * 111_320 - 900
    dt = 1.0 / rate_hz
    frames = round((straight_s + turn_s + after_s) * rate_hz)
    out: list[Flight] = []
    while len(out) < n:
        e, nn = rng.uniform(-half_e, half_e), rng.uniform(-half_n, half_n)
        course = rng.uniform(-math.pi, math.pi)  # ENU, from east
        side = float(rng.choice([-1.0, 1.0]))  # +1: a left turn (counter-clockwise)
        b_roll, b_pitch = rng.normal(0, 1, 2) * att_noise_deg
        jitter = 0.2 * att_noise_deg
        b_yaw = rng.uniform(-3, 3)
        t0 = (1_900_000_000 + int(rng.integers(0, 10_000)) * 100) * NS
        rate = side * 9.81 * math.tan(math.radians(bank_deg)) / speed

        def banked(t: float, rate: float = rate, side: float = side) -> tuple[float, float]:
            if straight_s <= t < straight_s + turn_s:
                return rate, -side * bank_deg  # NED: a left turn rolls left
            return 0.0, 0.0

        poses, track = _course(
            rng,
            centre,
            (e, nn, course),
            t0,
            dt,
            frames,
            speed,
            banked,
            2.0,
            (b_roll, b_pitch, b_yaw),
            jitter,
        )
        inside = all(abs(x) <= half_e and abs(y) <= half_n for x, y in track)
        if inside:
            out.append(Flight(tuple(poses), agl, 1.0, 0.0, 0.0))
    return out


def fly_restarted(
    map_year: str,
    year: str,
    f: Flight,
    *,
    gnss_lost_s: float,
    restart_s: float | None,
    **cfg: object,
) -> list[VisualFix | FrameRejected | None]:
    """One flight whose GNSS is healthy (on the truth, 3 m) until ``gnss_lost_s``
    and denied after; at ``restart_s`` the estimator is replaced by a fresh one
    that resumes from the last fix, as a visual_nav killed and respawned in flight
    resumes from the FC bridge's ``/fc/sent_fix``; the frame of the restart is lost
    (None). ``restart_s`` None: no restart. ``cfg``: the estimators' settings."""
    est = estimator(map_year, **cfg)
    t0 = f.poses[0].stamp_ns
    last: VisualFix | None = None
    out: list[VisualFix | FrameRejected | None] = []
    for p in f.poses:
        t = (p.stamp_ns - t0) / NS
        if restart_s is not None and abs(t - restart_s) < 1e-6:
            est = estimator(map_year, **cfg)
            est.set_gnss_healthy(False, p.stamp_ns)
            if last is not None:
                v = last.velocity_en if last.velocity_en is not None else (0.0, 0.0)
                track = Prior(
                    last.stamp_ns,
                    last.latitude,
                    last.longitude,
                    last.sigma_m,
                    v,
                    last.velocity_sigma,
                    "resumed",
                )
                est.resume_track(track, last.reset_counter)
            out.append(None)
            continue
        got = _feed_and_match(
            est,
            p.stamp_ns,
            flight_frame(year, f, p),
            (p.roll_rep, p.pitch_rep, p.yaw_rep),
            f.agl * f.height_factor,
            (p.lat, p.lon) if t < gnss_lost_s else None,
            3.0,
            (-40, -20, 0, 20, 40),
        )
        if isinstance(got, VisualFix):
            last = got
        out.append(got)
    return out
