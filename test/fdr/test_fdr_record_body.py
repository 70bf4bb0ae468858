"""The record body encoder: orjson where it writes the payload the json module would.

The writer encodes payloads with orjson (:func:`fast_payload`) and falls back to the
json module's encoder (:data:`encode_payload`, the reference) wherever orjson would
write something else or cannot write at all; non-finite values are still found and
flagged. What a reader decodes is the same either way; the text may differ in
non-ASCII characters (raw UTF-8 against ``\\u`` escapes) and float spelling.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from typing import Any

import numpy as np
import pytest

from gps_denied_onboard.fdr.record_body import (
    FastPayloadError,
    RecordBodyEncoder,
    encode_payload,
    fast_payload,
    payload_bytes,
)
from gps_denied_onboard.records import FlightRecord


@dataclasses.dataclass
class _Point:
    x: float


class _Metres(float):
    pass


PAYLOADS: list[dict[str, Any]] = [
    {},
    {"tile_id": "z17_x1_y2", "disk_bytes": 183_211, "reason": "lru"},
    {"latitude": 50.450123456789, "longitude": -30.5, "big": 1e300, "neg0": -0.0, "n": None},
    {"small": 1e-7, "int_float": 1e16, "max_i64": 2**63 - 1, "min_i64": -(2**63)},
    {
        "text": 'é \u2028 " \\ \n \x00 日本',
        "flag": True,
        "list": [1, 2.5, "x", [None]],
        "nested": {"a": {}},
    },
    {
        "np_f": np.float32(2.5),
        "np_i": np.int64(7),
        "np_b": np.bool_(True),
        "raw": b"\x00\xff",
        "tags": ("a", "b"),
        "set": {3},
    },
    {
        "when": datetime.datetime(2026, 11, 30, 1, 2, 3),
        "day": datetime.date(2026, 11, 30),
        "point": _Point(1.5),
        "metres": _Metres(2.25),
    },
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_fast_encoder_writes_the_payload_the_reference_encoder_writes(
    payload: dict[str, Any],
) -> None:
    fast = fast_payload(payload)
    assert json.loads(fast) == json.loads(encode_payload(payload))
    assert payload_bytes(payload) == fast


def test_fast_encoder_writes_non_ascii_as_utf8_where_the_reference_escapes_it() -> None:
    payload = {"place": "Kyiv — Київ"}
    assert fast_payload(payload) == '{"place":"Kyiv — Київ"}'.encode()
    assert encode_payload(payload) == '{"place":"Kyiv \\u2014 \\u041a\\u0438\\u0457\\u0432"}'
    assert json.loads(fast_payload(payload).decode("utf-8")) == payload


@pytest.mark.parametrize(
    "payload",
    [
        {1: "int key"},
        {"x": 2**64},
        {"x": "\ud800"},
    ],
)
def test_what_orjson_cannot_write_goes_to_the_reference_encoder(payload: dict[Any, Any]) -> None:
    with pytest.raises(FastPayloadError):
        fast_payload(payload)
    assert payload_bytes(payload) == encode_payload(payload).encode()


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, np.float32("nan"), np.float64("inf")]
)
def test_payload_bytes_refuses_non_finite_values_as_the_reference_does(value: Any) -> None:
    with pytest.raises(ValueError):
        payload_bytes({"ok": None, "nested": {"x": [1.0, value]}})
    assert fast_payload({"x": value}) == b'{"x":null}'  # why the writer must check


def test_body_flags_non_finite_values() -> None:
    rec = FlightRecord("c6.evict", "tile_cache", 5, {"tile_id": "t", "disk_bytes": math.inf})
    body = json.loads(RecordBodyEncoder().body("tile_cache", rec, 3, ()))
    assert body["payload"] == {"tile_id": "t", "disk_bytes": None}
    assert body["flags"] == ["non_finite:disk_bytes"]
    assert (body["kind"], body["producer"], body["stamp_ns"], body["seq"]) == (
        "c6.evict",
        "tile_cache",
        5,
        3,
    )


def test_body_keeps_a_cyclic_payload_as_its_repr_flagged_unencodable() -> None:
    cyclic: dict[str, Any] = {"a": 1}
    cyclic["self"] = cyclic
    rec = FlightRecord("c6.evict", "tile_cache", 5, cyclic)
    body = json.loads(RecordBodyEncoder().body("tile_cache", rec, 0, ()))
    assert body["flags"] == ["unencodable_payload"]
    assert body["payload"]["unencodable_payload"].startswith("{'a': 1, 'self': {")
