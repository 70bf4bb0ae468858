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
