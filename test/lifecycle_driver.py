"""A plain rclpy node that drives one lifecycle node through its services.

Shared by the node tests (recorder, tile cache): call a service, request a
transition, read the state, spin until something holds. ``test/`` is on
``sys.path`` because ``test/conftest.py`` lives there.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


class LifecycleDriver:
    """Drives the node named ``target``; subclasses add their topics."""

    def __init__(self, target: str, prefix: str = "test_driver") -> None:
        self.node = Node(f"{prefix}_{uuid.uuid4().hex[:8]}")
        self.target = target
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)

    def call(self, srv_type: Any, name: str, request: Any, timeout_s: float = 30.0) -> Any:
        client = self.node.create_client(srv_type, f"/{self.target}/{name}")
        try:
            assert client.wait_for_service(timeout_sec=timeout_s), f"no service {name}"
            future = client.call_async(request)
            self.executor.spin_until_future_complete(future, timeout_sec=timeout_s)
            assert future.done(), f"{name} did not answer"
            return future.result()
        finally:
            self.node.destroy_client(client)

    def transition(self, transition_id: int, timeout_s: float = 60.0) -> bool:
        req = ChangeState.Request()
        req.transition.id = transition_id
        return bool(self.call(ChangeState, "change_state", req, timeout_s=timeout_s).success)

    def state(self) -> str:
        return str(self.call(GetState, "get_state", GetState.Request()).current_state.label)

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def spin_until(self, predicate: Callable[[], object], timeout_s: float = 20.0) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return bool(predicate())

    def wait_for_subscribers(self, pub: Any, timeout_s: float = 20.0) -> None:
        self.spin_until(lambda: pub.get_subscription_count() > 0, timeout_s)
        assert pub.get_subscription_count() > 0, f"nobody subscribed to {pub.topic_name}"
        # discovery is not symmetric: our writer has matched the reader, but the
        # reader may not have matched our writer yet, and would drop the first
        # samples; give the other side a moment (no assertion depends on its length)
        self.spin(0.5)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
