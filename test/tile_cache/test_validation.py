"""Every public entry point of the store refuses hostile input with a typed
error (issue #12, "validation holes"): property-based over strings, numbers
and bodies, against a real store on a real database and filesystem."""

from __future__ import annotations

import math
import string
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gps_denied_onboard.records import MemorySink
from gps_denied_onboard.tile_cache.config import TileCacheConfig
from gps_denied_onboard.tile_cache.errors import TileCacheError, TileValidationError
from gps_denied_onboard.tile_cache.geo import BBox
from gps_denied_onboard.tile_cache.identity import check_source, parse_flight_id
from gps_denied_onboard.tile_cache.model import TileWrite
from gps_denied_onboard.tile_cache.store import PostgresFilesystemStore
from gps_denied_onboard.tile_cache.validation import MAX_CAPTURED_NS, check_quality

from .conftest import make_jpeg, sha

Z, X, Y = 15, 17437, 11371
FLIGHT = "6f1c2a7e-93b4-4d0a-9e51-0c8d2f4b7a13"
STORE_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def count_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM tiles").fetchone()
    return int(row[0]) if row else 0


def write(**kw: Any) -> TileWrite:
    data = kw.pop("data", None) or make_jpeg(kw.pop("seed", 0))
    fields: dict[str, Any] = {
        "zoom": Z,
        "x": X,
        "y": Y,
        "source": "satellite",
        "data": data,
        "content_sha256": sha(data),
    }
    fields.update(kw)
    return TileWrite(**fields)


def refused(store: PostgresFilesystemStore, sink: MemorySink, w: TileWrite, field: str) -> None:
    """``w`` is refused with a TileValidationError on ``field`` and one
    ``c6.write_failed`` record says so."""
    before = len(sink.of_kind("c6.write_failed"))
    with pytest.raises(TileValidationError) as info:
        store.put_tile(w)
    assert info.value.field == field, info.value
    failed = sink.of_kind("c6.write_failed")
    assert len(failed) == before + 1
    assert failed[-1].payload["reason"] == "validation"


# ---------------------------------------------------------------- the named holes
def test_source_with_a_trailing_newline_is_not_another_tile(
    store: PostgresFilesystemStore, sink: MemorySink, tile_config: TileCacheConfig
) -> None:
    store.put_tile(write())
    for bad in ("satellite\n", "satellite\r\n", "\nsatellite", "satellite "):
        refused(store, sink, write(source=bad, seed=1), "source")
    assert count_rows(tile_config.dsn) == 1


@pytest.mark.parametrize(
    "flight",
    [
        "6f1c2a7e93b4-4d0a-9e51-0c8d-2f4b7a13",  # dashes moved
        "6f1c-2a7e-93b4-4d0a-9e51-0c8d-2f4b-7a13",  # too many dashes
        "6f1c2a7e93b44d0a9e510c8d2f4b7a13",  # no dashes
        "{6f1c2a7e-93b4-4d0a-9e51-0c8d2f4b7a13}",
        "urn:uuid:6f1c2a7e-93b4-4d0a-9e51-0c8d2f4b7a13",
        " 6f1c2a7e-93b4-4d0a-9e51-0c8d2f4b7a13",
        "6f1c2a7e-93b4-4d0a-9e51-0c8d2f4b7a13\n",
    ],
)
def test_flight_ids_must_be_canonical(
    store: PostgresFilesystemStore, sink: MemorySink, flight: str
) -> None:
    assert uuid.UUID(flight.strip()) == uuid.UUID(FLIGHT)  # Python's UUID takes them all
    refused(store, sink, write(source="in_flight", flight_id=flight), "flight_id")


def test_canonical_flight_ids_in_either_case_are_one_flight(store: PostgresFilesystemStore) -> None:
    a = store.put_tile(write(source="in_flight", flight_id=FLIGHT))
    b = store.find(Z, X, Y, "in_flight", FLIGHT.upper())
    assert b is not None and b.tile_id == a.tile_id


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"captured_at_ns": 10**30}, "captured_at_ns"),
        ({"captured_at_ns": MAX_CAPTURED_NS + 1}, "captured_at_ns"),
        ({"captured_at_ns": 1.5e18}, "captured_at_ns"),
        ({"captured_at_ns": True}, "captured_at_ns"),
        ({"quality": {"when": object()}}, "quality"),
        ({"quality": {"raw": b"\x00\x01"}}, "quality"),
        ({"quality": {"score": float("nan")}}, "quality"),
        ({"quality": {"score": float("inf")}}, "quality"),
        ({"quality": {1: "int key"}}, "quality"),
        ({"quality": {"s": "nul\x00"}}, "quality"),
        ({"quality": {"big": "x" * 20_000}}, "quality"),
        ({"latitude": float("nan"), "longitude": 0.0}, "latitude"),
        ({"latitude": 10**400, "longitude": 0.0}, "latitude"),
        ({"latitude": "37.0", "longitude": "-122.0"}, "latitude"),
        ({"latitude": 37.0, "longitude": float("-inf")}, "longitude"),
        ({"zoom": 2**70}, "zoom"),
        ({"zoom": 15.0}, "zoom"),
        ({"data": "not bytes"}, "data"),
    ],
)
def test_bad_numbers_and_bodies_are_typed_and_recorded(
    store: PostgresFilesystemStore,
    sink: MemorySink,
    tile_config: TileCacheConfig,
    change: dict[str, Any],
    field: str,
) -> None:
    w = write(**({"content_sha256": "0" * 64} if "data" in change else {}))
    refused(store, sink, TileWrite(**{**w.__dict__, **change}), field)
    assert count_rows(tile_config.dsn) == 0


def test_non_finite_bbox_is_a_tile_cache_error() -> None:
    for corner in (math.nan, math.inf, -math.inf, 10**400, "1", None):
        with pytest.raises(TileValidationError) as info:
            BBox(0.0, 0.0, corner, 1.0)  # type: ignore[arg-type]
        assert info.value.field == "bbox"


def test_every_entry_point_refuses_with_typed_errors(store: PostgresFilesystemStore) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.get_tile(Z, X, Y, "satellite\n"),
        lambda: store.get_tile(True, 0, 0, "satellite"),  # type: ignore[arg-type]
        lambda: store.find(Z, X, Y, "satellite", "6f1c2a7e93b44d0a9e510c8d2f4b7a13"),
        lambda: store.read_tile("{" + FLIGHT + "}"),
        lambda: store.get_metadata(12),  # type: ignore[arg-type]
        lambda: store.open_pixels("not-a-uuid"),
        lambda: store.query_bbox("0,0,1,1", Z),  # type: ignore[arg-type]
        lambda: store.query_bbox(BBox(0, 0, 1, 1), Z, limit=-1),
        lambda: store.query_bbox(BBox(0, 0, 1, 1), Z, limit=2.5),  # type: ignore[arg-type]
        lambda: store.query_bbox(BBox(0, 0, 1, 1), 99),
        lambda: store.list_pending_uploads(limit=-3),
        lambda: list(store.iter_tiles({"zoom": "15"})),
        lambda: list(store.iter_tiles({"source": "a\n"})),
        lambda: list(store.iter_tiles({"freshness_status": "fresh'; --"})),
        lambda: list(store.iter_tiles({"file_path": "x"})),
        lambda: store.mark_uploaded(FLIGHT),  # a lone string, not a sequence of ids
        lambda: store.mark_uploaded([FLIGHT.replace("-", "")]),
        lambda: store.record_vote(FLIGHT, agree="yes"),  # type: ignore[arg-type]
        lambda: store.record_vote("x", agree=True),
        lambda: store.set_sector("", "urban", None),
        lambda: store.set_sector("s1\n", "urban", None),
        lambda: store.set_sector("s1", "urban", (0, 0, 1, 1)),  # type: ignore[arg-type]
        lambda: store.put_tiles("not writes"),  # type: ignore[arg-type]
        lambda: store.put_tiles([object()]),  # type: ignore[list-item]
        lambda: store.maintain(refresh_period_ns=-1),
    ]
    for i, call in enumerate(calls):
        with pytest.raises(TileValidationError):
            call()
        assert i >= 0


# ---------------------------------------------------------------- properties
def _is_slug(text: str) -> bool:
    """The documented source rule, written without a regular expression."""
    first = string.ascii_lowercase + string.digits
    rest = first + "_-"
    return 1 <= len(text) <= 32 and text[0] in first and all(c in rest for c in text)


@given(st.text(max_size=40) | st.from_regex(r"[a-z0-9][a-z0-9_\-]{0,33}\s?", fullmatch=True))
def test_check_source_accepts_exactly_the_slugs(text: str) -> None:
    if _is_slug(text):
        assert check_source(text) == text
    else:
        with pytest.raises(TileValidationError):
            check_source(text)


_HEX = "0123456789abcdefABCDEF"


def _canonical(text: str) -> bool:
    parts = text.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(c in _HEX for p in parts for c in p)


@given(
    st.uuids().map(str).map(lambda u: u.upper() if len(u) % 2 else u)
    | st.uuids().map(lambda u: u.hex)
    | st.text(alphabet="0123456789abcdef-{}:urnid \n", min_size=30, max_size=46)
    | st.uuids().flatmap(lambda u: st.integers(0, 31).map(lambda i, h=u.hex: h[:i] + "-" + h[i:]))
)
def test_flight_ids_parse_exactly_in_8_4_4_4_12_form(text: str) -> None:
    if _canonical(text) and text.strip("0-") != "":
        value = parse_flight_id(text)
        assert value is not None and str(value) == text.lower()
    else:
        with pytest.raises(TileValidationError):
            parse_flight_id(text)


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.binary(max_size=4)
    | st.sampled_from([object(), {1, 2}, (1, 2), math.pi])
)
hostile_json = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(st.dictionaries(st.text(max_size=8), hostile_json, max_size=4))
def test_quality_is_stored_as_plain_json_or_refused(quality: dict[str, Any]) -> None:
    import json

    try:
        stored = check_quality(quality)
    except TileValidationError as err:
        assert err.field == "quality"
        return
    # what is accepted survives the round trip PostgreSQL's jsonb will make
    text = json.dumps(stored, allow_nan=False)
    assert json.loads(text) == stored


numbers = (
    st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([None, True, "12", b"1", 1 + 2j])
)


HOSTILE = {
    "zoom": st.integers(-2, 30) | st.sampled_from([15.0, "15", None, True, 2**70]),
    "x": st.integers(-(2**40), 2**40) | st.sampled_from([1.0, "1", None]),
    "source": st.text(max_size=36)
    | st.sampled_from(["satellite\n", "SATELLITE", "a/../b", "a\x00", "", "x" * 33]),
    "flight_id": st.uuids().map(lambda u: u.hex) | st.text(max_size=40) | st.integers(),
    "captured_at_ns": numbers,
    "latitude": numbers,
    "longitude": numbers,
    "quality": st.dictionaries(st.text(max_size=6), hostile_json, max_size=3) | json_leaf,
    "data": st.sampled_from(["empty", "text", "no-eoi", "bad-hash"]),
}


@STORE_SETTINGS
@given(
    broken=st.dictionaries(st.sampled_from(sorted(HOSTILE)), st.just(None), max_size=2).flatmap(
        lambda keys: st.fixed_dictionaries({k: HOSTILE[k] for k in keys})
    ),
    flight=st.sampled_from([None, "", FLIGHT]),
    source=st.sampled_from(["satellite", "naip", "in_flight"]),
    dx=st.integers(-3, 3),
    seed=st.integers(0, 10**6),
)
def test_put_tile_stores_or_refuses_typed_and_recorded(
    store: PostgresFilesystemStore,
    sink: MemorySink,
    tile_config: TileCacheConfig,
    broken: dict[str, Any],
    flight: str | None,
    source: str,
    dx: int,
    seed: int,
) -> None:
    """A write with up to two hostile fields (the rest valid) is stored, or
    refused with a tile-cache error and one ``c6.write_failed`` record, and
    nothing else ever escapes."""
    body = broken.pop("data", "jpeg")
    data: Any = {
        "jpeg": make_jpeg(seed),
        "empty": b"",
        "text": "\xff\xd8\xff\xd9",
        "no-eoi": make_jpeg(seed)[:-2],
        "bad-hash": make_jpeg(seed),
    }[body]
    digest = "f" * 64 if body == "bad-hash" else sha(data if isinstance(data, bytes) else b"")
    fields: dict[str, Any] = {
        "zoom": Z,
        "x": X + dx,
        "y": Y,
        "source": source,
        "data": data,
        "content_sha256": digest,
        "flight_id": flight,
        "quality": {"score": 0.7},
    }
    fields.update(broken)
    w = TileWrite(**fields)
    rows = count_rows(tile_config.dsn)
    failed = len(sink.of_kind("c6.write_failed"))
    try:
        meta = store.put_tile(w)
    except TileCacheError as err:
        event(f"refused: {type(err).__name__}")
        assert len(sink.of_kind("c6.write_failed")) == failed + 1
        assert count_rows(tile_config.dsn) == rows
        return
    event("stored")
    assert count_rows(tile_config.dsn) == rows + 1
    assert store.get_metadata(meta.tile_id) == meta
    assert dict(meta.quality) == dict(store.read_tile(meta.tile_id).meta.quality)


@STORE_SETTINGS
@given(
    box=st.tuples(numbers, numbers, numbers, numbers),
    zoom=st.integers(-1, 26) | st.sampled_from([None, 1.0]),
    limit=st.none() | st.integers(-2, 2**40) | st.sampled_from([1.0, "3"]),
)
def test_query_bbox_answers_or_refuses_typed(
    store: PostgresFilesystemStore, box: tuple[Any, ...], zoom: Any, limit: Any
) -> None:
    try:
        bbox = BBox(*box)
    except TileValidationError:
        return
    try:
        result = store.query_bbox(bbox, zoom, limit)
    except TileValidationError:
        return
    assert isinstance(result, list)
