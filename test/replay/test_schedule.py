"""Pure replay scheduling, driven by a ManualClock: no ROS, no sleeping."""

from __future__ import annotations

import pytest

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.errors import ConfigError
from gps_denied_onboard.replay.bag import BagMessage
from gps_denied_onboard.replay.options import (
    ReplayOptions,
    parse_rate,
    parse_remaps,
    parse_topics,
)
from gps_denied_onboard.replay.player import Player
from gps_denied_onboard.replay.schedule import ClockTick, Publish, Timeline, playback_events

from .in_memory import T0, ListSink, ListSource, ManualWaiter, S

W0 = 5_000 * S  # host monotonic origin in these tests


def _bag() -> ListSource:
    # /a at 0, 1, 2, 3 s; /b at 0.5, 2.5 s
    items = [("/a", T0 + i * S, f"a{i}".encode()) for i in range(4)]
    items += [("/b", T0 + S // 2, b"b0"), ("/b", T0 + 5 * S // 2, b"b1")]
    items.sort(key=lambda x: x[1])
    return ListSource(items)


def _player(
    opts: ReplayOptions, source: ListSource | None = None
) -> tuple[Player, ListSink, ManualWaiter, ManualClock]:
    clock = ManualClock(W0)
    sink = ListSink(clock)
    waiter = ManualWaiter(clock)
    return Player(source or _bag(), sink, opts, clock, waiter=waiter), sink, waiter, clock


def test_events_put_a_clock_tick_before_each_message_time_and_at_the_cadence() -> None:
    msgs = [BagMessage("/a", T0, b"x"), BagMessage("/a", T0 + 250_000_000, b"y")]
    events = list(playback_events(msgs, start_ns=T0, options=ReplayOptions(clock_hz=10)))
    assert events == [
        ClockTick(T0),
        Publish(T0, "/a", "/a", b"x", T0),
        ClockTick(T0 + 100_000_000),
        ClockTick(T0 + 200_000_000),
        ClockTick(T0 + 250_000_000),
        Publish(T0 + 250_000_000, "/a", "/a", b"y", T0 + 250_000_000),
    ]


def test_out_of_order_message_is_due_with_its_predecessor() -> None:
    msgs = [BagMessage("/a", T0 + S, b"late-first"), BagMessage("/a", T0 + S // 2, b"early")]
    events = list(playback_events(msgs, start_ns=T0, options=ReplayOptions(clock_hz=0)))
    pubs = [e for e in events if isinstance(e, Publish)]
    assert [p.sim_ns for p in pubs] == [T0 + S, T0 + S]
    assert pubs[1].recorded_ns == T0 + S // 2
    clocks = [e.sim_ns for e in events if isinstance(e, ClockTick)]
    assert clocks == sorted(clocks)


def test_rate_one_publishes_each_message_at_its_recorded_offset() -> None:
    player, sink, _w, _c = _player(ReplayOptions(clock_hz=0))
    summary = player.run()
    got = [(w - W0, t, d) for w, t, d in sink.messages()]
    assert got == [
        (0, "/a", b"a0"),
        (S // 2, "/b", b"b0"),
        (S, "/a", b"a1"),
        (2 * S, "/a", b"a2"),
        (5 * S // 2, "/b", b"b1"),
        (3 * S, "/a", b"a3"),
    ]
    assert summary.per_topic == {"/a": 4, "/b": 2}
    assert summary.sim_s == pytest.approx(3.0)
    assert summary.achieved_rate == pytest.approx(1.0)


def test_sim_time_starts_when_playback_starts_not_when_the_player_is_built() -> None:
    # the replay tool builds the player, then waits --delay for discovery: at rate 4,
    # a 2 s wait must not make the first 8 sim seconds overdue and burst out at once
    player, sink, _w, clock = _player(ReplayOptions(clock_hz=0, rate=4.0))
    clock.advance_ns(2 * S)
    player.run()
    got = [w - (W0 + 2 * S) for w, _t, _d in sink.messages()]
    assert got == [0, S // 8, S // 4, S // 2, 5 * S // 8, 3 * S // 4]
    assert player.summary.achieved_rate == pytest.approx(4.0)


def test_rate_two_halves_wall_time_and_keeps_the_clock_sequence() -> None:
    slow, sink1, _w, _c = _player(ReplayOptions(clock_hz=4))
    fast, sink2, _w2, _c2 = _player(ReplayOptions(clock_hz=4, rate=2.0))
    slow.run()
    fast.run()
    assert sink1.clocks() == sink2.clocks()
    walls1 = [w - W0 for w, _t, _d in sink1.messages()]
    walls2 = [w - W0 for w, _t, _d in sink2.messages()]
    assert walls2 == [w // 2 for w in walls1]
    assert fast.summary.achieved_rate == pytest.approx(2.0)


def test_max_rate_publishes_everything_without_waiting() -> None:
    player, sink, waiter, clock = _player(ReplayOptions(rate=None))
    player.run()
    assert waiter.waits == 0
    assert clock.now_ns() == W0
    assert len(sink.messages()) == 6


def test_start_offset_skips_earlier_messages_and_starts_sim_time_there() -> None:
    player, sink, _w, _c = _player(ReplayOptions(start_offset_s=2.0, clock_hz=1))
    player.run()
    assert [d for _w2, _t, d in sink.messages()] == [b"a2", b"b1", b"a3"]
    assert sink.clocks()[0] == T0 + 2 * S
    assert sink.messages()[0][0] == W0


def test_topic_selection_and_remap() -> None:
    opts = ReplayOptions(topics=("/b",), remaps={"/b": "/renamed"}, clock_hz=0)
    player, sink, _w, _c = _player(opts)
    summary = player.run()
    assert [(t, d) for _w2, t, d in sink.messages()] == [("/renamed", b"b0"), ("/renamed", b"b1")]
    assert dict(summary.per_topic) == {"/renamed": 2}
    # sim time starts at the bag's start, not at the first selected message
    assert sink.messages()[0][0] - W0 == S // 2


def test_pause_freezes_sim_time_and_resume_continues_where_it_stopped() -> None:
    player, sink, waiter, _c = _player(ReplayOptions(clock_hz=0))
    waiter.at(W0 + 1_200_000_000, player.pause)
    waiter.at(W0 + 11_200_000_000, player.resume)  # 10 s paused
    player.run()
    walls = [w - W0 for w, _t, _d in sink.messages()]
    assert walls == [0, S // 2, S, 12 * S, 12 * S + S // 2, 13 * S]
    assert player.summary.sim_s == pytest.approx(3.0)


def test_start_paused_then_step_publishes_one_message_at_a_time() -> None:
    player, sink, waiter, _c = _player(ReplayOptions(start_paused=True, clock_hz=0))
    waiter.at(W0 + S, lambda: player.request_step(2))
    waiter.at(W0 + 2 * S, player.resume)
    player.run()
    walls = [w - W0 for w, _t, _d in sink.messages()]
    # two stepped at t=1 s, then resumed at 2 s from sim 0.5 s: a1 due 0.5 s later
    assert walls == [S, S, 2 * S + S // 2, 3 * S + S // 2, 4 * S, 4 * S + S // 2]


def test_loop_replays_the_bag_again_with_the_same_sequence() -> None:
    player, sink, _w, _c = _player(ReplayOptions(loop=True, max_loops=2, clock_hz=2, rate=None))
    summary = player.run()
    data = [d for _w2, _t, d in sink.messages()]
    assert data[:6] == data[6:]
    clocks = sink.clocks()
    assert clocks[: len(clocks) // 2] == clocks[len(clocks) // 2 :]
    assert summary.passes == 2
    assert summary.messages == 12


def test_stop_ends_run_and_reports_it() -> None:
    player, sink, waiter, _c = _player(ReplayOptions(clock_hz=0))
    waiter.at(W0 + S + 1, player.stop)
    summary = player.run()
    assert summary.stopped
    assert len(sink.messages()) == 3


def test_step_mode_is_deterministic_and_ignores_wall_time() -> None:
    runs = []
    for _ in range(2):
        player, _sink, _w, clock = _player(ReplayOptions(clock_hz=3))
        seq = []
        while batch := player.step():
            seq.append(batch)
        assert clock.now_ns() == W0
        runs.append(seq)
    assert runs[0] == runs[1]
    assert len(runs[0]) == 6
    assert all(isinstance(b[-1], Publish) for b in runs[0])
    assert isinstance(runs[0][0][0], ClockTick)


def test_rate_change_mid_replay_has_no_sim_jump() -> None:
    player, sink, waiter, _c = _player(ReplayOptions(clock_hz=0))
    waiter.at(W0 + S, lambda: player.set_rate(4.0))
    player.run()
    walls = [w - W0 for w, _t, _d in sink.messages()]
    assert walls == [0, S // 2, S, S + S // 4, S + 3 * S // 8, S + S // 2]


def test_timeline_maps_both_ways() -> None:
    tl = Timeline(T0, W0, 2.0)
    assert tl.wall_for(T0 + 2 * S) == W0 + S
    assert tl.sim_at(W0 + S) == T0 + 2 * S
    tl.pause(W0 + S)
    assert tl.wall_for(T0 + 3 * S) is None
    assert tl.sim_at(W0 + 50 * S) == T0 + 2 * S
    tl.resume(W0 + 60 * S)
    assert tl.wall_for(T0 + 4 * S) == W0 + 61 * S


def test_option_parsing_and_validation() -> None:
    assert parse_rate("max") is None
    assert parse_rate("2.5") == 2.5
    assert parse_remaps(["a:=/b", "/c:=d"]) == {"/a": "/b", "/c": "/d"}
    assert parse_topics(["/a,b", "/a"]) == ("/a", "/b")
    with pytest.raises(ConfigError, match="rate"):
        ReplayOptions(rate=-1.0)
    with pytest.raises(ConfigError, match="old:=new"):
        parse_remaps(["nope"])
    with pytest.raises(ConfigError, match="remapped onto one name"):
        ReplayOptions(remaps={"/a": "/x", "/b": "/x"})
    with pytest.raises(ConfigError):
        ReplayOptions(start_offset_s=-1)


def test_a_paused_replay_keeps_publishing_the_held_clock_at_the_wall_cadence() -> None:
    player, sink, waiter, _c = _player(ReplayOptions(start_paused=True, clock_hz=2))
    waiter.at(W0 + S + S // 4, lambda: player.request_step(1))
    waiter.at(W0 + 2 * S + S // 4, player.stop)
    summary = player.run()
    clocks = [(w - W0, t) for w, k, _t, t in sink.events if k == "clock"]
    # held at the bag start every 0.5 s of wall time, then the step's own tick, then held there
    assert clocks[:3] == [(0, T0), (S // 2, T0), (S, T0)]
    assert (S + S // 4, T0) in clocks  # the step: tick at T0 before /a at T0
    held_after = [t for w, t in clocks if w > S + S // 4]
    assert held_after and set(held_after) == {T0}
    assert [t for _w, t in clocks] == sorted(t for _w, t in clocks)
    assert len(sink.messages()) == 1
    # the repeats are wall-time artefacts, not part of the bag's tick sequence
    assert summary.clock_ticks == 1


def test_a_paused_replay_holds_the_last_published_time_and_never_goes_back() -> None:
    player, sink, waiter, _c = _player(ReplayOptions(clock_hz=4))
    waiter.at(W0 + S + S // 8, player.pause)
    waiter.at(W0 + 3 * S, player.resume)
    player.run()
    clocks = [t for _w, k, _t, t in sink.events if k == "clock"]
    assert clocks == sorted(clocks)
    paused = [t for w, k, _t, t in sink.events if k == "clock" and W0 + S + S // 8 < w < W0 + 3 * S]
    assert len(paused) >= 6 and set(paused) == {T0 + S}


def test_no_held_clock_without_a_clock_rate() -> None:
    player, sink, waiter, _c = _player(ReplayOptions(start_paused=True, clock_hz=0))
    waiter.at(W0 + 2 * S, player.stop)
    player.run()
    assert sink.events == []
