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
is what the coarser tile would have been. A cache may also hold only coarser
tiles (a 10 m/px satellite product is cut at z13-z14): where no finer tile
covers the ground either, the tile's piece of one up to ``coarser_levels``
zooms coarser is enlarged (bilinear) to the map's pixels. The matcher then
sees a blurred map, less sharp and with fewer independent pixels: the mosaic
keeps which tiles were enlarged (:meth:`Mosaic.pixel_m_over`), and the error
model and the gate read it. Without it every frame over that ground would be
a ``no_tiles`` reject. Where no
level has the ground, the mosaic says so (its valid mask), and the matcher
does not count it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.features import fill_mask, saturation_f32, to_gray_f32
from gps_denied_onboard.visual_nav.geo import (
    TILE_PX,
    ground_resolution_m,
    latlon_to_world_px,
    wrap_tile_x,
)
from gps_denied_onboard.visual_nav.raster import FieldRaster, raster_from_mosaic

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]


@dataclass(frozen=True)
class TilePlanes:
    """A tile (or a finer one's piece) as the matcher reads it: gray, the no-data
    mask (:func:`tile_valid`) and the colour saturation (None for a mono tile)."""

    gray: F32
    valid: U8
    chroma: F32 | None
    coarser_by: int = 0  # zooms coarser than the map's: enlarged 2**coarser_by times


class TileSource(Protocol):
    """Decoded tile pixels by web-mercator address."""

    def tile(self, zoom: int, x: int, y: int) -> U8 | None:
        """The tile's pixels (256 x 256, BGR, BGRA or mono), None when not cached."""
        ...

    def generation(self) -> int:
        """A number that changes whenever tiles were added."""
        ...


def holds_pixels(tiles: TileSource, zoom: int, x: int, y: int, levels: int = 0) -> bool:
    """Whether ``tiles`` hold tile ``(zoom, x, y)`` with the pixels a map ``levels``
    zooms coarser takes of it (``TILE_PX >> levels`` a side): whole for its own zoom's
    map, 128 px of a z18 tile for a z17 map. One kept reduced for a coarser map
    holds less."""
    got = tiles.tile(zoom, x, y)
    return got is not None and min(got.shape[:2]) >= TILE_PX >> levels


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

    def addresses(self) -> list[tuple[int, int, int]]:
        """The addresses held, as a list (safe to hold while tiles come and go)."""
        return list(self._tiles)

    def discard(self, keys: Iterable[tuple[int, int, int]]) -> None:
        """Drop these tiles. The generation stays: a map built of them keeps its pixels,
        and should the aircraft come back the prefetch puts them again."""
        for key in keys:
            self._tiles.pop(key, None)

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
    # of the ground with imagery, the share from tiles coarser than ``zoom``
    coarser_share: float = 0.0
    # per tile (rows, columns): zooms coarser than ``zoom`` it was enlarged from; None: all 0
    coarser_by: NDArray[np.int8] | None = None

    @property
    def coarser_levels(self) -> int:
        """How many zooms coarser the coarsest enlarged tile is (0: none)."""
        return 0 if self.coarser_by is None else int(self.coarser_by.max())

    def contains(self, x0: float, y0: float, x1: float, y1: float) -> bool:
        ox, oy = self.tile_x0 * TILE_PX, self.tile_y0 * TILE_PX
        return (
            x0 >= ox
            and y0 >= oy
            and x1 <= ox + self.tiles_x * TILE_PX
            and y1 <= oy + self.tiles_y * TILE_PX
        )

    def pixel_m_over(
        self,
        nadir_x: float,
        nadir_y: float,
        box_m: tuple[float, float, float, float],
        metres_per_px: float,
    ) -> float:
        """The ground size of the coarsest map pixel under a template's ground: ``box_m``
        (west, south, east, north edges, metres from its nadir at world pixel ``(nadir_x,
        nadir_y)``: :attr:`.matcher.MatchResult.ground_box_m`). ``metres_per_px`` (the
        zoom's) where every tile there is the zoom's own or composed from finer ones,
        that times 2**k where one was enlarged from a tile k zooms coarser."""
        if self.coarser_by is None:
            return metres_per_px
        west, south, east, north = box_m
        x0, x1 = nadir_x + west / metres_per_px, nadir_x + east / metres_per_px
        y0, y1 = nadir_y - north / metres_per_px, nadir_y - south / metres_per_px
        c0 = math.floor(x0 / TILE_PX) - self.tile_x0
        c1 = math.floor(x1 / TILE_PX) - self.tile_x0
        r0 = math.floor(y0 / TILE_PX) - self.tile_y0
        r1 = math.floor(y1 / TILE_PX) - self.tile_y0
        c0, r0 = max(c0, 0), max(r0, 0)
        c1, r1 = min(c1, self.tiles_x - 1), min(r1, self.tiles_y - 1)
        if c1 < c0 or r1 < r0:
            return metres_per_px
        return metres_per_px * float(1 << int(self.coarser_by[r0 : r1 + 1, c0 : c1 + 1].max()))


def tiles_around(
    latitude: float, longitude: float, zoom: int, half_size_m: float
) -> tuple[int, int, int, int]:
    """(x0, y0, nx, ny): the tile block covering ``half_size_m`` around the point.

    Its columns are continuous: next to the antimeridian ``x0`` may be negative
    or ``x0 + nx`` past the last column (:func:`.geo.wrap_tile_x` names the tiles).
    """
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
    """Tiles' :class:`TilePlanes`, kept from one mosaic to the next.

    A mosaic is rebuilt whenever the search window leaves it, and the new one
    shares most of its tiles with the old: their gray and no-data masks
    (:func:`tile_valid`, a third of a 1 km cold start's time) are taken once per
    tile. An entry holds the pixels it was made from and is used only while the
    source still hands out that very array, so a tile fetched again is redone.
    The least recently used go past ``capacity`` tiles (~590 kB each in colour).
    """

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[int, int, int, int], tuple[U8, TilePlanes]] = OrderedDict()

    def get(self, key: tuple[int, int, int], pixels: U8, side: int) -> TilePlanes:
        """:func:`tile_planes` of ``pixels`` (the source's tile ``key``), from the cache if
        it holds these pixels."""
        k = (*key, side)
        hit = self._entries.get(k)
        if hit is not None and hit[0] is pixels:
            self._entries.move_to_end(k)
            return hit[1]
        planes = tile_planes(pixels, side)
        for a in (planes.gray, planes.valid, planes.chroma):
            if a is not None:
                a.flags.writeable = False  # shared by every mosaic that uses it
        self._entries[k] = (pixels, planes)
        self._entries.move_to_end(k)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return planes

    def __len__(self) -> int:
        return len(self._entries)


def tile_planes(t: U8, side: int) -> TilePlanes:
    """A tile (or a finer one's piece) at ``side`` px as :class:`TilePlanes`."""
    g = to_gray_f32(t)
    v = tile_valid(t)
    c = saturation_f32(t)
    if g.shape != (side, side):
        g = np.asarray(cv2.resize(g, (side, side), interpolation=cv2.INTER_AREA), np.float32)
        v = np.asarray(cv2.resize(v, (side, side), interpolation=cv2.INTER_NEAREST), np.uint8)
        if c is not None:
            c = np.asarray(cv2.resize(c, (side, side), interpolation=cv2.INTER_AREA), np.float32)
    return TilePlanes(g, v, c)


def tile_pixels(
    source: TileSource,
    zoom: int,
    x: int,
    y: int,
    finer_levels: int = 0,
    *,
    coarser_levels: int = 0,
    cache: GrayTiles | None = None,
) -> TilePlanes | None:
    """Tile ``(zoom, x, y)`` as :class:`TilePlanes`, or composed from finer tiles, or
    enlarged from a coarser one.

    The tile itself when the source has it (valid but for its no-data fill,
    :func:`tile_valid`). Otherwise the first of the ``finer_levels`` finer
    zooms that has any of the tiles under it: each reduced to the part of the
    tile it covers, the rest left invalid. Otherwise the first of the
    ``coarser_levels`` coarser zooms that has the tile over it
    (:func:`enlarged_piece`). None when no level has any.
    ``cache`` keeps each tile's planes for the next call. A mono piece among colour
    ones leaves its part of the saturation plane flat.
    """

    def planes_of(key: tuple[int, int, int], pixels: U8, side: int) -> TilePlanes:
        return tile_planes(pixels, side) if cache is None else cache.get(key, pixels, side)

    t = source.tile(zoom, x, y)
    if t is not None:
        return planes_of((zoom, x, y), t, TILE_PX)
    for d in range(1, finer_levels + 1):
        n, side = 1 << d, TILE_PX >> d
        gray: NDArray[np.float32] | None = None
        chroma: NDArray[np.float32] | None = None
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
                p = planes_of(key, piece, side)
                gray[rows, cols], valid[rows, cols] = p.gray, p.valid
                if p.chroma is not None:
                    if chroma is None:
                        chroma = np.zeros((TILE_PX, TILE_PX), np.float32)
                    chroma[rows, cols] = p.chroma
        if gray is not None:
            return TilePlanes(gray, valid, chroma)
    for d in range(1, coarser_levels + 1):
        if zoom - d < 0:
            break
        key = (zoom - d, x >> d, y >> d)
        t = source.tile(*key)
        if t is not None:
            return enlarged_piece(planes_of(key, t, TILE_PX), d, x, y)
    return None


def enlarged_piece(coarse: TilePlanes, levels: int, x: int, y: int) -> TilePlanes:
    """The part of a tile ``levels`` zooms coarser that covers tile ``(x, y)`` of the
    map's zoom, enlarged to ``TILE_PX`` (bilinear; the no-data mask by nearest, so
    fill stays out). Bilinear rather than cubic: it adds no overshoot at edges
    for the gradient field to read as structure the ground does not have."""
    n, side = 1 << levels, TILE_PX >> levels
    r0, c0 = (y & (n - 1)) * side, (x & (n - 1)) * side
    # a one-pixel border where the tile has it, so the enlarged edge samples its
    # neighbour pixels rather than repeating its own
    ra, rb = max(0, r0 - 1), min(TILE_PX, r0 + side + 1)
    ca, cb = max(0, c0 - 1), min(TILE_PX, c0 + side + 1)

    def up(a: NDArray[np.generic], interp: int) -> NDArray[np.generic]:
        # pixel centres: coarse pixel i sits at (i + 0.5) * n - 0.5 in the enlarged grid
        crop = np.ascontiguousarray(a[ra:rb, ca:cb])
        m = np.array(
            [
                [1.0 / n, 0.0, (0.5 / n - 0.5) + (c0 - ca)],
                [0.0, 1.0 / n, (0.5 / n - 0.5) + (r0 - ra)],
            ],
            np.float32,
        )
        return np.asarray(
            cv2.warpAffine(
                crop,
                m,
                (TILE_PX, TILE_PX),
                flags=interp | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
        )

    gray = np.asarray(up(coarse.gray, cv2.INTER_LINEAR), np.float32)
    valid = np.asarray(up(coarse.valid, cv2.INTER_NEAREST), np.uint8)
    chroma = (
        None
        if coarse.chroma is None
        else np.asarray(up(coarse.chroma, cv2.INTER_LINEAR), np.float32)
    )
    return TilePlanes(gray, valid, chroma, coarser_by=levels)


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
    coarser_levels: int = 0,
    cache: GrayTiles | None = None,
) -> Mosaic | None:
    """The mosaic of ``block``; None when the source has none of its tiles.

    A tile missing at ``zoom`` is composed from tiles up to ``finer_levels``
    zooms finer, or enlarged from one up to ``coarser_levels`` coarser
    (:func:`tile_pixels`); ``cache`` keeps the tiles' gray and masks for the
    next mosaic.
    """
    x0, y0, nx, ny = block
    gray = np.zeros((ny * TILE_PX, nx * TILE_PX), np.float32)
    valid = np.zeros(gray.shape, np.uint8)
    chroma: NDArray[np.float32] | None = None
    present = 0.0
    enlarged = 0.0
    coarser_by = np.zeros((ny, nx), np.int8)
    full = 0
    gen = source.generation()
    for j in range(ny):
        for i in range(nx):
            # the block's columns run on across the antimeridian; the tiles there
            # are the world's first (or last) columns
            got = tile_pixels(
                source,
                zoom,
                wrap_tile_x(x0 + i, zoom),
                y0 + j,
                finer_levels,
                coarser_levels=coarser_levels,
                cache=cache,
            )
            if got is None:
                continue
            v = got.valid
            rows = slice(j * TILE_PX, (j + 1) * TILE_PX)
            cols = slice(i * TILE_PX, (i + 1) * TILE_PX)
            gray[rows, cols] = got.gray
            valid[rows, cols] = v
            if got.chroma is not None:
                if chroma is None:
                    chroma = np.zeros(gray.shape, np.float32)
                chroma[rows, cols] = got.chroma
            share = float(np.count_nonzero(v)) / v.size
            present += share
            full += share == 1.0
            if got.coarser_by:
                enlarged += share
                coarser_by[j, i] = got.coarser_by
    if present == 0:
        return None
    metres_per_px = ground_resolution_m(latitude, zoom)
    ox, oy = float(x0 * TILE_PX), float(y0 * TILE_PX)
    fine = raster_from_mosaic(
        gray, valid, ox, oy, resolution_m / metres_per_px, harmonics=harmonics, chroma=chroma
    )
    coarse = raster_from_mosaic(
        gray, valid, ox, oy, coarse_resolution_m / metres_per_px, harmonics=harmonics
    )
    return Mosaic(
        zoom,
        x0,
        y0,
        nx,
        ny,
        fine,
        coarse,
        present / (nx * ny),
        gen,
        nx * ny - full,
        coarser_share=enlarged / present,
        coarser_by=coarser_by if enlarged else None,
    )
