"""The flight-controller bridge: the only part of the system that talks MAVLink.

ROS-free. ``link`` (transport, heartbeat, autopilot detection, dispatch),
``telemetry`` and ``gnss_health`` (messages in -> domain), ``preflight``
(parameter check), ``statustext`` (GCS alerts out), and the output half:
``frames``, ``fix``, ``fix_output``, ``scheduler``, ``origin``. ``sim_fc`` is
a simulated flight controller for tests, benchmarks and replays.
"""
