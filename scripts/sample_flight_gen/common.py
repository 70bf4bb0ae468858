"""Small helpers the generator's parts share: hashes, JPEG, CPU-independent maths, NAIP."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pyproj import CRS

from gps_denied_onboard.replay.geotiff import GeoRef, read_geotiff


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(
        ".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 1]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf)


def load_naip(naip_dir: Path, year: str) -> tuple[Path, np.ndarray, GeoRef]:
    """The clip of ``year`` as BGR (OpenCV order) and its georeference."""
    (path,) = sorted(naip_dir.glob(f"*_{year}*.tif"))
    image, geo = read_geotiff(path)
    if image.shape[2] < 3:
        raise SystemExit(f"{path}: expected R, G, B bands, got {image.shape[2]}")
    return path, np.ascontiguousarray(image[:, :, 2::-1]), geo


def aeqd(lat: float, lon: float) -> CRS:
    return CRS.from_proj4(
        f"+proj=aeqd +lat_0={float(lat)!r} +lon_0={float(lon)!r} +ellps=WGS84 +units=m"
    )


def libm(f: Any, *arrays: Any) -> np.ndarray:
    """Elementwise ``f`` from Python's ``math`` over same-shape arrays.

    numpy's transcendental kernels are SIMD-dispatched (SVML on AVX-512), so
    their last bit depends on the CPU; libm's do not vary that way. Byte-identical
    output on another machine needs the same bits here.
    """
    arrs = [np.asarray(a, dtype=np.float64) for a in arrays]
    shape = arrs[0].shape
    flat = [a.ravel().tolist() for a in arrs]
    return np.array([f(*v) for v in zip(*flat, strict=True)], dtype=np.float64).reshape(shape)
