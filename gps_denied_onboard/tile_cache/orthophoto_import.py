"""An operator's orthophoto (a GeoTIFF of the area to be flown) cut into the cache's tiles.

Before a flight the map has to be on the aircraft. The ground's tile provider
fills the cache through ``put_tile``; without one, an operator has a GeoTIFF
(a national orthophoto, NAIP, a drone survey) and this: it is resampled onto
the web-mercator tiles covering it at each zoom asked
(:mod:`gps_denied_onboard.visual_nav.orthophoto`, the way the benchmarks'
tiles are made, but averaged down first where a tile pixel spans several of
the orthophoto's), JPEG-encoded and stored through the store's own write path
(:func:`.writes.put_tiles`, a transaction per batch) as reference imagery of
``source``, captured when the orthophoto was taken (the freshness rules
judge by that date, so it is asked for, not assumed).

A tile the cache already holds under the same address and source is left as it
is and counted: an import killed part way is finished by running it again, and
one run twice stores nothing the second time. So the images of one area (the
quads of a survey) go in one import: a tile where two meet is made from both,
each pixel from the image that covers it wholly. A tile with no orthophoto pixel
in it (beyond the image's edge) is not stored. The store keeps to its disk
budget as it writes (least recently used first), so an area larger than the
budget is reported as evicted tiles rather than silently half-held.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.tile_cache.errors import TileValidationError
from gps_denied_onboard.tile_cache.model import TileWrite
from gps_denied_onboard.tile_cache.store import PostgresFilesystemStore
from gps_denied_onboard.visual_nav.geo import ground_resolution_m, zoom_for_resolution
from gps_denied_onboard.visual_nav.orthophoto import (
    Orthophoto,
    for_zoom,
    render_map,
    tile_addresses,
    tile_grid,
    tile_span,
)

#: tiles written per transaction
BATCH: Final = 32
#: the highest zoom an import makes (z22 is 3.7 cm a pixel at the equator)
MAX_ZOOM: Final = 22
#: visual_nav's default resolution_m, and how often its ground-scale ladder may halve it
#: (ground_scale_finer_levels): what :func:`default_zooms` serves
MAP_RESOLUTION_M: Final = 5.0
FINER_LEVELS: Final = 3
#: the most tiles one import may make: about 15 GB of JPEG, a 250 km square at z17.
#: A GeoTIFF whose placement is wrong (a pixel size in degrees read as metres, a
#: continent-wide raster at a fine zoom) would otherwise run for days
MAX_TILES: Final = 1_000_000


@dataclass
class ImportReport:
    """What an import did, per zoom and in all."""

    zooms: tuple[int, ...]
    #: tiles covering the orthophotos at each zoom
    covering: dict[int, int] = field(default_factory=dict)
    stored: int = 0
    #: already in the cache under the same address and source: left as they were
    held: int = 0
    #: beyond the orthophotos' edges: not stored
    empty: int = 0
    bytes_stored: int = 0
    #: tiles the store evicted meanwhile to stay within its disk budget: the area
    #: does not fit (imported tiles among them, or the tiles they displaced)
    evicted: int = 0


def default_zooms(
    orthophotos: Sequence[Orthophoto], resolution_m: float = MAP_RESOLUTION_M
) -> tuple[int, ...]:
    """The zooms visual_nav reads over these images, finest first.

    Its map's zoom (the coarsest whose pixels are no larger than ``resolution_m``,
    visual_nav's parameter: z15 at 47 N for 5 m) and the next coarser (its coarser
    rung, for frames seeing much more ground), whatever the images' own pixel size;
    and the finer zooms its ladder halves the scale to for frames seeing little ground
    (up to :data:`FINER_LEVELS`), as far as the images hold the detail: none finer
    than their finest pixels. NAIP at 5 m: z15 and z14; at 0.6 m: z17 to z14.
    """
    bounds = [o.bounds_latlon() for o in orthophotos]
    lat = (min(b[0] for b in bounds) + max(b[2] for b in bounds)) / 2.0
    finest_px = min(o.ground_pixel_m() for o in orthophotos)
    z = zoom_for_resolution(lat, resolution_m, MAX_ZOOM)
    finer = [
        f
        for f in range(z + 1, min(z + FINER_LEVELS, MAX_ZOOM) + 1)
        if ground_resolution_m(lat, f) >= finest_px
    ]
    return tuple(sorted({*finer, z, max(z - 1, 0)}, reverse=True))


@dataclass(frozen=True)
class _Source:
    """One orthophoto as sampled at one zoom, and where it has pixels."""

    pixels: Orthophoto
    #: 255 over the image, 0 beyond: sampled like the pixels, it says how much of a
    #: map pixel's bilinear sample came from the image (its edge blends with black);
    #: None for an image imported alone
    cover: Orthophoto | None

    @classmethod
    def at(cls, ortho: Orthophoto, zoom: int, *, alone: bool) -> _Source:
        reduced = for_zoom(ortho, zoom)
        if alone:
            return cls(reduced, None)
        ones = np.full(reduced.pixels.shape[:2], 255, np.uint8)
        return cls(reduced, replace(reduced, pixels=ones))


def _tile(sources: Sequence[_Source], zoom: int, x: int, y: int) -> NDArray[np.uint8]:
    """The tile's pixels from the orthophotos over it.

    A map pixel one image covers wholly is that image's (the first such). One no
    image covers wholly lies where images meet, or at the area's edge: there each
    image's bilinear sample holds only its own pixels' share (the rest is the black
    beyond its edge), so their sum over the shares' sum is the sample of the images
    as one: no dark seam where two quads meet without overlap.
    """
    grid = tile_grid(zoom, x, y)
    first = render_map(sources[0].pixels, grid)
    if len(sources) == 1 or sources[0].cover is None:
        return first
    pixels = [first] + [render_map(s.pixels, grid) for s in sources[1:]]
    covers = [render_map(s.cover, grid) for s in sources if s.cover is not None]
    out = np.zeros_like(first)
    done = np.zeros(first.shape[:2], bool)
    for px, cover in zip(pixels, covers, strict=True):
        whole = (cover == 255) & ~done
        out[whole] = px[whole]
        done |= whole
    share = np.sum([c.astype(np.float32) for c in covers], axis=0) / 255.0
    part = ~done & (share > 0)
    if part.any():
        total = np.sum([p.astype(np.float32) for p in pixels], axis=0)
        if total.ndim == 3:
            share = share[:, :, None]
        mixed = np.clip(np.rint(total / np.maximum(share, 1e-6)), 0, 255).astype(np.uint8)
        out[part] = mixed[part]
    return out


def import_orthophotos(
    store: PostgresFilesystemStore,
    orthophotos: Sequence[Orthophoto],
    *,
    source: str,
    captured_at_ns: int,
    zooms: Sequence[int],
    jpeg_quality: int = 90,
    progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Store the tiles covering ``orthophotos`` at each of ``zooms`` (see the module
    docstring).

    The images of one area (the quads of a survey) go in one call: a tile where two
    of them meet is made from both, where one call per image would store it from
    the first alone, black beyond its edge, and leave it so (a held tile is not
    replaced).

    Args:
        store: a read-write store (it holds the tile root's lock).
        orthophotos: the images, of one source and date; where they overlap the
            first that covers a map pixel wholly gives it.
        source: the imagery's source name as the cache stores it (``naip``...).
        captured_at_ns: when the orthophotos were taken, epoch ns.
        progress: called with the report after every batch.

    Raises:
        TileValidationError: no orthophoto, one that cannot be placed, more than
            :data:`MAX_TILES` tiles, a zoom out of 0..22, a source the store
            refuses, or a JPEG quality out of 1..100; before anything is stored.
        TileCacheError: the store's own failures (a batch is stored whole or not).
    """
    if not orthophotos:
        raise TileValidationError("no orthophoto to import", field="orthophotos")
    if not zooms or any(not 0 <= z <= MAX_ZOOM for z in zooms):
        raise TileValidationError(
            f"zooms must be within 0..{MAX_ZOOM}, got {list(zooms)}", field="zoom"
        )
    if not 1 <= jpeg_quality <= 100:
        raise TileValidationError(
            f"jpeg_quality must be within 1..100, got {jpeg_quality}", field="jpeg_quality"
        )
    try:
        tiles = sum(
            len(columns) * len(rows)
            for z in zooms
            for columns, rows in (tile_span(o, z) for o in orthophotos)
        )
    except ValueError as err:
        raise TileValidationError(
            f"the orthophotos cannot be placed: {err}", field="orthophotos"
        ) from err
    if tiles > MAX_TILES:
        raise TileValidationError(
            f"the orthophotos cover {tiles} tiles at zooms {list(zooms)}, more than {MAX_TILES}: "
            "check their placement, or import fewer or coarser zooms",
            field="zoom",
        )
    report = ImportReport(tuple(zooms))
    evictions_before = store.stats().evictions
    gsd = min(o.ground_pixel_m() for o in orthophotos)
    for zoom in report.zooms:
        alone = len(orthophotos) == 1
        sources = [_Source.at(o, zoom, alone=alone) for o in orthophotos]
        over: dict[tuple[int, int, int], list[_Source]] = {}
        for ortho, src in zip(orthophotos, sources, strict=True):
            for address in tile_addresses(ortho, zoom):
                over.setdefault(address, []).append(src)
        report.covering[zoom] = len(over)
        batch: list[TileWrite] = []
        for (z, x, y), here in over.items():
            if store.find(z, x, y, source) is not None:
                report.held += 1
                continue
            px = _tile(here, z, x, y)
            if not px.any():
                report.empty += 1
                continue
            ok, buf = cv2.imencode(".jpg", px, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            if not ok:  # pragma: no cover - OpenCV encodes any 8-bit image
                raise TileValidationError(f"tile {z}/{x}/{y}: JPEG encoding failed", field="data")
            data = bytes(np.asarray(buf).tobytes())
            batch.append(
                TileWrite(
                    zoom=z,
                    x=x,
                    y=y,
                    source=source,
                    data=data,
                    content_sha256=hashlib.sha256(data).hexdigest(),
                    captured_at_ns=captured_at_ns,
                    quality={"gsd_m": round(gsd, 3), "imported": True},
                )
            )
            if len(batch) == BATCH:
                _flush(store, batch, report, progress)
        _flush(store, batch, report, progress)
    report.evicted = store.stats().evictions - evictions_before
    return report


def _flush(
    store: PostgresFilesystemStore,
    batch: list[TileWrite],
    report: ImportReport,
    progress: Callable[[ImportReport], None] | None,
) -> None:
    if not batch:
        return
    store.put_tiles(batch)
    report.stored += len(batch)
    report.bytes_stored += sum(len(w.data) for w in batch)
    batch.clear()
    if progress is not None:
        progress(report)
