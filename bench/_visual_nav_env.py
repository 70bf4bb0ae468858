"""Shared by the visual-nav benchmarks: the NAIP years, the camera, random trials.

Protocol (issue "Visual position estimator"): map tiles from one NAIP year,
frames rendered from another through the camera model; heading known to
+-5 deg, height to +-10 %, tilt up to 12 deg, the prior 100-300 m off. The
issue's protocol gives the estimator the true roll and pitch; a real
autopilot's are off by a fraction of a degree, so every figure is also
measured with ``ATT_NOISE_DEG`` (1 sigma) of roll/pitch error. The estimator
is told ``ATT_NOISE_DEG`` as its attitude sigma in both (it cannot know
which run it is in). 1 km footprint = 500 m above ground with a 90 deg lens;
400 m = 200 m above ground.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.camera import enu_from_flu_of_ned_euler
from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.estimator import VisualEstimator
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.geo import LocalFrame, zoom_for_resolution
from gps_denied_onboard.visual_nav.mapview import DictTileSource
from gps_denied_onboard.visual_nav.settings import EstimatorConfig
from gps_denied_onboard.visual_nav.simulate import (
    NAIP_FILES,
    TEST_CAMERA,
    Orthophoto,
    cut_tiles,
    render_frame,
)

NAIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "naip"
YEARS = NAIP_FILES
CAMERA = TEST_CAMERA
ATT_NOISE_DEG = 0.15
GROUND = 580.0
NS = 1_000_000_000
AGL = {"1km": 500.0, "400m": 200.0, "2km": 1000.0}  # footprint: height above ground


@lru_cache(maxsize=4)
def ortho(year: str) -> Orthophoto:
    path = NAIP / YEARS[year]
    if not path.exists():
        raise FileNotFoundError(f"NAIP {year} not found at {path} (../shared/data/naip)")
    return Orthophoto.read(path)


@lru_cache(maxsize=6)
def tiles(year: str, coarser: int = 0) -> dict[tuple[int, int, int], NDArray[np.uint8]]:
    """``year``'s tiles at the 5 m map's zoom (z15 here), or only those ``coarser``
    zooms coarser (z14: 6.5 m/px, z13: 13 m/px), which the estimator enlarges."""
    o = ortho(year)
    lat0, _, lat1, _ = o.bounds_latlon()
    return cut_tiles(o, zoom_for_resolution((lat0 + lat1) / 2, 5.0) - coarser)


@dataclass(frozen=True)
class Trial:
    lat: float
    lon: float
    agl: float
    roll: float
    pitch: float
    yaw: float
    yaw_err: float
    roll_err: float
    pitch_err: float
    height_factor: float
    prior_e: float
    prior_n: float


def trials(
    seed: int, n: int, agl: float, *, displaced: bool = False, att_noise_deg: float = ATT_NOISE_DEG
) -> list[Trial]:
    """Random frames inside the clip (the 1 km footprint plus the search stays inside)."""
    rng = np.random.default_rng(seed)
    lat0, lon0, lat1, lon1 = ortho("2017").bounds_latlon()
    lc, oc = (lat0 + lat1) / 2, (lon0 + lon1) / 2
    half_e = (lon1 - lon0) / 2 * 111_320 * math.cos(math.radians(lc)) - 1100
    half_n = (lat1 - lat0) / 2 * 111_320 - 1100
    out = []
    centre = LocalFrame(lc, oc)
    for _ in range(n):
        lat, lon = centre.to_latlon(rng.uniform(-half_e, half_e), rng.uniform(-half_n, half_n))
        ang = rng.uniform(0, 2 * math.pi)
        d = rng.uniform(900, 1300) if displaced else rng.uniform(100, 300)
        out.append(
            Trial(
                lat,
                lon,
                agl,
                roll=rng.uniform(-12, 12),
                pitch=rng.uniform(-12, 12),
                yaw=rng.uniform(-180, 180),
                yaw_err=rng.uniform(-5, 5),
                roll_err=rng.normal(0, 1) * att_noise_deg,
                pitch_err=rng.normal(0, 1) * att_noise_deg,
                height_factor=rng.uniform(0.9, 1.1),
                prior_e=d * math.cos(ang),
                prior_n=d * math.sin(ang),
            )
        )
    return out


def misregistration(map_year: str, frame_year: str, side_px: int = 200) -> NDArray[np.float64]:
    """How far each year's ground sits from the other's: the floor under every figure.

    Every error here is measured against the frame year's georeference, while
    the estimator can only find where the map year put the same ground. So
    square patches (``side_px`` at 5 m: 1 km) of the frame year's orthophoto,
    every half side, are registered (:func:`.odometry.register`, the matcher's
    own field and ZNCC, +-30 m) on the map year's at the same coordinates.
    Returns the horizontal offset of each patch, metres.
    """
    from gps_denied_onboard.visual_nav.features import to_gray_f32
    from gps_denied_onboard.visual_nav.odometry import register
    from gps_denied_onboard.visual_nav.rectify import RectifiedFrame

    om, of = ortho(map_year), ortho(frame_year)
    if om.pixel_size != of.pixel_size or om.crs != of.crs:
        raise ValueError("the two orthophotos differ in grid")
    res = om.pixel_size
    gm, gf = to_gray_f32(om.pixels), to_gray_f32(of.pixels)
    # frame-year pixel (c, r) is map-year pixel (c + dx, r + dy)
    dx = (of.origin_x - om.origin_x) / res
    dy = (om.origin_y - of.origin_y) / res
    m = 6  # search, pixels each way
    big, centre = side_px + 2 * m, (side_px - 1) / 2
    out = []
    for r0 in range(16, gf.shape[0] - side_px - 16, side_px // 2):
        for c0 in range(16, gf.shape[1] - side_px - 16, side_px // 2):
            cm, rm = round(c0 + dx) - m, round(r0 + dy) - m
            if cm < 0 or rm < 0 or cm + big > gm.shape[1] or rm + big > gm.shape[0]:
                continue
            cur = RectifiedFrame(
                gf[r0 : r0 + side_px, c0 : c0 + side_px],
                np.full((side_px, side_px), 255, np.uint8),
                centre,
                centre,
                res,
                side_px * res,
            )
            prev = RectifiedFrame(
                gm[rm : rm + big, cm : cm + big],
                np.full((big, big), 255, np.uint8),
                c0 + centre + dx - cm,
                r0 + centre + dy - rm,
                res,
                big * res,
            )
            got = register(prev, cur, (0.0, 0.0), m * res)
            if got is not None:
                out.append(math.hypot(got[0], got[1]))
    return np.array(out)


def estimator(map_year: str, *, coarser: int = 0, **cfg: object) -> VisualEstimator:
    """An estimator over ``map_year``'s tiles at the map's zoom, or only those ``coarser``
    zooms coarser (:func:`tiles`), with ``cfg`` over the bench's settings."""
    return _estimator(tiles(map_year, coarser), cfg)


def estimator_over(o: Orthophoto, **cfg: object) -> VisualEstimator:
    """An estimator over the tiles of ``o`` (a year's clip changed by a benchmark) at the
    map's zoom, with ``cfg`` over the bench's settings."""
    lat0, _, lat1, _ = o.bounds_latlon()
    return _estimator(cut_tiles(o, zoom_for_resolution((lat0 + lat1) / 2, 5.0)), cfg)


def _estimator(
    tile_set: dict[tuple[int, int, int], NDArray[np.uint8]], cfg: dict[str, object]
) -> VisualEstimator:
    base: dict[str, object] = {"ground_elevation_msl": GROUND, "attitude_sigma_deg": ATT_NOISE_DEG}
    base.update(cfg)
    return VisualEstimator(EstimatorConfig(**base), DictTileSource(tile_set))  # type: ignore[arg-type]


def _render(
    year: str | Orthophoto,
    lat: float,
    lon: float,
    agl: float,
    roll: float,
    pitch: float,
    yaw: float,
) -> NDArray[np.uint8]:
    """What the nadir camera sees of ``year``'s clip (or of a clip changed by a
    benchmark) from the true pose (NED Euler angles, degrees)."""
    from gps_denied_onboard.visual_nav.camera import R_BODY_FROM_NADIR_CAMERA

    r = enu_from_flu_of_ned_euler(math.radians(roll), math.radians(pitch), math.radians(yaw))
    clip = ortho(year) if isinstance(year, str) else year
    return render_frame(
        clip, CAMERA, r @ R_BODY_FROM_NADIR_CAMERA, latitude=lat, longitude=lon, height_m=agl
    )


def feed_state(
    est: VisualEstimator,
    stamp: int,
    rpy_reported: tuple[float, float, float],
    agl_reported: float,
    prior: tuple[float, float] | None,
    prior_sigma: float,
    attitude_offsets_ms: tuple[int, ...],
) -> None:
    """The autopilot's (erroneous) attitude around ``stamp`` and its altitude, and the
    GNSS prior (None: the GNSS is denied)."""
    r = enu_from_flu_of_ned_euler(*(math.radians(v) for v in rpy_reported))
    for dt in attitude_offsets_ms:
        est.attitude.add(stamp + dt * 1_000_000, r)
    est.height.add_altitude_msl(stamp, GROUND + agl_reported)
    if prior is None:
        est.set_gnss_healthy(False, stamp)
    else:
        est.priors.add_gnss(stamp, prior[0], prior[1], healthy=True, sigma_m=prior_sigma)


def _feed_and_match(
    est: VisualEstimator,
    stamp: int,
    image: NDArray[np.generic],
    rpy_reported: tuple[float, float, float],
    agl_reported: float,
    prior: tuple[float, float] | None,
    prior_sigma: float,
    attitude_offsets_ms: tuple[int, ...],
) -> VisualFix | FrameRejected:
    """:func:`feed_state`, then the frame."""
    feed_state(est, stamp, rpy_reported, agl_reported, prior, prior_sigma, attitude_offsets_ms)
    try:
        return est.process(stamp, image, CAMERA)
    except FrameRejected as rej:
        # without its traceback: that holds the search's frames, and with them the
        # mosaic (about 40 MB for a 1 km cold start), alive as long as the result is kept
        return rej.with_traceback(None)


def frame(year: str | Orthophoto, t: Trial) -> NDArray[np.uint8]:
    """What the camera sees of ``year``'s clip (or of a clip changed by a benchmark)
    from ``t``'s true pose."""
    return _render(year, t.lat, t.lon, t.agl, t.roll, t.pitch, t.yaw)


def run_trial(
    est: VisualEstimator,
    k: int,
    t: Trial,
    image: NDArray[np.generic],
    *,
    prior_sigma: float = 120.0,
) -> VisualFix | FrameRejected:
    """Feed the autopilot's (erroneous) state and the prior, then match; each trial alone."""
    return _feed_and_match(
        est,
        (1_800_000_000 + 100 * k) * NS,
        image,
        (t.roll + t.roll_err, t.pitch + t.pitch_err, t.yaw + t.yaw_err),
        t.agl * t.height_factor,
        LocalFrame(t.lat, t.lon).to_latlon(t.prior_e, t.prior_n),
        prior_sigma,
        (-40, 0, 40),
    )


def error_en(t: Trial, fix: VisualFix) -> tuple[float, float]:
    return LocalFrame(t.lat, t.lon).to_en(fix.latitude, fix.longitude)


# -- a smaller world: the clips laid down at a fraction of their pixel size


@lru_cache(maxsize=4)
def ortho_at(year: str, scale: float) -> Orthophoto:
    """``year``'s clip with pixels ``scale`` times as large (5 m -> 1 m at 0.2), about
    the 2017 clip's corner: every clip shrinks alike, so two years' ground still sits
    where it did on each other (shrunk about its own corner, a year whose clip starts
    9 m east of another's would move 7 m against it at 0.2). The same texture at a
    fraction of the size: it shows what the estimator's settings do at another
    resolution (:meth:`.settings.EstimatorConfig.at_ground_scale`), not how imagery
    that fine matches."""
    o, ref = ortho(year), ortho("2017")
    return replace(
        o,
        pixel_size=o.pixel_size * scale,
        origin_x=ref.origin_x + (o.origin_x - ref.origin_x) * scale,
        origin_y=ref.origin_y + (o.origin_y - ref.origin_y) * scale,
    )


@lru_cache(maxsize=4)
def tiles_at(
    year: str, scale: float, resolution_m: float
) -> dict[tuple[int, int, int], NDArray[np.uint8]]:
    """:func:`ortho_at`'s tiles at the zoom a map of ``resolution_m`` takes."""
    o = ortho_at(year, scale)
    lat0, _, lat1, _ = o.bounds_latlon()
    return cut_tiles(o, zoom_for_resolution((lat0 + lat1) / 2, resolution_m))


def trial_at(t: Trial, scale: float) -> Trial:
    """``t`` in :func:`ortho_at`'s world: on the same ground, ``scale`` times as high,
    its prior ``scale`` times as far off."""
    o, small = ortho("2017"), ortho_at("2017", scale)
    col, row = o.latlon_to_px(np.array([t.lat]), np.array([t.lon]))
    lat, lon = small.px_to_latlon(float(col[0]), float(row[0]))
    return replace(
        t,
        lat=lat,
        lon=lon,
        agl=t.agl * scale,
        prior_e=t.prior_e * scale,
        prior_n=t.prior_n * scale,
    )


def frame_at(year: str, t: Trial, scale: float) -> NDArray[np.uint8]:
    """What the camera sees of :func:`ortho_at`'s world from ``t`` (a :func:`trial_at`)."""
    from gps_denied_onboard.visual_nav.camera import R_BODY_FROM_NADIR_CAMERA

    r = enu_from_flu_of_ned_euler(*(math.radians(v) for v in (t.roll, t.pitch, t.yaw)))
    return render_frame(
        ortho_at(year, scale),
        CAMERA,
        r @ R_BODY_FROM_NADIR_CAMERA,
        latitude=t.lat,
        longitude=t.lon,
        height_m=t.agl,
    )


def estimator_at(
    map_year: str,
    scale: float,
    ground_scale: float,
    *,
    finer_scale_levels: int = 0,
    coarser_scale_levels: int = 0,
    tile_resolutions_m: tuple[float, ...] = (),
) -> VisualEstimator:
    """An estimator on :func:`ortho_at`'s world, its ground distances at ``ground_scale``
    (1: as calibrated, for the 5 m map), told the world's georeference floor (the
    years' disagreement shrinks with the world). Its tiles are the map's zoom, and
    the zooms of ``tile_resolutions_m`` too; ``finer_scale_levels``: how often it may
    halve the ground scale where those hold the detail, ``coarser_scale_levels``: double
    it for frames seeing much more ground (:mod:`.ground_scale`)."""
    cfg = EstimatorConfig(
        ground_elevation_msl=GROUND,
        attitude_sigma_deg=ATT_NOISE_DEG,
        map_sigma_m=EstimatorConfig().map_sigma_m * scale,
        scale_finer_levels=finer_scale_levels,
        scale_coarser_levels=coarser_scale_levels,
    ).at_ground_scale(ground_scale)
    tiles: dict[tuple[int, int, int], NDArray[np.uint8]] = {}
    for resolution in (cfg.match.resolution_m, *tile_resolutions_m):
        tiles |= tiles_at(map_year, scale, resolution)
    return VisualEstimator(cfg, DictTileSource(tiles))
