"""The camera encodings real drivers send: Bayer mosaics, packed 4:2:2 YUV, 16-bit colour.

The expected pixels are worked out here from the encodings' definitions (the
colour filter's layout, BT.601's video-range YUV), not from OpenCV's encoders,
so a pattern or byte order mapped the wrong way round fails.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from sensor_msgs.msg import Image

from gps_denied_onboard.nodes.visual_nav_msgs import image_of
from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.geo import LocalFrame
from gps_denied_onboard.visual_nav.image_codec import ENCODINGS, decode_raw

from .support import CAMERA, LAT0, LON0, T0, Pose, feed, make_estimator, render, synthetic_world

#: the colour filter over each 2x2 cell, row by row, as ROS names the pattern
PATTERNS = {"rggb": "RGGB", "bggr": "BGGR", "gbrg": "GBRG", "grbg": "GRBG"}
_CHANNEL = {"B": 0, "G": 1, "R": 2}


def _mosaic(bgr: NDArray[np.generic], pattern: str) -> NDArray[np.generic]:
    """What a sensor behind the ``pattern`` colour filter records of a BGR image."""
    out = np.zeros(bgr.shape[:2], bgr.dtype)
    for k, colour in enumerate(PATTERNS[pattern]):
        dy, dx = divmod(k, 2)
        out[dy::2, dx::2] = bgr[dy::2, dx::2, _CHANNEL[colour]]
    return out


def _yuv_video_range(bgr: NDArray[np.generic]) -> NDArray[np.uint8]:
    """BT.601 Y, U, V on the 16-235 / 16-240 video range of BGR colours (last axis)."""
    b, g, r = (np.asarray(bgr, float)[..., k] for k in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return np.round(np.stack([y, u, v], axis=-1)).astype(np.uint8)


def _packed_422(ys: NDArray[np.uint8], u: int, v: int, order: str) -> bytes:
    """A frame of luma ``ys`` and one chroma, packed as ``uyvy`` or ``yuyv``."""
    h, w = ys.shape
    out = np.zeros((h, w, 2), np.uint8)
    chroma, luma = (0, 1) if order == "uyvy" else (1, 0)
    out[:, :, luma] = ys
    out[:, 0::2, chroma] = u
    out[:, 1::2, chroma] = v
    return out.tobytes()


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
@pytest.mark.parametrize("depth", [8, 16])
def test_a_bayer_mosaic_of_one_colour_is_demosaiced_to_that_colour(
    pattern: str, depth: int
) -> None:
    bgr = np.zeros((8, 10, 3), np.uint8 if depth == 8 else np.uint16)
    colour = (40, 120, 200) if depth == 8 else (640, 1920, 3200)  # 12-bit levels
    bgr[:] = colour
    raw = _mosaic(bgr, pattern)
    got = decode_raw(f"bayer_{pattern}{depth}", 10, 8, raw.strides[0], raw.tobytes())
    assert got.dtype == bgr.dtype and got.shape == (8, 10, 3)
    # bilinear demosaicing of one colour is that colour wherever a full cell surrounds it
    assert np.array_equal(got[2:-2, 2:-2], bgr[2:-2, 2:-2])


@pytest.mark.parametrize("order", ["uyvy", "yuyv"])
def test_packed_yuv_gives_the_colour_and_the_luma_in_their_places(order: str) -> None:
    for bgr in ((40, 120, 200), (200, 50, 90), (128, 128, 128)):
        y, u, v = (int(c) for c in _yuv_video_range(np.array(bgr)))
        got = decode_raw(order, 6, 4, 12, _packed_422(np.full((4, 6), y, np.uint8), u, v, order))
        assert np.abs(got.astype(int) - np.array(bgr)).max() <= 1, (order, bgr, got[0, 0])
    # gray, a luma ramp along the row: each pixel's own Y, not its neighbour's or a chroma byte
    ramp = np.tile(np.arange(30, 210, 30, dtype=np.uint8), (4, 1))
    got = decode_raw(order, 6, 4, 12, _packed_422(ramp, 128, 128, order))
    want = np.round((ramp.astype(float) - 16) * 255 / 219)
    assert np.abs(got[:, :, 1].astype(int) - want).max() <= 1


def test_deprecated_yuv_names_decode_as_their_successors() -> None:
    data = _packed_422(np.full((2, 4), 100, np.uint8), 90, 160, "uyvy")
    assert np.array_equal(decode_raw("yuv422", 4, 2, 8, data), decode_raw("uyvy", 4, 2, 8, data))
    data = _packed_422(np.full((2, 4), 100, np.uint8), 90, 160, "yuyv")
    assert np.array_equal(
        decode_raw("yuv422_yuy2", 4, 2, 8, data), decode_raw("yuyv", 4, 2, 8, data)
    )


def test_sixteen_bit_colour_keeps_its_depth_in_bgr_order() -> None:
    rgb = np.array([[[1000, 2000, 4000], [10, 20, 30]]], np.uint16)
    got = decode_raw("rgb16", 2, 1, 12, rgb.tobytes())
    assert got.dtype == np.uint16 and got[0].tolist() == [[4000, 2000, 1000], [30, 20, 10]]
    rgba = np.array([[[1000, 2000, 4000, 65535]]], np.uint16)
    assert decode_raw("rgba16", 1, 1, 8, rgba.tobytes())[0, 0].tolist() == [4000, 2000, 1000]
    bgra = np.array([[[1000, 2000, 4000, 0]]], np.uint16)
    assert decode_raw("bgra16", 1, 1, 8, bgra.tobytes())[0, 0].tolist() == [1000, 2000, 4000]


def test_packed_yuv_of_odd_width_and_unknown_encodings_are_typed_rejects() -> None:
    with pytest.raises(FrameRejected) as odd:
        decode_raw("yuyv", 5, 2, 10, bytes(20))
    assert odd.value.reason == "corrupt_image"
    for encoding in ("nv21", "nv24", "32FC1", "8SC1", "16UC3", ""):
        assert encoding not in ENCODINGS
        with pytest.raises(FrameRejected) as unknown:
            decode_raw(encoding, 4, 4, 32, bytes(128))
        assert unknown.value.reason == "unknown_encoding"


@pytest.mark.parametrize("encoding", ["bayer_grbg8", "bayer_rggb16", "yuyv", "uyvy", "rgb8"])
def test_a_frame_from_each_kind_of_camera_fixes_where_the_bgr_frame_does(encoding: str) -> None:
    """The node's own conversion (``image_of`` on a ``sensor_msgs/Image``) of a rendered
    frame sent as a machine-vision, USB or CSI camera sends it, fixed within a metre
    of the same frame sent as ``bgr8``."""
    ortho, tiles = synthetic_world()
    pose = Pose(LAT0, LON0, 500.0, yaw_deg=30.0)
    bgr = render(ortho, pose)
    h, w = bgr.shape[:2]
    if encoding.startswith("bayer_"):
        pattern, depth = encoding[6:10], int(encoding[10:])
        raw = _mosaic(bgr if depth == 8 else bgr.astype(np.uint16) * 16, pattern)
        data, step = raw.tobytes(), raw.strides[0]
    elif encoding == "rgb8":
        data, step = np.ascontiguousarray(bgr[:, :, ::-1]).tobytes(), 3 * w
    else:
        planes = _yuv_video_range(bgr)
        packed = np.zeros((h, w, 2), np.uint8)
        chroma, luma = (0, 1) if encoding == "uyvy" else (1, 0)
        packed[:, :, luma] = planes[:, :, 0]
        packed[:, 0::2, chroma] = planes[:, 0::2, 1]
        packed[:, 1::2, chroma] = planes[:, 1::2, 2]
        data, step = packed.tobytes(), 2 * w
    msg = Image(encoding=encoding, width=w, height=h, step=step, data=data)
    frame = image_of(msg, CAMERA)
    assert frame.ndim == 3 and frame.shape[:2] == (h, w)

    est = make_estimator(tiles)
    feed(est, T0, pose, prior=pose)
    want = est.process(T0, bgr, CAMERA)
    est = make_estimator(tiles)
    feed(est, T0, pose, prior=pose)
    got = est.process(T0, frame, CAMERA)
    e, n = LocalFrame(want.latitude, want.longitude).to_en(got.latitude, got.longitude)
    assert np.hypot(e, n) < 1.0, (encoding, e, n)
