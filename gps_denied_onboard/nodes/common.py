"""Former home of what the nodes share, now split by concern. Only the ROS
graph's names are still handed on here, for ``bench/fdr_node_path.py``; import
them from :mod:`gps_denied_onboard.ros_topics`.

Where the rest went: :mod:`.ros_clock` (``RosClock``, ``DataTimeClock``),
:mod:`.record_sink` (``RecordPublisherSink``, ``close_record_sinks``, record <->
message), :mod:`.status_publishers` (``DiagnosticsPublisher``,
``GcsAlertPublisher``), :mod:`.service_calls` (``call_service``), :mod:`.params`
(``declare_config``, ``read_config``), :mod:`.ros_logging` (``bridge_logging``),
:mod:`.runner` (``run_node``), :mod:`.bringup` (``share_dir``) and
:mod:`gps_denied_onboard.stop_signals` (``relay_stop_signals``).
"""

from __future__ import annotations

from gps_denied_onboard.ros_topics import (
    LATCHED_QOS,
    NS_PER_S,
    RECORD_QOS,
    TOPIC_DIAGNOSTICS,
    TOPIC_FC_ALTITUDE,
    TOPIC_FC_IMU,
    TOPIC_FC_NAVSAT,
    TOPIC_FC_RANGEFINDER,
    TOPIC_FC_STATUS,
    TOPIC_FDR_RECORDS,
    TOPIC_GCS_ALERTS,
    TOPIC_POSITION_FIX,
    TOPIC_TILE_SNAPSHOTS,
    ns_to_time_msg,
    time_msg_to_ns,
)

__all__ = [
    "LATCHED_QOS",
    "NS_PER_S",
    "RECORD_QOS",
    "TOPIC_DIAGNOSTICS",
    "TOPIC_FC_ALTITUDE",
    "TOPIC_FC_IMU",
    "TOPIC_FC_NAVSAT",
    "TOPIC_FC_RANGEFINDER",
    "TOPIC_FC_STATUS",
    "TOPIC_FDR_RECORDS",
    "TOPIC_GCS_ALERTS",
    "TOPIC_POSITION_FIX",
    "TOPIC_TILE_SNAPSHOTS",
    "ns_to_time_msg",
    "time_msg_to_ns",
]
