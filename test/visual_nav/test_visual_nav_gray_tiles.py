"""Tiles' gray and no-data masks are kept from one mosaic to the next, never stale."""

from __future__ import annotations

import numpy as np

from gps_denied_onboard.visual_nav.geo import TILE_PX
from gps_denied_onboard.visual_nav.mapview import (
    DictTileSource,
    GrayTiles,
    Mosaic,
    build_mosaic,
    reduce_tile,
    tile_pixels,
)


def _tile(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.integers(20, 235, (TILE_PX, TILE_PX, 3), dtype=np.uint8)
    t[:, :40] = 0  # cut past its orthophoto's edge: black fill
    return t


def _source(n: int = 3) -> DictTileSource:
    return DictTileSource(
        {(15, 100 + i, 200 + j): _tile(10 * i + j) for i in range(n) for j in range(n)}
    )


def test_a_tile_used_again_is_not_converted_again() -> None:
    source, cache = _source(), GrayTiles()
    first = tile_pixels(source, 15, 101, 201, cache=cache)
    again = tile_pixels(source, 15, 101, 201, cache=cache)
    assert first is not None and again is not None
    assert again.gray is first.gray and again.valid is first.valid
    assert not again.gray.flags.writeable  # shared: nobody may draw on it
    plain = tile_pixels(source, 15, 101, 201)
    assert plain is not None
    np.testing.assert_array_equal(first.gray, plain.gray)
    np.testing.assert_array_equal(first.valid, plain.valid)
    assert first.valid[:, :40].max() == 0 and first.valid[:, 60:].min() == 255


def test_a_tile_fetched_again_is_converted_again() -> None:
    source, cache = _source(), GrayTiles()
    old = tile_pixels(source, 15, 101, 201, cache=cache)
    source.put(15, 101, 201, np.full((TILE_PX, TILE_PX, 3), 90, np.uint8))
    new = tile_pixels(source, 15, 101, 201, cache=cache)
    assert old is not None and new is not None
    assert float(new.gray.mean()) == 90.0 and new.valid.min() == 255
    assert float(old.gray.mean()) != 90.0


def test_pieces_of_finer_tiles_are_kept_too_and_the_least_recent_go_first() -> None:
    fine = {
        (17, 400 + i, 800 + j): reduce_tile(_tile(i + 4 * j), 2) for i in range(4) for j in range(4)
    }
    source, cache = DictTileSource(fine), GrayTiles(capacity=20)
    composed = tile_pixels(source, 15, 100, 200, finer_levels=2, cache=cache)
    assert composed is not None and len(cache) == 16
    again = tile_pixels(source, 15, 100, 200, finer_levels=2, cache=cache)
    assert again is not None
    np.testing.assert_array_equal(again.gray, composed.gray)
    small = GrayTiles(capacity=5)
    tile_pixels(source, 15, 100, 200, finer_levels=2, cache=small)
    assert len(small) == 5


def test_a_mosaic_from_kept_tiles_is_the_mosaic_from_fresh_ones() -> None:
    source, cache = _source(), GrayTiles()

    def mosaic(block: tuple[int, int, int, int], cache: GrayTiles | None) -> Mosaic | None:
        return build_mosaic(
            source,
            15,
            block,
            resolution_m=5.0,
            coarse_resolution_m=10.0,
            latitude=47.0,
            harmonics=2,
            cache=cache,
        )

    mosaic((100, 200, 2, 2), cache)  # four of the nine tiles seen before
    kept = mosaic((100, 200, 3, 3), cache)
    fresh = mosaic((100, 200, 3, 3), None)
    assert kept is not None and fresh is not None
    for a, b in ((kept.fine, fresh.fine), (kept.coarse, fresh.coarse)):
        # colour tiles: the fine raster carries the saturation plane (colour support)
        extra_a, extra_b = a.chroma or (), b.chroma or ()
        assert len(extra_a) == (4 if a is kept.fine else 0)
        for ca, cb in zip(a.channels + extra_a, b.channels + extra_b, strict=True):
            # the same pixels in; OpenCV's threads may round the field's last bit apart
            np.testing.assert_allclose(ca, cb, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(a.valid, b.valid)
    assert kept.coverage == fresh.coverage and kept.missing == fresh.missing
