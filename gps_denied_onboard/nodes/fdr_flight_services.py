"""The recorder node's ``~/open_flight`` and ``~/close_flight`` services, answered.

Split out of :mod:`gps_denied_onboard.nodes.fdr_recorder_node` (the adapter): a
request becomes a :class:`~gps_denied_onboard.fdr.writer.FlightRecorder` call, and
its result or its :class:`~gps_denied_onboard.fdr.errors.FdrError` (type and text,
logged) fills the ``OpenFlight`` / ``CloseFlight`` response. With no recorder to
ask (``None``: the node not active, or no recorder running) the answer is
``NotActive``. On ``use_sim_time`` before the first ``/clock`` the recorder node
answers :data:`CLOCK_NOT_READY` (``answer_open_flight(clock_ready=False)``) and opens
nothing, which take-off asks again.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from gps_denied_onboard.fdr.errors import FdrError
from gps_denied_onboard.fdr.writer import FlightRecorder
from gps_denied_onboard.log import log_event

__all__ = ["CLOCK_NOT_READY", "answer_close_flight", "answer_open_flight"]

#: ``OpenFlight.error_type`` while sim time has not started: nothing was opened,
#: the same request may be sent again
CLOCK_NOT_READY: Final = "ClockNotReady"


def _failed(res: Any, err: FdrError, event: str, flight_id: str, log: logging.Logger) -> None:
    res.success, res.error_type, res.error = False, type(err).__name__, str(err)
    log_event(
        log, logging.ERROR, event, flight_id=flight_id, error_type=res.error_type, error=str(err)
    )


def answer_open_flight(
    rec: FlightRecorder | None,
    req: Any,
    res: Any,
    log: logging.Logger,
    *,
    clock_ready: bool = True,
) -> bool:
    """Fill an ``OpenFlight`` response; True when the flight was opened.

    ``clock_ready`` False (on ``use_sim_time`` before the first ``/clock``) answers
    :data:`CLOCK_NOT_READY` and opens nothing: the header would say the flight
    started at 0 (a replay's header then differed from run to run).
    """
    if rec is not None and not clock_ready:
        res.success, res.error_type = False, CLOCK_NOT_READY
        res.error = "no /clock yet (use_sim_time): the flight would start at time 0"
        return False
    if rec is None:
        res.success, res.error_type = False, "NotActive"
        res.error = "fdr_recorder is not active"
        return False
    try:
        header = rec.open_flight(req.flight_id)
    except FdrError as err:
        _failed(res, err, "fdr.open_flight_failed", req.flight_id, log)
        return False
    res.success = True
    res.flight_dir = str(header.flight_dir)
    return True


def answer_close_flight(
    rec: FlightRecorder | None, req: Any, res: Any, log: logging.Logger
) -> bool:
    """Fill a ``CloseFlight`` response from the flight's footer; True when it was closed."""
    if rec is None:
        res.success, res.error_type = False, "NotActive"
        res.error = "fdr_recorder has no running recorder"
        return False
    try:
        footer = rec.close_flight(req.flight_id)
    except FdrError as err:
        _failed(res, err, "fdr.close_flight_failed", req.flight_id, log)
        return False
    res.success = True
    res.records_written = footer.records_written
    res.records_dropped_overrun = footer.records_dropped_overrun
    res.bytes_written = footer.bytes_written
    res.rollover_count = footer.rollover_count
    return True
