"""The autopilot's boot time mapped onto the bridge's clock."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gps_denied_onboard.fc_bridge.timesync import FcTimeMapper

MS = 1_000_000
OFFSET = 1_778_580_000 * 1_000_000_000 - 300_000 * MS  # boot 300 s before the flight


def test_arrival_jitter_both_ways_is_removed() -> None:
    """Arrival times scattered -300..+200 ms (a loaded sim-time replay): stamps exact."""
    rng = np.random.default_rng(3)
    fc = FcTimeMapper()
    errors = []
    for k in range(2000):
        boot = 300_000 + 20 * k
        jitter = int(rng.choice([0, 0, 0, rng.integers(-300, 200)])) * MS
        stamp = fc.stamp(boot, OFFSET + boot * MS + jitter)
        if k > 100:
            errors.append(stamp - (OFFSET + boot * MS))
    assert max(abs(e) for e in errors) <= 5 * MS


@settings(max_examples=30, deadline=None)
@given(delay_ms=st.integers(0, 20), late_every=st.integers(3, 20))
def test_steady_delay_shows_as_that_delay_and_no_more(delay_ms: int, late_every: int) -> None:
    fc = FcTimeMapper(window=51)
    for k in range(300):
        boot = 1000 + 20 * k
        late = 150 * MS if k % late_every == 0 else 0
        stamp = fc.stamp(boot, OFFSET + (boot + delay_ms) * MS + late)
    assert stamp - (OFFSET + boot * MS) == delay_ms * MS


def test_a_reboot_starts_afresh() -> None:
    fc = FcTimeMapper()
    for k in range(50):
        fc.stamp(600_000 + 20 * k, OFFSET + (600_000 + 20 * k) * MS)
    after = OFFSET + 700_000 * MS  # the autopilot restarted: boot time from zero
    assert fc.stamp(5, after) == after
    assert fc.resets == 1


def test_a_burst_of_late_arrivals_does_not_move_the_mapping() -> None:
    """A loaded machine delays messages in runs of seconds (the main job at 4x: half
    of them late by 20-200 ms for a while). Once settled, the offset stays on the
    prompt messages' as long as a quarter of the window still is: a median alone
    followed the burst and re-timed every attitude sample in it."""
    rng = np.random.default_rng(11)
    fc = FcTimeMapper()
    errors = []
    for k in range(4000):
        boot = 300_000 + 20 * k
        # 70 % prompt at first; from message 1500 on 40 %, the rest 20-200 ms late
        prompt = rng.random() < (0.7 if k < 1500 else 0.4)
        late = 0 if prompt else int(rng.choice([20, 40, 80, 200])) * MS
        stamp = fc.stamp(boot, OFFSET + boot * MS + late)
        if k > 200:
            errors.append(stamp - (OFFSET + boot * MS))
    assert max(abs(e) for e in errors) == 0
    assert fc.resets == 0


def test_a_lasting_change_of_the_links_delay_is_followed() -> None:
    """Steady is not stuck: when every message comes 30 ms later for good (another
    link, a slower reader), the mapping follows within a window."""
    fc = FcTimeMapper()
    for k in range(1500):
        boot = 300_000 + 20 * k
        fc.stamp(boot, OFFSET + boot * MS)
    moved_after = None
    for k in range(1500, 4000):
        boot = 300_000 + 20 * k
        stamp = fc.stamp(boot, OFFSET + (boot + 30) * MS)
        if moved_after is None and stamp == OFFSET + (boot + 30) * MS:
            moved_after = k - 1500
    assert moved_after is not None and moved_after <= 1001
    assert fc.offset_ns == OFFSET + 30 * MS
