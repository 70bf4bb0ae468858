"""Errors of the visual position estimator.

::

    GpsDeniedError
    └── VisualNavError              anything the estimator raises on purpose
        ├── CameraModelError        CameraInfo or mounting that cannot be used
        ├── ImageHeaderError        a compressed image whose header is unreadable or too large
        ├── PriorError              a seed position or sigma that cannot be a prior
        ├── LearntCameraError       a learnt-camera file that cannot be restored
        └── FrameRejected           a frame that gives no fix, with a reason code
            (reason is one of REJECT_REASONS; the node counts and records it)

A rejected frame is not a failure of the estimator: the node counts it, records
it (``vnav.reject``) and goes on with the next frame. Callers branch on
``FrameRejected.reason``, never on message text.
"""

from __future__ import annotations

from typing import Final

from gps_denied_onboard.errors import GpsDeniedError

#: Every reason a frame can be refused, in pipeline order.
REJECT_REASONS: Final = (
    "unknown_encoding",  # an image encoding we cannot decode
    "corrupt_image",  # zero-size, truncated or undecodable pixels
    "no_camera_info",  # no CameraInfo (intrinsics) received yet
    "bad_exposure",  # black, saturated, overexposed or featureless frame
    "no_attitude",  # no attitude sample at all
    "stale_attitude",  # attitude older (or newer) than the bound at the capture time
    "no_height",  # no altitude/rangefinder to scale the frame
    "bad_geometry",  # camera looks at or above the horizon, footprint too oblique
    "no_prior",  # no prior position to search around
    "prior_outside_map",  # the search window is not covered by tiles
    "no_tiles",  # the tile cache has nothing under the prior
    "low_texture",  # too little gradient energy to match
    "gate",  # the match did not pass the confidence gate
)


class VisualNavError(GpsDeniedError):
    """Base class of the visual position estimator's errors."""


class CameraModelError(VisualNavError, ValueError):
    """CameraInfo or camera mounting that the estimator cannot use."""


class ImageHeaderError(VisualNavError, ValueError):
    """A compressed image (camera frame, map tile) refused before decoding: not PNG or
    JPEG, a header that cannot be read, or more pixels than allowed
    (:mod:`~gps_denied_onboard.visual_nav.image_header`)."""


class PriorError(VisualNavError, ValueError):
    """A prior from outside (a seed) that cannot be one: off the web-mercator map, or
    with no positive sigma. Stream samples (the FC's GNSS) that bad are dropped instead."""


class LearntCameraError(VisualNavError, ValueError):
    """A learnt-camera file (:mod:`~gps_denied_onboard.visual_nav.learnt_camera`) that
    cannot be read or restored: unreadable, too large, another version, malformed."""


class FrameRejected(VisualNavError):
    """A frame that produced no fix.

    Attributes:
        reason: one of :data:`REJECT_REASONS`.
        detail: key/values for the ``vnav.reject`` record (scores, ages).
    """

    def __init__(self, reason: str, message: str, **detail: float | int | str) -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {reason!r}")
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.detail = dict(detail)
