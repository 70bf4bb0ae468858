"""``fdr_recorder``: the flight data recorder as a ROS 2 lifecycle node.

* ``configure``: parameters -> :class:`~gps_denied_onboard.fdr.config.FdrConfig` +
  :class:`FdrNodeConfig`; the :class:`~gps_denied_onboard.fdr.writer.FlightRecorder`
  is constructed (no I/O), each ``record_topics`` entry (``"topic:pkg/msg/Type"``)
  is resolved to its message class and rosbag2-style definition. Topics that
  carry camera frames are refused by the recorder's policy whatever the
  configuration says: logged now, and recorded (``raw_topic_refused``) in every
  flight this configuration records.
* ``activate``: starts the recorder (takes the flight-root lock). An
  :class:`~gps_denied_onboard.fdr.errors.FdrOpenError` (another recorder holds
  the root, the root is unwritable) makes the transition FAIL with an ERROR
  line; the take-off sequencer treats that as an FDR-open failure. Then it
  records ``/fdr/records`` and each raw topic, and its host health (1 Hz),
  diagnostics and watchdog timers do their work.
* ``deactivate``: stops recording messages (what arrives is dropped, as if
  nobody were subscribed) and flushes the open segment to disk.
* ``cleanup`` / ``shutdown``: stops the recorder, which closes an open flight
  with its footer, and releases the lock.

Records from ``/fdr/records`` go to one recorder client (ring) per producer
slug. Records lost in DDS before they reached the node are counted from the
publication sequence numbers and written as ``overrun`` records with reason
``dds_loss`` (per producer slug) or ``dds_loss:<topic>`` (raw topics, under
the ``raw_topics`` producer). A node's record publisher sends a
``records_closed`` record last (``nodes.record_sink``), so a tail lost when it
exits shows as a gap before that record's number (or, on Humble, as fewer records
received than it says were sent). The routing and that accounting are
:class:`~gps_denied_onboard.fdr.intake.RecordIntake`'s, the diagnostics
:mod:`~gps_denied_onboard.fdr.status`'s, the raw subscriptions' QoS
:class:`~gps_denied_onboard.nodes.fdr_raw_topics.RawSubscriptions`' and the
subscription callbacks (the ``/fdr/records`` drain, Humble's one-argument
callbacks) :mod:`~gps_denied_onboard.nodes.fdr_inbound`'s, the flight services'
answers :mod:`~gps_denied_onboard.nodes.fdr_flight_services`'; this module
translates.

The ``~/open_flight`` / ``~/close_flight`` services are made with the node (they
answer "not active" until activation: take-off's client matches them long before
it calls), and so is ``/fdr/flight`` (``std_msgs/String``, latched): the open
flight's id, "" once it is closed (in-flight snapshots carry it, and wait for
upload); the timers and the diagnostics publishers are made at the first configure,
the ``/fdr/records`` subscription at the first activation (so that
records the producers held until it matched are not taken by a recorder not yet
recording), the raw subscriptions when first wanted, and all live as long as the
node: a transition never destroys one (see :meth:`FdrRecorderNode._make_entities`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import State, TransitionCallbackReturn
from std_msgs.msg import String

from gps_denied_onboard.clock import MonotonicClock
from gps_denied_onboard.errors import ConfigError
from gps_denied_onboard.fdr.client import FdrClient
from gps_denied_onboard.fdr.config import FdrConfig
from gps_denied_onboard.fdr.errors import FdrError, FdrOpenError
from gps_denied_onboard.fdr.host_health import HostHealthSampler, WriterLag
from gps_denied_onboard.fdr.intake import RecordIntake
from gps_denied_onboard.fdr.status import (
    IntakeCounts,
    diagnostic_level,
    diagnostic_values,
    dropouts,
)
from gps_denied_onboard.fdr.watchdog import (
    StuckWriterWatchdog,
    WriterProgress,
    progress_from_status,
)
from gps_denied_onboard.fdr.writer import FlightRecorder
from gps_denied_onboard.log import log_event
from gps_denied_onboard.msg import FdrRecord
from gps_denied_onboard.nodes.fdr_flight_services import (
    answer_close_flight,
    answer_open_flight,
)
from gps_denied_onboard.nodes.fdr_inbound import (
    MESSAGE_INFO_CALLBACKS,
    RecordsDrain,
    raw_callback,
    records_qos,
)
from gps_denied_onboard.nodes.fdr_raw_topics import (
    RawSubscriptions,
    RawTopic,
    RefusedTopic,
    message_class,
    parse_qos_overrides,
    parse_topic_entry,
    plan_raw_topics,
    qos_yaml,
    rosbag2_msgdef,
)
from gps_denied_onboard.nodes.lifecycle_guard import LifecycleNodeBase
from gps_denied_onboard.nodes.params import declare_config, read_config
from gps_denied_onboard.nodes.ros_clock import RosClock
from gps_denied_onboard.nodes.ros_logging import bridge_logging
from gps_denied_onboard.nodes.runner import run_node
from gps_denied_onboard.nodes.status_publishers import DiagnosticsPublisher, GcsAlertPublisher
from gps_denied_onboard.records import FlightRecord
from gps_denied_onboard.ros_topics import LATCHED_QOS, TOPIC_FDR_FLIGHT, TOPIC_FDR_RECORDS
from gps_denied_onboard.srv import CloseFlight, OpenFlight

NODE_NAME: Final = "fdr_recorder"
PRODUCER: Final = "fdr_recorder"
NS_PER_S: Final = 1_000_000_000
#: How soon an incompatible-QoS event leads to a re-subscription.
_QOS_RECHECK_S: Final = 0.05

__all__ = [
    "MESSAGE_INFO_CALLBACKS",
    "FdrNodeConfig",
    "FdrRecorderNode",
    "RawTopic",
    "RefusedTopic",
    "message_class",
    "parse_topic_entry",
    "plan_raw_topics",
    "qos_yaml",
    "rosbag2_msgdef",
]


@dataclass(frozen=True)
class FdrNodeConfig:
    """The node's own parameters (the recorder's are :class:`FdrConfig`).

    Attributes:
        record_topics: ROS topics to record raw (CDR), each ``"topic:pkg/msg/Type"``.
        records_qos_depth: queue depth of the reliable ``/fdr/records`` subscription.
        raw_qos_depth: queue depth of each reliable raw-topic subscription.
        raw_qos_overrides: ``"topic:best_effort"`` / ``"topic:reliable"``: the reliability a
            raw topic is subscribed with from the start, whatever is discovered (rosbag2's
            QoS overrides). For topics whose publishers start after the recorder (the
            FC bridge's sensor data), so the first samples match and no side logs an
            incompatible-QoS warning.
        host_health_period_s: host health sampling period.
        diagnostics_period_s: diagnostics publishing period.
        watchdog_period_s: how often the stuck-writer watchdog looks.
        stall_after_s: no writer progress for this long, with records pending, is a stall.
    """

    record_topics: tuple[str, ...] = ()
    records_qos_depth: int = 10000
    raw_qos_depth: int = 1000
    raw_qos_overrides: tuple[str, ...] = ()
    host_health_period_s: float = 1.0
    diagnostics_period_s: float = 1.0
    watchdog_period_s: float = 0.5
    stall_after_s: float = 2.0

    def __post_init__(self) -> None:
        if self.records_qos_depth < 1000:
            raise ConfigError("records_qos_depth must be at least 1000", key="records_qos_depth")
        if self.raw_qos_depth < 1:
            raise ConfigError("raw_qos_depth must be positive", key="raw_qos_depth")
        for name in (
            "host_health_period_s",
            "diagnostics_period_s",
            "watchdog_period_s",
            "stall_after_s",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive", key=name)
        for entry in self.record_topics:
            parse_topic_entry(entry)
        parse_qos_overrides(self.raw_qos_overrides)


# --- the node ---------------------------------------------------------------------------


class FdrRecorderNode(LifecycleNodeBase):
    """The flight data recorder node (see the module docstring for the lifecycle)."""

    def __init__(self, *, message_info: bool | None = None, **kwargs: Any) -> None:
        # (msg, info) callbacks where rclpy has them; Humble's one-argument ones otherwise.
        self._message_info = MESSAGE_INFO_CALLBACKS if message_info is None else message_info
        self._cfg: FdrConfig | None = None
        self._node_cfg: FdrNodeConfig | None = None
        self._recorder: FlightRecorder | None = None
        self._started = False
        self._active = False
        # held while a diagnostics or host-health message is sampled and published, and
        # while a transition takes the node down: none goes out after the transition
        # returned, even on a multi-threaded executor (where a timer runs beside it)
        self._publishing = threading.Lock()
        self._own: FdrClient | None = None
        self._raw: list[RawTopic] = []
        self._refused: list[RefusedTopic] = []
        # these, the timers and the diagnostics publishers: _make_entities
        self._diag: DiagnosticsPublisher
        self._health_diag: DiagnosticsPublisher
        self._records_sub: Any = None
        self._records_depth = 0
        self._io_timers: list[Any] = []
        self._sampler: HostHealthSampler | None = None
        self._watchdog: StuckWriterWatchdog | None = None
        self._last_diag_dropouts = 0
        self._last_health: dict[str, str] = {}
        super().__init__(kwargs.pop("node_name", NODE_NAME), **kwargs)
        declare_config(self, FdrConfig)
        declare_config(self, FdrNodeConfig)
        self._ros_clock = RosClock(self)
        self._mono = MonotonicClock()
        self._log = bridge_logging(self)
        self._intake = RecordIntake(PRODUCER, self._ros_clock, self._log, self._mono, NS_PER_S)
        self._records = RecordsDrain(self._intake, message_info=self._message_info)
        self._alerts = GcsAlertPublisher(self)
        self._service_group = MutuallyExclusiveCallbackGroup()
        self._records_group = MutuallyExclusiveCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self._raw_subs = RawSubscriptions(
            self,
            self._raw_callback,
            group=MutuallyExclusiveCallbackGroup(),
            timer_group=self._timer_group,
            log=self._log,
            recheck_s=_QOS_RECHECK_S,
            message_info=self._message_info,
        )
        # The flight services exist from the start (answering "not active" until the
        # node is): made at configure, they were ~70 ms old when take-off called
        # open_flight right after activate, and a server that has not yet matched the
        # client's response reader answers into the void (Fast DDS drops it): take-off
        # then aborted, "open_flight did not answer within 10.0 s". A lost open cannot
        # be sent again (the second finds the flight open), so the match must be old.
        self._flight_services = [
            self.create_service(
                OpenFlight,
                "~/open_flight",
                self._on_open_flight,
                callback_group=self._service_group,
            ),
            self.create_service(
                CloseFlight,
                "~/close_flight",
                self._on_close_flight,
                callback_group=self._service_group,
            ),
        ]
        # the open flight's id, "" once closed: in-flight tiles carry it (pending upload)
        self._flight_pub = self.create_publisher(String, TOPIC_FDR_FLIGHT, LATCHED_QOS)

    # -- lifecycle -------------------------------------------------------------------------

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            cfg = read_config(self, FdrConfig)
            node_cfg = read_config(self, FdrNodeConfig)
            raw, refused = plan_raw_topics(node_cfg.record_topics)
        except ConfigError as err:
            log_event(self._log, logging.ERROR, "fdr.configure_failed", key=err.key, error=str(err))
            return TransitionCallbackReturn.FAILURE
        self._cfg, self._node_cfg = cfg, node_cfg
        self._raw, self._refused = raw, refused
        for r in refused:
            log_event(
                self._log,
                logging.ERROR,
                "fdr.raw_topic_refused",
                topic=r.topic,
                type=r.type_name,
                reason=r.reason,
            )
        self._recorder = FlightRecorder(
            cfg, self._ros_clock, self._mono, alert_sink=self._on_recorder_alert, logger=self._log
        )
        self._own = self._recorder.register_client(PRODUCER, multi_producer=True)
        self._intake.attach(self._recorder, self._own)
        recorder = self._recorder
        self._sampler = HostHealthSampler(
            cfg.flight_root,
            self._ros_clock,
            self._own,
            producer=PRODUCER,
            logger=self._log,
            writer_lag=lambda: WriterLag(
                recorder.lag_ns(), recorder.take_lag_max_ns(), recorder.records_shed_lag
            ),
        )
        self._watchdog = StuckWriterWatchdog(
            self._writer_progress,
            self._mono,
            self._alerts,
            self._own,
            stall_after_ns=int(node_cfg.stall_after_s * NS_PER_S),
            producer=PRODUCER,
            record_clock=self._ros_clock,
            logger=self._log,
            lag_bound_ns=cfg.lag_bound_ns,
        )
        self._make_entities(cfg, node_cfg)
        log_event(
            self._log,
            logging.INFO,
            "fdr.configured",
            flight_root=str(cfg.flight_root),
            raw_topics=[r.topic for r in raw],
            refused=[r.topic for r in refused],
        )
        return TransitionCallbackReturn.SUCCESS

    def _make_entities(self, cfg: FdrConfig, node_cfg: FdrNodeConfig) -> None:
        """The timers and diagnostics: made once, kept (the flight services are made
        with the node, the records subscription at the first activation).

        Destroying an entity in a transition while another executor thread builds
        its wait set from the node's entities makes rclpy raise ``InvalidHandle`` out
        of ``spin_once`` (rclpy#1284, #1206): fc_bridge stopped answering after a
        deactivate that way. ``run_node`` spins this node on a single-threaded
        executor, where transitions and the wait set take turns, but nothing here
        relies on it: nothing is destroyed before ``destroy_node``, and every
        callback does nothing unless the node is active (services answer "not
        active"). The timers are not cancelled either (a timer cancelled after the
        executor picked it raises in its take, rclpy#1485). A later configure sets
        the timers' periods and the diagnostics' hardware id; the records
        subscription keeps the depth it was made with.
        """
        periods = (
            1.0,
            node_cfg.host_health_period_s,
            node_cfg.diagnostics_period_s,
            node_cfg.watchdog_period_s,
        )
        if self._io_timers:  # configured before
            for timer, period_s in zip(self._io_timers, periods, strict=True):
                timer.timer_period_ns = int(period_s * NS_PER_S)
            self._diag.hardware_id = str(cfg.flight_root)
            if self._records_sub is not None and node_cfg.records_qos_depth != self._records_depth:
                log_event(
                    self._log,
                    logging.WARNING,
                    "fdr.records_qos_depth_kept",
                    depth=self._records_depth,
                    configured=node_cfg.records_qos_depth,
                )
            return
        self._diag = DiagnosticsPublisher(self, self.get_name(), str(cfg.flight_root))
        self._health_diag = DiagnosticsPublisher(self, "host_health", os.uname().nodename)
        callbacks = (
            self._raw_subs.adapt,
            self._on_host_health,
            self._on_diagnostics,
            self._on_watchdog,
        )
        self._io_timers = [
            self.create_timer(period_s, callback, callback_group=self._timer_group)
            for period_s, callback in zip(periods, callbacks, strict=True)
        ]

    def _make_records_sub(self, depth: int) -> None:
        """The ``/fdr/records`` subscription, at the first activation (then kept).

        Not at configure: a record publisher holds what its node emits until it
        matches a subscription (``nodes.record_sink``), and a subscription that
        matched while the recorder was still inactive would take those records and
        drop them; made here, the first match finds the recorder recording.
        """
        if self._records_sub is not None:
            return
        self._records_depth = depth
        self._records_sub = self.create_subscription(
            FdrRecord,
            TOPIC_FDR_RECORDS,
            self._on_record_drain if self._message_info else self._on_record_humble,
            records_qos(depth),
            callback_group=self._records_group,
        )

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        rec, node_cfg = self._recorder, self._node_cfg
        if rec is None or node_cfg is None:
            return TransitionCallbackReturn.FAILURE
        if not self._started:
            try:
                rec.start()
            except FdrOpenError as err:
                log_event(
                    self._log,
                    logging.ERROR,
                    "fdr.open_failed",
                    reason=str(err),
                    flight_root=str(rec.config.flight_root),
                )
                return TransitionCallbackReturn.FAILURE
            self._started = True
        self._raw_subs.start(
            self._raw, node_cfg.raw_qos_depth, parse_qos_overrides(node_cfg.raw_qos_overrides)
        )
        self._active = True
        self._make_records_sub(node_cfg.records_qos_depth)
        log_event(self._log, logging.INFO, "fdr.active", raw_topics=len(self._raw))
        result: TransitionCallbackReturn = super().on_activate(state)
        return result

    def _stop_io(self) -> None:
        with self._publishing:
            self._active = False  # the subscriptions and timers stay, idle (see _make_entities)
        self._raw_subs.stop()

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_io()
        if self._recorder is not None and self._started:
            try:
                self._recorder.flush()
            except FdrError as err:
                log_event(self._log, logging.ERROR, "fdr.flush_failed", error=str(err))
        result: TransitionCallbackReturn = super().on_deactivate(state)
        return result

    def _stop_recorder(self) -> None:
        self._stop_io()
        rec = self._recorder
        if rec is not None and self._started:
            try:
                footer = rec.stop()
            except FdrError as err:
                log_event(self._log, logging.ERROR, "fdr.stop_failed", error=str(err))
            else:
                if footer is not None:
                    log_event(
                        self._log,
                        logging.INFO,
                        "fdr.flight_closed_on_stop",
                        flight_id=footer.flight_id,
                    )
                    self._flight_pub.publish(String(data=""))
            self._started = False
        if self._sampler is not None:
            self._sampler.close()

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._stop_recorder()  # the services stay, answering "not active"
        self._recorder = None
        self._own = None
        self._intake.detach()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._stop_recorder()
        return TransitionCallbackReturn.SUCCESS

    def shutdown(self) -> None:
        """Called by ``run_node`` on SIGINT/SIGTERM: close the flight whatever the state."""
        self._stop_recorder()

    # -- services --------------------------------------------------------------------------

    def _on_open_flight(self, req: Any, res: Any) -> Any:
        rec = self._recorder if self._active else None
        # take-off asks again while the clock is not ready (takeoff_node.open_flight)
        if answer_open_flight(rec, req, res, self._log, clock_ready=self._ros_clock.ready()):
            self._record_refusals()
            self._flight_pub.publish(String(data=str(req.flight_id)))
        return res

    def _on_close_flight(self, req: Any, res: Any) -> Any:
        # records DDS already delivered (a producer's tail, acknowledged before the
        # take-off sequencer asked for this close) go in before the footer: at most
        # the subscription's depth, what its reader can hold. The records callback
        # never runs beside this one (single-threaded executor).
        if self._records_sub is not None and self._started:
            self._records.take_queued(
                self._records_sub, active=self._active, limit=self._records_depth
            )
        if answer_close_flight(self._recorder if self._started else None, req, res, self._log):
            self._flight_pub.publish(String(data=""))
        return res

    def _record_refusals(self) -> None:
        if self._own is None:
            return
        for r in self._refused:
            self._own.emit(
                FlightRecord(
                    "raw_topic_refused",
                    PRODUCER,
                    self._ros_clock.now_ns(),
                    {"topic": r.topic, "type": r.type_name, "reason": r.reason},
                )
            )

    # -- inbound ---------------------------------------------------------------------------

    def _on_record_humble(self, msg: Any) -> None:
        """Humble's one-argument callback: no message info; DDS loss is counted only
        against each publisher's ``records_closed`` record (:meth:`DdsGapTracker.count`)."""
        self._on_record_drain(msg, None)

    def _on_record_drain(self, msg: Any, info: Mapping[str, Any] | None) -> None:
        """The ``/fdr/records`` callback: this record, then whatever else DDS holds
        (:meth:`RecordsDrain.drain`; dropped unless active)."""
        self._records.drain(self._records_sub, msg, info, active=self._active)

    def _raw_callback(self, raw: RawTopic, qos_text: str) -> Callable[..., None]:
        """The raw topic's subscription callback (:func:`raw_callback`)."""
        rec = self._recorder
        assert rec is not None
        return raw_callback(
            rec, self._ros_clock, self._intake, raw, qos_text, message_info=self._message_info
        )

    # -- timers ----------------------------------------------------------------------------

    def _on_host_health(self) -> None:
        with self._publishing:
            sampler, rec = self._sampler, self._recorder
            if sampler is None or rec is None or not self._active:
                return
            # With no flight open, diagnostics only: nothing piles up in the ring.
            health = sampler.tick() if rec.current_flight_id is not None else sampler.sample()
            self._last_health = health.diagnostics()
            self._health_diag.publish(DiagnosticsPublisher.OK, "host health", self._last_health)

    def _writer_progress(self) -> WriterProgress:
        rec = self._recorder
        if rec is None or not self._started:
            return WriterProgress(0, None)
        return progress_from_status(rec.status())

    def _on_watchdog(self) -> None:
        if self._watchdog is not None and self._active:
            self._watchdog.check()

    def _intake_counts(self) -> IntakeCounts:
        wd = self._watchdog
        return IntakeCounts(
            dds_lost=self._intake.dds.lost_total,
            rejected=self._intake.rejected,
            stalled=wd is not None and wd.stalled is not None,
            lagging=wd is not None and wd.lagging,
            raw_topics=tuple(r.topic for r in self._raw),
            raw_topics_refused=tuple(r.topic for r in self._refused),
        )

    def diagnostics_values(self) -> dict[str, str]:
        """What the recorder diagnostics carry (also used by tests)."""
        rec = self._recorder
        if rec is None:
            return {}
        return diagnostic_values(rec.status(), self._intake_counts())

    def _on_diagnostics(self) -> None:
        with self._publishing:
            rec = self._recorder
            if rec is None or not self._active:
                return
            st, extra = rec.status(), self._intake_counts()
            level, message = diagnostic_level(st, extra, self._last_diag_dropouts)
            self._last_diag_dropouts = dropouts(st, extra)
            self._diag.publish(level, message, diagnostic_values(st, extra))

    def _on_recorder_alert(self, severity: int, text: str) -> None:
        self._alerts.publish(severity, PRODUCER, text)


def main(argv: list[str] | None = None) -> int:
    # One thread: /fdr/records is the hot path and rclpy's multi-threaded executor
    # halves the rate the node takes messages at (bench/fdr_node_path.py). Services
    # that wait for the writer thread block intake for milliseconds; DDS queues it.
    return run_node(
        FdrRecorderNode,
        sys.argv[1:] if argv is None else argv,
        executor_factory=SingleThreadedExecutor,
    )


if __name__ == "__main__":
    raise SystemExit(main())
