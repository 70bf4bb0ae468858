"""The fdr_recorder node through repeated lifecycle cycles, over real DDS.

Driven as the take-off sequencer drives it (change_state and get_state over DDS from
another node) while the node spins on a multi-threaded executor on its own thread:
``run_node`` gives the recorder a single-threaded one, where transitions and the
wait set take turns, but the node no longer relies on that. It once made its
``/fdr/records`` and raw subscriptions and its timers at each activation and
destroyed them at each deactivation (its services at cleanup); a transition that
destroys entities while another executor thread builds its wait set from them makes
rclpy raise ``InvalidHandle`` out of ``spin_once`` (it stopped fc_bridge, see
test_fc_node_cycles). What is recorded must not change: what comes while active is
in the flight, what comes while inactive is not (as when nobody was subscribed).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from fc_bridge.node_support import spin_ros  # noqa: E402
from gps_denied_onboard.msg import FdrRecord  # noqa: E402
from gps_denied_onboard.srv import CloseFlight, OpenFlight  # noqa: E402
from lifecycle_driver import LifecycleDriver  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from test_fdr_node import _record  # noqa: E402

from gps_denied_onboard.fdr import tools  # noqa: E402
from gps_denied_onboard.nodes.fdr_recorder_node import FdrRecorderNode  # noqa: E402
from gps_denied_onboard.ros_topics import (  # noqa: E402
    RECORD_QOS,
    TOPIC_DIAGNOSTICS,
    TOPIC_FDR_RECORDS,
    time_msg_to_ns,
)

CYCLES = 6
DIAGNOSTICS_PERIOD_S = 0.05
#: each inactive spell lasts several diagnostics periods, so that a diagnostics
#: timer left publishing while inactive would show in it
INACTIVE_SPELL_S = 6 * DIAGNOSTICS_PERIOD_S
RESEND_S = 2.0
FLIGHT = "CYCLES"
T0 = 1_778_544_000 * 1_000_000_000


class SeenRecorder(FdrRecorderNode):
    """The recorder, noting each record and raw sample its callbacks were handed and
    have finished with (what it carried, whether the node was active then)."""

    def __init__(self, **kwargs: Any) -> None:
        self.handed: list[tuple[str, bool]] = []
        super().__init__(**kwargs)
        raw_dispatcher = self._raw_subs._dispatcher

        def dispatcher(key: Any) -> Callable[..., None]:
            inner = raw_dispatcher(key)

            def noted(data: bytes, info: Any) -> None:
                active = self._active
                inner(data, info)
                self.handed.append((bytes(data).decode(errors="replace"), active))

            return noted

        self._raw_subs._dispatcher = dispatcher  # type: ignore[method-assign]

    def _on_record_drain(self, msg: Any, info: Any) -> None:
        active = self._active
        super()._on_record_drain(msg, info)
        self.handed.append((msg.payload_json, active))


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    yield from spin_ros()


def _entities(node: FdrRecorderNode) -> set[int]:
    """Identities of the node's publishers, subscriptions, services and timers."""
    return {id(e) for e in (*node.publishers, *node.subscriptions, *node.services, *node.timers)}


def test_recorder_answers_after_every_deactivate_and_records_only_while_active(
    ros: MultiThreadedExecutor, tmp_path: Path
) -> None:
    name = f"fdr_recorder_{uuid.uuid4().hex[:8]}"
    chatter = f"/{name}_test/chatter"
    root = tmp_path / "flights"
    node = SeenRecorder(
        node_name=name,
        parameter_overrides=[
            Parameter("flight_root", value=str(root)),
            Parameter("free_space_floor_bytes", value=0),
            Parameter("record_topics", value=[f"{chatter}:std_msgs/msg/String"]),
            Parameter("diagnostics_period_s", value=DIAGNOSTICS_PERIOD_S),
            Parameter("host_health_period_s", value=DIAGNOSTICS_PERIOD_S),
        ],
    )
    ros.add_node(node)
    driver = LifecycleDriver(name, prefix="fdr_cycle_driver")
    records = driver.node.create_publisher(FdrRecord, TOPIC_FDR_RECORDS, RECORD_QOS)
    raw = driver.node.create_publisher(String, chatter, 10)
    diag_stamps: list[int] = []

    def on_diag(msg: Any) -> None:
        if any(s.name in (name, "host_health") for s in msg.status):
            diag_stamps.append(time_msg_to_ns(msg.header.stamp))

    driver.node.create_subscription(DiagnosticArray, TOPIC_DIAGNOSTICS, on_diag, 10)
    inactive: list[tuple[int, int]] = []  # (from, to) host times when the node was inactive
    n = 0

    def handed(label: str, active: bool) -> None:
        """Publish a record and a raw sample carrying ``label`` until the node's
        callbacks were handed each (again after RESEND_S without: one of each is in
        flight at a time, so none arrives after the node changed state)."""
        nonlocal n

        def seen(text: str) -> bool:
            return any(text in carried for carried, _ in node.handed)

        end = time.monotonic() + 20.0
        while not seen(f'"{label}"') and time.monotonic() < end:
            n += 1
            records.publish(_record("fc.mode_change", "cycles_p", {"mode": label}, T0 + n))
            driver.spin_until(lambda: seen(f'"{label}"'), timeout_s=RESEND_S)
        while not seen(f"raw {label}") and time.monotonic() < end:
            raw.publish(String(data=f"raw {label}"))
            driver.spin_until(lambda: seen(f"raw {label}"), timeout_s=RESEND_S)
        assert [a for c, a in node.handed if f'"{label}"' in c or f"raw {label}" in c] == [
            active,
            active,
        ], node.handed

    try:
        assert driver.transition(Transition.TRANSITION_CONFIGURE)
        made: set[int] = set()
        for cycle in range(CYCLES):
            assert driver.transition(Transition.TRANSITION_ACTIVATE), cycle
            if cycle == 0:
                opened = driver.call(
                    OpenFlight, "open_flight", OpenFlight.Request(flight_id=FLIGHT)
                )
                assert opened.success, opened.error
                driver.wait_for_subscribers(records)
                driver.wait_for_subscribers(raw)
                # the records and raw subscriptions are made at the first activation
                made = _entities(node)
            handed(f"active {cycle}", active=True)
            assert driver.transition(Transition.TRANSITION_DEACTIVATE), cycle
            # answered: LifecycleDriver raises if get_state goes unanswered
            assert driver.state() == "inactive", cycle
            since = time.time_ns()
            handed(f"inactive {cycle}", active=False)
            driver.spin(INACTIVE_SPELL_S)  # the spell a stray diagnostics message would show in
            assert driver.state() == "inactive", cycle
            inactive.append((since, time.time_ns()))
        closed = driver.call(CloseFlight, "close_flight", CloseFlight.Request(flight_id=FLIGHT))
        assert closed.success, closed.error
        assert driver.transition(Transition.TRANSITION_CLEANUP)
        assert driver.state() == "unconfigured"
        assert driver.transition(Transition.TRANSITION_CONFIGURE)
        assert driver.transition(Transition.TRANSITION_ACTIVATE)
        up = time.time_ns()
        again = driver.call(OpenFlight, "open_flight", OpenFlight.Request(flight_id="AGAIN"))
        assert again.success, again.error
        handed("after cleanup", active=True)
        assert driver.spin_until(lambda: any(s > up for s in diag_stamps))  # timers run again
        closed = driver.call(CloseFlight, "close_flight", CloseFlight.Request(flight_id="AGAIN"))
        assert closed.success, closed.error
        # nothing made or destroyed by a transition: what the executor waits on stays valid
        assert _entities(node) == made
        stray = [s for s in diag_stamps if any(a < s < b for a, b in inactive)]
        assert stray == [], f"{len(stray)} diagnostics published while inactive"
        assert driver.transition(Transition.TRANSITION_DEACTIVATE)
        assert driver.transition(Transition.TRANSITION_CLEANUP)
    finally:
        driver.close()
        ros.remove_node(node)
        node.shutdown()
        node.destroy_node()

    def recorded(flight: str) -> tuple[list[str], list[str]]:
        path = root / flight
        modes = [r["payload"]["mode"] for r in tools.iter_records(path, kinds=["fc.mode_change"])]
        raws = [
            r["message"]["data"]
            for r in tools.iter_records(path, raw=True)
            if r.get("topic") == chatter
        ]
        return modes, raws

    active = [f"active {c}" for c in range(CYCLES)]
    assert recorded(FLIGHT) == (active, [f"raw {m}" for m in active])
    assert recorded("AGAIN") == (["after cleanup"], ["raw after cleanup"])
