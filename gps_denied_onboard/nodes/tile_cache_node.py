"""``tile_cache``: the tile store as a ROS 2 lifecycle node.

* ``configure``: parameters -> :class:`~gps_denied_onboard.tile_cache.config.TileCacheConfig`;
  the database is resolved (``dsn``, ``$GDO_DSN``, else the embedded cluster
  under ``pg_data_dir``), migrations are applied when ``apply_migrations`` is
  true (a no-op when the take-off sequencer already did), and the store is
  built, which reconciles files against rows. The services exist from the
  first configure on and answer "not active" unless the node is active:

  ============================  ===========================================
  ``~/get_tile`` (GetTile)      JPEG as ``sensor_msgs/CompressedImage`` + TileInfo
  ``~/query_bbox`` (QueryBbox)  tiles at a zoom in a lat/lon box, best first
  ``~/put_tile`` (PutTile)      durable write; typed error name on refusal
  ``~/list_uploads``            tiles captured in flight, not yet uploaded
  ``~/mark_uploaded``           mark them uploaded (idempotent)
  ============================  ===========================================

* ``activate``: snapshots on :data:`TOPIC_TILE_SNAPSHOTS` are stored (tiles
  captured in flight, stored as source ``in_flight``, pending upload; the first
  capture of a cell in a flight is kept and repeats are counted; a boolean
  ``reference_match`` in their ``quality_json`` votes on the cell), and the
  maintenance (access-time flush, eviction, freshness refresh) and diagnostics
  timers do their work.
* ``deactivate``: snapshots are ignored, both timers idle; access times flushed.
* ``cleanup`` / ``shutdown``: closes the store and stops an embedded cluster
  this node started.

The service, snapshot and maintenance callbacks run beside the transitions
(callback groups of their own, on ``run_node``'s multi-threaded executor). They
reach the store only through a :class:`StoreGate`, which a deactivate (and a
cleanup or shutdown, which deactivate first) shuts: a call that comes after is
answered "not active" at once, and the transition returns only once the store calls
in progress are over. So nothing is written after a deactivate returned, and the
store is never closed under a call (test_tile_cache_node_store_calls).

The services, the snapshot subscription and both timers are made at the first
configure and live as long as the node; a transition never destroys one (see
:meth:`TileCacheNode._make_entities`).

Flight records (``c6.write``, ``c6.write_failed``, ``c6.evict``, ``c6.vote``,
``c6.store.construct``) go to ``/fdr/records``.
"""

from __future__ import annotations

import array
import hashlib
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Final

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage

from gps_denied_onboard.errors import GpsDeniedError
from gps_denied_onboard.log import RateLimitedLog, log_event
from gps_denied_onboard.msg import TileInfo, TileSnapshot
from gps_denied_onboard.nodes.lifecycle_guard import LifecycleNodeBase
from gps_denied_onboard.nodes.params import declare_config, read_config
from gps_denied_onboard.nodes.record_sink import RecordPublisherSink
from gps_denied_onboard.nodes.ros_clock import DataTimeClock, RosClock
from gps_denied_onboard.nodes.ros_logging import bridge_logging
from gps_denied_onboard.nodes.runner import run_node
from gps_denied_onboard.nodes.status_publishers import DiagnosticsPublisher
from gps_denied_onboard.ros_topics import TOPIC_TILE_SNAPSHOTS, ns_to_time_msg, time_msg_to_ns
from gps_denied_onboard.srv import GetTile, ListUploads, MarkUploaded, PutTile, QueryBbox
from gps_denied_onboard.tile_cache.config import TileCacheConfig
from gps_denied_onboard.tile_cache.database import Database, open_database
from gps_denied_onboard.tile_cache.errors import TileCacheError, TileValidationError
from gps_denied_onboard.tile_cache.geo import BBox
from gps_denied_onboard.tile_cache.identity import IN_FLIGHT_SOURCE, derive_location_hash
from gps_denied_onboard.tile_cache.migrations import apply_migrations
from gps_denied_onboard.tile_cache.model import TileMetadata, TileWrite
from gps_denied_onboard.tile_cache.store import PostgresFilesystemStore

NODE_NAME: Final = "tile_cache"
NS_PER_S: Final = 1_000_000_000
NOT_ACTIVE: Final = "tile_cache is not active"
VOTE_KEY: Final = "reference_match"
#: a transition waiting for store calls in progress says so this often (seconds)
GATE_LOG_PERIOD_S: Final = 5.0

SNAPSHOT_QOS: Final = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE
)


def tile_info(meta: TileMetadata) -> TileInfo:
    """The ``TileInfo`` message of a tile's metadata."""
    return TileInfo(
        tile_id=str(meta.tile_id),
        zoom=meta.zoom,
        x=meta.x,
        y=meta.y,
        source=meta.source,
        flight_id="" if meta.flight_id is None else str(meta.flight_id),
        latitude=meta.latitude,
        longitude=meta.longitude,
        captured_at=ns_to_time_msg(meta.captured_at_ns),
        freshness_status=meta.freshness_status,
        content_sha256=meta.content_sha256,
        disk_bytes=meta.disk_bytes,
        votes_agree=meta.votes_agree,
        votes_disagree=meta.votes_disagree,
        pending_upload=meta.pending_upload,
    )


def parse_quality(text: str) -> dict[str, Any]:
    """``quality_json`` -> dict; empty means {}.

    Raises:
        TileValidationError: not a JSON object.
    """
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise TileValidationError(f"quality_json is not JSON: {err}", field="quality_json") from err
    if not isinstance(value, dict):
        raise TileValidationError("quality_json must be a JSON object", field="quality_json")
    return value


def put_request_to_write(req: Any) -> TileWrite:
    """A ``PutTile`` request as a store write. Latitude and longitude both 0
    mean "the tile centre"; a zero ``captured_at`` means "now".

    Raises:
        TileValidationError: bad ``quality_json``.
    """
    captured = time_msg_to_ns(req.captured_at)
    point = (req.latitude, req.longitude)
    return TileWrite(
        zoom=int(req.zoom),
        x=int(req.x),
        y=int(req.y),
        source=str(req.source),
        flight_id=str(req.flight_id) or None,
        data=bytes(req.image.data),
        content_sha256=str(req.content_sha256),
        captured_at_ns=captured or None,
        latitude=None if point == (0.0, 0.0) else float(req.latitude),
        longitude=None if point == (0.0, 0.0) else float(req.longitude),
        quality=parse_quality(str(req.quality_json)),
    )


class StoreGate:
    """Who may use the store now, and a transition's wait for those who are.

    A callback takes the store with ``with gate.use() as store:`` (None: refused, the
    gate is shut). :meth:`shut` refuses every later ``use`` and returns once those in
    progress have left. Nobody holds a lock while using the store: a shut waits for the
    calls, never a call for another.
    """

    def __init__(self, on_wait: Callable[[int], object] | None = None) -> None:
        self._cond = threading.Condition()
        self._store: PostgresFilesystemStore | None = None
        self._users = 0
        self._on_wait = on_wait  # told the calls in progress, each GATE_LOG_PERIOD_S of a shut

    def open(self, store: PostgresFilesystemStore) -> None:
        with self._cond:
            self._store = store

    def shut(self) -> None:
        with self._cond:
            self._store = None
            while self._users and not self._cond.wait_for(
                lambda: not self._users, GATE_LOG_PERIOD_S
            ):
                if self._on_wait is not None:
                    self._on_wait(self._users)

    @contextmanager
    def use(self) -> Iterator[PostgresFilesystemStore | None]:
        with self._cond:
            store = self._store
            if store is not None:
                self._users += 1
        if store is None:
            yield None
            return
        try:
            yield store
        finally:
            with self._cond:
                self._users -= 1
                if not self._users:
                    self._cond.notify_all()


class TileCacheNode(LifecycleNodeBase):
    """The tile cache node (see the module docstring for the lifecycle)."""

    def __init__(self, **kwargs: Any) -> None:
        self._cfg: TileCacheConfig | None = None
        self._db: Database | None = None
        self._store: PostgresFilesystemStore | None = None
        self._active = False
        # held while the diagnostics timer checks that the node is active and publishes,
        # and while a transition clears _active: no diagnostics go out after the
        # transition returned (the timer's callback group is not the transitions')
        self._publishing = threading.Lock()
        # the services', snapshots' and maintenance's way to the store: open while active
        self._io = StoreGate(self._waiting_for_calls)
        # the diagnostics' (which a deactivate does not wait for): open while configured
        self._look = StoreGate()
        self._tile_services: list[Any] = []  # these, the subscription, the timers: _make_entities
        self._snapshot_sub: Any = None
        self._maintain_timer: Any = None
        self._diagnostics_timer: Any = None
        self.snapshots_stored = 0
        self.snapshots_refused = 0
        self.snapshots_repeated = 0
        super().__init__(kwargs.pop("node_name", NODE_NAME), **kwargs)
        declare_config(self, TileCacheConfig)
        # snapshot writes are stamped with the snapshot's capture time (replays
        # then record the same c6.write records); everything else is live time
        self._clock_core = DataTimeClock(RosClock(self))
        self._log = bridge_logging(self)
        self._refusal_log = RateLimitedLog(self._log, NS_PER_S)
        self._records = RecordPublisherSink(self)
        self._diag = DiagnosticsPublisher(self, NODE_NAME)
        self._service_group = ReentrantCallbackGroup()  # the store is thread-safe
        self._snapshot_group = MutuallyExclusiveCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()

    @property
    def store(self) -> PostgresFilesystemStore | None:
        return self._store

    # -- lifecycle -------------------------------------------------------------------------

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        db: Database | None = None
        try:
            cfg = read_config(self, TileCacheConfig)
            db = open_database(cfg)
            if cfg.apply_migrations:
                apply_migrations(db.dsn, logger=self._log)
            store = PostgresFilesystemStore.from_config(
                replace(cfg, dsn=db.dsn), self._clock_core, self._records, self._log
            )
        except GpsDeniedError as err:
            log_event(
                self._log,
                logging.ERROR,
                "c6.configure_failed",
                error_type=type(err).__name__,
                error=str(err),
            )
            if db is not None:
                db.close()
            return TransitionCallbackReturn.FAILURE
        self._cfg, self._db, self._store = cfg, db, store
        self._look.open(store)
        self._make_entities(cfg)
        return TransitionCallbackReturn.SUCCESS

    def _make_entities(self, cfg: TileCacheConfig) -> None:
        """Services, the snapshot subscription and the timers: made once, kept for the node's life.

        A transition callback runs on one executor thread (run_node's
        multi-threaded executor) while another builds its wait set from the node's
        entity lists; an entity destroyed in between raised ``InvalidHandle`` out of
        ``spin_once`` (rclpy#1284, #1206) and the node answered nothing more (as
        fc_bridge did after a deactivate). So nothing is destroyed until
        ``destroy_node`` (after the executor stops) and every callback does nothing
        unless the node is active (its :class:`StoreGate` open). The timers are not cancelled
        either (a timer cancelled after the executor picked it raises in its take,
        rclpy#1485); a later configure only sets their periods.
        """
        if self._maintain_timer is not None:  # configured before: new periods, if any
            self._maintain_timer.timer_period_ns = int(cfg.maintenance_period_s * 1e9)
            self._diagnostics_timer.timer_period_ns = int(cfg.diagnostics_period_s * 1e9)
            return
        specs: list[tuple[Any, str, Any]] = [
            (GetTile, "~/get_tile", self._on_get_tile),
            (QueryBbox, "~/query_bbox", self._on_query_bbox),
            (PutTile, "~/put_tile", self._on_put_tile),
            (ListUploads, "~/list_uploads", self._on_list_uploads),
            (MarkUploaded, "~/mark_uploaded", self._on_mark_uploaded),
        ]
        self._tile_services = [
            self.create_service(t, name, cb, callback_group=self._service_group)
            for t, name, cb in specs
        ]
        self._snapshot_sub = self.create_subscription(
            TileSnapshot,
            TOPIC_TILE_SNAPSHOTS,
            self._on_snapshot,
            SNAPSHOT_QOS,
            callback_group=self._snapshot_group,
        )
        self._maintain_timer = self.create_timer(
            cfg.maintenance_period_s, self._on_maintain, callback_group=self._timer_group
        )
        self._diagnostics_timer = self.create_timer(
            cfg.diagnostics_period_s, self._on_diagnostics, callback_group=self._timer_group
        )

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        assert self._cfg is not None and self._store is not None
        self._active = True
        self._io.open(self._store)
        log_event(
            self._log,
            logging.INFO,
            "c6.node.active",
            tiles=self._store.stats().tiles if self._store else 0,
        )
        result: TransitionCallbackReturn = super().on_activate(state)
        return result

    def _stop_io(self) -> None:
        with self._publishing:  # a diagnostics message being published goes out first
            self._active = False  # the subscription and timers stay, idle (see _make_entities)
        self._io.shut()  # later calls are refused; those in progress finish first
        if self._store is not None:
            try:
                self._store.flush_access()
            except TileCacheError as err:
                log_event(self._log, logging.WARNING, "c6.flush_failed", error=str(err))

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_io()
        result: TransitionCallbackReturn = super().on_deactivate(state)
        return result

    def _waiting_for_calls(self, calls: int) -> None:
        log_event(self._log, logging.WARNING, "c6.transition_waits_for_store_calls", calls=calls)

    def _release(self) -> None:
        self._stop_io()  # the services stay, answering "not active" (see _make_entities)
        self._look.shut()
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._db is not None:
            self._db.close()
            self._db = None

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def shutdown(self) -> None:
        """Called by ``run_node`` on SIGINT/SIGTERM: close the store whatever the state."""
        self._release()

    # -- services ----------------------------------------------------------------------------

    def _on_get_tile(self, req: Any, res: Any) -> Any:
        with self._io.use() as store:
            if store is None:
                res.found, res.error = False, NOT_ACTIVE
                return res
            try:
                got = store.get_tile(
                    int(req.zoom),
                    int(req.x),
                    int(req.y),
                    str(req.source),
                    str(req.flight_id) or None,
                )
            except TileCacheError as err:
                res.found, res.error = False, f"{type(err).__name__}: {err}"
                return res
            res.found = True
            res.info = tile_info(got.meta)
            image = CompressedImage(format="jpeg")
            image.header.stamp = ns_to_time_msg(got.meta.captured_at_ns)
            image.header.frame_id = f"tile/{got.meta.zoom}/{got.meta.x}/{got.meta.y}"
            image.data = array.array("B", got.data)
            res.image = image
            return res

    def _on_query_bbox(self, req: Any, res: Any) -> Any:
        with self._io.use() as store:
            if store is None:
                res.success, res.error = False, NOT_ACTIVE
                return res
            try:
                box = BBox(
                    min_latitude=float(req.min_latitude),
                    min_longitude=float(req.min_longitude),
                    max_latitude=float(req.max_latitude),
                    max_longitude=float(req.max_longitude),
                )
                metas = store.query_bbox(box, int(req.zoom), int(req.limit) or None)
            except (TileCacheError, ValueError) as err:
                res.success, res.error = False, f"{type(err).__name__}: {err}"
                return res
            res.success = True
            res.tiles = [tile_info(m) for m in metas]
            return res

    def _on_put_tile(self, req: Any, res: Any) -> Any:
        with self._io.use() as store:
            if store is None:
                res.success, res.error_type, res.error = False, "NotActive", NOT_ACTIVE
                return res
            try:
                meta = store.put_tile(put_request_to_write(req))
            except TileCacheError as err:
                res.success, res.error_type, res.error = False, type(err).__name__, str(err)
                res.tile_id = err.tile_id or ""
                return res
            res.success, res.tile_id = True, str(meta.tile_id)
            return res

    def _on_list_uploads(self, req: Any, res: Any) -> Any:
        with self._io.use() as store:
            if store is None:
                res.tiles = []
                return res
            try:
                res.tiles = [
                    tile_info(m) for m in store.list_pending_uploads(int(req.limit) or None)
                ]
            except TileCacheError as err:
                log_event(self._log, logging.ERROR, "c6.list_uploads_failed", error=str(err))
                res.tiles = []
            return res

    def _on_mark_uploaded(self, req: Any, res: Any) -> Any:
        with self._io.use() as store:
            if store is None:
                res.success, res.error, res.marked = False, NOT_ACTIVE, 0
                return res
            try:
                res.marked = store.mark_uploaded(list(req.tile_ids))
            except TileCacheError as err:
                res.success, res.error, res.marked = False, f"{type(err).__name__}: {err}", 0
                return res
            res.success = True
            return res

    # -- snapshots, timers -------------------------------------------------------------------

    def _store_snapshot(self, store: PostgresFilesystemStore, msg: Any) -> None:
        data = bytes(msg.image.data)
        point = (msg.latitude, msg.longitude)
        zoom, x, y = int(msg.zoom), int(msg.x), int(msg.y)
        flight = str(msg.flight_id) or None
        quality = parse_quality(str(msg.quality_json))
        if msg.frame_id:
            quality.setdefault("frame_id", str(msg.frame_id))
        if store.find(zoom, x, y, IN_FLIGHT_SOURCE, flight) is not None:
            # this flight already captured the cell: keep the first capture
            self.snapshots_repeated += 1
        else:
            store.put_tile(
                TileWrite(
                    zoom=zoom,
                    x=x,
                    y=y,
                    source=IN_FLIGHT_SOURCE,
                    flight_id=flight,
                    data=data,
                    content_sha256=hashlib.sha256(data).hexdigest(),
                    captured_at_ns=time_msg_to_ns(msg.header.stamp) or None,
                    latitude=None if point == (0.0, 0.0) else float(msg.latitude),
                    longitude=None if point == (0.0, 0.0) else float(msg.longitude),
                    quality=quality,
                )
            )
            self.snapshots_stored += 1
        # the vote is the cell's own tally, written after the capture (a second
        # write): a listing in between shows the capture without it for a moment,
        # and a capture refused above casts no vote
        vote = quality.get(VOTE_KEY)
        if isinstance(vote, bool):
            store.record_vote(derive_location_hash(zoom, x, y), vote)

    def _on_snapshot(self, msg: Any) -> None:
        with self._io.use() as store:
            if store is None:
                return
            try:
                with self._clock_core.at(time_msg_to_ns(msg.header.stamp)):
                    self._store_snapshot(store, msg)
            except TileCacheError as err:
                self.snapshots_refused += 1
                self._refusal_log.log(
                    self._clock_core.now_ns(),
                    logging.WARNING,
                    "c6.snapshot_refused",
                    error_type=type(err).__name__,
                    error=str(err),
                )

    def _on_maintain(self) -> None:
        with self._io.use() as store:
            if store is None:
                return
            try:
                store.maintain()
            except TileCacheError as err:
                log_event(self._log, logging.WARNING, "c6.maintenance_failed", error=str(err))

    def _on_diagnostics(self) -> None:
        # the counters are read through a gate that only a cleanup or shutdown shuts
        # (before closing the store), not a deactivate: it need not wait for them
        with self._look.use() as store:
            stats = store.stats() if store is not None and self._active else None
        if stats is None:
            return
        over = stats.disk_bytes > stats.budget_bytes
        values: dict[str, object] = {
            **stats.as_dict(),
            "snapshots_stored": self.snapshots_stored,
            "snapshots_refused": self.snapshots_refused,
            "snapshots_repeated": self.snapshots_repeated,
        }
        level = DiagnosticsPublisher.WARN if over else DiagnosticsPublisher.OK
        message = (
            "over disk budget (tiles pending upload)"
            if over
            else f"{stats.tiles} tiles, {stats.disk_bytes} bytes"
        )
        # built unlocked (a transition need not wait for it); published only if the node
        # is still active, and under the lock that the transition takes to clear it
        with self._publishing:
            if not self._active:
                return
            self._diag.publish(level, message, values)


def main(argv: list[str] | None = None) -> int:
    return run_node(TileCacheNode, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
