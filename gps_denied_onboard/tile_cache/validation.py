"""Input checks for every public entry point of the store: pure, no I/O.

Each entry point of :class:`~gps_denied_onboard.tile_cache.store.PostgresFilesystemStore`
passes its arguments through one of these functions first, so whatever a
caller hands in (a hostile string, NaN, a huge integer, a body that is not
JSON) ends as a :class:`~gps_denied_onboard.tile_cache.errors.TileValidationError`
before anything is read or written, never as a bare ``ValueError``,
``TypeError`` or ``OverflowError`` from deeper down.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final
from uuid import UUID

from gps_denied_onboard.tile_cache import freshness as fr
from gps_denied_onboard.tile_cache import pixels
from gps_denied_onboard.tile_cache.errors import TileValidationError
from gps_denied_onboard.tile_cache.geo import BBox, tile_bbox, tile_center
from gps_denied_onboard.tile_cache.identity import (
    check_sha256,
    check_source,
    check_zxy,
    derive_location_hash,
    derive_tile_id,
    parse_flight_id,
    parse_uuid,
)
from gps_denied_onboard.tile_cache.model import (
    TileMetadata,
    TileWrite,
    metadata_dict,
    quality_score,
)

#: Latest capture time the store takes: 9999-12-31T00:00:00Z (datetime's and
#: the sidecar's ISO form end at year 9999).
MAX_CAPTURED_NS: Final = 253_402_214_400 * 1_000_000_000
#: Largest quality metadata object, as compact JSON.
MAX_QUALITY_BYTES: Final = 16 * 1024
#: Largest ``limit`` a query takes.
MAX_LIMIT: Final = 1_000_000
#: Columns :meth:`iter_tiles` filters on, with their checks.
FILTERS: Final = ("zoom", "x", "y", "source", "flight_id", "freshness_status")
#: Longest sector id or classification.
MAX_NAME_CHARS: Final = 128


def us_floor(ns: int) -> int:
    """PostgreSQL keeps microseconds: round-trip-safe nanoseconds."""
    return ns - ns % 1_000


def check_int(value: object, field: str, low: int, high: int) -> int:
    """An ``int`` (not a bool) in ``low..high``.

    Raises:
        TileValidationError: anything else.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TileValidationError(
            f"{field} must be an integer, got {type(value).__name__}", field=field
        )
    if not low <= value <= high:
        raise TileValidationError(f"{field} {value} outside {low}..{high}", field=field)
    return int(value)


def check_float(value: object, field: str) -> float:
    """A finite real number (int or float, not a bool).

    Raises:
        TileValidationError: anything else, NaN and infinities included.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TileValidationError(
            f"{field} must be a number, got {type(value).__name__}", field=field
        )
    try:
        number = float(value)
    except OverflowError as err:
        raise TileValidationError(f"{field} is out of range", field=field) from err
    if not math.isfinite(number):
        raise TileValidationError(f"{field} must be finite, got {number}", field=field)
    return number


def check_flag(value: object, field: str) -> bool:
    """A bool.

    Raises:
        TileValidationError: anything else.
    """
    if not isinstance(value, bool):
        raise TileValidationError(
            f"{field} must be a bool, got {type(value).__name__}", field=field
        )
    return value


def check_name(value: object, field: str) -> str:
    """A non-empty printable string of at most :data:`MAX_NAME_CHARS` characters.

    Raises:
        TileValidationError: anything else (control characters included).
    """
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_NAME_CHARS
        or not value.isprintable()
    ):
        raise TileValidationError(
            f"{field} must be 1..{MAX_NAME_CHARS} printable characters, got {value!r:.80}",
            field=field,
        )
    return value


def tile_uuid(value: object, field: str = "tile_id") -> UUID:
    """A tile id or location hash: a UUID, or its canonical text form.

    Raises:
        TileValidationError: anything else.
    """
    return parse_uuid(value, field)


def tile_uuids(values: object, field: str = "tile_ids") -> list[UUID]:
    """A sequence of tile ids, deduplicated in order.

    Raises:
        TileValidationError: not a sequence (a lone string is refused), or
            any element not a UUID.
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TileValidationError(f"{field} must be a sequence of tile ids", field=field)
    return list(dict.fromkeys(tile_uuid(v) for v in values))


def check_captured_ns(value: object) -> int:
    """A capture time in epoch ns, 0 .. :data:`MAX_CAPTURED_NS`, floored to µs.

    Raises:
        TileValidationError: not an int, negative, or after year 9999.
    """
    return us_floor(check_int(value, "captured_at_ns", 0, MAX_CAPTURED_NS))


def _plain_json(value: object, depth: int = 0) -> bool:
    """JSON as PostgreSQL's jsonb keeps it: objects with string keys, lists,
    strings, finite numbers, booleans, null; nothing that ``json.dumps``
    would quietly change (tuples, int keys) or refuse."""
    if depth > 32:
        return False
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, str):
        return _plain_text(value)
    if isinstance(value, int):
        return abs(value) < 10**100
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_plain_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(
            isinstance(k, str) and _plain_text(k) and _plain_json(v, depth + 1)
            for k, v in value.items()
        )
    return False


def _plain_text(text: str) -> bool:
    """No NUL (jsonb refuses it) and no lone surrogate (not UTF-8)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_quality(value: object) -> dict[str, Any]:
    """Quality metadata: a JSON object of at most :data:`MAX_QUALITY_BYTES`,
    with string keys and no NaN or infinity (PostgreSQL's jsonb has neither).

    Returns:
        A plain dict holding exactly what will be stored.

    Raises:
        TileValidationError: ``field="quality"``.
    """
    if not isinstance(value, Mapping):
        raise TileValidationError(
            f"quality must be a JSON object, got {type(value).__name__}", field="quality"
        )
    plain = dict(value)
    if not _plain_json(plain):
        raise TileValidationError(
            "quality must be plain JSON (string keys, finite numbers, no bytes or sets)",
            field="quality",
        )
    text = json.dumps(plain, allow_nan=False, separators=(",", ":"))
    if len(text) > MAX_QUALITY_BYTES:
        raise TileValidationError(
            f"quality is {len(text)} bytes of JSON, limit {MAX_QUALITY_BYTES}", field="quality"
        )
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def check_bbox(value: object) -> BBox:
    """A :class:`BBox` (whose constructor already refuses NaN and out-of-range
    corners).

    Raises:
        TileValidationError: not a BBox.
    """
    if not isinstance(value, BBox):
        raise TileValidationError(f"bbox must be a BBox, got {type(value).__name__}", field="bbox")
    return value


def check_limit(value: object, default: int) -> int:
    """A result limit: None or 0 mean ``default``.

    Raises:
        TileValidationError: not an int, negative or absurdly large.
    """
    if value is None:
        return default
    limit = check_int(value, "limit", 0, MAX_LIMIT)
    return limit or default


def check_filters(where: object) -> list[tuple[str, Any]]:
    """The equality filters of :meth:`iter_tiles`, each value checked as the
    column's writer checks it.

    Raises:
        TileValidationError: an unknown column or a bad value.
    """
    if where is None:
        return []
    if not isinstance(where, Mapping):
        raise TileValidationError("filters must be a mapping", field="where")
    checked: list[tuple[str, Any]] = []
    for name, value in where.items():
        if name not in FILTERS:
            raise TileValidationError(f"cannot filter on {name!r:.80}", field=str(name)[:32])
        if name in ("zoom", "x", "y"):
            checked.append((name, check_int(value, name, 0, (1 << 24) - 1)))
        elif name == "source":
            checked.append((name, check_source(value)))
        elif name == "flight_id":
            checked.append((name, parse_flight_id(value)))
        else:
            if value not in fr.RANK:
                raise TileValidationError(
                    f"unknown freshness status {value!r:.80}", field="freshness_status"
                )
            checked.append((name, value))
    return checked


def check_address(zoom: object, x: object, y: object, source: object, flight_id: object) -> None:
    """A natural key: z/x/y in range, a source slug, a canonical flight id.

    Raises:
        TileValidationError: any bad part.
    """
    check_zxy(zoom, x, y)  # type: ignore[arg-type]
    check_source(source)  # type: ignore[arg-type]
    parse_flight_id(flight_id)  # type: ignore[arg-type]


def check_writes(writes: object) -> list[TileWrite]:
    """The argument of ``put_tiles``: a sequence (not a string) of writes;
    each element is checked by :func:`prepare_write`.

    Raises:
        TileValidationError: not a sequence.
    """
    if isinstance(writes, (str, bytes)) or not isinstance(writes, Sequence):
        raise TileValidationError("writes must be a sequence of TileWrite", field="writes")
    return list(writes)


@dataclass(frozen=True)
class Prepared:
    """A validated write: everything the transaction needs, computed without I/O.

    ``meta`` is the tile as it will be stored (freshness and votes are filled
    in at commit time)."""

    meta: TileMetadata
    data: bytes
    sidecar: bytes
    rel_jpeg: str


def _point(write: TileWrite) -> tuple[float, float]:
    if write.latitude is None and write.longitude is None:
        return tile_center(write.zoom, write.x, write.y)
    if write.latitude is None or write.longitude is None:
        raise TileValidationError("give both latitude and longitude or neither", field="latlon")
    lat = check_float(write.latitude, "latitude")
    lon = check_float(write.longitude, "longitude")
    box = tile_bbox(write.zoom, write.x, write.y)
    eps = 1e-9
    inside = (
        box.min_latitude - eps <= lat <= box.max_latitude + eps
        and box.min_longitude - eps <= lon <= box.max_longitude + eps
    )
    if not inside:
        raise TileValidationError(
            f"point ({lat}, {lon}) is outside tile {write.zoom}/{write.x}/{write.y}",
            field="latlon",
        )
    return lat, lon


def prepare_write(write: object, max_tile_bytes: int, now_ns: int) -> Prepared:
    """Validate one write and check its hash; pure, no I/O.

    Args:
        write: should be a :class:`TileWrite`.
        max_tile_bytes: the configured JPEG size limit.
        now_ns: the capture time when the write gives none.

    Raises:
        TileValidationError: any bad field, or sha256 mismatch.
    """
    if not isinstance(write, TileWrite):
        raise TileValidationError(
            f"expected a TileWrite, got {type(write).__name__}", field="write"
        )
    check_zxy(write.zoom, write.x, write.y)
    source = check_source(write.source)
    flight = parse_flight_id(write.flight_id)
    declared = check_sha256(write.content_sha256)
    pixels.check_jpeg(write.data, max_tile_bytes)
    data = bytes(write.data)
    actual = hashlib.sha256(data).hexdigest()
    if actual != declared:
        raise TileValidationError(
            f"content_sha256 mismatch: declared {declared}, data hashes to {actual}",
            field="content_sha256",
        )
    lat, lon = _point(write)
    captured = check_captured_ns(now_ns if write.captured_at_ns is None else write.captured_at_ns)
    quality = check_quality(write.quality)
    tile_id = derive_tile_id(write.zoom, write.x, write.y, source, flight)
    meta = TileMetadata(
        tile_id=tile_id,
        zoom=write.zoom,
        x=write.x,
        y=write.y,
        source=source,
        flight_id=flight,
        latitude=lat,
        longitude=lon,
        captured_at_ns=captured,
        freshness_status=fr.FRESH,
        content_sha256=declared,
        disk_bytes=0,
        location_hash=derive_location_hash(write.zoom, write.x, write.y),
        quality=MappingProxyType(quality),
        quality_score=quality_score(quality.get("score")),
    )
    sidecar = sidecar_bytes(meta)
    return Prepared(
        meta=replace(meta, disk_bytes=len(data) + len(sidecar)),
        data=data,
        sidecar=sidecar,
        rel_jpeg=pixels.relative_jpeg_path(write.zoom, write.x, tile_id),
    )


def describe_write(write: object) -> dict[str, Any]:
    """The fields of a (possibly hostile) write that a ``c6.write_failed``
    record can carry: JSON-safe whatever the caller handed in."""

    def small_int(value: object) -> int | str:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 1 << 62:
            return value
        return repr(value)[:32]

    fields: dict[str, Any] = {
        "zoom": small_int(getattr(write, "zoom", None)),
        "x": small_int(getattr(write, "x", None)),
        "y": small_int(getattr(write, "y", None)),
    }
    source = getattr(write, "source", None)
    fields["source"] = (source if isinstance(source, str) else repr(source))[:64]
    flight = getattr(write, "flight_id", None)
    if flight:
        fields["flight_id"] = (flight if isinstance(flight, str) else str(flight))[:64]
    return fields


#: What a sidecar holds: identity, place, time, hash, quality (not the
#: fields that change while the tile is stored: freshness, votes, uploads).
SIDECAR_FIELDS: Final = (
    "tile_id",
    "location_hash",
    "zoom",
    "x",
    "y",
    "source",
    "flight_id",
    "latitude",
    "longitude",
    "captured_at",
    "content_sha256",
    "tile_quality_metadata",
)


def sidecar_bytes(meta: TileMetadata) -> bytes:
    """A tile's JSON sidecar: what offline tools need without the database."""
    full = metadata_dict(meta)
    return pixels.render_sidecar({k: full[k] for k in SIDECAR_FIELDS})
