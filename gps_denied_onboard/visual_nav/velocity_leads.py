"""How a window's mean velocity is brought up to its newest frame, and which window speaks.

A mean over a window is the velocity at the window's middle: in a turn it
trails the course by half the window's turn, in an acceleration the speed by
half the window's change. :func:`turn_lead` and :func:`speed_lead` lead it by
the change measured between two windows, shrunk by that change's noise (what
they add goes into the sigma); :func:`course_turn` is that measured turn.
:func:`steadier` chooses between a short window, which follows a manoeuvre's
onset, and a long one, which halves the attitude's share of the noise.

Plain functions on (velocity, 1-sigma per axis) pairs: the registration track
(:class:`.odometry.OdometryTrack`) measures the windows and calls them.
"""

from __future__ import annotations

import math

from gps_denied_onboard.visual_nav.uncertainty import corrected

#: the short window's velocity is taken instead of the long one's where they differ by
#: more than this many times their difference's variance (per axis): the long window
#: halves the attitude's share of the noise but trails a manoeuvre's onset. Calibration
#: flights (2014 pairs, seeds 170000 and 171000 + 100 i), windows 1 and 2 s, median
#: velocity error: at 2, 1 km at 1 Hz 0.70 -> 0.53 m/s, 400 m at 1 Hz 0.54 -> 0.46,
#: 400 m at 2 Hz through 20 deg banked turns 0.55 -> 0.48 (p95 1.76 -> 1.76); at 4,
#: 0.50, 0.46 and 0.48 but p95 1.86 in the turns, at 1 the turns' p95 1.81.
LONG_WINDOW_LIMIT = 2.0

#: the measured turn's variance, in units of the two windows' direction variances.
#: More than 1: a frame's own error enters the velocity being turned and the turn
#: alike, so a lead amplifies it. Calibration flights (2014 pairs; seeds 170000 and
#: 171000 + 100 i): measured against the window just before, at 1, 1 km flights at
#: 1 Hz (turns of 1.8 deg a window, the noise 2.4 deg) went 0.70 -> 0.86 m/s median
#: error; against the window two before, at 4, they stay at 0.70 while 400 m frames
#: through 20 deg banked turns go 0.91 -> 0.55 m/s.
TURN_NOISE_FACTOR = 4.0

#: the same for the speed's change (:func:`speed_lead`), higher: a fixed wing's speed
#: hardly changes, and the along-track noise it would lead on is the track's larger part.
#: At 4 the sample flight's velocities went p95 3.03 -> 3.30 m/s, at 16 to 3.14, while
#: on the synthetic world speeding up at 2 m/s^2 the error 4 s into it is 0.5 at 4 and
#: 0.6 m/s at 16 (2.0 unled); the calibration flights moved by 0.03 and 0.02 m/s at p95.
SPEED_NOISE_FACTOR = 16.0

#: the autopilot's heading leads a window's velocity (:meth:`OdometryTrack._heading_led`)
#: where its turn between two windows is the course's within this many of the course's
#: noise. At 3 a multirotor turning 12 deg/s without yawing was led by its unturning
#: heading one frame into the turn (4.4 m/s off, against 2.9 led by its course); at 2
#: it is led by its course throughout, and the calibration pairs' turn flights
#: (seeds 171000 + 100 i) came out the same as at 3.
HEADING_AGREE_SIGMAS = 2.0


def course_turn(
    v: tuple[float, float], sigma: float, v_before: tuple[float, float], sigma_before: float
) -> tuple[float, float] | None:
    """The course's turn from ``v_before`` to ``v`` (radians, counter-clockwise) and its
    variance (each velocity's direction is off by about its sigma over its speed);
    None when either stands still."""
    speed = math.hypot(v[0], v[1])
    speed0 = math.hypot(v_before[0], v_before[1])
    if speed <= 0.0 or speed0 <= 0.0:
        return None
    turn = math.atan2(
        v_before[0] * v[1] - v_before[1] * v[0], v_before[0] * v[0] + v_before[1] * v[1]
    )
    return turn, (sigma / speed) ** 2 + (sigma_before / speed0) ** 2


def turn_lead(
    v: tuple[float, float],
    sigma: float,
    v_before: tuple[float, float],
    sigma_before: float,
    *,
    lead: float,
) -> tuple[tuple[float, float], float]:
    """``v`` (a mean velocity, 1-sigma ``sigma`` per axis) turned on by ``lead``
    times the course's turn from ``v_before`` (an earlier window) to ``v``.

    ``lead`` is the time from ``v``'s window's middle to its end over the time
    between the two windows' middles. The measured turn is noisy (each window's
    direction is off by about sigma / speed), so it is shrunk by turn^2 /
    (turn^2 + :data:`TURN_NOISE_FACTOR` x its variance): on a straight course the
    velocity stays nearly as measured, in a steep turn it takes nearly all of it.
    What the turn's noise adds goes into the sigma.
    """
    measured = course_turn(v, sigma, v_before, sigma_before)
    if measured is None:
        return v, sigma
    turn, var = measured
    speed = math.hypot(v[0], v[1])
    th = lead * turn
    th_var = TURN_NOISE_FACTOR * lead * lead * var
    shrink = th * th / (th * th + th_var) if th_var > 0.0 else 1.0
    turned = corrected(v, math.degrees(th * shrink), 1.0)
    return turned, math.hypot(sigma, speed * shrink * math.sqrt(th_var))


def speed_lead(
    v: tuple[float, float],
    sigma: float,
    speed_before: float,
    sigma_before: float,
    *,
    lead: float,
    noise_sigma: float | None = None,
) -> tuple[tuple[float, float], float]:
    """``v`` lengthened (or shortened) by ``lead`` times the speed's change from an
    earlier window (speed ``speed_before``, 1-sigma ``sigma_before`` per axis).

    The speed half of :func:`turn_lead`: a mean over a window trails an
    acceleration as it trails a turn (a multirotor speeding up at 2 m/s^2 by
    1 m/s over a 1 s window, 2 m/s over 2 s). The change is shrunk by its noise
    the same way, with :data:`SPEED_NOISE_FACTOR`, ``noise_sigma`` (default
    ``sigma``) being the window's own noise before any lead; what it adds goes
    into the sigma.
    """
    speed = math.hypot(v[0], v[1])
    if speed <= 0.0:
        return v, sigma
    own = sigma if noise_sigma is None else noise_sigma
    th = lead * (speed - speed_before)
    th_var = SPEED_NOISE_FACTOR * lead * lead * (own * own + sigma_before * sigma_before)
    shrink = th * th / (th * th + th_var) if th_var > 0.0 else 1.0
    k = max(0.0, speed + th * shrink) / speed
    return (k * v[0], k * v[1]), math.hypot(sigma, shrink * math.sqrt(th_var))


def difference_var(short_sigma: float, long_sigma: float) -> float:
    """The variance per axis of a short window's velocity less a long one's that holds
    it (1-sigmas ``short_sigma`` and ``long_sigma``): the short one's less the long
    one's, and at least a quarter of the short one's."""
    ss, sl = short_sigma * short_sigma, long_sigma * long_sigma
    return max(ss - sl, 0.25 * ss)


def innovation(
    short: tuple[tuple[float, float], float], long_: tuple[tuple[float, float], float]
) -> float:
    """How far a short window's velocity lies from a long one's that holds it: their
    squared difference per axis over its modelled variance (:func:`difference_var`),
    1 on average when the model is right. NaN where that variance is not positive
    or the difference not finite: nothing measured."""
    (vs, ss), (vl, sl) = short, long_
    var_d = difference_var(ss, sl)
    if not var_d > 0.0 or not math.isfinite(var_d):
        return math.nan
    dd = (vs[0] - vl[0]) ** 2 + (vs[1] - vl[1]) ** 2
    return 0.5 * dd / var_d if math.isfinite(dd) else math.nan


def steadier(
    short: tuple[tuple[float, float], float],
    long_: tuple[tuple[float, float], float],
    *,
    limit: float,
    noise_scale: float = 1.0,
) -> tuple[tuple[float, float], float]:
    """The long window's velocity where the short window's agrees with it, else the
    short window's (each a velocity and its 1-sigma per axis, as modelled).
    ``noise_scale`` (:mod:`.registration_noise`: the model's sigma as measured in
    flight) scales the sigma returned, not the choice, which was fitted on the
    modelled sigmas.

    They agree when their squared difference per axis is at most ``limit`` times
    its variance, taken as the short one's less the long one's (the long window
    holds the short one) and at least a quarter of the short one's. The long
    one's sigma then takes the difference too: what the long window may trail.

    Why the whole difference and not only what it holds beyond its own noise
    (``dd / 2 - var_d``): on the calibration flights that lower estimate took
    the velocities within 1 sigma down by 2-7 points (1 km flights 93 / 89 / 89
    -> 88 / 82 / 85 %) with the same windows chosen, but through 20 deg banked
    turns, where the long window does trail, those within 3 sigma fell from
    98.9 / 99.4 / 98.9 to 98.3 / 97.7 / 98.3 % (seeds 195000, 188000 and
    171000 + 100 i). Since the autopilot's heading leads the turns
    (:meth:`OdometryTrack._heading_led`) their frames stay at 100 % with it, and
    within 1 sigma 1 km flights went 90.6 -> 85.7 %, the sample flight's 88 / 85
    -> 82 / 78 %; but nothing leads an acceleration's onset as the heading leads a
    turn's, and there the long window trails the speed: speeding up at 2 m/s^2
    (``test_speeding_up_the_velocity_is_the_speed_now_not_the_windows_middle``)
    one velocity stood 1.9 m/s off at a sigma of 0.52.
    """
    (vs, ss), (vl, sl) = short, long_
    dd = (vs[0] - vl[0]) ** 2 + (vs[1] - vl[1]) ** 2
    var_d = difference_var(ss, sl)
    if dd > 2.0 * limit * var_d:
        return vs, ss * noise_scale
    return vl, math.hypot(sl * noise_scale, math.sqrt(dd / 2.0))
