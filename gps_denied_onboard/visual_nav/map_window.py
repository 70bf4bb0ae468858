"""The map window: the mosaic around the prior, kept while the search stays inside it.

Building a mosaic (:func:`.mapview.build_mosaic`) costs a cold start's worth of
tile decoding and field rasters, so the window keeps the last one and reuses it
for every frame whose search (prior + reach) still fits inside, rebuilding only
when the search leaves it, the zoom changes (another latitude band) or tiles that
were missing have since arrived. The tiles' gray and no-data planes are kept
from one mosaic to the next (:class:`.mapview.GrayTiles`).
"""

from __future__ import annotations

from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.geo import (
    ground_resolution_m,
    latlon_to_world_px,
    zoom_for_resolution,
)
from gps_denied_onboard.visual_nav.mapview import (
    GrayTiles,
    Mosaic,
    TileSource,
    build_mosaic,
    tiles_around,
)
from gps_denied_onboard.visual_nav.settings import EstimatorConfig


class MapWindow:
    """The mosaic the estimator matches against, and when to build another."""

    def __init__(self, cfg: EstimatorConfig, tiles: TileSource) -> None:
        self.cfg = cfg
        self.tiles = tiles
        self._mosaic: Mosaic | None = None
        self._gray_tiles = GrayTiles()
        self.builds = 0

    @property
    def mosaic(self) -> Mosaic | None:
        """The last mosaic built (None before the first)."""
        return self._mosaic

    def around(self, latitude: float, longitude: float, reach_m: float) -> Mosaic:
        """A mosaic holding ``reach_m`` around the point: the kept one while it does
        (and no missing tile has arrived since), else a new one of at least
        ``mosaic_half_size_m`` (1.3 x the reach where that is more).

        Raises:
            FrameRejected: ``no_tiles``, when the source has no tile there at the
                map's zoom, ``finer_zoom_levels`` finer or ``coarser_zoom_levels``
                coarser.
        """
        cfg = self.cfg
        zoom = zoom_for_resolution(latitude, cfg.match.resolution_m)
        px, py = latlon_to_world_px(latitude, longitude, zoom)
        reach_px = reach_m / ground_resolution_m(latitude, zoom)
        m = self._mosaic
        if (
            m is not None
            and m.zoom == zoom
            and m.contains(px - reach_px, py - reach_px, px + reach_px, py + reach_px)
            and (m.missing == 0 or m.generation == self.tiles.generation())
        ):
            return m
        half = max(cfg.mosaic_half_size_m, reach_m * 1.3)
        block = tiles_around(latitude, longitude, zoom, half)
        m = build_mosaic(
            self.tiles,
            zoom,
            block,
            resolution_m=cfg.match.resolution_m,
            coarse_resolution_m=cfg.match.coarse_resolution_m,
            latitude=latitude,
            harmonics=max(cfg.match.orientation_harmonics, cfg.match.refine_harmonics),
            finer_levels=cfg.finer_zoom_levels,
            coarser_levels=cfg.coarser_zoom_levels,
            cache=self._gray_tiles,
        )
        if m is None:
            raise FrameRejected("no_tiles", "no cached tiles under the prior", zoom=zoom)
        self._mosaic = m
        self.builds += 1
        return m
