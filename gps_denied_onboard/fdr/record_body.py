"""The JSON message body of an FDR record (FORMAT.md, "FDR records").

``{"kind","producer","schema_version","stamp_ns","seq","payload":{...}}`` plus
``"flags": [...]`` when the payload needed repair: NaN/inf written as null
(``non_finite:<key>``), or a payload that cannot be encoded at all replaced by
its ``repr`` (``unencodable_payload``). The constant head of the body is built
once per (kind, producer, schema version); the writer thread's hot loop reads
:attr:`RecordBodyEncoder.heads_by_producer` and :data:`encode_payload` to
inline the common case.
"""

from __future__ import annotations

import json
import math
from typing import Any

from gps_denied_onboard.record_schema import FDR_RECORD_SCHEMA_VERSION
from gps_denied_onboard.records import FlightRecord


def _json_default(obj: Any) -> Any:
    item = getattr(obj, "item", None)
    if callable(item):
        return item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray)):
        return obj.hex()
    return str(obj)


#: Compact JSON, refusing NaN/inf (ValueError), numpy scalars and bytes made plain.
encode_payload = json.JSONEncoder(separators=(",", ":"), allow_nan=False,
                                  default=_json_default).encode


def _sanitize(value: Any, path: str, bad: list[str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        bad.append(path)
        return None
    if isinstance(value, dict):
        return {k: _sanitize(v, f"{path}.{k}" if path else str(k), bad) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitize(v, f"{path}[{i}]", bad) for i, v in enumerate(value)]
    return value


class RecordBodyEncoder:
    """Builds record bodies; caches each body head (everything before ``stamp_ns``)."""

    def __init__(self) -> None:
        self._heads: dict[tuple[str, str, str], str] = {}
        #: producer -> kind -> head, current schema version only (the hot loop's cache).
        self.heads_by_producer: dict[str, dict[str, str]] = {}

    def body(self, producer: str, rec: FlightRecord, seq: int, flags: tuple[str, ...]) -> bytes:
        key = (rec.kind, producer, rec.schema_version)
        head = self._heads.get(key)
        if head is None:
            head = (f'{{"kind":{json.dumps(rec.kind)},"producer":{json.dumps(producer)},'
                    f'"schema_version":{json.dumps(rec.schema_version)},"stamp_ns":')
            self._heads[key] = head
            if rec.schema_version == FDR_RECORD_SCHEMA_VERSION:
                self.heads_by_producer.setdefault(producer, {})[rec.kind] = head
        try:
            payload = encode_payload(dict(rec.payload))
        except ValueError:
            bad: list[str] = []
            try:
                payload = encode_payload(_sanitize(dict(rec.payload), "", bad))
                flags = (*flags, *(f"non_finite:{p}" for p in bad))
            except ValueError:  # e.g. a circular reference: keep what can be kept
                payload = encode_payload({"unencodable_payload": repr(dict(rec.payload))[:4096]})
                flags = (*flags, "unencodable_payload")
        if flags:
            return (f'{head}{rec.stamp_ns},"seq":{seq},"payload":{payload},'
                    f'"flags":{json.dumps(list(flags))}}}').encode()
        return f'{head}{rec.stamp_ns},"seq":{seq},"payload":{payload}}}'.encode()
