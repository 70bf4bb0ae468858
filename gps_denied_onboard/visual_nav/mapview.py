"""The map window: a mosaic of cached tiles around the prior, kept while it is enough.

Tiles come from a :class:`TileSource` (the node fills it from the tile cache's
services ahead of the aircraft; tests hand in a dict). The mosaic covers a
square around the point it was built for; it is reused for every frame whose
search window (prior + search radius + footprint) still fits inside, and
rebuilt when the window leaves it or tiles that were missing have arrived.

The zoom is the coarsest whose pixels are no larger than the matching
resolution (z15 at 47 deg N for 5 m). A cache may hold only finer tiles (a
0.6 m/px orthophoto is cut at z17-z18): a tile missing at that zoom is then
composed from the tiles up to ``finer_levels`` zooms finer, each reduced by
area averaging (:func:`reduce_tile`) to the pixels it covers, so the mosaic
is what the coarser tile would have been. Where those are missing too, the
mosaic says so (its valid mask), and the matcher does not count that ground.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.features import fill_mask, to_gray_f32
from gps_denied_onboard.visual_nav.geo import TILE_PX, ground_resolution_m, latlon_to_world_px
from gps_denied_onboard.visual_nav.matcher import FieldRaster, raster_from_mosaic

U8 = NDArray[np.uint8]


class TileSource(Protocol):
    """Decoded tile pixels by web-mercator address."""

    def tile(self, zoom: int, x: int, y: int) -> U8 | None:
        """The tile's pixels (256 x 256, BGR, BGRA or mono), None when not cached."""
        ...

    def generation(self) -> int:
        """A number that changes whenever tiles were added."""
        ...


class DictTileSource:
    """A :class:`TileSource` over an in-memory dict (tests, benchmarks, the node's prefetch)."""

    def __init__(self, tiles: dict[tuple[int, int, int], U8] | None = None) -> None:
        self._tiles = dict(tiles or {})
        self._gen = 0

    def put(self, zoom: int, x: int, y: int, pixels: U8) -> None:
        self._tiles[(zoom, x, y)] = pixels
        self._gen += 1

    def has(self, zoom: int, x: int, y: int) -> bool:
        return (zoom, x, y) in self._tiles

    def tile(self, zoom: int, x: int, y: int) -> U8 | None:
        return self._tiles.get((zoom, x, y))

    def generation(self) -> int:
        return self._gen

    def __len__(self) -> int:
        return len(self._tiles)


@dataclass
class Mosaic:
    """Rasters of one mosaic, in world pixels at ``zoom``."""

    zoom: int
    tile_x0: int
    tile_y0: int
    tiles_x: int
    tiles_y: int
    fine: FieldRaster
    coarse: FieldRaster
    coverage: float  # fraction of the mosaic's ground that has imagery
    generation: int
    missing: int  # tiles not wholly covered

    def contains(self, x0: float, y0: float, x1: float, y1: float) -> bool:
        ox, oy = self.tile_x0 * TILE_PX, self.tile_y0 * TILE_PX
        return (
            x0 >= ox
            and y0 >= oy
            and x1 <= ox + self.tiles_x * TILE_PX
            and y1 <= oy + self.tiles_y * TILE_PX
        )


def tiles_around(
    latitude: float, longitude: float, zoom: int, half_size_m: float
) -> tuple[int, int, int, int]:
    """(x0, y0, nx, ny): the tile block covering ``half_size_m`` around the point."""
    px, py = latlon_to_world_px(latitude, longitude, zoom)
    half_px = half_size_m / ground_resolution_m(latitude, zoom)
    x0 = math.floor((px - half_px) / TILE_PX)
    y0 = math.floor((py - half_px) / TILE_PX)
    x1 = math.floor((px + half_px) / TILE_PX)
    y1 = math.floor((py + half_px) / TILE_PX)
    return x0, y0, x1 - x0 + 1, y1 - y0 + 1


def reduce_tile(pixels: U8, levels: int) -> U8:
    """A tile ``levels`` zooms finer than the mosaic's, reduced (area average) to the
    ``TILE_PX >> levels`` pixels it covers there. The node keeps finer tiles reduced:
    a z18 tile costs 1/64 of its pixels."""
    side = TILE_PX >> levels
    if pixels.shape[:2] == (side, side):
        return pixels
    return np.asarray(cv2.resize(pixels, (side, side), interpolation=cv2.INTER_AREA), np.uint8)


def tile_valid(t: U8) -> U8:
    """Where a tile is ground (255) and where it is no-data fill (0).

    A tile with an alpha channel (BGRA: a PNG cut past its orthophoto's edge)
    says so itself (alpha >= 128). Otherwise no-data is black fill
    (:func:`.features.fill_mask`: a JPEG tile cut past the edge is filled
    black), whose straight edge a frame's road or field edge would match.
    """
    if t.ndim == 3 and t.shape[2] == 4:
        return np.where(t[:, :, 3] >= 128, 255, 0).astype(np.uint8)
    return fill_mask(t)


class GrayTiles:
    """Tiles in gray with their valid masks, kept from one mosaic to the next.

    A mosaic is rebuilt whenever the search window leaves it, and the new one
    shares most of its tiles with the old: their gray and no-data masks
    (:func:`tile_valid`, a third of a 1 km cold start's time) are taken once per
    tile. An entry holds the pixels it was made from and is used only while the
    source still hands out that very array, so a tile fetched again is redone.
    The least recently used go past ``capacity`` tiles (~330 kB each).
    """

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[
            tuple[int, int, int, int], tuple[U8, NDArray[np.float32], U8]
        ] = OrderedDict()

    def get(
        self, key: tuple[int, int, int], pixels: U8, side: int
    ) -> tuple[NDArray[np.float32], U8]:
        """:func:`_gray_tile` of ``pixels`` (the source's tile ``key``), from the cache if
        it holds these pixels."""
        k = (*key, side)
        hit = self._entries.get(k)
        if hit is not None and hit[0] is pixels:
            self._entries.move_to_end(k)
            return hit[1], hit[2]
        g, v = _gray_tile(pixels, side)
        g.flags.writeable = v.flags.writeable = False  # shared by every mosaic that uses it
        self._entries[k] = (pixels, g, v)
        self._entries.move_to_end(k)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return g, v

    def __len__(self) -> int:
        return len(self._entries)


def _gray_tile(t: U8, side: int) -> tuple[NDArray[np.float32], U8]:
    """A tile (or a finer one's piece) in gray at ``side`` px, with its :func:`tile_valid`."""
    g = to_gray_f32(t)
    v = tile_valid(t)
    if g.shape != (side, side):
        g = np.asarray(cv2.resize(g, (side, side), interpolation=cv2.INTER_AREA), np.float32)
        v = np.asarray(cv2.resize(v, (side, side), interpolation=cv2.INTER_NEAREST), np.uint8)
    return g, v


def tile_pixels(
    source: TileSource,
    zoom: int,
    x: int,
    y: int,
    finer_levels: int = 0,
    *,
    cache: GrayTiles | None = None,
) -> tuple[NDArray[np.float32], U8] | None:
    """Tile ``(zoom, x, y)`` in gray with its valid mask, or composed from finer tiles.

    The tile itself when the source has it (valid but for its no-data fill,
    :func:`tile_valid`). Otherwise the first of the ``finer_levels`` finer
    zooms that has any of the tiles under it: each reduced to the part of the
    tile it covers, the rest left invalid. None when no level has any.
    ``cache`` keeps each tile's gray and mask for the next call.
    """

    def gray_of(key: tuple[int, int, int], pixels: U8, side: int) -> tuple[NDArray[np.float32], U8]:
        return _gray_tile(pixels, side) if cache is None else cache.get(key, pixels, side)

    t = source.tile(zoom, x, y)
    if t is not None:
        return gray_of((zoom, x, y), t, TILE_PX)
    for d in range(1, finer_levels + 1):
        n, side = 1 << d, TILE_PX >> d
        gray: NDArray[np.float32] | None = None
        valid = np.zeros((TILE_PX, TILE_PX), np.uint8)
        for j in range(n):
            for i in range(n):
                key = (zoom + d, x * n + i, y * n + j)
                piece = source.tile(*key)
                if piece is None:
                    continue
                if gray is None:
                    gray = np.zeros((TILE_PX, TILE_PX), np.float32)
                rows, cols = slice(j * side, (j + 1) * side), slice(i * side, (i + 1) * side)
                gray[rows, cols], valid[rows, cols] = gray_of(key, piece, side)
        if gray is not None:
            return gray, valid
    return None


def build_mosaic(
    source: TileSource,
    zoom: int,
    block: tuple[int, int, int, int],
    *,
    resolution_m: float,
    coarse_resolution_m: float,
    latitude: float,
    harmonics: int,
    finer_levels: int = 0,
    cache: GrayTiles | None = None,
) -> Mosaic | None:
    """The mosaic of ``block``; None when the source has none of its tiles.

    A tile missing at ``zoom`` is composed from tiles up to ``finer_levels``
    zooms finer (:func:`tile_pixels`); ``cache`` keeps the tiles' gray and masks
    for the next mosaic.
    """
    x0, y0, nx, ny = block
    gray = np.zeros((ny * TILE_PX, nx * TILE_PX), np.float32)
    valid = np.zeros(gray.shape, np.uint8)
    present = 0.0
    full = 0
    gen = source.generation()
    for j in range(ny):
        for i in range(nx):
            got = tile_pixels(source, zoom, x0 + i, y0 + j, finer_levels, cache=cache)
            if got is None:
                continue
            g, v = got
            rows = slice(j * TILE_PX, (j + 1) * TILE_PX)
            cols = slice(i * TILE_PX, (i + 1) * TILE_PX)
            gray[rows, cols] = g
            valid[rows, cols] = v
            share = float(np.count_nonzero(v)) / v.size
            present += share
            full += share == 1.0
    if present == 0:
        return None
    metres_per_px = ground_resolution_m(latitude, zoom)
    ox, oy = float(x0 * TILE_PX), float(y0 * TILE_PX)
    fine = raster_from_mosaic(
        gray, valid, ox, oy, resolution_m / metres_per_px, harmonics=harmonics
    )
    coarse = raster_from_mosaic(
        gray, valid, ox, oy, coarse_resolution_m / metres_per_px, harmonics=harmonics
    )
    return Mosaic(zoom, x0, y0, nx, ny, fine, coarse, present / (nx * ny), gen, nx * ny - full)
