"""A destroyed node of ours leaves the ROS graph at once, not when Python's cycle
collector gets to it.

rclpy's lifecycle state machine keeps its own reference to the rcl node, and the
node object sits in a reference cycle: without ``LifecycleNodeBase.destroy_node``
each in-process node the test suite destroyed stayed on the domain with its DDS
participant, and 28 of them kept later processes from discovering each other.
The cycle collector is off here, so only ``destroy_node`` can take a node away.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from fc_bridge.link_support import wait_until  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.node import Node  # noqa: E402

from gps_denied_onboard.nodes.fc_bridge_node import FcBridgeNode  # noqa: E402
from gps_denied_onboard.nodes.fdr_recorder_node import FdrRecorderNode  # noqa: E402
from gps_denied_onboard.nodes.tile_cache_node import TileCacheNode  # noqa: E402
from gps_denied_onboard.nodes.visual_nav_node import VisualNavNode  # noqa: E402

DISCOVERY_S = 20.0  # a deadline for the graph to change, not a measured time


@pytest.fixture
def observer() -> Iterator[Node]:
    context = Context()
    rclpy.init(context=context)
    node = Node(f"release_observer_{uuid.uuid4().hex[:8]}", context=context)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


@pytest.fixture
def no_cycle_collection() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _in_graph(observer: Node, name: str) -> bool:
    return any(n == name for n, _ in observer.get_node_names_and_namespaces())


@pytest.mark.parametrize(
    "node_class", [FcBridgeNode, VisualNavNode, FdrRecorderNode, TileCacheNode]
)
def test_a_destroyed_node_leaves_the_graph_without_the_garbage_collector(
    observer: Node, no_cycle_collection: None, node_class: type
) -> None:
    context = Context()
    rclpy.init(context=context)
    name = f"release_{uuid.uuid4().hex[:8]}"
    node = node_class(context=context, cli_args=["--ros-args", "-r", f"__node:={name}"])
    try:
        assert wait_until(lambda: _in_graph(observer, name), DISCOVERY_S), "never discovered"
        node.destroy_node()
        assert wait_until(lambda: not _in_graph(observer, name), DISCOVERY_S), (
            f"{node_class.__name__} stayed in the graph after destroy_node"
        )
        node.destroy_node()  # a second destroy (a runner's teardown after a test's) is harmless
    finally:
        rclpy.shutdown(context=context)
