"""The two faces of a tile store. :class:`~.store.PostgresFilesystemStore`
implements both; tests and simulators may implement either."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable
from uuid import UUID

from gps_denied_onboard.tile_cache.geo import BBox
from gps_denied_onboard.tile_cache.model import (
    CacheStats,
    EvictionResult,
    TileMetadata,
    TileRead,
    TileWrite,
    VoteTally,
)
from gps_denied_onboard.tile_cache.pixels import MmapTilePixelHandle


@runtime_checkable
class TileMetadataStore(Protocol):
    """Metadata: identity, spatial query, freshness, LRU, votes, uploads."""

    def get_metadata(self, tile_id: UUID) -> TileMetadata: ...

    def query_bbox(
        self, bbox: BBox, zoom: int, limit: int | None = None, *, include_rejected: bool = False
    ) -> list[TileMetadata]: ...

    def record_vote(self, location_hash: UUID, agree: bool) -> VoteTally: ...

    def list_pending_uploads(self, limit: int | None = None) -> list[TileMetadata]: ...

    def mark_uploaded(self, tile_ids: Sequence[UUID | str]) -> int: ...

    def evict_to_budget(self) -> EvictionResult: ...

    def stats(self) -> CacheStats: ...


@runtime_checkable
class TilePixelStore(Protocol):
    """Pixels: durable JPEG writes and cheap reads."""

    def put_tile(self, write: TileWrite) -> TileMetadata: ...

    def get_tile(
        self, zoom: int, x: int, y: int, source: str, flight_id: UUID | str | None = None
    ) -> TileRead: ...

    def read_tile(self, tile_id: UUID) -> TileRead: ...

    def open_pixels(self, tile_id: UUID) -> MmapTilePixelHandle: ...
