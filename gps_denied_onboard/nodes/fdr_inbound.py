"""The recorder node's inbound: ``/fdr/records`` and the raw topics' messages into the core.

Split out of :mod:`gps_denied_onboard.nodes.fdr_recorder_node` (the adapter):

* whether this rclpy hands subscription callbacks the message info
  (:data:`MESSAGE_INFO_CALLBACKS`; Humble does not);
* the ``/fdr/records`` subscription's KEEP_ALL QoS (:func:`records_qos`) and what its
  callback does (:class:`RecordsDrain`): it drains what DDS holds into
  :class:`~gps_denied_onboard.fdr.intake.RecordIntake`, which routes the records and
  counts what DDS lost;
* each raw topic's callback (:func:`raw_callback`): stamped with the node's clock,
  counted, written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.fdr.intake import RecordIntake
from gps_denied_onboard.fdr.writer import FlightRecorder
from gps_denied_onboard.msg import FdrRecord
from gps_denied_onboard.nodes.fdr_raw_topics import RawTopic
from gps_denied_onboard.nodes.record_sink import msg_to_record

#: Most ``/fdr/records`` samples one callback takes from DDS before yielding.
_DRAIN_MAX: Final = 1000

__all__ = ["MESSAGE_INFO_CALLBACKS", "RecordsDrain", "raw_callback", "records_qos"]


def _message_info_callbacks() -> bool:
    """Whether this rclpy passes ``(msg, info)`` to two-argument subscription callbacks.

    rclpy added message-info callbacks after Humble's API freeze (ros2/rclpy#922, in
    Iron): ``Subscription.CallbackType`` exists from then on. Humble calls every
    callback with the message alone, so there the recorder subscribes one-argument
    callbacks, stamps raw messages with its own clock (as it does anyway) and cannot
    count DDS loss from publication sequence numbers.
    """
    from rclpy.subscription import Subscription

    return hasattr(Subscription, "CallbackType")


#: Detected once at import; a node can be told otherwise (``message_info=False``).
MESSAGE_INFO_CALLBACKS: Final = _message_info_callbacks()


def _dropped(msg: Any, info: Mapping[str, Any] | None) -> None:
    """A record that came while the recorder was not active."""


def records_qos(depth: int) -> QoSProfile:
    """The ``/fdr/records`` subscription's QoS: reliable, volatile, KEEP_ALL.

    KEEP_ALL: the reader never overwrites a sample it holds. With KEEP_LAST the
    queue is shared by every publisher, so one publisher's newer samples could
    replace another's last ones: a tail no later number reveals. KEEP_ALL makes
    a full reader stop acknowledging instead; the loss, if any, then happens in
    the publisher's own history and shows as a gap in its numbers. (The depth
    is kept in the profile for RMWs that size KEEP_ALL resources from it.)
    """
    return QoSProfile(
        history=HistoryPolicy.KEEP_ALL,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


class RecordsDrain:
    """What the ``/fdr/records`` callback does: records into ``intake``, DDS drained."""

    def __init__(self, intake: RecordIntake, *, message_info: bool) -> None:
        self._intake = intake
        self._message_info = message_info

    def drain(
        self, subscription: Any, msg: Any, info: Mapping[str, Any] | None, *, active: bool
    ) -> None:
        """This record, then whatever else DDS holds for ``subscription``.

        rclpy's executor hands over one message per wait-set cycle, a few tens of
        microseconds of Python per message before the callback runs: on a loaded
        two-core machine that capped the node at ~2k records/s while three
        publishers offered more, and the rest was lost in DDS. So the callback
        takes the queued samples itself (``take_message`` on the subscription's
        handle, what the executor calls) up to ``_DRAIN_MAX`` at a time, and only
        then gives the executor back to timers and services.
        """
        # inactive: taken and dropped, as if nobody were subscribed (a reader that
        # stopped taking would hold its publishers back)
        (self._on_record if active else _dropped)(msg, info)
        self.take_queued(subscription, active=active)

    def take_queued(self, subscription: Any, *, active: bool, limit: int = _DRAIN_MAX) -> int:
        """Take up to ``limit`` samples DDS holds for ``subscription`` into the intake
        (dropped unless ``active``); returns how many. The flight's close calls it too,
        so that records already delivered to the reader precede the footer."""
        on_record = self._on_record if active else _dropped
        handle = subscription.handle
        take = getattr(handle, "take_message", None)
        if take is None:  # an rclpy without it: one sample per executor cycle
            return 0
        with_info = self._message_info
        taken = 0
        with handle:
            while taken < limit:
                got = take(FdrRecord, False)
                if got is None:
                    break
                on_record(got[0], got[1] if with_info else None)
                taken += 1
        return taken

    def _on_record(self, msg: Any, info: Mapping[str, Any] | None) -> None:
        try:
            record = msg_to_record(msg)
        except ValueError as err:
            self._intake.reject(msg.producer, msg.kind, f"bad payload_json: {err}")
            return
        if info is None:  # Humble: no sequence numbers, the closing record tells
            self._intake.take(record, None, numbered=False)
        else:
            self._intake.take(record, info.get("publication_sequence_number"))


def raw_callback(
    recorder: FlightRecorder,
    clock: Clock,
    intake: RecordIntake,
    raw: RawTopic,
    qos_text: str,
    *,
    message_info: bool,
) -> Callable[..., None]:
    """A raw topic's subscription callback: ``(data, info)``, or ``(data)`` on Humble.

    Raw messages are stamped with ``clock`` at reception either way; the message info
    only adds the publication sequence number (DDS-loss accounting).
    """
    write = recorder.write_raw
    topic, type_name, msgdef = raw.topic, raw.type_name, raw.msgdef
    seen = intake.raw_seen

    def on_raw(data: bytes, info: Mapping[str, Any]) -> None:
        now = clock.now_ns()
        seen(topic, info.get("publication_sequence_number"), now)
        write(topic, type_name, msgdef, data, now, qos_profiles=qos_text)

    def on_raw_humble(data: bytes) -> None:
        write(topic, type_name, msgdef, data, clock.now_ns(), qos_profiles=qos_text)

    return on_raw if message_info else on_raw_humble
