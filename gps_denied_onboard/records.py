"""Flight records as the core sees them, and the sink they are written to.

A :class:`FlightRecord` is the ROS-free twin of ``msg/FdrRecord.msg``
(kind, producer, stamp, schema version, payload). Core components write
records to a :class:`RecordSink`; on the aircraft the sink is either the
recorder's own ``FdrClient`` (in-process) or a publisher of ``FdrRecord``
messages (``nodes.record_sink.RecordPublisherSink``) that the ``fdr_recorder``
node subscribes to.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Protocol, runtime_checkable

from gps_denied_onboard.record_schema import FDR_RECORD_SCHEMA_VERSION

#: Record kind a node's record publisher sends last, when closed (``record_schema``:
#: ``records_closed``): how many it sent, so the recorder can tell a lost tail.
RECORDS_CLOSED_KIND: Final = "records_closed"


def _frozen_payload(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(payload))


@dataclass(frozen=True)
class FlightRecord:
    """One flight-data record.

    Attributes:
        kind: what happened, from the ``record_schema`` vocabulary.
        producer: slug of the component that produced it (``fc_bridge``...).
        stamp_ns: when it happened, in the producer's injected clock (ns).
        payload: JSON-serialisable key/values; keys are checked per kind.
        schema_version: ``fdr_record_schema`` version the payload follows.
    """

    kind: str
    producer: str
    stamp_ns: int
    payload: Mapping[str, Any] = field(default_factory=dict)
    schema_version: str = FDR_RECORD_SCHEMA_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload", _frozen_payload(self.payload))

    def payload_json(self) -> str:
        """Canonical JSON of the payload (sorted keys, compact)."""
        return json.dumps(dict(self.payload), sort_keys=True, separators=(",", ":"), default=str)

    @classmethod
    def from_json_payload(
        cls, kind: str, producer: str, stamp_ns: int, payload_json: str, schema_version: str
    ) -> FlightRecord:
        payload = json.loads(payload_json) if payload_json else {}
        if not isinstance(payload, dict):
            raise ValueError("FdrRecord payload_json must encode a JSON object")
        return cls(kind, producer, stamp_ns, payload, schema_version)


@runtime_checkable
class RecordSink(Protocol):
    """Where a component writes its flight records.

    ``emit`` must not block the caller for long and must not raise for
    back-pressure: a sink that cannot keep up accounts the loss itself
    (the FDR ring records an ``overrun``). It may raise
    :class:`~gps_denied_onboard.errors.RecordSchemaError` for a record the
    schema forbids, since that is a programming error at the call site.
    """

    def emit(self, record: FlightRecord) -> None: ...


class MemorySink:
    """Keeps records in memory; the sink of in-process tests and of dry runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[FlightRecord] = []

    def emit(self, record: FlightRecord) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[FlightRecord]:
        with self._lock:
            return list(self._records)

    def of_kind(self, kind: str) -> list[FlightRecord]:
        return [r for r in self.records if r.kind == kind]
