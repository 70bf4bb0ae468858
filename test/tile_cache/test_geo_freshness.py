"""Pure helpers: web-mercator arithmetic and freshness deadlines."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest

from gps_denied_onboard.clock import datetime_to_ns
from gps_denied_onboard.tile_cache import freshness as fr
from gps_denied_onboard.tile_cache.geo import (
    BBox,
    bbox_tile_ranges,
    latlon_to_tile,
    tile_bbox,
    tile_center,
)


def ns(*args: int) -> int:
    return datetime_to_ns(datetime(*args, tzinfo=timezone.utc))  # type: ignore[misc]


def test_known_tile_of_a_point() -> None:
    # Munich Marienplatz at zoom 15 (checked against OSM's slippy-map formula by hand)
    assert latlon_to_tile(48.137154, 11.576124, 15) == (17437, 11371)
    assert latlon_to_tile(0.0, 0.0, 1) == (1, 1)
    assert latlon_to_tile(89.9, -180.0, 3) == (0, 0)
    assert latlon_to_tile(-89.9, 180.0, 3) == (7, 7)


@pytest.mark.parametrize(("z", "x", "y"), [(0, 0, 0), (15, 17437, 11371), (20, 1, 1048574)])
def test_centre_lies_in_its_own_tile(z: int, x: int, y: int) -> None:
    lat, lon = tile_center(z, x, y)
    assert latlon_to_tile(lat, lon, z) == (x, y)
    box = tile_bbox(z, x, y)
    assert box.contains(lat, lon)
    assert box.min_latitude < box.max_latitude


def test_bbox_ranges_cover_exactly_the_touched_tiles() -> None:
    box = tile_bbox(10, 500, 300)
    inner = BBox(
        box.min_latitude + 1e-6,
        box.min_longitude + 1e-6,
        box.max_latitude - 1e-6,
        box.max_longitude - 1e-6,
    )
    assert bbox_tile_ranges(inner, 10) == ([500], (300, 300))
    xs, ys = bbox_tile_ranges(BBox(-1.0, -1.0, 1.0, 1.0), 2)
    assert xs == [1, 2] and ys == (1, 2)


def test_bbox_across_the_antimeridian_wraps() -> None:
    xs, _ = bbox_tile_ranges(BBox(-1.0, 170.0, 1.0, -170.0), 4)
    assert xs == [15, 0]


def test_bbox_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        BBox(10.0, 0.0, 5.0, 1.0)
    with pytest.raises(ValueError):
        BBox(0.0, 0.0, math.nan, 1.0)


def test_add_interval_follows_postgres_calendar_rules() -> None:
    assert fr.add_interval(ns(2026, 1, 31), 1, 0, 0) == ns(2026, 2, 28)
    assert fr.add_interval(ns(2024, 8, 31), 6, 0, 0) == ns(2025, 2, 28)
    assert fr.add_interval(ns(2025, 11, 15), 12, 0, 0) == ns(2026, 11, 15)
    assert fr.add_interval(ns(2026, 1, 1) + 123, 0, 1, 1.5) == ns(2026, 1, 2) + 1_500_000_123


def test_policy_takes_the_earliest_deadline_of_every_covering_sector() -> None:
    rules = [
        fr.FreshnessRule("active_conflict", "reject", 6, 0, 0.0),
        fr.FreshnessRule("stable_rear", "downgrade", 12, 0, 0.0),
    ]
    sectors = [
        fr.Sector("front", "active_conflict", BBox(40.0, 30.0, 50.0, 40.0)),
        fr.Sector("rear", "stable_rear", BBox(45.0, 35.0, 55.0, 45.0)),
        fr.Sector("nobox", "active_conflict", None),
    ]
    policy = fr.FreshnessPolicy(sectors, rules)
    captured = ns(2026, 1, 1)
    both = policy.deadlines(captured, 47.0, 37.0)
    assert both == fr.Deadlines(ns(2027, 1, 1), ns(2026, 7, 1))
    assert both.status_at(ns(2026, 6, 30)) == fr.FRESH
    assert both.status_at(ns(2026, 7, 1)) == fr.REJECTED
    rear = policy.deadlines(captured, 52.0, 44.0)
    assert rear.status_at(ns(2026, 12, 31)) == fr.FRESH
    assert rear.status_at(ns(2027, 1, 1)) == fr.DOWNGRADED
    assert policy.status(captured, 0.0, 0.0, ns(2040, 1, 1)) == fr.FRESH
    assert both.next_change_ns(ns(2026, 2, 1)) == ns(2026, 7, 1)
    assert both.next_change_ns(ns(2028, 1, 1)) == fr.NEVER
