"""visual_nav's map supply: tiles from the tile cache's services, ahead of the frames.

The estimator matches against whatever its :class:`~.mapview.DictTileSource`
holds; a frame never waits on a service call. This fills that source from the
tile cache (``~/query_bbox``, ``~/get_tile``) around the aircraft, on the
node's prefetch thread:

- the map's zoom (the coarsest with pixels no larger than ``resolution_m`` at
  ``ground_scale``: :attr:`~.config.VisualNavConfig.map_resolution_m`);
- where the cache leaves ground of that zoom uncovered, tiles up to
  ``finer_zoom_levels`` zooms finer (a cache cut from a 0.6 m/px orthophoto
  holds z17-z18 only), each kept reduced to what it covers at the map's zoom
  (:func:`~.mapview.reduce_tile`: a z17 tile for a z15 map costs 1/16 of its
  pixels), which the estimator composes (:func:`~.mapview.tile_pixels`);
- where neither covers it, the tile over it up to ``coarser_zoom_levels`` zooms
  coarser (a cache cut from a 10 m/px satellite product holds z13-z14 only),
  kept as it is; the estimator enlarges its piece (:func:`~.mapview.enlarged_piece`);
- next to the antimeridian the box crosses it (west edge east of the east
  edge, which the tile cache's bbox query reads as crossing) and the tile
  columns wrap (:func:`~.geo.wrap_tile_x`);
- the node fetches for the ground scale the frames' width asks for first, then
  for the one they are matched at (:mod:`~.visual_nav.ground_scale`): a tile
  kept reduced for a coarser map is fetched again when a finer map wants more of
  its pixels (whole as its own tile);
- never the sources in ``exclude_tile_sources`` (our own in-flight snapshots);
- a PNG's transparency is kept (:func:`decode_tile`), so its no-data stays out
  of the map;
- a tile whose header is not a PNG or JPEG of at most :data:`MAX_TILE_PIXELS` is
  never decoded (a decompression bomb), and like an undecodable one not asked for again;
- tiles left over :data:`KEEP_FACTOR` times the prefetch radius behind are dropped
  (:meth:`TilePrefetch.evict`): no map built around the aircraft reaches them, and a
  long flight's would pile up without bound (a 3 h leg at 100 km/h past a 3 km radius
  is some 2,600 z15 tiles, 500 MB of pixels).

The service calls are handed in (``query``, ``get``: a request in, the answer
or None out), so the node keeps its clients and their timeouts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import cv2
import numpy as np
from numpy.typing import NDArray

from gps_denied_onboard.srv import GetTile, QueryBbox
from gps_denied_onboard.visual_nav.config import VisualNavConfig
from gps_denied_onboard.visual_nav.errors import ImageHeaderError
from gps_denied_onboard.visual_nav.geo import (
    TILE_PX,
    LocalFrame,
    ground_resolution_m,
    latlon_to_world_px,
    tile_under,
    wrap_tile_x,
    zoom_for_resolution,
)
from gps_denied_onboard.visual_nav.image_header import bounded_size
from gps_denied_onboard.visual_nav.mapview import (
    DictTileSource,
    holds_pixels,
    reduce_tile,
    tiles_around,
)

Call = Callable[[Any], Any]

#: The most pixels a tile may declare (256 and 512 px tiles with room to spare).
MAX_TILE_PIXELS: Final = 4096 * 4096

#: Tiles whose centre is farther from the aircraft than this many times the widest
#: prefetch radius just fetched for are dropped (the mosaic reaches less than the
#: radius, ``mosaic_half_size_m``), so a vehicle turning back does not fetch again.
KEEP_FACTOR: Final = 2.0


def decode_tile(data: bytes) -> NDArray[np.uint8] | None:
    """A tile's JPEG or PNG bytes as 8-bit BGR, or BGRA when it has transparency (a
    PNG cut past its orthophoto's edge: :func:`~.mapview.tile_valid` reads its alpha).
    None when undecodable, or when its header is not a PNG or JPEG of at most
    :data:`MAX_TILE_PIXELS` (checked before decoding)."""
    try:
        bounded_size(data, MAX_TILE_PIXELS)
    except ImageHeaderError:
        return None
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        return None
    if img.dtype == np.uint16:
        img = (np.asarray(img, np.uint16) // 256).astype(np.uint8)
    elif img.dtype != np.uint8:
        return None
    if img.ndim == 2:
        return np.asarray(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), np.uint8)
    if img.shape[2] == 2:  # gray + alpha
        return np.dstack([img[:, :, 0]] * 3 + [img[:, :, 1]])
    if img.shape[2] == 4 and bool(np.all(img[:, :, 3] == 255)):
        return np.ascontiguousarray(img[:, :, :3])
    return np.asarray(img, np.uint8)


class TilePrefetch:
    """The tiles visual_nav has, and how it gets more (see the module docstring)."""

    def __init__(self, query: Call, get: Call) -> None:
        self.tiles = DictTileSource()
        self._query = query
        self._get = get
        self._ids: dict[tuple[int, int, int], str] = {}
        self._undecodable: set[tuple[int, int, int]] = set()

    def fetch_rungs(
        self,
        cfg: VisualNavConfig,
        factors: Iterable[float],
        lat: float,
        lon: float,
        *,
        also: Iterable[tuple[float, float]] = (),
    ) -> None:
        """:meth:`fetch` at each ground scale of ``factors`` (times ``cfg``'s), finest
        first: the rung a descent's frames ask for, whose own tiles are kept whole,
        then the one they are matched at (:mod:`~.visual_nav.ground_scale`). Around
        the point, and around each of ``also`` (our own track where a GNSS has moved
        the point off it) over half the radius away from those before; then
        :meth:`evict` what lies far from all of them."""
        scaled = [cfg.at_scale_factor(factor) for factor in sorted(set(factors))]
        if not scaled:
            return
        radius = max(c.map_prefetch_radius_m for c in scaled)
        centres = [(lat, lon)]
        for c in also:
            if all(math.hypot(*LocalFrame(*done).to_en(*c)) > radius / 2 for done in centres):
                centres.append(c)
        for c_lat, c_lon in centres:
            for rung in scaled:
                self.fetch(rung, c_lat, c_lon)
        self.evict(centres, KEEP_FACTOR * radius)

    def evict(self, centres: Sequence[tuple[float, float]], keep_m: float) -> int:
        """Drop the tiles whose centre lies over ``keep_m`` from every one of
        ``centres`` (across the antimeridian too); how many went."""
        gone = []
        # per zoom held: each centre's world pixel, and the ground metres of a pixel there
        at: dict[int, list[tuple[float, float, float]]] = {}
        for z, x, y in self.tiles.addresses():
            if z not in at:
                at[z] = [
                    (*latlon_to_world_px(lat, lon, z), ground_resolution_m(lat, z))
                    for lat, lon in centres
                ]
            tx, ty = (x + 0.5) * TILE_PX, (y + 0.5) * TILE_PX
            world = TILE_PX << z
            if all(
                math.hypot(min(abs(tx - cx), world - abs(tx - cx)), ty - cy) * m > keep_m
                for cx, cy, m in at[z]
            ):
                gone.append((z, x, y))
        self.tiles.discard(gone)
        for key in gone:
            self._ids.pop(key, None)
        return len(gone)

    def fetch(self, cfg: VisualNavConfig, lat: float, lon: float) -> None:
        """Tiles within ``prefetch_radius_m`` (at ``ground_scale``) of a point that the
        source lacks."""
        zoom = zoom_for_resolution(lat, cfg.map_resolution_m)
        r = cfg.map_prefetch_radius_m
        frame = LocalFrame(lat, lon)
        lat0, lon0 = frame.to_latlon(-r, -r)
        lat1, lon1 = frame.to_latlon(r, r)
        x0, y0, nx, ny = tiles_around(lat, lon, zoom, r)
        wanted = {(wrap_tile_x(x0 + i, zoom), y0 + j) for i in range(nx) for j in range(ny)}
        covered: set[tuple[int, int]] = set()  # cells of the map's zoom with their own tile
        composed: set[tuple[int, int]] = set()  # ... or with a finer one, or a coarser one
        box = (lat0, lon0, lat1, lon1)
        for levels in range(cfg.finer_zoom_levels + 1):
            if levels and (
                wanted <= covered
                or self._composed(lat, lon, r, zoom=zoom, levels=levels - 1, covered=covered)
            ):
                break
            infos = self._query_zoom(box, zoom + levels)
            if infos is None:
                return
            self._fetch_level(cfg, infos, zoom + levels, levels, covered=covered, composed=composed)
        for levels in range(1, cfg.coarser_zoom_levels + 1):
            if wanted <= composed or zoom - levels < 0:
                return
            infos = self._query_zoom(box, zoom - levels)
            if infos is None:
                return
            self._fetch_coarser(
                cfg, infos, zoom - levels, levels, bare=wanted - composed, composed=composed
            )

    def _query_zoom(self, box: tuple[float, float, float, float], z: int) -> Any | None:
        """The tile cache's tiles of zoom ``z`` in ``box``; None when it did not answer."""
        req = QueryBbox.Request()
        req.min_latitude, req.min_longitude, req.max_latitude, req.max_longitude = box
        req.zoom, req.limit = z, 0
        res = self._query(req)
        if res is None or not res.success:
            return None
        return res.tiles

    def _fetch_level(
        self,
        cfg: VisualNavConfig,
        infos: Any,
        z: int,
        levels: int,
        *,
        covered: set[tuple[int, int]],
        composed: set[tuple[int, int]],
    ) -> None:
        seen: set[tuple[int, int]] = set()
        for info in infos:
            key = (int(info.x), int(info.y))
            if key in seen or info.source in cfg.exclude_tile_sources:
                continue
            seen.add(key)
            cell = (key[0] >> levels, key[1] >> levels)
            if levels == 0:
                covered.add(key)
            elif cell in covered:
                continue  # the map's own tile is there
            if self._get_tile(info, z, key, levels):
                composed.add(cell)

    def _composed(
        self,
        lat: float,
        lon: float,
        r: float,
        *,
        zoom: int,
        levels: int,
        covered: set[tuple[int, int]],
    ) -> bool:
        """Whether the ground within ``r`` of the point is all under a map's own tile
        (``covered``) or a tile held up to ``levels`` zooms finer with the pixels the
        map wants of it: then a zoom finer still has nothing to add, and is not asked
        for (a z14 map of a z15 cache: two queries, not four)."""
        z = zoom + levels
        x0, y0, nx, ny = tiles_around(lat, lon, z, r)
        for i in range(nx):
            for j in range(ny):
                x, y = wrap_tile_x(x0 + i, z), y0 + j
                if (x >> levels, y >> levels) in covered:
                    continue
                if not any(
                    holds_pixels(self.tiles, z - k, x >> k, y >> k, levels - k)
                    for k in range(levels + 1)
                ):
                    return False
        return True

    def _fetch_coarser(
        self,
        cfg: VisualNavConfig,
        infos: Any,
        z: int,
        levels: int,
        *,
        bare: set[tuple[int, int]],
        composed: set[tuple[int, int]],
    ) -> None:
        """Tiles ``levels`` zooms coarser over cells of the map's zoom that no tile of
        its own, nor a finer one, covers (``bare``), kept as they are."""
        n = 1 << levels
        for info in infos:
            if info.source in cfg.exclude_tile_sources:
                continue
            key = (int(info.x), int(info.y))
            under = {(key[0] * n + i, key[1] * n + j) for i in range(n) for j in range(n)}
            if under & bare and self._get_tile(info, z, key, 0):
                bare -= under
                composed |= under

    def _get_tile(self, info: Any, z: int, key: tuple[int, int], levels: int) -> bool:
        """Tile ``(z, *key)`` into the source, reduced by ``levels`` zooms; whether the
        source has it now."""
        if holds_pixels(self.tiles, z, *key, levels):
            return True  # kept reduced for a coarser map: fetched again with the detail asked
        if (z, *key) in self._undecodable:
            return False
        get = GetTile.Request()
        get.zoom, get.x, get.y = z, key[0], key[1]
        get.source, get.flight_id = info.source, info.flight_id
        got = self._get(get)
        if got is None or not got.found:
            return False
        pixels = decode_tile(bytes(got.image.data))
        if pixels is None:
            self._undecodable.add((z, key[0], key[1]))
            return False
        self.tiles.put(z, key[0], key[1], reduce_tile(pixels, levels))
        self._ids[(z, key[0], key[1])] = str(info.tile_id)
        return True

    def tile_id_under(self, cfg: VisualNavConfig | None, lat: float, lon: float) -> str:
        """The id of the tile the map has under a point: its own zoom's, else a finer
        one's, else a coarser one's (the order the estimator reads them)."""
        zoom = zoom_for_resolution(lat, cfg.map_resolution_m if cfg else 5.0)
        finer = cfg.finer_zoom_levels if cfg else 0
        coarser = cfg.coarser_zoom_levels if cfg else 0
        for z in [*range(zoom, zoom + finer + 1), *range(zoom - 1, zoom - coarser - 1, -1)]:
            tile_id = self._ids.get((z, *tile_under(lat, lon, z)))
            if tile_id:
                return tile_id
        return ""
