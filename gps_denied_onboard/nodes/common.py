"""Former home of what the nodes share, now split by concern; its names are
handed on here until every importer imports them from their modules:

- :mod:`gps_denied_onboard.ros_topics`: topic names, QoS, stamps <-> ns
- :mod:`.ros_clock`: ``RosClock``, ``DataTimeClock``
- :mod:`.record_sink`: ``RecordPublisherSink``, ``close_record_sinks``, record <-> msg
- :mod:`.status_publishers`: ``DiagnosticsPublisher``, ``GcsAlertPublisher``
- :mod:`.service_calls`: ``call_service``
- :mod:`.params`: ``declare_config``, ``read_config``
- :mod:`.ros_logging`: ``bridge_logging``
- :mod:`.runner`: ``run_node``
- :mod:`.bringup`: ``share_dir``; :mod:`gps_denied_onboard.stop_signals`: ``relay_stop_signals``
"""

from __future__ import annotations

from gps_denied_onboard.nodes.bringup import share_dir
from gps_denied_onboard.nodes.params import declare_config, read_config
from gps_denied_onboard.nodes.record_sink import (
    RECORDS_CLOSE_TIMEOUT_S,
    RecordPublisherSink,
    close_record_sinks,
    msg_to_record,
    record_to_msg,
)
from gps_denied_onboard.nodes.ros_clock import DataTimeClock, RosClock
from gps_denied_onboard.nodes.ros_logging import bridge_logging
from gps_denied_onboard.nodes.runner import (
    LANDED_LINGER_S,
    MANAGED_SHUTDOWN_GRACE_S,
    SIGINT_DUPLICATE_WINDOW_S,
    SPIN_ERRORS_IN_A_ROW_MAX,
    run_node,
)
from gps_denied_onboard.nodes.service_calls import RESEND_S, call_service
from gps_denied_onboard.nodes.status_publishers import DiagnosticsPublisher, GcsAlertPublisher
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
from gps_denied_onboard.stop_signals import relay_stop_signals

__all__ = [
    "LANDED_LINGER_S",
    "LATCHED_QOS",
    "MANAGED_SHUTDOWN_GRACE_S",
    "NS_PER_S",
    "RECORDS_CLOSE_TIMEOUT_S",
    "RECORD_QOS",
    "RESEND_S",
    "SIGINT_DUPLICATE_WINDOW_S",
    "SPIN_ERRORS_IN_A_ROW_MAX",
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
    "DataTimeClock",
    "DiagnosticsPublisher",
    "GcsAlertPublisher",
    "RecordPublisherSink",
    "RosClock",
    "bridge_logging",
    "call_service",
    "close_record_sinks",
    "declare_config",
    "msg_to_record",
    "ns_to_time_msg",
    "read_config",
    "record_to_msg",
    "relay_stop_signals",
    "run_node",
    "share_dir",
    "time_msg_to_ns",
]
