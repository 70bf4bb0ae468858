"""Preflight against the simulated FC: wrong values by name, missing vs unanswered."""

from __future__ import annotations

from gps_denied_onboard.clock import MonotonicClock
from gps_denied_onboard.fc_bridge.link import Autopilot
from gps_denied_onboard.fc_bridge.preflight import (
    MISSING,
    UNANSWERED,
    WRONG,
    requirements_for,
    run_preflight,
)
from gps_denied_onboard.fc_bridge.sim_fc import ARDUPILOT_DEFAULT_PARAMS, PX4_DEFAULT_PARAMS
from gps_denied_onboard.record_schema import check_payload

from .link_support import linked


def _by_name(report: object) -> dict[str, object]:
    return {p.name: p for p in report.problems}  # type: ignore[attr-defined]


def test_correct_ardupilot_gps_input_setup_passes() -> None:
    with linked("ardupilot") as (_fc, link, sink):
        link.wait_for_autopilot(3.0)
        report = run_preflight(link, "gps_input", MonotonicClock(), sink, timeout_s=3.0)
        assert report.ok, report.lines()
        assert report.values["GPS1_TYPE"] == 14.0
        rec = sink.of_kind("fc.preflight")[-1]
        assert rec.payload["ok"] is True
        assert check_payload(rec.kind, rec.payload) == frozenset(), rec


def test_misconfigured_ardupilot_reports_each_wrong_parameter_and_a_missing_one() -> None:
    params = dict(ARDUPILOT_DEFAULT_PARAMS)
    params.update(GPS1_TYPE=1.0, EK3_SRC1_POSXY=6.0)
    del params["EK3_SRC1_YAW"]
    with linked("ardupilot", fc_kwargs={"params": params}) as (_fc, link, sink):
        link.wait_for_autopilot(3.0)
        report = run_preflight(link, "gps_input", MonotonicClock(), sink, timeout_s=4.0)
        problems = _by_name(report)
        assert set(problems) == {"GPS1_TYPE", "EK3_SRC1_POSXY", "EK3_SRC1_YAW"}
        assert (
            problems["GPS1_TYPE"].kind,
            problems["GPS1_TYPE"].expected,
            problems["GPS1_TYPE"].actual,
        ) == (WRONG, "14", 1.0)
        assert problems["EK3_SRC1_POSXY"].expected == "3"
        assert problems["EK3_SRC1_YAW"].kind == MISSING
        assert "does not exist on this firmware" in problems["EK3_SRC1_YAW"].line()
        rec = sink.of_kind("fc.preflight")[-1]
        assert rec.payload["ok"] is False and len(rec.payload["problems"]) == 3


def test_older_ardupilot_with_gps_type_instead_of_gps1_type_is_checked_by_that_name() -> None:
    params = dict(ARDUPILOT_DEFAULT_PARAMS)
    del params["GPS1_TYPE"]
    params["GPS_TYPE"] = 1.0
    with linked("ardupilot", fc_kwargs={"params": params}) as (_fc, link, sink):
        link.wait_for_autopilot(3.0)
        report = run_preflight(link, "gps_input", MonotonicClock(), sink, timeout_s=4.0)
        problems = _by_name(report)
        assert list(problems) == ["GPS_TYPE"]
        assert problems["GPS_TYPE"].kind == WRONG and problems["GPS_TYPE"].expected == "14"


def test_misconfigured_px4_vision_reports_bits_and_missing_parameter() -> None:
    params = dict(PX4_DEFAULT_PARAMS)
    params["EKF2_EV_CTRL"] = 4.0  # velocity only, no horizontal position
    del params["EKF2_HGT_REF"]  # as on firmware older than the parameter
    with linked("px4", fc_kwargs={"params": params}) as (_fc, link, sink):
        link.wait_for_autopilot(3.0)
        report = run_preflight(link, "odometry", MonotonicClock(), sink, timeout_s=4.0)
        problems = _by_name(report)
        assert problems["EKF2_EV_CTRL"].kind == WRONG
        assert problems["EKF2_EV_CTRL"].expected == "bits 0x1 set"
        assert problems["EKF2_HGT_REF"].kind == MISSING
        assert report.autopilot is Autopilot.PX4


def test_param_error_from_newer_firmware_settles_a_missing_parameter_without_the_list() -> None:
    params = dict(PX4_DEFAULT_PARAMS)
    del params["EKF2_HGT_REF"]
    with linked("px4", fc_kwargs={"params": params, "param_error": True}) as (fc, link, sink):
        link.wait_for_autopilot(3.0)
        report = run_preflight(link, "odometry", MonotonicClock(), sink, timeout_s=4.0)
        assert _by_name(report)["EKF2_HGT_REF"].kind == MISSING
        assert not fc.received("PARAM_REQUEST_LIST")


def test_an_fc_that_does_not_answer_is_reported_as_unanswered_not_missing() -> None:
    with linked("ardupilot") as (fc, link, sink):
        link.wait_for_autopilot(3.0)
        fc.ignore_param_requests()
        report = run_preflight(link, "gps_input", MonotonicClock(), sink, timeout_s=1.5)
        kinds = {p.kind for p in report.problems}
        assert kinds == {UNANSWERED}
        assert len(report.problems) == len(requirements_for(Autopilot.ARDUPILOT, "gps_input"))
        # the requests really went out, by name
        names = {r.msg.param_id for r in fc.received("PARAM_REQUEST_READ")}
        assert {"GPS1_TYPE", "GPS_TYPE", "EK3_SRC1_POSXY"} <= names
