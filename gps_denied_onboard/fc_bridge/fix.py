"""The estimator's position fix as the FC bridge core sees it (no ROS).

:class:`PositionFix` is the ROS-free twin of ``msg/PositionFix.msg``. Frames and
units are the message's: ENU velocity (m/s), ENU covariances (row-major 3x3),
ENU yaw (radians, 0 = east, CCW+). ``capture_ns`` is the camera frame's capture time
(``header.stamp``) and is never replaced on the way to the autopilot.

"Unknown" is ``None`` here, never a magic number: the message's all-zero covariance,
``velocity_valid = false`` and ``yaw_valid = false`` become ``None`` in
:meth:`PositionFix.from_msg`, and the encoders turn ``None`` into the wire's own
"unknown" (an ignore flag, a NaN, a 0 yaw).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gps_denied_onboard.fc_bridge.frames import Mat3, Vec3

NS_PER_S = 1_000_000_000


def _mat3_or_none(values: Sequence[float] | None, name: str) -> Mat3 | None:
    if values is None:
        return None
    vals = tuple(float(v) for v in values)
    if len(vals) != 9:
        raise ValueError(f"{name} must have 9 elements (row-major 3x3), got {len(vals)}")
    if all(v == 0.0 for v in vals):
        return None  # PositionFix.msg: 0 everywhere = unknown
    if not all(math.isfinite(v) for v in vals):
        return None
    return vals  # type: ignore[return-value]


@dataclass(frozen=True)
class PositionFix:
    """One position estimate to send to the flight controller.

    Attributes:
        capture_ns: capture time of the image it came from (ns, the ROS clock's epoch).
        latitude_deg, longitude_deg: WGS84 degrees.
        altitude_msl_m: metres above mean sea level.
        velocity_enu: (east, north, up) m/s, or None when not estimated.
        position_cov_enu: row-major 3x3 ENU covariance (m^2), or None when unknown.
        velocity_cov_enu: row-major 3x3 ENU covariance ((m/s)^2), or None when unknown.
        yaw_enu_rad: heading of the body x axis, ENU (0 = east, CCW+), or None.
        yaw_variance_rad2: variance of that yaw, or None when unknown.
        reset_counter: bumps when the estimate jumps (relocalisation); wraps at 256.
        quality: 0 (unusable) .. 100 (best).
    """

    capture_ns: int
    latitude_deg: float
    longitude_deg: float
    altitude_msl_m: float
    velocity_enu: Vec3 | None = None
    position_cov_enu: Mat3 | None = None
    velocity_cov_enu: Mat3 | None = None
    yaw_enu_rad: float | None = None
    yaw_variance_rad2: float | None = None
    reset_counter: int = 0
    quality: int = 100

    def __post_init__(self) -> None:
        if not (-90.0 <= self.latitude_deg <= 90.0) or not math.isfinite(self.latitude_deg):
            raise ValueError(f"latitude {self.latitude_deg!r} out of range")
        if not (-180.0 <= self.longitude_deg <= 180.0) or not math.isfinite(self.longitude_deg):
            raise ValueError(f"longitude {self.longitude_deg!r} out of range")
        if not 0 <= self.reset_counter <= 255:
            raise ValueError("reset_counter is a uint8")
        if not 0 <= self.quality <= 100:
            raise ValueError("quality is 0..100")
        object.__setattr__(self, "capture_ns", int(self.capture_ns))
        object.__setattr__(
            self, "position_cov_enu", _mat3_or_none(self.position_cov_enu, "position_cov_enu")
        )
        object.__setattr__(
            self, "velocity_cov_enu", _mat3_or_none(self.velocity_cov_enu, "velocity_cov_enu")
        )
        if self.velocity_enu is not None:
            vel = tuple(float(v) for v in self.velocity_enu)
            if len(vel) != 3 or not all(math.isfinite(v) for v in vel):
                vel = None  # type: ignore[assignment]
            object.__setattr__(self, "velocity_enu", vel)
        if self.yaw_enu_rad is not None and not math.isfinite(self.yaw_enu_rad):
            object.__setattr__(self, "yaw_enu_rad", None)
        if self.yaw_enu_rad is None or (
            self.yaw_variance_rad2 is not None
            and (not math.isfinite(self.yaw_variance_rad2) or self.yaw_variance_rad2 <= 0.0)
        ):
            object.__setattr__(self, "yaw_variance_rad2", None)

    @property
    def capture_usec(self) -> int:
        """Capture time in microseconds (what MAVLink's ``time_usec`` fields carry)."""
        return self.capture_ns // 1000

    @classmethod
    def from_msg(cls, msg: Any) -> PositionFix:
        """Build from a ``gps_denied_onboard/msg/PositionFix`` (duck-typed; no ROS import).

        ``header.stamp`` (sec, nanosec) becomes ``capture_ns`` unchanged.
        """
        stamp = msg.header.stamp
        capture_ns = int(stamp.sec) * NS_PER_S + int(stamp.nanosec)
        vel = msg.velocity_enu
        velocity = (vel.x, vel.y, vel.z) if bool(msg.velocity_valid) else None
        yaw_valid = bool(msg.yaw_valid)
        yaw_var = float(msg.yaw_variance)
        return cls(
            capture_ns=capture_ns,
            latitude_deg=float(msg.latitude),
            longitude_deg=float(msg.longitude),
            altitude_msl_m=float(msg.altitude_msl),
            velocity_enu=velocity,
            position_cov_enu=tuple(msg.position_covariance),
            velocity_cov_enu=tuple(msg.velocity_covariance),
            yaw_enu_rad=float(msg.yaw_enu) if yaw_valid else None,
            yaw_variance_rad2=yaw_var if yaw_valid and yaw_var > 0.0 else None,
            reset_counter=int(msg.reset_counter),
            quality=int(msg.quality),
        )
