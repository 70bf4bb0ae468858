"""Two quirks of rclpy's lifecycle node, mended for every node of ours.

**A destroyed lifecycle node stays alive.** rclpy's ``LifecycleNode`` (Humble and
Jazzy, ``rclpy/lifecycle/node.py``) has no ``destroy_node`` of its own: ``Node``'s
destroys what the node made, but the ``_rclpy.LifecycleStateMachine`` holds its own
reference to the rcl node and is released only when the Python node object is
garbage-collected, and the node's transition callbacks (bound methods in
``_callbacks``) put it in a reference cycle, so that waits for the cycle collector.
Until then the node stays in the ROS graph and its context's DDS participant stays
open. Seen: the test suite's in-process bridges left 28 ``fc_bridge`` nodes and their
participants on the domain, and the main job's processes started after them no
longer discovered each other.
:class:`LifecycleNodeBase` releases the state machine in ``destroy_node``.

**A transition the state has not ends the process.**

rclpy's ``change_state`` service (Humble and Jazzy alike, ``rclpy/lifecycle/node.py``)
looks a transition given by label up and answers ``success=False`` when the state
has no such transition, but one given by id goes straight to
``trigger_transition_by_id``, whose ``RCLError`` ("Transition is not registered")
propagates out of the service callback and out of the executor's ``spin_once``:
the node's process ends. Seen: a second take-off on the same ROS domain sent our
recorder ``configure`` while it was active, and the flight lost its tail. Anyone
with ``ros2 lifecycle set`` could do the same to a node in flight.

:func:`refuse_invalid_transitions` wraps the service's callback: an id that the
current state does not offer is answered ``success=False`` and logged
(``node.transition_refused``); the state machine is not touched. It reaches into
rclpy's ``_service_change_state`` (a ``Service``, whose ``callback`` the executors
read at each request) and ``_state_machine.available_transitions``/``current_state``:
the same names in Humble's and Jazzy's ``rclpy/lifecycle/node.py``.

:func:`before_answering_transitions` wraps the same callback to run work of the
caller's after each transition and before its answer (the runner uses it to have a
node brought down close its records first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rclpy.lifecycle import Node as LifecycleNode

from gps_denied_onboard.log import format_event


def available_transition_ids(node: LifecycleNode) -> set[int]:
    """The transition ids the node's current state offers (as ``get_available_transitions``)."""
    return {int(t[0]) for t in node._state_machine.available_transitions}


def refuse_invalid_transitions(node: LifecycleNode) -> None:
    """Answer a ``change_state`` request for a transition by id that the node's
    current state has not with ``success=False``, instead of raising out of the
    executor. A node made without the lifecycle services is left as it is."""
    service = getattr(node, "_service_change_state", None)
    if service is None:
        return
    inner = service.callback

    def change_state(request: Any, response: Any) -> Any:
        transition = request.transition
        if not transition.label and int(transition.id) not in available_transition_ids(node):
            _, state = node._state_machine.current_state
            node.get_logger().warning(
                format_event(
                    "node.transition_refused", {"transition_id": int(transition.id), "state": state}
                )
            )
            response.success = False
            return response
        return inner(request, response)

    service.callback = change_state


def before_answering_transitions(node: LifecycleNode, hook: Callable[[], None]) -> None:
    """Run ``hook`` after each transition asked for through ``change_state`` and before
    the answer goes back, so that the caller's next step finds its work done (the
    runner closes a brought-down node's records there: the sequencer closes the flight
    only after its last cleanup was answered). A hook that raises is logged
    (``node.transition_hook_failed``) and the answer goes back as it was."""
    service = getattr(node, "_service_change_state", None)
    if service is None:
        return
    inner = service.callback

    def change_state(request: Any, response: Any) -> Any:
        answer = inner(request, response)
        try:
            hook()
        except Exception as err:
            node.get_logger().error(
                format_event("node.transition_hook_failed", {"error": repr(err)})
            )
        return answer

    service.callback = change_state


class LifecycleNodeBase(LifecycleNode):
    """rclpy's lifecycle node whose ``destroy_node`` also releases its state machine,
    so that the rcl node leaves the graph at once and ``rclpy.shutdown`` can close its
    context's participant (see the module's docstring)."""

    def destroy_node(self) -> None:
        super().destroy_node()
        # its services went with Node.destroy_node; once released its state can no
        # longer be read (destroy_when_not_in_use: Humble's and Jazzy's Destroyable)
        destroy = getattr(getattr(self, "_state_machine", None), "destroy_when_not_in_use", None)
        if destroy is not None:
            destroy()
