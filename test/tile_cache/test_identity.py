"""Tile identity: locked vectors computed here from the literal strings, independently
of the implementation, plus input checks."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from gps_denied_onboard.tile_cache.errors import TileValidationError
from gps_denied_onboard.tile_cache.identity import (
    TILE_NAMESPACE_UUID,
    check_sha256,
    check_source,
    check_zxy,
    derive_location_hash,
    derive_tile_id,
    parse_flight_id,
)

NS = uuid.UUID("5b8d0c2e-1a4f-4b3a-8c9d-e7f6a3b2c1d0")
ZERO = "00000000-0000-0000-0000-000000000000"
FLIGHT = "6f1c2a7e-93b4-4d0a-9e51-0c8d2f4b7a13"

# (z, x, y, source, flight, the exact string hashed)
VECTORS = [
    (0, 0, 0, "satellite", None, f"0/0/0/satellite/{ZERO}"),
    (15, 17602, 11243, "satellite", None, f"15/17602/11243/satellite/{ZERO}"),
    (15, 17602, 11243, "googlemaps", None, f"15/17602/11243/googlemaps/{ZERO}"),
    (18, 140821, 89944, "in_flight", FLIGHT, f"18/140821/89944/in_flight/{FLIGHT}"),
    (24, 16777215, 0, "naip", None, f"24/16777215/0/naip/{ZERO}"),
]

# Pinned literally so that a change in the derivation (or the namespace) fails loudly.
LOCKED = {
    f"15/17602/11243/satellite/{ZERO}": "be12c5c9-1779-5e4c-92a7-7e6e7c2d67b3",
}


def uuid5_by_hand(namespace: uuid.UUID, name: str) -> uuid.UUID:
    """RFC 4122 section 4.3 with hashlib only: SHA-1(namespace bytes + name),
    first 16 bytes, version nibble 5, variant bits 10."""
    digest = bytearray(hashlib.sha1(namespace.bytes + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return uuid.UUID(bytes=bytes(digest))


def test_namespace_is_pinned() -> None:
    assert TILE_NAMESPACE_UUID == NS
    assert str(TILE_NAMESPACE_UUID) == "5b8d0c2e-1a4f-4b3a-8c9d-e7f6a3b2c1d0"


@pytest.mark.parametrize(("z", "x", "y", "source", "flight", "text"), VECTORS)
def test_tile_id_is_uuid5_over_the_documented_string(
    z: int, x: int, y: int, source: str, flight: str | None, text: str
) -> None:
    expected = uuid5_by_hand(NS, text)
    assert expected == uuid.uuid5(NS, text)
    assert derive_tile_id(z, x, y, source, flight) == expected
    assert expected.version == 5
    if flight:
        assert derive_tile_id(z, x, y, source, uuid.UUID(flight)) == expected
        assert derive_tile_id(z, x, y, source, flight.upper()) == expected


def test_locked_vector_literal() -> None:
    for text, value in LOCKED.items():
        assert str(uuid5_by_hand(NS, text)) == value
        z, x, y, source, _ = text.split("/")
        assert str(derive_tile_id(int(z), int(x), int(y), source)) == value


@pytest.mark.parametrize(("z", "x", "y"), [(0, 0, 0), (15, 17602, 11243), (24, 1, 2)])
def test_location_hash_is_uuid5_over_zxy(z: int, x: int, y: int) -> None:
    assert derive_location_hash(z, x, y) == uuid5_by_hand(NS, f"{z}/{x}/{y}")


def test_location_hash_ignores_source_and_flight_but_tile_id_does_not() -> None:
    a = derive_tile_id(15, 1, 2, "satellite")
    b = derive_tile_id(15, 1, 2, "naip")
    c = derive_tile_id(15, 1, 2, "satellite", FLIGHT)
    assert len({a, b, c}) == 3
    assert derive_location_hash(15, 1, 2) != derive_location_hash(15, 2, 1)


def test_empty_flight_means_no_flight() -> None:
    assert derive_tile_id(3, 1, 1, "satellite", "") == derive_tile_id(3, 1, 1, "satellite", None)


@pytest.mark.parametrize(
    "flight", ["not-a-uuid", "../../etc", ZERO, "6f1c2a7e93b44d0a9e510c8d2f4b7a1", "g" * 32, 12]
)
def test_malformed_flight_ids_are_rejected(flight: object) -> None:
    with pytest.raises(TileValidationError) as info:
        parse_flight_id(flight)  # type: ignore[arg-type]
    assert info.value.field == "flight_id"


@pytest.mark.parametrize(
    "source", ["", "../x", "a/b", "Satellite", "sat ellite", "x" * 40, "sat\x00", ".hidden", None]
)
def test_bad_sources_are_rejected(source: object) -> None:
    with pytest.raises(TileValidationError):
        check_source(source)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("z", "x", "y"), [(-1, 0, 0), (25, 0, 0), (1, 2, 0), (1, 0, 2), (3, -1, 0), (True, 0, 0)]
)
def test_out_of_range_addresses_are_rejected(z: int, x: int, y: int) -> None:
    with pytest.raises(TileValidationError):
        check_zxy(z, x, y)


def test_sha256_check() -> None:
    assert check_sha256("A" * 64) == "a" * 64
    for bad in ("", "a" * 63, "g" * 64):
        with pytest.raises(TileValidationError):
            check_sha256(bad)


def test_a_flight_recorder_name_becomes_a_stable_flight_uuid_and_a_uuid_stays_itself() -> None:
    from gps_denied_onboard.tile_cache.identity import (
        TILE_NAMESPACE_UUID,
        ZERO_UUID,
        derive_flight_uuid,
        parse_flight_id,
    )

    assert derive_flight_uuid("") is None
    name = "flight-20261205T221800Z"
    got = derive_flight_uuid(name)
    assert got == uuid.uuid5(TILE_NAMESPACE_UUID, f"flight/{name}")
    assert got == derive_flight_uuid(name) and got != derive_flight_uuid("flight-2")
    assert parse_flight_id(str(got)) == got  # the tile cache takes it as a flight id
    canonical = "bdb9b99c-5e68-572e-b19c-b8ffe3d2059a"
    assert derive_flight_uuid(canonical) == uuid.UUID(canonical)
    # the zero UUID means "no flight" in the natural key: a flight named so is derived
    assert derive_flight_uuid(str(ZERO_UUID)) == uuid.uuid5(
        TILE_NAMESPACE_UUID, f"flight/{ZERO_UUID}"
    )
