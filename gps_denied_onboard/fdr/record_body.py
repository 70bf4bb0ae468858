"""The JSON message body of an FDR record (FORMAT.md, "FDR records").

``{"kind","producer","schema_version","stamp_ns","seq","payload":{...}}`` plus
``"flags": [...]`` when the payload needed repair: NaN/inf written as null
(``non_finite:<key>``), or a payload that cannot be encoded at all replaced by
its ``repr`` (``unencodable_payload``). The constant head of the body is built
once per (kind, producer, schema version); the writer thread's hot loop reads
:attr:`RecordBodyEncoder.heads_by_producer` and :data:`payload_chunks` to
inline the common case.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
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


def _payload_chunks() -> Callable[[Any, int], Sequence[str]]:
    """``encode_payload`` without its two Python frames, for the writer's hot loop.

    ``JSONEncoder.encode`` builds a new C encoder on every call; this one is built
    once, with the same settings. It does not look for circular references (a cyclic
    payload ends in RecursionError instead of ValueError): callers fall back to
    :meth:`RecordBodyEncoder.body` on either. ``"".join(payload_chunks(obj, 0))`` is
    ``encode_payload(obj)``.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: same output, the slow way
        return lambda obj, _level: (encode_payload(obj),)
    chunks: Callable[[Any, int], Sequence[str]] = make(
        None, _json_default, json.encoder.encode_basestring_ascii, None, ":", ",",
        False, False, False)
    return chunks


payload_chunks = _payload_chunks()


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
