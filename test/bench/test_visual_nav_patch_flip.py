"""Stitched flights over the NAIP calibration pair whose patches flipped are cleared of it.

Two stitched 400 m calibration flights (2014 map, 2020 frames: the pair the rule's
thresholds were read from, ``_visual_nav_calibration.CALIBRATION_PAIRS``) each
had one patch settle on the wrong end of its heading/scale ridge: a fix 31.7 and
32.9 m off between fixes 1.5-3.4 m off. With ``stitch_flip_*`` those frames are
refused and nothing else changes.

The flights are flown with the patches built from the registrations' translations
alone (``stitch_zoom`` off), as when the rule was calibrated: with each registration's
zoom the first flight's patch no longer flips (1.0 m off there, 17.6 m at worst over
the flight), the second's still does and is refused alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not (ROOT.parent / "shared" / "data" / "naip").is_dir(), reason="no NAIP orthophotos"
)

OFF = 1e9  # stitch_flip_frame_offset_m beyond any frame check: the rule off


@pytest.mark.parametrize(("flight", "frame"), [(3, 28), (7, 9)])
def test_a_flipped_patch_is_refused_and_the_flight_keeps_its_other_fixes(
    bench_module: Callable[[str], ModuleType], flight: int, frame: int
) -> None:
    from gps_denied_onboard.visual_nav.errors import FrameRejected
    from gps_denied_onboard.visual_nav.fix import VisualFix
    from gps_denied_onboard.visual_nav.geo import LocalFrame
    from gps_denied_onboard.visual_nav.odometry import OdometryConfig

    env = bench_module("_visual_nav_env")
    flying = bench_module("_visual_nav_flying")
    common = bench_module("_visual_fix_common")
    f = flying.flights(
        common.seed_of("6y_2014map_2020frames"), 8, env.AGL["400m"], frames=32, rate_hz=1.0
    )[flight]

    def errors(**cfg: float) -> list[float | FrameRejected]:
        translations = OdometryConfig(stitch_zoom=False)
        got = flying.fly(env.estimator("2014", odometry=translations, **cfg), "2020", f)
        out: list[float | FrameRejected] = []
        for p, g in zip(f.poses, got, strict=True):
            if isinstance(g, VisualFix):
                e, n = LocalFrame(p.lat, p.lon).to_en(g.latitude, g.longitude)
                out.append(math.hypot(e, n))
            else:
                out.append(g)
        return out

    before, after = errors(stitch_flip_frame_offset_m=OFF), errors()
    assert isinstance(before[frame], float) and before[frame] > 30.0
    refused = after[frame]
    assert isinstance(refused, FrameRejected) and refused.reason == "gate"
    assert refused.detail["frame_offset_m"] > 20.0 and refused.detail["jump_m"] > 10.0
    assert all(not isinstance(e, float) or e < 30.0 for e in after)
    for i, (a, b) in enumerate(zip(before, after, strict=True)):
        if i != frame:  # every other frame fixes (or not) alike, within centimetres
            assert isinstance(a, float) == isinstance(b, float)
            if isinstance(a, float) and isinstance(b, float):
                assert b == pytest.approx(a, abs=0.5)
