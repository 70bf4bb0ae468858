"""The JSON message body of an FDR record (FORMAT.md, "FDR records").

``{"kind","producer","schema_version","stamp_ns","seq","payload":{...}}`` plus
``"flags": [...]`` when the payload needed repair: NaN/inf written as null
(``non_finite:<key>``), or a payload that cannot be encoded at all replaced by
its ``repr`` (``unencodable_payload``). The constant head of the body is built
once per (kind, producer, schema version); the writer thread's hot loop reads
:attr:`RecordBodyEncoder.heads_by_producer` and :func:`fast_payload` (orjson) to
inline the common case.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

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
    if isinstance(obj, float):  # a float subclass: orjson hands it here, json writes its value
        return float(obj)
    return str(obj)


#: Compact JSON, refusing NaN/inf (ValueError), numpy scalars and bytes made plain.
#: The reference encoder: :func:`payload_bytes` falls back to it wherever orjson
#: would write something else.
encode_payload = json.JSONEncoder(
    separators=(",", ":"), allow_nan=False, default=_json_default
).encode

#: orjson options for :func:`fast_payload`: datetimes and dataclasses go to
#: ``_json_default`` (``str()``), as the json module sends them.
FAST_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS

#: What :func:`fast_payload` raises where it cannot write a payload the way
#: :data:`encode_payload` does (a TypeError): a non-str key, an int beyond 64 bits, a
#: lone surrogate, nesting past 254 levels or a circular reference, an error in a
#: value's ``item()``.
FastPayloadError = orjson.JSONEncodeError


def fast_payload(obj: dict[str, Any]) -> bytes:
    """``encode_payload(obj)`` in UTF-8, by orjson (about three times faster).

    The same JSON values, with two differences in the text: non-ASCII characters
    are raw UTF-8 instead of ``\\u`` escapes, and floats are written shortest
    (``1e-7`` for ``1e-07``); ``json.loads`` of either gives the same payload. It does
    not refuse NaN/inf: it writes them as ``null``. A result containing ``null``
    must therefore be checked (:func:`payload_bytes` does; the writer's hot loop
    hands such records to :meth:`RecordBodyEncoder.body`). One value type differs:
    a plain :class:`enum.Enum` member (no int/str mix-in) is written as its value,
    where ``encode_payload`` writes ``str(member)``; records that cross ROS carry
    decoded JSON and never hold one.
    """
    return orjson.dumps(obj, _json_default, FAST_OPTIONS)


def payload_bytes(obj: dict[str, Any]) -> bytes:
    """The payload's JSON in UTF-8; ValueError where :data:`encode_payload` raises it.

    :func:`fast_payload` where it writes the same payload, the reference encoder
    (ASCII text) where orjson cannot; a payload with ``null`` in it is put through the
    reference encoder too, which refuses NaN/inf (``allow_nan=False``) exactly as
    before, so non-finite values are still found and flagged by the caller.
    """
    try:
        out = fast_payload(obj)
    except FastPayloadError:
        return encode_payload(obj).encode()
    if out.find(b"null") >= 0:  # not `in`: see the writer's hot loop
        encode_payload(obj)  # raises ValueError on NaN/inf
    return out


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
        self._heads: dict[tuple[str, str, str], bytes] = {}
        #: producer -> kind -> head, current schema version only (the hot loop's cache).
        self.heads_by_producer: dict[str, dict[str, bytes]] = {}

    def body(self, producer: str, rec: FlightRecord, seq: int, flags: tuple[str, ...]) -> bytes:
        key = (rec.kind, producer, rec.schema_version)
        head = self._heads.get(key)
        if head is None:
            head = (
                f'{{"kind":{json.dumps(rec.kind)},"producer":{json.dumps(producer)},'
                f'"schema_version":{json.dumps(rec.schema_version)},"stamp_ns":'
            ).encode()
            self._heads[key] = head
            if rec.schema_version == FDR_RECORD_SCHEMA_VERSION:
                self.heads_by_producer.setdefault(producer, {})[rec.kind] = head
        try:
            payload = payload_bytes(dict(rec.payload))
        except ValueError:
            bad: list[str] = []
            try:
                payload = payload_bytes(_sanitize(dict(rec.payload), "", bad))
                flags = (*flags, *(f"non_finite:{p}" for p in bad))
            except (ValueError, RecursionError):  # a circular reference: keep what can be kept
                payload = payload_bytes({"unencodable_payload": repr(dict(rec.payload))[:4096]})
                flags = (*flags, "unencodable_payload")
        if flags:
            return b'%s%d,"seq":%d,"payload":%s,"flags":%s}' % (
                head,
                rec.stamp_ns,
                seq,
                payload,
                json.dumps(list(flags)).encode(),
            )
        return b'%s%d,"seq":%d,"payload":%s}' % (head, rec.stamp_ns, seq, payload)
