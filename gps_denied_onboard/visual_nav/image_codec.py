"""ROS image messages -> numpy, without cv_bridge (which no registry carries).

One conversion, tested on its own: ``sensor_msgs/Image`` fields (encoding,
size, step, bytes) and ``sensor_msgs/CompressedImage`` bytes (JPEG or PNG,
decoded by OpenCV once their header's size is within a bound:
:mod:`~gps_denied_onboard.visual_nav.image_header`), each to a BGR or mono
``uint8``/``uint16`` array. The node offers only the encodings refused here to
``cv_bridge``, where it is installed.
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

#: encoding -> (samples per pixel in the buffer, dtype, conversion to BGR or None).
#: The names are ``sensor_msgs/image_encodings.hpp``'s. Bayer mosaics are
#: demosaiced and packed 4:2:2 YUV converted to BGR as cv_bridge does (its
#: conversion table maps ROS's ``bayer_rggb`` to OpenCV's ``BayerBG`` and so on:
#: OpenCV names a pattern by its second row's middle pixels).
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
    "bgr16": (3, np.uint16, None),
    "rgb16": (3, np.uint16, cv2.COLOR_RGB2BGR),
    "bgra16": (4, np.uint16, cv2.COLOR_BGRA2BGR),
    "rgba16": (4, np.uint16, cv2.COLOR_RGBA2BGR),
    # machine-vision cameras that leave demosaicing to the host
    "bayer_rggb8": (1, np.uint8, cv2.COLOR_BayerBG2BGR),
    "bayer_bggr8": (1, np.uint8, cv2.COLOR_BayerRG2BGR),
    "bayer_gbrg8": (1, np.uint8, cv2.COLOR_BayerGR2BGR),
    "bayer_grbg8": (1, np.uint8, cv2.COLOR_BayerGB2BGR),
    "bayer_rggb16": (1, np.uint16, cv2.COLOR_BayerBG2BGR),
    "bayer_bggr16": (1, np.uint16, cv2.COLOR_BayerRG2BGR),
    "bayer_gbrg16": (1, np.uint16, cv2.COLOR_BayerGR2BGR),
    "bayer_grbg16": (1, np.uint16, cv2.COLOR_BayerGB2BGR),
    # packed 4:2:2 from V4L2 and CSI cameras, by their new names and their deprecated ones
    "uyvy": (2, np.uint8, cv2.COLOR_YUV2BGR_UYVY),
    "yuv422": (2, np.uint8, cv2.COLOR_YUV2BGR_UYVY),
    "yuyv": (2, np.uint8, cv2.COLOR_YUV2BGR_YUYV),
    "yuv422_yuy2": (2, np.uint8, cv2.COLOR_YUV2BGR_YUYV),
}


def decode_raw(
    encoding: str, width: int, height: int, step: int, data: bytes, *, big_endian: bool = False
) -> NDArray[np.generic]:
    """A ``sensor_msgs/Image`` as a numpy array (BGR or mono, ``uint8`` or ``uint16``).

    Every encoding of :data:`ENCODINGS`; others (NV21 and NV24, whose planes
    ROS does not lay out by ``step`` alone, signed, float and multi-channel
    generic types) are refused rather than guessed at.

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
    if channels == 2 and width % 2:  # 4:2:2: one U and one V sample per two pixels
        raise FrameRejected("corrupt_image", f"{encoding} image of odd width {width}")
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
