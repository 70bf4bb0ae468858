"""ROS image messages -> numpy, without cv_bridge (which no registry carries).

One conversion, tested on its own: ``sensor_msgs/Image`` fields (encoding,
size, step, bytes) and ``sensor_msgs/CompressedImage`` bytes (JPEG or PNG,
decoded by OpenCV once their header's size is within a bound:
:mod:`~gps_denied_onboard.visual_nav.image_header`). The node uses ``cv_bridge``
instead where it is installed; both give a BGR or mono ``uint8``/``uint16`` array.
"""

from __future__ import annotations

from typing import Any, Final

import cv2
import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.camera import MAX_CAMERA_PIXELS
from gps_denied_onboard.visual_nav.errors import FrameRejected, ImageHeaderError
from gps_denied_onboard.visual_nav.image_header import bounded_size

#: The most pixels a compressed frame may declare when no CameraInfo gives its size
#: (the largest camera a CameraInfo may describe; a frame without CameraInfo is
#: refused by the estimator anyway).
MAX_FRAME_PIXELS: Final = MAX_CAMERA_PIXELS

#: encoding -> (channels, dtype, conversion to BGR or None)
ENCODINGS: Final[dict[str, tuple[int, type, int | None]]] = {
    "mono8": (1, np.uint8, None),
    "8UC1": (1, np.uint8, None),
    "mono16": (1, np.uint16, None),
    "16UC1": (1, np.uint16, None),
    "bgr8": (3, np.uint8, None),
    "8UC3": (3, np.uint8, None),
    "rgb8": (3, np.uint8, cv2.COLOR_RGB2BGR),
    "bgra8": (4, np.uint8, cv2.COLOR_BGRA2BGR),
    "rgba8": (4, np.uint8, cv2.COLOR_RGBA2BGR),
}


def decode_raw(
    encoding: str, width: int, height: int, step: int, data: bytes, *, big_endian: bool = False
) -> NDArray[np.generic]:
    """A ``sensor_msgs/Image`` as a numpy array (BGR or mono).

    Raises:
        FrameRejected: ``unknown_encoding`` or ``corrupt_image`` (empty, short
            buffer, step smaller than a row).
    """
    spec = ENCODINGS.get(encoding)
    if spec is None:
        raise FrameRejected("unknown_encoding", f"encoding {encoding!r} not supported")
    channels, dtype, conversion = spec
    if width <= 0 or height <= 0:
        raise FrameRejected("corrupt_image", f"image size {width}x{height}")
    itemsize = np.dtype(dtype).itemsize
    row = width * channels * itemsize
    if step < row:
        raise FrameRejected("corrupt_image", f"step {step} shorter than a row of {row} bytes")
    if len(data) < step * height:
        raise FrameRejected("corrupt_image", f"{len(data)} bytes for {height} rows of step {step}")
    buf = np.frombuffer(bytes(data[: step * height]), dtype=np.uint8).reshape(height, step)
    pixels: np.ndarray[Any, Any] = buf[:, :row].copy().view(dtype)
    if itemsize > 1 and big_endian == np.little_endian:  # data and host disagree
        pixels = pixels.byteswap()
    img = pixels.reshape(height, width, channels) if channels > 1 else pixels.reshape(height, width)
    if conversion is not None:
        img = cv2.cvtColor(img, conversion)
    return np.asarray(img)


def decode_compressed(data: bytes, max_pixels: int = MAX_FRAME_PIXELS) -> NDArray[np.generic]:
    """A ``sensor_msgs/CompressedImage`` payload (JPEG, PNG) as a numpy array.

    The header is read first (:func:`~.image_header.bounded_size`): neither PNG nor
    JPEG, an unreadable header or more than ``max_pixels`` pixels is refused before
    OpenCV allocates anything.

    Raises:
        FrameRejected: ``corrupt_image`` when empty, refused by its header or undecodable.
    """
    if not data:
        raise FrameRejected("corrupt_image", "empty compressed image")
    try:
        bounded_size(data, max_pixels)
    except ImageHeaderError as err:
        raise FrameRejected("corrupt_image", f"compressed image refused: {err}") from err
    img = cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise FrameRejected("corrupt_image", f"undecodable compressed image ({len(data)} bytes)")
    return np.asarray(img)
