"""The tile_cache node through repeated lifecycle cycles, over real DDS.

Driven as the take-off sequencer drives it: change_state and get_state over DDS from
another node, while the node spins on a multi-threaded executor of its own thread
(what ``run_node`` gives it). The node once destroyed its snapshot subscription and
timers in on_deactivate, and its services in on_cleanup, on one executor thread
while another built the wait set from them: rclpy raised ``InvalidHandle`` out of
``spin_once`` (as it did for fc_bridge, see test_fc_node_cycles) and the node
answered nothing more.

The diagnostics timer (in a callback group of its own, so beside a transition) checks
that the node is active and then builds and publishes its message: a deactivate that
lands in between must not let it go out after the deactivate returned, nor wait for it.
Each cycle holds a diagnostics message there while the node is deactivated.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from fc_bridge.node_support import spin_ros  # noqa: E402
from gps_denied_onboard.msg import TileSnapshot  # noqa: E402
from gps_denied_onboard.srv import ListUploads  # noqa: E402
from lifecycle_driver import LifecycleDriver  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import State, TransitionCallbackReturn  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402

from gps_denied_onboard.nodes.tile_cache_node import SNAPSHOT_QOS, TileCacheNode  # noqa: E402
from gps_denied_onboard.ros_topics import (  # noqa: E402
    TOPIC_DIAGNOSTICS,
    TOPIC_TILE_SNAPSHOTS,
    ns_to_time_msg,
    time_msg_to_ns,
)

from .conftest import make_jpeg  # noqa: E402

CYCLES = 6
DIAGNOSTICS_PERIOD_S = 0.05
#: each inactive spell lasts several diagnostics periods, so that a diagnostics
#: timer left publishing while inactive would show in it
INACTIVE_SPELL_S = 6 * DIAGNOSTICS_PERIOD_S
FLIGHT = "6f1c2a7e-93b4-4d0a-9e51-0c8d2f4b7a13"
Z = 16
RESEND_S = 2.0
#: the most a held diagnostics message waits for the test to let it go (it is let go as
#: soon as the deactivate returned; waiting this long means the deactivate waited for it)
HOLD_S = 10.0


class SeenTileCache(TileCacheNode):
    """The node, noting each snapshot its callback was handed and has finished with
    (cell x, whether the node was active when handed it); its diagnostics timer can be
    held after its active check and before its publish (in the store's ``stats``)
    until the test lets it go."""

    def __init__(self, **kwargs: Any) -> None:
        self.seen: list[tuple[int, bool]] = []
        self.hold = threading.Event()  # set: the next diagnostics stops in stats()
        self.held = threading.Event()  # one is stopped there
        self.release = threading.Event()
        self.held_too_long = False
        super().__init__(**kwargs)

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        result: TransitionCallbackReturn = super().on_configure(state)
        store = self._store
        if store is not None:
            stats = store.stats

            def held_stats() -> Any:
                if self.hold.is_set():
                    self.hold.clear()
                    self.held.set()
                    self.held_too_long |= not self.release.wait(HOLD_S)
                return stats()

            store.stats = held_stats  # type: ignore[method-assign]
        return result

    def _on_snapshot(self, msg: Any) -> None:
        active = self._active
        super()._on_snapshot(msg)
        self.seen.append((int(msg.x), active))


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    # two workers at least (rclpy's default is one per CPU the process may use): a
    # diagnostics message held in one, the deactivate runs in another
    yield from spin_ros(num_threads=4)


def snapshot(x: int) -> TileSnapshot:
    msg = TileSnapshot(
        zoom=Z,
        x=x,
        y=22000,
        flight_id=FLIGHT,
        frame_id=f"frame-{x}",
        quality_json=json.dumps({"score": 0.4}),
        image=CompressedImage(format="jpeg", data=make_jpeg(x)),
    )
    msg.header.stamp = ns_to_time_msg(1_750_000_000 * 10**9)
    return msg


def _entities(node: TileCacheNode) -> set[int]:
    """Identities of the node's subscriptions, timers and tile services."""
    return {id(e) for e in (*node.subscriptions, *node.timers, *node._tile_services)}


def test_node_answers_after_every_deactivate_and_ignores_input_while_inactive(
    ros: MultiThreadedExecutor, pg_dsn: str, tmp_path: Path
) -> None:
    name = f"tile_cache_{uuid.uuid4().hex[:8]}"
    node = SeenTileCache(
        node_name=name,
        parameter_overrides=[
            rclpy.parameter.Parameter("dsn", value=pg_dsn),
            rclpy.parameter.Parameter("tile_root", value=str(tmp_path / "tiles")),
            rclpy.parameter.Parameter("diagnostics_period_s", value=DIAGNOSTICS_PERIOD_S),
            rclpy.parameter.Parameter("maintenance_period_s", value=0.2),
        ],
    )
    ros.add_node(node)
    driver = LifecycleDriver(name, prefix="tc_cycle_driver")
    snapshots = driver.node.create_publisher(TileSnapshot, TOPIC_TILE_SNAPSHOTS, SNAPSHOT_QOS)
    diag_stamps: list[int] = []

    def on_diag(msg: Any) -> None:
        if any(s.name == "tile_cache" for s in msg.status):
            diag_stamps.append(time_msg_to_ns(msg.header.stamp))

    driver.node.create_subscription(DiagnosticArray, TOPIC_DIAGNOSTICS, on_diag, 10)
    inactive: list[tuple[int, int]] = []  # (from, to) host times when the node was inactive

    def handed(x: int, active: bool) -> None:
        """Publish a snapshot of cell ``x`` until the node's callback was handed it
        (again after RESEND_S without it: only one is in flight at a time, so none
        arrives after the node changed state)."""

        def seen() -> bool:
            return any(n == x for n, _ in node.seen)

        end = time.monotonic() + 20.0
        while not seen() and time.monotonic() < end:
            snapshots.publish(snapshot(x))
            driver.spin_until(seen, timeout_s=RESEND_S)
        assert (x, active) in node.seen, node.seen

    try:
        assert driver.transition(Transition.TRANSITION_CONFIGURE)
        made = _entities(node)
        assert len(made) == 1 + 2 + 5 + 1  # + its record publisher's look for a match
        for cycle in range(CYCLES):
            assert driver.transition(Transition.TRANSITION_ACTIVATE), cycle
            stored = node.snapshots_stored
            handed(34000 + cycle, active=True)
            assert node.snapshots_stored == stored + 1, cycle
            node.held.clear()
            node.release.clear()
            node.hold.set()
            assert node.held.wait(5.0), cycle  # a diagnostics message built, not yet published
            assert driver.transition(Transition.TRANSITION_DEACTIVATE), cycle
            since = time.time_ns()
            node.release.set()
            # answered: LifecycleDriver raises if get_state goes unanswered
            assert driver.state() == "inactive", cycle
            stored = node.snapshots_stored
            handed(35000 + cycle, active=False)
            assert node.snapshots_stored == stored, cycle
            driver.spin(INACTIVE_SPELL_S)  # the spell a stray diagnostics message would show in
            assert driver.state() == "inactive", cycle
            inactive.append((since, time.time_ns()))
        assert driver.transition(Transition.TRANSITION_CLEANUP)
        assert driver.state() == "unconfigured"
        assert driver.transition(Transition.TRANSITION_CONFIGURE)
        assert driver.transition(Transition.TRANSITION_ACTIVATE)
        up = time.time_ns()
        handed(34100, active=True)
        assert driver.spin_until(lambda: any(s > up for s in diag_stamps))  # timers run again
        pending = driver.call(ListUploads, "list_uploads", ListUploads.Request(limit=0))
        stored_cells = [34000 + c for c in range(CYCLES)] + [34100]
        assert sorted(t.x for t in pending.tiles) == stored_cells  # none handed while inactive
        # nothing made or destroyed by a transition: what the executor waits on stays valid
        assert _entities(node) == made
        assert not node.held_too_long, "a deactivate waited for the diagnostics being built"
        stray = [s for s in diag_stamps if any(a < s < b for a, b in inactive)]
        assert stray == [], f"{len(stray)} diagnostics published after a deactivate returned"
    finally:
        node.release.set()
        driver.close()
        ros.remove_node(node)
        node.shutdown()
        node.destroy_node()
