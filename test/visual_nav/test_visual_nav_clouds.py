"""Cloud in view is left out of the match: what is taken for cloud, and that a
cross-year frame half under cloud still fixes where it did not without the mask."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from gps_denied_onboard.errors import ConfigError
from gps_denied_onboard.visual_nav.camera import mount_rotation
from gps_denied_onboard.visual_nav.clouds import CloudMaskConfig, cloud_mask
from gps_denied_onboard.visual_nav.config import VisualNavConfig
from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.snapshot import snapshot_tile
from gps_denied_onboard.visual_nav.views import FrameView

from .support import CAMERA, LAT0, LON0, Pose, error_m, feed, make_estimator, naip, naip_tiles
from .support import render as render_pose

CFG = CloudMaskConfig()
PIXEL_M = 1.5  # a 640 px frame 1 km across


def _ground(h: int = 240, w: int = 320, seed: int = 2) -> NDArray[np.uint8]:
    """Farmland-dark textured ground in colour (never at the cloud level)."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.normal(100.0, 30.0, (h, w)).astype(np.float32), (0, 0), 1.5)
    img = np.stack([base * 0.8, base * 1.1, base * 0.9], axis=2)
    return np.clip(img, 0, 200).astype(np.uint8)


def _gray(img: NDArray[np.uint8]) -> NDArray[np.float32]:
    return np.asarray(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), np.float32)


def _disc(
    img: NDArray[np.uint8], centre: tuple[int, int], radius_px: int, bgr: tuple[int, ...]
) -> None:
    cv2.circle(img, centre, radius_px, bgr, thickness=-1)


def test_ground_with_no_bright_pixel_has_no_cloud() -> None:
    img = _ground()
    assert cloud_mask(_gray(img), img, PIXEL_M, CFG) is None


def test_a_white_cloud_is_left_out_with_its_rim_and_the_ground_round_it_is_kept() -> None:
    img = _ground()
    _disc(img, (160, 120), 40, (245, 245, 245))  # 120 m across
    got = cloud_mask(_gray(img), img, PIXEL_M, CFG)
    assert got is not None
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    r_m = np.hypot(xx - 160, yy - 120) * PIXEL_M
    assert np.all(got[r_m <= 60.0] == 0)  # the cloud
    assert np.all(got[(r_m > 62.0) & (r_m <= 60.0 + CFG.grow_m - 4.0)] == 0)  # its rim
    assert np.all(got[r_m >= 60.0 + CFG.grow_m + 6.0] == 255)  # the ground beyond


def test_a_white_roof_narrower_than_the_run_is_ground() -> None:
    img = _ground()
    cv2.rectangle(img, (100, 100), (112, 112), (250, 250, 250), thickness=-1)  # 18 m
    assert cloud_mask(_gray(img), img, PIXEL_M, CFG) is None


def test_a_bright_coloured_field_is_ground_unless_the_frame_is_mono() -> None:
    img = _ground()
    _disc(img, (160, 120), 40, (120, 255, 255))  # light yellow: gray 240, saturation 135
    gray = _gray(img)
    assert float(gray[120, 160]) >= CFG.level
    assert cloud_mask(gray, img, PIXEL_M, CFG) is None
    mono = cloud_mask(gray, None, PIXEL_M, CFG)  # judged on brightness alone
    assert mono is not None and mono[120, 160] == 0


def test_a_concrete_highway_narrower_than_the_run_is_ground() -> None:
    # a divided highway's concrete is 25-50 m across and the best of landmarks: map and
    # frame both have its edges (at the old 30 m run it was taken for cloud)
    img = _ground()
    cv2.rectangle(img, (0, 100), (319, 129), (232, 240, 240), thickness=-1)  # 45 m
    gray = _gray(img)
    assert float(gray[115, 160]) >= CFG.level
    assert cloud_mask(gray, img, PIXEL_M, CFG) is None
    wider = cloud_mask(gray, img, PIXEL_M * 2.0, CFG)  # 90 m across: taken for cloud
    assert wider is not None and wider[115, 160] == 0


def test_pale_ground_overexposed_is_ground_and_white_cloud_is_not() -> None:
    # a washed-out field (NAIP 2009: saturation 47 at the median) under an exposure
    # set for darker ground: bright, of saturation 38, not white (the old limit, 50,
    # took it for cloud); a cloud of saturation 10 beside it still is one
    img = _ground()
    _disc(img, (90, 120), 40, (204, 240, 237))  # gray 235, saturation 38
    _disc(img, (240, 120), 40, (250, 240, 240))  # gray 242, saturation 10
    gray = _gray(img)
    assert float(gray[120, 90]) >= CFG.level
    got = cloud_mask(gray, img, PIXEL_M, CFG)
    assert got is not None
    assert got[120, 90] == 255 and got[120, 240] == 0


def _fields(lo: float, hi: float, h: int = 240, w: int = 320, seed: int = 5) -> NDArray[np.uint8]:
    """A patchwork of 60 m fields (40 px), each of its own gray level in ``lo``..``hi``."""
    rng = np.random.default_rng(seed)
    levels = rng.uniform(lo, hi, (h // 40 + 1, w // 40 + 1))
    img = np.kron(levels, np.ones((40, 40)))[:h, :w] + rng.normal(0.0, 3.0, (h, w))
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def test_a_bright_field_among_pale_ones_is_ground_in_mono_too() -> None:
    # overexposed pale fields: a bright run's neighbours are the next pale fields,
    # where a cloud's surround is ground at its own exposure
    pale = _fields(150.0, 212.0)
    _disc(pale, (160, 120), 45, (228, 228, 228))  # a field brighter than the rest
    assert cloud_mask(_gray(pale), None, PIXEL_M, CFG) is None
    assert cloud_mask(_gray(pale), pale, PIXEL_M, CFG) is None
    ground = _fields(60.0, 140.0)
    _disc(ground, (160, 120), 45, (228, 228, 228))  # the same run over darker fields
    got = cloud_mask(_gray(ground), None, PIXEL_M, CFG)
    assert got is not None and got[120, 160] == 0


def test_a_cloud_in_haze_still_stands_above_its_surround() -> None:
    hazy = (_fields(60.0, 140.0).astype(np.float32) * 0.35 + 150.0).astype(np.uint8)
    _disc(hazy, (160, 120), 45, (245, 245, 245))
    got = cloud_mask(_gray(hazy), None, PIXEL_M, CFG)
    assert got is not None and got[120, 160] == 0


def test_a_frame_whose_bright_runs_half_stand_below_their_surround_has_no_cloud() -> None:
    # all or none: a mask of some of an overexposed frame's pale fields is a lace of
    # the scene's own pattern, which matched wrongly where no mask did not
    img = np.concatenate([_fields(60.0, 140.0), _fields(150.0, 212.0)], axis=1)
    _disc(img, (480, 120), 45, (228, 228, 228))  # among the pale fields: pale ground
    assert cloud_mask(_gray(img), None, PIXEL_M, CFG) is None
    _disc(img, (160, 120), 45, (228, 228, 228))  # and the same over the darker fields
    assert cloud_mask(_gray(img), None, PIXEL_M, CFG) is None
    alone = np.concatenate([_fields(60.0, 140.0), _fields(150.0, 212.0)], axis=1)
    _disc(alone, (160, 120), 45, (228, 228, 228))
    got = cloud_mask(_gray(alone), None, PIXEL_M, CFG)
    assert got is not None and got[120, 160] == 0


def test_the_run_is_on_the_ground_not_in_pixels() -> None:
    img = _ground()
    _disc(img, (160, 120), 30, (245, 245, 245))  # 61 px across
    gray = _gray(img)
    assert cloud_mask(gray, img, 1.5, CFG) is not None  # 91 m across: a cloud
    assert cloud_mask(gray, img, 0.5, CFG) is None  # 30 m across: a roof


@pytest.mark.parametrize("pixel_m", [1e-9, 0.0, math.inf, math.nan])
def test_a_frame_seeing_less_ground_than_a_cloud_or_none_has_no_cloud(pixel_m: float) -> None:
    # a lens claiming a focal length of 1e9 px sees a millimetre: a disc of the
    # least run in its pixels would be millions wide (the suite ran out of memory)
    img = _ground()
    _disc(img, (160, 120), 40, (245, 245, 245))
    assert cloud_mask(_gray(img), img, pixel_m, CFG) is None


def test_a_mask_switched_off_finds_nothing() -> None:
    img = _ground()
    _disc(img, (160, 120), 40, (245, 245, 245))
    assert cloud_mask(_gray(img), img, PIXEL_M, CloudMaskConfig(enabled=False)) is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("cloud_mask_level", 300.0),
        ("cloud_mask_max_saturation", -1.0),
        ("cloud_mask_min_run_m", 0.0),
        ("cloud_mask_grow_m", math.nan),
        ("cloud_mask_surround_sigmas", -1.0),
    ],
)
def test_cloud_mask_parameters_out_of_range_are_config_errors(name: str, value: float) -> None:
    with pytest.raises(ConfigError) as err:
        VisualNavConfig(**{name: value})  # type: ignore[arg-type]
    assert err.value.key == name


def test_the_node_parameters_reach_the_estimator() -> None:
    cfg = VisualNavConfig(
        cloud_mask_enabled=False,
        cloud_mask_level=230.0,
        cloud_mask_grow_m=5.0,
        cloud_mask_surround_sigmas=2.0,
    )
    clouds = cfg.estimator_config().clouds
    assert clouds == CloudMaskConfig(enabled=False, level=230.0, grow_m=5.0, surround_sigmas=2.0)


def _clouded(img: NDArray[np.uint8], share: float, seed: int) -> NDArray[np.uint8]:
    """White cloud over about ``share`` of the frame, soft-rimmed, ~60 m blobs."""
    rng = np.random.default_rng(seed)
    field = cv2.GaussianBlur(rng.normal(0, 1, img.shape[:2]).astype(np.float32), (0, 0), 40)
    cut = float(np.quantile(field, 1 - share))
    m = np.clip((field - cut) / float(field.std()) * 6.0 + 0.5, 0, 1)[..., None]
    return np.clip(img * (1 - m) + 245.0 * m, 0, 255).astype(np.uint8)


def _fly_clouded(mask_on: bool) -> list[VisualFix | FrameRejected]:
    """Six cross-year 1 km frames (2017 map, 2009 frames) a third under cloud, each
    from a GNSS prior 150 m off."""
    est = make_estimator(naip_tiles("2017"), clouds=CloudMaskConfig(enabled=mask_on))
    out: list[VisualFix | FrameRejected] = []
    for k in range(6):
        pose = Pose(LAT0, LON0, 500.0, yaw_deg=60.0 * k).offset(400.0 * (k - 3), 300.0 * (k % 2))
        frame = _clouded(render_pose(naip("2009"), pose), 0.3, seed=k)
        stamp = (1_800_000_000 + 10 * k) * 1_000_000_000
        feed(est, stamp, pose, prior=pose.offset(150.0, 0.0), prior_sigma_m=60.0)
        try:
            got = est.process(stamp, frame, CAMERA)
        except FrameRejected as rej:
            out.append(rej)
            continue
        e, n = error_m(pose, got.latitude, got.longitude)
        assert math.hypot(e, n) <= 15.0, f"frame {k}: {math.hypot(e, n):.1f} m off"
        out.append(got)
    return out


def test_frames_a_third_under_cloud_fix_with_the_mask_where_they_failed_without() -> None:
    with_mask = _fly_clouded(True)
    without = _fly_clouded(False)
    fixed_with = sum(isinstance(g, VisualFix) for g in with_mask)
    fixed_without = sum(isinstance(g, VisualFix) for g in without)
    assert fixed_with >= 5
    assert fixed_without <= 2


def test_a_snapshot_leaves_the_cloud_out_of_the_tile() -> None:
    est = make_estimator(naip_tiles("2017"))
    pose = Pose(LAT0, LON0, 500.0)
    clear = render_pose(naip("2009"), pose)
    stamp = 1_800_000_000 * 1_000_000_000
    feed(est, stamp, pose, prior=pose, prior_sigma_m=20.0)
    est.process(stamp, clear, CAMERA)
    assert est.last_view is not None
    clear_tile = snapshot_tile(est.last_view, 17)
    assert clear_tile is not None and clear_tile.coverage >= 0.99
    cloudy = clear.copy()
    cv2.circle(cloudy, (320, 240), 200, (245, 245, 245), thickness=-1)  # over the nadir
    feed(est, stamp + 10**9, pose, prior=pose, prior_sigma_m=20.0)
    est.process(stamp + 10**9, cloudy, CAMERA)
    assert est.last_view is not None and est.last_view.ground is not None
    assert snapshot_tile(est.last_view, 17) is None  # the tile under the nadir is cloud


def _view(
    img: NDArray[np.uint8],
    gray: NDArray[np.float32] | None = None,
    as_delivered: NDArray[np.float32] | None = None,
) -> FrameView:
    """``img`` seen straight down from where a pixel covers ``PIXEL_M`` of ground (its
    gray plane ``gray``, where a flat field changed it, from ``as_delivered``)."""
    nadir = Pose(LAT0, LON0, 500.0).r_enu_flu() @ mount_rotation((0.0, 0.0, 0.0))
    seen = _gray(img) if gray is None else gray
    return FrameView(
        seen, CAMERA, nadir, PIXEL_M * CAMERA.focal_px, img, clouds=CFG, as_delivered=as_delivered
    )


def test_a_frames_obscured_share_counts_its_cloud_and_its_clipped_ground() -> None:
    """What the gate reads (gate.OBSCURED_SHARE): the share of the frame's ground the
    cloud mask took, with its rim, or left clipped white."""
    clear = _ground(CAMERA.height, CAMERA.width)
    assert _view(clear).obscured_share == 0.0
    cloudy = clear.copy()
    _disc(cloudy, (CAMERA.width // 2, CAMERA.height // 2), 60, (245, 245, 245))  # 180 m
    disc = math.pi * 60**2 / (CAMERA.width * CAMERA.height)
    rim = math.pi * (60 + CFG.grow_m / PIXEL_M) ** 2 / (CAMERA.width * CAMERA.height)
    assert disc < _view(cloudy).obscured_share <= rim + 0.01
    # roads clipped white but narrower than a cloud's run: ground, and obscured
    clipped = clear.copy()
    for x in range(20, CAMERA.width - 20, 80):
        cv2.rectangle(clipped, (x, 0), (x + 9, CAMERA.height - 1), (255, 255, 255), -1)
    painted = float(np.mean(_gray(clipped) >= 250))
    view = _view(clipped)
    assert np.all(view.fill[:, 20:30] == 255)  # not cloud
    assert view.obscured_share == pytest.approx(painted, abs=0.005)


def test_clipping_is_read_on_the_frame_as_delivered_not_as_the_flat_field_lifted_it() -> None:
    """A flat field divides a lens's falloff out and may lift a bright corner past the
    clipping level: that pixel was not clipped, and is not obscured."""
    clear = _ground(CAMERA.height, CAMERA.width)
    lifted = _gray(clear) * 3.0  # most of it past 250
    assert float(np.mean(lifted >= 250)) > 0.2
    assert _view(clear, lifted, as_delivered=_gray(clear)).obscured_share == 0.0
    assert _view(clear, lifted).obscured_share > 0.2
