"""The store's in-process read index: recently used tiles by id, by natural
key and by ground cell, with their freshness kept current against the
injected clock (deadlines computed once per entry and policy generation).

Not thread-safe by itself: the store calls it under its own lock, which also
guards its counters and access buffer.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Any
from uuid import UUID

from gps_denied_onboard.tile_cache import freshness as fr
from gps_denied_onboard.tile_cache.model import TileMetadata


class IndexEntry:
    """One tile in the read index."""

    __slots__ = (
        "deadlines",
        "evaluated_ns",
        "generation",
        "keys",
        "meta",
        "path",
        "valid_until_ns",
    )

    def __init__(self, meta: TileMetadata, path: str) -> None:
        self.meta = meta
        self.path = path
        self.keys: list[tuple[Any, ...]] = []
        self.deadlines = fr.Deadlines()
        self.generation = -1
        # meta.freshness_status holds for evaluated_ns <= now < valid_until_ns
        self.evaluated_ns = 0
        self.valid_until_ns = -1


class ReadIndex:
    """Up to ``capacity`` entries, least recently used first out.

    Attributes:
        policy: the freshness policy entries are evaluated with.
        generation: bumped with each new policy; older entries re-derive their
            deadlines on next use.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.by_id: OrderedDict[UUID, IndexEntry] = OrderedDict()
        self.by_key: dict[tuple[Any, ...], IndexEntry] = {}
        self.by_location: dict[UUID, set[UUID]] = {}
        self.policy = fr.FreshnessPolicy((), ())
        self.generation = 0

    def __len__(self) -> int:
        return len(self.by_id)

    def set_policy(self, policy: fr.FreshnessPolicy) -> None:
        self.policy = policy
        self.generation += 1

    def put(
        self, meta: TileMetadata, deadlines: fr.Deadlines, path: str, now_ns: int
    ) -> IndexEntry:
        """Insert or replace an entry; evict the least recently used over capacity."""
        old = self.by_id.get(meta.tile_id)
        if old is not None:
            self.drop(old)
        entry = IndexEntry(meta, path)
        entry.deadlines = deadlines
        entry.generation = self.generation
        entry.evaluated_ns = now_ns
        entry.valid_until_ns = deadlines.next_change_ns(now_ns)
        self.by_id[meta.tile_id] = entry
        self.by_location.setdefault(meta.location_hash, set()).add(meta.tile_id)
        while len(self.by_id) > self.capacity:
            _, oldest = next(iter(self.by_id.items()))
            self.drop(oldest)
        return entry

    def drop(self, entry: IndexEntry) -> None:
        tile_id = entry.meta.tile_id
        if self.by_id.get(tile_id) is entry:
            del self.by_id[tile_id]
        for key in entry.keys:
            if self.by_key.get(key) is entry:
                del self.by_key[key]
        ids = self.by_location.get(entry.meta.location_hash)
        if ids is not None:
            ids.discard(tile_id)
            if not ids:
                del self.by_location[entry.meta.location_hash]

    def drop_id(self, tile_id: UUID) -> None:
        entry = self.by_id.get(tile_id)
        if entry is not None:
            self.drop(entry)

    def alias(self, key: tuple[Any, ...], entry: IndexEntry) -> None:
        """Make ``key`` (a checked natural key) find ``entry``, if still indexed."""
        if self.by_id.get(entry.meta.tile_id) is entry:
            entry.keys.append(key)
            self.by_key[key] = entry

    def touch(self, entry: IndexEntry) -> None:
        """Mark ``entry`` most recently used."""
        tile_id = entry.meta.tile_id
        if self.by_id.get(tile_id) is entry:
            self.by_id.move_to_end(tile_id)

    def update(self, tile_id: UUID, **changes: Any) -> None:
        entry = self.by_id.get(tile_id)
        if entry is not None:
            entry.meta = replace(entry.meta, **changes)

    def current(self, entry: IndexEntry, now_ns: int) -> TileMetadata:
        """The entry's metadata with freshness at ``now_ns``."""
        if entry.evaluated_ns <= now_ns < entry.valid_until_ns and (
            entry.generation == self.generation
        ):
            return entry.meta
        if entry.generation != self.generation:
            m = entry.meta
            entry.deadlines = self.policy.deadlines(m.captured_at_ns, m.latitude, m.longitude)
            entry.generation = self.generation
        status = entry.deadlines.status_at(now_ns)
        if status != entry.meta.freshness_status:
            entry.meta = replace(entry.meta, freshness_status=status)
        entry.evaluated_ns = now_ns
        entry.valid_until_ns = entry.deadlines.next_change_ns(now_ns)
        return entry.meta
