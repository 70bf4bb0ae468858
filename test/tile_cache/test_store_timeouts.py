"""The store's statements wait on a PostgreSQL lock for a bounded time, on real PostgreSQL.

Another session holding a lock on ``tiles`` (an operator's psql, a stuck migration, a
``VACUUM FULL``) must cost a store call a typed failure after ``lock_timeout_s``, never
a hang: the node's deactivate waits for the store calls in progress, so a call blocked
for ever would block the landing sequence. A refused write leaves neither files nor a
row, and the same write succeeds once the lock is gone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.records import MemorySink
from gps_denied_onboard.tile_cache.config import TileCacheConfig
from gps_denied_onboard.tile_cache.errors import (
    LOCK_NOT_AVAILABLE,
    QUERY_CANCELED,
    TileMetadataError,
)
from gps_denied_onboard.tile_cache.geo import tile_bbox
from gps_denied_onboard.tile_cache.store import PostgresFilesystemStore

from .test_store import Z, count_rows, files_under, tile

#: a blocked call must have answered by then (it answers after lock_timeout_s; without
#: a timeout it never does, and the test fails here instead of hanging)
ANSWER_BOUND_S = 30.0


@contextmanager
def table_locked(dsn: str, mode: str = "ACCESS EXCLUSIVE") -> Iterator[psycopg.Connection[Any]]:
    """Another session holds ``LOCK TABLE tiles IN <mode> MODE`` until the block ends."""
    with psycopg.connect(dsn) as holder:  # not autocommit: the lock lasts to the rollback
        holder.execute(f"LOCK TABLE tiles IN {mode} MODE")
        try:
            yield holder
        finally:
            holder.rollback()


def outcome_within_bound(call: Callable[[], object]) -> BaseException | object:
    """What ``call`` returned or raised, run in a thread that must end within the bound."""
    got: list[BaseException | object] = []

    def run() -> None:
        try:
            got.append(call())
        except BaseException as err:  # handed to the test
            got.append(err)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(ANSWER_BOUND_S)
    assert not worker.is_alive(), f"the store call still waits after {ANSWER_BOUND_S} s"
    return got[0]


def test_a_put_blocked_by_a_table_lock_fails_typed_and_leaves_nothing(
    store: PostgresFilesystemStore, tile_config: TileCacheConfig, sink: MemorySink
) -> None:
    write = tile(seed=40)
    with table_locked(tile_config.dsn):
        err = outcome_within_bound(lambda: store.put_tile(write))
        assert isinstance(err, TileMetadataError), err
        assert err.sqlstate == LOCK_NOT_AVAILABLE
        assert err.tile_id is not None
        assert files_under(store.root) == {}  # the files written meanwhile are gone
    assert count_rows(tile_config.dsn) == 0
    assert store.stats().tiles == 0
    (failed,) = sink.of_kind("c6.write_failed")
    assert failed.payload["reason"] == "lock_timeout"  # busy, not broken
    meta = store.put_tile(write)  # the lock gone, the same write goes through
    assert count_rows(tile_config.dsn) == 1
    assert store.get_tile(Z, 17437, 11371, "satellite").meta == meta


def test_a_bbox_query_blocked_by_a_table_lock_fails_typed(
    store: PostgresFilesystemStore, tile_config: TileCacheConfig
) -> None:
    store.put_tile(tile(seed=41))
    box = tile_bbox(Z, 17437, 11371)
    with table_locked(tile_config.dsn):
        err = outcome_within_bound(lambda: store.query_bbox(box, Z))
        assert isinstance(err, TileMetadataError), err
        assert err.sqlstate == LOCK_NOT_AVAILABLE
    assert [m.x for m in store.query_bbox(box, Z)] == [17437]


def test_a_statement_over_its_timeout_fails_typed_as_canceled(
    migrated_dsn: str, tmp_path: Path, store_factory: Any, sink: MemorySink
) -> None:
    # the statement timeout counts the lock wait too: below the lock timeout, it is
    # the one that ends the wait
    cfg = TileCacheConfig(
        dsn=migrated_dsn, tile_root=tmp_path / "t", lock_timeout_s=20.0, statement_timeout_s=0.3
    )
    store = store_factory(cfg)
    write = tile(seed=42)
    with table_locked(migrated_dsn, "EXCLUSIVE"):  # writes wait, reads go on
        err = outcome_within_bound(lambda: store.put_tile(write))
        assert isinstance(err, TileMetadataError), err
        assert err.sqlstate == QUERY_CANCELED
        assert files_under(store.root) == {}
    assert count_rows(migrated_dsn) == 0
    (failed,) = sink.of_kind("c6.write_failed")
    assert failed.payload["reason"] == "statement_timeout"
    store.put_tile(write)
    assert count_rows(migrated_dsn) == 1


def test_the_store_connections_carry_the_configured_timeouts(
    tile_config: TileCacheConfig, store_factory: Any
) -> None:
    defaults = store_factory(tile_config)
    with defaults._conn() as conn:
        shown = conn.execute(
            "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"
        ).fetchone()
    assert shown == ("2s", "10s")
    defaults.close()
    tuned = store_factory(replace(tile_config, lock_timeout_s=0.25, statement_timeout_s=4.5))
    with tuned._conn() as conn:
        shown = conn.execute(
            "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"
        ).fetchone()
    assert shown == ("250ms", "4500ms")


def test_reconciliation_still_waits_for_a_writer_longer_than_the_timeouts(
    tile_config: TileCacheConfig, manual_clock: ManualClock
) -> None:
    """The start-up wait for an open write transaction (WAIT_FOR_WRITERS, 30 s) is
    exempt from the per-statement timeouts."""
    cfg = replace(tile_config, lock_timeout_s=0.1, statement_timeout_s=0.2)
    log = logging.getLogger("test.tile_cache")
    with psycopg.connect(cfg.dsn) as writer:
        writer.execute("DELETE FROM tiles")  # a write transaction left open
        opened: list[PostgresFilesystemStore] = []
        failed: list[BaseException] = []

        def start() -> None:
            try:
                opened.append(
                    PostgresFilesystemStore.from_config(cfg, manual_clock, MemorySink(), log)
                )
            except BaseException as err:  # handed to the test
                failed.append(err)

        starter = threading.Thread(target=start, daemon=True)
        starter.start()
        starter.join(timeout=1.0)  # five statement timeouts
        assert starter.is_alive(), failed  # still waiting for the writer
        writer.commit()
        starter.join(timeout=ANSWER_BOUND_S)
    assert not starter.is_alive() and not failed, failed
    opened[0].close()
