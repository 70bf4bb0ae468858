"""What the take-off sequencer asks of the nodes: the :class:`NodeController` contract.

The sequencer (``sequence.py``) drives lifecycle nodes through this protocol only,
so it runs the same against the ROS lifecycle-service controller on the aircraft
(``nodes.takeoff_node``) and a scripted one in tests. Here: the protocol, the
lifecycle states and transitions it speaks in (their values are the
lifecycle_msgs ids), and what its recorder and database calls return.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "DatabaseReady",
    "FlightCounters",
    "LifecycleState",
    "NodeController",
    "Transition",
]


class LifecycleState(enum.Enum):
    """Primary lifecycle states (lifecycle_msgs/State ids in the values)."""

    UNKNOWN = 0
    UNCONFIGURED = 1
    INACTIVE = 2
    ACTIVE = 3
    FINALIZED = 4


class Transition(enum.Enum):
    """Lifecycle transitions (lifecycle_msgs/Transition ids in the values)."""

    CONFIGURE = 1
    CLEANUP = 2
    ACTIVATE = 3
    DEACTIVATE = 4


@dataclass(frozen=True)
class FlightCounters:
    """The footer's four counters, as the recorder's CloseFlight returns them."""

    records_written: int
    records_dropped_overrun: int
    bytes_written: int
    rollover_count: int


@dataclass(frozen=True)
class DatabaseReady:
    """What the database step did."""

    dsn_kind: str  # "configured" or "embedded"
    applied: bool
    from_revision: str
    revision: str


class NodeController(Protocol):
    """How the sequencer reaches the nodes (lifecycle services on the aircraft).

    Every method raises :class:`StepTimeout` when the node does not answer in
    ``timeout_s`` and :class:`StepFailed` when it answers with a failure.
    """

    def change_state(self, node: str, transition: Transition, timeout_s: float) -> bool:
        """Request a transition; True when the node reports success."""
        ...

    def get_state(self, node: str, timeout_s: float) -> LifecycleState: ...

    def failure_reason(self, node: str, timeout_s: float) -> str:
        """Why ``node``'s last transition failed, as the node itself said it
        (its ERROR log since the transition was asked for); "" when it said
        nothing within ``timeout_s``. Never raises."""
        ...

    def open_flight(self, flight_id: str, timeout_s: float) -> str:
        """Open the flight on the recorder; returns the flight directory."""
        ...

    def close_flight(self, flight_id: str, timeout_s: float) -> FlightCounters: ...

    def prepare_database(self, timeout_s: float) -> DatabaseReady:
        """Make the tile cache's database reachable and migrated to head."""
        ...

    def release_database(self) -> None:
        """Stop what prepare_database started (the embedded cluster).

        Called after every prepare_database, also one that raised: it must
        stop what was started before the failure, and do nothing when nothing
        was."""
        ...
