"""Errors of the flight-controller bridge.

::

    GpsDeniedError
    └── FcBridgeError            anything the FC bridge raises on purpose
        ├── FcConnectionError    the link cannot be opened, or no autopilot answered
        ├── FcLinkLost           the autopilot's heartbeat stopped (missed_heartbeats)
        ├── FcProtocolError      a MAVLink exchange broke its protocol (send of a bad message)
        ├── FcPreflightError     the FC's parameters do not allow the chosen output
        └── FcSigningKeyError    the signing key file is unsafe or unreadable

Transport errors (``OSError``) never escape the reader: they trigger a
reconnect and are counted. Callers catch :class:`FcBridgeError`.
"""

from __future__ import annotations

from collections.abc import Sequence

from gps_denied_onboard.errors import GpsDeniedError


class FcBridgeError(GpsDeniedError):
    """Base class of the FC bridge's errors."""


class FcConnectionError(FcBridgeError):
    """The link could not be opened, or the autopilot did not answer in time.

    Attributes:
        connection: the connection string that failed.
    """

    def __init__(self, message: str, *, connection: str) -> None:
        super().__init__(message)
        self.connection = connection


class FcLinkLost(FcBridgeError):
    """No autopilot HEARTBEAT for ``missed_heartbeats`` periods.

    Attributes:
        sysid: the autopilot's system id, when one had been detected.
    """

    def __init__(self, message: str, *, sysid: int | None = None) -> None:
        super().__init__(message)
        self.sysid = sysid


class FcProtocolError(FcBridgeError):
    """A message could not be built or sent (a programming error at the call site)."""


class FcPreflightError(FcBridgeError):
    """The FC's parameters do not allow the chosen output.

    Attributes:
        problems: one human-readable line per wrong, missing or unread parameter.
    """

    def __init__(self, message: str, *, problems: Sequence[str]) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


class FcSigningKeyError(FcBridgeError):
    """The MAVLink signing key file cannot be used (readable by others, wrong size...).

    Attributes:
        path: the key file.
        reason: what is wrong with it.
    """

    def __init__(self, message: str, *, path: str, reason: str) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason
