"""The visual position estimator node's message conversions.

Split out of :mod:`gps_denied_onboard.nodes.visual_nav_node` (the adapter):
``CameraInfo`` -> :class:`~gps_denied_onboard.visual_nav.camera.CameraModel`, a camera
message's pixels, a ``NavSatFix`` covariance's horizontal sigma, a
:class:`~gps_denied_onboard.visual_nav.estimator.VisualFix` -> ``PositionFix`` and
``NavSatFix``, and a snapshot tile -> ``TileSnapshot``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sensor_msgs.msg import CompressedImage, NavSatFix, NavSatStatus

from gps_denied_onboard.msg import PositionFix, TileSnapshot
from gps_denied_onboard.ros_topics import ns_to_time_msg
from gps_denied_onboard.visual_nav.camera import CameraModel
from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.image_codec import (
    ENCODINGS,
    MAX_FRAME_PIXELS,
    decode_compressed,
    decode_raw,
)
from gps_denied_onboard.visual_nav.snapshot import Snapshot
from gps_denied_onboard.visual_nav.state import Prior

__all__ = [
    "camera_model_of",
    "fix_to_msg",
    "fix_to_navsat",
    "horizontal_sigma",
    "image_of",
    "snapshot_to_msg",
]

try:  # cv_bridge where a real ROS install has it, for what our own conversion does not know
    from cv_bridge import CvBridge  # type: ignore[import-not-found]

    _BRIDGE: Any = CvBridge()
except ImportError:
    _BRIDGE = None


def horizontal_sigma(msg: NavSatFix) -> float | None:
    """1-sigma per horizontal axis from a NavSatFix covariance (the larger of east and
    north); None when it states none (type unknown, zero, not finite)."""
    if not msg.position_covariance_type:
        return None
    cov = msg.position_covariance
    var = max(float(cov[0]), float(cov[4]))
    return math.sqrt(var) if math.isfinite(var) and var > 0 else None


def camera_model_of(msg: Any, *, rectified: bool = False) -> CameraModel:
    """``sensor_msgs/CameraInfo`` -> the :class:`CameraModel` of the images the camera
    sends: its binning and ROI applied (:meth:`CameraModel.as_delivered`; raises
    CameraModelError).

    ``rectified``: the images are already undistorted (``image_rect``): their camera is
    ``p``'s left 3x3, with no distortion, as CameraInfo defines it for rectified images
    (an all-zero ``p``, an uncalibrated camera's, is refused for its focal lengths)."""
    roi = msg.roi
    k: tuple[float, ...] = tuple(float(v) for v in msg.k)
    model, d = str(msg.distortion_model), tuple(float(v) for v in msg.d)
    if rectified:
        p = [float(v) for v in msg.p]
        k, model, d = (*p[0:3], *p[4:7], *p[8:11]), "plumb_bob", ()
    return CameraModel(int(msg.width), int(msg.height), k, model, d).as_delivered(
        int(msg.binning_x),
        int(msg.binning_y),
        (int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)),
    )


def image_of(msg: Any, camera: CameraModel | None = None) -> np.ndarray[Any, Any]:
    """A camera message's pixels (raises FrameRejected for what cannot be decoded).

    A compressed frame may declare no more pixels than ``camera``'s CameraInfo size
    (:data:`~gps_denied_onboard.visual_nav.image_codec.MAX_FRAME_PIXELS` without one),
    checked on its header before decoding.

    A raw ``Image`` of an encoding in
    :data:`~gps_denied_onboard.visual_nav.image_codec.ENCODINGS` goes through our own
    tested conversion, cv_bridge or not, so the aircraft matches the pixels the tests
    matched: cv_bridge's ``passthrough`` hands ``rgb8`` over in RGB order, whose gray
    plane the estimator (BGR, like the tiles) would have weighed with red and blue
    swapped, and it cannot convert the ``uyvy``/``yuyv`` names that replaced
    ``yuv422``. Only an encoding ours refuses is offered to cv_bridge where it is
    installed; whatever it makes of it still has to pass the estimator's pixel checks."""
    if isinstance(msg, CompressedImage):
        limit = MAX_FRAME_PIXELS if camera is None else camera.width * camera.height
        return decode_compressed(bytes(msg.data), limit)
    encoding = str(msg.encoding)
    if encoding not in ENCODINGS and _BRIDGE is not None:
        try:
            return np.asarray(_BRIDGE.imgmsg_to_cv2(msg, desired_encoding="passthrough"))
        except Exception as err:  # cv_bridge raises its own CvBridgeError
            raise FrameRejected("unknown_encoding", str(err)) from err
    return decode_raw(
        encoding,
        int(msg.width),
        int(msg.height),
        int(msg.step),
        bytes(msg.data),
        big_endian=bool(msg.is_bigendian),
    )


def fix_to_msg(fix: VisualFix) -> PositionFix:
    out = PositionFix()
    out.header.stamp = ns_to_time_msg(fix.stamp_ns)
    out.header.frame_id = "map"
    out.latitude, out.longitude, out.altitude_msl = fix.latitude, fix.longitude, fix.altitude_msl
    if fix.velocity_en is not None:
        out.velocity_enu.x, out.velocity_enu.y = fix.velocity_en
        out.velocity_valid = True
        v = fix.velocity_sigma**2
        out.velocity_covariance = [v, 0.0, 0.0, 0.0, v, 0.0, 0.0, 0.0, v]
    out.position_covariance = list(fix.position_covariance)
    out.yaw_enu = fix.yaw_enu
    out.yaw_valid = True
    out.yaw_variance = fix.yaw_sigma**2
    out.reset_counter = fix.reset_counter
    out.quality = fix.quality
    return out


def fix_to_navsat(fix: VisualFix, frame_id: str) -> NavSatFix:
    """``fix`` as a standard ``NavSatFix`` in ``frame_id``, for tools that read no
    message of ours (a map panel, robot_localization's navsat_transform).

    Stamped with the frame's capture time like the ``PositionFix``; status
    ``STATUS_FIX`` with no GNSS service bit (no constellation made it); the
    covariance the ``PositionFix``'s (ENU, m^2, ``COVARIANCE_TYPE_DIAGONAL_KNOWN``);
    the altitude the autopilot's above mean sea level, as ``/fc/navsat`` carries it
    (the geoid's separation from the ellipsoid needs a grid the aircraft may not
    hold). Velocity, yaw and the reset counter have no place in it.
    """
    out = NavSatFix()
    out.header.stamp = ns_to_time_msg(fix.stamp_ns)
    out.header.frame_id = frame_id
    out.status.status = NavSatStatus.STATUS_FIX
    out.status.service = 0
    out.latitude, out.longitude, out.altitude = fix.latitude, fix.longitude, fix.altitude_msl
    out.position_covariance = [float(v) for v in fix.position_covariance]
    out.position_covariance_type = NavSatFix.COVARIANCE_TYPE_DIAGONAL_KNOWN
    return out


def prior_of_fix_msg(msg: PositionFix, stamp_ns: int) -> Prior | None:
    """A PositionFix (ours, as the FC bridge took it) as the prior it leaves behind:
    its position at the larger of its east and north sigmas, its velocity at its own
    sigma; a velocity not valid goes as sigma 0, which
    :meth:`.prior.PriorTracker.resume` takes for unknown. None when its position
    covariance states no finite positive variance ("0 everywhere = unknown")."""
    cov = [float(v) for v in msg.position_covariance]
    var = max(cov[0], cov[4])
    if not (math.isfinite(var) and var > 0):
        return None
    velocity, velocity_sigma = (0.0, 0.0), 0.0
    if msg.velocity_valid:
        vcov = [float(v) for v in msg.velocity_covariance]
        vvar = max(vcov[0], vcov[4])
        velocity = (float(msg.velocity_enu.x), float(msg.velocity_enu.y))
        velocity_sigma = math.sqrt(vvar) if vvar > 0 else 0.0  # NaN, 0: unknown
    return Prior(
        stamp_ns,
        float(msg.latitude),
        float(msg.longitude),
        math.sqrt(var),
        velocity,
        velocity_sigma,
        "resumed",
    )


def snapshot_to_msg(fix: VisualFix, snap: Snapshot, flight_id: str = "") -> TileSnapshot:
    """The tile under ``fix``, rendered from its frame
    (:func:`~gps_denied_onboard.visual_nav.snapshot.snapshot_tile`), as a message of
    the flight ``flight_id`` (a UUID; "" for none: the tile cache then keeps it as no
    flight's, never pending upload)."""
    msg = TileSnapshot()
    msg.flight_id = flight_id
    msg.header.stamp = ns_to_time_msg(fix.stamp_ns)
    msg.zoom, msg.x, msg.y = snap.zoom, snap.x, snap.y
    msg.latitude, msg.longitude = fix.latitude, fix.longitude
    msg.quality_json = (
        f'{{"source":"visual_nav","quality":{fix.quality},"sigma_m":{fix.sigma_m:.2f},'
        f'"coverage":{snap.coverage:.3f}}}'
    )
    msg.image.format = "jpeg"
    msg.image.data = snap.jpeg
    return msg
