"""A compressed image's declared size, read from its header before anything is decoded.

``cv2.imdecode`` allocates the whole image its header declares before it reads a pixel:
a JPEG of a few hundred bytes can declare 30000x30000 pixels (OpenCV's own limit is
2^30) and cost gigabytes. Callers read the size here first and refuse what is too large
(:func:`bounded_size`):

- PNG: the signature, then the IHDR chunk (libpng refuses a file whose first chunk is
  not a 13-byte IHDR, and a zero size).
- JPEG: SOI, then the marker segments walked as libjpeg walks them (bytes before a
  marker and 0xFF fill bytes skipped, RSTn/TEM standalone, every other segment skipped by
  its length) up to the first SOF0..SOF15 other than DHT (C4), JPG (C8) and DAC (CC).
  SOS or EOI before it, a second SOI, a zero width or height (a DNL-deferred height,
  which libjpeg does not decode) or a segment that runs past the end are refused.
- Anything else OpenCV could decode (BMP, TIFF, WebP, PNM, ...) is refused: camera
  ``CompressedImage`` payloads and the tile cache's tiles are JPEG or PNG, and an
  unparsed header's size is unknown.

Only :class:`~gps_denied_onboard.visual_nav.errors.ImageHeaderError` is raised, whatever
the bytes.
"""

from __future__ import annotations

from typing import Final

from gps_denied_onboard.visual_nav.errors import ImageHeaderError

__all__ = ["PNG_SIGNATURE", "bounded_size", "declared_size"]

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
#: OpenCV picks its JPEG decoder on these three bytes.
JPEG_SIGNATURE: Final = b"\xff\xd8\xff"
#: SOFn markers: C0..CF less DHT (C4), JPG (C8) and DAC (CC).
SOF_MARKERS: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Markers without a length: RST0..RST7 and TEM.
STANDALONE_MARKERS: Final = frozenset(range(0xD0, 0xD8)) | {0x01}
PNG_MAX_SIDE: Final = 2**31 - 1


def declared_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` as a PNG or JPEG header declares it.

    Raises:
        ImageHeaderError: neither PNG nor JPEG, or a header that is truncated,
            malformed or declares an empty image.
    """
    data = bytes(data)
    if data.startswith(PNG_SIGNATURE):
        return _png_size(data)
    if data.startswith(JPEG_SIGNATURE):
        return _jpeg_size(data)
    raise ImageHeaderError(f"neither PNG nor JPEG ({len(data)} bytes, starts {data[:4].hex()})")


def bounded_size(data: bytes, max_pixels: int) -> tuple[int, int]:
    """:func:`declared_size`, refused when it declares more than ``max_pixels`` pixels.

    Raises:
        ImageHeaderError: as :func:`declared_size`, or too many pixels.
    """
    width, height = declared_size(data)
    if width * height > max_pixels:
        raise ImageHeaderError(
            f"declares {width}x{height} = {width * height} pixels, more than {max_pixels}"
        )
    return width, height


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24:
        raise ImageHeaderError(f"PNG truncated before its IHDR ({len(data)} bytes)")
    length = int.from_bytes(data[8:12], "big")
    if length != 13 or data[12:16] != b"IHDR":
        raise ImageHeaderError("PNG whose first chunk is not a 13-byte IHDR")
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    if not (0 < width <= PNG_MAX_SIDE and 0 < height <= PNG_MAX_SIDE):
        raise ImageHeaderError(f"PNG declares an invalid size {width}x{height}")
    return width, height


def _jpeg_size(data: bytes) -> tuple[int, int]:
    n = len(data)
    i = 2  # past SOI
    while True:
        # libjpeg's next_marker: skip to a 0xFF, skip fill bytes, FF 00 is not a marker
        while i < n and data[i] != 0xFF:
            i += 1
        while i < n and data[i] == 0xFF:
            i += 1
        if i >= n:
            raise ImageHeaderError("JPEG ends before its frame header (SOF)")
        marker = data[i]
        i += 1
        if marker == 0x00 or marker in STANDALONE_MARKERS:
            continue
        if marker == 0xD8:
            raise ImageHeaderError("JPEG with a second SOI before its frame header")
        if marker in (0xD9, 0xDA):
            raise ImageHeaderError(f"JPEG marker {marker:02X} before any frame header (SOF)")
        if i + 2 > n:
            raise ImageHeaderError(f"JPEG truncated in marker {marker:02X}")
        length = int.from_bytes(data[i : i + 2], "big")
        if length < 2:
            raise ImageHeaderError(f"JPEG marker {marker:02X} with length {length}")
        if marker in SOF_MARKERS:
            if length < 8 or i + 7 > n:
                raise ImageHeaderError(f"JPEG frame header (SOF {marker:02X}) truncated")
            height = int.from_bytes(data[i + 3 : i + 5], "big")
            width = int.from_bytes(data[i + 5 : i + 7], "big")
            if width == 0 or height == 0:
                raise ImageHeaderError(f"JPEG declares an empty or deferred size {width}x{height}")
            return width, height
        i += length
