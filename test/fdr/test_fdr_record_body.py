"""The record body encoder: the writer's inlined payload encoder matches the reference one."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from gps_denied_onboard.fdr.record_body import RecordBodyEncoder, encode_payload, payload_chunks
from gps_denied_onboard.records import FlightRecord

PAYLOADS: list[dict[str, Any]] = [
    {},
    {"tile_id": "z17_x1_y2", "disk_bytes": 183_211, "reason": "lru"},
    {"latitude": 50.450123456789, "longitude": -30.5, "big": 1e300, "neg0": -0.0, "n": None},
    {"text": "é \u2028 \" \\ \n", "flag": True, "list": [1, 2.5, "x", [None]], "nested": {"a": {}}},
    {"np_f": np.float32(2.5), "np_i": np.int64(7), "raw": b"\x00\xff", "tags": ("a", "b")},
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_inlined_encoder_writes_what_the_reference_encoder_writes(payload: dict[str, Any]) -> None:
    text = "".join(payload_chunks(payload, 0))
    assert text == encode_payload(payload)
    assert json.loads(text) == json.loads(encode_payload(payload))


def test_inlined_encoder_refuses_what_the_writer_must_repair() -> None:
    with pytest.raises(ValueError):
        "".join(payload_chunks({"x": math.nan}, 0))
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises((ValueError, RecursionError)):
        "".join(payload_chunks(cyclic, 0))


def test_body_flags_non_finite_values() -> None:
    rec = FlightRecord("c6.evict", "tile_cache", 5, {"tile_id": "t", "disk_bytes": math.inf})
    body = json.loads(RecordBodyEncoder().body("tile_cache", rec, 3, ()))
    assert body["payload"] == {"tile_id": "t", "disk_bytes": None}
    assert body["flags"] == ["non_finite:disk_bytes"]
    assert (body["kind"], body["producer"], body["stamp_ns"], body["seq"]) == (
        "c6.evict", "tile_cache", 5, 3)
