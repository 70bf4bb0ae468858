"""The flight-controller bridge: the only part of the system that talks MAVLink.

ROS-free. ``link`` (threads, heartbeat, sending, reconnects) over ``transport``
(serial, UDP, TCP) and ``link_inbound`` (parsing, dispatch, the autopilot's link
state), ``autopilot`` (detection), ``streams`` (asking for
telemetry, achieved rates), ``signing`` (MAVLink 2 signing), ``telemetry`` and
``gnss_health`` (messages in -> domain), ``preflight`` (parameter check),
``statustext`` (GCS alerts out), and the output half: ``frames``, ``fix``,
``fix_output``, ``scheduler``, ``reloc`` (relocalisation jumps), ``origin``. ``sim_fc`` is
a simulated flight controller for tests, benchmarks and replays (its state, parameters
and telemetry encoding in ``sim_fc_state``).
"""
