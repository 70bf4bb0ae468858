"""The tile_cache lifecycle node over real DDS, run as its installed executable.

A driver node in this process takes the node through configure/activate with
the lifecycle services, calls every tile service, publishes an in-flight
snapshot, and listens to the node's flight records and diagnostics.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from gps_denied_onboard.msg import FdrRecord, TileSnapshot  # noqa: E402
from gps_denied_onboard.srv import (  # noqa: E402
    GetTile,
    ListUploads,
    MarkUploaded,
    PutTile,
    QueryBbox,
)
from lifecycle_driver import LifecycleDriver  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402

from gps_denied_onboard.nodes.bringup import install_prefix  # noqa: E402
from gps_denied_onboard.nodes.tile_cache_node import SNAPSHOT_QOS  # noqa: E402
from gps_denied_onboard.ros_topics import (  # noqa: E402
    RECORD_QOS,
    TOPIC_DIAGNOSTICS,
    TOPIC_FDR_RECORDS,
    TOPIC_TILE_SNAPSHOTS,
    ns_to_time_msg,
)
from gps_denied_onboard.tile_cache.geo import tile_bbox  # noqa: E402
from gps_denied_onboard.tile_cache.migrations import current_revision, head_revision  # noqa: E402

from .conftest import make_jpeg, sha  # noqa: E402

# the install under test, wherever its workspace is (.colcon/install, ~/ws/install)
INSTALL_LIB = install_prefix() / "lib" / "gps_denied_onboard"
FLIGHT = "6f1c2a7e-93b4-4d0a-9e51-0c8d2f4b7a13"
Z = 16


class Driver(LifecycleDriver):
    def __init__(self, target: str) -> None:
        super().__init__(target, prefix="tc_test_driver")
        self.records: list[FdrRecord] = []
        self.diagnostics: list[Any] = []
        self.node.create_subscription(FdrRecord, TOPIC_FDR_RECORDS, self.records.append, RECORD_QOS)
        self.node.create_subscription(DiagnosticArray, TOPIC_DIAGNOSTICS, self._on_diag, 10)
        self.snapshots = self.node.create_publisher(
            TileSnapshot, TOPIC_TILE_SNAPSHOTS, SNAPSHOT_QOS
        )

    def _on_diag(self, msg: Any) -> None:
        for status in msg.status:
            if status.name == "tile_cache":
                self.diagnostics.append({kv.key: kv.value for kv in status.values})


@pytest.fixture
def node(ros: None, pg_dsn: str, tmp_path: Path) -> Iterator[tuple[Driver, str, Path]]:
    exe = INSTALL_LIB / "tile_cache_node"
    assert exe.exists(), f"{exe} missing: run scripts/bootstrap.sh (colcon build) first"
    name = f"tile_cache_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "tiles"
    log = (tmp_path / "node.log").open("wb")
    proc = subprocess.Popen(
        [
            str(exe),
            "--ros-args",
            "-r",
            f"__node:={name}",
            "-p",
            f"dsn:={pg_dsn}",
            "-p",
            f"tile_root:={root}",
            "-p",
            "diagnostics_period_s:=0.2",
            "-p",
            "maintenance_period_s:=0.2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    driver = Driver(name)
    try:
        yield driver, pg_dsn, root
    finally:
        driver.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def put_request(x: int, y: int, seed: int, **kw: Any) -> Any:
    data = make_jpeg(seed)
    return PutTile.Request(
        zoom=Z,
        x=x,
        y=y,
        source=kw.get("source", "satellite"),
        flight_id=kw.get("flight_id", ""),
        captured_at=ns_to_time_msg(kw.get("captured_ns", 1_700_000_000 * 10**9)),
        quality_json=json.dumps(kw.get("quality", {"score": 0.7})),
        content_sha256=kw.get("sha", sha(data)),
        image=CompressedImage(format="jpeg", data=data),
    )


def test_node_lifecycle_and_every_service(node: tuple[Driver, str, Path]) -> None:
    driver, dsn, root = node
    assert driver.state() == "unconfigured"
    assert driver.transition(Transition.TRANSITION_CONFIGURE)
    assert current_revision(dsn) == head_revision()  # the node applied migrations
    refused = driver.call(PutTile, "put_tile", put_request(1, 1, 1))
    assert not refused.success and refused.error_type == "NotActive"
    assert driver.transition(Transition.TRANSITION_ACTIVATE)
    assert driver.state() == "active"

    # put: good, bad hash, duplicate
    ok = driver.call(PutTile, "put_tile", put_request(34000, 22000, 1))
    assert ok.success, ok.error
    bad = driver.call(PutTile, "put_tile", put_request(34001, 22000, 2, sha="0" * 64))
    assert (bad.success, bad.error_type) == (False, "TileValidationError")
    dup = driver.call(PutTile, "put_tile", put_request(34000, 22000, 3))
    assert (dup.success, dup.error_type) == (False, "TileMetadataError")
    assert dup.tile_id == ok.tile_id
    driver.call(PutTile, "put_tile", put_request(34001, 22000, 4, quality={"score": 0.9}))

    # get
    got = driver.call(
        GetTile, "get_tile", GetTile.Request(zoom=Z, x=34000, y=22000, source="satellite")
    )
    assert got.found and bytes(got.image.data) == make_jpeg(1)
    assert got.image.format == "jpeg"
    assert (got.info.tile_id, got.info.freshness_status) == (ok.tile_id, "fresh")
    assert got.info.content_sha256 == sha(make_jpeg(1))
    missing = driver.call(
        GetTile, "get_tile", GetTile.Request(zoom=Z, x=1, y=1, source="satellite")
    )
    assert not missing.found and "TileNotFound" in missing.error

    # bbox, best first
    a, b = tile_bbox(Z, 34000, 22000), tile_bbox(Z, 34001, 22000)
    q = driver.call(
        QueryBbox,
        "query_bbox",
        QueryBbox.Request(
            min_latitude=a.min_latitude + 1e-6,
            min_longitude=a.min_longitude + 1e-6,
            max_latitude=a.max_latitude - 1e-6,
            max_longitude=b.max_longitude - 1e-6,
            zoom=Z,
            limit=0,
        ),
    )
    assert q.success and [t.x for t in q.tiles] == [34001, 34000]

    # an in-flight snapshot becomes a pending upload and votes on its cell
    data = make_jpeg(7)
    snap = TileSnapshot(
        zoom=Z,
        x=34000,
        y=22000,
        flight_id=FLIGHT,
        frame_id="frame-42",
        quality_json=json.dumps({"score": 0.4, "reference_match": True}),
        image=CompressedImage(format="jpeg", data=data),
    )
    snap.header.stamp = ns_to_time_msg(1_750_000_000 * 10**9)
    assert driver.spin_until(lambda: driver.snapshots.get_subscription_count() > 0)
    driver.snapshots.publish(snap)

    def pending() -> list[Any]:
        return list(driver.call(ListUploads, "list_uploads", ListUploads.Request(limit=0)).tiles)

    # the capture is stored, then its vote counted (two writes): wait for both
    assert driver.spin_until(lambda: [t.votes_agree for t in pending()] == [1], timeout_s=20)
    (tile,) = pending()
    assert (tile.source, tile.flight_id, tile.pending_upload) == ("in_flight", FLIGHT, True)
    assert tile.content_sha256 == hashlib.sha256(data).hexdigest()
    driver.snapshots.publish(snap)  # the same cell again: kept once, voted twice
    assert driver.spin_until(lambda: [t.votes_agree for t in pending()] == [2], timeout_s=20)

    # mark uploaded, idempotently
    marked = driver.call(
        MarkUploaded, "mark_uploaded", MarkUploaded.Request(tile_ids=[tile.tile_id])
    )
    assert marked.success and marked.marked == 1
    again = driver.call(
        MarkUploaded, "mark_uploaded", MarkUploaded.Request(tile_ids=[tile.tile_id])
    )
    assert again.success and again.marked == 0
    unknown = driver.call(
        MarkUploaded, "mark_uploaded", MarkUploaded.Request(tile_ids=[str(uuid.uuid4())])
    )
    assert not unknown.success and "TileNotFound" in unknown.error
    assert pending() == []

    # flight records and diagnostics reached the bus
    assert driver.spin_until(
        lambda: {"c6.write", "c6.write_failed", "c6.vote"} <= {r.kind for r in driver.records}
    )
    writes = [json.loads(r.payload_json) for r in driver.records if r.kind == "c6.write"]
    assert {w["tile_id"] for w in writes} >= {ok.tile_id, tile.tile_id}
    assert all(r.producer == "tile_cache" for r in driver.records)
    assert driver.spin_until(
        lambda: any(
            d.get("tiles") == "3" and d.get("snapshots_repeated") == "1" for d in driver.diagnostics
        )
    )

    assert driver.transition(Transition.TRANSITION_DEACTIVATE)
    assert driver.transition(Transition.TRANSITION_CLEANUP)
    assert driver.state() == "unconfigured"
    assert len(list((root / "tiles").rglob("*.jpg"))) == 3


def test_configure_fails_cleanly_without_a_database(ros: None, tmp_path: Path) -> None:
    from gps_denied_onboard.nodes.tile_cache_node import TileCacheNode

    node = TileCacheNode(
        node_name=f"tc_bad_{uuid.uuid4().hex[:6]}",
        parameter_overrides=[
            rclpy.parameter.Parameter(
                "dsn", value=f"host={tmp_path} dbname=none connect_timeout=2"
            ),
            rclpy.parameter.Parameter("tile_root", value=str(tmp_path / "tiles")),
            rclpy.parameter.Parameter("apply_migrations", value=False),
        ],
    )
    try:
        from rclpy.lifecycle import TransitionCallbackReturn

        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.store is None
    finally:
        node.destroy_node()
