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

#: the state each transition leads to (lifecycle_msgs/Transition ids)
_GOAL = {1: "inactive", 2: "unconfigured", 3: "active", 4: "inactive"}
#: an unanswered request is sent again (or, for a transition, the state read back)
#: after this long: on a loaded machine a server can answer a client whose
#: response reader it has not matched yet, and that answer is lost
_RESEND_S = 2.0


class LifecycleDriver:
    """Drives the node named ``target``; subclasses add their topics."""

    def __init__(self, target: str, prefix: str = "test_driver") -> None:
        self.node = Node(f"{prefix}_{uuid.uuid4().hex[:8]}")
        self.target = target
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._clients: dict[str, Any] = {}
        # made now, so that discovery has matched them both ways by their first call
        self._client(ChangeState, "change_state")
        self._client(GetState, "get_state")

    def _client(self, srv_type: Any, name: str) -> Any:
        if name not in self._clients:
            self._clients[name] = self.node.create_client(srv_type, f"/{self.target}/{name}")
        return self._clients[name]

    def call(
        self,
        srv_type: Any,
        name: str,
        request: Any,
        timeout_s: float = 30.0,
        *,
        idempotent: bool = False,
        answered_by: Callable[[], Any] | None = None,
    ) -> Any:
        """Call ``name`` and return its answer. An ``idempotent`` request is sent
        again every ``_RESEND_S`` until answered; otherwise ``answered_by``, if
        given, is asked after each ``_RESEND_S`` without an answer and what it
        returns (not None) stands for the lost answer."""
        client = self._client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout_s), f"no service {name}"
        end = time.monotonic() + timeout_s
        future = client.call_async(request)
        while time.monotonic() < end:
            self.executor.spin_until_future_complete(
                future, timeout_sec=min(_RESEND_S, max(0.0, end - time.monotonic()))
            )
            if future.done():
                return future.result()
            if idempotent:
                client.remove_pending_request(future)
                future = client.call_async(request)
            elif answered_by is not None:
                stands_for = answered_by()
                if stands_for is not None:
                    client.remove_pending_request(future)
                    return stands_for
        raise AssertionError(f"{name} did not answer")

    def transition(self, transition_id: int, timeout_s: float = 60.0) -> bool:
        req = ChangeState.Request()
        req.transition.id = transition_id
        goal = _GOAL.get(transition_id)

        def taken() -> Any:
            # never sent twice (a second one would be refused): read the state back
            if goal is not None and self.state() == goal:
                return ChangeState.Response(success=True)
            return None

        res = self.call(ChangeState, "change_state", req, timeout_s=timeout_s, answered_by=taken)
        return bool(res.success)

    def state(self) -> str:
        res = self.call(GetState, "get_state", GetState.Request(), idempotent=True)
        return str(res.current_state.label)

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
