"""The take-off sequence and its reverse.

Order (the spec's take_off(): writer init -> start -> open_flight -> FC
adapter init -> FC adapter open), as lifecycle steps::

    fdr_recorder  configure -> activate -> OpenFlight
    database      embedded cluster if no DSN, migrations to head
    tile_cache    configure -> activate
    visual_nav    configure -> activate   (needs the tile cache's services)
    fc_bridge     configure -> activate

Unlike nav2's lifecycle manager (configure all, then activate all), each node
is driven to ACTIVE before the next one is touched, so the FC link can never
open before the flight is being recorded. Every transition is checked by
reading the node's state back. Any failure aborts and brings the nodes that
were up down in reverse order.

A failure of any recorder step is an FDR-open failure. Then, in this order:
the ERROR record is logged, the writer is stopped (recorder taken down), the
FATAL line below goes to stderr, and the result carries exit code 2::

    FATAL: flight data recorder failed to open (<reason>); take-off aborted, FC link not opened

``<reason>`` names the cause as the recorder stated it (for example "flight
root /x is locked by another flight recorder" or "flight root /x is not
writable: ..."): a failed transition asks the controller for the node's own
reason (:meth:`NodeController.failure_reason`) and puts it in the error.

Landing is the reverse: the FC link closes first, the flight closes last
(its footer carries the final counters), so nothing the FC bridge did goes
unrecorded.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.log import log_event
from gps_denied_onboard.records import FlightRecord, RecordSink
from gps_denied_onboard.takeoff.config import TakeoffConfig
from gps_denied_onboard.takeoff.controller import (
    FlightCounters,
    LifecycleState,
    NodeController,
    Transition,
)
from gps_denied_onboard.takeoff.errors import (
    FdrOpenFailure,
    StepFailed,
    StepTimeout,
    TakeoffError,
)

EXIT_OK: Final = 0
EXIT_TAKEOFF_FAILED: Final = 1
EXIT_FDR_OPEN_FAILURE: Final = 2
FATAL_FDR_OPEN_LINE: Final = (
    "FATAL: flight data recorder failed to open ({reason}); take-off aborted, FC link not opened"
)
PRODUCER: Final = "takeoff"
#: How long a failed transition waits for the node to say why (its ERROR log
#: is sent before its answer, but on another topic).
REASON_WAIT_S: Final = 1.0
#: How long a transition whose answer never came waits to learn the node's state.
#: A service answer can be lost while its client is new (rmw_fastrtps sends a
#: response only once it has matched the client's reader, waiting 100 ms for that:
#: ros2/rmw_fastrtps#467), which a loaded machine can outlast; the node is alive then,
#: so a short wait does, and a dead node does not hold the abort up for long.
UNANSWERED_STATE_WAIT_S: Final = 2.0

_log = logging.getLogger("gps_denied_onboard.takeoff")


def _log_transition(
    level: int, kind: str, node: str, transition: Transition, state: LifecycleState
) -> None:
    log_event(
        _log,
        level,
        kind,
        node=node,
        transition=transition.name.lower(),
        state=state.name.lower(),
    )


_EXPECTED_AFTER: Final = {
    Transition.CONFIGURE: LifecycleState.INACTIVE,
    Transition.ACTIVATE: LifecycleState.ACTIVE,
    Transition.DEACTIVATE: LifecycleState.INACTIVE,
    Transition.CLEANUP: LifecycleState.UNCONFIGURED,
}
_STARTS_FROM: Final = {
    Transition.CONFIGURE: LifecycleState.UNCONFIGURED,
    Transition.ACTIVATE: LifecycleState.INACTIVE,
    Transition.DEACTIVATE: LifecycleState.ACTIVE,
    Transition.CLEANUP: LifecycleState.INACTIVE,
}


class Phase(enum.Enum):
    IDLE = "idle"
    TAKING_OFF = "taking_off"
    ACTIVE = "active"
    ABORTED = "aborted"
    LANDING = "landing"
    LANDED = "landed"


@dataclass
class TakeoffResult:
    """How a take-off ended."""

    exit_code: int
    flight_id: str
    flight_dir: str = ""
    failed_step: str = ""
    reason: str = ""
    steps: list[str] = field(default_factory=list)


class _HoldingSink:
    """Holds records until the flight is open, then forwards them in order.

    The first steps happen before the recorder can record anything; holding
    their records means the flight still shows the whole sequence.
    """

    def __init__(self, target: RecordSink) -> None:
        self._target = target
        self._held: list[FlightRecord] | None = []
        self._lock = threading.Lock()

    def emit(self, record: FlightRecord) -> None:
        with self._lock:
            if self._held is not None:
                self._held.append(record)
                return
        self._target.emit(record)

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held or [], None
        for record in held:
            self._target.emit(record)

    def discard(self) -> list[FlightRecord]:
        with self._lock:
            held, self._held = self._held or [], None
        return held


class TakeoffSequencer:
    """Drives the nodes up in the spec's order and down in reverse.

    Thread-safe: ``take_off`` and ``land`` may be called from different threads
    (a signal handler lands while nothing else runs); they serialise.
    """

    def __init__(
        self,
        controller: NodeController,
        config: TakeoffConfig,
        clock: Clock,
        sink: RecordSink,
        *,
        stderr: TextIO | None = None,
        on_phase: Callable[[Phase], None] | None = None,
    ) -> None:
        self._ctl = controller
        self._cfg = config
        self._clock = clock
        self._sink = _HoldingSink(sink)
        self._stderr = stderr
        self._on_phase = on_phase
        self._lock = threading.RLock()
        self._phase = Phase.IDLE
        self._up: list[str] = []  # nodes at least INACTIVE, in bring-up order
        self._flight_open = False
        #: prepare_database was asked: landing releases whatever it started, even
        #: when it failed part-way (a cluster started, then migrations or the
        #: tile cache's answer failed), so no server outlives the take-off
        self._db_asked = False
        self._flight_id = config.flight_id
        self._steps: list[str] = []
        self._counters: FlightCounters | None = None
        self._error = ""
        self._tearing_down = False
        #: what could not be brought down cleanly (landing or abort)
        self.teardown_failures: list[str] = []

    # -- observers ---------------------------------------------------------------
    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def is_active(self) -> bool:
        return self._phase is Phase.ACTIVE

    @property
    def flight_id(self) -> str:
        return self._flight_id

    @property
    def counters(self) -> FlightCounters | None:
        """Footer counters once the flight has been closed."""
        return self._counters

    def status(self) -> Mapping[str, Any]:
        """For diagnostics."""
        return {
            "phase": self._phase.value,
            "flight_id": self._flight_id,
            "nodes_up": ",".join(self._up),
            "steps_done": len(self._steps),
            "last_step": self._steps[-1] if self._steps else "",
            "error": self._error,
        }

    # -- helpers -----------------------------------------------------------------
    def _set_phase(self, phase: Phase) -> None:
        self._phase = phase
        if self._on_phase is not None:
            self._on_phase(phase)

    def _record(self, kind: str, **payload: Any) -> None:
        self._sink.emit(FlightRecord(kind, PRODUCER, self._clock.now_ns(), payload))

    @property
    def _call_timeout(self) -> float:
        return self._cfg.teardown_timeout_s if self._tearing_down else self._cfg.service_timeout_s

    def _timeout_for(self, node: str, transition: Transition) -> float:
        if node == self._cfg.fc_bridge_node and transition is Transition.ACTIVATE:
            return self._cfg.fc_activate_timeout_s
        return self._call_timeout

    def _transition(self, node: str, transition: Transition) -> None:
        step = f"{node}.{transition.name.lower()}"
        expected = _EXPECTED_AFTER[transition]
        try:
            ok = self._ctl.change_state(node, transition, self._timeout_for(node, transition))
        except StepTimeout as unanswered:
            ok, state = True, self._check_made(node, transition, expected, unanswered)
        else:
            state = self._ctl.get_state(node, self._call_timeout)
        if not ok or state is not expected:
            why = self._ctl.failure_reason(node, min(REASON_WAIT_S, self._call_timeout))
            raise StepFailed(
                f"{step} failed: {why + '; ' if why else ''}"
                f"node reports {'success' if ok else 'failure'}, "
                f"state {state.name} (expected {expected.name})",
                step=step,
            )
        self._steps.append(step)
        _log_transition(logging.INFO, "takeoff.transition", node, transition, state)
        self._record(
            "takeoff.transition",
            node=node,
            transition=transition.name.lower(),
            state=state.name.lower(),
            step=len(self._steps),
        )

    def _check_made(
        self,
        node: str,
        transition: Transition,
        expected: LifecycleState,
        unanswered: StepTimeout,
    ) -> LifecycleState:
        """The node's state if the transition was made all the same, else raise ``unanswered``.

        The node is asked where it is: in ``expected`` the transition happened and
        only its answer was lost. Still where the transition starts from, the request
        never arrived (on a loaded machine a service is discovered before the node has
        matched our request writer, and the request is dropped: seen twice in one full
        test run, ``fc_bridge.configure``), so it is asked once more, and the state
        read back decides. Asking twice is safe: a request that did arrive late finds
        the node past it, and a transition its state does not have is refused
        (:mod:`~gps_denied_onboard.nodes.lifecycle_guard`), never made twice. Anywhere
        else (mid-transition, or no answer again) the original timeout stands.
        """
        wait_s = min(UNANSWERED_STATE_WAIT_S, self._call_timeout)
        try:
            state = self._ctl.get_state(node, wait_s)
            if state is _STARTS_FROM[transition]:
                resent = "takeoff.transition_resent"
                _log_transition(logging.WARNING, resent, node, transition, state)
                with contextlib.suppress(StepTimeout):  # the state read back decides
                    self._ctl.change_state(node, transition, self._timeout_for(node, transition))
                state = self._ctl.get_state(node, self._call_timeout)
                if state is expected:
                    return state
        except TakeoffError:
            raise unanswered from None
        if state is not expected:
            raise unanswered
        _log_transition(logging.WARNING, "takeoff.transition_unanswered", node, transition, state)
        return state

    def _bring_up(self, node: str) -> None:
        self._transition(node, Transition.CONFIGURE)
        self._up.append(node)
        self._transition(node, Transition.ACTIVATE)

    def _bring_down(self, node: str) -> None:
        """Best effort: deactivate then clean up; log, never raise.

        A node that does not answer is given up on at once (under ``ros2 launch``
        it may have exited already), so the rest of the landing is not held up.
        """
        for transition, from_state in (
            (Transition.DEACTIVATE, LifecycleState.ACTIVE),
            (Transition.CLEANUP, LifecycleState.INACTIVE),
        ):
            try:
                state = self._ctl.get_state(node, self._call_timeout)
                if state is from_state:
                    self._transition(node, transition)
            except TakeoffError as err:
                self.teardown_failures.append(f"{node}.{transition.name.lower()}: {err}")
                log_event(
                    _log,
                    logging.ERROR,
                    "takeoff.teardown_failed",
                    node=node,
                    transition=transition.name.lower(),
                    error=str(err),
                )
                if isinstance(err, StepTimeout):
                    break
        if node in self._up:
            self._up.remove(node)

    # -- take-off ----------------------------------------------------------------
    def take_off(self) -> TakeoffResult:
        """Run the whole sequence; on failure tear down and say how it ended.

        Never raises for a node's failure: the result's ``exit_code`` says
        (``EXIT_FDR_OPEN_FAILURE`` for any recorder step).
        """
        with self._lock:
            if self._phase is not Phase.IDLE:
                raise TakeoffError(f"take_off in phase {self._phase.value}", step="take_off")
            self._set_phase(Phase.TAKING_OFF)
            if not self._flight_id:
                self._flight_id = _flight_id_from_clock(self._clock.now_ns())
            rec = self._cfg.recorder_node
            flight_dir = ""
            try:
                try:
                    self._bring_up(rec)
                    flight_dir = self._ctl.open_flight(self._flight_id, self._cfg.service_timeout_s)
                    self._flight_open = True
                    self._steps.append(f"{rec}.open_flight")
                    self._record(
                        "takeoff.transition",
                        node=rec,
                        transition="open_flight",
                        state="recording",
                        step=len(self._steps),
                    )
                    self._sink.release()
                except TakeoffError as err:
                    raise FdrOpenFailure(str(err), step=err.step) from err
                self._db_asked = True
                db = self._ctl.prepare_database(self._cfg.service_timeout_s)
                self._steps.append("database.migrate")
                self._record(
                    "takeoff.migrations",
                    applied=db.applied,
                    from_revision=db.from_revision,
                    to_revision=db.revision,
                )
                self._bring_up(self._cfg.tile_cache_node)
                if self._cfg.visual_nav_node:
                    self._bring_up(self._cfg.visual_nav_node)
                self._bring_up(self._cfg.fc_bridge_node)
            except FdrOpenFailure as err:
                return self._abort_fdr_open(err)
            except TakeoffError as err:
                return self._abort(err)
            self._set_phase(Phase.ACTIVE)
            self._record("takeoff.active", nodes=list(self._up))
            log_event(
                _log,
                logging.INFO,
                "takeoff.active",
                flight_id=self._flight_id,
                nodes=list(self._up),
            )
            return TakeoffResult(EXIT_OK, self._flight_id, flight_dir, steps=list(self._steps))

    # -- in flight ---------------------------------------------------------------
    def revive(self) -> list[str]:
        """Bring a revivable node (:meth:`TakeoffConfig.revivable`) that is no longer
        active back up; returns those brought up.

        A node process that crashed in flight is started again by whoever started
        it (``respawn`` in the launch file, the bring-up's supervisor); it comes up
        unconfigured, and nothing else would configure and activate it: the
        estimator would stay silent, or the FC link closed, for the rest of the
        flight. A node that does not answer within ``revive_timeout_s`` (dead, or
        still starting) is looked at again next time; one whose transition fails
        is logged and tried again next time. Only while the flight is up.
        """
        revived: list[str] = []
        with self._lock:
            if self._phase is not Phase.ACTIVE:
                return revived
            for node in self._cfg.revivable():
                try:
                    state = self._ctl.get_state(node, self._cfg.revive_timeout_s)
                except TakeoffError:
                    continue
                if state not in (LifecycleState.UNCONFIGURED, LifecycleState.INACTIVE):
                    continue
                try:
                    if state is LifecycleState.UNCONFIGURED:
                        self._transition(node, Transition.CONFIGURE)
                    self._transition(node, Transition.ACTIVATE)
                except TakeoffError as err:
                    log_event(
                        _log, logging.ERROR, "takeoff.revive_failed", node=node, error=str(err)
                    )
                    continue
                revived.append(node)
                self._record("takeoff.node_revived", node=node, from_state=state.name.lower())
                log_event(
                    _log,
                    logging.WARNING,
                    "takeoff.node_revived",
                    node=node,
                    from_state=state.name.lower(),
                )
        return revived

    def _abort_fdr_open(self, err: FdrOpenFailure) -> TakeoffResult:
        reason = str(err)
        self._error = reason
        # 1. the ERROR record (no flight is open to hold it: it goes to the log
        #    and to the record topic for anyone listening)
        held = self._sink.discard()
        log_event(
            _log,
            logging.ERROR,
            "takeoff.fdr_open_failed",
            reason=reason,
            step=err.step,
            held_records=len(held),
        )
        self._sink.emit(
            FlightRecord(
                "takeoff.fdr_open_failed", PRODUCER, self._clock.now_ns(), {"reason": reason}
            )
        )
        # 2. stop the writer
        self._bring_down(self._cfg.recorder_node)
        # 3. the FATAL line
        if self._stderr is not None:
            print(FATAL_FDR_OPEN_LINE.format(reason=reason), file=self._stderr, flush=True)
        self._set_phase(Phase.ABORTED)
        # 4. exit code 2 (the caller exits with it)
        return TakeoffResult(
            EXIT_FDR_OPEN_FAILURE,
            self._flight_id,
            failed_step=err.step,
            reason=reason,
            steps=list(self._steps),
        )

    def _abort(self, err: TakeoffError) -> TakeoffResult:
        self._error = str(err)
        log_event(_log, logging.ERROR, "takeoff.aborted", failed_step=err.step, reason=str(err))
        self._record("takeoff.aborted", failed_step=err.step, reason=str(err))
        self._teardown(reason=f"aborted at {err.step}")
        self._set_phase(Phase.ABORTED)
        return TakeoffResult(
            EXIT_TAKEOFF_FAILED,
            self._flight_id,
            failed_step=err.step,
            reason=str(err),
            steps=list(self._steps),
        )

    # -- landing -----------------------------------------------------------------
    def land(self, reason: str = "shutdown") -> FlightCounters | None:
        """Bring everything down in reverse order; the flight closes last.

        Safe to call in any phase and more than once.
        """
        with self._lock:
            if self._phase in (Phase.LANDED, Phase.IDLE):
                return self._counters
            self._set_phase(Phase.LANDING)
            self._teardown(reason)
            self._set_phase(Phase.LANDED)
            return self._counters

    def _teardown(self, reason: str) -> None:
        self._tearing_down = True
        try:
            self._teardown_in_order(reason)
        finally:
            self._tearing_down = False

    def _teardown_in_order(self, reason: str) -> None:
        rec = self._cfg.recorder_node
        for node in reversed(list(self._up)):
            if node != rec:
                self._bring_down(node)
        if self._db_asked:
            try:
                self._ctl.release_database()
            except Exception as err:  # keep landing whatever the database does
                self.teardown_failures.append(f"database.release: {err!r}")
                log_event(
                    _log, logging.ERROR, "takeoff.teardown_failed", node="database", error=repr(err)
                )
            self._db_asked = False
        if self._flight_open:
            self._record("takeoff.shutdown", reason=reason)
            try:
                self._counters = self._ctl.close_flight(self._flight_id, self._call_timeout)
                log_event(
                    _log,
                    logging.INFO,
                    "takeoff.flight_closed",
                    flight_id=self._flight_id,
                    **vars(self._counters),
                )
            except TakeoffError as err:
                self.teardown_failures.append(f"{rec}.close_flight: {err}")
                log_event(
                    _log,
                    logging.ERROR,
                    "takeoff.teardown_failed",
                    node=rec,
                    transition="close_flight",
                    error=str(err),
                )
            self._flight_open = False
        if rec in self._up:
            self._bring_down(rec)


def _flight_id_from_clock(now_ns: int) -> str:
    from gps_denied_onboard.clock import ns_to_datetime

    return "flight-" + ns_to_datetime(now_ns).strftime("%Y%m%dT%H%M%SZ")


__all__ = [
    "EXIT_FDR_OPEN_FAILURE",
    "EXIT_OK",
    "EXIT_TAKEOFF_FAILED",
    "FATAL_FDR_OPEN_LINE",
    "FdrOpenFailure",
    "Phase",
    "StepFailed",
    "StepTimeout",
    "TakeoffConfig",
    "TakeoffResult",
    "TakeoffSequencer",
]
