"""A link's epoch passes its records and log lines through until retired, none after."""

from __future__ import annotations

import logging

import pytest

from gps_denied_onboard.fc_bridge.link_epoch import LinkEpoch
from gps_denied_onboard.log import log_event
from gps_denied_onboard.records import FlightRecord, MemorySink


def _record(kind: str) -> FlightRecord:
    return FlightRecord(kind, "fc_bridge", 1, {"reason": "test"})


def test_records_pass_until_the_epoch_is_retired_and_none_after() -> None:
    target = MemorySink()
    epoch = LinkEpoch()
    sink = epoch.sink(target)
    sink.emit(_record("fc.link_up"))
    epoch.retire()
    sink.emit(_record("fc.link_down"))
    assert [r.kind for r in target.records] == ["fc.link_up"]
    assert not epoch.live


def test_lines_reach_the_target_logger_as_its_own_until_retired(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Same name, level and handlers as the target's; DEBUG stays off where it is off."""
    target = logging.getLogger("gps_denied_onboard.test_link_epoch")
    target.setLevel(logging.INFO)
    caplog.set_level(logging.INFO, logger=target.name)
    epoch = LinkEpoch()
    log = epoch.logger(target)
    assert log.name == target.name
    log_event(log, logging.WARNING, "fc.link_down", reason="heartbeat_timeout")
    log_event(log, logging.DEBUG, "fc.debug_only")
    epoch.retire()
    log_event(log, logging.ERROR, "fc.mode_change", mode="LOITER")
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        (target.name, "WARNING", "fc.link_down reason=heartbeat_timeout")
    ]
