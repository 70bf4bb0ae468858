"""What the sample flight is: its times and seeds, the aircraft, the plan, the camera,
the map and the FC's streams."""

from __future__ import annotations

import uuid
from pathlib import Path

from pyproj import Geod

from gps_denied_onboard.visual_nav.camera import CameraModel

ROOT = Path(__file__).resolve().parents[2]  # the repository

S = 1_000_000_000
START_NS = 1_778_580_000 * S  # 2026-05-12T10:00:00Z
FC_BOOT_NS = START_NS - 300 * S
DURATION_S = 240.0
GNSS_LOSS_S = 60.0
SEED = 20260512
REFERENCE_YEAR = "2017"
CAMERA_YEAR = "2020"
FLIGHT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "gps_denied_onboard/sample_flight/2"))

# The world and the aircraft.
GROUND_MSL_M = 580.0
SPEED_MPS = 28.0
G = 9.80665
BANK_DEG = 20.0
ROLL_RAMP_S = 2.0
CRUISE_PITCH_DEG = 3.0
DT_S = 0.01  # integration step; every stream is sampled on this grid
START_EN = (-1500.0, -600.0)  # metres east/north of the clip's centre
START_YAW_DEG = 90.0  # NED heading: east
DR_VELOCITY_ERROR = (1.2, -1.05)  # m/s east/north: the FC's dead-reckoning error after the loss

# The plan: (name, kind, value): straight = metres, turn = degrees (+ right).
PLAN: tuple[tuple[str, str, float], ...] = (
    ("climb-out and leg 1 eastbound", "straight", 2030.0),
    ("turn 1 left", "turn", -90.0),
    ("connector north", "straight", 250.0),
    ("turn 2 left", "turn", -90.0),
    ("leg 2 westbound, descent to 200 m", "straight", 2000.0),
    ("turn 3 right", "turn", 90.0),
    ("connector north", "straight", 250.0),
    ("turn 4 right", "turn", 90.0),
    ("leg 3 eastbound at 200 m", "straight", 1000.0),
)
# Height above ground: (t0, t1, agl0, agl1) raised-cosine blends; constant between.
ALTITUDE_PROFILE: tuple[tuple[float, float, float, float], ...] = (
    (-20.0, 58.0, 150.0, 500.0),
    (122.0, 182.0, 500.0, 200.0),
)

# The camera.
CAMERA_HZ = 2.0
CAMERA_INFO_HZ = 1.0
CAMERA_FRAME_ID = "camera_optical"
IMAGE_W, IMAGE_H = 640, 480
CAMERA = CameraModel(
    IMAGE_W,
    IMAGE_H,
    (320.0, 0.0, 321.7, 0.0, 320.0, 238.9, 0.0, 0.0, 1.0),
    "plumb_bob",
    (-0.045, 0.012, 0.0004, -0.0003, 0.0),
)
MOUNT_RPY_DEG = (0.0, 0.0, 0.0)
RAY_GRID_PX = 8
FRAME_JPEG_QUALITY = 80
FRAME_GAMMA = 0.93
FRAME_NOISE = 1.2  # grey levels, 1 sigma
FRAME_LATENCY_NS = 25_000_000  # capture -> bag (driver + transport)

# The map.
TILE_ZOOM = 15
TILE_JPEG_QUALITY = 85
MERC_HALF_M = 20037508.342789244

GEOD = Geod(ellps="WGS84")

# Streams.
TRUTH_HZ = 25
ATTITUDE_HZ = 25
POSITION_HZ = 10
VFR_HZ = 5
GPS_HZ = 5
FC_LINK_LATENCY_NS = 1_000_000
# What ATTITUDE reports is the autopilot's estimate: the truth plus an EKF's error, which
# wanders over tens of seconds rather than jumping between frames. Roll and pitch as a real
# autopilot's (bench/_visual_nav_env.py ATT_NOISE_DEG), a degree of heading.
FC_ATTITUDE_ERROR_RMS_DEG = {"roll": 0.15, "pitch": 0.15, "yaw": 1.0}
FC_ATTITUDE_ERROR_TAU_S = 30.0
