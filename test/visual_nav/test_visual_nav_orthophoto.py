"""Orthophoto GeoTIFFs as an operator has them: 8-bit or not, RGB, grey or grey and alpha."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from numpy.typing import NDArray

from gps_denied_onboard.replay.geotiff import GeoTiffError
from gps_denied_onboard.visual_nav.orthophoto import Orthophoto, eight_bit

from .support import naip

EPSG_UTM14N_NAD83 = 26914  # the NAIP clips' CRS


def _write(path: Path, data: NDArray[np.generic], ref: Orthophoto, scale_y: float = 0.0) -> Path:
    """A north-up GeoTIFF of ``data`` placed where ``ref``'s top-left corner is."""
    keys = [1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, EPSG_UTM14N_NAD83]
    tifffile.imwrite(
        path,
        data,
        photometric="rgb" if data.ndim == 3 and data.shape[2] in (3, 4) else "minisblack",
        planarconfig="contig",
        extratags=[
            (33550, "d", 3, (ref.pixel_size, scale_y or ref.pixel_size, 0.0), False),
            (33922, "d", 6, (0.0, 0.0, 0.0, ref.origin_x, ref.origin_y, 0.0), False),
            (34735, "H", len(keys), keys, False),
        ],
    )
    return path


@pytest.fixture(scope="module")
def clip() -> Orthophoto:
    return naip("2017")


def test_a_16_bit_or_float_orthophoto_is_stretched_onto_8_bits_not_wrapped(
    clip: Orthophoto, tmp_path: Path
) -> None:
    rgb = np.ascontiguousarray(clip.pixels[:300, :400, ::-1]).astype(np.float64)
    rgb[:20, :20] = 0  # no data in a corner
    want = Orthophoto.read(_write(tmp_path / "8bit.tif", rgb.astype(np.uint8), clip)).pixels
    for name, data in (
        ("16bit", (rgb * 40.0 + np.where(rgb > 0, 300.0, 0.0)).astype(np.uint16)),  # 14 bits
        ("float", (rgb / 255.0 * 0.4).astype(np.float32)),  # reflectance
    ):
        got = Orthophoto.read(_write(tmp_path / f"{name}.tif", data, clip)).pixels
        assert got.dtype == np.uint8 and got.shape == want.shape
        assert not got[:20, :20].any()  # no data stays 0
        inside = want.any(axis=2)
        r = np.corrcoef(got[inside].ravel().astype(float), want[inside].ravel().astype(float))
        assert r[0, 1] > 0.999, name  # the same picture, levels stretched linearly
        assert got[inside].max() == 255 and got[inside].min() >= 1
        wrapped = data.astype(np.uint8)  # what a plain cast made of it
        if name == "16bit":
            r_wrapped = np.corrcoef(wrapped[inside].ravel(), want[inside].ravel())[0, 1]
            assert r_wrapped < 0.5


def test_grey_and_alpha_reads_as_grey_and_non_square_pixels_are_refused(
    clip: Orthophoto, tmp_path: Path
) -> None:
    grey = np.ascontiguousarray(clip.pixels[:200, :200, 1])
    both = np.dstack([grey, np.full_like(grey, 255)])
    got = Orthophoto.read(_write(tmp_path / "ga.tif", both, clip)).pixels
    assert got.shape == (200, 200, 1) and np.array_equal(got[:, :, 0], grey)
    with pytest.raises(GeoTiffError, match="not square"):
        Orthophoto.read(_write(tmp_path / "rect.tif", grey, clip, scale_y=clip.pixel_size * 1.2))


def test_eight_bit_of_no_data_at_all_is_all_zero() -> None:
    assert not eight_bit(np.zeros((4, 4, 3), np.uint16)).any()
    assert not eight_bit(np.full((4, 4), np.nan, np.float32)).any()
