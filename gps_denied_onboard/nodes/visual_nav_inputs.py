"""The FC's telemetry and the outside priors, turned into the estimator's updates.

The executor's threads hand each message to an ``on_*`` method here, which checks
and converts it and queues a closure; the worker thread applies the queue
(:meth:`EstimatorInputs.drain`) before each frame, so the estimator is only ever
touched on the worker. What the worker and the tile prefetch read of these inputs
(the newest attitude stamp, where the aircraft is) is kept here too.

Split from :mod:`~gps_denied_onboard.nodes.visual_nav_node`, which owns the node's
lifecycle, its subscriptions and the frames.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Final

from geometry_msgs.msg import TwistWithCovarianceStamped
from sensor_msgs.msg import Imu, NavSatFix, NavSatStatus, Range

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.log import log_event
from gps_denied_onboard.msg import FcAltitude, FcStatus, PositionFix
from gps_denied_onboard.nodes.visual_nav_msgs import horizontal_sigma, prior_of_fix_msg
from gps_denied_onboard.ros_topics import time_msg_to_ns
from gps_denied_onboard.visual_nav.camera import rotation_from_quaternion
from gps_denied_onboard.visual_nav.errors import CameraModelError, PriorError
from gps_denied_onboard.visual_nav.estimator import VisualEstimator
from gps_denied_onboard.visual_nav.geo import on_the_map

NS: Final = 1_000_000_000
#: sigma of a ``~/seed_position`` that states no covariance: a launch point known to
#: about 100 m (a 300 m search radius)
SEED_SIGMA_UNKNOWN_M: Final = 100.0

Update = Callable[[VisualEstimator], None]


class EstimatorInputs:
    """The queue of updates for the estimator, fed by the FC's topics and the seed.

    ``clock`` is the node's ROS clock; ``want_tiles`` is called when a position
    arrives while ``has_tiles`` says the map holds none yet (the prefetch fetches
    at once rather than at its next period).
    """

    def __init__(
        self,
        clock: Clock,
        log: logging.Logger,
        want_tiles: Callable[[], None],
        has_tiles: Callable[[], bool],
    ) -> None:
        self._clock = clock
        self._log = log
        self._want_tiles = want_tiles
        self._has_tiles = has_tiles
        self.pending: deque[Update] = deque()
        #: where the aircraft is (a healthy GNSS, a seed, our last fix): the prefetch's
        #: centre; None until something says
        self.position: tuple[float, float] | None = None
        #: this activation has fixed a frame
        self.fixed = False
        #: where our last fix put the aircraft (this activation)
        self.last_fix: tuple[float, float] | None = None
        #: None until the first /fc/status: a node (re)started in flight must not take
        #: the altitudes before it for the ground's (learned while disarmed only)
        self.armed: bool | None = None
        self.gnss_healthy = True
        #: the newest attitude sample's stamp (the FC's clock), for the worker's wait
        self.newest_attitude_ns = 0

    def drain(self, est: VisualEstimator) -> None:
        """Apply the queued updates (the worker's thread)."""
        while self.pending:
            self.pending.popleft()(est)

    def activated(self) -> None:
        self.fixed = False
        self.last_fix = None

    def fixed_at(self, latitude: float, longitude: float) -> None:
        self.position = (latitude, longitude)
        self.last_fix = (latitude, longitude)
        self.fixed = True

    def also_fetch(self) -> list[tuple[float, float]]:
        """Where the prefetch fetches around besides ``position``: our last fix, where
        a healthy GNSS has moved ``position`` off it since (one our track contests, a
        spoofer's drag), so that our track keeps its map."""
        if self.last_fix is None or self.last_fix == self.position:
            return []
        return [self.last_fix]

    def _at(self, latitude: float, longitude: float) -> None:
        self.position = (latitude, longitude)
        if not self._has_tiles():
            self._want_tiles()

    def on_imu(self, msg: Imu) -> None:
        q = msg.orientation
        try:
            r = rotation_from_quaternion(q.x, q.y, q.z, q.w)
        except CameraModelError:
            return
        stamp = time_msg_to_ns(msg.header.stamp)
        self.newest_attitude_ns = max(self.newest_attitude_ns, stamp)
        # the body rates only where the publisher gives them a variance: REP 145 reads a
        # zero covariance as unknown and -1 in its first element as not provided
        w = msg.angular_velocity
        rates = (w.x, w.y, w.z) if msg.angular_velocity_covariance[0] > 0.0 else None
        self.pending.append(lambda est: est.attitude.add(stamp, r, rates))

    def on_altitude(self, msg: FcAltitude) -> None:
        amsl, on_ground = float(msg.amsl), self.armed is False
        # stamped by the bridge with the FC's clock (the link's lag is not in it); a
        # publisher that stamps nothing gets the arrival time
        stamp = time_msg_to_ns(msg.header.stamp) or self._clock.now_ns()
        self.pending.append(
            lambda est: est.height.add_altitude_msl(stamp, amsl, on_ground=on_ground)
        )

    def on_range(self, msg: Range) -> None:
        stamp = time_msg_to_ns(msg.header.stamp)
        rng, lo, hi = float(msg.range), float(msg.min_range), float(msg.max_range)
        self.pending.append(lambda est: est.height.add_range(stamp, rng, lo, hi))

    def on_status(self, msg: FcStatus) -> None:
        self.armed = bool(msg.armed)
        healthy = bool(msg.gnss_healthy)
        self.gnss_healthy = healthy
        stamp = time_msg_to_ns(msg.header.stamp) or self._clock.now_ns()
        self.pending.append(lambda est: est.set_gnss_healthy(healthy, stamp))

    def on_navsat(self, msg: NavSatFix) -> None:
        if msg.status.status < NavSatStatus.STATUS_FIX:
            return
        stamp = time_msg_to_ns(msg.header.stamp)
        lat, lon, healthy = float(msg.latitude), float(msg.longitude), self.gnss_healthy
        sigma = horizontal_sigma(msg)
        if healthy and on_the_map(lat, lon):  # (the estimator drops the rest too)
            self._at(lat, lon)
        self.pending.append(
            lambda est: est.priors.add_gnss(stamp, lat, lon, healthy=healthy, sigma_m=sigma)
        )

    def on_gnss_velocity(self, msg: TwistWithCovarianceStamped) -> None:
        """The GNSS's velocity over ground (ENU), which registration is measured against
        while the GNSS is healthy (the estimator judges that at each frame's stamp); an
        accuracy marked unknown (REP 145: a first covariance of -1) is the estimator's
        default, as is one that is not a number."""
        stamp = time_msg_to_ns(msg.header.stamp)
        v = msg.twist.twist.linear
        east, north = float(v.x), float(v.y)
        var = float(msg.twist.covariance[0])
        sigma = math.sqrt(var) if math.isfinite(var) and var > 0 else None
        self.pending.append(lambda est: est.add_gnss_velocity(stamp, east, north, sigma))

    def on_home(self, msg: NavSatFix) -> None:
        """The FC's home: its altitude is the ground's elevation unless one is configured
        (a node restarted in flight has no other, see ``HeightSource``)."""
        amsl = float(msg.altitude)
        if not math.isfinite(amsl):
            return

        def take(est: VisualEstimator) -> None:
            if est.height.set_home_elevation(amsl):
                log_event(self._log, logging.INFO, "vnav.ground_from_home", ground_msl=amsl)

        self.pending.append(take)

    def on_fc_estimate(self, msg: NavSatFix) -> None:
        """The FC's fused position: the search's last resort (no track of ours, no
        healthy GNSS; :meth:`.prior.PriorTracker.add_fc_estimate`), and where the
        prefetch fetches tiles until then."""
        if msg.status.status < NavSatStatus.STATUS_FIX:
            return
        stamp = time_msg_to_ns(msg.header.stamp)
        lat, lon = float(msg.latitude), float(msg.longitude)
        if not on_the_map(lat, lon):
            return
        if self.position is None or (not self.gnss_healthy and not self.fixed):
            self._at(lat, lon)  # neither a healthy GNSS nor a fix says where
        self.pending.append(lambda est: est.priors.add_fc_estimate(stamp, lat, lon))

    def on_sent_fix(self, msg: PositionFix) -> None:
        """The newest fix the FC bridge took for the autopilot (latched): one of ours
        from before a restart, the track and the reset counter to resume until this
        activation fixes a frame (:meth:`VisualEstimator.resume_track`); our own
        fixes coming back are passed over."""
        if self.fixed:
            return
        stamp = time_msg_to_ns(msg.header.stamp)
        counter = int(msg.reset_counter)
        prior = prior_of_fix_msg(msg, stamp)
        if prior is None or not on_the_map(prior.latitude, prior.longitude):
            return
        if self.position is None or not self.gnss_healthy:
            self._at(prior.latitude, prior.longitude)

        def take(est: VisualEstimator) -> None:
            try:
                resumed = est.resume_track(prior, counter)
            except PriorError as err:
                log_event(self._log, logging.WARNING, "vnav.resume_refused", error=str(err))
                return
            if resumed:
                log_event(
                    self._log,
                    logging.INFO,
                    "vnav.track_resumed",
                    lat=prior.latitude,
                    lon=prior.longitude,
                    sigma_m=round(prior.sigma_m, 1),
                    stamp_ns=stamp,
                    reset_counter=counter,
                )

        self.pending.append(take)

    def on_seed(self, msg: NavSatFix) -> None:
        """An outside prior: the search starts there (:meth:`VisualEstimator.seed_prior`)."""
        lat, lon = float(msg.latitude), float(msg.longitude)
        if not on_the_map(lat, lon):
            log_event(self._log, logging.ERROR, "vnav.seed_refused", lat=lat, lon=lon)
            return
        stamp = time_msg_to_ns(msg.header.stamp) or self._clock.now_ns()
        sigma = horizontal_sigma(msg) or SEED_SIGMA_UNKNOWN_M
        self.position = (lat, lon)
        self._want_tiles()  # the prefetch fetches the tiles around it
        self.pending.append(lambda est: est.seed_prior(stamp, lat, lon, sigma))
        log_event(self._log, logging.INFO, "vnav.seeded", lat=lat, lon=lon, sigma_m=round(sigma, 1))
