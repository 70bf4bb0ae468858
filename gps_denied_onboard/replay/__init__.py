"""Replay of rosbag2 bags and flight-recorder directories into ROS 2.

ROS-free core: :mod:`.bag` (reading), :mod:`.schedule` (what and when),
:mod:`.player` (the loop), :mod:`.options`; the rclpy adapter is
:mod:`.publisher`; the command is ``python -m gps_denied_onboard.replay``
(``gdo-replay``). :mod:`.tlog` and :mod:`.fc_playback` replay a flight
controller's MAVLink stream in sim time.
"""

from gps_denied_onboard.replay.bag import BagMessage, BagSource, BagTopic, QosSpec, open_bag
from gps_denied_onboard.replay.errors import BagOpenError, ReplayError, UnknownMessageTypeError
from gps_denied_onboard.replay.options import ReplayOptions
from gps_denied_onboard.replay.player import Player, ReplaySink, ReplaySummary
from gps_denied_onboard.replay.schedule import ClockTick, Publish, playback_events

__all__ = [
    "BagMessage",
    "BagOpenError",
    "BagSource",
    "BagTopic",
    "ClockTick",
    "Player",
    "Publish",
    "QosSpec",
    "ReplayError",
    "ReplayOptions",
    "ReplaySink",
    "ReplaySummary",
    "UnknownMessageTypeError",
    "open_bag",
    "playback_events",
]
