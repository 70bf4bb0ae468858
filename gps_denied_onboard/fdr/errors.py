"""Errors of the flight data recorder.

::

    FdrError
    ├── FdrOpenError                 the recorder cannot start or open a flight
    │                                (flight root locked by another writer, unwritable)
    ├── FlightStateError             open/close out of order
    │   ├── FlightNotOpenError       close_flight without open_flight
    │   ├── FlightAlreadyOpenError   open_flight while a flight is open
    │   └── FlightIdMismatchError    close_flight(flight_id) names another flight
    └── RawFrameWriteForbiddenError  a producer tried to record raw camera frames
                                     (also a RecordSchemaError: the schema forbids it)

Storage faults (ENOSPC, EIO) are never raised to producers: the recorder goes
into degraded mode and accounts what it lost.
"""

from __future__ import annotations

from gps_denied_onboard.errors import GpsDeniedError, RecordSchemaError


class FdrError(GpsDeniedError):
    """Base class of the recorder's errors."""


class FdrOpenError(FdrError):
    """The recorder cannot take its flight root or create a flight's files."""


class FlightStateError(FdrError):
    """open_flight / close_flight called out of order."""


class FlightNotOpenError(FlightStateError):
    """close_flight (or a flight-scoped call) with no flight open."""


class FlightAlreadyOpenError(FlightStateError):
    """open_flight while another flight is still open."""


class FlightIdMismatchError(FlightStateError):
    """close_flight named a flight other than the open one.

    Attributes:
        expected: the open flight's id.
        got: the id the caller passed.
    """

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"flight {got!r} is not the open flight {expected!r}")
        self.expected = expected
        self.got = got


class RawFrameWriteForbiddenError(FdrError, RecordSchemaError):
    """Raw navigation / AI-camera frames must never reach the recorder (RESTRICT-UAV-4)."""

    def __init__(self, message: str, *, kind: str) -> None:
        RecordSchemaError.__init__(self, message, kind=kind)
