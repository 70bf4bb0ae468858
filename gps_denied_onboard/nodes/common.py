"""What every node shares: the ROS clock as a core ``Clock``, the record
publisher sink, alerts, diagnostics, parameters <-> config dataclasses, the
log bridge and a ``main`` runner.

Only rclpy APIs present in both Humble and Jazzy are used here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

import rclpy
from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.exceptions import InvalidHandle  # Humble and Jazzy alike (rclpy._rclpy_pybind11's)
from rclpy.executors import Executor, ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from gps_denied_onboard.config import build_config, config_defaults
from gps_denied_onboard.msg import FdrRecord, GcsAlert
from gps_denied_onboard.nodes.lifecycle_guard import refuse_invalid_transitions
from gps_denied_onboard.records import RECORDS_CLOSED_KIND, FlightRecord
from gps_denied_onboard.stop_signals import EXIT_INTERRUPTED, ignore_from_now, install_early
from gps_denied_onboard.stop_signals import relay_stop_signals as _relay_stop_signals

T = TypeVar("T")

TOPIC_FDR_RECORDS: Final = "/fdr/records"
TOPIC_GCS_ALERTS: Final = "/gcs/alerts"
TOPIC_POSITION_FIX: Final = "/nav/position_fix"
TOPIC_TILE_SNAPSHOTS: Final = "/tile_cache/snapshots"
TOPIC_FC_STATUS: Final = "/fc/status"
TOPIC_FC_NAVSAT: Final = "/fc/navsat"
TOPIC_FC_IMU: Final = "/fc/imu"
TOPIC_FC_ALTITUDE: Final = "/fc/altitude"
TOPIC_FC_RANGEFINDER: Final = "/fc/rangefinder"
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


class RosClock:
    """The node's ROS clock as a core :class:`~gps_denied_onboard.clock.Clock`.

    Follows ``/clock`` when the node runs with ``use_sim_time``, so replays
    stamp records with the recorded flight's time.
    """

    def __init__(self, node: Node) -> None:
        self._clock = node.get_clock()

    def now_ns(self) -> int:
        return int(self._clock.now().nanoseconds)


class DataTimeClock:
    """The node's clock, except while a message is handled: then the message's stamp.

    ROS convention is that what is derived from data carries the data's stamp;
    applied to flight records, it makes a replay write the same records every
    time, instead of stamps that depend on when a callback happened to run.
    The override is per thread, so other callbacks keep the live clock.
    """

    def __init__(self, base: RosClock) -> None:
        self._base = base
        self._local = threading.local()

    def now_ns(self) -> int:
        stamp: int | None = getattr(self._local, "stamp", None)
        return self._base.now_ns() if stamp is None else stamp

    @contextlib.contextmanager
    def at(self, stamp_ns: int) -> Iterator[None]:
        """Within the block, ``now_ns()`` on this thread is ``stamp_ns`` (0 = live clock)."""
        previous = getattr(self._local, "stamp", None)
        self._local.stamp = stamp_ns or None
        try:
            yield
        finally:
            self._local.stamp = previous


def record_to_msg(record: FlightRecord) -> FdrRecord:
    return FdrRecord(
        stamp=ns_to_time_msg(record.stamp_ns),
        kind=record.kind,
        producer=record.producer,
        schema_version=record.schema_version,
        payload_json=record.payload_json(),
    )


def msg_to_record(msg: FdrRecord) -> FlightRecord:
    return FlightRecord.from_json_payload(
        msg.kind, msg.producer, time_msg_to_ns(msg.stamp), msg.payload_json, msg.schema_version
    )


#: How long a closing record publisher waits for the recorder to acknowledge its records.
#: Acknowledgements come with the writer's periodic heartbeat (Fast DDS: every 3 s; a
#: node's exit waited 2.8 s for it over real DDS here), so less than that is not enough;
#: and under ``ros2 launch`` a node must be gone within its 5 s ``sigterm_timeout``.
RECORDS_CLOSE_TIMEOUT_S: Final = 4.0
#: How often a closing record publisher looks for the acknowledgement.
_ACK_POLL_S: Final = 0.02


class RecordPublisherSink:
    """A :class:`~gps_denied_onboard.records.RecordSink` that publishes ``FdrRecord``.

    The schema is checked at the call site by the recorder's policy on the
    other side; here the record is only translated. Publishing never blocks
    on the recorder (DDS queues), and the recorder accounts any loss it can see:
    a gap in the publication sequence numbers (DDS numbers a publisher's samples
    1, 2, 3...) is written as an ``overrun`` record with reason ``dds_loss``.

    A tail lost when the node goes down has no later number to reveal it, so
    :meth:`close` (``run_node`` calls it when a lifecycle node is brought down,
    and at exit) publishes a ``records_closed`` record per producer slug, whose
    ``published`` is how many records this publisher sent before it (its final
    sequence number) and ``records`` how many under that slug since the previous
    close, and then waits for every reliable subscription to acknowledge
    everything (``wait_for_all_acked``). The recorder counts what it lost before
    that record as ``dds_loss``; a close whose acknowledgement timed out is
    logged (``fdr.records_unacked``). A node brought up again keeps its sink:
    records emitted after a close are covered by the next one.
    """

    def __init__(self, node: Node, topic: str = TOPIC_FDR_RECORDS) -> None:
        self._node = node
        self._pub = node.create_publisher(FdrRecord, topic, RECORD_QOS)
        self._lock = threading.Lock()
        self._published = 0
        self._since_close: dict[str, int] = {}  # producer slug -> records since the last close
        _SINKS.setdefault(node, []).append(self)

    @property
    def unclosed(self) -> bool:
        """Records were emitted since the last :meth:`close`."""
        return bool(self._since_close)

    @property
    def published(self) -> int:
        """Records published so far (the publisher's last publication sequence number)."""
        return self._published

    def subscription_count(self) -> int:
        """How many subscriptions (the recorder, echo tools) are matched."""
        return int(self._pub.get_subscription_count())

    def emit(self, record: FlightRecord) -> None:
        msg = record_to_msg(record)
        with self._lock:
            self._pub.publish(msg)
            self._published += 1
            producer = record.producer
            self._since_close[producer] = self._since_close.get(producer, 0) + 1

    def close(self, stamp_ns: int | None = None,
              timeout_s: float = RECORDS_CLOSE_TIMEOUT_S) -> bool:
        """Publish the ``records_closed`` record(s), then wait for acknowledgement.

        Sends nothing when no record was emitted since the previous close. Returns
        True when every subscription acknowledged everything within ``timeout_s``
        (or there was nothing to send).
        """
        from rclpy.duration import Duration

        stamp = RosClock(self._node).now_ns() if stamp_ns is None else stamp_ns
        node = self._node.get_fully_qualified_name()
        with self._lock:
            counts, self._since_close = self._since_close, {}
            for producer, records in counts.items():
                self._pub.publish(record_to_msg(FlightRecord(
                    RECORDS_CLOSED_KIND, producer, stamp,
                    {"published": self._published, "records": records, "node": node})))
                self._published += 1
            published = self._published
        if not counts:
            return True
        # rclpy's wait_for_all_acked holds the GIL while it waits (measured: a 3 s wait
        # froze every other thread of the process), and the acknowledgement can take a
        # DDS heartbeat period: so look without waiting, and sleep between looks, so
        # that the node keeps answering (the take-off sequencer reads its state).
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        now_ack = Duration(nanoseconds=0)
        while True:
            acked = bool(self._pub.wait_for_all_acked(now_ack))
            if acked or time.monotonic() >= deadline:
                break
            time.sleep(_ACK_POLL_S)
        waited = time.monotonic() - t0
        line = (f"node={node} published={published} "
                f"subscriptions={self.subscription_count()} waited_s={waited:.3f} "
                f"timeout_s={timeout_s} "
                + " ".join(f"records.{p}={n}" for p, n in counts.items()))
        if acked:
            self._node.get_logger().info(f"fdr.records_closed {line}")
        else:  # the recorder may miss the tail: say so where the operator looks
            self._node.get_logger().error(f"fdr.records_unacked {line}")
        return acked


_SINKS: weakref.WeakKeyDictionary[Node, list[RecordPublisherSink]] = weakref.WeakKeyDictionary()


def close_record_sinks(node: Node, timeout_s: float = RECORDS_CLOSE_TIMEOUT_S) -> bool:
    """Close every record publisher created on ``node`` (see :meth:`RecordPublisherSink.close`).

    Returns False if a close was not acknowledged in time; never raises (it runs
    on the way down).
    """
    ok = True
    for sink in list(_SINKS.get(node, ())):
        try:
            ok = sink.close(timeout_s=timeout_s) and ok
        except Exception as err:  # shutting down: log, never raise
            node.get_logger().error(f"fdr.records_close_failed error={err!r}")
            ok = False
    return ok


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


#: an idempotent request not answered after this long is sent again
RESEND_S: Final = 2.0


def call_service(
    client: Any, request: Any, timeout_s: float, *, idempotent: bool = False
) -> Any | None:
    """The first answered future of ``request`` within ``timeout_s``, or None;
    the caller's executor spins the client's node in another thread.

    On a loaded machine a server can answer a client whose response reader it
    has not matched yet, and that answer is lost (Fast DDS waits only briefly
    for the match). An ``idempotent`` request (a query, setting the same value)
    is therefore sent again every :data:`RESEND_S` until one is answered;
    anything else (a lifecycle transition, a write) is sent once. Requests left
    unanswered are forgotten by the client.
    """
    done = threading.Event()
    sent: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while not done.is_set():
        left_s = deadline - time.monotonic()
        if left_s <= 0:
            break
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        sent.append(future)
        done.wait(min(left_s, RESEND_S) if idempotent else left_s)
        if not idempotent:
            break
    answered = next((f for f in sent if f.done()), None)
    for future in sent:
        if not future.done():
            client.remove_pending_request(future)
    return answered


def declare_config(node: Node, cls: type[Any]) -> None:
    """Declare one parameter per field of the config dataclass ``cls``.

    Fields whose default is None are declared unset with dynamic typing, so a
    parameter file may give a number or a string ("" also means None); list
    defaults must be non-empty to carry a type, so empty lists are declared as
    string arrays.
    """
    from rcl_interfaces.msg import ParameterDescriptor

    for name, default in config_defaults(cls).items():
        if node.has_parameter(name):
            continue
        if default is None:
            node.declare_parameter(name, None, ParameterDescriptor(dynamic_typing=True))
            continue
        value = default
        if isinstance(value, list) and not value:
            from rcl_interfaces.msg import ParameterDescriptor, ParameterType

            node.declare_parameter(
                name, [""], ParameterDescriptor(type=ParameterType.PARAMETER_STRING_ARRAY)
            )
            node.set_parameters([rclpy.parameter.Parameter(name, value=[])])
            continue
        node.declare_parameter(name, value)
    # fields without default must still be declared so they can be set
    for f in dataclasses.fields(cls):
        if not node.has_parameter(f.name):
            node.declare_parameter(f.name, "")


def read_config(node: Node, cls: type[T]) -> T:
    """Build ``cls`` from the node's current parameter values.

    Raises:
        ConfigError: a value has the wrong type or fails the dataclass checks.
    """
    values: dict[str, Any] = {}
    hints = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name, f in hints.items():
        raw = node.get_parameter(name).value
        if (raw == "" or raw is None) and f.default is None:
            raw = None
        if isinstance(raw, list) and raw == [""]:
            raw = []
        values[name] = raw
    return build_config(cls, values)


class _RclpyHandler(logging.Handler):
    def __init__(self, node: Node) -> None:
        super().__init__()
        self._logger = node.get_logger()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            if record.levelno >= logging.ERROR:
                self._logger.error(msg)
            elif record.levelno >= logging.WARNING:
                self._logger.warning(msg)
            elif record.levelno >= logging.INFO:
                self._logger.info(msg)
            else:
                self._logger.debug(msg)
        except Exception:  # a log handler must never take the node down
            self.handleError(record)


def bridge_logging(node: Node, logger_name: str = "gps_denied_onboard") -> logging.Logger:
    """Route stdlib logging under ``logger_name`` to the node's rclpy logger."""
    logger = logging.getLogger(logger_name)
    for h in list(logger.handlers):
        if isinstance(h, _RclpyHandler):
            logger.removeHandler(h)
    logger.addHandler(_RclpyHandler(node))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def share_dir() -> Path:
    """The package's installed share directory (config/, db/, launch/)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("gps_denied_onboard"))
    except Exception:  # ament_index not importable or package not installed
        return Path(__file__).resolve().parents[2]


#: How long a managed lifecycle node waits, after SIGINT, for the take-off
#: sequencer to take it down in order before it shuts itself down.
MANAGED_SHUTDOWN_GRACE_S: Final = 25.0
#: SIGINTs this close to the first are the same Ctrl-C delivered twice.
SIGINT_DUPLICATE_WINDOW_S: Final = 2.0
#: How long a node taken down by the sequencer keeps answering its state queries.
LANDED_LINGER_S: Final = 3.0
#: ``InvalidHandle`` raised out of this many ``spin_once`` calls in a row ends the
#: node (rclpy is not recovering); fewer are logged and spun past
SPIN_ERRORS_IN_A_ROW_MAX: Final = 50
_UNCONFIGURED, _INACTIVE, _ACTIVE, _FINALIZED = 1, 2, 3, 4


def _lifecycle_state(node: Node) -> int | None:
    machine = getattr(node, "_state_machine", None)
    return int(machine.current_state[0]) if machine is not None else None


def _managed_and_up(node: Node, manager: str = "takeoff") -> bool:
    """A lifecycle node that is up while the take-off sequencer is alive."""
    return _lifecycle_state(node) in (_INACTIVE, _ACTIVE) and manager in node.get_node_names()


def relay_stop_signals(
    stop: threading.Event, signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
) -> None:
    """Set ``stop`` on these signals, without taking a lock in the handler
    (:mod:`gps_denied_onboard.stop_signals`)."""
    _relay_stop_signals(stop, signums)


def run_node(
    factory: Callable[[], Node],
    args: list[str] | None = None,
    *,
    executor_factory: Callable[[], Executor] = MultiThreadedExecutor,
) -> int:
    """Init rclpy, spin ``factory()`` on an executor (multi-threaded unless told), shut down.

    SIGTERM stops at once. SIGINT stops at once too, except for a lifecycle
    node that is up while the ``takeoff`` sequencer is alive: ``ros2 launch``
    sends SIGINT to every process together, and the landing order (FC link
    first, flight closed last) is the sequencer's job, so such a node keeps
    serving until the sequencer has taken it down and confirmed it (or
    MANAGED_SHUTDOWN_GRACE_S passed). A terminal Ctrl-C reaches it twice (tty
    and launch's forward); only a SIGINT after SIGINT_DUPLICATE_WINDOW_S counts
    as a second Ctrl-C. Either way a lifecycle node is then taken down through its own
    ``shutdown``/``on_shutdown``. The node's record publishers are closed
    (:func:`close_record_sinks`: the ``records_closed`` record, then the wait for
    acknowledgement) whenever a lifecycle node is seen down (unconfigured or
    finalized) with records emitted since their last close, and at exit.
    A node whose hot path is one high-rate subscription passes
    ``SingleThreadedExecutor``: rclpy's multi-threaded executor costs several
    times more per message.

    ``InvalidHandle`` raised out of ``spin_once`` is logged (``node.spin_error``)
    and spun past: rclpy raises it when an entity is destroyed on one executor
    thread while another builds the wait set from it (rclpy#1284, #1206, #1142),
    and the next ``spin_once`` builds a new wait set. The nodes no longer destroy
    entities in transitions (that once ended fc_bridge's process after a
    deactivate, and take-off's landing then got no answer); this keeps a node
    answering if something still does. ``SPIN_ERRORS_IN_A_ROW_MAX`` in a row end
    it as before.
    """

    from rclpy.signals import SignalHandlerOptions

    # before any other work: a signal while the node is still starting is
    # recorded, not raised out of an rclpy call; then we stop quietly
    early = install_early()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = factory()
    if isinstance(node, LifecycleNode):
        refuse_invalid_transitions(node)  # a bad change_state must not end the process
    executor = executor_factory()
    executor.add_node(node)
    if early.stopped:
        return _stopped_while_starting(node, executor)
    # signal numbers; a handler only appends (never a lock: a second signal can
    # arrive while the first handler holds it, in the same thread -> deadlock)
    stop: list[int] = []
    drain_started: list[float] = []
    down_since: list[float] = []
    closer: threading.Thread | None = None

    def _stop(signum: int, frame: object) -> None:
        stop.append(signum)
        executor.wake()

    def _interrupt(signum: int, frame: object) -> None:
        now = time.monotonic()
        if drain_started:
            # a terminal Ctrl-C reaches us twice (tty to the process group, then
            # ros2 launch forwards it): only a later SIGINT is a second Ctrl-C
            if now - drain_started[0] > SIGINT_DUPLICATE_WINDOW_S:
                _stop(signum, frame)
            return
        if not _managed_and_up(node):
            _stop(signum, frame)  # nobody will land us
            return
        drain_started.append(now)
        node.get_logger().info(f"node.sigint_wait_for_landing grace_s={MANAGED_SHUTDOWN_GRACE_S}")

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _interrupt)
    if early.received:  # came between the check above and these handlers
        return _stopped_while_starting(node, executor)
    spin_errors = 0  # InvalidHandle out of spin_once, in a row
    try:
        while rclpy.ok() and not stop:
            try:
                executor.spin_once(timeout_sec=0.2)
                spin_errors = 0
            except InvalidHandle as err:
                spin_errors += 1
                node.get_logger().error(
                    f"node.spin_error error={str(err)!r} in_a_row={spin_errors}"
                )
                if spin_errors >= SPIN_ERRORS_IN_A_ROW_MAX:
                    raise
            if (
                _lifecycle_state(node) in (_UNCONFIGURED, _FINALIZED)
                and (closer is None or not closer.is_alive())
                and any(sink.unclosed for sink in _SINKS.get(node, ()))
            ):
                # brought down (the take-off sequencer cleans its nodes up, then closes
                # the flight): the records' tail goes out now, and is acknowledged on a
                # thread of its own (seconds), so that state queries keep being answered
                # (the wait gives the GIL up between its looks).
                # (Seen by state and unclosed records, not by a transition: a quick
                # up-and-down can happen between two looks.)
                closer = threading.Thread(
                    target=close_record_sinks, args=(node,), name="records-close", daemon=True
                )
                closer.start()
            if not drain_started:
                continue
            now = time.monotonic()
            if now - drain_started[0] > MANAGED_SHUTDOWN_GRACE_S:
                break
            if _lifecycle_state(node) in (_UNCONFIGURED, _FINALIZED):
                # keep answering a little: the sequencer reads our state right
                # after each transition to confirm it
                down_since[:] = down_since or [now]
                lingered = now - down_since[0] > LANDED_LINGER_S
                if lingered or "takeoff" not in node.get_node_names():
                    break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        shutdown = getattr(node, "shutdown", None)
        if callable(shutdown):
            try:
                shutdown()
            except Exception as err:
                node.get_logger().error(f"node.shutdown_failed error={err!r}")
        if closer is not None:
            closer.join(RECORDS_CLOSE_TIMEOUT_S + 1.0)
        if rclpy.ok():
            close_record_sinks(node)  # the records' tail, acknowledged before we go
        executor.shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        ignore_from_now()  # down: more Ctrl-C must not kill the exit itself
    return 0


def _stopped_while_starting(node: Node, executor: Executor) -> int:
    """A stop signal came before the node was up: leave quietly."""
    node.get_logger().info("node.stopped_while_starting")
    executor.shutdown()
    node.destroy_node()
    if rclpy.ok():
        rclpy.shutdown()
    ignore_from_now()
    return EXIT_INTERRUPTED
