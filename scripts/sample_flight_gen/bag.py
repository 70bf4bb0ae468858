"""The bag's messages: CameraInfo and CompressedImage as CDR, and the QoS they are offered with."""

from __future__ import annotations

from typing import Any

import numpy as np

from sample_flight_gen.spec import CAMERA, CAMERA_FRAME_ID, IMAGE_H, IMAGE_W, S


def _time(store: Any, ns: int) -> Any:
    return store.types["builtin_interfaces/msg/Time"](sec=ns // S, nanosec=ns % S)


def _header(store: Any, ns: int, frame: str) -> Any:
    return store.types["std_msgs/msg/Header"](stamp=_time(store, ns), frame_id=frame)


def camera_info(store: Any, ns: int) -> bytes:
    t = store.types
    k = np.array(CAMERA.k, dtype=np.float64)
    p = np.array([k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0])
    msg = t["sensor_msgs/msg/CameraInfo"](
        header=_header(store, ns, CAMERA_FRAME_ID),
        height=IMAGE_H,
        width=IMAGE_W,
        distortion_model=CAMERA.distortion_model,
        d=np.array(CAMERA.d, dtype=np.float64),
        k=k,
        r=np.eye(3).ravel(),
        p=p,
        binning_x=0,
        binning_y=0,
        roi=t["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )
    return bytes(store.serialize_cdr(msg, "sensor_msgs/msg/CameraInfo"))


def compressed_image(store: Any, ns: int, jpeg: bytes) -> bytes:
    msg = store.types["sensor_msgs/msg/CompressedImage"](
        header=_header(store, ns, CAMERA_FRAME_ID),
        format="jpeg",
        data=np.frombuffer(jpeg, dtype=np.uint8),
    )
    return bytes(store.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage"))


def reliable_qos(depth: int) -> Any:
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    zero = QosTime(0, 0)
    return Qos(
        QosHistory.KEEP_LAST,
        depth,
        QosReliability.RELIABLE,
        QosDurability.VOLATILE,
        zero,
        zero,
        QosLiveliness.AUTOMATIC,
        zero,
        False,
    )
