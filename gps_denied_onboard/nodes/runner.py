"""``main`` of every node executable: init rclpy, spin the node, stop on
SIGINT/SIGTERM in the order the take-off sequencer needs, close the records'
tail, shut down."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Final

import rclpy
from rclpy.exceptions import InvalidHandle  # Humble and Jazzy alike (rclpy._rclpy_pybind11's)
from rclpy.executors import Executor, ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.node import Node

from gps_denied_onboard.nodes.lifecycle_guard import (
    before_answering_transitions,
    refuse_invalid_transitions,
)
from gps_denied_onboard.nodes.record_sink import (
    RECORDS_CLOSE_TIMEOUT_S,
    close_record_sinks,
    has_held_records,
    has_unclosed_records,
)
from gps_denied_onboard.stop_signals import EXIT_INTERRUPTED, ignore_from_now, install_early

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
#: The take-off sequencer's node name: while it is on the graph, our nodes are managed.
MANAGER: Final = "takeoff"


def _lifecycle_state(node: Node) -> int | None:
    machine = getattr(node, "_state_machine", None)
    return int(machine.current_state[0]) if machine is not None else None


def _managed_and_up(node: Node, manager: str = MANAGER) -> bool:
    """A lifecycle node that is up while the take-off sequencer is alive."""
    return _lifecycle_state(node) in (_INACTIVE, _ACTIVE) and manager in node.get_node_names()


def _close_records_if_down(node: Node) -> None:
    """A node just brought down (unconfigured or finalized) closes its records before
    the transition is answered: the take-off sequencer closes the flight after its
    last cleanup was answered, so a tail still held (its publisher not yet matched
    with the recorder's subscription: discovery is slow on a loaded machine) or
    not yet acknowledged would miss the flight (seen: ``fc.link_up`` lost). While
    the sequencer is on the graph a recorder is part of the flight, so held records
    wait for it to match even if this node has not discovered it yet (within
    :data:`RECORDS_CLOSE_TIMEOUT_S`, under the sequencer's teardown timeout); a
    standalone node does not wait for a recorder that is not there."""
    if _lifecycle_state(node) not in (_UNCONFIGURED, _FINALIZED):
        return
    if not has_unclosed_records(node) and not has_held_records(node):
        return
    close_record_sinks(node, expect_subscriber=MANAGER in node.get_node_names())


def guard_transitions(node: LifecycleNode) -> None:
    """What every lifecycle node run here gets on its ``change_state`` service: a
    transition its state has not is refused, not raised out of the executor
    (:func:`refuse_invalid_transitions`), and a transition that brings it down is
    answered once its records are out (:func:`_close_records_if_down`)."""
    refuse_invalid_transitions(node)
    before_answering_transitions(node, lambda: _close_records_if_down(node))


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
    acknowledgement) when a ``change_state`` brings a lifecycle node down
    (unconfigured or finalized), before that transition is answered
    (:func:`_close_records_if_down`); whenever it is seen down with records emitted
    since their last close; and at exit.
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
        guard_transitions(node)
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
                and has_unclosed_records(node)
            ):
                # brought down other than through change_state (whose answer waits for
                # the close: before_answering_transitions above), or records emitted
                # since: the tail goes out now, acknowledged on a thread of its own
                # (seconds), so that state queries keep being answered (the wait gives
                # the GIL up between its looks). (Seen by state and unclosed records,
                # not by a transition: a quick up-and-down can happen between two looks.)
                closer = threading.Thread(
                    target=_close_records_if_down, args=(node,), name="records-close", daemon=True
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
                if lingered or MANAGER not in node.get_node_names():
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
