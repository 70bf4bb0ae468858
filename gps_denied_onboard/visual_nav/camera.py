"""Pinhole camera model, camera mounting and attitude rotations.

Frames (all right-handed, REP-103 / REP-105):

- **world**: local ENU (x east, y north, z up), metres, tangent at the vehicle;
- **body**: FLU (x forward, y left, z up), the ROS ``base_link``;
- **camera**: optical (x right in the image, y down, z along the optical axis).

The autopilot reports attitude as NED/FRD Euler angles; ``sensor_msgs/Imu``
from the FC bridge carries the same orientation as an ENU-from-FLU quaternion,
which is what :func:`rotation_from_quaternion` takes.

The mounting is ``R_body_from_camera``. The default is a nadir camera with the
image top towards the nose: camera z = body down, camera x = body right,
camera y = body backwards. ``mount_rpy_deg`` turns that nominal mount by
extrinsic body-frame rotations (roll about x, then pitch about y, then yaw
about z). Pitch is about FLU +y (left), so a camera tilted forward of nadir
by ``t`` degrees has ``mount_rpy_deg = (0, -t, 0)``.

Intrinsics and distortion come from ``sensor_msgs/CameraInfo`` (``plumb_bob``
and ``rational_polynomial`` are OpenCV's own models; ``equidistant`` is
OpenCV's fisheye model). Projection and undistortion are OpenCV's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.errors import CameraModelError

F64 = NDArray[np.float64]

#: Nominal nadir mount: columns are the camera axes expressed in FLU body axes.
R_BODY_FROM_NADIR_CAMERA: Final = np.array(
    [[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]], dtype=np.float64
)

DISTORTION_MODELS: Final = ("plumb_bob", "rational_polynomial", "equidistant", "")
#: The most pixels a camera may have (a 24 MP camera). CameraInfo's size is also the
#: bound on what a compressed frame may declare before it is decoded
#: (:func:`.image_codec.decode_compressed`), so a CameraInfo claiming more would let
#: a decompression bomb through.
MAX_CAMERA_PIXELS: Final = 6000 * 4000


def rot_x(a: float) -> F64:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(a: float) -> F64:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(a: float) -> F64:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_from_quaternion(x: float, y: float, z: float, w: float) -> F64:
    """Rotation matrix of a unit quaternion (normalised here)."""
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if not math.isfinite(n) or n < 1e-9:
        raise CameraModelError(f"quaternion ({x}, {y}, {z}, {w}) is not a rotation")
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def enu_from_flu_of_ned_euler(roll: float, pitch: float, yaw_ned: float) -> F64:
    """``R_world(ENU)_from_body(FLU)`` for the autopilot's NED/FRD Euler angles.

    ``R_ned_from_frd = Rz(yaw) Ry(pitch) Rx(roll)``; ENU and NED, FLU and FRD
    differ by the fixed swap ``diag``-like matrix ``P`` (its own inverse).
    """
    p = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])  # ENU<->NED
    q = np.diag([1.0, -1.0, -1.0])  # FLU<->FRD
    r_ned_frd = rot_z(yaw_ned) @ rot_y(pitch) @ rot_x(roll)
    return p @ r_ned_frd @ q


def ned_euler_of_enu_from_flu(r_enu_flu: F64) -> tuple[float, float, float]:
    """Inverse of :func:`enu_from_flu_of_ned_euler`: (roll, pitch, yaw_ned) in radians."""
    p = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    q = np.diag([1.0, -1.0, -1.0])
    r = p @ r_enu_flu @ q
    pitch = -math.asin(max(-1.0, min(1.0, float(r[2, 0]))))
    roll = math.atan2(float(r[2, 1]), float(r[2, 2]))
    yaw = math.atan2(float(r[1, 0]), float(r[0, 0]))
    return roll, pitch, yaw


def turned(r_world_from_x: F64, deg: float) -> F64:
    """``r_world_from_x`` turned by ``deg`` about the vertical (ENU sense, counter-clockwise).

    Turning the body about the vertical turns its ground image about the nadir:
    how a heading correction is applied to a pose.
    """
    return np.asarray(rot_z(math.radians(deg)) @ r_world_from_x, np.float64)


def mount_rotation(mount_rpy_deg: Sequence[float]) -> F64:
    """``R_body_from_camera`` for a mount turned by ``mount_rpy_deg`` from nadir."""
    if len(mount_rpy_deg) != 3 or not all(math.isfinite(v) for v in mount_rpy_deg):
        raise CameraModelError(f"mount_rpy_deg must be 3 finite angles, got {mount_rpy_deg!r}")
    r, p, y = (math.radians(v) for v in mount_rpy_deg)
    return rot_z(y) @ rot_y(p) @ rot_x(r) @ R_BODY_FROM_NADIR_CAMERA


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics and distortion of one camera, as ``sensor_msgs/CameraInfo`` states them.

    Attributes:
        width / height: image size in pixels the intrinsics refer to.
        k: the 3x3 camera matrix, row-major (CameraInfo ``k``).
        distortion_model: CameraInfo ``distortion_model``.
        d: distortion coefficients (CameraInfo ``d``).
    """

    width: int
    height: int
    k: tuple[float, ...]
    distortion_model: str = "plumb_bob"
    d: tuple[float, ...] = ()
    _kmat: F64 = field(init=False, repr=False, compare=False)
    _dvec: F64 = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise CameraModelError(f"camera size {self.width}x{self.height} is empty")
        if self.width * self.height > MAX_CAMERA_PIXELS:
            raise CameraModelError(
                f"camera size {self.width}x{self.height} is more than "
                f"{MAX_CAMERA_PIXELS / 1e6:g} MP"
            )
        if len(self.k) != 9 or not all(math.isfinite(v) for v in self.k):
            raise CameraModelError(f"camera matrix k needs 9 finite values, got {self.k!r}")
        fx, _, _, _, fy, *_ = self.k
        if fx <= 0 or fy <= 0:
            raise CameraModelError(f"focal lengths must be positive, got fx={fx} fy={fy}")
        if self.distortion_model not in DISTORTION_MODELS:
            raise CameraModelError(
                f"distortion model {self.distortion_model!r} not supported "
                f"(supported: {', '.join(m for m in DISTORTION_MODELS if m)})"
            )
        if not all(math.isfinite(v) for v in self.d):
            raise CameraModelError(f"distortion coefficients must be finite, got {self.d!r}")
        if self.distortion_model == "equidistant" and len(self.d) not in (0, 4):
            raise CameraModelError("equidistant distortion needs 4 coefficients")
        object.__setattr__(self, "_kmat", np.array(self.k, dtype=np.float64).reshape(3, 3))
        object.__setattr__(self, "_dvec", np.array(self.d, dtype=np.float64))
        if self._has_distortion() and self.distortion_model != "equidistant":
            self._check_invertible()

    def _check_invertible(self) -> None:
        """Every border pixel must be the image of some ray (a real calibration's is)."""
        w, h = self.width - 1.0, self.height - 1.0
        t = np.linspace(0.0, 1.0, 9)
        border = np.concatenate(
            [
                np.stack([t * w, 0 * t], 1),
                np.stack([t * w, 0 * t + h], 1),
                np.stack([0 * t, t * h], 1),
                np.stack([0 * t + w, t * h], 1),
            ]
        )
        back = self.project(self.rays(border))
        worst = float(np.max(np.abs(back - border)))
        if not worst < 0.05:
            raise CameraModelError(
                f"distortion {self.distortion_model} {self.d} cannot be inverted over the "
                f"image (round trip off by {worst:.2f} px): not a usable calibration"
            )

    @classmethod
    def pinhole(cls, width: int, height: int, hfov_deg: float) -> CameraModel:
        """An undistorted pinhole camera with square pixels and a centred principal point."""
        f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(width, height, (f, 0.0, width / 2.0, 0.0, f, height / 2.0, 0.0, 0.0, 1.0))

    @property
    def matrix(self) -> F64:
        return self._kmat

    @property
    def focal_px(self) -> float:
        return float(math.sqrt(self._kmat[0, 0] * self._kmat[1, 1]))

    def _has_distortion(self) -> bool:
        return bool(self._dvec.size) and bool(np.any(self._dvec != 0.0))

    def scaled(self, width: int, height: int) -> CameraModel:
        """The same camera for an image resized to ``width`` x ``height`` (``cv2.resize``).

        Pixel centres sit at integer coordinates, and ``cv2.resize`` keeps the
        image's outer edges, so a coordinate maps as ``(u + 0.5) * sx - 0.5``:
        the principal point moves by that half pixel too. Scaling it by ``sx``
        alone put a 1 km frame's fixes 1.5 m off, always to the same side of
        the aircraft (the same-year control, 300 frames).
        """
        sx, sy = width / self.width, height / self.height
        fx, s, cx, _, fy, cy, *_ = self.k
        cx2, cy2 = (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5
        k = (fx * sx, s * sx, cx2, 0.0, fy * sy, cy2, 0.0, 0.0, 1.0)
        return CameraModel(width, height, k, self.distortion_model, self.d)

    def as_delivered(
        self, binning_x: int = 0, binning_y: int = 0, roi: Sequence[int] = (0, 0, 0, 0)
    ) -> CameraModel:
        """The camera of the images a driver sends when its CameraInfo states binning and a ROI.

        CameraInfo keeps ``k``, ``d`` and its size at the sensor's full
        resolution; a driver that crops to ``roi`` (``x_offset, y_offset, width,
        height`` on the full-resolution sensor) and then bins ``binning_x`` x
        ``binning_y`` pixels into one sends images ``roi.width // binning_x`` wide.
        Binning 0 or 1 is none, and a ROI of all zeros is the whole sensor (the
        message's own definitions). The crop moves the principal point; binning
        combines neighbourhoods, so a binned pixel's centre is the mean of those it
        combines: ``(u + 0.5) / b - 0.5``, the half pixel :meth:`scaled` keeps too
        (image_geometry divides by ``b`` alone, a quarter pixel off at 2x).
        Distortion is on normalised coordinates and stays as it is.

        Without this a camera binning 2x sent half-size images against a
        full-size CameraInfo, and every frame was refused as corrupt.

        Raises:
            CameraModelError: a ROI off the sensor, or smaller than one binned pixel.
        """
        bx, by = max(1, int(binning_x)), max(1, int(binning_y))
        if len(roi) != 4 or min(int(v) for v in roi) < 0:
            raise CameraModelError(f"roi must be 4 non-negative integers, got {tuple(roi)!r}")
        x0, y0, rw, rh = (int(v) for v in roi)
        if (x0, y0, rw, rh) == (0, 0, 0, 0):
            rw, rh = self.width, self.height
        if x0 + rw > self.width or y0 + rh > self.height or rw < bx or rh < by:
            raise CameraModelError(
                f"roi {x0},{y0} {rw}x{rh} binned {bx}x{by} does not fit the "
                f"{self.width}x{self.height} sensor"
            )
        if (bx, by, x0, y0, rw, rh) == (1, 1, 0, 0, self.width, self.height):
            return self
        fx, s, cx, _, fy, cy, *_ = self.k
        cx2, cy2 = (cx - x0 + 0.5) / bx - 0.5, (cy - y0 + 0.5) / by - 0.5
        k = (fx / bx, s / bx, cx2, 0.0, fy / by, cy2, 0.0, 0.0, 1.0)
        return CameraModel(rw // bx, rh // by, k, self.distortion_model, self.d)

    def rays(self, uv: F64) -> F64:
        """Unit-less camera-frame rays ``(x, y, 1)`` of pixel coordinates ``uv`` (N x 2)."""
        pts = np.ascontiguousarray(uv, dtype=np.float64).reshape(-1, 1, 2)
        if not self._has_distortion():
            fx, fy = self._kmat[0, 0], self._kmat[1, 1]
            cx, cy, skew = self._kmat[0, 2], self._kmat[1, 2], self._kmat[0, 1]
            y = (pts[:, 0, 1] - cy) / fy
            x = (pts[:, 0, 0] - cx - skew * y) / fx
        elif self.distortion_model == "equidistant":
            und = cv2.fisheye.undistortPoints(pts, self._kmat, self._dvec)
            x, y = und[:, 0, 0], und[:, 0, 1]
        else:
            first: F64 = np.asarray(cv2.undistortPoints(pts, self._kmat, self._dvec), np.float64)
            x, y = self._newton_undistort(pts[:, 0, :], first[:, 0, 0], first[:, 0, 1])
        return np.stack([x, y, np.ones_like(x)], axis=1)

    def _distort(self, x: F64, y: F64) -> tuple[F64, F64]:
        """OpenCV's radial-tangential model on normalised coordinates (plumb_bob, rational)."""
        d = np.zeros(8)
        d[: min(8, self._dvec.size)] = self._dvec[:8]
        k1, k2, p1, p2, k3, k4, k5, k6 = d
        r2 = x * x + y * y
        radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return xd, yd

    def _newton_undistort(self, uv: F64, x: F64, y: F64) -> tuple[F64, F64]:
        """Polish OpenCV's fixed-point undistortion with Newton steps.

        The fixed-point iteration converges slowly (or not at all) in the corners
        of a wide lens with strong barrel distortion; a few Newton steps on the
        forward model bring every pixel to well under 0.01 px.
        """
        fx, fy = self._kmat[0, 0], self._kmat[1, 1]
        cx, cy, skew = self._kmat[0, 2], self._kmat[1, 2], self._kmat[0, 1]
        ty = (uv[:, 1] - cy) / fy
        tx = (uv[:, 0] - cx - skew * ty) / fx
        x, y = x.astype(np.float64).copy(), y.astype(np.float64).copy()
        h = 1e-7
        for _ in range(10):
            fx0, fy0 = self._distort(x, y)
            ex, ey = fx0 - tx, fy0 - ty
            if float(np.max(np.abs(ex)) + np.max(np.abs(ey))) < 1e-12:
                break
            ax, ay = self._distort(x + h, y)
            bx, by = self._distort(x, y + h)
            j11, j21 = (ax - fx0) / h, (ay - fy0) / h
            j12, j22 = (bx - fx0) / h, (by - fy0) / h
            det = j11 * j22 - j12 * j21
            det = np.where(np.abs(det) < 1e-12, 1e-12, det)
            x = x - (j22 * ex - j12 * ey) / det
            y = y - (-j21 * ex + j11 * ey) / det
        return x, y

    def project(self, points_cam: F64) -> F64:
        """Pixel coordinates (N x 2) of camera-frame points (N x 3, z > 0)."""
        pts = np.ascontiguousarray(points_cam, dtype=np.float64).reshape(-1, 1, 3)
        zero = np.zeros(3)
        if self.distortion_model == "equidistant" and self._has_distortion():
            out, _ = cv2.fisheye.projectPoints(pts, zero, zero, self._kmat, self._dvec)
        else:
            dvec = self._dvec if self._has_distortion() else np.zeros(0)
            out, _ = cv2.projectPoints(pts, zero, zero, self._kmat, dvec)
        return np.asarray(out, np.float64).reshape(-1, 2)


def ground_points(
    camera: CameraModel,
    r_world_from_camera: F64,
    height_m: float,
    uv: F64,
    *,
    min_depression_rad: float = math.radians(20.0),
) -> tuple[F64, NDArray[np.bool_]]:
    """Where pixel rays meet flat ground ``height_m`` below the camera.

    Returns:
        (en, ok): east/north offsets in metres from the camera's nadir (N x 2)
        and which rays reach the ground at least ``min_depression_rad`` below
        the horizon (others are NaN).
    """
    rays = camera.rays(uv) @ r_world_from_camera.T
    norm = np.linalg.norm(rays, axis=1)
    down = -rays[:, 2] / norm
    ok = down > math.sin(min_depression_rad)
    t = np.where(ok, height_m / np.where(ok, -rays[:, 2], 1.0), np.nan)
    en = rays[:, :2] * t[:, None]
    return en, ok
