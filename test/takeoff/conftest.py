"""Shared by the take-off tests: a simulated ArduPilot on UDP loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gps_denied_onboard.fc_bridge.sim_fc import SimFc


@pytest.fixture
def sim_fc() -> Iterator[SimFc]:
    fc = SimFc(autopilot="ardupilot")
    fc.start()
    try:
        yield fc
    finally:
        fc.stop()
