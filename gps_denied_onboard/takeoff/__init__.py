"""Ordered take-off: bring the nodes up one at a time, recorder first.

The core here is ROS-free: :class:`~.sequence.TakeoffSequencer` drives any
:class:`~.controller.NodeController` (the ROS lifecycle-service controller in
``nodes.takeoff_node`` on the aircraft). See ``sequence`` for the order;
``recorder_watch`` notices a recorder that goes silent in flight.
"""
