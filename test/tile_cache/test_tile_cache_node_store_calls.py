"""The tile_cache node's store calls in progress when a transition takes it down, over
real DDS and real PostgreSQL.

The services, the snapshot subscription and the maintenance timer run beside the
lifecycle services (callback groups of their own, on ``run_node``'s multi-threaded
executor). A store call that had started when a deactivate came could land its write
after the deactivate returned; one still running when a shutdown (or cleanup) closed
the store met a closed pool, and wrote tile files after the tile root was given up.

The writes are held at the database: the test holds ``LOCK TABLE tiles IN EXCLUSIVE
MODE`` (reads go on, every INSERT or UPDATE of ``tiles`` waits), sees the node's write
waiting in ``pg_stat_activity``, requests the transition and lets the writes go as
soon as the transition answered, or after ``HOLD_S`` when it waits for them. The
tables' content when the transition answered must be their content once every held
write is over.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
psycopg = pytest.importorskip("psycopg")

from fc_bridge.node_support import spin_ros  # noqa: E402
from gps_denied_onboard.msg import TileSnapshot  # noqa: E402
from gps_denied_onboard.srv import GetTile, PutTile  # noqa: E402
from lifecycle_driver import LifecycleDriver  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402

from gps_denied_onboard.nodes.tile_cache_node import (  # noqa: E402
    NOT_ACTIVE,
    SNAPSHOT_QOS,
    TileCacheNode,
)
from gps_denied_onboard.ros_topics import TOPIC_TILE_SNAPSHOTS, ns_to_time_msg  # noqa: E402

from .conftest import make_jpeg, sha  # noqa: E402

FLIGHT = "6f1c2a7e-93b4-4d0a-9e51-0c8d2f4b7a13"
Z, Y = 16, 22000
#: how long the writes are held when the transition has not answered (it is waiting
#: for them); they are let go at once when it answered
HOLD_S = 1.0
#: what the tables hold, as one string (compared before and after the held writes)
CONTENT_SQL = (
    "SELECT coalesce((SELECT string_agg(t::text, '|' ORDER BY t::text) FROM tiles t), '')"
    " || '#' || "
    "coalesce((SELECT string_agg(v::text, '|' ORDER BY v::text) FROM tile_votes v), '')"
)
#: the node's statements that wait for the test's table lock
WAITING_SQL = (
    "SELECT query FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
)
INSERT, ACCESS_FLUSH = "INSERT INTO tiles", "UPDATE tiles AS t SET accessed_at"


class DoneTileCache(TileCacheNode):
    """The node, noting the cell of each snapshot its callback has finished with."""

    def __init__(self, **kwargs: Any) -> None:
        self.done: list[int] = []
        super().__init__(**kwargs)

    def _on_snapshot(self, msg: Any) -> None:
        super()._on_snapshot(msg)
        self.done.append(int(msg.x))


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    # a worker each for: the held write, the held maintenance, the transition waiting
    # for them, a service call answered meanwhile; and spare ones
    yield from spin_ros(num_threads=6)


@pytest.fixture
def node_params() -> dict[str, Any]:
    """Parameters beyond dsn, tile_root and maintenance_period_s. The held writes of the
    tests that wait for them must outlast the hold: lock timeouts far above it."""
    return {"lock_timeout_s": 120.0, "statement_timeout_s": 240.0}


@pytest.fixture
def node(
    ros: MultiThreadedExecutor, pg_dsn: str, tmp_path: Path, node_params: dict[str, Any]
) -> Iterator[DoneTileCache]:
    made = DoneTileCache(
        node_name=f"tile_cache_{uuid.uuid4().hex[:8]}",
        parameter_overrides=[
            rclpy.parameter.Parameter("dsn", value=pg_dsn),
            rclpy.parameter.Parameter("tile_root", value=str(tmp_path / "tiles")),
            rclpy.parameter.Parameter("maintenance_period_s", value=0.1),
            *(rclpy.parameter.Parameter(k, value=v) for k, v in node_params.items()),
        ],
    )
    ros.add_node(made)
    yield made
    ros.remove_node(made)
    made.shutdown()
    made.destroy_node()


@pytest.fixture
def driver(node: DoneTileCache) -> Iterator[LifecycleDriver]:
    made = LifecycleDriver(node.get_name(), prefix="tc_calls_driver")
    yield made
    made.close()


class TableLock:
    """The test's hold on every write to ``tiles`` (reads go on), on a connection of its own."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn)  # not autocommit: the lock lasts to commit()
        self.conn.execute("LOCK TABLE tiles IN EXCLUSIVE MODE")
        # the looks, on another connection: pg_stat_activity is read once per transaction
        self.watch = psycopg.connect(dsn, autocommit=True)

    def waiting(self) -> list[str]:
        return [str(row[0]) for row in self.watch.execute(WAITING_SQL).fetchall()]

    def content(self) -> str:
        row = self.watch.execute(CONTENT_SQL).fetchone()
        assert row is not None
        return str(row[0])

    def release(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()
        self.watch.close()


@pytest.fixture
def table_lock(pg_dsn: str) -> Iterator[list[TableLock]]:
    held: list[TableLock] = []
    yield held
    for lock in held:  # before the node's teardown: a shutdown may wait for the writes
        lock.close()


def put_request(x: int) -> Any:
    data = make_jpeg(x)
    return PutTile.Request(
        zoom=Z,
        x=x,
        y=Y,
        source="satellite",
        content_sha256=sha(data),
        image=CompressedImage(format="jpeg", data=data),
    )


def get_request(x: int) -> Any:
    return GetTile.Request(zoom=Z, x=x, y=Y, source="satellite")


def snapshot(x: int) -> TileSnapshot:
    msg = TileSnapshot(
        zoom=Z,
        x=x,
        y=Y,
        flight_id=FLIGHT,
        frame_id=f"frame-{x}",
        quality_json=json.dumps({"reference_match": True}),  # a vote: a second write
        image=CompressedImage(format="jpeg", data=make_jpeg(x)),
    )
    msg.header.stamp = ns_to_time_msg(1_750_000_000 * 10**9)
    return msg


def state_label(node: TileCacheNode) -> str:
    return str(node._state_machine.current_state[1])


def hold_a_flush_beside_a_write(driver: LifecycleDriver, lock: TableLock) -> None:
    """Buffer an access time (a read of the stored tile 1); return once the node's
    maintenance flushing it and a tile write begun by the caller both wait at the lock."""
    got = driver.call(GetTile, "get_tile", get_request(1))
    assert got.found, got.error
    assert driver.spin_until(
        lambda: all(any(q.startswith(s) for q in lock.waiting()) for s in (INSERT, ACCESS_FLUSH)),
        timeout_s=30.0,
    ), lock.waiting()


def transition_over_held_writes(
    driver: LifecycleDriver,
    lock: TableLock,
    transition_id: int,
    meanwhile: Callable[[], None] | None = None,
) -> tuple[bool, str]:
    """Request the transition; let the held writes go once it answered, or after
    HOLD_S. Returns its success and the tables' content when it answered."""
    req = ChangeState.Request()
    req.transition.id = transition_id
    future = driver._client(ChangeState, "change_state").call_async(req)
    if meanwhile is not None:
        meanwhile()
    driver.spin_until(future.done, timeout_s=HOLD_S)
    at_answer = lock.content() if future.done() else None
    lock.release()
    assert driver.spin_until(future.done, timeout_s=60.0), "the transition did not answer"
    if at_answer is None:
        at_answer = lock.content()
    return bool(future.result().success), at_answer


def test_no_store_write_lands_after_a_deactivate_returned(
    node: DoneTileCache,
    driver: LifecycleDriver,
    pg_dsn: str,
    table_lock: list[TableLock],
) -> None:
    """A put_tile call and a maintenance flush are writing when a deactivate comes:
    what they write is in the tables when the deactivate answers, nothing after.
    Calls that come while it waits for them are refused at once ("not active")."""
    assert driver.transition(Transition.TRANSITION_CONFIGURE)
    assert driver.transition(Transition.TRANSITION_ACTIVATE)
    assert driver.call(PutTile, "put_tile", put_request(1)).success
    lock = TableLock(pg_dsn)
    table_lock.append(lock)
    client = driver._client(PutTile, "put_tile")
    put_future = client.call_async(put_request(2))
    hold_a_flush_beside_a_write(driver, lock)

    def refused_meanwhile() -> None:
        assert driver.spin_until(lambda: state_label(node) in ("deactivating", "inactive"))
        put = driver.call(PutTile, "put_tile", put_request(3))
        assert (put.success, put.error_type) == (False, "NotActive")
        got = driver.call(GetTile, "get_tile", get_request(1))
        assert (got.found, got.error) == (False, NOT_ACTIVE)

    ok, at_answer = transition_over_held_writes(
        driver, lock, Transition.TRANSITION_DEACTIVATE, refused_meanwhile
    )
    assert ok
    assert driver.spin_until(put_future.done, timeout_s=30.0)
    assert driver.spin_until(lambda: not lock.waiting(), timeout_s=30.0)
    assert lock.content() == at_answer, "a write landed after the deactivate returned"
    assert put_future.result().success  # begun while active: finished, before the answer
    assert driver.call(GetTile, "get_tile", get_request(2)).error == NOT_ACTIVE


def test_a_shutdown_closes_the_store_only_once_its_calls_are_over(
    node: DoneTileCache,
    driver: LifecycleDriver,
    pg_dsn: str,
    table_lock: list[TableLock],
) -> None:
    """A snapshot is being stored (a tile and a vote) and a maintenance flush is
    writing when a shutdown comes straight from active: they finish on the open store
    before it is closed (none is refused for a closed store), nothing is written after
    the shutdown answered, and the services answer "not active" after it."""
    assert driver.transition(Transition.TRANSITION_CONFIGURE)
    assert driver.transition(Transition.TRANSITION_ACTIVATE)
    assert driver.call(PutTile, "put_tile", put_request(1)).success
    snapshots = driver.node.create_publisher(TileSnapshot, TOPIC_TILE_SNAPSHOTS, SNAPSHOT_QOS)
    driver.wait_for_subscribers(snapshots)
    lock = TableLock(pg_dsn)
    table_lock.append(lock)
    snapshots.publish(snapshot(7))
    hold_a_flush_beside_a_write(driver, lock)
    ok, at_answer = transition_over_held_writes(driver, lock, Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert ok
    assert driver.spin_until(lambda: 7 in node.done, timeout_s=30.0)
    assert driver.spin_until(lambda: not lock.waiting(), timeout_s=30.0)
    assert lock.content() == at_answer, "a write landed after the shutdown returned"
    assert (node.snapshots_stored, node.snapshots_refused) == (1, 0)
    assert driver.call(GetTile, "get_tile", get_request(1)).error == NOT_ACTIVE


@pytest.mark.parametrize("node_params", [{}])  # the defaults: lock_timeout_s 2 s
def test_a_deactivate_returns_once_a_call_blocked_on_a_lock_timed_out(
    node: DoneTileCache,
    driver: LifecycleDriver,
    pg_dsn: str,
    table_lock: list[TableLock],
    tmp_path: Path,
) -> None:
    """Another session holds tiles locked and never lets go: the put_tile waiting for it
    fails typed after the lock timeout, so the deactivate waiting for that call returns
    (while the lock is still held), and the put left neither a row nor a file."""
    assert driver.transition(Transition.TRANSITION_CONFIGURE)
    assert driver.transition(Transition.TRANSITION_ACTIVATE)
    assert driver.call(PutTile, "put_tile", put_request(1)).success
    lock = TableLock(pg_dsn)
    table_lock.append(lock)
    before = lock.content()
    put_future = driver._client(PutTile, "put_tile").call_async(put_request(2))
    assert driver.spin_until(
        lambda: any(q.startswith(INSERT) for q in lock.waiting()), timeout_s=30.0
    ), lock.waiting()
    req = ChangeState.Request()
    req.transition.id = Transition.TRANSITION_DEACTIVATE
    future = driver._client(ChangeState, "change_state").call_async(req)
    assert driver.spin_until(future.done, timeout_s=60.0), "the deactivate waits for ever"
    assert future.result().success
    assert driver.spin_until(put_future.done, timeout_s=30.0)
    put = put_future.result()
    assert (put.success, put.error_type) == (False, "TileMetadataError"), put.error
    assert "lock timeout" in put.error
    assert lock.content() == before  # still locked: nothing was written
    lock.release()
    assert driver.spin_until(lambda: not lock.waiting(), timeout_s=30.0)
    assert lock.content() == before, "a write landed after the deactivate returned"
    assert len(list((tmp_path / "tiles").rglob("*.jpg"))) == 1
