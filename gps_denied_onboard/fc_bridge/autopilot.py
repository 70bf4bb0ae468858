"""Who is at the other end: autopilot detection and HEARTBEAT decoding (no I/O).

The autopilot is the first HEARTBEAT whose ``type`` names a vehicle and whose
``autopilot`` is not INVALID (MAVProxy's rule); :mod:`.link` applies it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final

from pymavlink import mavutil
from pymavlink.dialects.v20 import ardupilotmega as mavlink2

__all__ = [
    "Autopilot",
    "AutopilotInfo",
    "autopilot_of",
    "heartbeat_is_from_autopilot",
    "is_armed",
    "mode_name",
]

#: HEARTBEAT types that are not vehicles (MAVProxy's ``heartbeat_is_from_autopilot``).
_NON_VEHICLE_TYPES: Final = frozenset(
    {
        mavlink2.MAV_TYPE_GCS,
        mavlink2.MAV_TYPE_GIMBAL,
        mavlink2.MAV_TYPE_ADSB,
        mavlink2.MAV_TYPE_ONBOARD_CONTROLLER,
        mavlink2.MAV_TYPE_CAMERA,
        mavlink2.MAV_TYPE_ANTENNA_TRACKER,
        mavlink2.MAV_TYPE_FLARM,
        mavlink2.MAV_TYPE_SERVO,
        mavlink2.MAV_TYPE_ODID,
        mavlink2.MAV_TYPE_BATTERY,
        mavlink2.MAV_TYPE_LOG,
        mavlink2.MAV_TYPE_OSD,
        mavlink2.MAV_TYPE_IMU,
        mavlink2.MAV_TYPE_GPS,
        mavlink2.MAV_TYPE_WINCH,
        mavlink2.MAV_TYPE_GENERIC,
    }
)


class Autopilot(enum.Enum):
    """The firmware family at the other end, from HEARTBEAT.autopilot."""

    UNKNOWN = "unknown"
    ARDUPILOT = "ardupilot"
    PX4 = "px4"


@dataclass(frozen=True)
class AutopilotInfo:
    """The detected autopilot.

    Attributes:
        autopilot: firmware family.
        sysid: its system id (``target_system`` of messages addressed to it).
        compid: its component id (``target_component``).
        vehicle_type: HEARTBEAT.type (MAV_TYPE).
    """

    autopilot: Autopilot
    sysid: int
    compid: int
    vehicle_type: int


def autopilot_of(autopilot_field: int) -> Autopilot:
    """Map HEARTBEAT.autopilot (MAV_AUTOPILOT) to :class:`Autopilot`."""
    if autopilot_field == mavlink2.MAV_AUTOPILOT_ARDUPILOTMEGA:
        return Autopilot.ARDUPILOT
    if autopilot_field == mavlink2.MAV_AUTOPILOT_PX4:
        return Autopilot.PX4
    return Autopilot.UNKNOWN


def heartbeat_is_from_autopilot(msg: Any) -> bool:
    """True for a vehicle's HEARTBEAT (not a GCS, camera, gimbal, companion...)."""
    return bool(
        msg.type not in _NON_VEHICLE_TYPES and msg.autopilot != mavlink2.MAV_AUTOPILOT_INVALID
    )


def mode_name(msg: Any) -> str:
    """Flight-mode name of a HEARTBEAT, via pymavlink's mode tables for both autopilots."""
    return str(mavutil.mode_string_v10(msg))


def is_armed(msg: Any) -> bool:
    """HEARTBEAT base_mode carries MAV_MODE_FLAG_SAFETY_ARMED."""
    return bool(msg.base_mode & mavlink2.MAV_MODE_FLAG_SAFETY_ARMED)
