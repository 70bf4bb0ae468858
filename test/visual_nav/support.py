"""Shared by the visual-nav tests: worlds to fly over, an estimator fed as the node feeds it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.camera import (
    enu_from_flu_of_ned_euler,
    mount_rotation,
)
from gps_denied_onboard.visual_nav.correlate import Peak
from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.estimator import VisualEstimator
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.gate import Verdict, judge
from gps_denied_onboard.visual_nav.geo import LocalFrame, zoom_for_resolution
from gps_denied_onboard.visual_nav.mapview import DictTileSource
from gps_denied_onboard.visual_nav.settings import EstimatorConfig
from gps_denied_onboard.visual_nav.simulate import (
    NAIP_FILES,
    TEST_CAMERA,
    Orthophoto,
    cut_tiles,
    render_frame,
    synthetic_orthophoto,
)
from gps_denied_onboard.visual_nav.state import Prior
from gps_denied_onboard.visual_nav.witness import PlacedTemplate

NS = 1_000_000_000
T0 = 1_778_580_000 * NS
LAT0, LON0 = 47.02, -99.155
GROUND_MSL = 580.0
NAIP_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "naip"
CAMERA = TEST_CAMERA


@lru_cache(maxsize=2)
def synthetic_world(
    seed: int = 1,
) -> tuple[Orthophoto, dict[tuple[int, int, int], NDArray[np.uint8]]]:
    ortho = synthetic_orthophoto(LAT0, LON0, size_m=6000.0, pixel_m=2.5, seed=seed)
    return ortho, cut_tiles(ortho, zoom_for_resolution(LAT0, 5.0))


def naip(year: str) -> Orthophoto:
    path = NAIP_DIR / NAIP_FILES[year]
    if not path.exists():
        pytest.skip(
            f"NAIP orthophotos not found at {NAIP_DIR} (../shared/data/naip beside the checkout)"
        )
    return _naip(str(path))


@lru_cache(maxsize=4)
def _naip(path: str) -> Orthophoto:
    return Orthophoto.read(Path(path))


@lru_cache(maxsize=2)
def naip_tiles(year: str) -> dict[tuple[int, int, int], NDArray[np.uint8]]:
    ortho = naip(year)
    lat0, _, lat1, _ = ortho.bounds_latlon()
    return cut_tiles(ortho, zoom_for_resolution((lat0 + lat1) / 2, 5.0))


@dataclass(frozen=True)
class Pose:
    latitude: float
    longitude: float
    agl_m: float
    roll_deg: float = 0.0
    pitch_deg: float = 0.0
    yaw_deg: float = 0.0  # NED, 0 = north, clockwise

    def r_enu_flu(self, *, yaw_error_deg: float = 0.0) -> NDArray[np.float64]:
        return enu_from_flu_of_ned_euler(
            math.radians(self.roll_deg),
            math.radians(self.pitch_deg),
            math.radians(self.yaw_deg + yaw_error_deg),
        )

    def offset(self, east: float, north: float) -> Pose:
        lat, lon = LocalFrame(self.latitude, self.longitude).to_latlon(east, north)
        return Pose(lat, lon, self.agl_m, self.roll_deg, self.pitch_deg, self.yaw_deg)


def render(
    ortho: Orthophoto, pose: Pose, mount_rpy: tuple[float, float, float] = (0, 0, 0)
) -> NDArray[np.uint8]:
    r = pose.r_enu_flu() @ mount_rotation(mount_rpy)
    return render_frame(
        ortho, CAMERA, r, latitude=pose.latitude, longitude=pose.longitude, height_m=pose.agl_m
    )


def make_estimator(
    tiles: dict[tuple[int, int, int], NDArray[np.uint8]], **cfg: object
) -> VisualEstimator:
    return VisualEstimator(
        EstimatorConfig(ground_elevation_msl=GROUND_MSL, **cfg),  # type: ignore[arg-type]
        DictTileSource(tiles),
    )


def feed(
    est: VisualEstimator,
    stamp_ns: int,
    pose: Pose,
    *,
    yaw_error_deg: float = 0.0,
    height_factor: float = 1.0,
    prior: Pose | None = None,
    prior_sigma_m: float = 10.0,
) -> None:
    """What the node hands the estimator before a frame: attitude around the stamp,
    altitude, and (when given) a healthy-GNSS prior."""
    r = pose.r_enu_flu(yaw_error_deg=yaw_error_deg)
    for dt_ms in (-40, 0, 40):
        est.attitude.add(stamp_ns + dt_ms * 1_000_000, r)
    est.height.add_altitude_msl(stamp_ns, GROUND_MSL + pose.agl_m * height_factor)
    if prior is not None:
        est.priors.add_gnss(
            stamp_ns, prior.latitude, prior.longitude, healthy=True, sigma_m=prior_sigma_m
        )


def rising_ground_flight(
    est: VisualEstimator,
    start: Pose,
    *,
    frames: int,
    step_en_m: tuple[float, float],
    yaw_deg: float,
) -> list[tuple[Pose, VisualFix | FrameRejected]]:
    """A frame a second from ``start`` (its height the one the autopilot reports
    throughout, with no rangefinder), moving ``step_en_m`` a frame, rolled 1 and
    pitched 3 deg, over the synthetic world's ground that rises by a fifth of the
    height above it between 6 and 16 s; the GNSS is exact for 3 s, then denied."""
    ortho, _ = synthetic_world()
    reported = start.agl_m
    out: list[tuple[Pose, VisualFix | FrameRejected]] = []
    for k in range(frames):
        agl = reported * (1.0 - 0.2 * min(1.0, max(0.0, (k - 6) / 10)))
        at = start.offset(step_en_m[0] * k, step_en_m[1] * k)
        pose = Pose(at.latitude, at.longitude, agl, roll_deg=1.0, pitch_deg=3.0, yaw_deg=yaw_deg)
        stamp = T0 + k * NS
        gnss = k < 3
        feed(est, stamp, pose, height_factor=reported / agl, prior=pose if gnss else None)
        if not gnss:
            est.set_gnss_healthy(False, stamp)
        try:
            got: VisualFix | FrameRejected = est.process(stamp, render(ortho, pose), CAMERA)
        except FrameRejected as rej:
            got = rej
        out.append((pose, got))
    return out


def circle_flight(frames: int = 70) -> list[Pose]:
    """Poses a second apart on a 450 m circle at 500 m above ground (1 km footprints),
    turning 3 deg/s counter-clockwise, rolled -3 and pitched 2 deg: the headings a
    mounting error is told apart from the map's offset by (visual_nav/boresight.py)."""
    centre, r = Pose(47.0204, -99.1548, 500.0), 450.0
    flight = []
    for k in range(frames):
        ang = math.radians(3.0 * k)  # ENU course = ang + 90 deg
        pos = centre.offset(r * math.cos(ang), r * math.sin(ang))
        course_ned = (90.0 - math.degrees(ang + math.pi / 2)) % 360.0
        flight.append(Pose(pos.latitude, pos.longitude, 500.0, -3.0, 2.0, course_ned))
    return flight


def error_m(pose: Pose, latitude: float, longitude: float) -> tuple[float, float]:
    """(east, north) error of an estimate, metres."""
    return LocalFrame(pose.latitude, pose.longitude).to_en(latitude, longitude)


def judge_placed(
    placed: PlacedTemplate,
    prior_source: str,
    margin_sigmas: float,
    side_m: float = 380.0,
    *,
    single_frame: bool = True,
    contested: bool = False,
    obscured_share: float = 0.0,
) -> Verdict:
    """The gate's verdict on ``placed`` at a margin of ``margin_sigmas`` (a 360 m search,
    the prior ``prior_source``, the match on the prior, ``obscured_share`` of the frame's
    ground cloud or clipped), as the estimator asks it."""
    est = make_estimator(naip_tiles("2017"))
    prior = Prior(0, 47.02, -99.15, 50.0, (0.0, 0.0), 1.0, prior_source, contested=contested)
    peak = Peak(10.0, 10.0, 0.3, 0.1, 0.2, 0.5, 0.2 / margin_sigmas)
    return judge(
        est.cfg,
        prior,
        47.02,
        -99.15,
        sigma=5.0,
        peak=peak,
        radius_m=360.0,
        side_m=side_m,
        placed=placed,
        single_frame=single_frame,
        obscured_share=obscured_share,
    )


def draw_blobs(
    plane: NDArray[np.float32],
    rng: np.random.Generator,
    count: int,
    axes: tuple[int, int],
    levels: tuple[float, float],
) -> None:
    """Fill ``count`` random ellipses (half-axes in ``axes``, values in ``levels``)
    into ``plane``: fields and blobs a witness can recognise and place."""
    size_y, size_x = plane.shape
    for _ in range(count):
        x, y = int(rng.integers(0, size_x)), int(rng.integers(0, size_y))
        half = (int(rng.integers(*axes)), int(rng.integers(*axes)))
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(plane, (x, y), half, angle, 0, 360, float(rng.uniform(*levels)), -1)
