"""Flight data recorder: crash-safe MCAP segments, policies, and the recorder core.

The on-disk format and the API other parts code against are in ``FORMAT.md``.
"""

from gps_denied_onboard.fdr.client import FdrClient
from gps_denied_onboard.fdr.config import FdrConfig
from gps_denied_onboard.fdr.errors import (
    FdrError,
    FdrOpenError,
    FlightAlreadyOpenError,
    FlightIdMismatchError,
    FlightNotOpenError,
    FlightStateError,
    RawFrameWriteForbiddenError,
)
from gps_denied_onboard.fdr.policy import CapacityCapPolicy, RecordKindPolicy
from gps_denied_onboard.fdr.writer import (
    FlightFooter,
    FlightHeader,
    FlightRecorder,
    ProducerStatus,
    RecorderStatus,
)

__all__ = [
    "CapacityCapPolicy",
    "FdrClient",
    "FdrConfig",
    "FdrError",
    "FdrOpenError",
    "FlightAlreadyOpenError",
    "FlightFooter",
    "FlightHeader",
    "FlightIdMismatchError",
    "FlightNotOpenError",
    "FlightRecorder",
    "FlightStateError",
    "ProducerStatus",
    "RawFrameWriteForbiddenError",
    "RecordKindPolicy",
    "RecorderStatus",
]
