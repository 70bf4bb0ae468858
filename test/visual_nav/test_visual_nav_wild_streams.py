"""Whatever the FC's streams and the camera hand in, the estimator answers each frame
with a fix made of finite numbers or a typed reject, and goes on.

Every fault alone (the rest of the pipeline fed as it should be), then hypothesis
mixing them: the samples the node forwards (attitude, altitude, rangefinder, GNSS
with its sigma and velocity, a seed) with the values a broken sensor or a hostile
link can put in a message (NaN, inf, 1e308, negative, past the poles, stamps far
off), the frame as the arrays a decoder or a caller can produce, seen through a
CameraInfo a driver bug can publish. Before these checks an altitude of 1e308, or
a focal length of 1e-6 px, sized a mosaic from it (MemoryError), a 1e308 sigma
overflowed its square, a latitude of 95 or a NaN velocity reached the tile
arithmetic, and a two-channel array reached OpenCV: each raised something other
than ``FrameRejected``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from gps_denied_onboard.visual_nav.camera import CameraModel
from gps_denied_onboard.visual_nav.errors import FrameRejected, PriorError
from gps_denied_onboard.visual_nav.estimator import VisualEstimator
from gps_denied_onboard.visual_nav.fix import VisualFix

from .support import (
    CAMERA,
    GROUND_MSL,
    LAT0,
    LON0,
    NS,
    T0,
    Pose,
    error_m,
    make_estimator,
    render,
    synthetic_world,
)

POSE = Pose(LAT0, LON0, 400.0, yaw_deg=30.0)
_AFTER = itertools.count(1)  # each example's good frame: a stamp of its own, later
WILD = [math.nan, math.inf, -math.inf, 1e308, -1e308, 0.0, -1.0, 1e-300, 95.0, -200.0]


@functools.lru_cache(maxsize=1)
def _scene() -> tuple[VisualEstimator, NDArray[np.uint8]]:
    ortho, tiles = synthetic_world()
    return make_estimator(tiles), render(ortho, POSE)


#: what one sample of each stream is when nothing is wrong with it
GOOD: dict[str, object] = {
    "dt_s": 0.0,
    "attitude": "good",
    "altitude": GROUND_MSL + POSE.agl_m,
    "range": None,
    "lat": LAT0,
    "lon": LON0,
    "sigma": 20.0,
    "speed": 20.0,
    "healthy": True,
    "seed": False,
    "frame": "bgr8",
    "camera": "good",
}
#: how each can go wrong
FAULTS: dict[str, list[object]] = {
    "dt_s": [0.05, -30.0, 1e9, -1e9],
    "attitude": ["zero", "nan", "mirror", "scaled"],
    "altitude": WILD,
    "range": WILD,
    "lat": WILD,
    "lon": WILD,
    "sigma": WILD,
    "speed": WILD,
    "healthy": [False],
    "seed": [True],
    "frame": ["mono16", "float", "nan", "2ch", "int8"],
    "camera": ["focal 1e-6", "focal 1e9", "centre 1e6 off"],
}


@st.composite
def _sample(draw: st.DrawFn) -> dict[str, object]:
    """A sample of every stream with one to three of them broken (one at a time
    reaches furthest: the rest of the pipeline is then fed as it should be)."""
    out = dict(GOOD)
    for key in draw(st.lists(st.sampled_from(sorted(FAULTS)), min_size=1, max_size=3)):
        out[key] = draw(st.sampled_from(FAULTS[key]))
    return out


def _attitude(kind: str) -> NDArray[np.float64]:
    r = POSE.r_enu_flu()
    if kind == "zero":
        return np.zeros((3, 3))
    if kind == "nan":
        r = r.copy()
        r[2, 0] = math.nan
    if kind == "mirror":
        return -r
    if kind == "scaled":
        return 3.0 * r
    return r


def _camera(kind: str) -> CameraModel:
    """CameraInfo a driver bug can publish: each passes CameraModel's own checks."""
    if kind == "good":
        return CAMERA
    f, c = {"focal 1e-6": (1e-6, 0.0), "focal 1e9": (1e9, 0.0), "centre 1e6 off": (400.0, 1e6)}[
        kind
    ]
    k = (f, 0.0, 320.0 + c, 0.0, f, 240.0 + c, 0.0, 0.0, 1.0)
    return CameraModel(CAMERA.width, CAMERA.height, k)


def _frame(kind: str, bgr: NDArray[np.uint8]) -> NDArray[np.generic]:
    if kind == "mono16":
        return bgr[:, :, 1].astype(np.uint16) * 257
    if kind == "float":
        return bgr.astype(np.float32) / 255.0
    if kind == "nan":
        f = bgr.astype(np.float64) / 255.0
        f[240, 320] = math.nan
        return f
    if kind == "2ch":
        return bgr[:, :, :2]
    if kind == "int8":
        return bgr.astype(np.int8)
    return bgr


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(_sample(), min_size=1, max_size=4))
def test_faults_together_give_a_finite_fix_or_a_typed_reject(
    samples: list[dict[str, object]],
) -> None:
    _answers(samples)


def test_every_fault_alone_gives_a_finite_fix_or_a_typed_reject() -> None:
    """Each fault with every other stream as it should be, so it reaches as far into
    the pipeline as it can (hypothesis, above, mixes them but may draw few of each)."""
    for key, values in FAULTS.items():
        for value in values:
            _answers([{**GOOD, key: value}])


def _answers(samples: list[dict[str, object]]) -> None:
    """Feed ``samples`` (each: the streams' values, then a frame), then good ones."""
    est, bgr = _scene()
    stamp = T0
    for s in samples:
        stamp = T0 + int(float(s["dt_s"]) * NS)  # type: ignore[arg-type]
        for dt_ms in (-40, 0, 40):
            est.attitude.add(stamp + dt_ms * 1_000_000, _attitude(str(s["attitude"])))
        est.height.add_altitude_msl(stamp, float(s["altitude"]))  # type: ignore[arg-type]
        if s["range"] is not None:
            est.height.add_range(stamp, float(s["range"]), 0.2, 700.0)  # type: ignore[arg-type]
        speed = float(s["speed"])  # type: ignore[arg-type]
        est.priors.add_gnss(
            stamp,
            float(s["lat"]),  # type: ignore[arg-type]
            float(s["lon"]),  # type: ignore[arg-type]
            healthy=bool(s["healthy"]),
            sigma_m=None if s["sigma"] is None else float(s["sigma"]),  # type: ignore[arg-type]
            velocity_en=(speed, 0.0),
        )
        if s["seed"]:
            with contextlib.suppress(PriorError):  # the typed refusal of a seed off the map
                est.seed_prior(stamp, float(s["lat"]), float(s["lon"]), 100.0)  # type: ignore[arg-type]
        try:
            got = est.process(stamp, _frame(str(s["frame"]), bgr), _camera(str(s["camera"])))
        except FrameRejected:
            continue
        assert isinstance(got, VisualFix)
        numbers = (got.latitude, got.longitude, got.sigma_m, got.altitude_msl, got.yaw_enu)
        assert all(math.isfinite(v) for v in numbers)
        assert got.sigma_m > 0.0
        assert abs(got.latitude) <= 90.0 and abs(got.longitude) <= 180.0
    # and it goes on: good samples and a good frame give a fix where the pose is
    stamp = T0 + (2_000_000_000 + 10 * next(_AFTER)) * NS
    for dt_ms in (-40, 0, 40):
        est.attitude.add(stamp + dt_ms * 1_000_000, POSE.r_enu_flu())
    est.height.add_altitude_msl(stamp, GROUND_MSL + POSE.agl_m)
    est.priors.add_gnss(stamp, LAT0, LON0, healthy=True, sigma_m=20.0)
    fix = est.process(stamp, bgr, CAMERA)
    assert math.hypot(*error_m(POSE, fix.latitude, fix.longitude)) < 10.0
