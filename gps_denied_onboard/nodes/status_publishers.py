"""What the operator sees of a node: ``/diagnostics`` statuses and the GCS alerts
the FC bridge forwards as STATUSTEXT."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from gps_denied_onboard.msg import GcsAlert
from gps_denied_onboard.ros_topics import RECORD_QOS, TOPIC_DIAGNOSTICS, TOPIC_GCS_ALERTS


class GcsAlertPublisher:
    """Publishes ``GcsAlert`` for the FC bridge to forward as STATUSTEXT."""

    def __init__(self, node: Node, topic: str = TOPIC_GCS_ALERTS) -> None:
        self._node = node
        self._pub = node.create_publisher(GcsAlert, topic, RECORD_QOS)

    def publish(self, severity: int, source: str, text: str) -> None:
        msg = GcsAlert(
            stamp=self._node.get_clock().now().to_msg(),
            severity=int(severity),
            source=source,
            text=text,
        )
        self._pub.publish(msg)


class DiagnosticsPublisher:
    """One ``DiagnosticStatus`` per call on ``/diagnostics``; values become strings."""

    OK: Final = 0
    WARN: Final = 1
    ERROR: Final = 2
    STALE: Final = 3

    def __init__(self, node: Node, name: str, hardware_id: str = "") -> None:
        self._node = node
        self._name = name
        self.hardware_id = hardware_id
        self._pub = node.create_publisher(DiagnosticArray, TOPIC_DIAGNOSTICS, 10)

    def publish(self, level: int, message: str, values: Mapping[str, object]) -> None:
        status = DiagnosticStatus(
            level=bytes([int(level)]),
            name=self._name,
            message=message,
            hardware_id=self.hardware_id,
            values=[KeyValue(key=str(k), value=str(v)) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._pub.publish(array)
