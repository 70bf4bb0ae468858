"""Which camera frames the estimator takes (visual_nav.frame_pacing): the rate cap on
capture stamps, the queue's depth, and the frames let go when matching falls behind."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gps_denied_onboard.errors import ConfigError
from gps_denied_onboard.visual_nav.config import VisualNavConfig
from gps_denied_onboard.visual_nav.frame_pacing import FramePacer, PacingConfig

NS = 1_000_000_000
MS = 1_000_000


def camera(rate_hz: float, seconds: float, jitter_ms: list[float] | None = None) -> list[int]:
    """Capture stamps of a camera at ``rate_hz``, each moved by its jitter (ms)."""
    n = int(seconds * rate_hz)
    jitter = jitter_ms or [0.0] * n
    return [round(k * NS / rate_hz + jitter[k % len(jitter)] * MS) for k in range(n)]


def taken(pacer: FramePacer[int], stamps: list[int]) -> list[int]:
    """Offer ``stamps`` and take each at once (a worker that keeps up)."""
    out = []
    for s in stamps:
        if pacer.offer(s, s) is not None:
            got, late = pacer.take()
            assert got is not None and not late
            out.append(got[0])
    return out


@pytest.mark.parametrize("rate_hz", [5.0, 10.0, 15.0, 30.0])
def test_a_fast_camera_is_taken_at_the_cap_on_average(rate_hz: float) -> None:
    pacer: FramePacer[int] = FramePacer(PacingConfig(max_rate_hz=2.0))
    got = taken(pacer, camera(rate_hz, 60.0))
    assert 118 <= len(got) <= 121  # 2 Hz over 60 s
    assert pacer.decimated == int(60 * rate_hz) - len(got)
    gaps = [b - a for a, b in itertools.pairwise(got)]
    assert min(gaps) >= 0.25 * NS  # never closer than half the interval


def test_a_camera_at_the_cap_with_jitter_loses_no_frame() -> None:
    pacer: FramePacer[int] = FramePacer(PacingConfig(max_rate_hz=2.0))
    stamps = camera(2.0, 120.0, jitter_ms=[0.0, -20.0, 15.0, -35.0, 30.0, 5.0])
    assert taken(pacer, stamps) == stamps
    assert pacer.decimated == 0


def test_no_cap_takes_every_frame_even_a_repeated_stamp() -> None:
    pacer: FramePacer[int] = FramePacer(PacingConfig(max_rate_hz=0.0))
    stamps = [*camera(30.0, 2.0), 2 * NS, 2 * NS]
    assert taken(pacer, stamps) == stamps


def test_a_repeated_stamp_is_decimated_under_the_cap() -> None:
    pacer: FramePacer[int] = FramePacer(PacingConfig(max_rate_hz=2.0))
    assert taken(pacer, [NS, NS, 2 * NS]) == [NS, 2 * NS]
    assert pacer.decimated == 1


def test_stamps_that_go_back_start_the_cap_afresh() -> None:
    """A camera or a bag restarted: its first frame is taken, not held back for the
    old timeline's interval."""
    pacer: FramePacer[int] = FramePacer(PacingConfig(max_rate_hz=2.0))
    assert taken(pacer, [100 * NS, 5 * NS, 5 * NS + 100 * MS, 5 * NS + 500 * MS]) == [
        100 * NS,
        5 * NS,
        5 * NS + 500 * MS,
    ]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    rate_hz=st.floats(1.0, 60.0),
    cap_hz=st.floats(0.2, 20.0),
    jitter=st.lists(st.floats(-0.3, 0.3), min_size=1, max_size=7),
)
def test_the_cap_holds_over_any_window_and_no_two_frames_come_closer_than_half_of_it(
    rate_hz: float, cap_hz: float, jitter: list[float]
) -> None:
    period_ms = 1e3 / rate_hz
    stamps = camera(rate_hz, 30.0, [j * period_ms for j in jitter])
    stamps = sorted(set(stamps))
    pacer: FramePacer[int] = FramePacer(PacingConfig(max_rate_hz=cap_hz))
    got = taken(pacer, stamps)
    interval = NS / cap_hz
    assert all(b - a >= 0.5 * interval - 1 for a, b in itertools.pairwise(got))
    for i, start in enumerate(got):  # any window of W holds at most W / interval + 2
        window = 5.0 * interval
        inside = sum(1 for s in got[i:] if s < start + window)
        assert inside <= 5 + 2
    assert len(got) + pacer.decimated == len(stamps)
    # and a camera no faster than the cap keeps (nearly) all its frames
    if rate_hz <= 0.8 * cap_hz:
        assert pacer.decimated == 0


def test_a_full_queue_lets_its_oldest_frame_go_as_busy() -> None:
    pacer: FramePacer[str] = FramePacer(PacingConfig(max_rate_hz=0.0, max_lag_s=0.0, depth=3))
    for k in range(3):
        assert pacer.offer(k * NS, f"f{k}") == []
    dropped = pacer.offer(3 * NS, "f3")
    assert dropped is not None and [(d.stamp_ns, d.item, d.reason) for d in dropped] == [
        (0, "f0", "busy")
    ]
    assert [i for _, i in pacer] == ["f1", "f2", "f3"]
    assert pacer.dropped_busy == 1


def test_a_worker_behind_skips_to_the_frames_within_the_lag_of_the_newest() -> None:
    pacer: FramePacer[int] = FramePacer(PacingConfig(max_rate_hz=0.0, max_lag_s=1.0))
    for k in range(6):  # 2 Hz, 2.5 s of frames waiting
        pacer.offer(k * 500 * MS, k)
    got, late = pacer.take()
    # newest at 2.5 s: frames before 1.5 s are late; the one at 1.5 s is kept
    assert [(d.item, d.reason) for d in late] == [(0, "late"), (1, "late"), (2, "late")]
    assert got == (1500 * MS, 3)
    assert pacer.dropped_late == 3
    got, late = pacer.take()
    assert got == (2000 * MS, 4) and late == []


def test_without_a_lag_bound_every_waiting_frame_is_matched_in_order() -> None:
    pacer: FramePacer[int] = FramePacer(PacingConfig(max_rate_hz=0.0, max_lag_s=0.0))
    for k in range(6):
        pacer.offer(k * NS, k)
    order = []
    while len(pacer):
        got, late = pacer.take()
        assert got is not None and late == []
        order.append(got[1])
    assert order == list(range(6))
    assert pacer.take() == (None, [])


def test_a_frame_alone_is_taken_however_old_it_is() -> None:
    """The lag is measured against the newest frame waiting, in the camera's own
    time: a frame with none behind it is the freshest there is."""
    pacer: FramePacer[int] = FramePacer(PacingConfig(max_rate_hz=2.0, max_lag_s=0.5))
    pacer.offer(0, 0)
    assert pacer.take() == ((0, 0), [])


def test_every_frame_offered_ends_in_exactly_one_outcome() -> None:
    pacer: FramePacer[int] = FramePacer(PacingConfig(max_rate_hz=2.0, max_lag_s=1.0, depth=4))
    outcomes: dict[int, str] = {}
    stamps = camera(10.0, 20.0)
    for i, s in enumerate(stamps):
        dropped = pacer.offer(s, s)
        if dropped is None:
            outcomes[s] = "decimated"
            continue
        for d in dropped:
            outcomes[d.stamp_ns] = d.reason
        if i % 7 == 0:  # a slow worker: takes one frame now and then
            got, late = pacer.take()
            for d in late:
                outcomes[d.stamp_ns] = d.reason
            if got is not None:
                outcomes[got[0]] = "taken"
    for d in pacer.clear():
        outcomes[d.stamp_ns] = d.reason
    assert sorted(outcomes) == stamps
    assert set(outcomes.values()) <= {"decimated", "busy", "late", "taken", "stopped"}
    counts = {k: list(outcomes.values()).count(k) for k in ("decimated", "busy", "late")}
    assert counts == {
        "decimated": pacer.decimated,
        "busy": pacer.dropped_busy,
        "late": pacer.dropped_late,
    }
    assert pacer.dropped_late > 0 and pacer.decimated > 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("frame_max_rate_hz", -1.0),
        ("frame_max_rate_hz", float("nan")),
        ("frame_max_lag_s", -0.1),
        ("frame_max_lag_s", float("inf")),
        ("queue_depth", 0),
    ],
)
def test_a_pacing_parameter_out_of_range_is_a_config_error_naming_it(
    field: str, value: float
) -> None:
    with pytest.raises(ConfigError) as err:
        VisualNavConfig(**{field: value})  # type: ignore[arg-type]
    assert err.value.key == field


def test_the_defaults_take_two_frames_a_second_and_let_go_after_a_second() -> None:
    cfg = VisualNavConfig().pacing_config()
    assert (cfg.max_rate_hz, cfg.max_lag_s, cfg.depth) == (2.0, 1.0, 8)
