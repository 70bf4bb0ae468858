"""Errors of the replay tool.

::

    GpsDeniedError
    └── ReplayError                  replay.errors
        ├── BagOpenError             the bag cannot be opened or read
        └── UnknownMessageTypeError       a recorded type has no importable ROS class
"""

from __future__ import annotations

from gps_denied_onboard.errors import GpsDeniedError


class ReplayError(GpsDeniedError):
    """Base class of the replay tool's errors."""


class BagOpenError(ReplayError):
    """A bag (rosbag2 directory, ``.mcap`` or ``.db3`` file) cannot be read.

    Attributes:
        path: the bag that was refused.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class UnknownMessageTypeError(ReplayError):
    """A recorded message type cannot be imported as a ROS message class.

    Attributes:
        msgtype: the type name as recorded, e.g. ``pkg/msg/Type``.
    """

    def __init__(self, message: str, *, msgtype: str) -> None:
        super().__init__(message)
        self.msgtype = msgtype
