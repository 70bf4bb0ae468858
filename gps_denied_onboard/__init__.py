"""gps_denied_onboard: onboard navigation support for GNSS-denied flight.

The package is split into a ROS-free core (``tile_cache``, ``fdr``,
``fc_bridge``, ``takeoff``) and thin ROS 2 adapters under ``nodes``. The
core never imports ``rclpy``; it takes an injected :class:`~.clock.Clock`
and writes flight records to a :class:`~.records.RecordSink`.
"""

__version__ = "0.1.0"
