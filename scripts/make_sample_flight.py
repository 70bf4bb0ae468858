#!/usr/bin/env python3
"""Generate sample_flight/: a fixed-wing survey with a nadir camera over real NAIP imagery.

Deterministic: fixed seeds, fixed start time, fixed JPEG settings; running it
twice gives the same files (byte-identical with the same OpenCV, numpy, pyproj,
rosbags and pymavlink versions; the manifest's sha256 values say which bytes ship).

Output (about 12 MB; the manifest says exactly)::

    sample_flight/
      manifest.json          every file with its sha256, the flight's legs, camera, key times
      tiles/15/<x>/<y>.jpg   reference tiles, web-mercator z15 (3.26 m/px here), cut from
                             NAIP 2017, covering the whole clip (no data = black)
      bag/                   rosbag2 (MCAP): /camera/image_raw/compressed (JPEG, 2 Hz),
                             /camera/camera_info (1 Hz, plumb_bob); no fixes
      fc_stream.tlog         the flight controller's MAVLink stream (ArduPlane)
      truth.csv              ground truth at 25 Hz on the bag's clock

The flight (240 s, 28 m/s ground speed, no wind): climbing out eastbound from
~170 m to 500 m above ground, a lawnmower survey of three east-west legs
joined by coordinated 90 degree turns (20 degree bank), a descent to 200 m
above ground on the second leg, the last turns and leg at 200 m. GNSS is lost
at t = 60 s: GPS_RAW_INT reports no fix, the EKF's absolute-position flags
clear, a STATUSTEXT says so, and the FC's own GLOBAL_POSITION_INT position
dead-reckons from then on (a 1.6 m/s velocity error, so it drifts away from
the truth as a real EKF without GNSS would); its altitude stays barometric
and true. Its ATTITUDE is an estimate: the truth plus a slowly wandering
error (0.15 degrees RMS in roll and pitch, 1 degree in heading, time constant
30 s), as an EKF's is; the camera sees the true attitude. The true attitude
carries the turns' bank, a 3 degree cruise pitch plus the flight-path angle,
low-frequency turbulence and 2-7 Hz vibration (about 0.4 degrees RMS per axis).

The camera (640x480, 90 degree HFOV, plumb_bob with small distortion, nadir,
image top towards the nose) sees NAIP 2020 ("now"); the reference tiles are
NAIP 2017 ("the map"). Each frame is rendered through
gps_denied_onboard.visual_nav.camera (the same model CameraInfo states): a
pixel's ray, rotated by the true attitude, meets flat ground at the true height
above ground; the ground point's east/north offset from the aircraft becomes
lat/lon along the geodesic (pyproj Geod), then UTM 14N (pyproj), then a NAIP
pixel. Rays are cast on an 8-pixel grid
and the maps are bilinear in between (sub-0.05 px over the frame). Ground
elevation is flat at 580 m MSL, the home altitude. /clock is not stored: the
replay tool makes it.

Usage: scripts/make_sample_flight.py [--naip DIR] [--out DIR]
Its parts, one concern a module: scripts/sample_flight_gen/.
Needs: numpy, opencv, pyproj, tifffile, rosbags, pymavlink (scripts/requirements.txt).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the replay helpers and camera model from the source tree; the generator's parts beside this
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from sample_flight_gen.build import build  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--naip", type=Path, default=ROOT.parent / "shared" / "data" / "naip")
    p.add_argument("--out", type=Path, default=ROOT / "sample_flight")
    args = p.parse_args(argv)
    manifest = build(args.naip, args.out)
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(
        f"{args.out}: {len(manifest['tiles'])} tiles, {manifest['bag']['topics']}, "
        f"{manifest['fc_stream']['frames']} MAVLink frames, {manifest['truth']['rows']} truth "
        f"rows, {total / 1e6:.2f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
