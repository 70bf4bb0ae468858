"""Mid-flight tile snapshots: orthorectified tile JPEGs kept with the flight.

:meth:`MidFlightTileSnapshotSink.snapshot` writes
``<flight_dir>/tiles/<tile_id>.jpg`` atomically (temporary file, fdatasync,
rename, directory fsync), then emits a ``mid_flight_tile_snapshot`` pointer
record (path relative to the flight directory, sha256, size, optional
``frame_id``). The flight's tiles are capped (64 MiB by default): the oldest
snapshots are evicted first and named in the record's ``evicted`` list. A
snapshot that cannot be written becomes a ``failed_tile_thumbnail`` record
(rate-capped by the writer), never an exception into the caller.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.durable import atomic_write
from gps_denied_onboard.fdr.client import FdrClient
from gps_denied_onboard.log import RateLimitedLog
from gps_denied_onboard.records import FlightRecord

_TILE_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")


class MidFlightTileSnapshotSink:
    """Writes tile snapshots into the open flight and points at them from the FDR.

    Args:
        recorder: anything with ``current_flight_dir`` (the FlightRecorder).
        client: the FDR client the pointer records go through.
        clock: flight time for the records' stamps.
        cap_bytes: per-flight cap on snapshot bytes.
        monotonic: host clock for the ERROR log rate cap.
    """

    def __init__(self, recorder: Any, client: FdrClient, clock: Clock, monotonic: Clock,
                 *, cap_bytes: int = 64 * 1024 * 1024,
                 logger: logging.Logger | None = None) -> None:
        self._recorder = recorder
        self._client = client
        self._clock = clock
        self._mono = monotonic
        self._cap = cap_bytes
        self._log = logger or logging.getLogger("gps_denied_onboard.fdr.tiles")
        self._errlog = RateLimitedLog(self._log, 1_000_000_000)
        self._flight_dir: Path | None = None
        self._tiles: OrderedDict[str, int] = OrderedDict()  # tile_id -> bytes, oldest first
        self._total = 0

    @property
    def total_bytes(self) -> int:
        return self._total

    def _attach(self, flight_dir: Path) -> None:
        if self._flight_dir == flight_dir:
            return
        self._flight_dir = flight_dir
        self._tiles.clear()
        self._total = 0
        tiles_dir = flight_dir / "tiles"
        existing = []
        if tiles_dir.is_dir():
            for p in tiles_dir.glob("*.jpg"):
                st = p.stat()
                existing.append((st.st_mtime_ns, p.stem, st.st_size))
        for _, tile_id, size in sorted(existing):
            self._tiles[tile_id] = size
            self._total += size

    def snapshot(self, tile_id: str, jpeg: bytes, *, frame_id: str | None = None,
                 zoom: int | None = None, x: int | None = None, y: int | None = None) -> bool:
        """Store one tile snapshot; True when it is on disk and recorded.

        Raises:
            ValueError: ``tile_id`` is not a plain file-name token, or the JPEG alone is
                larger than the cap.
        """
        if not _TILE_ID.match(tile_id) or tile_id in (".", ".."):
            raise ValueError(f"tile_id {tile_id!r} is not a plain file-name token")
        if len(jpeg) > self._cap:
            raise ValueError(f"tile {tile_id!r} is {len(jpeg)} bytes, over the cap {self._cap}")
        now = self._clock.now_ns()
        flight_dir = self._recorder.current_flight_dir
        if flight_dir is None:
            self._fail(tile_id, "no flight open", now)
            return False
        self._attach(flight_dir)
        rel = f"tiles/{tile_id}.jpg"
        path = flight_dir / rel
        previous = self._tiles.pop(tile_id, None)
        if previous is not None:
            self._total -= previous
        evicted: list[str] = []
        try:
            while self._tiles and self._total + len(jpeg) > self._cap:
                old_id, old_size = self._tiles.popitem(last=False)
                with contextlib.suppress(FileNotFoundError):
                    (flight_dir / "tiles" / f"{old_id}.jpg").unlink()
                self._total -= old_size
                evicted.append(old_id)
            atomic_write(path, jpeg)
        except OSError as err:
            self._errlog.log(self._mono.now_ns(), logging.ERROR, "fdr.tile_snapshot_failed",
                             tile_id=tile_id, error=str(err))
            self._fail(tile_id, f"write failed: {os.strerror(err.errno or 0)}", now, rel,
                       len(jpeg))
            return False
        self._tiles[tile_id] = len(jpeg)
        self._total += len(jpeg)
        payload: dict[str, Any] = {
            "tile_id": tile_id, "path": rel, "sha256": hashlib.sha256(jpeg).hexdigest(),
            "bytes": len(jpeg),
        }
        if frame_id is not None:
            payload["frame_id"] = frame_id
        for key, value in (("zoom", zoom), ("x", x), ("y", y)):
            if value is not None:
                payload[key] = value
        if evicted:
            payload["evicted"] = evicted
        self._client.emit(FlightRecord("mid_flight_tile_snapshot", self._client.producer, now,
                                       payload))
        return True

    def _fail(self, tile_id: str, reason: str, now: int, rel: str | None = None,
              size: int | None = None) -> None:
        payload: dict[str, Any] = {"tile_id": tile_id, "reason": reason}
        if rel is not None:
            payload["path"] = rel
        if size is not None:
            payload["bytes"] = size
        self._client.emit(FlightRecord("failed_tile_thumbnail", self._client.producer, now,
                                       payload))
