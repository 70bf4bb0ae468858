"""A crash at any point of a write leaves the old state or the new one after the
next construction's reconciliation, never a half tile.

Each case runs a real writer process and kills it (``os._exit``, no cleanup,
no rollback from our side: PostgreSQL sees the connection drop) at one step of
the write: before each fsync and each rename, and after the commit.

The COMMIT is sent before the directory fsync (the two flushes overlap, see
``tile_cache/writes.py``), so a kill at that fsync leaves a backend that runs
the COMMIT after its client is gone: the new state, which the next
construction's reconciliation must not race (it waits for open writes).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.records import MemorySink
from gps_denied_onboard.tile_cache.config import TileCacheConfig
from gps_denied_onboard.tile_cache.model import TileWrite
from gps_denied_onboard.tile_cache.store import PostgresFilesystemStore

from .conftest import make_jpeg, sha

WRITER = textwrap.dedent(
    """
    import logging, os, sys
    from pathlib import Path
    from gps_denied_onboard.clock import ManualClock
    from gps_denied_onboard.records import MemorySink
    from gps_denied_onboard.tile_cache.config import TileCacheConfig
    from gps_denied_onboard.tile_cache.model import TileWrite
    from gps_denied_onboard.tile_cache.store import PostgresFilesystemStore

    dsn, root, point, data_hex = sys.argv[1:5]
    what, _, nth = point.partition(":")
    calls = {"fsync": 0, "rename": 0}

    def dying(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            if what == name and calls[name] == int(nth):
                os._exit(137)
            return real(*args, **kwargs)
        return wrapper

    class DyingSink(MemorySink):
        def emit(self, record):
            if what == "emit" and record.kind == nth:
                os._exit(137)
            super().emit(record)

    store = PostgresFilesystemStore.from_config(
        TileCacheConfig(dsn=dsn, tile_root=Path(root)), ManualClock(10**18), DyingSink(),
        logging.getLogger("writer"))
    os.fsync = dying("fsync", os.fsync)
    os.rename = dying("rename", os.rename)
    data = bytes.fromhex(data_hex)
    import hashlib
    store.put_tile(TileWrite(zoom=12, x=7, y=2, source="satellite", data=data,
                             content_sha256=hashlib.sha256(data).hexdigest()))
    print("completed")
    """
)

# (crash point, state expected afterwards)
POINTS = [
    ("fsync:1", "old"),  # JPEG temp written, not yet durable; row inserted, not committed
    ("fsync:2", "old"),  # sidecar temp written
    ("rename:1", "old"),  # both temps durable, nothing renamed
    ("rename:2", "old"),  # JPEG in place, sidecar not
    ("fsync:3", "new"),  # both renamed, COMMIT sent, directory not yet fsync'ed
    ("emit:c6.write", "new"),  # committed
    ("none:0", "new"),  # no crash
]


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("point", "expected"), POINTS)
def test_crash_mid_write_leaves_old_or_new_state(
    tile_config: TileCacheConfig, manual_clock: ManualClock, point: str, expected: str
) -> None:
    sink = MemorySink()
    log = logging.getLogger("test.crash")
    existing = make_jpeg(1)
    store = PostgresFilesystemStore.from_config(tile_config, manual_clock, sink, log)
    kept = store.put_tile(
        TileWrite(
            zoom=12, x=7, y=1, source="satellite", data=existing, content_sha256=sha(existing)
        )
    )
    store.close()
    old_tree = tree(tile_config.tile_root)

    data = make_jpeg(2)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            WRITER,
            tile_config.dsn,
            str(tile_config.tile_root),
            point,
            data.hex(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    crashed = point != "none:0"
    assert proc.returncode == (137 if crashed else 0), proc.stderr

    store = PostgresFilesystemStore.from_config(tile_config, manual_clock, sink, log)
    try:
        after = tree(tile_config.tile_root)
        assert not [name for name in after if ".tmp-" in name]
        assert store.get_tile(12, 7, 1, "satellite").data == existing
        found = store.find(12, 7, 2, "satellite")
        if expected == "old":
            assert found is None
            assert after == old_tree
        else:
            assert found is not None
            assert store.get_tile(12, 7, 2, "satellite").data == data
            sidecar = tile_config.tile_root / "tiles" / "12" / "7" / f"{found.tile_id}.json"
            assert json.loads(sidecar.read_text())["content_sha256"] == sha(data)
            assert set(after) == set(old_tree) | {
                f"tiles/12/7/{found.tile_id}.jpg",
                f"tiles/12/7/{found.tile_id}.json",
            }
        assert store.stats().tiles == (1 if expected == "old" else 2)
        assert kept.tile_id != (found.tile_id if found else None)
    finally:
        store.close()


def test_write_order_bytes_before_names_and_commit_directory_beside_it(
    tile_config: TileCacheConfig, manual_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order the crash cases rely on, as the writer issues it: the row's
    statements first (sent, not awaited), the files' bytes fsync'ed before any
    rename, every rename before the COMMIT is sent, the directory fsync after
    it; ``put_tile`` returns only once the COMMIT is durable."""
    store = PostgresFilesystemStore.from_config(
        tile_config, manual_clock, MemorySink(), logging.getLogger("test.crash")
    )
    events: list[str] = []
    real_fsync, real_rename, real_execute = os.fsync, os.rename, psycopg.Connection.execute

    def fsync(fd: int) -> None:
        real_fsync(fd)
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")

    def rename(src: Any, dst: Any) -> None:
        real_rename(src, dst)
        events.append("rename")

    def execute(conn: psycopg.Connection[Any], query: Any, *args: Any, **kw: Any) -> Any:
        events.append("sql " + str(query).split()[0])
        return real_execute(conn, query, *args, **kw)

    data = make_jpeg(3)
    try:
        store.put_tile(  # its directory first, so that only the tile's own steps are traced
            TileWrite(zoom=12, x=7, y=1, source="satellite", data=data, content_sha256=sha(data))
        )
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "rename", rename)
        monkeypatch.setattr(psycopg.Connection, "execute", execute)
        store.put_tile(
            TileWrite(zoom=12, x=7, y=2, source="satellite", data=data, content_sha256=sha(data))
        )
    finally:
        monkeypatch.undo()
    assert events == [
        "sql BEGIN",
        "sql INSERT",
        "fsync file",  # JPEG temp
        "fsync file",  # sidecar temp
        "rename",
        "rename",
        "sql COMMIT",
        "fsync dir",
    ]
    try:
        with psycopg.connect(tile_config.dsn) as conn:
            row = conn.execute("SELECT count(*) FROM tiles WHERE y = 2").fetchone()
        assert row == (1,)  # committed when put_tile returned
    finally:
        store.close()


def test_reconciliation_waits_for_a_write_transaction_in_flight(
    tile_config: TileCacheConfig, manual_clock: ManualClock
) -> None:
    """A killed writer's backend may still be running its COMMIT when the next
    store starts: reconciliation waits for it instead of removing the files of
    a row that is about to appear."""
    log = logging.getLogger("test.crash")
    data = make_jpeg(4)
    store = PostgresFilesystemStore.from_config(tile_config, manual_clock, MemorySink(), log)
    meta = store.put_tile(
        TileWrite(zoom=12, x=7, y=3, source="satellite", data=data, content_sha256=sha(data))
    )
    store.close()
    with psycopg.connect(tile_config.dsn, autocommit=True) as writer:
        # the row leaves, to come back in a write transaction left open
        writer.execute("CREATE TEMP TABLE saved AS SELECT * FROM tiles")
        writer.execute("DELETE FROM tiles")
        writer.execute("BEGIN")
        writer.execute("INSERT INTO tiles SELECT * FROM saved")
        opened: list[PostgresFilesystemStore] = []
        starter = threading.Thread(
            target=lambda: opened.append(
                PostgresFilesystemStore.from_config(tile_config, manual_clock, MemorySink(), log)
            )
        )
        starter.start()
        starter.join(timeout=1.0)
        assert starter.is_alive()  # waiting for the open write, no file touched yet
        writer.execute("COMMIT")
        starter.join(timeout=30)
    assert not starter.is_alive()
    (again,) = opened
    try:
        assert again.reconcile_report.orphan_files_removed == 0
        assert again.get_tile(12, 7, 3, "satellite").data == data
        assert again.get_metadata(meta.tile_id).content_sha256 == sha(data)
    finally:
        again.close()
