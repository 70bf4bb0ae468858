"""The weather the ``camera_weather`` benchmark lays over frames is what its
docstring says: clouds and shadows over the share asked, shadows that darken
without moving an edge, and no unknown weather passed off as a clear frame; the
bright ground it lays on map and frames is at the same places in every year, at
a cloud's brightness, in runs narrower than a cloud's."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest
from pyproj import CRS

from gps_denied_onboard.visual_nav.clouds import CloudMaskConfig
from gps_denied_onboard.visual_nav.features import saturation_f32, to_gray_f32
from gps_denied_onboard.visual_nav.simulate import Orthophoto


@pytest.fixture
def weather(bench_module: Callable[[str], ModuleType]) -> Any:
    return bench_module("_camera_weather")


def _ground(shape: tuple[int, int] = (240, 320)) -> np.ndarray:
    rng = np.random.default_rng(3)
    img = rng.integers(60, 160, (*shape, 3)).astype(np.uint8)
    return img


@pytest.mark.parametrize("share", [0.15, 0.3, 0.5])
def test_clouds_cover_about_the_share_asked_in_white(weather: Any, share: float) -> None:
    got = weather.weathered(_ground(), "clouds", share, 1.5, np.random.default_rng(1))
    white = np.mean(got.min(axis=2) >= 240)
    assert share * 0.7 <= white <= share * 1.1  # the soft rim is not yet white


def test_shadows_darken_their_share_to_the_gain_and_leave_the_rest(weather: Any) -> None:
    img = _ground()
    mask = weather.patches(img.shape, 0.3, 1.5, np.random.default_rng(7), edge=1.0)[..., 0]
    got = weather.weathered(img, "shadows", 0.3, 1.5, np.random.default_rng(7))
    ratio = got.astype(np.float64) / img.astype(np.float64)
    full, clear = mask >= 0.999, mask == 0.0
    assert full.any() and clear.any()
    assert np.allclose(ratio[full], weather.SHADOW_GAIN, atol=0.02)
    assert np.array_equal(got[clear], img[clear])


def test_patches_grow_with_the_ground_they_are_set_on(weather: Any) -> None:
    # the same field seen at a third of the pixel size: fewer, larger outlines
    coarse = weather.patches((240, 320), 0.3, 1.5, np.random.default_rng(5), edge=6.0)
    fine = weather.patches((240, 320), 0.3, 0.5, np.random.default_rng(5), edge=6.0)

    def edges(m: np.ndarray) -> int:
        b = m[..., 0] > 0.5
        return int(np.count_nonzero(b[1:] != b[:-1]) + np.count_nonzero(b[:, 1:] != b[:, :-1]))

    assert edges(fine) < edges(coarse)


def test_overexposure_multiplies_every_level_and_clips_at_white(weather: Any) -> None:
    img = _ground()
    got = weather.weathered(img, "overexposed", 1.8, 1.5, np.random.default_rng(0))
    want = np.clip(img.astype(np.float64) * 1.8, 0, 255).astype(np.uint8)
    assert np.array_equal(got, want)
    assert np.any(got == 255) and np.any(got < 255)


def test_a_mono_camera_sees_the_weather_in_gray(weather: Any) -> None:
    img = _ground()
    colour = weather.weathered(img, "clouds", 0.3, 1.5, np.random.default_rng(4))
    mono = weather.weathered(img, "mono_clouds", 0.3, 1.5, np.random.default_rng(4))
    assert mono.shape == img.shape[:2]
    assert np.array_equal(mono, cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY))


def test_unknown_weather_is_refused(weather: Any) -> None:
    with pytest.raises(ValueError, match="unknown weather"):
        weather.weathered(_ground(), "hail", 1.0, 1.5, np.random.default_rng(0))


def _clip(pixels: np.ndarray) -> Orthophoto:
    return Orthophoto(pixels, CRS.from_epsg(26914), 500_000.0, 5_200_000.0, 5.0)


def test_bright_ground_lies_at_the_same_places_in_every_year(weather: Any) -> None:
    one = weather.bright_ground(_clip(_ground((400, 500))))
    other = weather.bright_ground(_clip(np.full((400, 500, 3), 90, np.uint8)))
    laid = one.pixels.min(axis=2) >= weather.BRIGHT_LEVELS[0] - 8.0
    assert np.array_equal(laid, other.pixels.min(axis=2) >= weather.BRIGHT_LEVELS[0] - 8.0)
    # 400 x 500 px of 5 m: 5 km2, about BRIGHT_PER_KM2 features each
    assert 0.02 <= laid.mean() <= 0.3


def test_bright_ground_is_at_a_clouds_level_and_colourless(weather: Any) -> None:
    got = weather.bright_ground(_clip(np.full((400, 500, 3), 90, np.uint8))).pixels
    laid = got.min(axis=2) > 90
    cfg = CloudMaskConfig()
    assert np.all(to_gray_f32(got)[laid] >= cfg.level)
    sat = saturation_f32(got)
    assert sat is not None and np.all(sat[laid] <= cfg.max_saturation)
