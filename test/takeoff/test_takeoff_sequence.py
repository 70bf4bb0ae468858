"""The sequencer's order, abort and landing logic, in-process.

The controller here is a scripted implementation of our own NodeController
protocol (lifecycle state per node, failures on demand); the real-process
tests in test_takeoff_bringup.py drive the real nodes over DDS.
"""

from __future__ import annotations

import io
import logging

import pytest

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.errors import ConfigError
from gps_denied_onboard.records import MemorySink
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
    EXIT_FDR_OPEN_FAILURE,
    EXIT_OK,
    EXIT_TAKEOFF_FAILED,
    Phase,
    TakeoffSequencer,
)

_NEXT = {
    (LifecycleState.UNCONFIGURED, Transition.CONFIGURE): LifecycleState.INACTIVE,
    (LifecycleState.INACTIVE, Transition.ACTIVATE): LifecycleState.ACTIVE,
    (LifecycleState.ACTIVE, Transition.DEACTIVATE): LifecycleState.INACTIVE,
    (LifecycleState.INACTIVE, Transition.CLEANUP): LifecycleState.UNCONFIGURED,
}


class ScriptedController:
    def __init__(
        self, fail: str = "", timeout: str = "", lose_answer: str = "", drop_request: str = ""
    ) -> None:
        self.states = {
            n: LifecycleState.UNCONFIGURED
            for n in ("fdr_recorder", "tile_cache", "visual_nav", "fc_bridge")
        }
        self.calls: list[str] = []
        self.fail = fail
        self.timeout = timeout
        self.lose_answer = lose_answer  # the transition happens, its answer never comes
        self.drop_request = drop_request  # the first request never reaches the node
        self.flight_open = False
        self.reasons: dict[str, str] = {}

    def _check(self, step: str) -> None:
        if step == self.timeout:
            raise StepTimeout(f"{step} timed out", step=step)

    def change_state(self, node: str, transition: Transition, timeout_s: float) -> bool:
        step = f"{node}.{transition.name.lower()}"
        self.calls.append(step)
        self._check(step)
        if step == self.drop_request and self.calls.count(step) == 1:
            raise StepTimeout(f"/{node}/change_state did not answer", step=step)
        if step == self.fail:
            return False
        self.states[node] = _NEXT[(self.states[node], transition)]
        if step == self.lose_answer:
            raise StepTimeout(f"/{node}/change_state did not answer", step=step)
        return True

    def get_state(self, node: str, timeout_s: float) -> LifecycleState:
        return self.states[node]

    def failure_reason(self, node: str, timeout_s: float) -> str:
        return self.reasons.get(node, "")

    def open_flight(self, flight_id: str, timeout_s: float) -> str:
        self.calls.append("fdr_recorder.open_flight")
        if self.fail == "fdr_recorder.open_flight":
            raise StepFailed("FdrOpenError: flight root locked", step="fdr_recorder.open_flight")
        self.flight_open = True
        return f"/flights/{flight_id}"

    def close_flight(self, flight_id: str, timeout_s: float) -> FlightCounters:
        self.calls.append("fdr_recorder.close_flight")
        self.flight_open = False
        return FlightCounters(10, 0, 2000, 0)

    def prepare_database(self, timeout_s: float) -> DatabaseReady:
        self.calls.append("database.migrate")
        if self.fail == "database.migrate":
            raise StepFailed("migrations failed", step="database.migrate")
        return DatabaseReady("embedded", True, "", "0003")

    def release_database(self) -> None:
        self.calls.append("database.release")


def _sequencer(ctl: ScriptedController, sink: MemorySink, err: io.StringIO) -> TakeoffSequencer:
    return TakeoffSequencer(
        ctl, TakeoffConfig(flight_id="f1"), ManualClock(10**18), sink, stderr=err
    )


TAKEOFF_ORDER = [
    "fdr_recorder.configure",
    "fdr_recorder.activate",
    "fdr_recorder.open_flight",
    "database.migrate",
    "tile_cache.configure",
    "tile_cache.activate",
    "visual_nav.configure",
    "visual_nav.activate",
    "fc_bridge.configure",
    "fc_bridge.activate",
]


def test_takeoff_drives_each_node_to_active_in_spec_order() -> None:
    ctl, sink, err = ScriptedController(), MemorySink(), io.StringIO()
    seq = _sequencer(ctl, sink, err)
    result = seq.take_off()
    assert result.exit_code == EXIT_OK
    assert ctl.calls == TAKEOFF_ORDER
    assert result.steps == TAKEOFF_ORDER
    assert seq.is_active and seq.phase is Phase.ACTIVE
    assert set(ctl.states.values()) == {LifecycleState.ACTIVE}
    # records of the steps before OpenFlight were held, then released in order
    steps = [
        (r.payload["node"], r.payload["transition"]) for r in sink.of_kind("takeoff.transition")
    ]
    assert steps[:3] == [
        ("fdr_recorder", "configure"),
        ("fdr_recorder", "activate"),
        ("fdr_recorder", "open_flight"),
    ]
    assert steps[-1] == ("fc_bridge", "activate")
    assert err.getvalue() == ""


def test_landing_closes_fc_link_first_and_flight_last() -> None:
    ctl, sink = ScriptedController(), MemorySink()
    seq = _sequencer(ctl, sink, io.StringIO())
    seq.take_off()
    ctl.calls.clear()
    counters = seq.land("test")
    assert ctl.calls == [
        "fc_bridge.deactivate",
        "fc_bridge.cleanup",
        "visual_nav.deactivate",
        "visual_nav.cleanup",
        "tile_cache.deactivate",
        "tile_cache.cleanup",
        "database.release",
        "fdr_recorder.close_flight",
        "fdr_recorder.deactivate",
        "fdr_recorder.cleanup",
    ]
    assert counters == FlightCounters(10, 0, 2000, 0)
    assert seq.phase is Phase.LANDED
    assert seq.land() == counters  # idempotent
    assert len(ctl.calls) == 10


@pytest.mark.parametrize(
    "failing", ["fdr_recorder.configure", "fdr_recorder.activate", "fdr_recorder.open_flight"]
)
def test_recorder_failure_exits_2_with_fatal_line_and_no_fc_link(
    failing: str, caplog: pytest.LogCaptureFixture
) -> None:
    ctl, sink, err = ScriptedController(fail=failing), MemorySink(), io.StringIO()
    seq = _sequencer(ctl, sink, err)
    with caplog.at_level(logging.ERROR, logger="gps_denied_onboard.takeoff"):
        result = seq.take_off()
    assert result.exit_code == EXIT_FDR_OPEN_FAILURE == 2
    assert not any(c.startswith(("fc_bridge", "tile_cache", "database")) for c in ctl.calls)
    # the ERROR record came first, then the writer was stopped, then FATAL
    assert caplog.records[0].getMessage().split()[0] == "takeoff.fdr_open_failed"
    assert sink.of_kind("takeoff.fdr_open_failed")
    assert ctl.states["fdr_recorder"] is LifecycleState.UNCONFIGURED
    fatal = err.getvalue()
    assert fatal.startswith("FATAL: flight data recorder failed to open (")
    assert fatal.rstrip().endswith("take-off aborted, FC link not opened")
    assert seq.phase is Phase.ABORTED


def test_fatal_line_names_the_cause_the_recorder_gave() -> None:
    ctl, err = ScriptedController(fail="fdr_recorder.activate"), io.StringIO()
    ctl.reasons["fdr_recorder"] = "flight root /r is locked by another flight recorder"
    result = _sequencer(ctl, MemorySink(), err).take_off()
    assert result.exit_code == EXIT_FDR_OPEN_FAILURE
    assert err.getvalue() == (
        "FATAL: flight data recorder failed to open (fdr_recorder.activate failed: "
        "flight root /r is locked by another flight recorder; node reports failure, "
        "state INACTIVE (expected ACTIVE)); take-off aborted, FC link not opened\n"
    )


def test_recorder_timeout_is_an_fdr_open_failure() -> None:
    ctl = ScriptedController(timeout="fdr_recorder.configure")
    result = _sequencer(ctl, MemorySink(), io.StringIO()).take_off()
    assert result.exit_code == EXIT_FDR_OPEN_FAILURE
    assert result.failed_step == "fdr_recorder.configure"
    # still unconfigured: asked once more (the request may never have arrived), no more
    assert ctl.calls.count("fdr_recorder.configure") == 2


@pytest.mark.parametrize("step", ["fdr_recorder.configure", "fc_bridge.activate"])
def test_a_transition_made_but_not_answered_goes_on_and_says_so(
    step: str, caplog: pytest.LogCaptureFixture
) -> None:
    ctl, err = ScriptedController(lose_answer=step), io.StringIO()
    with caplog.at_level(logging.WARNING, logger="gps_denied_onboard.takeoff"):
        result = _sequencer(ctl, MemorySink(), err).take_off()
    assert result.exit_code == EXIT_OK
    assert ctl.calls == TAKEOFF_ORDER  # nothing asked twice
    assert set(ctl.states.values()) == {LifecycleState.ACTIVE}
    assert err.getvalue() == ""
    node, transition = step.split(".")
    warned = [r.getMessage() for r in caplog.records]
    assert any(
        "takeoff.transition_unanswered" in m
        and f"node={node}" in m
        and f"transition={transition}" in m
        for m in warned
    ), warned


@pytest.mark.parametrize("step", ["fc_bridge.configure", "visual_nav.activate"])
def test_a_transition_whose_request_never_arrived_is_asked_once_more(
    step: str, caplog: pytest.LogCaptureFixture
) -> None:
    ctl, err = ScriptedController(drop_request=step), io.StringIO()
    with caplog.at_level(logging.WARNING, logger="gps_denied_onboard.takeoff"):
        result = _sequencer(ctl, MemorySink(), err).take_off()
    assert result.exit_code == EXIT_OK, err.getvalue()
    assert ctl.calls.count(step) == 2
    assert [c for c in ctl.calls if c != step] == [c for c in TAKEOFF_ORDER if c != step]
    assert set(ctl.states.values()) == {LifecycleState.ACTIVE}
    node = step.partition(".")[0]
    assert any(
        "takeoff.transition_resent" in r.getMessage() and f"node={node}" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize(
    ("failing", "expected_down"),
    [
        (
            "database.migrate",
            # prepare_database may have started the cluster before it failed
            [
                "database.release",
                "fdr_recorder.close_flight",
                "fdr_recorder.deactivate",
                "fdr_recorder.cleanup",
            ],
        ),
        (
            "tile_cache.activate",
            [
                "tile_cache.cleanup",
                "database.release",
                "fdr_recorder.close_flight",
                "fdr_recorder.deactivate",
                "fdr_recorder.cleanup",
            ],
        ),
        (
            "fc_bridge.activate",
            [
                "fc_bridge.cleanup",
                "visual_nav.deactivate",
                "visual_nav.cleanup",
                "tile_cache.deactivate",
                "tile_cache.cleanup",
                "database.release",
                "fdr_recorder.close_flight",
                "fdr_recorder.deactivate",
                "fdr_recorder.cleanup",
            ],
        ),
    ],
)
def test_other_node_failure_aborts_and_tears_down_in_reverse(
    failing: str, expected_down: list[str]
) -> None:
    ctl, sink, err = ScriptedController(fail=failing), MemorySink(), io.StringIO()
    result = _sequencer(ctl, sink, err).take_off()
    assert result.exit_code == EXIT_TAKEOFF_FAILED
    assert result.failed_step == failing
    idx = ctl.calls.index(failing)
    assert ctl.calls[idx + 1 :] == expected_down
    assert set(ctl.states.values()) == {LifecycleState.UNCONFIGURED}
    assert not ctl.flight_open
    (aborted,) = sink.of_kind("takeoff.aborted")
    assert aborted.payload["failed_step"] == failing
    assert err.getvalue() == ""  # the FATAL line is only for the recorder


def test_state_read_back_that_disagrees_fails_the_step() -> None:
    class Liar(ScriptedController):
        def get_state(self, node: str, timeout_s: float) -> LifecycleState:
            if node == "tile_cache":
                return LifecycleState.UNCONFIGURED
            return super().get_state(node, timeout_s)

    result = _sequencer(Liar(), MemorySink(), io.StringIO()).take_off()
    assert result.exit_code == EXIT_TAKEOFF_FAILED
    assert result.failed_step == "tile_cache.configure"


def test_flight_id_defaults_to_take_off_time() -> None:
    seq = TakeoffSequencer(
        ScriptedController(), TakeoffConfig(), ManualClock(1_778_544_000 * 10**9), MemorySink()
    )
    assert seq.take_off().flight_id == "flight-20260512T000000Z"


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError):
        TakeoffConfig(service_timeout_s=0)
    with pytest.raises(ConfigError):
        TakeoffConfig(recorder_node="x", tile_cache_node="x")
    with pytest.raises(ConfigError):
        TakeoffConfig(flight_id="../etc")


def test_recorder_watch_reports_loss_once_and_recovery_once() -> None:
    clock = ManualClock(0)
    watch = RecorderWatch(clock, silence_ns=3 * 10**9)
    watch.alive()
    events = []
    for _ in range(10):
        clock.advance_s(1)
        events.append(watch.tick())
    assert events.count("lost") == 1
    assert events.index("lost") == 3
    watch.alive()
    assert watch.tick() == "recovered"
    assert watch.tick() is None


def test_recorder_watch_takes_no_paused_flight_clock_for_a_dead_recorder() -> None:
    """A lockstep replay pauses /clock while it waits (on a restarted estimator): the
    recorder's diagnostics stop with it. Silent on host time alone is not lost; silent
    on both clocks is, at whichever clock is the faster (a 4x replay: host time)."""
    host, flight = ManualClock(0), ManualClock(0)
    watch = RecorderWatch(host, silence_ns=3 * 10**9, flight=flight)
    watch.alive()
    host.advance_s(30)  # /clock paused for 30 s of host time
    assert watch.tick() is None and watch.silent_for_ns == 0
    flight.advance_s(1)  # the replay goes on; the recorder's next diagnostics come
    watch.alive()
    events = []
    for _ in range(4):  # a 4x replay with a dead recorder: 4 flight s per host s
        host.advance_s(1)
        flight.advance_s(4)
        events.append(watch.tick())
    assert events == [None, None, None, "lost"]  # 3 s of host time, not 3 of flight time
    watch.alive()
    assert watch.tick() == "recovered"


def test_recorder_watch_counts_silence_from_a_clock_that_stepped_back() -> None:
    """The flight clock set back an hour (a looped replay, the system time set): the
    dead recorder is still noticed after the limit, not after the hour."""

    class SettableClock:
        now = 3600 * 10**9

        def now_ns(self) -> int:
            return self.now

    host, flight = ManualClock(0), SettableClock()
    watch = RecorderWatch(host, silence_ns=3 * 10**9, flight=flight)
    watch.alive()
    flight.now = 0
    events = []
    for _ in range(5):
        host.advance_s(1)
        flight.now += 10**9
        events.append(watch.tick())
    # counted from the first tick that saw the step: one tick later than unstepped
    assert events.index("lost") == 4


def test_in_flight_a_restarted_estimator_or_bridge_is_brought_back_up() -> None:
    """A crashed visual_nav / fc_bridge process started again comes up unconfigured;
    the sequencer configures and activates it (and records it). A node that does
    not answer is looked at again next time; the recorder and the tile cache are
    never touched; nothing happens before take-off or after landing."""
    ctl, sink, err = ScriptedController(), MemorySink(), io.StringIO()
    seq = _sequencer(ctl, sink, err)
    assert seq.revive() == []  # not flying yet
    assert seq.take_off().exit_code == EXIT_OK
    assert seq.revive() == []  # all active: nothing to do
    ctl.calls.clear()
    ctl.states["visual_nav"] = LifecycleState.UNCONFIGURED  # respawned
    ctl.states["fc_bridge"] = LifecycleState.INACTIVE
    ctl.states["tile_cache"] = LifecycleState.UNCONFIGURED
    ctl.states["fdr_recorder"] = LifecycleState.UNCONFIGURED
    assert seq.revive() == ["visual_nav", "fc_bridge"]
    assert ctl.calls == ["visual_nav.configure", "visual_nav.activate", "fc_bridge.activate"]
    assert ctl.states["visual_nav"] is ctl.states["fc_bridge"] is LifecycleState.ACTIVE
    assert ctl.states["tile_cache"] is ctl.states["fdr_recorder"] is LifecycleState.UNCONFIGURED
    revived = [r.payload for r in sink.records if r.kind == "takeoff.node_revived"]
    assert revived == [
        {"node": "visual_nav", "from_state": "unconfigured"},
        {"node": "fc_bridge", "from_state": "inactive"},
    ]
    # dead (no answer), then a failed activate: neither raises; both tried again later
    ctl.states["visual_nav"] = LifecycleState.UNCONFIGURED
    ctl.timeout, ctl.fail = "", "visual_nav.activate"

    def dead(node: str, timeout_s: float) -> LifecycleState:
        if node == "fc_bridge":
            raise StepTimeout("/fc_bridge/get_state did not answer", step="fc_bridge.get_state")
        return ctl.states[node]

    ctl.get_state = dead  # type: ignore[method-assign]
    assert seq.revive() == []
    ctl.fail = ""
    ctl.states["visual_nav"] = LifecycleState.UNCONFIGURED
    assert seq.revive() == ["visual_nav"]
    del ctl.get_state
    seq.land("operator stop")
    ctl.states["visual_nav"] = LifecycleState.UNCONFIGURED
    assert seq.revive() == []  # landed: nothing comes back up
    assert ctl.states["visual_nav"] is LifecycleState.UNCONFIGURED


def test_revive_settings_are_checked() -> None:
    with pytest.raises(ConfigError):
        TakeoffConfig(revive_period_s=-1.0)
    with pytest.raises(ConfigError):
        TakeoffConfig(revive_timeout_s=0.0)
    assert TakeoffConfig(visual_nav_node="").revivable() == ("fc_bridge",)
