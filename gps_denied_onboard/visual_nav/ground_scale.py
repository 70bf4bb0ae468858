"""The ground scale a frame is matched at, chosen by how much ground it sees.

Every ground distance of the gate and the error model was calibrated on frames
400 m to 1 km across, matched at 5 m/px (``ground_scale`` 1:
:meth:`.settings.EstimatorConfig.at_ground_scale` carries them to another
scale). A vehicle lower down sees less ground: at 120 m above ground a 90 deg
lens sees 240 m, 48 pixels at 5 m/px, which no gate calibrated there accepts.
Matched at a quarter of the scale (1.25 m/px, the map two zooms finer) the same
frame is 192 pixels across, as a 960 m frame was at 5 m/px, and fixes as one
(``bench/visual_fix_accuracy.py``, ``low_altitude`` set by hand, ``auto_scale``
by this ladder). A vehicle higher up sees more: at 1000 m a 2 km frame is 400
pixels at 5 m/px and its search window grows with it, so a cold frame costs
3-4 times a 1 km frame's; matched at twice the scale (10 m/px) it is the 1 km
frame the gate was calibrated on again, about as accurate there
(``high_altitude``).

So the estimator keeps a ladder of scales, the configured one halved up to
``scale_finer_levels`` times and doubled up to ``scale_coarser_levels`` times,
and matches each frame at the coarsest rung where it is at least
``scale_side_m`` across in the calibration's metres (:func:`wanted_level`),
with a margin each way so that a vehicle holding its height near a rung's edge
does not switch back and forth. At 700 m a rung spans frames 700-1400 m across in
those metres (595-1610 with the margin): they fix as the 1 km frames do (98-100 %
on the reported pairs), not as 400 m ones alone (40-89 %), and a cold one at the
widest took 130 ms on one CPU (1.2 km: 80 ms; calibration pairs, scratch run).

A rung other than the configured one is only taken where the tiles hold its map
under the aircraft (:func:`has_detail`): a z15 tile enlarged to a z17 map holds
nothing a z15 map did not, and matched there a frame would lose what stitching
gives it at its own scale; a z14 map is built from the tiles that compose the z15
one, unless those are z18 alone.
"""

from __future__ import annotations

from typing import Protocol

from gps_denied_onboard.visual_nav.geo import tile_under, zoom_for_resolution
from gps_denied_onboard.visual_nav.mapview import TileSource, holds_pixels
from gps_denied_onboard.visual_nav.settings import EstimatorConfig
from gps_denied_onboard.visual_nav.uncertainty import CALIBRATED_RESOLUTION_M


class Position(Protocol):
    """Where the aircraft is (a fix, a prior)."""

    @property
    def latitude(self) -> float: ...
    @property
    def longitude(self) -> float: ...


#: how far past ``scale_side_m`` (a share of it) a frame goes before the ladder moves:
#: finer under (1 - this), coarser where the coarser rung would be over (1 + this)
SLACK = 0.15


def wanted_level(
    width_m: float,
    level: int,
    resolution_m: float,
    side_m: float,
    levels: int,
    *,
    coarser_levels: int = 0,
) -> int:
    """The ladder's rung for a frame ``width_m`` across, the estimator being at rung
    ``level`` (0: the configured scale, k: it halved k times, -k: doubled k times)
    whose matching resolution is ``resolution_m``: finer while the frame is under
    ``side_m`` (less :data:`SLACK`) across in the calibration's metres, coarser while
    the coarser rung would still see over ``side_m`` (plus :data:`SLACK`), within
    -``coarser_levels``..``levels``."""
    base_resolution = resolution_m * 2.0**level  # rung 0's
    lowest = -max(coarser_levels, 0)
    highest = max(levels, 0)

    def across(k: int) -> float:  # the frame's width in the calibration's metres at rung k
        return width_m * CALIBRATED_RESOLUTION_M / (base_resolution / 2.0**k)

    k = min(max(level, lowest), highest)
    while k < highest and across(k) < side_m * (1.0 - SLACK):
        k += 1
    while k > lowest and across(k - 1) >= side_m * (1.0 + SLACK):
        k -= 1
    return k


def has_detail(
    tiles: TileSource,
    cfg: EstimatorConfig,
    latitude: float,
    longitude: float,
    *,
    enlarged: bool = False,
) -> bool:
    """Whether ``tiles`` hold the map's own zoom at ``cfg``'s resolution under the
    point: its tile whole, or one up to ``finer_zoom_levels`` finer kept with at least
    that zoom's pixels (a z18 tile reduced to its 128 px of a z17 map). A tile kept
    reduced for a coarser map, or only a coarser one, holds no detail the coarser
    rung lacks. ``enlarged``: one up to ``coarser_zoom_levels`` coarser counts too
    (a coarser rung's map: it holds what the finer rung's would, enlarged less)."""
    zoom = zoom_for_resolution(latitude, cfg.match.resolution_m)
    for levels in range(cfg.finer_zoom_levels + 1):
        z = zoom + levels
        if holds_pixels(tiles, z, *tile_under(latitude, longitude, z), levels):
            return True
    zooms = range(zoom - 1, max(zoom - cfg.coarser_zoom_levels, 0) - 1, -1) if enlarged else ()
    return any(tiles.tile(z, *tile_under(latitude, longitude, z)) is not None for z in zooms)


class GroundScaleLadder:
    """The estimator's settings at each rung, and the rung it is on."""

    def __init__(self, base: EstimatorConfig) -> None:
        self.finest = max(base.scale_finer_levels, 0)
        self.coarsest = -max(base.scale_coarser_levels, 0)
        self._rungs = {
            k: base.at_ground_scale(2.0**-k) for k in range(self.coarsest, self.finest + 1)
        }
        self.level = 0
        self.wanted = 0  # the rung the last frame's width asked for, whatever the tiles

    @property
    def cfg(self) -> EstimatorConfig:
        return self._rungs[self.level]

    @property
    def factor(self) -> float:
        """The current rung's scale relative to the configured one (2, 1, 0.5, 0.25, ...)."""
        return 2.0**-self.level

    @property
    def wanted_factor(self) -> float:
        """The scale the last frame's width asked for, relative to the configured one."""
        return 2.0**-self.wanted

    def choose(self, width_m: float, tiles: TileSource, where: Position | None) -> bool:
        """Move to the rung a frame ``width_m`` across wants, or the nearest rung toward
        the configured one whose map ``tiles`` hold under ``where`` (:func:`has_detail`:
        a vehicle flying off the fine tiles goes back up; no position, rung 0); whether
        the rung changed."""
        base = self._rungs[0]
        self.wanted = wanted_level(
            width_m,
            self.level,
            self.cfg.match.resolution_m,
            base.scale_side_m,
            self.finest,
            coarser_levels=-self.coarsest,
        )
        k = self.wanted
        while k != 0 and not (  # rung 0 takes whatever there is
            where is not None
            and has_detail(tiles, self._rungs[k], where.latitude, where.longitude, enlarged=k < 0)
        ):
            k += 1 if k < 0 else -1
        if k == self.level:
            return False
        self.level = k
        return True
