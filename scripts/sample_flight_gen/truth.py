"""truth.csv: the true flight at TRUTH_HZ on the bag's clock."""

from __future__ import annotations

import math

from sample_flight_gen.spec import DT_S, START_NS, TRUTH_HZ, S
from sample_flight_gen.trajectory import Track

TRUTH_COLUMNS = (
    "t_ns",
    "lat",
    "lon",
    "alt_msl",
    "agl_m",
    "roll_deg",
    "pitch_deg",
    "yaw_deg",
    "vel_east",
    "vel_north",
    "vel_up",
)


def truth_csv(track: Track) -> bytes:
    step = round(1.0 / TRUTH_HZ / DT_S)
    lines = [",".join(TRUTH_COLUMNS)]
    for i in range(0, track.t.size, step):
        lines.append(
            f"{START_NS + i * int(DT_S * S)},{track.lat[i]:.9f},{track.lon[i]:.9f},"
            f"{track.alt_msl[i]:.3f},{track.agl[i]:.3f},{math.degrees(track.roll[i]):.4f},"
            f"{math.degrees(track.pitch[i]):.4f},{math.degrees(track.yaw[i]):.4f},"
            f"{track.ve[i]:.4f},{track.vn[i]:.4f},{track.vu[i]:.4f}"
        )
    return ("\n".join(lines) + "\n").encode()
