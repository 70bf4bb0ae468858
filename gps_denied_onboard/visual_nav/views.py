"""What the matcher matches: a ground view it can turn and scale about the nadir.

The matcher (:mod:`.matcher`) asks for the view at a heading correction and a
height scale, at a resolution, and gets a north-up :class:`~.rectify.RectifiedFrame`
whose nadir is the answer's anchor. Two kinds of view answer it:

- :class:`FrameView`: one camera frame, re-rectified for each correction
  (a heading correction turns the pose, a scale scales the height);
- :class:`PatchView`: a ground image already rectified (several frames
  stitched by :mod:`.odometry`), turned and scaled about the current frame's
  nadir by one affine warp. Heading bias and height error are common to the
  frames of a few seconds, so the whole patch turns and scales as one.
"""

from __future__ import annotations

import math
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.camera import CameraModel, turned
from gps_denied_onboard.visual_nav.clouds import CloudMaskConfig, cloud_mask
from gps_denied_onboard.visual_nav.features import fill_mask
from gps_denied_onboard.visual_nav.pixels import CLIPPED_LEVEL
from gps_denied_onboard.visual_nav.rectify import (
    PreparedFrame,
    RectifiedFrame,
    prepare,
    rectify_prepared,
    with_chroma,
)

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]


class MatchView(Protocol):
    """A view the matcher can render at a heading correction and a height scale."""

    @property
    def width_m(self) -> float:
        """The ground width seen (metres): picks the coarse level."""
        ...

    def render(
        self, heading_deg: float, scale: float, resolution_m: float, *, colour: bool = False
    ) -> RectifiedFrame | None:
        """North-up ground image turned by ``heading_deg`` (ENU sense) and scaled by ``scale``;
        with ``colour``, its saturation plane too where the view has colour."""
        ...


class FrameView:
    """One frame: undistorted and shrunk once per resolution, rectified per candidate."""

    def __init__(
        self,
        gray: F32,
        camera: CameraModel,
        r_world_from_camera: F64,
        height_m: float,
        color: NDArray[np.generic] | None = None,
        *,
        clouds: CloudMaskConfig | None = None,
        as_delivered: F32 | None = None,
    ) -> None:
        self.gray = gray
        # the gray as the camera delivered it, before a flat field brightened its
        # corners: where clipping is read (None: ``gray`` is)
        self.as_delivered = as_delivered
        self.color = color  # the frame in colour (None: mono), for its saturation edges
        self.clouds = clouds  # which bright patches are cloud (None: none is looked for)
        self.camera = camera
        self.r_world_from_camera = r_world_from_camera
        self.height_m = height_m
        self._prepared: dict[float, PreparedFrame] = {}
        self._coloured: dict[float, PreparedFrame] = {}
        self._fill: NDArray[np.uint8] | None = None
        self._obscured = 0.0

    @property
    def fill(self) -> NDArray[np.uint8]:
        """Where the frame shows ground (255), once for every resolution: not its black
        fill (:func:`.features.fill_mask`), nor cloud (:func:`.clouds.cloud_mask`)."""
        if self._fill is None:
            ground = fill_mask(self.gray)
            fill = ground
            if self.clouds is not None:
                pixel_m = self.height_m / self.camera.focal_px
                cloud = cloud_mask(self.gray, self.color, pixel_m, self.clouds)
                if cloud is not None:
                    fill = np.minimum(fill, cloud)
            seen = np.count_nonzero(ground)
            hidden = seen - np.count_nonzero(fill)  # cloud
            delivered = self.gray if self.as_delivered is None else self.as_delivered
            hidden += np.count_nonzero((fill > 0) & (delivered >= CLIPPED_LEVEL))  # clipped
            self._obscured = hidden / seen if seen else 0.0
            self._fill = fill
        return self._fill

    @property
    def obscured_share(self) -> float:
        """The share of the frame's ground (its fill aside) that the cloud mask took or
        that is clipped white: what the map shows there the frame does not (see
        :func:`.gate.judge`)."""
        _ = self.fill
        return self._obscured

    @property
    def width_m(self) -> float:
        return self.height_m * self.camera.width / self.camera.focal_px

    def render(
        self, heading_deg: float, scale: float, resolution_m: float, *, colour: bool = False
    ) -> RectifiedFrame | None:
        prep = self._prepared.get(resolution_m)
        if prep is None:
            prep = prepare(self.gray, self.camera, self.height_m, resolution_m, fill=self.fill)
            self._prepared[resolution_m] = prep
        if colour and self.color is not None:
            # the search's many renders stay gray; a colour one is asked for once, if
            # at all, and adds the saturation to the gray already prepared
            got = self._coloured.get(resolution_m)
            if got is None:
                got = with_chroma(prep, self.color, self.camera, self.height_m, resolution_m)
                self._coloured[resolution_m] = got
            prep = got
        return rectify_prepared(
            prep, turned(self.r_world_from_camera, heading_deg), self.height_m * scale, resolution_m
        )


class PatchView:
    """A rectified ground patch rendered at ``base_heading_deg``/``base_scale``.

    ``render(h, s)`` turns it by ``h - base_heading_deg`` and scales it by
    ``s / base_scale`` about its nadir.
    """

    def __init__(self, patch: RectifiedFrame, base_heading_deg: float, base_scale: float) -> None:
        self.patch = patch
        self.base_heading_deg = base_heading_deg
        self.base_scale = base_scale

    @property
    def lever_m(self) -> float:
        """The patch's centroid to the nadir it is placed by (m): how far a turn or
        scale error of the patch is carried to the fix."""
        oc, orow = self.patch.centre_offset_px
        return math.hypot(oc, orow) * self.patch.resolution_m

    @property
    def width_m(self) -> float:
        cols = np.nonzero(self.patch.mask.any(axis=0))[0]
        return float(cols.size) * self.patch.resolution_m

    def render(
        self, heading_deg: float, scale: float, resolution_m: float, *, colour: bool = False
    ) -> RectifiedFrame | None:
        # stitched from gray registrations: no saturation plane, whatever ``colour`` says
        return warp_patch(
            self.patch,
            heading_deg - self.base_heading_deg,
            scale / self.base_scale,
            resolution_m,
        )


def warp_patch(
    patch: RectifiedFrame, heading_deg: float, scale: float, resolution_m: float
) -> RectifiedFrame | None:
    """``patch`` turned counter-clockwise by ``heading_deg`` and scaled about its nadir.

    A ground point ``p`` metres (east, north) from the nadir goes to
    ``scale * R(heading) p``, as :func:`.camera.turned` and a scaled height do
    to a frame. Output pixel centres follow :mod:`.rectify`'s convention.
    """
    if not (math.isfinite(heading_deg) and math.isfinite(scale) and scale > 0):
        return None
    rb = patch.resolution_m
    rows_b, cols_b = patch.mask.shape
    th = math.radians(heading_deg)
    c, s = math.cos(th), math.sin(th)
    # corners of the base (EN metres from nadir) -> where they go
    ce = (np.array([-0.5, cols_b - 0.5, -0.5, cols_b - 0.5]) - patch.nadir_col) * rb
    cn = -(np.array([-0.5, -0.5, rows_b - 0.5, rows_b - 0.5]) - patch.nadir_row) * rb
    qe = scale * (c * ce - s * cn)
    qn = scale * (s * ce + c * cn)
    emin, emax = float(qe.min()), float(qe.max())
    nmin, nmax = float(qn.min()), float(qn.max())
    cols = math.ceil((emax - emin) / resolution_m)
    rows = math.ceil((nmax - nmin) / resolution_m)
    if cols < 16 or rows < 16:
        return None
    # out (col, row) -> q (EN) -> p = R(-heading) q / scale -> base pixel
    # q_e = emin + (col + 0.5) res ; q_n = nmax - (row + 0.5) res
    # p_e = (c q_e + s q_n) / scale ; p_n = (-s q_e + c q_n) / scale
    # i = nadir_col + p_e / rb ; j = nadir_row - p_n / rb
    k = resolution_m / (scale * rb)
    qe0 = emin + 0.5 * resolution_m
    qn0 = nmax - 0.5 * resolution_m
    m = np.array(
        [
            [c * k, -s * k, patch.nadir_col + (c * qe0 + s * qn0) / (scale * rb)],
            [s * k, c * k, patch.nadir_row - (-s * qe0 + c * qn0) / (scale * rb)],
        ]
    )
    img = patch.image
    shrink = resolution_m / (scale * rb)
    if shrink > 1.2:
        img = np.asarray(cv2.GaussianBlur(img, (0, 0), 0.5 * shrink), np.float32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    image = np.asarray(cv2.warpAffine(img, m, (cols, rows), flags=flags, borderValue=0.0))
    nearest = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    mask = np.asarray(
        cv2.warpAffine(patch.mask, m, (cols, rows), flags=nearest, borderValue=0), np.uint8
    )
    nadir_col = -emin / resolution_m - 0.5
    nadir_row = nmax / resolution_m - 0.5
    diag = patch.footprint_m * scale
    return RectifiedFrame(image.astype(np.float32), mask, nadir_col, nadir_row, resolution_m, diag)
