"""Rectification: a camera frame -> a north-up ground image at the map's resolution.

The ground is taken as flat, ``height_m`` below the camera. For a pinhole
camera the map from ground plane to image is a homography, so after removing
lens distortion (OpenCV's undistortion maps, cached per camera) one
``warpPerspective`` does the whole job. The output grid is in true metres
east/north of the camera's nadir, ``resolution_m`` per pixel, which is the
map's pixel grid (see :mod:`.geo`: mercator is locally a uniform scaling).

Before warping, a frame much finer than the map is shrunk with area
averaging, so the warp does not alias.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.camera import CameraModel, ground_points
from gps_denied_onboard.visual_nav.features import fill_mask, saturation_f32

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

#: how far from the nadir (metres, east and north) a rectified frame reaches at most
MAX_EXTENT_M = 2500.0


@dataclass(frozen=True)
class RectifiedFrame:
    """A north-up ground image.

    Attributes:
        image: float32 gray, rows from north to south, columns west to east.
        mask: uint8, non-zero where the camera saw the ground.
        nadir_col / nadir_row: where the camera's nadir falls, in pixel
            coordinates of ``image`` (pixel centres at integers).
        resolution_m: ground metres per pixel.
        footprint_m: the diameter of the area seen (metres, the box's diagonal).
        chroma: the frame's colour saturation (:func:`.features.saturation_f32`)
            on the same grid; None for a mono frame.
    """

    image: F32
    mask: NDArray[np.uint8]
    nadir_col: float
    nadir_row: float
    resolution_m: float
    footprint_m: float
    chroma: F32 | None = None

    @property
    def ground_box_m(self) -> tuple[float, float, float, float]:
        """The box the seen ground fills, in metres from the nadir: (west, south, east,
        north) edges, east and north positive; all 0 where nothing was seen."""
        rows = np.nonzero(self.mask.any(axis=1))[0]
        cols = np.nonzero(self.mask.any(axis=0))[0]
        if rows.size == 0:
            return 0.0, 0.0, 0.0, 0.0
        r = self.resolution_m
        return (
            float(cols[0] - 0.5 - self.nadir_col) * r,
            float(self.nadir_row - rows[-1] - 0.5) * r,
            float(cols[-1] + 0.5 - self.nadir_col) * r,
            float(self.nadir_row - rows[0] + 0.5) * r,
        )

    @property
    def centre_offset_px(self) -> tuple[float, float]:
        """The footprint's centroid minus the nadir, in pixels (col, row)."""
        rows, cols = np.nonzero(self.mask)
        if rows.size == 0:
            return 0.0, 0.0
        return float(cols.mean()) - self.nadir_col, float(rows.mean()) - self.nadir_row


@lru_cache(maxsize=8)
def _undistort_maps(camera: CameraModel) -> tuple[F32, F32]:
    k = camera.matrix
    d = np.array(camera.d, dtype=np.float64)
    size = (camera.width, camera.height)
    if camera.distortion_model == "equidistant":
        m1, m2 = cv2.fisheye.initUndistortRectifyMap(k, d, np.eye(3), k, size, cv2.CV_32FC1)
    else:
        m1, m2 = cv2.initUndistortRectifyMap(k, d, np.eye(3), k, size, cv2.CV_32FC1)
    return np.asarray(m1, np.float32), np.asarray(m2, np.float32)


@lru_cache(maxsize=16)
def _shrunk(camera: CameraModel, width: int, height: int) -> CameraModel:
    """``camera.scaled``, once per size: a distorted model checks its own inverse over
    the image border when built (0.43 ms; :func:`prepare` 1.6 -> 1.2 ms for the sample
    flight's camera), and every frame of a flight shrinks to the same few sizes."""
    return camera.scaled(width, height)


def _border_pixels(width: int, height: int, per_side: int = 12) -> F64:
    t = np.linspace(0.0, 1.0, per_side, endpoint=False)
    w, h = width - 1.0, height - 1.0
    top = np.stack([t * w, np.zeros_like(t)], 1)
    right = np.stack([np.full_like(t, w), t * h], 1)
    bottom = np.stack([w - t * w, np.full_like(t, h)], 1)
    left = np.stack([np.zeros_like(t), h - t * h], 1)
    return np.concatenate([top, right, bottom, left])


@dataclass(frozen=True)
class PreparedFrame:
    """A frame shrunk towards the output resolution and undistorted, once per resolution."""

    gray: F32
    valid: NDArray[np.uint8]
    camera: CameraModel  # the pinhole (distortion-free) camera of ``gray``
    chroma: F32 | None = None  # saturation, as ``gray``


def _grid(camera: CameraModel, height_m: float, resolution_m: float) -> CameraModel:
    """The (still distorted) camera of a frame shrunk towards ``resolution_m``: the
    camera itself when the frame is not much finer than that."""
    gsd = height_m / camera.focal_px if height_m > 0 else resolution_m
    shrink = gsd / resolution_m
    if shrink >= 0.7:
        return camera
    w = max(8, round(camera.width * shrink * 1.4))
    h = max(8, round(camera.height * w / camera.width))
    return _shrunk(camera, w, h)


def prepare(
    gray: F32,
    camera: CameraModel,
    height_m: float,
    resolution_m: float,
    *,
    fill: NDArray[np.uint8] | None = None,
) -> PreparedFrame:
    """Shrink ``gray`` when it is much finer than ``resolution_m`` and remove lens distortion.

    The valid mask leaves out the image's black fill (:func:`.features.fill_mask`:
    a fisheye's dark surround, a lens hood's corners, a blacked-out overlay box),
    whose edges are none on the ground. ``fill``: that mask when the caller has it
    already (a frame prepared at several resolutions computes it once). A frame's
    colour is added to what this prepared when it is asked for (:func:`with_chroma`).
    """
    if gray.shape != (camera.height, camera.width):
        raise ValueError(
            f"frame {gray.shape} does not match the camera {camera.width}x{camera.height}"
        )
    valid = fill_mask(gray) if fill is None else fill
    grid = _grid(camera, height_m, resolution_m)
    if grid is not camera:
        size = (grid.width, grid.height)
        gray = np.asarray(cv2.resize(gray, size, interpolation=cv2.INTER_AREA), np.float32)
        valid = np.asarray(cv2.resize(valid, size, interpolation=cv2.INTER_NEAREST), np.uint8)
    out = grid
    if any(v != 0.0 for v in grid.d):
        m1, m2 = _undistort_maps(grid)
        gray = np.asarray(
            cv2.remap(gray, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT), np.float32
        )
        valid = np.asarray(
            cv2.remap(valid, m1, m2, cv2.INTER_NEAREST, borderValue=0),
            np.uint8,
        )
        out = CameraModel(grid.width, grid.height, grid.k)
    return PreparedFrame(np.asarray(gray, np.float32), valid, out)


def with_chroma(
    prep: PreparedFrame,
    color: NDArray[np.generic],
    camera: CameraModel,
    height_m: float,
    resolution_m: float,
) -> PreparedFrame:
    """``prep`` (:func:`prepare` of the same frame, camera, height and resolution) with
    the saturation of ``color`` (BGR or BGRA, at ``camera``'s size) on its grid.

    The saturation (:func:`.features.saturation_f32`) is taken after the shrink:
    the colour of the area a map pixel covers, and a fraction of the work. A
    frame's gray is prepared for the search; its colour only when the gate asks,
    and then without preparing the gray again.
    """
    if color.shape[:2] != (camera.height, camera.width):
        raise ValueError(
            f"colour frame {color.shape} does not match the camera {camera.width}x{camera.height}"
        )
    grid = _grid(camera, height_m, resolution_m)
    bgr = np.ascontiguousarray(color[:, :, :3])
    if grid is not camera:
        bgr = cv2.resize(bgr, (grid.width, grid.height), interpolation=cv2.INTER_AREA)
    chroma = saturation_f32(bgr)
    if chroma is not None and any(v != 0.0 for v in grid.d):
        m1, m2 = _undistort_maps(grid)
        chroma = np.asarray(
            cv2.remap(chroma, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT),
            np.float32,
        )
    return replace(prep, chroma=chroma)


def rectify(
    gray: F32,
    camera: CameraModel,
    r_world_from_camera: F64,
    height_m: float,
    resolution_m: float,
    *,
    max_extent_m: float = MAX_EXTENT_M,
    min_depression_deg: float = 25.0,
) -> RectifiedFrame | None:
    """The frame as seen from above; None when too little of it reaches the ground.

    Args:
        gray: the frame, float32, at ``camera``'s size.
        r_world_from_camera: ``R_ENU_from_optical`` at the capture time.
        height_m: camera height above the (flat) ground.
        resolution_m: output metres per pixel.
        max_extent_m: the output box is clipped to this many metres from nadir.
        min_depression_deg: rays flatter than this below the horizon are cut off.
    """
    if not (math.isfinite(height_m) and height_m > 0 and resolution_m > 0):
        return None
    return rectify_prepared(
        prepare(gray, camera, height_m, resolution_m),
        r_world_from_camera,
        height_m,
        resolution_m,
        max_extent_m=max_extent_m,
        min_depression_deg=min_depression_deg,
    )


def rectify_prepared(
    frame: PreparedFrame,
    r_world_from_camera: F64,
    height_m: float,
    resolution_m: float,
    *,
    max_extent_m: float = MAX_EXTENT_M,
    min_depression_deg: float = 25.0,
) -> RectifiedFrame | None:
    """:func:`rectify` of a frame already through :func:`prepare`."""
    if not (math.isfinite(height_m) and height_m > 0 and resolution_m > 0):
        return None
    camera, gray, valid_src = frame.camera, frame.gray, frame.valid
    en, ok = ground_points(
        camera,
        r_world_from_camera,
        height_m,
        _border_pixels(camera.width, camera.height),
        min_depression_rad=math.radians(min_depression_deg),
    )
    if int(ok.sum()) < 8:
        return None
    pts = en[ok]
    emin, nmin = np.maximum(pts.min(axis=0), -max_extent_m)
    emax, nmax = np.minimum(pts.max(axis=0), max_extent_m)
    cols = math.ceil((emax - emin) / resolution_m)
    rows = math.ceil((nmax - nmin) / resolution_m)
    if cols < 16 or rows < 16:
        return None
    # output pixel (c, r, 1) -> ground point relative to the camera (E, N, -h)
    a = np.array(
        [
            [resolution_m, 0.0, emin + 0.5 * resolution_m],
            [0.0, -resolution_m, nmax - 0.5 * resolution_m],
            [0.0, 0.0, -height_m],
        ]
    )
    hmat = camera.matrix @ r_world_from_camera.T @ a
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    image = cv2.warpPerspective(gray, hmat, (cols, rows), flags=flags, borderValue=0.0)
    chroma = None
    if frame.chroma is not None:
        chroma = np.asarray(
            cv2.warpPerspective(frame.chroma, hmat, (cols, rows), flags=flags, borderValue=0.0),
            np.float32,
        )
    nearest = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    mask = np.asarray(
        cv2.warpPerspective(valid_src, hmat, (cols, rows), flags=nearest, borderValue=0), np.uint8
    )
    # a ground point behind the camera projects through the pinhole mirrored: drop it
    zrow = (r_world_from_camera.T @ a)[2]
    z = zrow[0] * np.arange(cols)[None, :] + zrow[1] * np.arange(rows)[:, None] + zrow[2]
    mask[z <= 0] = 0
    nadir_col = (0.0 - emin) / resolution_m - 0.5
    nadir_row = (nmax - 0.0) / resolution_m - 0.5
    diag = math.hypot(emax - emin, nmax - nmin)
    return RectifiedFrame(
        image.astype(np.float32), mask, nadir_col, nadir_row, resolution_m, diag, chroma
    )
