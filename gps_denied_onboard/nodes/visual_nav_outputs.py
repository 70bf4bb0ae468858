"""What the visual_nav node sends out for each camera frame.

A fix goes out on ``/nav/position_fix`` and again as a standard ``NavSatFix`` on
``/nav/navsat``; every frame, fixed or not, ends in one
``FrameOutcome`` on ``~/frame_outcome`` (a lockstep replay waits on those); the
FDR gets ``vnav.fix`` / ``vnav.reject`` / ``vnav.relocalized`` records
(rate-capped) and ``failed_tile_thumbnail`` at most once per
``thumbnail_period_s``; confidently localised ground goes to the tile cache as
an in-flight snapshot; and the log says when frames are let go.

Split from :mod:`~gps_denied_onboard.nodes.visual_nav_node`, which owns the
node's lifecycle, its subscriptions and the worker; this module holds the
publishers and the rate caps, and translates.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import NavSatFix

from gps_denied_onboard.log import log_event
from gps_denied_onboard.msg import FrameOutcome, PositionFix, TileSnapshot
from gps_denied_onboard.nodes.record_sink import RecordPublisherSink
from gps_denied_onboard.nodes.visual_nav_msgs import fix_to_msg, fix_to_navsat, snapshot_to_msg
from gps_denied_onboard.records import FlightRecord
from gps_denied_onboard.ros_topics import (
    TOPIC_NAV_NAVSAT,
    TOPIC_POSITION_FIX,
    TOPIC_TILE_SNAPSHOTS,
    ns_to_time_msg,
)
from gps_denied_onboard.tile_cache.identity import derive_flight_uuid
from gps_denied_onboard.visual_nav.config import VisualNavConfig
from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.estimator import VisualEstimator
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.frame_pacing import Dropped
from gps_denied_onboard.visual_nav.outputs import (
    PRODUCER,
    RateCap,
    VisualNavStats,
    fix_payload,
    reject_payload,
)
from gps_denied_onboard.visual_nav.snapshot import snapshot_tile

NS: Final = 1_000_000_000
FIX_QOS: Final = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=20, reliability=ReliabilityPolicy.RELIABLE
)
#: every frame's outcome: reliable, and deep enough for a burst of decimated frames
OUTCOME_QOS: Final = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE
)
#: ``vnav.frame_dropped reason=late`` at most once per this many ns of frame stamps
LATE_LOG_PERIOD_NS: Final = 10 * NS


class FrameOutputs:
    """The node's publishers of fixes, outcomes, records and snapshots, with their caps."""

    def __init__(self, node: Node, log: logging.Logger, stats: VisualNavStats) -> None:
        self._log = log
        self._stats = stats
        self._records = RecordPublisherSink(node)
        self._fix_pub = node.create_publisher(PositionFix, TOPIC_POSITION_FIX, FIX_QOS)
        self._navsat_pub = node.create_publisher(NavSatFix, TOPIC_NAV_NAVSAT, FIX_QOS)
        self._snap_pub = node.create_publisher(TileSnapshot, TOPIC_TILE_SNAPSHOTS, 10)
        self._outcome_pub = node.create_publisher(FrameOutcome, "~/frame_outcome", OUTCOME_QOS)
        self._mount_logged: tuple[float, float] = (0.0, 0.0)  # the correction last logged
        self._decimation_logged = False
        self._late_cap = RateCap(LATE_LOG_PERIOD_NS)
        self._late_unlogged = 0
        self._flight = ""  # the tiles' flight UUID of the recorder's open flight
        self.configure(VisualNavConfig())

    def configure(self, cfg: VisualNavConfig) -> None:
        """Take the record and snapshot rates of ``cfg``."""
        self._fix_cap = RateCap(int(NS / cfg.fix_record_rate_hz))
        self._reject_cap = RateCap(int(NS / cfg.reject_record_rate_hz))
        self._thumb_cap = RateCap(int(cfg.thumbnail_period_s * NS))
        self._snap_cap = RateCap(int(cfg.snapshot_period_s * NS))
        self._max_rate_hz = cfg.frame_max_rate_hz
        self._max_lag_s = cfg.frame_max_lag_s
        self._navsat_frame = cfg.navsat_frame_id

    def flight(self, flight_id: str) -> None:
        """The flight recorder's open flight (``/fdr/flight``; "" once closed): the
        snapshots from now on are that flight's, and wait in the tile cache for
        upload (:func:`~gps_denied_onboard.tile_cache.identity.derive_flight_uuid`)."""
        uid = derive_flight_uuid(flight_id)
        self._flight = "" if uid is None else str(uid)

    def emit(self, kind: str, stamp: int, payload: dict[str, Any]) -> None:
        """An FDR record of ours."""
        self._records.emit(FlightRecord(kind, PRODUCER, stamp, payload))

    def outcome(self, stamp: int, outcome: str, reason: str = "", latency_ms: float = 0.0) -> None:
        """What became of the frame captured at ``stamp``: one message per frame."""
        m = FrameOutcome(outcome=outcome, reason=reason, latency_ms=float(latency_ms))
        m.header.stamp = ns_to_time_msg(stamp)
        self._outcome_pub.publish(m)

    def decimated(self, stamp: int) -> None:
        """A frame over ``frame_max_rate_hz``: its outcome, and once a line that the
        camera runs faster than frames are taken."""
        self.outcome(stamp, "decimated")
        if not self._decimation_logged:
            self._decimation_logged = True
            log_event(
                self._log,
                logging.INFO,
                "vnav.frames_decimated",
                frame_max_rate_hz=self._max_rate_hz,
            )

    def let_go(self, dropped: list[Dropped[Any]]) -> None:
        """Frames dropped: each one's outcome, and a log line. ``busy`` (the queue
        was full) logs each; ``late`` once per :data:`LATE_LOG_PERIOD_NS` with the
        count since; ``stopped`` once with the count."""
        for d in dropped:
            self.outcome(d.stamp_ns, "dropped", d.reason)
        counts = Counter(d.reason for d in dropped)
        for _ in range(counts["busy"]):
            log_event(self._log, logging.WARNING, "vnav.frame_dropped", reason="busy")
        if counts["stopped"]:
            log_event(
                self._log,
                logging.WARNING,
                "vnav.frame_dropped",
                reason="stopped",
                count=counts["stopped"],
            )
        if counts["late"]:
            self._late_unlogged += counts["late"]
            if self._late_cap.allow(dropped[-1].stamp_ns):
                log_event(
                    self._log,
                    logging.WARNING,
                    "vnav.frame_dropped",
                    reason="late",
                    count=self._late_unlogged,
                    frame_max_lag_s=self._max_lag_s,
                )
                self._late_unlogged = 0

    def fix(
        self,
        est: VisualEstimator,
        fix: VisualFix,
        latency_ms: float,
        scaled: VisualNavConfig | None,
    ) -> None:
        """A fix: the message, its outcome, records, the mounting correction's log
        line when it moved, and a snapshot (at ``scaled``'s zoom: a finer ground
        scale snapshots a zoom finer too)."""
        self._fix_pub.publish(fix_to_msg(fix))
        self._navsat_pub.publish(fix_to_navsat(fix, self._navsat_frame))
        self.outcome(fix.stamp_ns, "fix", "", latency_ms)
        self._stats.on_fix(fix.stamp_ns, latency_ms, fix.gnss_offset_m, fix.template_side_m)
        mount = est.boresight.correction_deg
        last = self._mount_logged
        if math.hypot(mount[0] - last[0], mount[1] - last[1]) > 0.1:  # deg: not every refit
            self._mount_logged = mount
            log_event(
                self._log,
                logging.INFO,
                "vnav.mount_correction",
                forward_deg=round(mount[0], 2),
                left_deg=round(mount[1], 2),
                sigma_deg=round(est.boresight.fit[2], 2) if est.boresight.fit else None,
            )
        if fix.prior_source == "relocalized":
            self.emit(
                "vnav.relocalized",
                fix.stamp_ns,
                {
                    "jump_m": round(est.last_jump_m, 1),
                    "reset_counter": fix.reset_counter,
                    "sigma_m": round(fix.sigma_m, 2),
                },
            )
        if self._fix_cap.allow(fix.stamp_ns):
            self.emit("vnav.fix", fix.stamp_ns, fix_payload(fix, latency_ms))
        view = est.last_view
        if (
            scaled
            and view
            and fix.quality >= scaled.snapshot_min_quality
            and self._snap_cap.allow(fix.stamp_ns)
        ):
            snap = snapshot_tile(view, scaled.map_snapshot_zoom)
            if snap is not None:
                self._snap_pub.publish(snapshot_to_msg(fix, snap, self._flight))

    def reject(
        self,
        stamp: int,
        rej: FrameRejected,
        latency_ms: float,
        tile_under: Callable[[], str | None],
    ) -> None:
        """A reject: its outcome, the count, a record, and for a gate reject the tile
        under the aircraft (``tile_under``) as ``failed_tile_thumbnail``."""
        self.outcome(stamp, "reject", rej.reason, latency_ms)
        side = rej.detail.get("template_side_m")
        self._stats.on_reject(
            rej.reason, latency_ms, float(side) if isinstance(side, int | float) else None
        )
        if self._reject_cap.allow(stamp):
            self.emit("vnav.reject", stamp, reject_payload(rej, latency_ms))
        if rej.reason == "gate" and self._thumb_cap.allow(stamp):
            tile_id = tile_under()
            if tile_id:
                self.emit("failed_tile_thumbnail", stamp, {"tile_id": tile_id, "reason": "gate"})

    def failed(self, stamp: int, err: Exception, latency_ms: float) -> None:
        """A frame that raised what no frame should (the worker survives it)."""
        self.outcome(stamp, "reject", "internal_error", latency_ms)
        self._stats.on_reject("internal_error", latency_ms)
        log_event(self._log, logging.ERROR, "vnav.frame_failed", error=repr(err))
        self.emit(
            "vnav.reject",
            stamp,
            {"reason": "internal_error", "message": repr(err), "latency_ms": latency_ms},
        )
