"""Tile identity: the pinned UUIDv5 namespace and the two derived ids.

``TILE_NAMESPACE_UUID`` is shared with the ground-side tile provider, so both
sides name a tile the same way without talking to each other. It is a code
constant, never configuration: changing it renames every tile.

* ``derive_tile_id(z, x, y, source, flight_id)`` names one stored tile:
  UUIDv5 over ``"{z}/{x}/{y}/{source}/{flight_id or zero-UUID}"``.
* ``derive_location_hash(z, x, y)`` names the ground cell whatever its
  source or flight: UUIDv5 over ``"{z}/{x}/{y}"``. Votes are kept per cell.
"""

from __future__ import annotations

import re
import uuid
from typing import Final
from uuid import UUID

from gps_denied_onboard.tile_cache.errors import TileValidationError

TILE_NAMESPACE_UUID: Final = UUID("5b8d0c2e-1a4f-4b3a-8c9d-e7f6a3b2c1d0")
ZERO_UUID: Final = UUID(int=0)

#: Deepest zoom the cache accepts; x and y then fit a PostgreSQL integer.
MAX_ZOOM: Final = 24

#: A source names where a tile came from (``satellite``, ``naip``, ``in_flight``).
#: It ends up in the natural key and in logs, never in a file path. Always
#: applied with ``fullmatch`` (a ``$`` under ``match`` would let "naip\\n" in).
SOURCE_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9_\-]{0,31}")
IN_FLIGHT_SOURCE: Final = "in_flight"

_HEX64 = re.compile(r"[0-9a-f]{64}")
#: The canonical text form of a UUID, 8-4-4-4-12 hex digits (either case).
UUID_PATTERN: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def check_zxy(zoom: int, x: int, y: int) -> None:
    """Refuse a tile address outside the web-mercator grid.

    Raises:
        TileValidationError: zoom outside 0..MAX_ZOOM, or x/y outside 0..2**zoom-1.
    """
    for name, value in (("zoom", zoom), ("x", x), ("y", y)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TileValidationError(f"{name} must be an integer, got {value!r}", field=name)
    if not 0 <= zoom <= MAX_ZOOM:
        raise TileValidationError(f"zoom {zoom} outside 0..{MAX_ZOOM}", field="zoom")
    n = 1 << zoom
    if not 0 <= x < n:
        raise TileValidationError(f"x {x} outside 0..{n - 1} at zoom {zoom}", field="x")
    if not 0 <= y < n:
        raise TileValidationError(f"y {y} outside 0..{n - 1} at zoom {zoom}", field="y")


def check_source(source: str) -> str:
    """Return ``source`` if it is a valid source slug.

    Raises:
        TileValidationError: empty, too long, upper case, or any character
            outside ``[a-z0-9_-]`` (so no ``/``, ``..``, NUL or trailing newline
            can get through).
    """
    if not isinstance(source, str) or not SOURCE_PATTERN.fullmatch(source):
        raise TileValidationError(
            f"source must match {SOURCE_PATTERN.pattern}, got {source!r}", field="source"
        )
    return source


def parse_uuid(value: object, field: str) -> UUID:
    """A UUID given as :class:`~uuid.UUID` or in its canonical text form.

    ``uuid.UUID()`` also takes 32 bare hex digits, braces, a ``urn:uuid:``
    prefix and dashes anywhere: none of those is accepted here, so one id has
    one spelling.

    Raises:
        TileValidationError: anything else (``field`` names the input).
    """
    if isinstance(value, UUID):
        return value
    if isinstance(value, str) and UUID_PATTERN.fullmatch(value):
        return UUID(value)
    raise TileValidationError(
        f"{field} is not a UUID in 8-4-4-4-12 form: {value!r:.80}", field=field
    )


def parse_flight_id(flight_id: UUID | str | None) -> UUID | None:
    """Normalise a flight id: None or "" means no flight; anything else must be
    a UUID in canonical 8-4-4-4-12 form.

    Raises:
        TileValidationError: any other string or type, or the zero UUID
            (reserved for "no flight" inside the natural key).
    """
    if flight_id is None or (isinstance(flight_id, str) and flight_id == ""):
        return None
    value = parse_uuid(flight_id, "flight_id")
    if value == ZERO_UUID:
        raise TileValidationError("flight_id may not be the zero UUID", field="flight_id")
    return value


def derive_flight_uuid(flight_id: str) -> UUID | None:
    """The tiles' flight UUID for the flight recorder's flight id: None for "" (no
    flight open); a canonical UUID as it is (but the zero UUID, "no flight" in the
    natural key); any other name (``flight-<UTC time>``,
    take-off's default) as ``uuid5(TILE_NAMESPACE_UUID, "flight/<name>")``.

    Why: in-flight snapshots are pending upload only with a flight (``flight_id``
    is a UUID column), and the recorder names flights freely. The derivation is
    ours, not the ground provider's; a ``"flight/..."`` name cannot be a tile's
    ``"{z}/{x}/{y}/{source}/{flight}"``.
    """
    if flight_id == "":
        return None
    if UUID_PATTERN.fullmatch(flight_id) and UUID(flight_id) != ZERO_UUID:
        return UUID(flight_id)
    return uuid.uuid5(TILE_NAMESPACE_UUID, f"flight/{flight_id}")


def check_sha256(value: str) -> str:
    """Return the lower-cased hex digest.

    Raises:
        TileValidationError: not 64 hex characters.
    """
    text = value.lower() if isinstance(value, str) else ""
    if not _HEX64.fullmatch(text):
        raise TileValidationError(
            f"content_sha256 must be 64 hex characters, got {value!r}", field="content_sha256"
        )
    return text


def derive_tile_id(
    zoom: int, x: int, y: int, source: str, flight_id: UUID | str | None = None
) -> UUID:
    """The UUIDv5 of one stored tile.

    Raises:
        TileValidationError: bad z/x/y, source or flight id.
    """
    check_zxy(zoom, x, y)
    check_source(source)
    flight = parse_flight_id(flight_id) or ZERO_UUID
    return uuid.uuid5(TILE_NAMESPACE_UUID, f"{zoom}/{x}/{y}/{source}/{flight}")


def derive_location_hash(zoom: int, x: int, y: int) -> UUID:
    """The UUIDv5 of a ground cell, the same for every source and flight.

    Raises:
        TileValidationError: bad z/x/y.
    """
    check_zxy(zoom, x, y)
    return uuid.uuid5(TILE_NAMESPACE_UUID, f"{zoom}/{x}/{y}")
