"""The GPS_INPUT stream's contract, exactly, on a manual clock with the shipped defaults.

What the README promises for ArduPilot's GPS_INPUT (``FixOutputConfig()`` defaults,
the same as ``config/fc_bridge.yaml``: 10 Hz grid, ``max_fix_age_s`` 0.5,
``fix_repeat_max_age_s`` 1.0, min-gap fraction 0.75, repeat-gap fraction 1.5):

- while the newest fix is fresh, every gap between two messages is between 60 ms
  (EKF3's floor plus margin) and 150 ms (a repeat 1.5 periods after the last message,
  well inside ArduPilot's 215 ms health limit), so the rate is 6.7..13.3 Hz, whatever
  the estimator's rate;
- a new fix goes out when it arrives, or as soon as the floor allows (at most 75 ms
  after the previous new fix);
- a new fix older than ``max_fix_age_s`` is never sent; the last one sent is repeated
  until it is ``fix_repeat_max_age_s`` old (ArduPilot takes a repeat's GPS time as its
  sample time, so EKF3 skips it; it keeps the driver's rate, so a 2 Hz estimator keeps
  the GPS healthy), then nothing more is sent, and the stream resumes with the next
  fix, on its arrival.

The driver plays the sender thread deterministically: it advances the clock to the
scheduler's next deadline or the next fix's arrival, whichever is first.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.fc_bridge.fix import PositionFix
from gps_denied_onboard.fc_bridge.scheduler import FixOutputConfig, FixScheduler

MS = 1_000_000
T0 = 1_778_544_000 * 1_000_000_000
COV = (4.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 36.0)
FLOOR_MS, REPEAT_MS, NEW_FIX_GAP_MS, MAX_AGE_MS, REPEAT_AGE_MS = 60, 150, 75, 500, 1000


class Run:
    """A scheduler with the shipped defaults and a log of (send time, capture time)."""

    def __init__(self) -> None:
        self.clock = ManualClock(T0)
        self.sent: list[tuple[int, int]] = []
        self.sched = FixScheduler.from_config(
            FixOutputConfig(), autopilot="ardupilot", send=self._send, clock=self.clock
        )

    def _send(self, msg: Any) -> None:
        assert msg.get_type() == "GPS_INPUT"
        self.sent.append((self.clock.now_ns(), msg.time_usec * 1000))

    def play(self, arrivals: list[tuple[int, int]], until_ns: int) -> None:
        """``arrivals``: (arrival, capture) ns, sorted by arrival."""
        pending = list(arrivals)
        while True:
            due = self.sched.next_due_ns(self.clock.now_ns())
            arrival = pending[0][0] if pending else None
            if arrival is not None and arrival <= due:
                self.clock.set_ns(max(arrival, self.clock.now_ns()))
                _, capture = pending.pop(0)
                self.sched.submit(PositionFix(capture, 47.0, 8.0, 400.0, position_cov_enu=COV))
            elif due <= until_ns:
                self.clock.set_ns(max(due, self.clock.now_ns()))
                self.sched.tick()
            else:
                return


def fixes(start_ns: int, hz: float, seconds: float, rng: random.Random) -> list[tuple[int, int]]:
    """Fixes captured at ``hz`` (10 % jitter), each arriving 20..250 ms after capture."""
    out = []
    t = float(start_ns)
    while t < start_ns + seconds * 1e9:
        capture = int(t) // 1000 * 1000  # whole microseconds, as GPS_INPUT carries them
        out.append((capture + rng.randint(20, 250) * MS, capture))
        t += 1e9 / hz * rng.uniform(0.9, 1.1)
    return sorted(out)


def gaps_ms(sent: list[tuple[int, int]]) -> list[float]:
    return [(b[0] - a[0]) / MS for a, b in itertools.pairwise(sent)]


def test_the_defaults_are_the_contracts_numbers() -> None:
    sched = Run().sched
    assert sched.period_ns == 100 * MS
    assert sched.floor_ns == FLOOR_MS * MS
    assert sched.min_gap_ns == NEW_FIX_GAP_MS * MS
    assert sched.repeat_gap_ns == REPEAT_MS * MS
    assert sched.max_age_ns == MAX_AGE_MS * MS
    assert sched.repeat_max_age_ns == REPEAT_AGE_MS * MS


def held_capture(arrivals: list[tuple[int, int]], t_ns: int) -> int | None:
    """The newest capture among the fixes that arrived by ``t_ns`` (what the bridge holds)."""
    captures = [capture for arrival, capture in arrivals if arrival <= t_ns]
    return max(captures) if captures else None


@pytest.mark.parametrize("hz", [2.0, 2.5, 4.0, 6.0, 9.5, 10.0, 12.0, 30.0, 100.0])
def test_gaps_are_60_to_150_ms_while_a_fix_is_held_and_the_stream_stops_only_past_it(
    hz: float,
) -> None:
    run = Run()
    arrivals = fixes(T0, hz, 20.0, random.Random(int(hz * 10)))
    run.play(arrivals, until_ns=arrivals[-1][0] + NEW_FIX_GAP_MS * MS)  # the last one sent
    fresh_gaps = []
    stale_gaps = 0
    for (a, _), (b, capture_b) in itertools.pairwise(run.sent):
        held = held_capture(arrivals, a + REPEAT_MS * MS)
        assert held is not None
        if a + REPEAT_MS * MS - held <= REPEAT_AGE_MS * MS:
            # a fix young enough to repeat was held when the repeat fell due: the gap is
            # within the contract
            assert FLOOR_MS * MS <= b - a <= REPEAT_MS * MS, (a - T0, b - a)
            fresh_gaps.append(b - a)
        else:
            # it had gone stale: silence until the next fix, which goes out on arrival
            stale_gaps += 1
            arrival_b = min(arr for arr, c in arrivals if c == capture_b)
            assert b == arrival_b and held < capture_b, (a - T0, b - a)
    rate = len(fresh_gaps) / (sum(fresh_gaps) / 1e9)
    assert 1000 / REPEAT_MS <= rate <= 1000 / NEW_FIX_GAP_MS, rate
    # a 2 Hz estimator's fixes (0.5 s apart, 20-250 ms late) are repeated until the next:
    # the stream never stops (it stopped at times while repeats ended at 0.5 s)
    assert stale_gaps == 0
    # every message carries a fix young enough: new ones max_fix_age_s, repeats more
    assert all(0 <= sent - capture <= REPEAT_AGE_MS * MS for sent, capture in run.sent)
    # new fixes are not held back: each one sent went out within the new-fix gap of arrival
    arrival_of = {capture: arrival for arrival, capture in arrivals}
    first_sends: dict[int, int] = {}
    for sent, capture in run.sent:
        first_sends.setdefault(capture, sent)
    assert all(sent - c <= MAX_AGE_MS * MS for c, sent in first_sends.items())
    delays = [(sent - arrival_of[c]) / MS for c, sent in first_sends.items()]
    assert max(delays) <= NEW_FIX_GAP_MS, max(delays)
    # every fix is accounted for: sent, or superseded / out of order / stale, counted
    st = run.sched.stats()
    assert st.new_fixes_sent == len(first_sends) and st.submitted == len(arrivals)
    assert st.new_fixes_sent + st.superseded + st.out_of_order + st.dropped_stale == len(arrivals)
    if hz <= 6.0:  # slower than the new-fix cap, but arrival jitter still supersedes a few
        assert st.new_fixes_sent >= 0.85 * len(arrivals), st


def test_the_stream_stops_once_the_fix_is_stale_and_resumes_with_the_next() -> None:
    run = Run()
    rng = random.Random(7)
    first = fixes(T0, 5.0, 5.0, rng)
    last_capture = max(c for _, c in first)
    resume_at = last_capture + 3_000 * MS  # three seconds without a fix
    second = fixes(resume_at, 5.0, 5.0, rng)
    run.play(first + second, until_ns=second[-1][0])
    before = [s for s in run.sent if s[0] < resume_at]
    after = [s for s in run.sent if s[0] >= resume_at]
    # repeats continue until the last fix is 1 s old, then stop
    stopped_at = before[-1][0]
    assert stopped_at - last_capture <= REPEAT_AGE_MS * MS
    assert stopped_at - last_capture > (REPEAT_AGE_MS - REPEAT_MS) * MS
    assert all(capture == last_capture for _, capture in before[-2:])
    # the next fix goes out on its arrival, and the contract holds again
    assert after[0] == (second[0][0], second[0][1])
    gaps = gaps_ms(after)
    assert min(gaps) >= FLOOR_MS and max(gaps) <= REPEAT_MS
    assert run.sched.stats().sent == len(run.sent)


def test_a_fix_arriving_already_stale_is_never_sent() -> None:
    run = Run()
    capture = T0
    run.play([(capture + (MAX_AGE_MS + 1) * MS, capture)], until_ns=T0 + 2_000 * MS)
    assert run.sent == []
