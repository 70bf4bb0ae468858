"""MAVLink commands the bridge sends more than one of its parts: built here once."""

from __future__ import annotations

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

__all__ = ["command_long", "request_message"]


def command_long(
    target_system: int, target_component: int, command: int, *params: float
) -> mavlink2.MAVLink_command_long_message:
    """COMMAND_LONG ``command`` with up to seven ``params`` (the rest 0), confirmation 0."""
    if len(params) > 7:
        raise ValueError(f"COMMAND_LONG has 7 params, got {len(params)}")
    p = [float(v) for v in params] + [0.0] * (7 - len(params))
    return mavlink2.MAVLink_command_long_message(
        target_system, target_component, command, 0, p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    )


def request_message(
    target_system: int, target_component: int, msg_id: int
) -> mavlink2.MAVLink_command_long_message:
    """MAV_CMD_REQUEST_MESSAGE (512) for ``msg_id``: send that message once, now.

    Both autopilots answer it (ArduPilot 4.1+, PX4 1.11+) with a COMMAND_ACK and,
    when they have it, the message; one they do not have yet (no home, no EKF
    origin) is acknowledged and not sent, so a caller that needs it asks again.
    """
    return command_long(target_system, target_component, mavlink2.MAV_CMD_REQUEST_MESSAGE, msg_id)
