"""A crash at any point of a write leaves the old state or the new one after the
next construction's reconciliation, never a half tile.

Each case runs a real writer process and kills it (``os._exit``, no cleanup,
no rollback from our side: PostgreSQL sees the connection drop) at one step of
the write: before each fsync and each rename, and after the commit.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

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
    ("fsync:3", "old"),  # both renamed, directory not yet fsync'ed, no commit
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
