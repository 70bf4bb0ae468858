"""Errors of the tile cache at run time.

::

    GpsDeniedError
    └── TileCacheError              anything the store refuses or fails to do
        ├── TileValidationError     bad input: not a JPEG, hash mismatch, z/x/y out of
        │                           range, oversize, malformed source or flight id
        ├── TileNotFound            no such tile (also a KeyError)
        ├── TileMetadataError       the database side failed or refused (duplicate
        │                           natural key, pool timeout, lost connection, a lock
        │                           or statement timeout: SQLSTATE 55P03 / 57014)
        ├── TilePixelError          the filesystem side failed (write, fsync, rename,
        │                           mmap of a missing or damaged file)
        └── TileOwnershipError      the store may not change this tile root
            ├── TileRootLockedError     another read-write store owns the tile root
            └── TileStoreReadOnlyError  a write asked of a read-only store

Migrations are a start-up step, not part of the store's run time: their
:class:`~gps_denied_onboard.tile_cache.migrations.MigrationError` sits directly
under :class:`~gps_denied_onboard.errors.GpsDeniedError`.
"""

from __future__ import annotations

from typing import Final

from gps_denied_onboard.errors import GpsDeniedError

#: SQLSTATE of a statement that waited its ``lock_timeout`` for a lock.
LOCK_NOT_AVAILABLE: Final = "55P03"
#: SQLSTATE of a statement cancelled, e.g. past its ``statement_timeout``.
QUERY_CANCELED: Final = "57014"


class TileCacheError(GpsDeniedError):
    """Base of every run-time tile cache error.

    Attributes:
        tile_id: the tile concerned, when one is known (canonical UUID string).
    """

    def __init__(self, message: str, *, tile_id: str | None = None) -> None:
        super().__init__(message)
        self.tile_id = tile_id


class TileValidationError(TileCacheError, ValueError):
    """The caller's input was refused before any I/O.

    Attributes:
        field: which input was wrong (``zoom``, ``content_sha256``, ``data``...).
    """

    def __init__(self, message: str, *, field: str, tile_id: str | None = None) -> None:
        super().__init__(message, tile_id=tile_id)
        self.field = field


class TileNotFound(TileCacheError, KeyError):
    """No tile with that identity is stored."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "tile not found"


class TileMetadataError(TileCacheError):
    """The metadata database refused or failed an operation.

    Attributes:
        sqlstate: PostgreSQL SQLSTATE when the database reported one:
            :data:`LOCK_NOT_AVAILABLE` when a statement waited ``lock_timeout_s``
            for a lock another session held, :data:`QUERY_CANCELED` when it ran
            past ``statement_timeout_s`` (lock wait included).
    """

    def __init__(
        self, message: str, *, tile_id: str | None = None, sqlstate: str | None = None
    ) -> None:
        super().__init__(message, tile_id=tile_id)
        self.sqlstate = sqlstate


class TilePixelError(TileCacheError):
    """The tile files could not be written or read.

    Attributes:
        path: the file concerned, when one is known.
    """

    def __init__(self, message: str, *, tile_id: str | None = None, path: str | None = None):
        super().__init__(message, tile_id=tile_id)
        self.path = path


class TileOwnershipError(TileCacheError):
    """The store may not change this tile root.

    Attributes:
        tile_root: the tile root concerned.
    """

    def __init__(self, message: str, *, tile_root: str) -> None:
        super().__init__(message)
        self.tile_root = tile_root


class TileRootLockedError(TileOwnershipError):
    """Another read-write store (this process or another) owns the tile root.

    Attributes:
        holder_pid: the owner's pid as it wrote it in the lock file, if known.
    """

    def __init__(self, message: str, *, tile_root: str, holder_pid: int | None = None) -> None:
        super().__init__(message, tile_root=tile_root)
        self.holder_pid = holder_pid


class TileStoreReadOnlyError(TileOwnershipError):
    """A write (put, evict, vote, upload mark, sector, freshness refresh) was
    asked of a store opened read-only."""
