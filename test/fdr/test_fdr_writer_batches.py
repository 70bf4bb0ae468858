"""The writer's hot loop writes every record of a mixed batch under its own kind and body.

The loop keeps the previous record's kind, channel and body head between records;
a batch that switches kinds, mixes in rate-capped kinds, flagged payloads (unknown
keys, NaN), payloads the fast encoder hands back (a null, an int past 64 bits) and
first-time kinds must still write each record exactly as the reference encoder does,
on its own kind's channel.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fdr_core_helpers import T0, make_recorder, read_flight
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gps_denied_onboard.fdr.policy import RecordKindPolicy
from gps_denied_onboard.fdr.record_body import RecordBodyEncoder
from gps_denied_onboard.records import FlightRecord

VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("c6.evict", {"tile_id": "t1", "disk_bytes": 10, "reason": "lru"}),
    ("c6.evict", {"tile_id": "t2", "disk_bytes": math.nan}),  # repaired, flagged
    ("c6.evict", {"tile_id": "t3", "disk_bytes": 3, "extra": 1}),  # unknown key, flagged
    ("c6.evict", {"tile_id": "t5 — é", "disk_bytes": None}),  # null, yet finite: not flagged
    ("c6.evict", {"tile_id": "t6", "disk_bytes": 2**70}),  # past orjson: the json module
    ("failed_tile_thumbnail", {"tile_id": "t4", "reason": "io"}),  # rate-capped
    ("fc.gnss_health", {"healthy": True, "reason": "ok"}),
    ("host_health", {"cpu_load_1m": 0.5, "mem_total_bytes": 8, "mem_available_bytes": 4,
                     "flight_root_free_bytes": 2}),
]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(range(len(VARIANTS))), min_size=1, max_size=40))
def test_mixed_batch_writes_each_record_under_its_kind_as_the_reference_encoder(
        tmp_path_factory: Any, picks: list[int]) -> None:
    root: Path = tmp_path_factory.mktemp("fdr")
    rec = make_recorder(root)
    rec.start()
    try:
        rec.open_flight("f")
        client = rec.register_client("tile_cache")
        records = [FlightRecord(VARIANTS[i][0], "tile_cache", T0 + n, VARIANTS[i][1])
                   for n, i in enumerate(picks)]
        for r in records:
            client.emit(r)
        rec.flush()
        rec.close_flight("f")
    finally:
        rec.stop()
    policy = RecordKindPolicy()
    encoder = RecordBodyEncoder()
    expected = {}
    for seq, r in enumerate(records):
        expected[seq] = (f"/fdr/{r.kind}",
                         encoder.body("tile_cache", r, seq, policy.enforce_or_raise(r)))
    written = {}
    for m in read_flight(root / "f"):
        if m.encoding == "json" and m.body["producer"] == "tile_cache":
            written[m.body["seq"]] = (m.topic, m.data)
    capped = [s for s, r in enumerate(records) if r.kind == "failed_tile_thumbnail"]
    # One thumbnail failure per 10 s window passes the rate cap: the first.
    assert set(written) == set(expected) - set(capped[1:])
    for seq, got in written.items():
        assert got == expected[seq]
