"""The parts of scripts/make_sample_flight.py, which builds sample_flight/ (see its docstring).

One concern a module: ``spec`` (every number the flight is made of), ``common`` (hashes,
JPEG, CPU-independent maths, NAIP loading), ``trajectory`` (the true flight), ``frames``
(what the camera sees), ``tiles`` (the reference map), ``bag`` (ROS messages for the
rosbag2), ``mavlink`` (the FC's stream), ``truth`` (truth.csv) and ``build`` (writes it all
and the manifest). Imported from the source tree by the script, not installed.
"""
