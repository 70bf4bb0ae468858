"""``visual_nav``: the visual position estimator as a ROS 2 lifecycle node.

* ``configure``: parameters -> :class:`~gps_denied_onboard.visual_nav.config.VisualNavConfig`;
  the estimator and the tile cache's service clients (``/<tile_cache_node>/query_bbox``,
  ``/get_tile``) are made; publishers of ``/nav/position_fix`` (PositionFix),
  ``/nav/navsat`` (the same fixes as NavSatFix), ``/tile_cache/snapshots`` and
  diagnostics exist from here on.
* ``activate``: takes in the camera (``CompressedImage`` or ``Image``) and
  ``CameraInfo``, and the FC bridge's ``/fc/imu`` (attitude), ``/fc/altitude``
  (AMSL), ``/fc/rangefinder`` (height above ground when fresh), ``/fc/status``
  (armed, GNSS verdict), ``/fc/navsat`` (the FC's GNSS, the prior while healthy),
  ``/fc/gnss_velocity`` (its velocity over ground: the autopilot's heading and
  height error measured against registration while it is healthy),
  ``/fc/ekf_position`` (the FC's fused position: the prior with no track and no GNSS),
  ``/fc/home`` (latched: the ground's elevation unless configured), ``/fc/sent_fix``
  (latched: the newest fix the bridge took, the track a restarted node resumes), and
  ``~/seed_position`` (``NavSatFix``, latched): where the aircraft is, from outside
  (the operator at a launch with GNSS jammed from the start), with its
  covariance; the search starts there and grows with time until a fix;
  starts the worker thread that matches frames and the prefetch thread that pulls
  tiles around the aircraft into memory, so a frame never waits on a service call.
* ``deactivate`` / ``cleanup`` / ``shutdown``: stop both threads; inputs are ignored.

Subscriptions, the service clients and the diagnostics timer are made at the
configure that first names them and live as long as the node; a transition never
destroys one, and their callbacks do nothing unless the node is active (see
:meth:`VisualNavNode._make_entities`). The newest seed position and the FC's home
are kept while inactive and applied at each activation, as the latched samples
were when each activation subscribed anew.

Frames are taken at most ``frame_max_rate_hz`` by their capture stamps, queued
(``queue_depth``) and matched one at a time, in order; when matching falls behind,
those captured over ``frame_max_lag_s`` before the newest waiting are let go
(:mod:`~gps_denied_onboard.visual_nav.frame_pacing`). A frame dropped (queue full,
late) is counted (``dropped_busy``, ``dropped_late`` in diagnostics) and logged:
never silently. Every frame received ends in one ``FrameOutcome`` on
``~/frame_outcome`` (fix, reject, decimated, dropped), which a lockstep replay
waits on. Every fix and every reject is counted; ``vnav.fix``/``vnav.reject``
records are rate-capped, ``failed_tile_thumbnail`` at most once per
``thumbnail_period_s``.

Raw camera frames are never published to the recorder: the recorder refuses
camera topics whatever its configuration says.

The message conversions (camera messages in; PositionFix, TileSnapshot out) are
:mod:`~gps_denied_onboard.nodes.visual_nav_msgs`'s, what goes out per frame
:mod:`~gps_denied_onboard.nodes.visual_nav_outputs`'s, the FC's inputs
:mod:`~gps_denied_onboard.nodes.visual_nav_inputs`'s, the tile prefetch
:mod:`~gps_denied_onboard.nodes.tile_prefetch`'s; this module translates.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from geometry_msgs.msg import TwistWithCovarianceStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, Imu, NavSatFix, Range
from std_msgs.msg import String

from gps_denied_onboard.errors import GpsDeniedError
from gps_denied_onboard.log import log_event
from gps_denied_onboard.msg import FcAltitude, FcStatus, PositionFix
from gps_denied_onboard.nodes.executors import lean_executor
from gps_denied_onboard.nodes.lifecycle_guard import LifecycleNodeBase
from gps_denied_onboard.nodes.params import declare_config, read_config
from gps_denied_onboard.nodes.ros_clock import RosClock
from gps_denied_onboard.nodes.ros_logging import bridge_logging
from gps_denied_onboard.nodes.runner import run_node
from gps_denied_onboard.nodes.status_publishers import DiagnosticsPublisher
from gps_denied_onboard.nodes.tile_prefetch import TilePrefetch
from gps_denied_onboard.nodes.visual_nav_inputs import EstimatorInputs
from gps_denied_onboard.nodes.visual_nav_msgs import camera_model_of, image_of
from gps_denied_onboard.nodes.visual_nav_outputs import FrameOutputs
from gps_denied_onboard.ros_topics import (
    LATCHED_QOS,
    TOPIC_FC_ALTITUDE,
    TOPIC_FC_EKF_POSITION,
    TOPIC_FC_GNSS_VELOCITY,
    TOPIC_FC_HOME,
    TOPIC_FC_IMU,
    TOPIC_FC_NAVSAT,
    TOPIC_FC_RANGEFINDER,
    TOPIC_FC_SENT_FIX,
    TOPIC_FC_STATUS,
    TOPIC_FDR_FLIGHT,
    time_msg_to_ns,
)
from gps_denied_onboard.srv import GetTile, QueryBbox
from gps_denied_onboard.visual_nav.camera import CameraModel
from gps_denied_onboard.visual_nav.config import VisualNavConfig
from gps_denied_onboard.visual_nav.errors import CameraModelError, FrameRejected
from gps_denied_onboard.visual_nav.estimator import VisualEstimator
from gps_denied_onboard.visual_nav.frame_pacing import FramePacer, PacingConfig
from gps_denied_onboard.visual_nav.learnt_camera import LearntCameraFile
from gps_denied_onboard.visual_nav.outputs import VisualNavStats

NODE_NAME: Final = "visual_nav"
NS: Final = 1_000_000_000
#: the camera and its CameraInfo: best effort, as REP 2003 has sensor data's consumers
#: subscribe, since a best-effort subscription matches a publisher of either kind. A
#: reliable one never matches a best-effort publisher (drivers publishing with the
#: sensor-data profile, a bag recorded from one and replayed with its QoS): no frame
#: came, and nothing said why.
FRAME_QOS: Final = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.BEST_EFFORT
)
#: the FC's telemetry (``/fc/imu``, ``/fc/altitude``, ``/fc/navsat``, rangefinder):
#: best effort like the bridge publishes it, but a queue of 100 rather than the sensor
#: profile's 5. The bridge relays in bursts when the machine is loaded, and a burst
#: longer than the queue was lost whole: 9-10 attitude samples in a row (a 400 ms hole
#: at 25 Hz), frames in it refused ``stale_attitude`` (5 of 480 in the main job beside
#: two test runs). 100 samples is 4 s of ATTITUDE at 25 Hz.
FC_INPUT_QOS: Final = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.BEST_EFFORT
)
#: wall seconds the worker waits for a frame before it applies the inputs queued for
#: the estimator anyway (no camera, no frames: the queue must not grow for ever)
IDLE_DRAIN_S: Final = 0.5


class VisualNavNode(LifecycleNodeBase):
    """The visual position estimator node (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        self._cfg: VisualNavConfig | None = None
        self._estimator: VisualEstimator | None = None
        self._map = TilePrefetch(
            lambda req: self._call(self._query, req), lambda req: self._call(self._get, req)
        )
        self._camera: CameraModel | None = None
        self._camera_error = ""
        self._scale_mismatch_logged = False  # vnav.ground_scale_mismatch, once a stretch
        self._frames: FramePacer[Any] = FramePacer(PacingConfig())
        self._frames_cv = threading.Condition()  # guards _frames; the worker waits on it
        self._stop = threading.Event()
        self._kick = threading.Event()  # prefetch now: a position arrived with no tiles yet
        self._threads: list[threading.Thread] = []
        self._active = False
        # made once each, never destroyed (see _make_entities)
        self._subs: dict[tuple[str, str], Any] = {}  # (topic, type) -> subscription
        self._wanted: set[tuple[str, str]] = set()  # those the current configuration reads
        self._tile_clients: dict[str, tuple[Any, Any]] = {}  # tile cache node -> (query, get)
        self._timer: Any = None
        self._seed: NavSatFix | None = None  # the newest seed, applied at activation
        self._home: NavSatFix | None = None  # the FC's home (latched), applied at activation
        self._sent_fix: PositionFix | None = None  # the bridge's newest (latched), likewise
        self.stats = VisualNavStats()
        super().__init__(kwargs.pop("node_name", NODE_NAME), **kwargs)
        declare_config(self, VisualNavConfig)
        self._clock_core = RosClock(self)
        self._log = bridge_logging(self)
        self._learnt = LearntCameraFile(None, NS, self._log)  # learnt_camera_file (configure)
        self._inputs = EstimatorInputs(
            self._clock_core, self._log, self._kick.set, lambda: bool(len(self._map.tiles))
        )
        self._out = FrameOutputs(self, self._log, self.stats)
        self._diag = DiagnosticsPublisher(self, NODE_NAME)
        self._client_group = ReentrantCallbackGroup()
        self._input_group = MutuallyExclusiveCallbackGroup()

    # -- lifecycle -----------------------------------------------------------------------

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            cfg = read_config(self, VisualNavConfig)
        except GpsDeniedError as err:
            log_event(self._log, logging.ERROR, "vnav.configure_failed", error=str(err))
            return TransitionCallbackReturn.FAILURE
        self._cfg = cfg
        self._estimator = VisualEstimator(cfg.estimator_config(), self._map.tiles)
        path = Path(cfg.learnt_camera_file) if cfg.learnt_camera_file else None
        self._learnt = LearntCameraFile(
            path,
            int(cfg.learnt_camera_save_s * NS),
            self._log,
            lambda payload: self._out.emit(
                "vnav.learnt_camera", self._clock_core.now_ns(), payload
            ),
        )
        self._learnt.load()
        self._out.configure(cfg)
        with self._frames_cv:
            dropped = self._frames.clear()
            self._frames = FramePacer(cfg.pacing_config())
        self._out.let_go(dropped)
        base = f"/{cfg.tile_cache_node.strip('/')}"
        self._make_entities(cfg, base)
        log_event(self._log, logging.INFO, "vnav.configured", tile_cache=base)
        return TransitionCallbackReturn.SUCCESS

    def _make_entities(self, cfg: VisualNavConfig, base: str) -> None:
        """Subscriptions, clients and the diagnostics timer: each made once, kept for the
        node's life.

        A transition callback that destroys an entity while another executor thread
        builds its wait set from the node's entity lists makes rclpy raise
        ``InvalidHandle`` out of ``spin_once`` (rclpy#1284, #1206; fc_bridge stopped
        answering that way). ``run_node`` spins this node on one thread
        (:func:`.executors.lean_executor`), where transitions and the wait set take turns, but
        an embedding (the tests, a multi-threaded executor) need not; so nothing is
        destroyed until ``destroy_node`` and every input callback does nothing unless
        the node is active and reads that topic (:meth:`_gated`). A later configure
        that names other topics or another tile cache adds what is new; the timer
        only takes the new period (it is never cancelled: a timer cancelled after the
        executor picked it raises in its take, rclpy#1485).
        """
        g = self._input_group
        sensor = FC_INPUT_QOS
        inputs: list[tuple[Any, str, Callable[[Any], None], Any]] = [
            (CameraInfo, cfg.camera_info_topic, self._on_info, FRAME_QOS),
            (Imu, TOPIC_FC_IMU, self._inputs.on_imu, sensor),
            (FcAltitude, TOPIC_FC_ALTITUDE, self._inputs.on_altitude, sensor),
            (FcStatus, TOPIC_FC_STATUS, self._inputs.on_status, 10),
            (Range, TOPIC_FC_RANGEFINDER, self._inputs.on_range, sensor),
            (NavSatFix, TOPIC_FC_NAVSAT, self._inputs.on_navsat, sensor),
            (
                TwistWithCovarianceStamped,
                TOPIC_FC_GNSS_VELOCITY,
                self._inputs.on_gnss_velocity,
                sensor,
            ),
            (NavSatFix, TOPIC_FC_EKF_POSITION, self._inputs.on_fc_estimate, sensor),
            (NavSatFix, "~/seed_position", self._inputs.on_seed, LATCHED_QOS),
            (NavSatFix, TOPIC_FC_HOME, self._inputs.on_home, LATCHED_QOS),
            (PositionFix, TOPIC_FC_SENT_FIX, self._inputs.on_sent_fix, LATCHED_QOS),
            (String, TOPIC_FDR_FLIGHT, lambda m: self._out.flight(m.data), LATCHED_QOS),
        ]
        if cfg.compressed_image_topic:
            inputs.append((CompressedImage, cfg.compressed_image_topic, self._on_frame, FRAME_QOS))
        if cfg.image_topic:
            inputs.append((Image, cfg.image_topic, self._on_frame, FRAME_QOS))
        self._wanted = set()
        for msg_type, topic, callback, qos in inputs:
            key = (topic, msg_type.__name__)
            self._wanted.add(key)
            if key not in self._subs:
                self._subs[key] = self.create_subscription(
                    msg_type, topic, self._gated(key, callback), qos, callback_group=g
                )
        if base not in self._tile_clients:
            self._tile_clients[base] = (
                self.create_client(
                    QueryBbox, f"{base}/query_bbox", callback_group=self._client_group
                ),
                self.create_client(GetTile, f"{base}/get_tile", callback_group=self._client_group),
            )
        self._query, self._get = self._tile_clients[base]
        if self._timer is None:
            self._timer = self.create_timer(
                cfg.diagnostics_period_s, self._on_diagnostics, callback_group=g
            )
        else:
            self._timer.timer_period_ns = int(cfg.diagnostics_period_s * NS)

    def _gated(
        self, key: tuple[str, str], callback: Callable[[Any], None]
    ) -> Callable[[Any], None]:
        """``callback``, called only while the node is active and reads ``key``; a seed,
        the FC's home and the bridge's sent fix (all latched) are kept whatever the
        state (applied at activation), and the recorder's open flight is taken whatever
        the state (the snapshots' flight)."""

        def gated(msg: Any) -> None:
            if key[0] == "~/seed_position":
                self._seed = msg
            elif key[0] == TOPIC_FC_HOME:
                self._home = msg
            elif key[0] == TOPIC_FC_SENT_FIX:
                self._sent_fix = msg
            if key[0] == TOPIC_FDR_FLIGHT or (self._active and key in self._wanted):
                callback(msg)

        return gated

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        cfg = self._cfg
        assert cfg is not None
        self._active = True
        self._inputs.activated()
        if self._seed is not None:  # what a fresh latched subscription used to hand over
            self._inputs.on_seed(self._seed)
        if self._home is not None:  # the configure made a new estimator
            self._inputs.on_home(self._home)
        if self._sent_fix is not None:
            self._inputs.on_sent_fix(self._sent_fix)
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._work, name="vnav-worker", daemon=True),
            threading.Thread(target=self._prefetch_loop, name="vnav-prefetch", daemon=True),
        ]
        for t in self._threads:
            t.start()
        log_event(self._log, logging.INFO, "vnav.active")
        result: TransitionCallbackReturn = super().on_activate(state)
        return result

    def _stop_io(self) -> None:
        self._active = False  # the subscriptions and timer stay, idle (see _make_entities)
        self._stop.set()
        self._kick.set()
        with self._frames_cv:
            self._frames_cv.notify_all()  # wakes a worker waiting for a frame
        for t in self._threads:
            t.join(timeout=5.0)
        self._threads = []
        self._drop_queued()
        self._learnt.flush()  # what the last period learnt, before a landing

    def _drop_queued(self) -> None:
        """Empty the frame queue once the worker is gone: frames from before the stop
        are stale by the next activation."""
        with self._frames_cv:
            dropped = self._frames.clear()
        self._out.let_go(dropped)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_io()
        result: TransitionCallbackReturn = super().on_deactivate(state)
        return result

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._stop_io()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._stop_io()
        return TransitionCallbackReturn.SUCCESS

    def shutdown(self) -> None:
        self._stop_io()

    # -- inputs (executor threads): queue for the worker -----------------------------------

    def _on_info(self, msg: CameraInfo) -> None:
        try:
            model = camera_model_of(
                msg, rectified=self._cfg is not None and self._cfg.image_is_rectified
            )
        except CameraModelError as err:
            if self._camera_error != str(err):
                log_event(self._log, logging.WARNING, "vnav.camera_info_refused", error=str(err))
            self._camera_error = str(err)
            return
        self._camera, self._camera_error = model, ""

    def _on_frame(self, msg: Any) -> None:
        cfg = self._cfg
        if cfg is None:
            return
        # the exposure time: a driver's stamp moved by camera_time_offset_s
        stamp = time_msg_to_ns(msg.header.stamp)
        if stamp == 0:
            stamp = self._unstamped()
        stamp += round(cfg.camera_time_offset_s * NS)
        with self._frames_cv:
            dropped = self._frames.offer(stamp, msg)
            self.stats.frames_decimated = self._frames.decimated
            self.stats.dropped_busy = self._frames.dropped_busy
            self._frames_cv.notify()
        if dropped is None:
            self._out.decimated(stamp)
        else:
            self._out.let_go(dropped)

    def _unstamped(self) -> int:
        """A frame with no stamp (a driver that leaves header.stamp zero) is taken as
        captured when it arrived, on the node's clock (the replay's under
        ``use_sim_time``): late by the transport's delay, which
        ``camera_time_offset_s`` can take back, where refusing it would leave the
        aircraft without fixes. Counted, and logged once: the driver wants fixing."""
        self.stats.frames_unstamped += 1
        if self.stats.frames_unstamped == 1:
            log_event(
                self._log,
                logging.WARNING,
                "vnav.unstamped_frames",
                hint="the camera driver leaves header.stamp zero; frames are timed on arrival",
            )
        return int(self.get_clock().now().nanoseconds)

    def _next_frame(self) -> tuple[int, Any] | None:
        """The next frame to match, waiting up to :data:`IDLE_DRAIN_S` for one (None
        if none came, or the worker is stopping); those let go as late on the way
        are answered."""
        with self._frames_cv:
            self._frames_cv.wait_for(
                lambda: len(self._frames) > 0 or self._stop.is_set(), IDLE_DRAIN_S
            )
            if self._stop.is_set():
                return None
            taken, late = self._frames.take()
            self.stats.dropped_late = self._frames.dropped_late
        self._out.let_go(late)
        return taken

    # -- worker ----------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            taken = self._next_frame()
            if taken is None:  # no frame: apply the inputs queued for the estimator anyway
                est = self._estimator
                if est is not None and not self._stop.is_set():
                    self._inputs.drain(est)
                continue
            stamp, msg = taken
            est = self._estimator
            if est is None:
                self._out.outcome(stamp, "dropped", "stopped")
                continue
            self._wait_for_attitude(stamp)
            t0 = time.perf_counter()
            try:
                self._inputs.drain(est)
                pixels = image_of(msg, self._camera)
                self._learnt.take(est, self._camera)
                fix = est.process(stamp, pixels, self._camera)
                self._out.fix(est, fix, (time.perf_counter() - t0) * 1e3, self._scaled_cfg())
                self._inputs.fixed_at(fix.latitude, fix.longitude)
                self._learnt.offer(est, fix.stamp_ns)
            except FrameRejected as rej:
                self._out.reject(stamp, rej, (time.perf_counter() - t0) * 1e3, self._tile_under)
            except Exception as err:  # the worker must survive anything a frame does
                self._out.failed(stamp, err, (time.perf_counter() - t0) * 1e3)

    def _wait_for_attitude(self, stamp: int) -> None:
        """Give the attitude of the capture time a moment to arrive (it travels
        through the FC bridge; the frame came straight from the camera).

        Up to ``attitude_wait_s`` for a sample after the capture (interpolation
        beats the newest sample alone), then up to ``attitude_max_age_s`` of wall
        time more while the newest one would still be too old to use.
        """
        cfg = self._cfg
        if cfg is None:
            return
        now = time.monotonic()
        bracket = now + cfg.attitude_wait_s
        usable = bracket + cfg.attitude_max_age_s
        max_age = int(cfg.attitude_max_age_s * NS)
        while not self._stop.is_set():
            newest, now = self._inputs.newest_attitude_ns, time.monotonic()
            if newest >= stamp or now >= usable:
                return
            if stamp - newest <= max_age and now >= bracket:
                return
            time.sleep(0.005)

    def _tile_under(self) -> str | None:
        """The id of the tile under the aircraft (a gate reject's thumbnail)."""
        if self._inputs.position is None:
            return None
        return self._map.tile_id_under(self._scaled_cfg(), *self._inputs.position)

    # -- tile prefetch (own thread; service calls answered by the executor) ------------------

    def _prefetch_loop(self) -> None:
        cfg = self._cfg
        assert cfg is not None
        while not self._stop.is_set():
            self._kick.wait(cfg.prefetch_period_s)
            self._kick.clear()
            if self._stop.is_set():
                return
            try:
                if self._inputs.position is not None:
                    est = self._estimator
                    rungs = (1.0,) if est is None else (est.scales.wanted_factor, est.scales.factor)
                    self._map.fetch_rungs(
                        cfg, rungs, *self._inputs.position, also=self._inputs.also_fetch()
                    )
                    self.stats.tiles_cached = len(self._map.tiles)
            except Exception as err:  # a failed prefetch is retried next period
                log_event(self._log, logging.WARNING, "vnav.prefetch_failed", error=repr(err))

    def _scaled_cfg(self) -> VisualNavConfig | None:
        """The configuration at the ground scale frames are matched at now
        (:mod:`~.visual_nav.ground_scale`)."""
        cfg, est = self._cfg, self._estimator
        return cfg if cfg is None or est is None else cfg.at_scale_factor(est.scales.factor)

    def _call(self, client: Any, req: Any, timeout_s: float = 2.0) -> Any:
        if not client.service_is_ready():
            return None
        fut = client.call_async(req)
        deadline = time.monotonic() + timeout_s
        while not fut.done():
            if self._stop.is_set() or time.monotonic() > deadline:
                # forgotten by the client too, or a lost answer's request stays pending
                client.remove_pending_request(fut)
                fut.cancel()
                return None
            time.sleep(0.005)
        return fut.result()

    # -- diagnostics ---------------------------------------------------------------------

    def _on_diagnostics(self) -> None:
        if not self._active:
            return
        self._learnt.flush()
        if self._estimator is not None:
            self.stats.note_estimator(self._estimator)
        values = self.stats.as_dict()
        mismatch = self._ground_scale_mismatch(values)
        if self._camera is None:
            level, message = DiagnosticsPublisher.WARN, "no CameraInfo"
        elif self.stats.frames and not self.stats.fixes:
            level, message = DiagnosticsPublisher.WARN, "no fix yet"
        elif mismatch is not None:
            level, message = DiagnosticsPublisher.WARN, mismatch
        else:
            level, message = DiagnosticsPublisher.OK, f"{values['fix_rate_hz']} Hz fixes"
        self._diag.publish(level, message, values)

    def _ground_scale_mismatch(self, values: dict[str, object]) -> str | None:
        """A message while the frames' ground sits over twice off what ``ground_scale``
        was calibrated for (logged as ``vnav.ground_scale_mismatch`` when it begins)."""
        cfg = self._cfg
        scaled = self._scaled_cfg()
        hint = None if scaled is None else self.stats.ground_scale_mismatch(scaled.ground_scale)
        if cfg is None or hint is None:
            self._scale_mismatch_logged = False
            return None
        if not self._scale_mismatch_logged:
            self._scale_mismatch_logged = True
            log_event(
                self._log,
                logging.WARNING,
                "vnav.ground_scale_mismatch",
                ground_scale=scaled.ground_scale if scaled else cfg.ground_scale,
                hint=round(hint, 2),
                template_side_m=values.get("template_side_m"),
            )
        at = scaled.ground_scale if scaled else cfg.ground_scale
        return f"frames fit ground_scale {hint:.2f}, matched at {at:g}"


def main(argv: list[str] | None = None) -> int:
    # matching runs on the worker thread; the executor only queues inputs, and the
    # multi-threaded one costs several times more per message (/clock, /fc/imu)
    return run_node(
        VisualNavNode,
        sys.argv[1:] if argv is None else argv,
        executor_factory=lean_executor,
    )


if __name__ == "__main__":
    raise SystemExit(main())
