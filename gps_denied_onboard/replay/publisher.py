"""The thin rclpy adapter of the replay tool.

:class:`RosReplaySink` publishes the recorded CDR bytes as they are
(``Publisher.publish(bytes)`` -> ``publish_raw``: no deserialise /
re-serialise) on publishers made with the recorded type and QoS, and
publishes ``/clock`` (``rosgraph_msgs/msg/Clock``). :class:`ReplayNode` adds
the control services:

* ``~/pause`` (``std_srvs/srv/SetBool``): ``data=true`` pauses, ``false`` resumes;
* ``~/toggle_pause`` (``std_srvs/srv/Trigger``);
* ``~/play_next`` (``std_srvs/srv/Trigger``): while paused, publish the next
  message (and the ``/clock`` ticks before it).

The replay node itself runs on the host clock (never ``use_sim_time``): it is
the source of sim time.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from gps_denied_onboard.replay.bag import BagTopic, QosSpec
from gps_denied_onboard.replay.errors import UnknownMessageTypeError
from gps_denied_onboard.replay.options import ReplayOptions

#: ``/clock`` QoS: reliable so every tick reaches reliable readers; a
#: best-effort reader (rclpy's TimeSource) still matches it.
CLOCK_QOS = QosSpec(reliability="reliable", durability="volatile", depth=100)


def import_message_class(msgtype: str) -> Any:
    """``pkg/msg/Type`` (or ``pkg/Type``) -> the generated Python class.

    Raises:
        UnknownMessageTypeError: the package or class cannot be imported.
    """
    parts = msgtype.split("/")
    if len(parts) == 3:
        pkg, kind, name = parts
    elif len(parts) == 2:
        pkg, name = parts
        kind = "msg"
    else:
        raise UnknownMessageTypeError(f"not a ROS type name: {msgtype!r}", msgtype=msgtype)
    try:
        module = importlib.import_module(f"{pkg}.{kind}")
        return getattr(module, name)
    except (ImportError, AttributeError) as err:
        raise UnknownMessageTypeError(
            f"cannot import {msgtype} ({err}); is its package built and sourced?",
            msgtype=msgtype,
        ) from err


def to_rclpy_qos(spec: QosSpec) -> Any:
    """A :class:`QosSpec` as an ``rclpy.qos.QoSProfile`` (KEEP_LAST)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=spec.depth,
        reliability=(ReliabilityPolicy.RELIABLE if spec.reliability == "reliable"
                     else ReliabilityPolicy.BEST_EFFORT),
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if spec.durability == "transient_local"
                    else DurabilityPolicy.VOLATILE),
    )


class RosReplaySink:
    """Publishers for a bag's topics plus ``/clock``; a :class:`~.player.ReplaySink`.

    Args:
        node: the rclpy node to create publishers on.
        topics: the bag's playable topics (recorded names).
        options: for selection and remapping.

    Attributes:
        skipped: notes for topics whose type could not be imported.
    """

    def __init__(self, node: Any, topics: dict[str, BagTopic], options: ReplayOptions) -> None:
        from rosgraph_msgs.msg import Clock as ClockMsg

        self._node = node
        self._clock_cls = ClockMsg
        self._pubs: dict[str, Any] = {}
        self.skipped: list[str] = []
        for name, topic in topics.items():
            if not options.selects(name):
                continue
            try:
                cls = import_message_class(topic.msgtype)
            except UnknownMessageTypeError as err:
                self.skipped.append(f"{name}: not replayed, {err}")
                continue
            out = options.published_name(name)
            self._pubs[out] = node.create_publisher(cls, out, to_rclpy_qos(topic.qos))
        self._clock_pub = (node.create_publisher(ClockMsg, "/clock", to_rclpy_qos(CLOCK_QOS))
                           if options.clock else None)

    @property
    def published_topics(self) -> list[str]:
        return sorted(self._pubs)

    def publish(self, topic: str, data: bytes) -> None:
        pub = self._pubs.get(topic)
        if pub is not None:
            pub.publish(data)

    def publish_clock(self, sim_ns: int) -> None:
        if self._clock_pub is None:
            return
        msg = self._clock_cls()
        msg.clock.sec, msg.clock.nanosec = divmod(sim_ns, 1_000_000_000)
        self._clock_pub.publish(msg)

    def subscriber_counts(self) -> dict[str, int]:
        return {name: pub.get_subscription_count() for name, pub in self._pubs.items()}

    def wait_for_acks(self, timeout_s: float) -> bool:
        """Wait until reliable readers acknowledged everything (end of replay)."""
        from rclpy.duration import Duration

        ok = True
        for pub in [*self._pubs.values(), *([self._clock_pub] if self._clock_pub else [])]:
            ok = pub.wait_for_all_acked(Duration(nanoseconds=int(timeout_s * 1e9))) and ok
        return ok

    def destroy(self) -> None:
        for pub in self._pubs.values():
            self._node.destroy_publisher(pub)
        if self._clock_pub is not None:
            self._node.destroy_publisher(self._clock_pub)
        self._pubs.clear()
        self._clock_pub = None


class ReplayControlServices:
    """``~/pause``, ``~/toggle_pause`` and ``~/play_next`` on ``node``, driving a player.

    The player is attached later (:meth:`attach`) so the services exist from
    the start; calls before that are answered with ``success=False``.
    """

    def __init__(self, node: Any) -> None:
        from std_srvs.srv import SetBool, Trigger

        self._player: Any = None
        self._lock = threading.Lock()
        self._srvs = [
            node.create_service(SetBool, "~/pause", self._on_pause),
            node.create_service(Trigger, "~/toggle_pause", self._on_toggle),
            node.create_service(Trigger, "~/play_next", self._on_next),
        ]

    def attach(self, player: Any) -> None:
        with self._lock:
            self._player = player

    def _get(self) -> Any:
        with self._lock:
            return self._player

    def _on_pause(self, request: Any, response: Any) -> Any:
        player = self._get()
        if player is None:
            response.success, response.message = False, "no replay running"
            return response
        if request.data:
            player.pause()
        else:
            player.resume()
        response.success = True
        response.message = "paused" if player.paused else "playing"
        return response

    def _on_toggle(self, _request: Any, response: Any) -> Any:
        player = self._get()
        if player is None:
            response.success, response.message = False, "no replay running"
            return response
        response.success = True
        response.message = "paused" if player.toggle_pause() else "playing"
        return response

    def _on_next(self, _request: Any, response: Any) -> Any:
        player = self._get()
        if player is None or not player.paused:
            response.success = False
            response.message = "play_next works while paused"
            return response
        player.request_step()
        response.success, response.message = True, "stepped"
        return response
