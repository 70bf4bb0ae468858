"""Frame conventions, done once: ENU <-> NED, FLU <-> FRD, yaw, covariance.

ROS (REP-103/REP-105) speaks ENU world frames and FLU body frames, yaw 0 = east,
counter-clockwise positive, in radians. MAVLink and both autopilots speak NED world
frames and FRD body frames, yaw/heading 0 = north, clockwise positive; GPS_INPUT
carries that heading in centidegrees, where 0 means "unknown" and north is 36000.

Every conversion between the two worlds in the FC bridge goes through this module,
so a sign or axis error can only live in one tested place (MAVROS's fake-GPS plugin
shipped velocity in the wrong frame and sign because it converted ad hoc).

Conventions used here:

* vectors are ``(x, y, z)`` tuples of floats;
* 3x3 matrices are row-major 9-tuples (the layout of ``PositionFix.msg``);
* quaternions are ``(w, x, y, z)`` (MAVLink's order), rotating body -> world.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

Vec3 = tuple[float, float, float]
Mat3 = tuple[float, float, float, float, float, float, float, float, float]
Quat = tuple[float, float, float, float]

TWO_PI: Final = 2.0 * math.pi
CDEG_PER_TURN: Final = 36000
#: GPS_INPUT.yaw value that means "no yaw" (MAVLink common.xml).
GPS_INPUT_YAW_UNKNOWN: Final = 0


# --- vectors ------------------------------------------------------------------
def enu_to_ned(v: Sequence[float]) -> Vec3:
    """World vector ENU (east, north, up) -> NED (north, east, down)."""
    return (float(v[1]), float(v[0]), -float(v[2]))


def ned_to_enu(v: Sequence[float]) -> Vec3:
    """World vector NED -> ENU. (The axis swap is its own inverse.)"""
    return (float(v[1]), float(v[0]), -float(v[2]))


def flu_to_frd(v: Sequence[float]) -> Vec3:
    """Body vector FLU (forward, left, up; ROS base_link) -> FRD (forward, right, down)."""
    return (float(v[0]), -float(v[1]), -float(v[2]))


def frd_to_flu(v: Sequence[float]) -> Vec3:
    """Body vector FRD -> FLU."""
    return (float(v[0]), -float(v[1]), -float(v[2]))


# --- yaw ------------------------------------------------------------------------
def wrap_pi(angle: float) -> float:
    """Wrap an angle in radians to [-pi, pi)."""
    return (angle + math.pi) % TWO_PI - math.pi


def wrap_2pi(angle: float) -> float:
    """Wrap an angle in radians to [0, 2*pi)."""
    out = angle % TWO_PI
    return 0.0 if out >= TWO_PI else out


def yaw_enu_to_ned(yaw_enu: float) -> float:
    """ENU yaw (0 = east, CCW+) -> NED yaw (0 = north, CW+), radians in [-pi, pi).

    The body x axis points at the same world direction in both; only the reference
    axis and the sense of rotation differ: ``yaw_ned = pi/2 - yaw_enu``.
    """
    return wrap_pi(math.pi / 2.0 - yaw_enu)


def yaw_ned_to_enu(yaw_ned: float) -> float:
    """NED yaw -> ENU yaw, radians in [-pi, pi). Same formula, it is an involution."""
    return wrap_pi(math.pi / 2.0 - yaw_ned)


def yaw_enu_to_compass_deg(yaw_enu: float) -> float:
    """ENU yaw (radians) -> compass heading in degrees [0, 360): 0 = north, 90 = east."""
    deg = math.degrees(wrap_2pi(math.pi / 2.0 - yaw_enu))
    return 0.0 if deg >= 360.0 else deg


def yaw_enu_to_gps_input_cdeg(yaw_enu: float | None) -> int:
    """ENU yaw (radians) -> GPS_INPUT.yaw: centidegrees 1..36000, 0 = unknown.

    North is sent as 36000, never 0, because 0 tells the autopilot "no yaw"
    (ArduPilot's AP_GPS_MAV treats ``yaw == 0`` as absent). ``None`` or a
    non-finite yaw gives 0 (unknown).
    """
    if yaw_enu is None or not math.isfinite(yaw_enu):
        return GPS_INPUT_YAW_UNKNOWN
    cdeg = round(yaw_enu_to_compass_deg(yaw_enu) * 100.0) % CDEG_PER_TURN
    return CDEG_PER_TURN if cdeg == 0 else int(cdeg)


def course_over_ground_deg(v_ned: Sequence[float]) -> float:
    """Course over ground (degrees, [0, 360), 0 = north, CW+) of a NED velocity."""
    deg = math.degrees(math.atan2(float(v_ned[1]), float(v_ned[0]))) % 360.0
    return 0.0 if deg >= 360.0 else deg


# --- rotations ----------------------------------------------------------------
def quat_from_yaw_ned(yaw_ned: float) -> Quat:
    """Quaternion (w, x, y, z) body FRD -> world NED for a level attitude at ``yaw_ned``."""
    half = 0.5 * yaw_ned
    return (math.cos(half), 0.0, 0.0, math.sin(half))


def ned_to_body_frd_yaw_only(v_ned: Sequence[float], yaw_ned: float) -> Vec3:
    """Express a NED world vector in a level FRD body frame yawed by ``yaw_ned``.

    This is the inverse of :func:`quat_from_yaw_ned`'s rotation: a receiver that
    rotates the result back with the same quaternion recovers ``v_ned`` exactly.
    """
    c, s = math.cos(yaw_ned), math.sin(yaw_ned)
    n, e, d = float(v_ned[0]), float(v_ned[1]), float(v_ned[2])
    return (c * n + s * e, -s * n + c * e, d)


def body_frd_to_ned_yaw_only(v_body: Sequence[float], yaw_ned: float) -> Vec3:
    """Inverse of :func:`ned_to_body_frd_yaw_only`."""
    c, s = math.cos(yaw_ned), math.sin(yaw_ned)
    f, r, d = float(v_body[0]), float(v_body[1]), float(v_body[2])
    return (c * f - s * r, s * f + c * r, d)


# --- covariance ---------------------------------------------------------------
def mat3_mul(a: Sequence[float], b: Sequence[float]) -> Mat3:
    out = [0.0] * 9
    for i in range(3):
        for j in range(3):
            out[3 * i + j] = sum(float(a[3 * i + k]) * float(b[3 * k + j]) for k in range(3))
    return tuple(out)  # type: ignore[return-value]


def mat3_transpose(a: Sequence[float]) -> Mat3:
    return tuple(float(a[3 * j + i]) for i in range(3) for j in range(3))  # type: ignore[return-value]


def rotate_cov(cov: Sequence[float], rot: Sequence[float]) -> Mat3:
    """``R C R^T`` for row-major 3x3 ``cov`` and rotation ``rot``."""
    return mat3_mul(mat3_mul(rot, cov), mat3_transpose(rot))


#: The ENU -> NED axis permutation (also NED -> ENU): x'=y, y'=x, z'=-z.
ENU_NED_SWAP: Final[Mat3] = (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def cov_enu_to_ned(cov_enu: Sequence[float]) -> Mat3:
    """Rotate a 3x3 ENU covariance (row-major) into NED."""
    return rotate_cov(cov_enu, ENU_NED_SWAP)


def cov_ned_to_body_frd_yaw_only(cov_ned: Sequence[float], yaw_ned: float) -> Mat3:
    """Rotate a 3x3 NED covariance into the level, yawed FRD body frame."""
    c, s = math.cos(yaw_ned), math.sin(yaw_ned)
    rot = (c, s, 0.0, -s, c, 0.0, 0.0, 0.0, 1.0)
    return rotate_cov(cov_ned, rot)


def upper_triangle_6x6(
    block_xyz: Sequence[float] | None, angular_diag: Sequence[float | None]
) -> list[float]:
    """MAVLink's 21-float upper triangle of a 6x6 covariance (row-major, states x y z r p y).

    ``block_xyz`` is the 3x3 linear block (row-major) or ``None`` when unknown;
    ``angular_diag`` holds the three angular variances, ``None`` where unknown.
    Cross terms between the linear and angular states are 0 when both are known;
    any entry that involves an unknown state is NaN, so "unknown" reaches the
    autopilot as NaN exactly as the MAVLink spec asks (a NaN first element means
    the whole position block is unknown).
    """
    nan = math.nan
    full: list[list[float]] = [[0.0] * 6 for _ in range(6)]
    known = [block_xyz is not None] * 3 + [a is not None and math.isfinite(a) for a in angular_diag]
    for i in range(3):
        for j in range(3):
            full[i][j] = float(block_xyz[3 * i + j]) if block_xyz is not None else nan
    for k, a in enumerate(angular_diag):
        full[3 + k][3 + k] = float(a) if a is not None else nan
    out: list[float] = []
    for i in range(6):
        for j in range(i, 6):
            out.append(full[i][j] if known[i] and known[j] else nan)
    return out


def horizontal_sigma_max(cov: Sequence[float]) -> float:
    """sqrt of the larger eigenvalue of the 2x2 horizontal block: the 1-sigma error
    along the worst horizontal direction (conservative, rotation invariant)."""
    a, b, d = float(cov[0]), 0.5 * (float(cov[1]) + float(cov[3])), float(cov[4])
    mean = 0.5 * (a + d)
    rad = math.sqrt(max(0.0, 0.25 * (a - d) ** 2 + b * b))
    return math.sqrt(max(0.0, mean + rad))


def sym3_max_eigenvalue(cov: Sequence[float]) -> float:
    """Largest eigenvalue of a symmetric 3x3 matrix (closed form, no numpy)."""
    a = [[float(cov[3 * i + j]) for j in range(3)] for i in range(3)]
    # symmetrise against float noise in the input
    for i in range(3):
        for j in range(i + 1, 3):
            m = 0.5 * (a[i][j] + a[j][i])
            a[i][j] = a[j][i] = m
    p1 = a[0][1] ** 2 + a[0][2] ** 2 + a[1][2] ** 2
    if p1 == 0.0:
        return max(a[0][0], a[1][1], a[2][2])
    q = (a[0][0] + a[1][1] + a[2][2]) / 3.0
    p2 = (a[0][0] - q) ** 2 + (a[1][1] - q) ** 2 + (a[2][2] - q) ** 2 + 2.0 * p1
    p = math.sqrt(p2 / 6.0)
    b = [[(a[i][j] - (q if i == j else 0.0)) / p for j in range(3)] for i in range(3)]
    det_b = (
        b[0][0] * (b[1][1] * b[2][2] - b[1][2] * b[2][1])
        - b[0][1] * (b[1][0] * b[2][2] - b[1][2] * b[2][0])
        + b[0][2] * (b[1][0] * b[2][1] - b[1][1] * b[2][0])
    )
    r = max(-1.0, min(1.0, det_b / 2.0))
    phi = math.acos(r) / 3.0
    return q + 2.0 * p * math.cos(phi)
