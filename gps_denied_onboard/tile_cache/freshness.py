"""Freshness: how old imagery may be in each kind of sector.

A sector (``sector_classifications``) has a classification and a lat/lon
box; ``tile_freshness_rules`` gives, per classification, an age after which
its tiles are ``downgraded`` (usable, ranked lower) or ``rejected`` (not to
be matched against). A tile follows every sector whose box contains its
point; with several, the earliest deadline of each action wins. A tile in no
sector, or in a sector without rules, stays ``fresh``. Sectors without a box
cover nothing.

Deadlines are ``captured_at + max_age`` in calendar arithmetic (UTC), as
PostgreSQL computes ``timestamptz + interval`` with ``TimeZone=UTC``; the
status at time *t* is then a comparison, so the read path evaluates it with
the injected clock at no cost.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Final

from gps_denied_onboard.clock import NS_PER_S
from gps_denied_onboard.tile_cache.geo import BBox

FRESH: Final = "fresh"
DOWNGRADED: Final = "downgraded"
REJECTED: Final = "rejected"
UNKNOWN: Final = "unknown"
STALE_WARN: Final = "stale_warn"  # baseline word, read as downgraded
STALE_REJECT: Final = "stale_reject"  # baseline word, read as rejected

#: Best first; the baseline words rank with their store equivalents.
RANK: Final = {FRESH: 0, UNKNOWN: 1, DOWNGRADED: 2, STALE_WARN: 2, REJECTED: 3, STALE_REJECT: 3}

ACTION_DOWNGRADE: Final = "downgrade"
ACTION_REJECT: Final = "reject"

NEVER: Final = 1 << 62


@dataclass(frozen=True)
class FreshnessRule:
    """``classification`` tiles are ``action``-ed once older than the interval."""

    classification: str
    action: str
    months: int
    days: int
    seconds: float


@dataclass(frozen=True)
class Sector:
    sector_id: str
    classification: str
    bbox: BBox | None


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)


def add_interval(start_ns: int, months: int, days: int, seconds: float) -> int:
    """``start + interval`` as PostgreSQL does it in UTC: months (day clamped to
    the month's end), then days, then the time part. Exact in nanoseconds."""
    whole, rem = divmod(start_ns, NS_PER_S)
    dt = _EPOCH + timedelta(seconds=whole)
    total = dt.year * 12 + (dt.month - 1) + months
    year, month0 = divmod(total, 12)
    day = min(dt.day, calendar.monthrange(year, month0 + 1)[1])
    dt = dt.replace(year=year, month=month0 + 1, day=day) + timedelta(days=days)
    return ((dt - _EPOCH) // timedelta(seconds=1)) * NS_PER_S + rem + round(seconds * NS_PER_S)


@dataclass(frozen=True)
class Deadlines:
    downgrade_at_ns: int = NEVER
    reject_at_ns: int = NEVER

    def status_at(self, now_ns: int) -> str:
        if now_ns >= self.reject_at_ns:
            return REJECTED
        if now_ns >= self.downgrade_at_ns:
            return DOWNGRADED
        return FRESH

    def next_change_ns(self, now_ns: int) -> int:
        """When :meth:`status_at` will next change after ``now_ns`` (NEVER if not)."""
        later = [t for t in (self.downgrade_at_ns, self.reject_at_ns) if t > now_ns]
        return min(later) if later else NEVER


NO_DEADLINES: Final = Deadlines()


class FreshnessPolicy:
    """Sectors and rules in memory (both tables are small)."""

    def __init__(self, sectors: Iterable[Sector], rules: Iterable[FreshnessRule]) -> None:
        self.sectors = tuple(s for s in sectors if s.bbox is not None)
        self.rules: dict[str, list[FreshnessRule]] = {}
        for rule in rules:
            self.rules.setdefault(rule.classification, []).append(rule)

    def deadlines(self, captured_at_ns: int, latitude: float, longitude: float) -> Deadlines:
        if not self.sectors:
            return NO_DEADLINES
        downgrade = reject = NEVER
        for sector in self.sectors:
            assert sector.bbox is not None
            if not sector.bbox.contains(latitude, longitude):
                continue
            for rule in self.rules.get(sector.classification, ()):
                at = add_interval(captured_at_ns, rule.months, rule.days, rule.seconds)
                if rule.action == ACTION_REJECT:
                    reject = min(reject, at)
                elif rule.action == ACTION_DOWNGRADE:
                    downgrade = min(downgrade, at)
        return Deadlines(downgrade, reject)

    def status(self, captured_at_ns: int, latitude: float, longitude: float, now_ns: int) -> str:
        return self.deadlines(captured_at_ns, latitude, longitude).status_at(now_ns)


#: The same evaluation in SQL, for refreshing the persisted ``freshness_status``
#: column of every tile at once (parameter: ``now``).
REFRESH_SQL: Final = """
WITH due AS (
    SELECT t.id,
           min(t.captured_at + r.max_age) FILTER (WHERE r.action = 'reject') AS reject_at,
           min(t.captured_at + r.max_age) FILTER (WHERE r.action = 'downgrade') AS downgrade_at
    FROM tiles t
    JOIN sector_classifications s
      ON s.min_latitude IS NOT NULL AND s.max_latitude IS NOT NULL
     AND s.min_longitude IS NOT NULL AND s.max_longitude IS NOT NULL
     AND t.latitude BETWEEN s.min_latitude AND s.max_latitude
     AND (CASE WHEN s.min_longitude <= s.max_longitude
               THEN t.longitude BETWEEN s.min_longitude AND s.max_longitude
               ELSE t.longitude >= s.min_longitude OR t.longitude <= s.max_longitude END)
    JOIN tile_freshness_rules r ON r.classification = s.classification
    GROUP BY t.id
), status AS (
    SELECT t.id,
           CASE WHEN d.reject_at IS NOT NULL AND %(now)s >= d.reject_at THEN 'rejected'
                WHEN d.downgrade_at IS NOT NULL AND %(now)s >= d.downgrade_at THEN 'downgraded'
                ELSE 'fresh' END AS value
    FROM tiles t LEFT JOIN due d ON d.id = t.id
    WHERE t.tile_uuid IS NOT NULL
)
UPDATE tiles SET freshness_status = status.value, updated_at = %(now)s
FROM status
WHERE tiles.id = status.id AND tiles.freshness_status IS DISTINCT FROM status.value
"""
