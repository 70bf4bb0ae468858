"""FixScheduler on a manual clock: latest wins, stale dropped, steady grid, honest stats."""

from __future__ import annotations

import math
from typing import Any

import pytest

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.errors import ConfigError
from gps_denied_onboard.fc_bridge.fix import PositionFix
from gps_denied_onboard.fc_bridge.fix_output import FixEncoder, LocalOrigin, OutputKind
from gps_denied_onboard.fc_bridge.scheduler import FixOutputConfig, FixScheduler

MS = 1_000_000
T0 = 1_778_544_000 * 1_000_000_000
COV = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def fix_at(capture_ns: int, lat: float = 47.0) -> PositionFix:
    return PositionFix(
        capture_ns, lat, 8.0, 400.0, velocity_enu=(0.0, 1.0, 0.0), position_cov_enu=COV
    )


class Wire:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def __call__(self, msg: Any) -> None:
        self.sent.append(msg)


def make(
    kind: OutputKind = OutputKind.GPS_INPUT,
    *,
    rate_hz: float = 10.0,
    resend: bool | None = None,
    on_arrival: bool = True,
    max_age_s: float = 0.5,
    inline: bool = False,
) -> tuple[FixScheduler, ManualClock, Wire]:
    clock = ManualClock(T0)
    wire = Wire()
    enc = FixEncoder(kind, autopilot="px4", origin=LocalOrigin(47.0, 8.0, 400.0))
    sched = FixScheduler(
        enc,
        wire,
        clock,
        rate_hz=rate_hz,
        max_fix_age_s=max_age_s,
        resend_latest=kind.default_resend if resend is None else resend,
        send_on_arrival=on_arrival,
        min_gap_fraction=0.5,
        send_inline=inline,
    )
    return sched, clock, wire


def test_nothing_to_send_without_a_fix() -> None:
    sched, _, wire = make()
    assert sched.tick() is None
    assert wire.sent == []


def test_latest_fix_wins_and_superseded_are_counted() -> None:
    sched, clock, wire = make(on_arrival=False)
    sched.tick()  # anchors the grid at T0
    for i in range(3):
        sched.submit(fix_at(T0 + i * MS, lat=47.0 + i * 1e-4))
    clock.advance_ns(100 * MS)
    sched.tick()
    assert len(wire.sent) == 1
    assert wire.sent[0].lat == round((47.0 + 2e-4) * 1e7)
    assert sched.stats().superseded == 2


def test_out_of_order_fix_is_ignored() -> None:
    sched, _, _ = make()
    assert sched.submit(fix_at(T0))
    assert not sched.submit(fix_at(T0 - 10 * MS))
    assert sched.stats().out_of_order == 1


def test_stale_fix_is_dropped_not_sent_late() -> None:
    sched, clock, wire = make(on_arrival=False)
    sched.tick()
    sched.submit(fix_at(T0 - 600 * MS))  # already older than 0.5 s
    clock.advance_ns(100 * MS)
    assert sched.tick() is None
    assert wire.sent == []
    assert sched.stats().dropped_stale == 1


def test_gps_input_repeats_latest_fix_with_its_original_capture_time() -> None:
    sched, clock, wire = make(OutputKind.GPS_INPUT)
    sched.submit(fix_at(T0))
    sched.tick()
    for _ in range(4):
        clock.advance_ns(100 * MS)
        sched.tick()
    assert len(wire.sent) == 5
    assert {m.time_usec for m in wire.sent} == {T0 // 1000}
    st = sched.stats()
    assert (st.new_fixes_sent, st.repeats) == (1, 4)
    # once the fix passes max_fix_age, the stream stops: the GPS goes honestly unhealthy
    clock.advance_ns(200 * MS)
    assert sched.tick() is None


def test_vision_never_sends_the_same_fix_twice() -> None:
    sched, clock, wire = make(OutputKind.ODOMETRY, rate_hz=30.0)
    sched.submit(fix_at(T0))
    for _ in range(10):
        sched.tick()
        clock.advance_ns(33 * MS)
    assert len(wire.sent) == 1
    assert sched.stats().repeats == 0


def test_new_fix_goes_out_promptly_but_not_closer_than_the_min_gap() -> None:
    sched, clock, _wire = make(OutputKind.GPS_INPUT)
    sched.submit(fix_at(T0))
    assert sched.tick() is not None  # sent on arrival at T0
    clock.advance_ns(20 * MS)
    sched.submit(fix_at(T0 + 20 * MS))
    # min gap is 60 ms (GPS_INPUT floor above 0.5 * period): due at T0+60ms, not now
    assert sched.next_due_ns(clock.now_ns()) == T0 + 60 * MS
    assert sched.tick() is None
    clock.set_ns(T0 + 60 * MS)
    msg = sched.tick()
    assert msg is not None and msg.time_usec == (T0 + 20 * MS) // 1000
    # the grid re-phased to that send: the next repeat is one period later
    assert sched.next_due_ns(clock.now_ns()) == T0 + 160 * MS


def test_a_new_fix_right_after_a_repeat_waits_for_the_gps_input_floor() -> None:
    # EKF3 drops a GPS sample within 50 ms of the previous one, repeat or not: a new
    # fix 10 ms after a repeat went out 0.1 ms apart before (seen on ArduPilot SITL)
    sched, clock, wire = make(OutputKind.GPS_INPUT)
    sched.submit(fix_at(T0))
    sched.tick()
    clock.set_ns(T0 + 100 * MS)
    assert sched.tick() is not None  # repeat on the grid
    clock.set_ns(T0 + 110 * MS)
    sched.submit(fix_at(T0 + 110 * MS))
    # min gap: max(0.5 * 100 ms, the 60 ms GPS_INPUT floor) after the repeat
    assert sched.next_due_ns(clock.now_ns()) == T0 + 160 * MS
    assert sched.tick() is None
    clock.set_ns(T0 + 160 * MS)
    msg = sched.tick()
    assert msg is not None and msg.time_usec == (T0 + 110 * MS) // 1000
    assert len(wire.sent) == 3
    # re-phased to that send: the next repeat is one period later, never sooner
    assert sched.next_due_ns(clock.now_ns()) == T0 + 260 * MS
    assert sched.stats().gap_min_ms == pytest.approx(60.0)


def test_a_late_grid_tick_never_leaves_the_next_one_within_the_floor() -> None:
    sched, clock, wire = make(OutputKind.GPS_INPUT)
    sched.submit(fix_at(T0))
    sched.tick()
    clock.set_ns(T0 + 180 * MS)  # the sender thread stalled 80 ms
    assert sched.tick() is not None
    # the grid slot at 200 ms would be 20 ms after that send: pushed to one period
    assert sched.next_due_ns(clock.now_ns()) == T0 + 280 * MS
    clock.set_ns(T0 + 200 * MS)
    assert sched.tick() is None
    assert len(wire.sent) == 2


def test_gps_input_rate_must_keep_gaps_between_the_floor_and_the_health_limit() -> None:
    clock = ManualClock(T0)
    for rate in (20.0, 4.0):
        with pytest.raises(ConfigError):
            FixScheduler(
                FixEncoder(OutputKind.GPS_INPUT),
                Wire(),
                clock,
                rate_hz=rate,
                max_fix_age_s=0.5,
                resend_latest=True,
            )
    # vision outputs are timestamped and never repeated: no such limits
    FixScheduler(
        FixEncoder(OutputKind.ODOMETRY),
        Wire(),
        clock,
        rate_hz=50.0,
        max_fix_age_s=0.5,
        resend_latest=False,
    )


def test_inline_send_happens_inside_submit_when_the_gap_allows() -> None:
    sched, clock, wire = make(OutputKind.GPS_INPUT, inline=True)
    woken: list[int] = []
    sched.set_wakeup(lambda: woken.append(clock.now_ns()))
    sched.submit(fix_at(T0))
    assert len(wire.sent) == 1 and woken == []  # sent by submit itself
    clock.advance_ns(20 * MS)
    sched.submit(fix_at(T0 + 20 * MS))  # inside the 60 ms min gap: the thread is woken
    assert len(wire.sent) == 1 and woken == [T0 + 20 * MS]
    assert sched.next_due_ns(clock.now_ns()) == T0 + 60 * MS


def test_fixed_grid_does_not_drift_or_burst() -> None:
    sched, clock, _ = make(OutputKind.GPS_INPUT, on_arrival=False)
    sched.tick()  # grid anchored at T0
    clock.set_ns(T0 + 130 * MS)  # a late tick
    sched.tick()
    assert sched.next_due_ns(clock.now_ns()) == T0 + 200 * MS  # phase kept
    clock.set_ns(T0 + 575 * MS)  # very late: missed slots are skipped, not replayed
    sched.tick()
    assert sched.next_due_ns(clock.now_ns()) == T0 + 600 * MS


def test_send_errors_are_counted_not_raised() -> None:
    clock = ManualClock(T0)

    def broken(_msg: Any) -> None:
        raise OSError("link down")

    sched = FixScheduler(
        FixEncoder(OutputKind.GPS_INPUT),
        broken,
        clock,
        rate_hz=10.0,
        max_fix_age_s=0.5,
        resend_latest=True,
    )
    sched.submit(fix_at(T0))
    assert sched.tick() is None
    assert sched.stats().send_errors == 1


def test_local_output_without_origin_counts_not_encodable() -> None:
    clock = ManualClock(T0)
    wire = Wire()
    sched = FixScheduler(
        FixEncoder(OutputKind.ODOMETRY),
        wire,
        clock,
        rate_hz=30.0,
        max_fix_age_s=0.5,
        resend_latest=False,
    )
    sched.submit(fix_at(T0))
    assert sched.tick() is None
    assert sched.stats().not_encodable == 1


def test_stats_report_rate_and_jitter() -> None:
    sched, clock, _ = make(OutputKind.GPS_INPUT, on_arrival=False)
    sched.submit(fix_at(T0))
    sched.tick()
    for jitter_ms in (0, 4, 0, 4, 0, 4, 0, 4):
        clock.set_ns(T0 + (len(sched._send_times)) * 100 * MS + jitter_ms * MS)
        sched.submit(fix_at(clock.now_ns()))
        sched.tick()
    st = sched.stats()
    assert st.sent == 9
    assert st.achieved_rate_hz == pytest.approx(10.0, rel=0.05)
    assert st.gap_max_ms == pytest.approx(104.0)
    assert 0.0 < st.jitter_ms < 5.0
    assert st.target_rate_hz == 10.0
    assert not math.isnan(st.gap_p99_ms)
    assert set(st.as_dict()) >= {"achieved_rate_hz", "jitter_ms", "dropped_stale", "repeats"}


def test_config_defaults_per_autopilot() -> None:
    cfg = FixOutputConfig()
    assert cfg.resolve_output("ardupilot") is OutputKind.GPS_INPUT
    assert cfg.resolve_output("px4") is OutputKind.ODOMETRY
    assert cfg.rate_for(OutputKind.GPS_INPUT) == 10.0
    assert cfg.rate_for(OutputKind.ODOMETRY) == 30.0
    assert cfg.resend_for(OutputKind.GPS_INPUT) and not cfg.resend_for(OutputKind.ODOMETRY)
    assert FixOutputConfig(output="odometry", rate_hz=50.0).rate_for(OutputKind.ODOMETRY) == 50.0
    with pytest.raises(ConfigError):
        FixOutputConfig(output="mocap")
    with pytest.raises(ConfigError):
        FixOutputConfig(rate_hz=0.5)
    sched = FixScheduler.from_config(cfg, autopilot="ardupilot", send=Wire(), clock=ManualClock(T0))
    assert sched.encoder.kind is OutputKind.GPS_INPUT and sched.resend_latest


def test_repeats_keep_out_of_the_way_of_a_slightly_late_new_fix() -> None:
    # the node's configuration: a repeat 1.5 periods after the last message, so a new
    # fix 110 ms after the last one goes out at once instead of waiting out the floor
    clock = ManualClock(T0)
    wire = Wire()
    sched = FixScheduler.from_config(
        FixOutputConfig(fix_send_inline=False), autopilot="ardupilot", send=wire, clock=clock
    )
    sched.submit(fix_at(T0))
    sched.tick()
    assert sched.next_due_ns(clock.now_ns()) == T0 + 150 * MS
    clock.set_ns(T0 + 110 * MS)
    sched.submit(fix_at(T0 + 110 * MS))
    assert sched.tick() is not None and len(wire.sent) == 2
    # no new fix: the repeat comes 150 ms later, inside ArduPilot's 215 ms limit
    clock.set_ns(T0 + 259 * MS)
    assert sched.tick() is None
    clock.set_ns(T0 + 260 * MS)
    msg = sched.tick()
    assert msg is not None and msg.time_usec == (T0 + 110 * MS) // 1000
    # GPS_INPUT repeats never wait longer than 215 - 35 ms, whatever the fraction
    slow = FixScheduler.from_config(
        FixOutputConfig(rate_hz=6.0, fix_repeat_gap_fraction=2.0),
        autopilot="ardupilot",
        send=Wire(),
        clock=clock,
    )
    assert slow.repeat_gap_ns == 180 * MS
