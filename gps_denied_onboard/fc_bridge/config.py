"""Configuration of the FC link (``FcBridgeConfig``).

Field names are ROS parameter names (``config/fc_bridge.yaml``). The output
half has its own ``FixOutputConfig`` (``scheduler.py``); the node declares both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Final

from gps_denied_onboard.errors import ConfigError

#: MAV_COMP_ID_ONBOARD_COMPUTER: the component id a companion computer uses.
MAV_COMP_ID_ONBOARD_COMPUTER: Final = 191

_CONNECTION = re.compile(
    r"^(?:(?P<scheme>udpin|udpout|udp|tcp|tcpin):(?P<host>[^:]*):(?P<port>\d+)"
    r"|(?P<device>/dev/[^:]+|COM\d+)(?::(?P<baud>\d+))?)$"
)


@dataclass(frozen=True)
class Endpoint:
    """A parsed connection string.

    Attributes:
        kind: ``serial``, ``udpin``, ``udpout``, ``tcp`` or ``tcpin``.
        host: address (network kinds) or device path (serial).
        port: UDP/TCP port, or the baud rate for serial.
    """

    kind: str
    host: str
    port: int


def parse_connection(text: str) -> Endpoint:
    """Parse ``/dev/ttyTHS1:921600``, ``udpin:0.0.0.0:14550``, ``udpout:h:p``, ``tcp:h:p``.

    ``udp:`` is read as ``udpin:`` (MAVProxy's convention). A serial device
    without a baud rate gets 115200.

    Raises:
        ConfigError: the string matches none of the forms.
    """
    m = _CONNECTION.match(text.strip())
    if not m:
        raise ConfigError(
            f"connection {text!r} is not one of /dev/DEVICE[:BAUD], udpin:HOST:PORT, "
            "udpout:HOST:PORT, tcp:HOST:PORT, tcpin:HOST:PORT",
            key="connection",
        )
    if m.group("device"):
        baud = int(m.group("baud") or 115200)
        if baud <= 0:
            raise ConfigError(f"baud rate must be positive in {text!r}", key="connection")
        return Endpoint("serial", m.group("device"), baud)
    scheme = m.group("scheme")
    scheme = "udpin" if scheme == "udp" else scheme
    port = int(m.group("port"))
    if not 0 <= port <= 65535:
        raise ConfigError(f"port out of range in {text!r}", key="connection")
    host = m.group("host") or ("0.0.0.0" if scheme in ("udpin", "tcpin") else "127.0.0.1")  # noqa: S104
    return Endpoint(scheme, host, port)


@dataclass(frozen=True)
class FcBridgeConfig:
    """The MAVLink link to the flight controller.

    Attributes:
        connection: where the FC is (see :func:`parse_connection`).
        source_system: our MAVLink system id (normally the autopilot's, 1).
        source_component: our component id (191, MAV_COMP_ID_ONBOARD_COMPUTER).
        target_system: the autopilot's system id; 0 = the first autopilot heard.
        target_component: the autopilot's component id; 0 = any (normally 1).
        heartbeat_period_s: our HEARTBEAT period, and the autopilot's expected one.
        missed_heartbeats: the link is lost after this many periods without the
            autopilot's HEARTBEAT.
        reconnect_backoff_min_s: first wait before re-opening a failed transport.
        reconnect_backoff_max_s: the wait doubles up to this.
        activate_timeout_s: how long ``activate`` waits for the autopilot.
        preflight: run the parameter check on activate.
        preflight_timeout_s: budget of the parameter check.
        preflight_strict: a failed check fails activation (else: reported only).
        gnss_min_satellites: fewer satellites than this make GNSS unhealthy.
        gnss_max_hacc_m: horizontal accuracy (or HDOP*5 m when absent) above this
            makes GNSS unhealthy.
        gnss_timeout_s: no GPS_RAW_INT for this long makes GNSS unhealthy.
        publish_rate_hz: rate of FcStatus/diagnostics publication (node).
        telemetry_request: ask the autopilot for the telemetry below
            (``streams.py``: SET_MESSAGE_INTERVAL, else REQUEST_DATA_STREAM).
        telemetry_*_hz: rate asked for each consumed message; 0 = not asked.
            ``attitude`` feeds ``/fc/imu`` (fast: the visual navigation
            interpolates it at camera capture times); ``ekf_status`` is
            EKF_STATUS_REPORT (ArduPilot) or ESTIMATOR_STATUS (PX4);
            ``distance_sensor`` only where SYS_STATUS reports a rangefinder.
        telemetry_ack_timeout_s: wait for each COMMAND_ACK (3 attempts).
        telemetry_rerequest_s: while a requested message is missing, ask again
            this often.
        signing_key_file: MAVLink 2 signing key (32 bytes raw or 64 hex digits; mode
            0600, owned by root or the bridge's user); "" = unsigned link.
        signing_require: drop unsigned and badly signed incoming messages (counted).
        signing_link_id: our signing link id (0..255).
    """

    connection: str = "udpin:0.0.0.0:14550"
    source_system: int = 1
    source_component: int = MAV_COMP_ID_ONBOARD_COMPUTER
    target_system: int = 0
    target_component: int = 0
    heartbeat_period_s: float = 1.0
    missed_heartbeats: int = 3
    reconnect_backoff_min_s: float = 0.5
    reconnect_backoff_max_s: float = 8.0
    activate_timeout_s: float = 10.0
    preflight: bool = True
    preflight_timeout_s: float = 5.0
    preflight_strict: bool = False
    gnss_min_satellites: int = 6
    gnss_max_hacc_m: float = 10.0
    gnss_timeout_s: float = 2.0
    publish_rate_hz: float = 5.0
    telemetry_request: bool = True
    telemetry_attitude_hz: float = 50.0
    telemetry_gps_raw_int_hz: float = 5.0
    telemetry_global_position_int_hz: float = 5.0
    telemetry_ekf_status_hz: float = 5.0
    telemetry_sys_status_hz: float = 2.0
    telemetry_battery_status_hz: float = 2.0
    telemetry_vfr_hud_hz: float = 5.0
    telemetry_altitude_hz: float = 10.0
    telemetry_distance_sensor_hz: float = 10.0
    telemetry_ack_timeout_s: float = 0.5
    telemetry_rerequest_s: float = 5.0
    signing_key_file: str = ""
    signing_require: bool = False
    signing_link_id: int = 0

    def __post_init__(self) -> None:
        parse_connection(self.connection)
        for name in ("source_system", "source_component"):
            if not 1 <= getattr(self, name) <= 255:
                raise ConfigError(f"{name} must be in 1..255", key=name)
        for name in ("target_system", "target_component"):
            if not 0 <= getattr(self, name) <= 255:
                raise ConfigError(f"{name} must be in 0..255", key=name)
        for name in (
            "heartbeat_period_s",
            "reconnect_backoff_min_s",
            "activate_timeout_s",
            "preflight_timeout_s",
            "gnss_max_hacc_m",
            "gnss_timeout_s",
            "publish_rate_hz",
            "telemetry_ack_timeout_s",
            "telemetry_rerequest_s",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive", key=name)
        if self.missed_heartbeats < 1:
            raise ConfigError("missed_heartbeats must be at least 1", key="missed_heartbeats")
        if self.reconnect_backoff_max_s < self.reconnect_backoff_min_s:
            raise ConfigError(
                "reconnect_backoff_max_s must be >= reconnect_backoff_min_s",
                key="reconnect_backoff_max_s",
            )
        for name, hz in self.telemetry_rates().items():
            if not 0.0 <= hz <= 400.0:
                raise ConfigError(
                    f"telemetry_{name}_hz must be 0 (not asked) .. 400 Hz",
                    key=f"telemetry_{name}_hz",
                )
        if not 0 <= self.signing_link_id <= 255:
            raise ConfigError("signing_link_id must be in 0..255", key="signing_link_id")
        if self.signing_require and not self.signing_key_file:
            raise ConfigError("signing_require needs a signing_key_file", key="signing_require")
        if self.gnss_min_satellites < 0:
            raise ConfigError("gnss_min_satellites must be >= 0", key="gnss_min_satellites")

    def telemetry_rates(self) -> dict[str, float]:
        """``{"attitude": 50.0, ...}``: the ``telemetry_*_hz`` fields by message key."""
        return {
            f.name[len("telemetry_") : -len("_hz")]: float(getattr(self, f.name))
            for f in fields(self)
            if f.name.startswith("telemetry_") and f.name.endswith("_hz")
        }

    @property
    def endpoint(self) -> Endpoint:
        return parse_connection(self.connection)

    @property
    def link_timeout_ns(self) -> int:
        """Heartbeat silence after which the link is declared lost."""
        return round(self.missed_heartbeats * self.heartbeat_period_s * 1e9)
