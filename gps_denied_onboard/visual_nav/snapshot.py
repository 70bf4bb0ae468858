"""In-flight snapshots: the map tile under a confidently localised frame, from the camera.

The tile cache keeps "what the camera sees now" next to the reference imagery
(pending upload, so the ground station can refresh its maps). A snapshot is
the web-mercator tile ``(zoom, x, y)`` that contains the fix, rendered from the
frame with the pose the match corrected (heading and height scale); it is
only produced when the frame covers almost all of the tile.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.fix import GroundView
from gps_denied_onboard.visual_nav.geo import TILE_PX, ground_resolution_m, latlon_to_world_px
from gps_denied_onboard.visual_nav.rectify import prepare


@dataclass(frozen=True)
class Snapshot:
    zoom: int
    x: int
    y: int
    jpeg: bytes
    coverage: float


def snapshot_tile(
    view: GroundView, zoom: int, *, min_coverage: float = 0.9, jpeg_quality: int = 85
) -> Snapshot | None:
    """The tile containing the fix, rendered from the frame; None when it covers too little."""
    mpp = ground_resolution_m(view.latitude, zoom)
    px, py = latlon_to_world_px(view.latitude, view.longitude, zoom)
    tx, ty = int(px // TILE_PX), int(py // TILE_PX)
    # a cloud left out of the match is left out of the tile too: the tile then covers
    # less, and none is cut where clouds took more than ``1 - min_coverage`` of it
    prep = prepare(view.gray, view.camera, view.height_m, mpp, fill=view.ground)
    # tile pixel (i, j, 1) -> ground offset from the nadir (E, N, -h)
    a = np.array(
        [
            [mpp, 0.0, (tx * TILE_PX + 0.5 - px) * mpp],
            [0.0, -mpp, -(ty * TILE_PX + 0.5 - py) * mpp],
            [0.0, 0.0, -view.height_m],
        ]
    )
    h = prep.camera.matrix @ view.r_world_from_camera.T @ a
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    img = cv2.warpPerspective(prep.gray, h, (TILE_PX, TILE_PX), flags=flags, borderValue=0.0)
    mask = cv2.warpPerspective(
        prep.valid, h, (TILE_PX, TILE_PX), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    )
    coverage = float(np.count_nonzero(mask)) / (TILE_PX * TILE_PX)
    if coverage < min_coverage:
        return None
    pixels: NDArray[np.uint8] = np.clip(img, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        return None
    return Snapshot(zoom, tx, ty, bytes(buf), coverage)
