"""One read-write owner per tile root (issue #12): a second store is refused
while the first writes, in this process and in another; read-only access
(operator tools) during writes deletes nothing."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import psycopg
import pytest

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.records import MemorySink
from gps_denied_onboard.tile_cache import pixels, tools
from gps_denied_onboard.tile_cache.config import TileCacheConfig
from gps_denied_onboard.tile_cache.errors import TileRootLockedError, TileStoreReadOnlyError
from gps_denied_onboard.tile_cache.model import TileWrite
from gps_denied_onboard.tile_cache.store import PostgresFilesystemStore

from .conftest import make_jpeg, sha

Z, X, Y = 15, 17437, 11371
LOG = logging.getLogger("test.tile_cache.ownership")


def write(i: int) -> TileWrite:
    data = make_jpeg(i)
    return TileWrite(
        zoom=Z, x=X + i % 50, y=Y + i // 50, source="satellite", data=data, content_sha256=sha(data)
    )


def open_store(config: TileCacheConfig, **kw: bool) -> PostgresFilesystemStore:
    return PostgresFilesystemStore.from_config(config, ManualClock(), MemorySink(), LOG, **kw)


def stored_rows(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {str(r[0]) for r in conn.execute("SELECT tile_uuid FROM tiles").fetchall()}


def jpeg_ids(root: Path) -> set[str]:
    return {
        str(f.tile_id)
        for f in pixels.scan_tile_files(root)
        if f.kind == "jpeg" and f.tile_id is not None
    }


def test_second_owner_is_refused_while_the_first_writes(tile_config: TileCacheConfig) -> None:
    first = open_store(tile_config)
    done = threading.Event()
    written: list[str] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(120):
                written.append(str(first.put_tile(write(i)).tile_id))
        except BaseException as err:  # surfaced below
            errors.append(err)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    refusals = 0
    try:
        while not done.is_set() or refusals == 0:
            with pytest.raises(TileRootLockedError) as info:
                open_store(tile_config)
            assert info.value.holder_pid == os.getpid()
            assert str(tile_config.tile_root) in str(info.value)
            refusals += 1
    finally:
        thread.join()
    assert errors == []
    assert refusals >= 1
    # nothing the first store committed was taken away by the refused second one
    assert stored_rows(tile_config.dsn) == set(written)
    assert jpeg_ids(Path(tile_config.tile_root)) == set(written)
    first.close()
    # the lock goes with the owner: a new owner opens and finds everything
    again = open_store(tile_config)
    try:
        assert again.reconcile_report.orphan_rows_removed == 0
        assert again.stats().tiles == 120
    finally:
        again.close()


def test_owner_in_another_process_refuses_this_one_until_it_dies(
    tile_config: TileCacheConfig, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        import logging, pathlib, time
        from gps_denied_onboard.clock import SystemClock
        from gps_denied_onboard.records import MemorySink
        from gps_denied_onboard.tile_cache.config import TileCacheConfig
        from gps_denied_onboard.tile_cache.store import PostgresFilesystemStore
        root = pathlib.Path({str(tile_config.tile_root)!r})
        cfg = TileCacheConfig(dsn={tile_config.dsn!r}, tile_root=root)
        log = logging.getLogger()
        store = PostgresFilesystemStore.from_config(cfg, SystemClock(), MemorySink(), log)
        pathlib.Path({str(ready)!r}).write_text("x")
        time.sleep(120)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(600):
            if ready.exists() or proc.poll() is not None:
                break
            threading.Event().wait(0.05)
        assert ready.exists(), "the owner process did not start"
        with pytest.raises(TileRootLockedError) as info:
            open_store(tile_config)
        assert info.value.holder_pid == proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    open_store(tile_config).close()  # kill -9 left no stale lock


def test_read_only_tools_during_writes_delete_nothing(tile_config: TileCacheConfig) -> None:
    owner = open_store(tile_config)
    owner.put_tile(write(1000))
    done = threading.Event()
    written: list[str] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(80):
                written.append(str(owner.put_tile(write(i)).tile_id))
        except BaseException as err:
            errors.append(err)
        finally:
            done.set()

    args = ["--dsn", str(tile_config.dsn), "--tile-root", str(tile_config.tile_root)]
    thread = threading.Thread(target=writer)
    thread.start()
    runs = 0
    try:
        while not done.is_set() or runs < 2:
            out = io.StringIO()
            # verify may see a tile between its row and its files: a report, never a repair
            assert tools.main([*args, "verify", "--json"], out=out) in (0, 1)
            assert tools.main([*args, "dump", "--stats"], out=io.StringIO()) == 0
            runs += 1
    finally:
        thread.join()
    assert errors == []
    expected = set(written) | {str(owner.find(Z, X, Y + 20, "satellite").tile_id)}  # type: ignore[union-attr]
    assert stored_rows(tile_config.dsn) == expected
    assert jpeg_ids(Path(tile_config.tile_root)) == expected
    out = io.StringIO()
    assert tools.main([*args, "verify"], out=out) == 0, out.getvalue()
    owner.close()


def test_read_only_store_refuses_every_write(tile_config: TileCacheConfig) -> None:
    owner = open_store(tile_config)
    meta = owner.put_tile(write(1))
    reader = open_store(tile_config, read_only=True)  # beside the owner: no lock needed
    try:
        assert reader.read_tile(meta.tile_id).data == make_jpeg(1)
        for call in (
            lambda: reader.put_tile(write(2)),
            reader.evict_to_budget,
            lambda: reader.mark_uploaded([meta.tile_id]),
            lambda: reader.record_vote(meta.location_hash, agree=True),
            lambda: reader.set_sector("s", "urban", None),
            reader.refresh_freshness,
            reader.maintain,
        ):
            with pytest.raises(TileStoreReadOnlyError):
                call()
        assert reader.flush_access() == 0  # reads leave no access-time writes behind
    finally:
        reader.close()
        owner.close()
    assert stored_rows(tile_config.dsn) == {str(meta.tile_id)}
