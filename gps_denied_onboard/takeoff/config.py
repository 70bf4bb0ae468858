"""The take-off sequencer's parameters (ROS parameter names, ``config/takeoff.yaml``).

Kept apart from the sequence so that the nodes, the bring-up and the tools read the
configuration without the sequencer itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from gps_denied_onboard.errors import ConfigError

__all__ = ["TakeoffConfig"]


@dataclass(frozen=True)
class TakeoffConfig:
    """Sequencer parameters (ROS parameter names).

    Attributes:
        flight_id: the flight to open; empty means derived from the clock at take-off.
        recorder_node, tile_cache_node, visual_nav_node, fc_bridge_node: node names to
            drive; an empty ``visual_nav_node`` leaves the estimator out (a flight
            with fixes from elsewhere).
        service_timeout_s: answer timeout of every lifecycle/service call.
        teardown_timeout_s: the same while landing or aborting; a node that does not
            answer is given up on (it has usually exited already) so landing goes on.
        fc_activate_timeout_s: fc_bridge's activate waits for the autopilot's heartbeat.
        recorder_silence_s: recorder diagnostics older than this mean it is lost.
        heartbeat_period_s: period of the sequencer's own heartbeat records, whose
            sequence numbers make any FDR gap visible afterwards.
        revive_period_s: in flight, how often the visual estimator and the FC bridge are
            looked at (:meth:`TakeoffSequencer.revive`); 0: never.
        revive_timeout_s: how long one look waits for a node's state (a dead node
            holds the look up this long).
    """

    flight_id: str = ""
    recorder_node: str = "fdr_recorder"
    tile_cache_node: str = "tile_cache"
    visual_nav_node: str = "visual_nav"
    fc_bridge_node: str = "fc_bridge"
    service_timeout_s: float = 10.0
    teardown_timeout_s: float = 5.0
    fc_activate_timeout_s: float = 30.0
    recorder_silence_s: float = 3.0
    heartbeat_period_s: float = 1.0
    revive_period_s: float = 2.0
    revive_timeout_s: float = 1.0

    def __post_init__(self) -> None:
        for name in (
            "service_timeout_s",
            "teardown_timeout_s",
            "fc_activate_timeout_s",
            "recorder_silence_s",
            "heartbeat_period_s",
            "revive_timeout_s",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive", key=name)
        if not self.revive_period_s >= 0:
            raise ConfigError("revive_period_s must be >= 0 (0: never)", key="revive_period_s")
        names = self.node_names()
        if len(set(names)) != len(names) or not all(names):
            raise ConfigError(
                "recorder, tile cache, visual nav and FC bridge node names must differ"
            )
        if "/" in self.flight_id or self.flight_id in (".", ".."):
            raise ConfigError("flight_id must be a plain name", key="flight_id")

    def revivable(self) -> tuple[str, ...]:
        """The nodes brought back up in flight when found unconfigured or inactive (a
        process restarted after a crash), in take-off order: the visual estimator and
        the FC bridge, whose configure needs nothing from the take-off itself. Not the
        recorder (its flight cannot be reopened: the GCS is told, ``RecorderWatch``),
        nor the tile cache (its database is handed over at take-off)."""
        names: tuple[str, ...] = (self.visual_nav_node,) if self.visual_nav_node else ()
        return (*names, self.fc_bridge_node)

    def node_names(self) -> tuple[str, ...]:
        """The nodes the sequencer drives, in take-off order."""
        names: tuple[str, ...] = (self.recorder_node, self.tile_cache_node)
        if self.visual_nav_node:
            names = (*names, self.visual_nav_node)
        return (*names, self.fc_bridge_node)
