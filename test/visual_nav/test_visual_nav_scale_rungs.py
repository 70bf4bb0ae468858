"""A height off by more than the scale candidates reach: the search goes a rung further
out (:func:`gps_denied_onboard.visual_nav.search.pressed_rung`), and a scale still pressing
past the last rung allowed is refused, never placed at the reach's end."""

from __future__ import annotations

import math

import pytest

from gps_denied_onboard.visual_nav import estimator as estimator_module
from gps_denied_onboard.visual_nav.errors import FrameRejected
from gps_denied_onboard.visual_nav.fix import VisualFix
from gps_denied_onboard.visual_nav.matcher import MatchConfig
from gps_denied_onboard.visual_nav.search import pressed_rung

from .support import (
    CAMERA,
    LAT0,
    LON0,
    T0,
    Pose,
    error_m,
    feed,
    make_estimator,
    render,
    rising_ground_flight,
    synthetic_world,
)

CANDIDATES = MatchConfig().scale_candidates  # 0.92, 1.0, 1.08


def test_a_scale_pressing_past_the_outermost_candidate_has_a_rung_further_out() -> None:
    cfg = MatchConfig()
    span = 1.08 / 0.92
    assert pressed_rung(cfg, CANDIDATES, 1.1016) == pytest.approx(
        tuple(s * span for s in CANDIDATES)
    )
    assert pressed_rung(cfg, CANDIDATES, 0.90) == pytest.approx(tuple(s / span for s in CANDIDATES))
    # within the refinement's quarter step of the candidates: no rung
    assert pressed_rung(cfg, CANDIDATES, 1.09) == ()
    assert pressed_rung(cfg, CANDIDATES, 0.912) == ()
    # the next rung's own span carries on outward
    up = pressed_rung(cfg, CANDIDATES, 1.1016)
    assert pressed_rung(cfg, up, 1.30) == pytest.approx(tuple(s * span for s in up))
    # tracking (one candidate) and a scale held by the GNSS's measurement have none
    assert pressed_rung(cfg, (1.04,), 1.2) == ()
    assert pressed_rung(MatchConfig(scale_bounds=(0.95, 1.15)), CANDIDATES, 1.2) == ()


def _cold_frame(
    height_factor: float, **cfg: object
) -> tuple[VisualFix | FrameRejected, Pose, list[int]]:
    """A 1 km frame, its height reported ``height_factor`` of the truth, searched around a
    GNSS prior 150 m off; and the candidate counts the gate was handed."""
    counts: list[int] = []
    real = estimator_module.candidates_extra

    def spy(settings: object, candidates: int) -> float:
        counts.append(candidates)
        return real(settings, candidates)  # type: ignore[arg-type]

    ortho, tiles = synthetic_world()
    est = make_estimator(tiles, **cfg)
    pose = Pose(LAT0, LON0, 500.0, roll_deg=4.0, pitch_deg=-6.0, yaw_deg=30.0)
    feed(
        est,
        T0,
        pose,
        height_factor=height_factor,
        prior=pose.offset(120.0, -90.0),
        prior_sigma_m=100.0,
    )
    estimator_module.candidates_extra = spy  # type: ignore[assignment]
    try:
        got: VisualFix | FrameRejected = est.process(T0, render(ortho, pose), CAMERA)
    except FrameRejected as rej:
        got = rej
    finally:
        estimator_module.candidates_extra = real  # type: ignore[assignment]
    return got, pose, counts


@pytest.mark.parametrize("height_factor", [0.8, 1.22])
def test_a_height_a_fifth_off_is_fixed_on_the_next_rung_and_refused_without_it(
    height_factor: float,
) -> None:
    """Reported a fifth low (ground beneath 100 m above the home at 500 m) the scale
    needed is 1.25; a fifth high, 0.82: past the refinement's reach of 0.90-1.10. The
    next rung finds it, and the gate is asked for both rungs' draws (9 + 6). Without
    rungs the frame is refused, not placed at the reach's end."""
    got, pose, counts = _cold_frame(height_factor)
    assert isinstance(got, VisualFix), got
    assert math.hypot(*error_m(pose, got.latitude, got.longitude)) < 5.0
    assert got.scale * height_factor == pytest.approx(1.0, abs=0.02)
    assert counts == [9 + 6]
    without, _, counts = _cold_frame(height_factor, scale_search_rungs=0)
    assert isinstance(without, FrameRejected), without
    assert without.reason == "gate" and without.detail["scale_on_edge"] == 1
    assert counts == []  # refused before the gate


def test_a_height_within_the_candidates_searches_no_rung() -> None:
    got, pose, counts = _cold_frame(1.04)
    assert isinstance(got, VisualFix), got
    assert math.hypot(*error_m(pose, got.latitude, got.longitude)) < 5.0
    assert counts == [9]


def test_frames_alone_follow_ground_rising_under_a_flight_without_a_rangefinder() -> None:
    """1 km frames (500 m above the ground at first, reported throughout), 25 m/s east,
    the GNSS denied after 3 s, the ground rising a fifth of the height from 6 to 16 s.
    Each frame starts from the last fix's scale, and its refinement carries it on: the
    fixes stay on the ground through the rise, on the estimator's own track, and end at
    the scale the lower height needs (1.25 of the flat-ground height's)."""
    _, tiles = synthetic_world()
    flown = rising_ground_flight(
        make_estimator(tiles),
        Pose(LAT0, LON0, 500.0).offset(-400.0, 200.0),
        frames=24,
        step_en_m=(25.0, 0.0),
        yaw_deg=90.0,
    )
    fixes = [(pose, got) for pose, got in flown if isinstance(got, VisualFix)]
    assert len(fixes) == len(flown), [got for _, got in flown if isinstance(got, FrameRejected)]
    for pose, fix in fixes:
        assert math.hypot(*error_m(pose, fix.latitude, fix.longitude)) < 8.0, (pose, fix)
    assert all(fix.prior_source != "fc_gnss" for _, fix in fixes[4:])
    for pose, fix in fixes[-6:]:
        assert fix.scale * 500.0 / pose.agl_m == pytest.approx(1.0, abs=0.02)
