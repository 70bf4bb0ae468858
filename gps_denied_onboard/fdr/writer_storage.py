"""The writer thread's storage layer: pushes, rotation, the cap, faults and recovery.

:class:`StorageWriter` hands the open chunk to the OS, rotates segments by
size and applies the capacity cap after each rotation, fdatasyncs at least
once a second, watches the free-space floor, and on a storage fault abandons
the segment (a torn segment is never appended again), degrades (every record
counted lost per producer, one GCS alert) and resumes into a fresh segment
when it can.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from typing import Any

from gps_denied_onboard.fdr.client import FdrClient
from gps_denied_onboard.fdr.flight import Flight
from gps_denied_onboard.fdr.mcap_segment import McapSegment
from gps_denied_onboard.fdr.segment import StorageError
from gps_denied_onboard.fdr.writer_records import (
    NS_PER_S,
    SEVERITY_CRITICAL,
    SEVERITY_ERROR,
    RecordWriter,
)
from gps_denied_onboard.log import log_event


class FreeSpaceFloorError(OSError):
    """Free space on the flight root fell below ``free_space_floor_bytes``."""

    def __init__(self) -> None:
        super().__init__(errno.ENOSPC, "free space below the configured floor")


class StorageWriter(RecordWriter):
    """The storage layer over :class:`~gps_denied_onboard.fdr.writer_records.RecordWriter`."""

    def _push(self) -> None:
        flight = self._flight
        seg = flight.seg if flight is not None else None
        if seg is None:
            return
        seg.push()

    def _push_or_degrade(self, flight: Flight) -> None:
        try:
            self._push()
        except OSError as err:
            self._degrade(flight, err)

    def _rotate(self, flight: Flight) -> None:
        self._push()
        flight.finish_segment()
        if not self._space_ok():
            raise FreeSpaceFloorError()
        flight.open_segment(self._open_file)
        flight.write_metadata()
        self._apply_cap(flight)

    def _apply_cap(self, flight: Flight) -> None:
        drops, still_over, total = flight.apply_cap(self._cap)
        for drop in drops:
            self._write_own("segment_rollover", {
                "dropped_segment": drop.name, "dropped_bytes": drop.size_bytes,
                "total_bytes": drop.total_bytes, "cap_bytes": self._cap.cap_bytes,
                "segment_index": drop.index})
            log_event(self._log, logging.WARNING, "fdr.segment_rollover",
                      dropped_segment=drop.name, dropped_bytes=drop.size_bytes,
                      total_bytes=drop.total_bytes, cap_bytes=self._cap.cap_bytes)
        if drops:
            flight.write_metadata()
        if still_over:
            self._cap_misconfigured(flight, f"flight is {total} bytes, over its cap of "
                                    f"{self._cap.cap_bytes}, and no closed segment but "
                                    "segment 0 is left to drop")

    def _cap_misconfigured(self, flight: Flight, reason: str) -> None:
        self._write_own("cap_misconfigured", {"cap_bytes": self._cap.cap_bytes,
                                              "reason": reason})
        log_event(self._log, logging.ERROR, "fdr.cap_misconfigured",
                  cap_bytes=self._cap.cap_bytes, reason=reason)
        if not flight.cap_alerted:
            flight.cap_alerted = True
            self._alert(SEVERITY_ERROR, "FDR flight cap misconfigured")

    def _check_space(self) -> int | None:
        try:
            st = os.statvfs(self.config.flight_root)
        except OSError:
            return None
        self._free_bytes = st.f_bavail * st.f_frsize
        return self._free_bytes

    def _space_ok(self) -> bool:
        free = self._check_space()
        return free is None or free >= self.config.free_space_floor_bytes

    def _degrade(self, flight: Flight, err: OSError) -> None:
        """Abandon the open segment, account what did not land, alert once, keep going."""
        seg, entry = flight.seg, flight.entry
        reason = "free_space_floor" if isinstance(err, FreeSpaceFloorError) else "storage_error"
        landed = err.landed if isinstance(err, StorageError) else None
        if seg is not None and entry is not None:
            self._undo_pending(seg, seg.file.landed if landed is None else landed)
            seg.abandon()
            entry.torn = True
            self._torn_all.append(entry.name)
            flight.retire(seg, entry)
        now_m = self._mono.now_ns()
        code = errno.errorcode.get(err.errno or 0, str(err.errno))
        self._storage_log("fdr.storage_error", err, reason=reason)
        if not self._degraded:
            self._degraded = True
            self._degraded_since = now_m
            self._last_retry = now_m
            self._degraded_reason = f"{reason}:{code}"
            self._own_backlog.append(("fdr_degraded", {
                "reason": reason, "errno": code,
                "segment": entry.name if entry is not None else "",
                "free_bytes": self._check_space() or 0}, self._clock.now_ns()))
            self._alert(SEVERITY_CRITICAL, f"FDR degraded: {code}, not recording")
        with contextlib.suppress(OSError):
            flight.write_metadata()

    def _undo_pending(self, seg: McapSegment, landed: int) -> None:
        """Items whose chunk did not reach the OS whole are lost: move them to pending losses."""
        flight = self._flight
        end = seg.entries_end
        if end is not None and end <= landed:
            seg.entries.clear()
            return
        for _off, _ch, stamp, client, seq, gap, extra in seg.entries:
            client.written -= 1
            seg.fdr_records -= 1 if not isinstance(extra, tuple) else 0
            if isinstance(extra, tuple):
                self._count_raw(seg, extra, stamp, -1)
            if gap is not None and isinstance(extra, FdrClient):
                extra.dropped -= gap.count
                if flight is not None:
                    flight.dropped_overrun -= gap.count
                self._lose_gap(extra, gap)
            self._lose(client, seq, stamp)
        seg.entries.clear()

    def _storage_log(self, kind: str, err: OSError, **fields: Any) -> None:
        self._errlog.log(self._mono.now_ns(), logging.ERROR, kind,
                         errno=errno.errorcode.get(err.errno or 0, str(err.errno)),
                         error=str(err), **fields)

    def _alert(self, severity: int, text: str) -> None:
        self._alerts += 1
        self._write_own("gcs_alert", {"severity": severity, "text": text, "source": "fdr"})
        if self._alert_sink is not None:
            try:
                self._alert_sink(severity, text)
            except Exception as err:
                log_event(self._log, logging.ERROR, "fdr.alert_sink_failed", error=repr(err))

    def _try_resume(self, flight: Flight, *, force: bool = False) -> None:
        now_m = self._mono.now_ns()
        if not force and now_m - self._last_retry < self.config.degraded_retry_period_ns:
            return
        self._last_retry = now_m
        if not self._space_ok():
            return
        try:
            flight.open_segment(self._open_file)
            flight.write_metadata()
        except OSError as err:
            seg = flight.seg
            if seg is not None:
                seg.abandon()
                flight.seg = None
                flight.entry = None
            if flight.segments and flight.segments[-1].torn and flight.segments[-1].size_bytes == 0:
                dead = flight.segments.pop()
                flight.next_index -= 1
                with contextlib.suppress(OSError):
                    (flight.dir / dead.name).unlink()
            self._storage_log("fdr.resume_failed", err)
            return
        degraded_for = now_m - self._degraded_since
        self._degraded = False
        self._degraded_reason = None
        backlog, self._own_backlog = self._own_backlog, []
        for kind, payload, stamp in backlog:
            self._write_own(kind, payload, stamp)
        lost = 0
        for client in (*self._clients, self._own):
            gap, client.pending_loss = client.pending_loss, None
            if gap is not None:
                lost += gap.count
                self._write_gap(client, gap)
        assert flight.seg is not None
        self._write_own("fdr_resumed", {"segment": flight.seg.path.name,
                                        "degraded_for_ns": degraded_for, "records_lost": lost})
        log_event(self._log, logging.WARNING, "fdr.resumed", segment=flight.seg.path.name,
                  degraded_for_ns=degraded_for, records_lost=lost)
        try:
            self._push()
        except OSError as err:
            self._degrade(flight, err)

    def _tick(self) -> None:
        flight = self._flight
        if flight is None:
            return
        now_m = self._mono.now_ns()
        if self._degraded:
            self._try_resume(flight)
            return
        if now_m - self._last_tick < self._tick_period_ns:
            return
        self._last_tick = now_m
        try:
            self._account_gaps(flight, final=False)
            self._push()
            seg = flight.seg
            if seg is None:
                return
            if now_m - self._last_sync >= self.config.fsync_period_ns:
                seg.file.sync()
                self._last_sync = now_m
                self._update_rate(flight, now_m)
                if not self._space_ok():
                    flight.finish_segment()
                    raise FreeSpaceFloorError()
        except OSError as err:
            self._degrade(flight, err)

    def _update_rate(self, flight: Flight, now_m: int) -> None:
        records = flight.records_written
        nbytes = flight.bytes_written
        base = self._rate_base
        if base is not None and now_m > base[0]:
            dt = (now_m - base[0]) / NS_PER_S
            self._rate = ((records - base[1]) / dt, (nbytes - base[2]) / dt)
        self._rate_base = (now_m, records, nbytes)
