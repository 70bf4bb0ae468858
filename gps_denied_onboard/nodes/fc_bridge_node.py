"""``fc_bridge``: the MAVLink flight-controller bridge as a ROS 2 lifecycle node.

* ``configure``: parameters -> ``FcBridgeConfig`` + ``FixOutputConfig`` +
  ``OriginConfig`` (:func:`build_node_config`), the link object and publishers are
  built; no I/O.
* ``activate``: opens the link, waits ``activate_timeout_s`` for the autopilot's
  HEARTBEAT (FAILURE if none), runs the preflight parameter check (FAILURE
  only with ``preflight_strict``), applies the EKF-origin rule for local outputs
  (``origin.OriginManager``: explicit origin, else the FC's, else the first valid
  fix when the FC has no GNSS), starts the fixed-rate fix sender and the
  status timer, subscribes to position fixes and GCS alerts.
* ``deactivate`` / ``cleanup`` / ``shutdown``: stop the sender, close the link.

Publishers, subscriptions and the status timer are made at the first configure and
live as long as the node: their callbacks do nothing while it is not active. A
transition never destroys one (see :meth:`FcBridgeNode._make_entities`).

Publishes ``FcStatus`` (``/fc/status``), ``NavSatFix`` (the FC's own GNSS,
``/fc/navsat``), its velocity over ground (``TwistWithCovarianceStamped``, ENU m/s,
stamped as the ``NavSatFix`` from the same GPS_RAW_INT, ``/fc/gnss_velocity``),
``Imu`` (orientation and rates in ENU/FLU, ``/fc/imu``), ``FcAltitude`` (AMSL,
``/fc/altitude``), each stamped with the FC's own clock (``fc_telemetry``), the FC's
home (``NavSatFix``, latched, ``/fc/home``: asked for until it comes,
``fc_bridge/home.py``), the EKF's fused
position (``NavSatFix``, ``/fc/ekf_position``) and diagnostics
(``link.*`` LinkStats, ``fix.*`` the fix scheduler's achieved rate / gaps / jitter,
``origin.*``). What the link's reader thread publishes is
:class:`~gps_denied_onboard.nodes.fc_telemetry.LinkTelemetry`'s, one per link: a
reader that a deactivate left behind (``fc.link_thread_stuck``) publishes nothing
after the deactivate returned. What it records and logs (the link's
``fc.link_up``, ``fc.mode_change``..., the GNSS monitor's and the origin manager's) goes
through the link's :class:`~gps_denied_onboard.fc_bridge.link_epoch.LinkEpoch`, retired
once the link is closed: nothing of it either.

``FcStatus`` is the current link's only: activated again, the node has a new link,
which has heard the autopilot (the activate waited for it) and perhaps no telemetry
yet; until it has, the GNSS, EKF and battery fields say "no data" (fix type 0, no
satellites, HDOP and battery NaN, -1 %, GNSS health ``no_data``, no EKF flag), never
the old link's values. A status built before a transition is published only if its
link is still the current one and the node still active.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import threading
from typing import Any

from geometry_msgs.msg import TwistWithCovarianceStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Imu, NavSatFix, Range

from gps_denied_onboard.config import config_defaults
from gps_denied_onboard.errors import ConfigError, GpsDeniedError
from gps_denied_onboard.fc_bridge.config import FcBridgeConfig
from gps_denied_onboard.fc_bridge.errors import FcBridgeError
from gps_denied_onboard.fc_bridge.fix import PositionFix
from gps_denied_onboard.fc_bridge.fix_output import OutputKind
from gps_denied_onboard.fc_bridge.gnss_health import GnssHealthMonitor
from gps_denied_onboard.fc_bridge.home import HomeWatcher
from gps_denied_onboard.fc_bridge.link import FcLink
from gps_denied_onboard.fc_bridge.link_epoch import LinkEpoch
from gps_denied_onboard.fc_bridge.node_params import CONFIG_CLASSES, build_node_config
from gps_denied_onboard.fc_bridge.origin import OriginConfig, OriginManager
from gps_denied_onboard.fc_bridge.own_fixes import SentPositions
from gps_denied_onboard.fc_bridge.preflight import PreflightReport, delay_advice, run_preflight
from gps_denied_onboard.fc_bridge.reloc import EkfSourceSwitch, RelocGate
from gps_denied_onboard.fc_bridge.scheduler import FixOutputConfig, FixScheduler, FixSenderThread
from gps_denied_onboard.fc_bridge.statustext import AlertForwarder
from gps_denied_onboard.msg import FcAltitude, FcStatus, GcsAlert
from gps_denied_onboard.msg import PositionFix as PositionFixMsg
from gps_denied_onboard.nodes.fc_telemetry import LinkTelemetry
from gps_denied_onboard.nodes.lifecycle_guard import LifecycleNodeBase
from gps_denied_onboard.nodes.params import declare_config
from gps_denied_onboard.nodes.record_sink import RecordPublisherSink
from gps_denied_onboard.nodes.ros_clock import RosClock
from gps_denied_onboard.nodes.ros_logging import bridge_logging
from gps_denied_onboard.nodes.runner import run_node
from gps_denied_onboard.nodes.status_publishers import DiagnosticsPublisher
from gps_denied_onboard.records import FlightRecord
from gps_denied_onboard.ros_topics import (
    LATCHED_QOS,
    RECORD_QOS,
    TOPIC_FC_ALTITUDE,
    TOPIC_FC_EKF_POSITION,
    TOPIC_FC_GNSS_VELOCITY,
    TOPIC_FC_HOME,
    TOPIC_FC_IMU,
    TOPIC_FC_NAVSAT,
    TOPIC_FC_RANGEFINDER,
    TOPIC_FC_SENT_FIX,
    TOPIC_FC_STATUS,
    TOPIC_GCS_ALERTS,
    TOPIC_POSITION_FIX,
    ns_to_time_msg,
)

NODE_NAME = "fc_bridge"
#: New fixes sent before the measured lag is compared with the FC's delay parameter.
DELAY_CHECK_MIN_FIXES = 20


class FcBridgeNode(LifecycleNodeBase):
    def __init__(self, **kwargs: Any) -> None:
        self._cfg: FcBridgeConfig | None = None
        self._fix_cfg: FixOutputConfig | None = None
        self._origin_cfg: OriginConfig | None = None
        self._origin: OriginManager | None = None
        self._link: FcLink | None = None
        self._gnss: GnssHealthMonitor | None = None
        self._own_fixes = SentPositions()
        self._telemetry: LinkTelemetry | None = None  # the link's reader's side (one per link)
        self._epoch: LinkEpoch | None = None  # the link's records and log lines (one per link)
        self._sched: FixScheduler | None = None
        self._sender: FixSenderThread | None = None
        self._reloc: RelocGate | None = None
        self._switch: EkfSourceSwitch | None = None
        self._forwarder: AlertForwarder | None = None
        self._pubs: dict[str, Any] = {}
        self._sink: RecordPublisherSink  # these, the subscriptions and the timer: _make_entities
        self._diag: DiagnosticsPublisher
        self._subs: list[Any] = []
        self._timer: Any = None
        self._active = threading.Event()
        # held while the status timer checks that the node is active and publishes, and
        # while a transition clears _active: no status goes out after the transition
        # returned. The lifecycle services share the timer's (default, mutually
        # exclusive) callback group; a transition run on another thread (trigger_*,
        # run_node's shutdown while a worker is still in the timer) does not. The link's
        # reader publishes under it too (LinkTelemetry).
        self._publishing = threading.Lock()
        self._preflight_lines: list[str] = []
        self._preflight: PreflightReport | None = None
        self._delay_advice: str | None = None
        super().__init__(kwargs.pop("node_name", NODE_NAME), **kwargs)
        for cls in CONFIG_CLASSES:
            # None-default fields take a number or "" (unset): dynamically typed, else
            # rclpy types them as strings and refuses a number from --params-file.
            for name, default in config_defaults(cls).items():
                if default is None and not self.has_parameter(name):
                    self.declare_parameter(name, "", ParameterDescriptor(dynamic_typing=True))
            declare_config(self, cls)
        self._core_clock = RosClock(self)
        self._log = bridge_logging(self)

    # -- lifecycle ------------------------------------------------------------------------

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        names = [f.name for cls in CONFIG_CLASSES for f in dataclasses.fields(cls)]
        try:
            values = {name: self.get_parameter(name).value for name in names}
            self._cfg, self._fix_cfg, self._origin_cfg = build_node_config(values)
        except ConfigError as err:
            self.get_logger().error(f"fc.configure_failed key={err.key} error={err}")
            return TransitionCallbackReturn.FAILURE
        self._make_entities(self._cfg)
        self._link = self._build_link()
        self.get_logger().info(f"fc.configured connection={self._cfg.connection}")
        return TransitionCallbackReturn.SUCCESS

    def _make_entities(self, cfg: FcBridgeConfig) -> None:
        """Publishers, subscriptions and the status timer: made once, kept for the node's life.

        A transition callback runs on one executor thread while another walks the
        node's entity lists to build its wait set; an entity destroyed in between (the
        QoS event handlers of a subscription or publisher) raised ``InvalidHandle`` out
        of ``spin_once`` (rclpy#1284, #1206): ``run_node`` stopped and the node answered
        nothing after a deactivate. So nothing is destroyed until ``destroy_node``
        (after the executor stops) and the callbacks are gated on ``_active``. The
        timer keeps its period and is not cancelled either: a timer cancelled after the
        executor picked it raises in the executor's take (rclpy#1485).
        """
        period_s = 1.0 / cfg.publish_rate_hz
        if self._timer is not None:  # configured before: a new rate, a new connection name
            self._timer.timer_period_ns = int(period_s * 1e9)
            self._diag.hardware_id = cfg.connection
            return
        self._sink = RecordPublisherSink(self)
        self._pubs = {
            "status": self.create_publisher(FcStatus, TOPIC_FC_STATUS, 10),
            "navsat": self.create_publisher(NavSatFix, TOPIC_FC_NAVSAT, qos_profile_sensor_data),
            "gnss_velocity": self.create_publisher(
                TwistWithCovarianceStamped, TOPIC_FC_GNSS_VELOCITY, qos_profile_sensor_data
            ),
            "imu": self.create_publisher(Imu, TOPIC_FC_IMU, qos_profile_sensor_data),
            "alt": self.create_publisher(FcAltitude, TOPIC_FC_ALTITUDE, qos_profile_sensor_data),
            "range": self.create_publisher(Range, TOPIC_FC_RANGEFINDER, qos_profile_sensor_data),
            "home": self.create_publisher(NavSatFix, TOPIC_FC_HOME, LATCHED_QOS),
            "sent_fix": self.create_publisher(PositionFixMsg, TOPIC_FC_SENT_FIX, LATCHED_QOS),
            "ekf_position": self.create_publisher(
                NavSatFix, TOPIC_FC_EKF_POSITION, qos_profile_sensor_data
            ),
        }
        self._diag = DiagnosticsPublisher(self, "fc_bridge", cfg.connection)
        self._subs = [
            self.create_subscription(GcsAlert, TOPIC_GCS_ALERTS, self._on_alert, RECORD_QOS),
            self.create_subscription(PositionFixMsg, TOPIC_POSITION_FIX, self._on_fix, 10),
        ]
        self._timer = self.create_timer(period_s, self._publish_status)

    def _build_link(self) -> FcLink:
        assert self._cfg is not None
        if self._telemetry is not None:  # the last link's reader, even one left stuck
            self._telemetry.retire()
        if self._epoch is not None:  # closed by now (a deactivate, a failed activate)
            self._epoch.retire()
        # everything this link's reader reaches records and logs through its epoch
        epoch = self._epoch = LinkEpoch()
        link = FcLink(self._cfg, self._core_clock, epoch.sink(self._sink), epoch.logger(self._log))
        self._own_fixes = SentPositions()  # this link's GPS_INPUTs, to tell their echo
        self._gnss = GnssHealthMonitor(
            self._core_clock,
            epoch.sink(self._sink),
            min_satellites=self._cfg.gnss_min_satellites,
            max_hacc_m=self._cfg.gnss_max_hacc_m,
            timeout_s=self._cfg.gnss_timeout_s,
            own_fixes=self._own_fixes,
        )
        telemetry = self._telemetry = LinkTelemetry(link, self._pubs, self._publishing, self._gnss)
        link.add_idle_hook(self._gnss.current)  # the "no data" verdict, made when drained
        home = HomeWatcher(
            link.send,
            self._core_clock.now_ns,
            lambda: (
                None if link.autopilot is None else (link.autopilot.sysid, link.autopilot.compid)
            ),
            telemetry.on_home,
            period_s=self._cfg.telemetry_rerequest_s,
            ask=self._cfg.telemetry_request,
            logger=epoch.logger(self._log),
        )
        link.add_handler("HOME_POSITION", home.on_message)
        link.add_idle_hook(home.poll)
        return link

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        # rclpy turns an uncaught exception into ERROR, unlogged: catch, log, FAILURE.
        try:
            return self._activate(state)
        except Exception as err:
            self.get_logger().error(f"fc.activate_failed error={err!r}")
            self._stop_io()
            self._link = self._build_link()
            return TransitionCallbackReturn.FAILURE

    def _activate(self, state: State) -> TransitionCallbackReturn:
        cfg, fix_cfg, link = self._cfg, self._fix_cfg, self._link
        origin_cfg, gnss, telemetry, epoch = (
            self._origin_cfg,
            self._gnss,
            self._telemetry,
            self._epoch,
        )
        assert cfg is not None and fix_cfg is not None and link is not None
        assert origin_cfg is not None and gnss is not None
        assert telemetry is not None and epoch is not None
        try:
            link.open()
            ap = link.wait_for_autopilot(cfg.activate_timeout_s)
        except FcBridgeError as err:
            self.get_logger().error(f"fc.activate_failed error={err}")
            link.close()
            self._link = self._build_link()
            return TransitionCallbackReturn.FAILURE
        output = fix_cfg.resolve_output(ap.autopilot.value)
        # this activation's verdict only: nothing of the last link's stays in diagnostics
        self._preflight_lines, self._preflight = [], None
        report: PreflightReport | None = None
        if cfg.preflight and output.value != "none":
            report = run_preflight(
                link,
                output.value,
                self._core_clock,
                self._sink,
                timeout_s=cfg.preflight_timeout_s,
                velocity=fix_cfg.fix_velocity,
                source_switch=self._uses_source_switch(ap.autopilot.value, output),
            )
            self._preflight_lines = report.lines()
            self._preflight = report
            for line in report.lines():
                self.get_logger().warning(f"fc.preflight_problem {line}")
        signing, signing_problem = link.signing_status()
        self.get_logger().info(f"fc.preflight_signing {signing}")
        if cfg.preflight and signing_problem:
            self._preflight_lines.append(signing)
            self.get_logger().warning(f"fc.preflight_problem {signing}")
        if cfg.preflight_strict and report is not None and not report.ok:
            self.get_logger().error(
                f"fc.activate_failed error=preflight_strict problems={len(report.problems)}"
            )
            link.close()
            self._link = self._build_link()
            return TransitionCallbackReturn.FAILURE
        self._forwarder = AlertForwarder(link, self._core_clock, self._sink)
        try:
            origin = OriginManager(  # fed by the link's reader: records through its epoch
                origin_cfg,
                link.send,
                self._core_clock,
                epoch.sink(self._sink),
                needs_origin=output.needs_origin,
                autopilot=ap.autopilot.value,
                target_system=ap.sysid,
                target_component=ap.compid,
                fc_gnss_healthy=lambda: (gnss.latest() or gnss.current()).healthy,
                logger=epoch.logger(self._log),
            )
            self._origin = origin
            # this activation's origin and (once built) encoder: a GPS_GLOBAL_ORIGIN that
            # a stuck reader of this link handles late reaches these, never a later one's
            telemetry.route_origin(lambda msg: self._on_fc_origin(msg, origin, None))
            origin.activate()
            # every GPS_INPUT noted: the FC reports them back as its GNSS (own_fixes.py)
            send: Any = self._own_fixes.recording(link.send)
            self._switch = None
            if self._uses_source_switch(ap.autopilot.value, output):
                self._switch = EkfSourceSwitch(send, ap.sysid, ap.compid)
                send = self._switch.wrap(send)
            self._reloc = RelocGate(
                min_quality=fix_cfg.fix_reloc_min_quality,
                max_hacc_m=fix_cfg.fix_reloc_max_hacc_m,
                confirm_fixes=fix_cfg.fix_reloc_confirm_fixes,
                confirm_radius_m=fix_cfg.fix_reloc_confirm_radius_m,
                method=_reloc_method(ap.autopilot.value, output, self._switch is not None),
            )
            sched = FixScheduler.from_config(
                fix_cfg,
                autopilot=ap.autopilot.value,
                send=send,
                clock=self._core_clock,
                origin=origin.current,
                target_system=ap.sysid,
                target_component=ap.compid,
                logger=self._log,
            )
            self._sched = sched
            telemetry.route_origin(lambda msg: self._on_fc_origin(msg, origin, sched))
            if origin.current is not None:  # reported by the FC while the scheduler was built
                sched.encoder.set_origin(origin.current)
            self._sender = FixSenderThread(sched)
            self._sender.start()
        except (GpsDeniedError, ValueError) as err:
            self.get_logger().error(f"fc.output_failed error={err}")
            link.close()
            self._link = self._build_link()
            return TransitionCallbackReturn.FAILURE
        self._active.set()
        if self._telemetry is not None:
            self._telemetry.go_live()
        self.get_logger().info(
            f"fc.active autopilot={ap.autopilot.value} sysid={ap.sysid} output={output.value}"
        )
        result: TransitionCallbackReturn = super().on_activate(state)
        return result

    def _stop_io(self) -> None:
        with self._publishing:  # a status being published goes out first, none after
            self._active.clear()  # the timer and subscriptions stay, idle (see _make_entities)
        if self._telemetry is not None:
            # nothing the link's reader does shows from now on: not while close waits
            # for it, nor after, when close left it stuck (its join timed out)
            self._telemetry.retire()
        if self._sender is not None:
            self._sender.stop()
            self._sender = None
        self._sched = None
        self._reloc = None
        self._switch = None
        self._origin = None
        self._forwarder = None
        if self._link is not None:
            self._link.close()
        if self._epoch is not None:
            # after close, whose own records (fc.link_down, fc.link_thread_stuck) go out:
            # nothing the link's reader records or logs shows from now on, stuck or not
            self._epoch.retire()

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_io()
        if self._cfg is not None:
            self._link = self._build_link()  # a closed link cannot reopen: fresh, no I/O
        result: TransitionCallbackReturn = super().on_deactivate(state)
        return result

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._stop_io()
        self._link = None  # publishers stay, silent while unconfigured (see _make_entities)
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._stop_io()
        return TransitionCallbackReturn.SUCCESS

    def shutdown(self) -> None:
        """Called by ``run_node`` on SIGINT/SIGTERM: close the link whatever the state."""
        self._stop_io()

    # -- inbound (link reader thread; the rest is LinkTelemetry's) ------------------------

    def _on_fc_origin(self, msg: Any, origin: OriginManager, sched: FixScheduler | None) -> None:
        """GPS_GLOBAL_ORIGIN, to the activation's ``origin`` and ``sched`` it was routed to."""
        new = origin.on_fc_origin(msg)
        if new is not None and sched is not None:
            sched.encoder.set_origin(new)

    # -- outbound (executor threads) -----------------------------------------------------

    def _on_alert(self, msg: GcsAlert) -> None:
        fwd = self._forwarder
        if fwd is None or not self._active.is_set():
            return
        try:
            fwd.forward(int(msg.severity), str(msg.text), str(msg.source))
        except (ValueError, FcBridgeError) as err:
            self.get_logger().warning(f"fc.alert_not_forwarded error={err}")

    def _on_fix(self, msg: PositionFixMsg) -> None:
        sched, origin, gate = self._sched, self._origin, self._reloc
        if sched is None or gate is None or not self._active.is_set():
            return
        try:
            admission = gate.admit(PositionFix.from_msg(msg))
            if admission.record is not None:
                self._sink.emit(
                    FlightRecord(
                        "fc.relocalisation",
                        "fc_bridge",
                        self._core_clock.now_ns(),
                        admission.record,
                    )
                )
                self.get_logger().warning(
                    "fc.relocalisation " + " ".join(f"{k}={v}" for k, v in admission.record.items())
                )
            fix = admission.fix
            if fix is None:
                return  # an unsure jump, held back
            if admission.reset and self._switch is not None:
                self._switch.begin(fix.capture_usec)
            if origin is not None:
                new = origin.on_fix(fix)  # the first valid fix may set the EKF origin
                if new is not None:
                    sched.encoder.set_origin(new)
            sched.submit(fix)
            # latched: what a visual_nav restarted in flight resumes its track from
            self._pubs["sent_fix"].publish(msg)
        except (ValueError, GpsDeniedError) as err:
            self.get_logger().warning(f"fc.fix_rejected error={err}")

    def _check_delay(self, sched: FixScheduler | None) -> str | None:
        """The preflight's delay line from the measured capture-to-send age (logged on change)."""
        report = self._preflight
        if report is None or sched is None:
            return None
        stats = sched.stats()
        if stats.new_fixes_sent < DELAY_CHECK_MIN_FIXES:
            return None
        advice = delay_advice(
            report.autopilot,
            report.output,
            report.values,
            stats.new_fix_age_median_ms,
            least_ms=stats.new_fix_age_min_ms,
            three_d=self._fix_cfg is not None and self._fix_cfg.fix_velocity,
        )
        if advice != self._delay_advice and advice is not None:
            self.get_logger().warning(f"fc.preflight_delay {advice}")
        self._delay_advice = advice
        return advice

    def _uses_source_switch(self, autopilot: str, output: OutputKind) -> bool:
        fix_cfg = self._fix_cfg
        return bool(
            fix_cfg is not None
            and fix_cfg.fix_reloc_source_switch
            and autopilot == "ardupilot"
            and output is OutputKind.GPS_INPUT
        )

    def _publish_status(self) -> None:
        # one link's: its state, its GNSS verdicts, its reader's telemetry (each set
        # before the link, in _build_link), or none at all
        link_tm, gnss_mon, link = self._telemetry, self._gnss, self._link
        if link is None or gnss_mon is None or link_tm is None or not self._active.is_set():
            return
        ap = link.autopilot
        # verdicts are made by the link's reader when idle (add_idle_hook)
        health = gnss_mon.latest() or gnss_mon.current()
        fix, ekf, bat = link_tm.state()
        age = link.heartbeat_age_ns()
        st = FcStatus()
        st.header.stamp = ns_to_time_msg(self._core_clock.now_ns())
        st.autopilot = "unknown" if ap is None else ap.autopilot.value
        st.system_id = 0 if ap is None else ap.sysid
        st.mode = link.mode or ""
        st.armed = bool(link.armed)
        st.link_ok = link.link_ok
        st.heartbeat_age_s = math.inf if age is None else age / 1e9
        st.gnss_fix_type = 0 if fix is None else max(0, fix.fix_type)
        st.satellites_visible = 0 if fix is None or fix.satellites < 0 else fix.satellites
        st.hdop = math.nan if fix is None else fix.hdop
        st.gnss_healthy = health.healthy
        st.gnss_health_reason = health.reason
        st.ekf_flags = 0 if ekf is None else ekf.flags & 0xFFFF
        st.battery_voltage = math.nan if bat is None else bat.voltage_v
        st.battery_current = math.nan if bat is None else bat.current_a
        st.battery_remaining_pct = -1 if bat is None else max(-1, min(100, bat.remaining_pct))
        stats = link.stats
        values: dict[str, object] = {
            "autopilot": st.autopilot,
            "mode": st.mode,
            "link_ok": st.link_ok,
            "heartbeat_age_s": round(st.heartbeat_age_s, 3),
            "gnss": health.reason,
            **{f"link.{k}": v for k, v in vars(stats).items()},
        }
        sched, origin = self._sched, self._origin
        if sched is not None:
            values.update({f"fix.{k}": _diag_value(v) for k, v in sched.stats().as_dict().items()})
        waiting_origin = False
        if origin is not None and sched is not None and sched.encoder.kind.needs_origin:
            held = origin.current
            waiting_origin = held is None
            values["origin.source"] = origin.source or "waiting"
            if held is not None:
                values["origin.latitude"] = held.latitude_deg
                values["origin.longitude"] = held.longitude_deg
                values["origin.altitude_msl"] = held.altitude_msl_m
        if self._preflight_lines:
            values["preflight"] = "; ".join(self._preflight_lines)
        values["signing"] = link.signing_status()[0]
        advice = self._check_delay(sched)
        if advice is not None:
            values["preflight.delay"] = advice
        telemetry = link.telemetry_report()
        telemetry_problems: tuple[str, ...] = ()
        if telemetry is not None:
            for stream in telemetry.streams:
                values[f"telemetry.{stream.name}"] = (
                    f"{stream.achieved_hz:.1f}/{stream.requested_hz:g} Hz {stream.method}"
                )
            telemetry_problems = telemetry.problems
            values["telemetry.health"] = "; ".join(telemetry_problems) or "ok"
            values["telemetry.rounds"] = telemetry.rounds
            values["telemetry.reboots"] = telemetry.reboots
        level = self._diag.OK if st.link_ok else self._diag.ERROR
        if st.link_ok and (
            self._preflight_lines
            or not health.healthy
            or waiting_origin
            or telemetry_problems
            or advice is not None
        ):
            level = self._diag.WARN
        message = "link ok" if st.link_ok else "link lost"
        if st.link_ok and waiting_origin:
            message = "link ok, waiting for the EKF origin"
        elif st.link_ok and telemetry_problems:
            message = "link ok, telemetry: " + "; ".join(telemetry_problems)
        # built unlocked (a transition need not wait for it); published only if the node
        # is still active, and under the lock that the transition takes to clear it; and
        # still with this link: one built before a deactivate and an activate that ran on
        # other threads meanwhile (trigger_*) describes the old link, not the current one
        with self._publishing:
            if not self._active.is_set() or self._link is not link:
                return
            if self._telemetry is not link_tm or self._gnss is not gnss_mon:
                return
            self._pubs["status"].publish(st)
            self._diag.publish(level, message, values)


def _reloc_method(autopilot: str, output: OutputKind, source_switch: bool) -> str:
    """How an accepted relocalisation reaches this autopilot (``fc.relocalisation``)."""
    if output in (OutputKind.ODOMETRY, OutputKind.VISION_POSITION_ESTIMATE):
        return "reset_counter"
    if source_switch:
        return "ekf_source_switch"
    return "none"


def _diag_value(value: object) -> object:
    """Floats to 3 decimals for the diagnostics strings (NaN stays ``nan``)."""
    return round(value, 3) if isinstance(value, float) and math.isfinite(value) else value


def main(argv: list[str] | None = None) -> int:
    return run_node(FcBridgeNode, sys.argv[1:] if argv is None else argv)
