"""The recorder node's raw topics: configuration, rosbag2 definitions, QoS matching.

Split out of :mod:`gps_denied_onboard.nodes.fdr_recorder_node` (the adapter):

* ``record_topics`` entries (``"topic:pkg/msg/Type"``) -> message classes and the
  rosbag2-style message definition stored in each MCAP ``ros2msg`` schema;
* the policy's refusals (camera frames are never recorded);
* the QoS a raw subscription asks for. rosbag2's rule, applied *before* the first
  sample: a topic named in ``raw_qos_overrides`` gets that reliability from the start
  (rosbag2's ``--qos-profile-overrides-path``); otherwise the publishers already
  discovered decide (reliable only when every one offers reliable, as rosbag2 does
  with ``get_publishers_info_by_topic`` when it subscribes); with no publisher known
  yet, reliable, re-checked when a publisher appears (:class:`RawSubscriptions`).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from gps_denied_onboard.errors import ConfigError, RecordSchemaError
from gps_denied_onboard.fdr.policy import RecordKindPolicy
from gps_denied_onboard.log import log_event

_RULE: Final = "=" * 80
#: ``raw_qos_overrides`` values.
RELIABILITY_NAMES: Final = {
    "reliable": ReliabilityPolicy.RELIABLE,
    "best_effort": ReliabilityPolicy.BEST_EFFORT,
}


def parse_topic_entry(entry: str) -> tuple[str, str]:
    """``"/fc/status:gps_denied_onboard/msg/FcStatus"`` -> (topic, type).

    Raises:
        ConfigError: not ``topic:pkg/msg/Type``.
    """
    topic, sep, type_name = entry.strip().rpartition(":")
    parts = type_name.split("/")
    if not sep or not topic.startswith("/") or len(parts) != 3 or parts[1] != "msg":
        raise ConfigError(
            f"record_topics entry {entry!r} is not 'topic:pkg/msg/Type'", key="record_topics"
        )
    return topic, type_name


def message_class(type_name: str) -> Any:
    """The Python class of a ROS message type (``pkg/msg/Type``).

    Raises:
        ConfigError: the package or type is not installed.
    """
    pkg, _, name = type_name.split("/")
    try:
        return getattr(importlib.import_module(f"{pkg}.msg"), name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(
            f"message type {type_name} is not installed: {err}", key="record_topics"
        ) from err


_PRIMITIVES: Final = frozenset(
    {
        "bool",
        "byte",
        "char",
        "float32",
        "float64",
        "int8",
        "uint8",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "string",
        "wstring",
    }
)


def _share_dirs() -> list[Path]:
    dirs = []
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            dirs.append(Path(prefix) / "share")
    return dirs


def _msg_file(pkg: str, name: str, share_dirs: Iterable[Path]) -> Path:
    for share in share_dirs:
        candidate = share / pkg / "msg" / f"{name}.msg"
        if candidate.is_file():
            return candidate
    raise ConfigError(f"no {pkg}/msg/{name}.msg under AMENT_PREFIX_PATH", key="record_topics")


def _field_types(text: str, pkg: str) -> list[str]:
    """Complex field types (``pkg/Type``) a .msg definition refers to, in order."""
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) < 2 or "=" in parts[1] or (len(parts) > 2 and parts[2].startswith("=")):
            continue  # constants: "uint8 FOO=1"
        base = parts[0].split("[", 1)[0].split("<=", 1)[0]
        if base in _PRIMITIVES:
            continue
        if "/" not in base:
            base = "std_msgs/Header" if base == "Header" else f"{pkg}/{base}"
        if base.count("/") == 2:  # pkg/msg/Type
            p, _, n = base.split("/")
            base = f"{p}/{n}"
        out.append(base)
    return out


def rosbag2_msgdef(type_name: str, share_dirs: Iterable[Path] | None = None) -> str:
    """The full message definition as rosbag2 stores it in an MCAP ``ros2msg`` schema.

    The main ``.msg`` text, then for each type it depends on (depth first, each
    once) a line of 80 ``=``, ``MSG: pkg/Type`` and that type's ``.msg`` text.
    The ``.msg`` files are those rosidl installs under ``share/<pkg>/msg/``.

    Raises:
        ConfigError: a type's ``.msg`` file cannot be found.
    """
    dirs = list(share_dirs) if share_dirs is not None else _share_dirs()
    pkg, _, name = type_name.split("/")
    main = _msg_file(pkg, name, dirs).read_text()
    parts = [main.rstrip("\n")]
    seen: set[str] = set()

    def visit(text: str, owner_pkg: str) -> None:
        for dep in _field_types(text, owner_pkg):
            if dep in seen:
                continue
            seen.add(dep)
            dpkg, dname = dep.split("/")
            dep_text = _msg_file(dpkg, dname, dirs).read_text()
            parts.append(f"{_RULE}\nMSG: {dep}\n{dep_text.rstrip(chr(10))}")
            visit(dep_text, dpkg)

    visit(main, pkg)
    return "\n".join(parts) + "\n"


def qos_yaml(qos: QoSProfile) -> str:
    """``offered_qos_profiles`` text (rosbag2 metadata v9 style) for one profile."""
    return (
        f"- history: {qos.history.name.lower()}\n"
        f"  depth: {qos.depth}\n"
        f"  reliability: {qos.reliability.name.lower()}\n"
        f"  durability: {qos.durability.name.lower()}\n"
        "  deadline:\n    sec: 0\n    nsec: 0\n"
        "  lifespan:\n    sec: 0\n    nsec: 0\n"
        "  liveliness: automatic\n"
        "  liveliness_lease_duration:\n    sec: 0\n    nsec: 0\n"
        "  avoid_ros_namespace_conventions: false\n"
    )


@dataclass(frozen=True)
class RawTopic:
    topic: str
    type_name: str
    msg_class: Any
    msgdef: str


@dataclass(frozen=True)
class RefusedTopic:
    topic: str
    type_name: str
    reason: str


def plan_raw_topics(
    entries: Iterable[str],
    *,
    resolve_class: Callable[[str], Any] = message_class,
    resolve_msgdef: Callable[[str], str] = rosbag2_msgdef,
) -> tuple[list[RawTopic], list[RefusedTopic]]:
    """Split the configured topics into those to record and those the policy refuses.

    Raises:
        ConfigError: a malformed entry, a duplicate topic, or a type that is not installed.
    """
    record: list[RawTopic] = []
    refused: list[RefusedTopic] = []
    seen: set[str] = set()
    for entry in entries:
        topic, type_name = parse_topic_entry(entry)
        if topic in seen:
            raise ConfigError(
                f"topic {topic} is listed twice in record_topics", key="record_topics"
            )
        seen.add(topic)
        try:
            RecordKindPolicy.enforce_raw_topic_or_raise(topic, type_name)
        except RecordSchemaError as err:
            refused.append(RefusedTopic(topic, type_name, str(err)))
            continue
        record.append(
            RawTopic(topic, type_name, resolve_class(type_name), resolve_msgdef(type_name))
        )
    return record, refused


# --- QoS matching -----------------------------------------------------------------------


def parse_qos_override(entry: str) -> tuple[str, ReliabilityPolicy]:
    """``"/fc/navsat:best_effort"`` -> (topic, reliability).

    Raises:
        ConfigError: not ``topic:reliable`` or ``topic:best_effort``.
    """
    topic, sep, name = entry.strip().rpartition(":")
    policy = RELIABILITY_NAMES.get(name)
    if not sep or not topic.startswith("/") or policy is None:
        raise ConfigError(
            f"raw_qos_overrides entry {entry!r} is not 'topic:reliable' or 'topic:best_effort'",
            key="raw_qos_overrides",
        )
    return topic, policy


def parse_qos_overrides(entries: Iterable[str]) -> dict[str, ReliabilityPolicy]:
    """All ``raw_qos_overrides`` entries; a topic listed twice is a ConfigError."""
    out: dict[str, ReliabilityPolicy] = {}
    for entry in entries:
        topic, policy = parse_qos_override(entry)
        if topic in out:
            raise ConfigError(
                f"topic {topic} is listed twice in raw_qos_overrides", key="raw_qos_overrides"
            )
        out[topic] = policy
    return out


def publishers_reliability(publisher_infos: Sequence[Any]) -> ReliabilityPolicy | None:
    """rosbag2's rule over the publishers discovered so far; ``None`` when there are none.

    Reliable only if every publisher offers reliable: a reliable subscription never
    matches a best-effort publisher (sensor data such as ``/fc/navsat``), and a
    best-effort subscription to reliable publishers would drop silently under load.
    """
    if not publisher_infos:
        return None
    if any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in publisher_infos):
        return ReliabilityPolicy.BEST_EFFORT
    return ReliabilityPolicy.RELIABLE


def wanted_reliability(
    topic: str,
    overrides: Mapping[str, ReliabilityPolicy],
    publisher_infos: Sequence[Any],
) -> tuple[ReliabilityPolicy, str]:
    """The reliability to subscribe ``topic`` with, and why (``override``,
    ``publishers`` or ``no_publisher_yet``)."""
    override = overrides.get(topic)
    if override is not None:
        return override, "override"
    found = publishers_reliability(publisher_infos)
    if found is not None:
        return found, "publishers"
    return ReliabilityPolicy.RELIABLE, "no_publisher_yet"


def reliability_name(policy: ReliabilityPolicy) -> str:
    return "best_effort" if policy == ReliabilityPolicy.BEST_EFFORT else "reliable"


def subscription_event_callbacks(incompatible_qos: Callable[[Any], None]) -> Any:
    """``SubscriptionEventCallbacks(incompatible_qos=...)`` on Jazzy and Humble alike.

    The class lives in ``rclpy.event_handler`` since Iron and in ``rclpy.qos_event``
    on Humble (Jazzy keeps a deprecated alias there that warns on import). Giving our
    own handler replaces rclpy's default one, which logs a WARN.
    """
    try:
        module = importlib.import_module("rclpy.event_handler")
    except ImportError:  # Humble
        module = importlib.import_module("rclpy.qos_event")
    return module.SubscriptionEventCallbacks(incompatible_qos=incompatible_qos)


#: a raw subscription's identity: topic, message type, reliability, depth
RawKey = tuple[str, str, ReliabilityPolicy, int]


class RawSubscriptions:
    """A node's raw-topic subscriptions, following their publishers' reliability.

    :meth:`start` (at activation) records each raw topic through a subscription with
    :func:`wanted_reliability`; :meth:`adapt` (on the node's 1 s timer, and within
    ``recheck_s`` of an incompatible-QoS event) moves a topic whose publishers now
    want the other reliability to a subscription with that one. A topic with an
    override keeps it; with no publisher left the subscription is kept as it is.
    :meth:`stop` (at deactivation) stops recording.

    Nothing is ever destroyed before the node is: destroying a subscription while
    another executor thread builds its wait set from the node's entities makes rclpy
    raise ``InvalidHandle`` out of ``spin_once`` (rclpy#1284, #1206; it stopped
    fc_bridge). Each (topic, type, reliability, depth) has one subscription, made
    the first time it is wanted and kept; only a topic's current one records, the
    others' samples (and every sample while stopped) are taken and dropped. So a
    topic has at most two per depth (reliable, best effort); the one left behind by
    :meth:`adapt` still takes what its matched publishers send (a reliable one: the
    reliable publishers' samples, also taken by the best-effort one that records).
    The re-check timer is made once, cancelled inside its own callback (after the
    executor took it, so not rclpy#1485's cancel-while-picked) and reset by the
    next event.

    Args:
        node: the node the subscriptions and the re-check timer belong to.
        callback: the recording callback for a topic, given the QoS as YAML (what
            the MCAP channel records); asked again at each :meth:`start` (the node's
            recorder may be a new one).
        group / timer_group: callback groups of the subscriptions and the re-check.
        log: structured log (``fdr.raw_subscribed``, ``fdr.raw_qos_adapted``,
            ``fdr.raw_qos_incompatible_publisher``).
        message_info: ``(data, info)`` callbacks (Iron and later); ``(data)`` on Humble.
    """

    def __init__(
        self,
        node: Any,
        callback: Callable[[RawTopic, str], Callable[..., None]],
        *,
        group: Any,
        timer_group: Any,
        log: logging.Logger,
        recheck_s: float = 0.05,
        message_info: bool = True,
    ) -> None:
        self._node = node
        self._callback = callback
        self._group = group
        self._timer_group = timer_group
        self._log = log
        self._recheck_s = recheck_s
        self._message_info = message_info
        self._raw: tuple[RawTopic, ...] = ()
        self._depth = 1000
        self._overrides: dict[str, ReliabilityPolicy] = {}
        self._made: dict[RawKey, Any] = {}  # every subscription made, never destroyed
        self._current: dict[str, RawKey] = {}  # topic -> the one it records through
        # key -> recording callback; only current keys, only while started. Changed in
        # place: each subscription's dispatcher holds this dict.
        self._handlers: dict[RawKey, Callable[..., None]] = {}
        self._recheck: Any = None
        self._started = False

    def start(
        self, raw: Sequence[RawTopic], depth: int, overrides: Mapping[str, ReliabilityPolicy]
    ) -> None:
        self._raw, self._depth, self._overrides = tuple(raw), depth, dict(overrides)
        self._handlers.clear()
        self._current = {}
        self._started = True
        for r in self._raw:
            reliability, why = self._wanted(r.topic)
            self._subscribe(r, reliability)
            log_event(
                self._log,
                logging.DEBUG,
                "fdr.raw_subscribed",
                topic=r.topic,
                reliability=reliability_name(reliability),
                why=why,
            )

    def _wanted(self, topic: str) -> tuple[ReliabilityPolicy, str]:
        return wanted_reliability(
            topic, self._overrides, self._node.get_publishers_info_by_topic(topic)
        )

    def subscriptions(self) -> list[Any]:
        """The subscriptions recording now (one per raw topic; none while stopped)."""
        return [self._made[key] for key in self._current.values()]

    def made(self) -> list[Any]:
        """Every raw subscription made so far (they live as long as the node)."""
        return list(self._made.values())

    def stop(self) -> None:
        """Stop recording: the subscriptions stay, their samples dropped."""
        self._started = False
        self._handlers.clear()
        self._current = {}

    def _subscribe(self, raw: RawTopic, reliability: ReliabilityPolicy) -> None:
        """Record ``raw`` through its subscription with ``reliability``, made if new."""
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=self._depth,
            reliability=reliability,
            durability=DurabilityPolicy.VOLATILE,
        )
        key: RawKey = (raw.topic, raw.type_name, reliability, self._depth)
        old = self._current.get(raw.topic)
        if old is not None:
            self._handlers.pop(old, None)
        self._handlers[key] = self._callback(raw, qos_yaml(qos))
        self._current[raw.topic] = key
        if key in self._made:
            return
        self._made[key] = self._node.create_subscription(
            raw.msg_class,
            raw.topic,
            self._dispatcher(key),
            qos,
            callback_group=self._group,
            event_callbacks=subscription_event_callbacks(self._incompatible_handler(raw.topic)),
            raw=True,
        )

    def _dispatcher(self, key: RawKey) -> Callable[..., None]:
        """A subscription's callback: the key's recording callback, if it has one now.

        Its arity is what rclpy looks at to pass the message info or not.
        """
        handlers = self._handlers

        def on_sample(data: bytes, info: Mapping[str, Any]) -> None:
            handler = handlers.get(key)
            if handler is not None:
                handler(data, info)

        def on_sample_humble(data: bytes) -> None:
            handler = handlers.get(key)
            if handler is not None:
                handler(data)

        return on_sample if self._message_info else on_sample_humble

    def _incompatible_handler(self, topic: str) -> Callable[[Any], None]:
        def on_event(_event: Any) -> None:
            self._on_incompatible(topic)

        return on_event

    def _on_incompatible(self, topic: str) -> None:
        """A publisher our subscription cannot match appeared: re-check at once.

        Replaces rclpy's default handler (a WARN): following the publishers is the
        recorder's job, not an operator's problem. The switch happens on the
        re-check timer's pass, not inside the event.
        """
        log_event(self._log, logging.INFO, "fdr.raw_qos_incompatible_publisher", topic=topic)
        if not self._started:
            return
        if self._recheck is None:
            self._recheck = self._node.create_timer(
                self._recheck_s, self._on_recheck, callback_group=self._timer_group
            )
        elif self._recheck.is_canceled():
            self._recheck.reset()

    def _on_recheck(self) -> None:
        """The one-shot re-check after an event (cancelled here, reset by the next)."""
        self._recheck.cancel()
        self.adapt()

    def adapt(self) -> None:
        """Follow the publishers' reliability as they come and go."""
        if not self._started:
            return
        for raw in self._raw:
            current = self._current.get(raw.topic)
            if current is None or raw.topic in self._overrides:
                continue
            wanted, why = self._wanted(raw.topic)
            if why == "publishers" and current[2] != wanted:
                self._subscribe(raw, wanted)
                log_event(
                    self._log,
                    logging.INFO,
                    "fdr.raw_qos_adapted",
                    topic=raw.topic,
                    reliability=reliability_name(wanted),
                )
