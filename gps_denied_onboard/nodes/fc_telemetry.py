"""What one FC link's reader thread hands to ``fc_bridge``'s ROS side.

:class:`LinkTelemetry` holds one :class:`~gps_denied_onboard.fc_bridge.link.FcLink`'s
handlers: they publish ``NavSatFix`` (the FC's GNSS) and, from the same GPS_RAW_INT
with the same stamp, its velocity over ground (``TwistWithCovarianceStamped``, ENU),
``Imu``, ``FcAltitude``, a downward ``Range``, the FC's home (``NavSatFix``,
latched: see ``fc_bridge/home.py``) and its EKF's fused position (``NavSatFix``, a fix
only while the EKF says it holds an absolute horizontal position), and keep the latest
GNSS fix, EKF status and battery state that the node's status reads. The node builds
one per link, so one per activation: a link's epoch.

A link's reader may outlive the deactivate that closed it: ``FcLink.close`` waits a
bounded time and leaves a reader that did not stop behind (``fc.link_thread_stuck``),
and it goes on whenever what held it lets go. What it then does must not show: every
publish happens under the node's publishing lock and only while this link is live;
:meth:`LinkTelemetry.retire` (the node's deactivate, before it returns) ends that
under the same lock, for good. A publish in progress finishes first, none starts
after; a reader that was left stuck is never heard again, even once the node was
activated again with a new link (whose LinkTelemetry is another), and what it
handles updates only its own, retired, state and GNSS monitor. Its GPS_GLOBAL_ORIGIN
goes to the origin manager of the activation it was routed to (:meth:`route_origin`),
none after retire. What this link's threads record and log is gated the same way, by
the link's :class:`~gps_denied_onboard.fc_bridge.link_epoch.LinkEpoch`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

from geometry_msgs.msg import TwistWithCovarianceStamped
from sensor_msgs.msg import Imu, NavSatFix, NavSatStatus, Range

from gps_denied_onboard.fc_bridge import telemetry as tm
from gps_denied_onboard.fc_bridge.gnss_health import GnssHealthMonitor
from gps_denied_onboard.fc_bridge.home import Home
from gps_denied_onboard.fc_bridge.link import FcLink
from gps_denied_onboard.fc_bridge.timesync import FcTimeMapper
from gps_denied_onboard.msg import FcAltitude
from gps_denied_onboard.ros_topics import ns_to_time_msg

#: ATTITUDE's body rates, per axis ((rad/s)^2): the autopilot's bias-corrected gyros,
#: about 0.01 rad/s. Non-zero says "measured" (REP 145), which visual_nav asks for
#: before it interpolates attitude on them.
GYRO_RATE_VARIANCE = 1e-4

#: a message with no time of its own (VFR_HUD) takes the FC's clock of the newest
#: timed message before it on the link, when that came at most this long before
UNTIMED_FC_CLOCK_WINDOW_NS = 2_000_000_000


class LinkTelemetry:
    """One link's telemetry to ROS (see the module docstring).

    Args:
        link: its handlers are added to it here.
        pubs: the node's publishers, by name (``navsat``, ``gnss_velocity``, ``imu``,
            ``alt``, ``range``, ``home``, ``ekf_position`` used).
        publishing: the node's lock around "still live? then publish".
        gnss: this link's GNSS health monitor (fed the FC's fixes and EKF status).
    """

    def __init__(
        self,
        link: FcLink,
        pubs: Mapping[str, Any],
        publishing: threading.Lock,
        gnss: GnssHealthMonitor,
    ) -> None:
        self._link = link
        self._pubs = pubs
        self._publishing = publishing
        self._gnss = gnss
        self._on_fc_origin: Callable[[Any], None] | None = None  # route_origin's
        self._live = False  # under _publishing: set by go_live, cleared for good by retire
        self._retired = False
        #: the autopilot's boot time -> the bridge's clock, for this link's messages
        self.fc_time = FcTimeMapper()
        #: (FC clock, arrival) of the newest timed message on this link (reader thread)
        self._fc_now: tuple[int, int] | None = None
        self._state_lock = threading.Lock()
        self._gnss_fix: tm.GnssFix | None = None
        self._ekf: tm.EkfStatus | None = None
        self._battery: tm.Battery | None = None
        self._home: NavSatFix | None = None  # the FC's, once reported (under _publishing)
        for msg_type, handler in (
            ("GPS_RAW_INT", self._on_gps_raw),
            ("GLOBAL_POSITION_INT", self._on_global_position),
            ("ATTITUDE", self._on_attitude),
            ("ALTITUDE", self._on_altitude),
            ("DISTANCE_SENSOR", self._on_distance_sensor),
            ("VFR_HUD", self._on_vfr_hud),
            ("SYS_STATUS", self._on_sys_status),
            ("BATTERY_STATUS", self._on_battery_status),
            ("EKF_STATUS_REPORT", self._on_ekf_status),
            ("ESTIMATOR_STATUS", self._on_estimator_status),
            ("GPS_GLOBAL_ORIGIN", self._on_origin),
        ):
            link.add_handler(msg_type, handler)

    # -- the node's side ------------------------------------------------------------------

    def go_live(self) -> None:
        """Publish from now on (the node went active with this link); not after retire."""
        with self._publishing:
            self._live = not self._retired
            if self._live and self._home is not None:  # reported while activating
                self._pubs["home"].publish(self._home)

    def retire(self) -> None:
        """Publish nothing more, whatever this link's reader does from now on."""
        with self._publishing:
            self._live = False
            self._retired = True
        with self._state_lock:
            self._on_fc_origin = None

    def route_origin(self, on_fc_origin: Callable[[Any], None]) -> None:
        """Call ``on_fc_origin`` with each GPS_GLOBAL_ORIGIN (live or not), until retire.

        The callable should hold what it updates (one activation's origin manager):
        one read just before a retire is still called, and must reach nothing newer.
        """
        with self._state_lock:
            if not self._retired:
                self._on_fc_origin = on_fc_origin

    def state(self) -> tuple[tm.GnssFix | None, tm.EkfStatus | None, tm.Battery | None]:
        """The latest GNSS fix, EKF status and battery state (None: none heard yet)."""
        with self._state_lock:
            return self._gnss_fix, self._ekf, self._battery

    def on_home(self, home: Home, recv_ns: int) -> None:
        """A new home from the FC (``HomeWatcher``'s, the reader thread): latched on
        ``/fc/home`` now if live, else when the node goes live."""
        out = NavSatFix()
        out.header.stamp = ns_to_time_msg(recv_ns)
        out.header.frame_id = "fc_home"
        out.status.status = NavSatStatus.STATUS_FIX
        out.latitude, out.longitude = home.latitude_deg, home.longitude_deg
        out.altitude = home.altitude_msl_m
        out.position_covariance_type = NavSatFix.COVARIANCE_TYPE_UNKNOWN
        with self._publishing:
            self._home = out
            if self._live:
                self._pubs["home"].publish(out)

    def _fc_stamp(self, time_boot_ms: int, recv_ns: int) -> int:
        """A timed message's capture time on the bridge's clock; kept for the untimed
        messages after it (:meth:`_untimed_stamp`)."""
        stamp = self.fc_time.stamp(time_boot_ms, recv_ns)
        self._fc_now = (stamp, recv_ns)
        return stamp

    def _untimed_stamp(self, recv_ns: int) -> int:
        """An untimed message's capture time: that of the newest timed message before it
        on the link (the FC sends its streams in turn, tens of ms apart), else its
        arrival. Why not the arrival: it adds the link's and the reader's lag, which a
        replay multiplies by its rate, and which the FC's timed streams do not carry."""
        newest = self._fc_now
        if newest is not None and 0 <= recv_ns - newest[1] <= UNTIMED_FC_CLOCK_WINDOW_NS:
            return newest[0]
        return recv_ns

    def _sensor_stamp(self, time_boot_ms: int, recv_ns: int) -> int:
        """A sensor message's own boot time (ALTITUDE, DISTANCE_SENSOR) on the bridge's
        clock by the mapping the attitude and position streams keep, without moving it
        (:meth:`FcTimeMapper.peek`); a time that is 0 or another clock is untimed."""
        mapped = self.fc_time.peek(time_boot_ms, recv_ns)
        return self._untimed_stamp(recv_ns) if mapped is None else mapped

    def _publish(self, name: str, msg: Any) -> None:
        with self._publishing:
            if self._live:
                self._pubs[name].publish(msg)

    # -- handlers (the link's reader thread) ---------------------------------------------
    # Each skips building a message while not live (unlocked, a shortcut); _publish
    # decides, under the lock.

    def _on_gps_raw(self, msg: Any, recv_ns: int) -> None:
        fix = tm.gnss_from_gps_raw_int(msg)
        with self._state_lock:
            self._gnss_fix = fix
        self._gnss.on_fix(fix, recv_ns)
        if not self._live:
            return
        out = NavSatFix()
        # GPS_RAW_INT.time_usec is the autopilot's boot time on ArduPilot and PX4: map it
        # like ATTITUDE's; a UNIX time (some GNSS-synchronised stacks, the sample flight's
        # recording) is no time on the FC's clock, so it is stamped as an untimed message
        boot_ms = int(msg.time_usec) // 1000
        stamp = (
            self._fc_stamp(boot_ms, recv_ns)
            if 0 < boot_ms < 10**9
            else self._untimed_stamp(recv_ns)
        )
        out.header.stamp = ns_to_time_msg(stamp)
        out.header.frame_id = "fc_gnss"
        out.status.status = fix.navsat_status
        out.status.service = NavSatStatus.SERVICE_GPS
        out.latitude, out.longitude, out.altitude = fix.latitude, fix.longitude, fix.altitude_msl
        out.position_covariance = [float(v) for v in fix.position_covariance]
        out.position_covariance_type = fix.covariance_type
        self._publish("navsat", out)
        ground = tm.ground_velocity_enu(fix)  # None: no 3D fix, or speed/course unknown
        if ground is not None:
            self._publish("gnss_velocity", _twist_msg(ground, stamp))

    def _on_global_position(self, msg: Any, recv_ns: int) -> None:
        """GLOBAL_POSITION_INT, the EKF's fused position: a fix only while the latest EKF
        status says it holds an absolute horizontal position (not in constant-position
        mode); with no EKF status heard yet, or at 0 N 0 E (no origin), no fix."""
        if not self._live:
            return
        with self._state_lock:
            ekf = self._ekf
        fused = tm.gnss_from_global_position_int(msg)
        valid = (
            ekf is not None
            and ekf.horiz_pos_ok
            and not ekf.const_pos_mode
            and not (msg.lat == 0 and msg.lon == 0)
        )
        out = NavSatFix()
        out.header.stamp = ns_to_time_msg(self._fc_stamp(int(msg.time_boot_ms), recv_ns))
        out.header.frame_id = "fc_ekf"
        out.status.status = NavSatStatus.STATUS_FIX if valid else NavSatStatus.STATUS_NO_FIX
        out.latitude, out.longitude = fused.latitude, fused.longitude
        out.altitude = fused.altitude_msl
        out.position_covariance_type = NavSatFix.COVARIANCE_TYPE_UNKNOWN
        self._publish("ekf_position", out)

    def _on_attitude(self, msg: Any, recv_ns: int) -> None:
        if not self._live:
            return
        att = tm.attitude_from_msg(msg)
        x, y, z, w = tm.attitude_to_enu_flu_quaternion(att)
        out = Imu()
        # stamped with the autopilot's own time: consumers interpolate attitude at a
        # camera frame's capture time, which arrival times are far too noisy for
        out.header.stamp = ns_to_time_msg(self._fc_stamp(att.time_boot_ms, recv_ns))
        out.header.frame_id = "base_link"
        out.orientation.x, out.orientation.y, out.orientation.z, out.orientation.w = x, y, z, w
        rx, ry, rz = tm.attitude_rates_flu(att)
        out.angular_velocity.x, out.angular_velocity.y, out.angular_velocity.z = rx, ry, rz
        # measured (the gyros', bias-corrected): visual_nav interpolates attitude on them
        for k in (0, 4, 8):
            out.angular_velocity_covariance[k] = GYRO_RATE_VARIANCE
        out.linear_acceleration_covariance[0] = -1.0  # ATTITUDE carries no acceleration
        self._publish("imu", out)

    def _publish_alt(self, alt: tm.Altitude, stamp_ns: int) -> None:
        if not self._live or math.isnan(alt.amsl):
            return
        out = FcAltitude()
        out.header.stamp = ns_to_time_msg(stamp_ns)
        out.header.frame_id = "fc_altitude"
        out.amsl, out.relative, out.climb_rate = alt.amsl, alt.relative, alt.climb_rate
        out.source = alt.source
        self._publish("alt", out)

    def _on_altitude(self, msg: Any, recv_ns: int) -> None:
        # time_usec: boot time on PX4 (ArduPilot sends no ALTITUDE)
        stamp = self._sensor_stamp(int(msg.time_usec) // 1000, recv_ns)
        self._publish_alt(tm.altitude_from_altitude_msg(msg), stamp)

    def _on_distance_sensor(self, msg: Any, recv_ns: int) -> None:
        rf = tm.rangefinder_from_distance_sensor(msg)
        if not self._live or not rf.facing_down:
            return  # only a downward sensor measures height above ground
        out = Range()
        out.header.stamp = ns_to_time_msg(self._sensor_stamp(int(msg.time_boot_ms), recv_ns))
        out.header.frame_id = "rangefinder_down"
        out.radiation_type = Range.INFRARED
        out.min_range, out.max_range, out.range = rf.min_m, rf.max_m, rf.distance_m
        self._publish("range", out)

    def _on_vfr_hud(self, msg: Any, recv_ns: int) -> None:
        if self._link.last("ALTITUDE") is not None:
            return  # ALTITUDE is the better source when the FC streams it
        self._publish_alt(tm.altitude_from_vfr_hud(msg), self._untimed_stamp(recv_ns))

    def _on_sys_status(self, msg: Any, recv_ns: int) -> None:
        with self._state_lock:
            if self._battery is None or self._battery.source == "sys_status":
                self._battery = tm.battery_from_sys_status(msg)

    def _on_battery_status(self, msg: Any, recv_ns: int) -> None:
        with self._state_lock:
            self._battery = tm.battery_from_battery_status(msg)

    def _on_ekf_status(self, msg: Any, recv_ns: int) -> None:
        self._set_ekf(tm.ekf_from_ekf_status_report(msg))

    def _on_estimator_status(self, msg: Any, recv_ns: int) -> None:
        self._set_ekf(tm.ekf_from_estimator_status(msg))

    def _set_ekf(self, ekf: tm.EkfStatus) -> None:
        with self._state_lock:
            self._ekf = ekf
        self._gnss.on_ekf(ekf)

    def _on_origin(self, msg: Any, recv_ns: int) -> None:
        with self._state_lock:
            on_fc_origin = self._on_fc_origin
        if on_fc_origin is not None:
            on_fc_origin(msg)


def _twist_msg(ground: tm.GroundVelocity, stamp_ns: int) -> TwistWithCovarianceStamped:
    """``/fc/gnss_velocity``: ENU m/s in ``fc_gnss``, stamped as its ``/fc/navsat``."""
    out = TwistWithCovarianceStamped()
    out.header.stamp = ns_to_time_msg(stamp_ns)
    out.header.frame_id = "fc_gnss"
    lin = out.twist.twist.linear
    lin.x, lin.y, lin.z = ground.east_mps, ground.north_mps, ground.up_mps
    out.twist.covariance = [float(v) for v in ground.covariance]
    return out
