"""What reaches the autopilot is what its EKF can use: velocity, gaps, lag (decoded wire bytes).

The link, the fix scheduler and its sender thread against the simulated FC over UDP;
the assertions are on the GPS_INPUT messages the simulated FC decoded and on their
arrival times there.
"""

from __future__ import annotations

import itertools
import random
import time

import pytest

from gps_denied_onboard.clock import MonotonicClock
from gps_denied_onboard.fc_bridge.fix import PositionFix
from gps_denied_onboard.fc_bridge.fix_output import GpsInputSettings, encode_gps_input
from gps_denied_onboard.fc_bridge.link import Autopilot, mavlink2
from gps_denied_onboard.fc_bridge.preflight import (
    WRONG,
    delay_advice,
    requirements_for,
    run_preflight,
)
from gps_denied_onboard.fc_bridge.scheduler import (
    GPS_INPUT_MAX_GAP_MS,
    FixOutputConfig,
    FixScheduler,
    FixSenderThread,
)
from gps_denied_onboard.fc_bridge.sim_fc import ARDUPILOT_DEFAULT_PARAMS

from .link_support import linked, wait_until

COV = (4.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 9.0)
VEL_COV = (0.04, 0.0, 0.0, 0.0, 0.04, 0.0, 0.0, 0.0, 0.09)
IGN_VEL = mavlink2.GPS_INPUT_IGNORE_FLAG_VEL_HORIZ | mavlink2.GPS_INPUT_IGNORE_FLAG_VEL_VERT
#: EKF3 drops a GPS sample that arrives within this of the previous one
ARDUPILOT_GPS_FLOOR_MS = 50.0


def _fix(capture_ns: int, *, velocity: bool = True) -> PositionFix:
    return PositionFix(
        capture_ns,
        47.3977419,
        8.5455938,
        488.0,
        velocity_enu=(1.0, 2.0, 0.0) if velocity else None,
        position_cov_enu=COV,
        velocity_cov_enu=VEL_COV if velocity else None,
    )


def _wire(msg: object) -> object:
    buf = msg.pack(mavlink2.MAVLink(None, 1, 191))  # type: ignore[attr-defined]
    decoded = mavlink2.MAVLink(None).parse_buffer(buf)
    assert decoded is not None and len(decoded) == 1
    return decoded[0]


# --- velocity ------------------------------------------------------------------------


def test_a_fix_without_velocity_is_never_a_3d_fix_while_the_ekf_fuses_gps_velocity() -> None:
    m = _wire(encode_gps_input(_fix(10**18, velocity=False), GpsInputSettings(velocity=True)))
    assert m.fix_type == mavlink2.GPS_FIX_TYPE_2D_FIX  # EKF3 uses GPS only at 3D
    assert m.ignore_flags & IGN_VEL == IGN_VEL
    with_vel = _wire(encode_gps_input(_fix(10**18), GpsInputSettings(velocity=True)))
    assert with_vel.fix_type == mavlink2.GPS_FIX_TYPE_3D_FIX
    assert with_vel.ignore_flags & IGN_VEL == 0 and with_vel.ve == pytest.approx(1.0)


def test_without_velocity_output_no_fix_carries_velocity_and_3d_stays_3d() -> None:
    off = GpsInputSettings(velocity=False)
    for fix in (_fix(10**18), _fix(10**18, velocity=False)):
        m = _wire(encode_gps_input(fix, off))
        assert m.fix_type == mavlink2.GPS_FIX_TYPE_3D_FIX
        assert m.ignore_flags & IGN_VEL == IGN_VEL
        assert (m.vn, m.ve, m.vd) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(("velocity", "expected"), [(True, "3"), (False, "0")])
def test_preflight_demands_the_velocity_source_that_matches_what_is_sent(
    velocity: bool, expected: str
) -> None:
    # the FC is set up for GPS velocity (EK3_SRC1_VELXY=3)
    with linked("ardupilot") as (_fc, link, sink):
        link.wait_for_autopilot(3.0)
        report = run_preflight(
            link, "gps_input", MonotonicClock(), sink, timeout_s=3.0, velocity=velocity
        )
        problems = {p.name: p for p in report.problems}
        if velocity:
            assert "EK3_SRC1_VELXY" not in problems, report.lines()
        else:
            p = problems["EK3_SRC1_VELXY"]
            assert (p.kind, p.expected, p.actual) == (WRONG, expected, 3.0)
            assert "EK3_SRC1_VELXY=3, expected 0" in report.lines()[0]
    reqs = {
        r.names: r for r in requirements_for(Autopilot.ARDUPILOT, "gps_input", velocity=velocity)
    }
    assert reqs[("EK3_SRC1_VELXY",)].expected() == expected


# --- lag -------------------------------------------------------------------------------


def test_delay_advice_names_the_value_to_set_when_far_off() -> None:
    ap = Autopilot.ARDUPILOT
    # 0 means the MAV GPS driver's 200 ms: fixes 84 ms old are far off
    line = delay_advice(ap, "gps_input", {"GPS1_DELAY_MS": 0.0}, 84.0)
    assert line == (
        "GPS1_DELAY_MS=0 (0 = 200 ms) but fixes reach the FC 84 ms after capture: "
        "set GPS1_DELAY_MS=80"
    )
    assert delay_advice(ap, "gps_input", {"GPS1_DELAY_MS": 90.0}, 84.0) is None
    # older firmware: GPS_DELAY_MS
    older = delay_advice(ap, "gps_input", {"GPS_DELAY_MS": 10.0}, 150.0)
    assert older is not None and older.endswith("set GPS_DELAY_MS=150")
    # PX4: EKF2_GPS_DELAY (0 is 0), capped at the parameter's maximum
    px4 = delay_advice(Autopilot.PX4, "gps_input", {"EKF2_GPS_DELAY": 110.0}, 420.0)
    assert px4 is not None and px4.endswith("set EKF2_GPS_DELAY=300")
    # vision outputs carry their capture time: no delay to set
    assert delay_advice(ap, "odometry", {"GPS1_DELAY_MS": 0.0}, 84.0) is None


def test_delay_advice_for_3d_fixes_on_ardupilot_is_the_least_age() -> None:
    """ArduPilot times a 3D GPS_INPUT by the GPS time it carries, plus the least
    transport delay its jitter correction has seen: the delay to set is the least
    capture-to-send age; a 2D fix is timed by arrival (the median)."""
    ap = Autopilot.ARDUPILOT
    values = {"GPS1_DELAY_MS": 250.0}  # set to the median: 150 ms too much for 3D fixes
    line = delay_advice(ap, "gps_input", values, 253.0, least_ms=102.0, three_d=True)
    assert line == (
        "GPS1_DELAY_MS=250 but fixes reach the FC at the least 102 ms after capture: "
        "set GPS1_DELAY_MS=100"
    )
    assert delay_advice(ap, "gps_input", values, 253.0, least_ms=102.0, three_d=False) is None
    assert (
        delay_advice(ap, "gps_input", {"GPS1_DELAY_MS": 100.0}, 253.0, least_ms=102.0, three_d=True)
        is None
    )
    # PX4 (timed by arrival) keeps the median whatever the fix type
    px4 = delay_advice(
        Autopilot.PX4, "gps_input", {"EKF2_GPS_DELAY": 100.0}, 253.0, least_ms=102.0, three_d=True
    )
    assert px4 is not None and px4.endswith("set EKF2_GPS_DELAY=250")


def test_preflight_reads_the_gps_delay_without_making_it_a_problem() -> None:
    with linked("ardupilot") as (_fc, link, sink):
        link.wait_for_autopilot(3.0)
        report = run_preflight(link, "gps_input", MonotonicClock(), sink, timeout_s=3.0)
        assert report.ok, report.lines()
        assert report.values["GPS1_DELAY_MS"] == 0.0


# --- gaps, measured where the autopilot sees them -----------------------------------------


def _gaps_ms(fc: object) -> list[float]:
    times = [r.recv_ns for r in fc.received("GPS_INPUT")]  # type: ignore[attr-defined]
    return [(b - a) / 1e6 for a, b in itertools.pairwise(times)]


def test_every_gps_input_gap_at_the_fc_lies_between_the_floor_and_the_health_limit() -> None:
    # fixes arrive irregularly around 10 Hz (6..14 Hz), as a visual estimator's do;
    # before, a new fix sent on arrival could follow a repeat by 0.1 ms
    rng = random.Random(7)
    clock = MonotonicClock()
    with linked("ardupilot", telemetry_request=False, source_system=1) as (fc, link, _):
        link.wait_for_autopilot(3.0)
        sched = FixScheduler.from_config(
            FixOutputConfig(), autopilot="ardupilot", send=link.send, clock=clock
        )
        sender = FixSenderThread(sched)
        sender.start()
        try:
            deadline = time.monotonic() + 4.0
            while time.monotonic() < deadline:
                sched.submit(_fix(clock.now_ns()))
                time.sleep(rng.uniform(0.07, 0.16))
            stats = sched.stats()
        finally:
            sender.stop()
        assert wait_until(lambda: len(fc.received("GPS_INPUT")) >= stats.sent, 2.0)
    gaps = _gaps_ms(fc)
    assert len(gaps) >= 30
    assert stats.repeats > 0 and stats.new_fixes_sent > 20  # both kinds interleaved
    assert min(gaps) > ARDUPILOT_GPS_FLOOR_MS, sorted(gaps)[:5]
    assert max(gaps) < GPS_INPUT_MAX_GAP_MS, sorted(gaps)[-5:]
    # the sender's own view agrees: its floor is 60 ms
    assert stats.gap_min_ms >= 60.0


# --- relocalisation ------------------------------------------------------------------------


def test_preflight_checks_source_set_2_when_relocalisations_switch_sources() -> None:
    params = dict(ARDUPILOT_DEFAULT_PARAMS)
    params["EK3_SRC2_POSXY"] = 3.0  # set 2 with GPS position: a switch would not reset
    with linked("ardupilot", fc_kwargs={"params": params}) as (_fc, link, sink):
        link.wait_for_autopilot(3.0)
        clock = MonotonicClock()
        on = run_preflight(link, "gps_input", clock, sink, timeout_s=3.0, source_switch=True)
        assert [p.name for p in on.problems] == ["EK3_SRC2_POSXY"], on.lines()
        assert on.lines()[0].startswith("EK3_SRC2_POSXY=3, expected 0")
        off = run_preflight(link, "gps_input", clock, sink, timeout_s=3.0, source_switch=False)
        assert off.ok, off.lines()
