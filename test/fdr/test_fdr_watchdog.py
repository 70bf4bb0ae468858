"""Stuck-writer watchdog, driven by a manual monotonic clock."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from gps_denied_onboard.clock import ManualClock, MonotonicClock
from gps_denied_onboard.fdr.config import FdrConfig
from gps_denied_onboard.fdr.segment import OsFile
from gps_denied_onboard.fdr.watchdog import (
    SEVERITY_CRITICAL,
    SEVERITY_NOTICE,
    StuckWriterWatchdog,
    WriterProgress,
    progress_from_status,
)
from gps_denied_onboard.fdr.writer import FlightRecorder
from gps_denied_onboard.record_schema import check_payload
from gps_denied_onboard.records import FlightRecord, MemorySink

S = 1_000_000_000


class _Writer:
    """The writer as the watchdog sees it: pending records and last progress time."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.pending = 0
        self.last = clock.now_ns()

    def progress(self) -> WriterProgress:
        return WriterProgress(self.pending, self.last)

    def moved(self) -> None:
        self.last = self.clock.now_ns()


class _Alerts:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str, str]] = []

    def publish(self, severity: int, source: str, text: str) -> None:
        self.sent.append((severity, source, text))


def _setup(clock: ManualClock) -> tuple[_Writer, _Alerts, MemorySink, StuckWriterWatchdog]:
    writer = _Writer(clock)
    alerts = _Alerts()
    sink = MemorySink()
    dog = StuckWriterWatchdog(writer.progress, clock, alerts, sink, stall_after_ns=2 * S)
    return writer, alerts, sink, dog


def test_idle_writer_with_nothing_pending_is_not_stalled() -> None:
    clock = ManualClock()
    _writer, alerts, sink, dog = _setup(clock)
    for _ in range(10):
        clock.advance_s(1.0)
        assert dog.check() is None
    assert alerts.sent == [] and sink.records == []


def test_stall_alerts_once_and_records_on_recovery(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(start_ns=100 * S)
    writer, alerts, sink, dog = _setup(clock)
    writer.pending = 50
    clock.advance_s(1.0)
    assert dog.check() is None  # 1 s behind: under the threshold
    with caplog.at_level(logging.WARNING, logger="gps_denied_onboard.fdr.watchdog"):
        for _ in range(8):  # stalled for 2..9 s: one alert, one ERROR line
            clock.advance_s(1.0)
            stall = dog.check()
            assert stall is not None and stall.since_ns == 100 * S
        assert [a[0] for a in alerts.sent] == [SEVERITY_CRITICAL]
        assert alerts.sent[0][1] == "fdr_recorder"
        assert "stalled" in alerts.sent[0][2]
        assert sink.records == []  # nothing written while the writer is stuck
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "fdr.writer_stalled" in errors[0].getMessage()

        clock.advance_s(0.5)
        writer.moved()
        assert dog.check() is None
    assert [a[0] for a in alerts.sent] == [SEVERITY_CRITICAL, SEVERITY_NOTICE]
    (record,) = sink.of_kind("writer_stalled")
    assert check_payload("writer_stalled", record.payload) == frozenset()
    assert record.payload["stalled_for_ns"] == int(9.5 * S)
    assert record.payload["last_progress_ns"] == 100 * S
    assert dog.stalls_total == 1


def test_second_stall_raises_a_second_alert() -> None:
    clock = ManualClock()
    writer, alerts, sink, dog = _setup(clock)
    writer.pending = 1
    clock.advance_s(3.0)
    dog.check()
    writer.moved()
    dog.check()
    clock.advance_s(5.0)
    dog.check()
    dog.check()
    writer.moved()
    dog.check()
    assert [a[0] for a in alerts.sent] == [SEVERITY_CRITICAL, SEVERITY_NOTICE] * 2
    assert len(sink.of_kind("writer_stalled")) == 2
    assert dog.stalls_total == 2


def test_pending_drained_without_progress_stamp_clears_the_stall() -> None:
    clock = ManualClock()
    writer, _alerts, sink, dog = _setup(clock)
    writer.pending = 5
    clock.advance_s(4.0)
    assert dog.check() is not None
    writer.pending = 0  # e.g. the flight was closed and the rings discarded
    assert dog.check() is None
    assert sink.of_kind("writer_stalled")[0].payload["stalled_for_ns"] == 4 * S


def test_writer_not_started_is_not_a_stall() -> None:
    clock = ManualClock()
    alerts = _Alerts()
    dog = StuckWriterWatchdog(
        lambda: WriterProgress(10, None), clock, alerts, MemorySink(), stall_after_ns=S
    )
    clock.advance_s(10.0)
    assert dog.check() is None and alerts.sent == []


def test_record_is_stamped_with_the_record_clock() -> None:
    mono = ManualClock()
    ros = ManualClock(start_ns=1_778_544_000 * S)
    writer = _Writer(mono)
    sink = MemorySink()
    dog = StuckWriterWatchdog(
        writer.progress, mono, _Alerts(), sink, stall_after_ns=S, record_clock=ros
    )
    writer.pending = 1
    mono.advance_s(2.0)
    dog.check()
    writer.moved()
    dog.check()
    assert sink.records[0].stamp_ns == ros.now_ns()


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        StuckWriterWatchdog(
            lambda: WriterProgress(0, 0), ManualClock(), _Alerts(), MemorySink(), stall_after_ns=0
        )


def test_watchdog_sees_a_real_recorder_whose_write_blocks(tmp_path: Path) -> None:
    """A FlightRecorder whose segment write blocks (the true edge: the write syscall)."""
    release = threading.Event()
    blocking = threading.Event()

    class BlockingFile(OsFile):
        def write(self, data: memoryview) -> int:
            if armed.is_set() and not release.is_set():
                blocking.set()
                release.wait(10)
            return super().write(data)

    armed = threading.Event()
    mono = MonotonicClock()
    config = FdrConfig(flight_root=tmp_path, free_space_floor_bytes=0)
    rec = FlightRecorder(config, ManualClock(S), mono, file_opener=BlockingFile)
    alerts = _Alerts()
    sink = MemorySink()
    dog = StuckWriterWatchdog(
        lambda: progress_from_status(rec.status()), mono, alerts, sink, stall_after_ns=S // 2
    )
    rec.start()
    try:
        rec.open_flight("WD1")
        client = rec.register_client("fc_bridge")
        assert dog.check() is None
        armed.set()
        for i in range(50):
            client.emit(FlightRecord("fc.armed", "fc_bridge", S + i))
        assert blocking.wait(5)
        for _ in range(10):  # records stay pending behind the blocked write
            client.emit(FlightRecord("fc.armed", "fc_bridge", 2 * S))
        deadline = time.monotonic() + 5
        while dog.check() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert dog.stalled is not None
        assert [a[0] for a in alerts.sent] == [SEVERITY_CRITICAL]
        release.set()
        deadline = time.monotonic() + 5
        while dog.check() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert dog.stalled is None
        assert [a[0] for a in alerts.sent] == [SEVERITY_CRITICAL, SEVERITY_NOTICE]
        (record,) = sink.of_kind("writer_stalled")
        assert record.payload["stalled_for_ns"] >= S // 2
    finally:
        release.set()
        rec.stop()


class _LaggingWriter(_Writer):
    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.lag = 0
        self.shed = 0

    def progress(self) -> WriterProgress:
        return WriterProgress(self.pending, self.clock.now_ns(), self.lag, self.shed)


def test_lag_over_the_bound_raises_one_alert_per_episode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from gps_denied_onboard.fdr.watchdog import SEVERITY_WARNING

    clock = ManualClock(start_ns=100 * S)
    writer = _LaggingWriter(clock)
    alerts = _Alerts()
    dog = StuckWriterWatchdog(writer.progress, clock, alerts, MemorySink(),
                              lag_bound_ns=S, lag_quiet_ns=10 * S)
    writer.pending = 10
    writer.lag = S // 2
    clock.advance_s(0.5)
    dog.check()
    assert alerts.sent == [] and not dog.lagging  # within the bound
    with caplog.at_level(logging.WARNING, logger="gps_denied_onboard.fdr.watchdog"):
        for step in range(20):  # the writer sheds for 10 s: lag stays bounded, shed grows
            writer.shed += 1000
            writer.lag = S if step % 2 else S // 3
            clock.advance_s(0.5)
            dog.check()
        assert dog.lagging
        assert [(a[0], a[1]) for a in alerts.sent] == [(SEVERITY_WARNING, "fdr_recorder")]
        assert "shedding" in alerts.sent[0][2]
        for _ in range(19):  # 9.5 s quiet: still the same episode
            clock.advance_s(0.5)
            dog.check()
        assert dog.lagging
        clock.advance_s(0.5)
        dog.check()
        assert not dog.lagging
        writer.lag = 2 * S  # a second episode: a second alert
        clock.advance_s(0.5)
        dog.check()
    assert len(alerts.sent) == 2 and dog.lag_alerts_total == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all("fdr.writer_lagging" in e for e in errors)
    assert any("fdr.writer_lag_recovered" in r.getMessage() for r in caplog.records)


def test_progress_from_status_carries_the_writer_lag(tmp_path: Path) -> None:
    cfg = FdrConfig(flight_root=tmp_path, free_space_floor_bytes=0)
    rec = FlightRecorder(cfg, ManualClock(), MonotonicClock())
    rec.start()
    try:
        rec.open_flight("F")
        st = rec.status()
        progress = progress_from_status(st)
        assert st.lag_bound_ns == cfg.lag_bound_ns == 1 * S
        assert progress.lag_ns == st.lag_ns and progress.shed_lag == st.records_shed_lag == 0
    finally:
        rec.stop()
