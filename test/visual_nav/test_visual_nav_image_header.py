"""Decompression bombs: a compressed image's size is read from its header and refused
before OpenCV allocates it (camera frames and map tiles)."""

from __future__ import annotations

import struct
import zlib
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gps_denied_onboard.visual_nav.config import VisualNavConfig
from gps_denied_onboard.visual_nav.errors import FrameRejected, ImageHeaderError
from gps_denied_onboard.visual_nav.image_codec import MAX_FRAME_PIXELS, decode_compressed
from gps_denied_onboard.visual_nav.image_header import (
    PNG_SIGNATURE,
    bounded_size,
    declared_size,
)

from .support import CAMERA, LAT0, LON0


def _encode(ext: str, img: np.ndarray[Any, Any], *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok
    return bytes(buf)


def _jpeg_bomb(width: int, height: int) -> bytes:
    """A real 8x8 JPEG whose frame header declares ``width`` x ``height``."""
    data = bytearray(_encode(".jpg", np.full((8, 8), 128, np.uint8)))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _png_bomb(width: int, height: int) -> bytes:
    """A valid all-black 8-bit gray PNG: a few KB of zlib for ``width * height`` bytes."""
    z = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _reason(data: bytes, max_pixels: int = MAX_FRAME_PIXELS) -> str:
    with pytest.raises(FrameRejected) as err:
        decode_compressed(data, max_pixels)
    return err.value.reason


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 300),
    st.integers(1, 300),
    st.sampled_from([1, 3]),
    st.sampled_from([".jpg", ".jpg-progressive", ".png"]),
)
def test_a_real_jpeg_or_png_declares_its_true_size(
    width: int, height: int, channels: int, ext: str
) -> None:
    shape = (height, width) if channels == 1 else (height, width, 3)
    img = np.random.default_rng(width * height).integers(0, 256, shape, dtype=np.uint8)
    if ext == ".jpg-progressive":
        data = _encode(".jpg", img, cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    else:
        data = _encode(ext, img)
    assert declared_size(data) == (width, height)
    assert decode_compressed(data, width * height).shape == shape


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([b"", PNG_SIGNATURE, b"\xff\xd8\xff"]), st.binary(max_size=64))
def test_random_bytes_raise_only_the_typed_header_error(prefix: bytes, tail: bytes) -> None:
    try:
        width, height = declared_size(prefix + tail)
    except ImageHeaderError:
        return
    assert width > 0 and height > 0


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([".jpg", ".png"]), st.data())
def test_a_header_with_a_byte_changed_never_decodes_to_more_than_it_declares(
    ext: str, data: st.DataObject
) -> None:
    """Whatever one changed byte does, what passes the header check decodes to the
    size the check read (or not at all): never more pixels than it allowed."""
    raw = bytearray(_encode(ext, np.arange(64, dtype=np.uint8).reshape(8, 8)))
    at = data.draw(st.integers(0, min(len(raw), 200) - 1))
    raw[at] = data.draw(st.integers(0, 255))
    try:
        width, height = bounded_size(bytes(raw), 10**6)
    except ImageHeaderError:
        return
    img = cv2.imdecode(np.frombuffer(bytes(raw), np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is None or img.shape[:2] == (height, width)


def test_a_thumbnail_frame_header_inside_an_app_segment_is_skipped() -> None:
    """EXIF thumbnails carry their own SOF inside APP1; the walk skips the segment."""
    jpeg = _encode(".jpg", np.full((24, 40), 90, np.uint8))
    fake_sof = b"\xff\xc0\x00\x0b\x08\x75\x30\x75\x30\x01\x01\x11\x00"  # 30000x30000
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + len(fake_sof)) + fake_sof
    data = jpeg[:2] + app1 + jpeg[2:]
    assert declared_size(data) == (40, 24)
    assert decode_compressed(data, 40 * 24).shape == (24, 40)


def test_a_jpeg_or_png_bomb_is_refused_before_decoding() -> None:
    jpeg = _jpeg_bomb(5000, 5000)  # 331 bytes for 25 Mpx
    png = _png_bomb(5000, 5000)
    assert len(jpeg) < 1000 and len(png) < 100_000
    assert declared_size(jpeg) == declared_size(png) == (5000, 5000)
    for bomb in (jpeg, png):
        assert _reason(bomb) == "corrupt_image"  # over the default cap
        assert _reason(bomb, CAMERA.width * CAMERA.height) == "corrupt_image"
    with pytest.raises(FrameRejected, match="declares 5000x5000"):
        decode_compressed(jpeg, 640 * 480)


def test_other_formats_and_broken_headers_are_refused() -> None:
    """Only PNG and JPEG are decoded: another format's size is not read, so refused."""
    img = np.full((16, 16), 7, np.uint8)
    for ext in (".bmp", ".tiff", ".pgm"):
        assert _reason(_encode(ext, img)) == "corrupt_image"
    deferred = _jpeg_bomb(64, 0)  # height left to a DNL marker: libjpeg does not
    no_frame = b"\xff\xd8\xff\xda\x00\x02"  # SOS before any SOF
    endless = b"\xff\xd8\xff\xe0\xff\xff" + b"\x00" * 10  # a segment past the end
    not_ihdr = PNG_SIGNATURE + _chunk(b"tEXt", b"x" * 13)
    for bad in (deferred, no_frame, endless, not_ihdr, PNG_SIGNATURE + b"\x00" * 8):
        with pytest.raises(ImageHeaderError):
            declared_size(bad)
        assert _reason(bad) == "corrupt_image"


def test_a_camera_frame_larger_than_its_camera_info_is_refused_before_decoding() -> None:
    from sensor_msgs.msg import CompressedImage

    from gps_denied_onboard.nodes.visual_nav_msgs import image_of

    bigger = _encode(".jpg", np.full((CAMERA.height, CAMERA.width + 8), 100, np.uint8))
    msg = CompressedImage(format="jpeg", data=bigger)
    assert image_of(msg).shape == (CAMERA.height, CAMERA.width + 8)  # no CameraInfo: cap
    with pytest.raises(FrameRejected) as err:
        image_of(msg, CAMERA)
    assert err.value.reason == "corrupt_image"
    with pytest.raises(FrameRejected) as err:
        image_of(CompressedImage(format="jpeg", data=_jpeg_bomb(20000, 20000)))
    assert err.value.reason == "corrupt_image"
    fits = _encode(".jpg", np.full((CAMERA.height, CAMERA.width), 100, np.uint8))
    assert image_of(CompressedImage(format="jpeg", data=fits), CAMERA).shape[:2] == (
        CAMERA.height,
        CAMERA.width,
    )


def test_a_tile_bomb_is_never_decoded_and_not_asked_for_again() -> None:
    from gps_denied_onboard.nodes.tile_prefetch import MAX_TILE_PIXELS, TilePrefetch, decode_tile

    bomb = _png_bomb(4100, 4100)
    assert MAX_TILE_PIXELS < 4100 * 4100
    assert decode_tile(bomb) is None
    assert decode_tile(_jpeg_bomb(20000, 20000)) is None
    assert decode_tile(_encode(".bmp", np.zeros((256, 256, 3), np.uint8))) is None

    zooms: list[int] = []
    gets: list[Any] = []

    def query(req: Any) -> Any:
        zooms.append(int(req.zoom))
        info = SimpleNamespace(x=100, y=200, source="ortho", flight_id="", tile_id="t1")
        return SimpleNamespace(success=True, tiles=[info] if req.zoom == zooms[0] else [])

    def get(req: Any) -> Any:
        gets.append(req)
        return SimpleNamespace(found=True, image=SimpleNamespace(data=bomb))

    prefetch = TilePrefetch(query, get)
    cfg = VisualNavConfig()
    prefetch.fetch(cfg, LAT0, LON0)
    prefetch.fetch(cfg, LAT0, LON0)
    assert len(gets) == 1
    assert not prefetch.tiles.has(zooms[0], 100, 200)
