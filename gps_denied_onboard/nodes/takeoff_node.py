"""``takeoff``: the take-off sequencer as a ROS 2 node.

Drives ``fdr_recorder``, ``tile_cache`` and ``fc_bridge`` through their
lifecycle services in the order of :mod:`gps_denied_onboard.takeoff.sequence`,
publishes ``~/is_active`` (latched) and diagnostics, and watches the recorder
in flight. The process exit code is the sequence's (2 when the recorder could
not open). Ctrl-C / SIGTERM land: the FC link closes first, the flight last.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Log, ParameterType, ParameterValue
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.srv import SetParameters
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool

from gps_denied_onboard.clock import MonotonicClock
from gps_denied_onboard.embedded_pg import EmbeddedPostgres, resolve_dsn
from gps_denied_onboard.errors import ConfigError, GpsDeniedError
from gps_denied_onboard.log import parse_event
from gps_denied_onboard.msg import GcsAlert
from gps_denied_onboard.nodes.fdr_flight_services import CLOCK_NOT_READY
from gps_denied_onboard.nodes.params import declare_config, read_config
from gps_denied_onboard.nodes.record_sink import RECORDS_CLOSE_TIMEOUT_S, RecordPublisherSink
from gps_denied_onboard.nodes.ros_clock import RosClock
from gps_denied_onboard.nodes.ros_logging import bridge_logging
from gps_denied_onboard.nodes.service_calls import call_service
from gps_denied_onboard.nodes.status_publishers import DiagnosticsPublisher, GcsAlertPublisher
from gps_denied_onboard.records import FlightRecord
from gps_denied_onboard.ros_spin import BackgroundSpin
from gps_denied_onboard.ros_topics import LATCHED_QOS, TOPIC_DIAGNOSTICS
from gps_denied_onboard.srv import CloseFlight, OpenFlight
from gps_denied_onboard.stop_signals import (
    EXIT_INTERRUPTED,
    RELAY_PERIOD_S,
    ignore_from_now,
    install_early,
    wait_for_stop,
)
from gps_denied_onboard.takeoff.config import TakeoffConfig
from gps_denied_onboard.takeoff.controller import (
    DatabaseReady,
    FlightCounters,
    LifecycleState,
    Transition,
)
from gps_denied_onboard.takeoff.errors import StepFailed, StepTimeout
from gps_denied_onboard.takeoff.recorder_watch import RecorderWatch
from gps_denied_onboard.takeoff.sequence import (
    EXIT_OK,
    EXIT_TAKEOFF_FAILED,
    PRODUCER,
    Phase,
    TakeoffResult,
    TakeoffSequencer,
)

NS_PER_S = 1_000_000_000
#: how often an open_flight the recorder refused for want of /clock is asked again
CLOCK_RETRY_S: Final = 0.1
#: rcl_interfaces/Log level of ERROR (and FATAL above it).
_LOG_ERROR = 40
#: /rosout as rcl publishes it (reliable, transient local, deep): a volatile
#: reliable subscription matches it.
ROSOUT_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=200,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)


def stated_reason(text: str) -> str:
    """The cause in a node's ERROR line: the structured event's ``reason`` or
    ``error`` field (``fdr.open_failed reason="flight root ... locked ..."``),
    else the whole line."""
    try:
        _kind, fields = parse_event(text)
    except ValueError:
        return text.strip()
    for key in ("reason", "error"):
        value = fields.get(key)
        if isinstance(value, str) and value:
            return value
    return text.strip()


@dataclass(frozen=True)
class TakeoffNodeConfig(TakeoffConfig):
    """Sequencer parameters plus where the database comes from.

    Attributes:
        dsn: tile cache database; empty means the embedded cluster in pg_data_dir.
        pg_data_dir: the embedded cluster's data directory.
        database_name: database created in the embedded cluster.
    """

    dsn: str = ""
    pg_data_dir: str = "var/pg"
    database_name: str = "gps_denied"


class RosLifecycleController:
    """:class:`~gps_denied_onboard.takeoff.controller.NodeController` over ROS services.

    Calls are made from the sequencer's worker thread while the executor spins
    elsewhere; each waits on its future with the step's timeout.
    """

    def __init__(
        self,
        node: Node,
        config: TakeoffNodeConfig,
        records: RecordPublisherSink | None = None,
    ) -> None:
        self._node = node
        self._cfg = config
        self._records = records  # the sequencer's own: out before the flight closes
        self._group = ReentrantCallbackGroup()
        self._clients: dict[str, Any] = {}
        self._pg: EmbeddedPostgres | None = None
        # what each node last said at ERROR on /rosout, and since when we listen
        self._said = threading.Condition()
        self._errors: dict[str, list[tuple[int, str]]] = {}
        self._asked_at: dict[str, int] = {}
        self._seq = 0
        node.create_subscription(
            Log, "/rosout", self._on_rosout, ROSOUT_QOS, callback_group=self._group
        )
        # every client now, so that discovery has matched each one both ways long
        # before its first call: a server answers a client whose response reader
        # it has not matched yet into the void (Fast DDS drops it after 100 ms)
        for name in config.node_names():
            self._client(ChangeState, f"/{name}/change_state")
            self._client(GetState, f"/{name}/get_state")
        self._client(OpenFlight, f"/{config.recorder_node}/open_flight")
        self._client(CloseFlight, f"/{config.recorder_node}/close_flight")
        self._client(SetParameters, f"/{config.tile_cache_node}/set_parameters")

    def _on_rosout(self, msg: Log) -> None:
        if int(msg.level) < _LOG_ERROR:
            return
        name = str(msg.name)
        with self._said:
            self._seq += 1
            for node in self._asked_at:
                if name == node or name.endswith("." + node):
                    self._errors.setdefault(node, []).append((self._seq, str(msg.msg)))
            self._said.notify_all()

    def failure_reason(self, node: str, timeout_s: float) -> str:
        """The node's own ERROR line since its last transition was asked for
        (the recorder logs ``fdr.open_failed reason=...`` before it answers)."""
        with self._said:
            since = self._asked_at.get(node, 0)
            self._said.wait_for(
                lambda: any(seq > since for seq, _ in self._errors.get(node, [])), timeout_s
            )
            said = [text for seq, text in self._errors.get(node, []) if seq > since]
        return stated_reason(said[-1]) if said else ""

    def _client(self, srv_type: Any, name: str) -> Any:
        if name not in self._clients:
            self._clients[name] = self._node.create_client(
                srv_type, name, callback_group=self._group
            )
        return self._clients[name]

    def _call(
        self,
        srv_type: Any,
        name: str,
        request: Any,
        timeout_s: float,
        step: str,
        *,
        idempotent: bool = False,
    ) -> Any:
        """One service call, answered within ``timeout_s`` or :class:`StepTimeout`.

        An ``idempotent`` request is sent again until answered
        (:func:`~gps_denied_onboard.nodes.service_calls.call_service`). A lifecycle
        transition is not resent here; the sequencer reads the state back and decides.
        """
        client = self._client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise StepTimeout(f"{name} not available after {timeout_s:.1f} s", step=step)
        answered = call_service(client, request, timeout_s, idempotent=idempotent)
        if answered is None:
            raise StepTimeout(f"{name} did not answer within {timeout_s:.1f} s", step=step)
        result = answered.result()
        if result is None:
            raise StepFailed(f"{name} returned no response", step=step)
        return result

    def change_state(self, node: str, transition: Transition, timeout_s: float) -> bool:
        with self._said:
            self._asked_at[node] = self._seq
            self._errors[node] = []
        # the state query that follows (and the one that checks an unanswered transition)
        # gets its client now, so that it is discovered by the time it is asked
        self._client(GetState, f"/{node}/get_state")
        req = ChangeState.Request()
        req.transition.id = transition.value
        res = self._call(
            ChangeState,
            f"/{node}/change_state",
            req,
            timeout_s,
            f"{node}.{transition.name.lower()}",
        )
        return bool(res.success)

    def get_state(self, node: str, timeout_s: float) -> LifecycleState:
        res = self._call(
            GetState,
            f"/{node}/get_state",
            GetState.Request(),
            timeout_s,
            f"{node}.get_state",
            idempotent=True,
        )
        try:
            return LifecycleState(int(res.current_state.id))
        except ValueError:
            return LifecycleState.UNKNOWN  # a transition state: not where we asked it to be

    def open_flight(self, flight_id: str, timeout_s: float) -> str:
        rec = self._cfg.recorder_node
        deadline = time.monotonic() + timeout_s
        while True:
            res = self._call(
                OpenFlight,
                f"/{rec}/open_flight",
                OpenFlight.Request(flight_id=flight_id),
                max(0.1, deadline - time.monotonic()),
                f"{rec}.open_flight",
            )
            # a recorder on use_sim_time that has no /clock yet opened nothing: ask
            # again until its first /clock (the replay holds sim time at the start)
            if res.success or res.error_type != CLOCK_NOT_READY:
                break
            if time.monotonic() + CLOCK_RETRY_S >= deadline:
                break
            threading.Event().wait(CLOCK_RETRY_S)
        if not res.success:
            raise StepFailed(
                f"OpenFlight: {res.error_type}: {res.error}", step=f"{rec}.open_flight"
            )
        return str(res.flight_dir)

    def close_flight(self, flight_id: str, timeout_s: float) -> FlightCounters:
        rec = self._cfg.recorder_node
        if self._records is not None:
            # the sequencer's last records (takeoff.shutdown) reach the recorder before
            # the footer is written: acknowledged by its reader, which the close drains
            self._records.flush(min(timeout_s, RECORDS_CLOSE_TIMEOUT_S), expect_subscriber=True)
        res = self._call(
            CloseFlight,
            f"/{rec}/close_flight",
            CloseFlight.Request(flight_id=flight_id),
            timeout_s,
            f"{rec}.close_flight",
        )
        if not res.success:
            raise StepFailed(
                f"CloseFlight: {res.error_type}: {res.error}", step=f"{rec}.close_flight"
            )
        return FlightCounters(
            int(res.records_written),
            int(res.records_dropped_overrun),
            int(res.bytes_written),
            int(res.rollover_count),
        )

    def prepare_database(self, timeout_s: float) -> DatabaseReady:
        from gps_denied_onboard.tile_cache.migrations import apply_migrations

        step = "database.migrate"
        dsn = resolve_dsn(self._cfg.dsn)
        kind = "configured"
        try:
            if dsn is None:
                kind = "embedded"
                self._pg = EmbeddedPostgres(Path(self._cfg.pg_data_dir))
                self._pg.start()
                dsn = self._pg.create_database(self._cfg.database_name)
            result = apply_migrations(dsn)
        except GpsDeniedError as err:
            raise StepFailed(f"database: {err}", step=step) from err
        # hand the DSN to the tile cache before it is configured
        tile = self._cfg.tile_cache_node
        req = SetParameters.Request(
            parameters=[
                ParameterMsg(
                    name="dsn",
                    value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=dsn),
                )
            ]
        )
        res = self._call(
            SetParameters, f"/{tile}/set_parameters", req, timeout_s, step, idempotent=True
        )
        if not all(r.successful for r in res.results):
            raise StepFailed(f"{tile} refused dsn: {[r.reason for r in res.results]}", step=step)
        return DatabaseReady(kind, result.applied, result.from_revision or "", result.to_revision)

    def release_database(self) -> None:
        if self._pg is not None:
            self._pg.stop()
            self._pg = None


class TakeoffNode(Node):
    """Plain node (not lifecycle): it is the one that manages the others."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("takeoff", **kwargs)
        declare_config(self, TakeoffNodeConfig)
        self._logger = bridge_logging(self)
        self.config: TakeoffNodeConfig = read_config(self, TakeoffNodeConfig)
        self._core_clock = RosClock(self)
        self._records = RecordPublisherSink(self)
        self._alerts = GcsAlertPublisher(self)
        self._diag = DiagnosticsPublisher(self, "takeoff")
        self._active_pub = self.create_publisher(Bool, "~/is_active", LATCHED_QOS)
        self._publish_active(False)
        self.controller = RosLifecycleController(self, self.config, self._records)
        self.sequencer = TakeoffSequencer(
            self.controller,
            self.config,
            self._core_clock,
            self._records,
            stderr=sys.stderr,
            on_phase=self._on_phase,
        )
        # silent on host time (a process's liveness: at 4x one wall second is four sim
        # seconds) and on the ROS clock its diagnostics run on (a paused /clock is no
        # silence): see RecorderWatch
        self._watch = RecorderWatch(
            MonotonicClock(), int(self.config.recorder_silence_s * NS_PER_S), self._core_clock
        )
        self._heartbeat_seq = 0
        self.create_subscription(
            DiagnosticArray,
            TOPIC_DIAGNOSTICS,
            self._on_diagnostics,
            50,
            callback_group=ReentrantCallbackGroup(),
        )
        self.create_timer(self.config.heartbeat_period_s, self._on_heartbeat)

    def _publish_active(self, value: bool) -> None:
        self._active_pub.publish(Bool(data=value))

    def _on_phase(self, phase: Phase) -> None:
        self._publish_active(phase is Phase.ACTIVE)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if self.config.recorder_node in status.name:
                level = status.level[0] if isinstance(status.level, bytes) else int(status.level)
                self._watch.alive(healthy=level < 2)

    def _on_heartbeat(self) -> None:
        phase = self.sequencer.phase
        status = dict(self.sequencer.status())
        level = 0 if phase is Phase.ACTIVE else (2 if phase is Phase.ABORTED else 1)
        self._diag.publish(level, phase.value, status)
        if phase is not Phase.ACTIVE:
            return
        self._heartbeat_seq += 1
        self._records.emit(
            FlightRecord(
                "takeoff.heartbeat",
                PRODUCER,
                self._core_clock.now_ns(),
                {"seq": self._heartbeat_seq, "phase": phase.value},
            )
        )
        event = self._watch.tick()
        if event == "lost":
            silent = self._watch.silent_for_ns
            self._alerts.publish(
                GcsAlert.CRITICAL, "takeoff", "FDR recorder lost: flight not recorded"
            )
            self._records.emit(
                FlightRecord(
                    "takeoff.recorder_lost",
                    PRODUCER,
                    self._core_clock.now_ns(),
                    {"reason": "recorder silent or unhealthy", "silent_for_ns": silent},
                )
            )
            self.get_logger().error(f"takeoff.recorder_lost silent_for_ns={silent}")
        elif event == "recovered":
            self._alerts.publish(GcsAlert.NOTICE, "takeoff", "FDR recorder back")
            self._records.emit(
                FlightRecord(
                    "takeoff.recorder_recovered",
                    PRODUCER,
                    self._core_clock.now_ns(),
                    {"silent_for_ns": 0},
                )
            )


def run_sequencer(
    node: TakeoffNode,
    stop: threading.Event,
    on_active: Callable[[TakeoffResult], None] | None = None,
    on_revive: Callable[[], object] | None = None,
) -> int:
    """Take off, stay up until ``stop`` is set, land; returns the exit code.

    Runs in the main thread (where Python runs signal handlers); the executor
    must be spinning in another thread. A stop that came before
    the take-off began takes nothing off (:data:`EXIT_INTERRUPTED`). In flight,
    every ``revive_period_s`` of host time, ``on_revive`` runs (the bring-up starts
    node processes that exited again) and then the sequencer brings a restarted
    node back up (:meth:`TakeoffSequencer.revive`).
    """
    if stop.is_set():
        return EXIT_INTERRUPTED
    result = node.sequencer.take_off()
    if result.exit_code != EXIT_OK:
        return result.exit_code
    if on_active is not None:
        on_active(result)
    period = node.config.revive_period_s
    if period <= 0:
        wait_for_stop(stop)  # never an untimed wait: see wait_for_stop
    else:
        # host time: whether a process lives is not a question of flight time
        due = time.monotonic() + period
        while not stop.wait(RELAY_PERIOD_S):  # timed, as in wait_for_stop
            if time.monotonic() < due:
                continue
            if on_revive is not None:
                on_revive()
            node.sequencer.revive()
            due = time.monotonic() + period
    node.sequencer.land("operator stop")
    if node.sequencer.teardown_failures:
        # landed as far as possible, but something did not come down cleanly
        return EXIT_TAKEOFF_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """``takeoff`` executable: ``ros2 run gps_denied_onboard takeoff_sequencer``."""
    # our own signal handling, before any other work: Ctrl-C must land in order,
    # and one that comes while the node is starting stops it quietly
    signals = install_early()
    from rclpy.signals import SignalHandlerOptions

    args = sys.argv[1:] if argv is None else argv
    rclpy.init(args=["takeoff", *args], signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = TakeoffNode()
    except (ConfigError, ParameterException) as err:
        print(f"takeoff: bad parameter: {err}", file=sys.stderr)
        rclpy.shutdown()
        return 1
    if signals.stopped:
        print("takeoff: stopped while starting; nothing was taken off", file=sys.stderr)
        node.destroy_node()
        rclpy.shutdown()
        return EXIT_INTERRUPTED
    # one thread, as the main job's bring-up (nodes/bringup.py): the callbacks never
    # wait on one another, the sequence waits on this thread; and once the spinning
    # thread is joined no callback is left in a pool to start after the shutdown
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = BackgroundSpin(executor, "takeoff-executor")
    spinner.start()
    stop = threading.Event()
    signals.relay(stop)
    try:
        code = run_sequencer(node, stop)
    finally:
        # the spin thread must be out of rcl before the node and the context go:
        # a thread still inside rcl_wait while they are torn down can abort the
        # process at exit ("terminate called without an active exception")
        spinner.stop(timeout_s=2.0)
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        ignore_from_now()  # landed: more Ctrl-C must not kill the exit itself
    return code


if __name__ == "__main__":
    raise SystemExit(main())
