"""The ROS graph's contract, shared by the nodes and the replay tools: topic
names, the QoS their records and latched states are published with, and stamps
as ``builtin_interfaces/Time`` <-> ns.

It imports rclpy's QoS and the Time message, so ROS-free code must not import
it; the replay package does so only inside its rclpy adapters. Only rclpy APIs
present in both Humble and Jazzy are used here.
"""

from __future__ import annotations

from typing import Final

from builtin_interfaces.msg import Time as TimeMsg
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

TOPIC_FDR_RECORDS: Final = "/fdr/records"
#: the flight recorder's open flight (std_msgs/String, latched): its id, "" once closed
TOPIC_FDR_FLIGHT: Final = "/fdr/flight"
TOPIC_GCS_ALERTS: Final = "/gcs/alerts"
TOPIC_POSITION_FIX: Final = "/nav/position_fix"
#: each fix of /nav/position_fix again as a standard NavSatFix, for tools that read no
#: message of ours: a map panel (Foxglove plots NavSatFix), robot_localization's
#: navsat_transform, a GNSS-denied logger
TOPIC_NAV_NAVSAT: Final = "/nav/navsat"
TOPIC_TILE_SNAPSHOTS: Final = "/tile_cache/snapshots"
TOPIC_FC_STATUS: Final = "/fc/status"
TOPIC_FC_NAVSAT: Final = "/fc/navsat"
TOPIC_FC_IMU: Final = "/fc/imu"
TOPIC_FC_ALTITUDE: Final = "/fc/altitude"
TOPIC_FC_RANGEFINDER: Final = "/fc/rangefinder"
#: the FC's GNSS velocity over ground (TwistWithCovarianceStamped, ENU m/s, from
#: GPS_RAW_INT's speed and course): the metric motion visual_nav calibrates its
#: height scale and heading against while the GNSS is healthy
TOPIC_FC_GNSS_VELOCITY: Final = "/fc/gnss_velocity"
#: the autopilot's home (NavSatFix, latched): the ground a barometric height is above
TOPIC_FC_HOME: Final = "/fc/home"
#: the autopilot's EKF position (NavSatFix; a fix only while it holds an absolute one)
TOPIC_FC_EKF_POSITION: Final = "/fc/ekf_position"
#: the newest estimator fix the bridge took for the autopilot (PositionFix, latched): a
#: visual_nav restarted in flight resumes its track from it
TOPIC_FC_SENT_FIX: Final = "/fc/sent_fix"
TOPIC_DIAGNOSTICS: Final = "/diagnostics"

#: Records and alerts must not be dropped silently: reliable, deep queue.
RECORD_QOS: Final = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1000,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
#: Latched state (is_active and the like): late joiners get the last value.
LATCHED_QOS: Final = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

NS_PER_S: Final = 1_000_000_000


def ns_to_time_msg(ns: int) -> TimeMsg:
    sec, nanosec = divmod(int(ns), NS_PER_S)
    return TimeMsg(sec=sec, nanosec=nanosec)


def time_msg_to_ns(msg: TimeMsg) -> int:
    return int(msg.sec) * NS_PER_S + int(msg.nanosec)
