"""The flight recorder: producers' rings in, MCAP segments out.

:class:`FlightRecorder` owns one writer thread. Producers get an
:class:`~gps_denied_onboard.fdr.client.FdrClient` each (``register_client``);
their ``emit`` only appends to the client's ring. The writer thread drains
every ring in batches into the open segment of the open flight, rotates
segments by size, applies the capacity cap after each rotation, fdatasyncs at
least once a second, and accounts every record it did not write in an
``overrun`` record in the segment itself.

Storage faults (ENOSPC, EIO, the free-space floor) never reach producers: the
recorder abandons the segment it was writing (a torn segment is never
appended again), keeps draining the rings while counting what it loses,
raises one GCS alert, logs at most one ERROR a second, and resumes into a
fresh segment as soon as space returns. ``open_flight`` is the exception:
a flight that cannot even be created raises :class:`FdrOpenError`, which the
take-off sequence turns into an abort.

Everything on disk is described in ``fdr/FORMAT.md``. This module is the
recorder's API, its commands and the writer loop; the record layer (records,
gaps, losses into the open segment) is :mod:`~gps_denied_onboard.fdr.writer_records`,
the storage layer (pushes, rotation, cap, faults, resume)
:mod:`~gps_denied_onboard.fdr.writer_storage`; the flight's directory and segment files are
:mod:`~gps_denied_onboard.fdr.flight`, the MCAP encoding of a segment
:mod:`~gps_denied_onboard.fdr.mcap_segment`, a record's JSON body
:mod:`~gps_denied_onboard.fdr.record_body`.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, TypeVar

from gps_denied_onboard import __version__
from gps_denied_onboard.fdr.client import FdrClient, RawMessage
from gps_denied_onboard.fdr.errors import (
    FdrError,
    FdrOpenError,
    FlightAlreadyOpenError,
    FlightIdMismatchError,
    FlightNotOpenError,
)
from gps_denied_onboard.fdr.flight import Flight, FlightFooter, FlightHeader
from gps_denied_onboard.fdr.lag import LAG_REASON, take_stale
from gps_denied_onboard.fdr.policy import RecordKindPolicy
from gps_denied_onboard.fdr.segment import PUSH_THRESHOLD, StorageError
from gps_denied_onboard.fdr.status import ProducerStatus, RecorderStatus
from gps_denied_onboard.fdr.writer_records import (
    FDR_PRODUCER,
    NS_PER_S,
    RAW_PRODUCER,
    SEVERITY_CRITICAL,
    SEVERITY_ERROR,
    SEVERITY_WARNING,
    AlertSink,
    batch_of,
)
from gps_denied_onboard.fdr.writer_storage import FreeSpaceFloorError, StorageWriter
from gps_denied_onboard.log import log_event
from gps_denied_onboard.record_schema import FDR_RECORD_SCHEMA_VERSION
from gps_denied_onboard.rootlock import DirectoryLockedError, lock_directory

__all__ = [
    "FDR_PRODUCER",
    "RAW_PRODUCER",
    "SEVERITY_CRITICAL",
    "SEVERITY_ERROR",
    "SEVERITY_WARNING",
    "AlertSink",
    "FlightFooter",
    "FlightHeader",
    "FlightRecorder",
    "FreeSpaceFloorError",
    "ProducerStatus",
    "RecorderStatus",
]

T = TypeVar("T")

_FLIGHT_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


class FlightRecorder(StorageWriter):
    """File-backed flight data recorder (the spec's FileFdrWriter).

    Args:
        config: recorder parameters.
        clock: flight time; stamps the recorder's own records and MCAP publish_time.
        monotonic: host monotonic time; fdatasync cadence, retry timers, log rate caps.
        alert_sink: ``(severity, text)`` for GCS alerts (MAV_SEVERITY values).
        logger: where structured log lines go.
        file_opener: opens a new segment file (tests inject stalling/failing files).

    Construction does no I/O; :meth:`start` takes the flight-root lock.
    """


    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Take the flight-root lock and start the writer thread.

        Raises:
            FdrOpenError: another recorder holds the lock, or the root is unwritable.
        """
        if self._thread is not None:
            raise FdrError("recorder already started")
        root = self.config.flight_root
        try:
            self._root_lock = lock_directory(root, ".fdr.lock")
        except DirectoryLockedError as err:
            raise FdrOpenError(
                f"flight root {root} is locked by another flight recorder") from err
        except OSError as err:
            raise FdrOpenError(f"flight root {root} is not writable: {err}") from err
        self._stop_flag = False
        self._last_progress = self._mono.now_ns()
        self._thread = threading.Thread(target=self._run, name="fdr-writer", daemon=True)
        self._thread.start()
        log_event(self._log, logging.INFO, "fdr.started", flight_root=str(root))

    def stop(self, timeout_s: float | None = None) -> FlightFooter | None:
        """Close the open flight (if any), stop the writer thread, release the lock."""
        if self._thread is None:
            return None
        footer = None
        flight = self._flight
        if flight is not None:
            footer = self.close_flight(flight.flight_id)
        self._stop_flag = True
        self._wake.set()
        self._thread.join(timeout_s if timeout_s is not None else self.config.command_timeout_s)
        if self._thread.is_alive():
            log_event(self._log, logging.ERROR, "fdr.stop_timeout",
                      reason="writer thread did not stop; flight root lock kept")
            return footer
        self._thread = None
        if self._root_lock is not None:
            self._root_lock.release()
            self._root_lock = None
        log_event(self._log, logging.INFO, "fdr.stopped")
        return footer

    def open_flight(self, flight_id: str) -> FlightHeader:
        """Create the flight directory and segment 0, write the flight header.

        Raises:
            FlightAlreadyOpenError: a flight is open.
            FdrOpenError: bad flight id, directory exists, no space, or not writable.
        """
        if not _FLIGHT_ID.match(flight_id) or flight_id in (".", ".."):
            raise FdrOpenError(f"invalid flight id {flight_id!r}")
        return self._call(lambda: self._cmd_open(flight_id))

    def close_flight(self, flight_id: str) -> FlightFooter:
        """Drain every ring, account every gap, write the footer, close the segment.

        Raises:
            FlightNotOpenError: no flight is open.
            FlightIdMismatchError: ``flight_id`` is not the open flight.
        """
        return self._call(lambda: self._cmd_close(flight_id))

    def flush(self) -> None:
        """Block until everything emitted before the call is written, accounted and synced."""
        self._call(self._cmd_flush)

    # Alias for tests and the node: "wait until drained".
    wait_until_drained = flush

    # ------------------------------------------------------------------ producers
    def register_client(self, producer: str, capacity: int | None = None, *,
                        multi_producer: bool = False) -> FdrClient:
        """A new ring for ``producer`` (one producer thread unless ``multi_producer``)."""
        if producer == FDR_PRODUCER:
            raise ValueError(f"producer slug {FDR_PRODUCER!r} is the recorder's own")
        client = FdrClient(producer, capacity or self.config.ring_capacity, self.policy,
                           multi_producer=multi_producer, wake=self._wake,
                           wake_depth=self.config.wake_depth, monotonic=self._mono.now_ns)
        with self._clients_lock:
            self._clients = (*self._clients, client)
        return client

    def write_raw(self, topic: str, type_name: str, msgdef_text: str, cdr_bytes: bytes,
                  stamp_ns: int, *, qos_profiles: str = "") -> None:
        """Record one ROS message raw (CDR), as rosbag2 does; never blocks on the disk.

        Thread-safe (the raw client takes a lock). Raises
        :class:`RawFrameWriteForbiddenError` for image types.
        """
        RecordKindPolicy.enforce_raw_topic_or_raise(topic, type_name)
        client = self._raw_client
        if client is None:
            with self._clients_lock:
                client = self._raw_client
                if client is None:
                    client = FdrClient(RAW_PRODUCER, self.config.ring_capacity, self.policy,
                                       multi_producer=True, wake=self._wake,
                                       wake_depth=self.config.wake_depth_raw,
                                       monotonic=self._mono.now_ns)
                    self._clients = (*self._clients, client)
                    self._raw_client = client
        client._emit_raw(RawMessage(topic, type_name, msgdef_text, cdr_bytes, stamp_ns,
                                    qos=qos_profiles))

    @property
    def current_flight_dir(self) -> Path | None:
        flight = self._flight
        return flight.dir if flight is not None else None

    @property
    def current_flight_id(self) -> str | None:
        flight = self._flight
        return flight.flight_id if flight is not None else None

    # ------------------------------------------------------------------ status
    def status(self) -> RecorderStatus:
        flight = self._flight
        seg = flight.seg if flight is not None else None
        producers = tuple(
            ProducerStatus(c.producer, c.offered, c.written, c.dropped,
                           c.pending_loss.count if c.pending_loss else 0, c.depth,
                           c.high_water, c.capacity)
            for c in (*self._clients, self._own)
        )
        records = bytes_written = 0
        if flight is not None:
            records = flight.records_written
            bytes_written = flight.bytes_written
        return RecorderStatus(
            running=self._thread is not None and self._thread.is_alive(),
            flight_id=flight.flight_id if flight else None,
            flight_dir=flight.dir if flight else None,
            current_segment=seg.path.name if seg else None,
            segment_index=seg.index if seg else None,
            degraded=self._degraded,
            degraded_reason=self._degraded_reason,
            records_written=records,
            records_dropped=flight.dropped_overrun if flight else 0,
            bytes_written=bytes_written,
            write_rate_records_s=self._rate[0],
            write_rate_bytes_s=self._rate[1],
            free_bytes=self._free_bytes,
            last_progress_ns=self._last_progress,
            alerts_raised=self._alerts,
            torn_segments=tuple(self._torn_all),
            producers=producers,
            lag_ns=self.lag_ns(),
            lag_max_ns=self._lag_max,
            lag_bound_ns=self.config.lag_bound_ns,
            records_shed_lag=self._shed_lag,
        )

    def lag_ns(self) -> int:
        """Age of the oldest record in any ring (not yet handed to the OS); 0 if none."""
        oldest = None
        for client in self._clients:
            t = client.oldest_offered_ns()
            if t is not None and (oldest is None or t < oldest):
                oldest = t
        return 0 if oldest is None else max(0, self._mono.now_ns() - oldest)

    @property
    def records_shed_lag(self) -> int:
        """Records shed so far for waiting longer than ``lag_bound_ns``."""
        return self._shed_lag

    def take_lag_max_ns(self) -> int:
        """The largest lag met since the previous call (for the 1 Hz host_health record)."""
        value, self._lag_max_taken = self._lag_max_taken, 0
        return max(value, self.lag_ns())

    # ------------------------------------------------------------------ commands
    def _call(self, fn: Callable[[], T]) -> T:
        thread = self._thread
        if thread is None or not thread.is_alive():
            raise FdrError("flight recorder is not running (call start())")
        fut: Future[T] = Future()
        self._cmds.append((fn, fut))
        self._wake.set()
        try:
            return fut.result(timeout=self.config.command_timeout_s)
        except FutureTimeout as err:
            raise FdrOpenError("flight recorder writer thread did not answer in "
                               f"{self.config.command_timeout_s} s") from err

    def _run_commands(self) -> None:
        while self._cmds:
            fn, fut = self._cmds.popleft()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as err:
                fut.set_exception(err)

    def _cmd_open(self, flight_id: str) -> FlightHeader:
        if self._flight is not None:
            raise FlightAlreadyOpenError(
                f"flight {self._flight.flight_id!r} is open; close it before {flight_id!r}")
        flight_dir = self.config.flight_root / flight_id
        free = self._check_space()
        if free is not None and free < self.config.free_space_floor_bytes:
            raise FdrOpenError(f"flight root has {free} bytes free, below the floor of "
                               f"{self.config.free_space_floor_bytes}")
        try:
            flight_dir.mkdir()
            (flight_dir / "tiles").mkdir()
        except FileExistsError as err:
            raise FdrOpenError(f"flight directory {flight_dir} already exists") from err
        except OSError as err:
            raise FdrOpenError(f"cannot create flight directory {flight_dir}: {err}") from err
        header = FlightHeader(
            flight_id=flight_id, started_at_ns=self._clock.now_ns(),
            schema_version=FDR_RECORD_SCHEMA_VERSION,
            segment_size_bytes=self.config.segment_size_bytes,
            flight_cap_bytes=self.config.flight_cap_bytes, flight_dir=flight_dir,
            host=socket.gethostname(), software_version=__version__)
        flight = Flight(flight_id, flight_dir, header)
        self._flight = flight
        self._degraded = False
        self._degraded_reason = None
        try:
            flight.open_segment(self._open_file)
            self._write_own("flight_header", header.payload(), header.started_at_ns)
            self._push()
            assert flight.seg is not None
            flight.seg.file.sync()
            flight.write_metadata()
        except OSError as err:
            if flight.seg is not None:
                flight.seg.abandon()
            self._flight = None
            raise FdrOpenError(f"cannot write flight {flight_id!r}: {err}") from err
        # Losses a storage fault left unaccounted at the end of the previous flight.
        for client in (*self._clients, self._own):
            gap, client.pending_loss = client.pending_loss, None
            if gap is not None:
                self._write_gap(client, gap)
        # What producers offered before the flight opened waited on purpose: write it now.
        self._drain_all(flight, shed=False)
        self._last_sync = self._mono.now_ns()
        log_event(self._log, logging.INFO, "fdr.flight_open", flight_id=flight_id,
                  flight_dir=str(flight_dir))
        reason = self._cap.misconfigured_reason(self.config.segment_size_bytes)
        if reason is not None:
            self._cap_misconfigured(flight, reason)
        return header

    def _cmd_close(self, flight_id: str) -> FlightFooter:
        flight = self._flight
        if flight is None:
            raise FlightNotOpenError(f"close_flight({flight_id!r}) with no flight open")
        if flight.flight_id != flight_id:
            raise FlightIdMismatchError(flight.flight_id, flight_id)
        self._drain_all(flight)
        if self._degraded:
            self._try_resume(flight, force=True)
        self._account_gaps(flight, final=True)
        self._push_or_degrade(flight)
        seg = flight.seg
        records = flight.records_written
        footer = FlightFooter(
            flight_id=flight_id, closed_at_ns=self._clock.now_ns(), records_written=records,
            records_dropped_overrun=flight.dropped_overrun,
            bytes_written=flight.bytes_written,
            rollover_count=flight.rollover_count, segment_count=flight.next_index,
            torn_segments=tuple(s.name for s in flight.segments if s.torn),
            on_disk=seg is not None and not self._degraded)
        if seg is not None and not self._degraded:
            self._write_own("flight_footer", footer.payload(), footer.closed_at_ns)
            try:
                self._push()
                flight.finish_segment()
            except OSError as err:
                self._degrade(flight, err)
                footer = FlightFooter(**{**footer.__dict__, "on_disk": False})
        try:
            flight.write_metadata(closed=True)
        except OSError as err:
            self._storage_log("fdr.metadata_write_failed", err)
        self._flight = None
        self._degraded = False
        self._degraded_reason = None
        if self._own_backlog:
            log_event(self._log, logging.ERROR, "fdr.own_records_discarded",
                      flight_id=flight_id, count=len(self._own_backlog))
            self._own_backlog.clear()
        log_event(self._log, logging.INFO, "fdr.flight_closed", **footer.payload(),
                  on_disk=footer.on_disk)
        return footer

    def _cmd_flush(self) -> None:
        flight = self._flight
        if flight is None:
            return
        self._drain_all(flight)
        self._account_gaps(flight, final=False)
        self._push_or_degrade(flight)
        if flight.seg is not None and not self._degraded:
            try:
                flight.seg.file.sync()
                self._last_sync = self._mono.now_ns()
            except StorageError as err:
                self._degrade(flight, err)

    # ------------------------------------------------------------------ writer loop
    def _run(self) -> None:
        poll_s = self.config.poll_period_ns / NS_PER_S
        mono = self._mono.now_ns
        tick_period = self._tick_period_ns
        while True:
            try:
                if self._cmds:
                    self._run_commands()
                if self._stop_flag and not self._cmds:
                    break
                busy = False
                flight = self._flight
                if flight is not None:
                    busy = self._drain_pass(flight)
                    if self._degraded or mono() - self._last_tick >= tick_period:
                        self._tick()
            except Exception as err:  # a bug must not kill the recorder silently
                self._errlog.log(self._mono.now_ns(), logging.ERROR, "fdr.writer_error",
                                 error=repr(err))
                busy = False
            self._last_progress = self._mono.now_ns()
            if not busy:
                self._wake.wait(poll_s)

    def _drain_all(self, flight: Flight, *, shed: bool = True) -> None:
        for _ in range(1_000_000):
            if not self._drain_pass(flight, shed=shed):
                return

    def _drain_pass(self, flight: Flight, *, shed: bool = True) -> bool:
        """One batch from every ring. True when some ring still had a full batch.

        The lag bound (:mod:`~gps_denied_onboard.fdr.lag`): before a ring's batch,
        if its oldest record waited longer than ``lag_bound_ns``, every record that
        waited longer than half of it is shed (the other half is headroom for
        writing what is left), and while a ring is behind (oldest older than a
        quarter of the bound) its batch is ``wake_depth`` records, not
        ``batch_size``, so every ring is looked at again soon. ``shed`` is false
        for what producers offered before the flight opened (written at open).
        """
        if self._degraded or flight.seg is None:
            return self._drain_lost()
        batch = self.config.batch_size
        busy = False
        now: int | None = None  # the batch's MCAP publish_time, read once something is there
        mono = self._mono.now_ns
        bound = self.config.lag_bound_ns
        behind = bound >> 2
        try:
            for client in self._clients:
                ring = client._ring
                if not ring:
                    continue
                limit = batch
                lag = mono() - ring[0][3]
                if lag > self._lag_max_taken:
                    self._note_lag(lag)
                if lag > behind and shed:
                    limit = min(batch, self.config.wake_depth)
                    if lag > bound:
                        self._shed_stale(client, ring, ring[0][3] + lag - (bound >> 1))
                n, full = batch_of(ring, limit)
                if n == 0:
                    continue
                busy = busy or full
                if now is None:
                    now = self._clock.now_ns()
                self._write_items(flight, client, ring, n, now)
                if len(flight.seg.chunk) >= PUSH_THRESHOLD:
                    self._push()
            seg = flight.seg
            # An idle pass (rings empty, nothing pending) touches nothing more: it is
            # twenty times a second whenever nothing is offered.
            if seg is not None and (seg.chunk or seg.file.buf or seg.entries):
                self._push()
                if seg.size >= self.config.segment_size_bytes:
                    self._rotate(flight)
        except OSError as err:
            self._degrade(flight, err)
        return busy

    def _note_lag(self, lag: int) -> None:
        self._lag_max_taken = lag
        self._lag_max = max(self._lag_max, lag)

    def _shed_stale(self, client: FdrClient,
                    ring: deque[tuple[int, Any, tuple[str, ...], int]], cutoff: int) -> None:
        """Account as ``lag`` overruns what entered the ring before ``cutoff``."""
        for gap in take_stale(client.producer, ring, cutoff):
            if gap.reason == LAG_REASON:
                self._shed_lag += gap.count
            self._write_gap(client, gap)
