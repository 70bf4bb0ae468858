"""The take-off node's service controller over real DDS, in-process: what it
does when an answer is late or never comes, and what it leaves running when
the database step fails part-way. The servers here are plain rclpy services
standing in for the nodes' lifecycle services; the embedded cluster is real."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rclpy
from lifecycle_msgs.msg import State
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from gps_denied_onboard.embedded_pg import cluster_home
from gps_denied_onboard.nodes.service_calls import RESEND_S
from gps_denied_onboard.nodes.takeoff_node import RosLifecycleController, TakeoffNodeConfig
from gps_denied_onboard.takeoff.controller import LifecycleState, Transition
from gps_denied_onboard.takeoff.errors import StepTimeout

pytestmark = [pytest.mark.ros]


@pytest.fixture(scope="module")
def executor() -> Iterator[MultiThreadedExecutor]:
    rclpy.init()
    ex = MultiThreadedExecutor(num_threads=4)
    spinner = threading.Thread(target=ex.spin, daemon=True)
    spinner.start()
    try:
        yield ex
    finally:
        ex.shutdown()
        rclpy.shutdown()
        spinner.join(timeout=10)


class FirstAnswerLate:
    """``/<name>/get_state`` and ``/<name>/change_state`` whose first request
    of each kind is answered only after ``late_s`` (an answer lost on a loaded
    machine looks the same to the caller); later ones at once."""

    def __init__(self, node: Node, name: str, late_s: float) -> None:
        self.requests: dict[str, int] = {"get_state": 0, "change_state": 0}
        self._late_s = late_s
        self._lock = threading.Lock()
        self._released = threading.Event()
        group = ReentrantCallbackGroup()
        node.create_service(GetState, f"/{name}/get_state", self._get, callback_group=group)
        node.create_service(
            ChangeState, f"/{name}/change_state", self._change, callback_group=group
        )

    def _first(self, kind: str) -> bool:
        with self._lock:
            self.requests[kind] += 1
            return self.requests[kind] == 1

    def _get(self, _req: Any, res: Any) -> Any:
        if self._first("get_state"):
            self._released.wait(self._late_s)
        res.current_state = State(id=State.PRIMARY_STATE_INACTIVE, label="inactive")
        return res

    def _change(self, _req: Any, res: Any) -> Any:
        if self._first("change_state"):
            self._released.wait(self._late_s)
        res.success = True
        return res

    def release(self) -> None:
        self._released.set()


def _nodes(executor: MultiThreadedExecutor) -> tuple[Node, Node, str]:
    name = f"slow_{uuid.uuid4().hex[:8]}"
    server = Node(f"{name}_server")
    client = Node(f"takeoff_{uuid.uuid4().hex[:8]}")
    executor.add_node(server)
    executor.add_node(client)
    return server, client, name


def test_a_state_query_is_asked_again_until_answered_and_a_transition_never_is(
    executor: MultiThreadedExecutor, tmp_path: Path
) -> None:
    server, client, name = _nodes(executor)
    slow = FirstAnswerLate(server, name, late_s=30.0)
    try:
        ctl = RosLifecycleController(
            client, TakeoffNodeConfig(tile_cache_node=name, pg_data_dir=str(tmp_path / "pg"))
        )
        # the first get_state is not answered for 30 s: the one sent after RESEND_S is
        assert ctl.get_state(name, timeout_s=RESEND_S * 3) is LifecycleState.INACTIVE
        assert slow.requests["get_state"] == 2
        # a transition asked twice could be taken twice: one request, then the timeout
        with pytest.raises(StepTimeout, match="did not answer"):
            ctl.change_state(name, Transition.CONFIGURE, timeout_s=RESEND_S * 2)
        assert slow.requests["change_state"] == 1
    finally:
        slow.release()
        for node in (server, client):
            executor.remove_node(node)
            node.destroy_node()


def _postmaster_alive(data_dir: Path) -> bool:
    pid_file = data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    return Path(f"/proc/{pid}").exists()


@pytest.mark.slow
def test_a_database_step_that_fails_after_starting_the_cluster_is_released(
    executor: MultiThreadedExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluster starts and migrates, then the tile cache never answers for
    its DSN: the step fails, and releasing it stops the server it started (the
    sequencer releases after every database step, failed or not)."""
    monkeypatch.delenv("GDO_DSN", raising=False)
    home = cluster_home(tmp_path / "pg")  # as root, outside the 0700 tmp_path
    data_dir = home.data_dir
    client = Node(f"takeoff_{uuid.uuid4().hex[:8]}")
    executor.add_node(client)
    ctl = RosLifecycleController(
        client,
        TakeoffNodeConfig(
            tile_cache_node=f"absent_{uuid.uuid4().hex[:8]}",
            pg_data_dir=str(data_dir),
            service_timeout_s=1.0,
        ),
    )
    try:
        with pytest.raises(StepTimeout, match="set_parameters not available"):
            ctl.prepare_database(timeout_s=1.0)
        assert _postmaster_alive(data_dir)  # started before the failure
        ctl.release_database()
        deadline = time.monotonic() + 10
        while _postmaster_alive(data_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _postmaster_alive(data_dir)
        assert not (data_dir / "postmaster.pid").exists()
    finally:
        ctl.release_database()
        home.remove()
        executor.remove_node(client)
        client.destroy_node()
