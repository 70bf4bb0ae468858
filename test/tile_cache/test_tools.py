"""The operator CLI: dump, stats, verify, migrate (ROS-free)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest

from gps_denied_onboard.tile_cache.config import TileCacheConfig
from gps_denied_onboard.tile_cache.database import open_database
from gps_denied_onboard.tile_cache.model import TileWrite
from gps_denied_onboard.tile_cache.store import PostgresFilesystemStore
from gps_denied_onboard.tile_cache.tools import main

from .conftest import make_jpeg, sha

FLIGHT = "6f1c2a7e-93b4-4d0a-9e51-0c8d2f4b7a13"


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


@pytest.fixture
def filled(store: PostgresFilesystemStore, tile_config: TileCacheConfig) -> list[str]:
    ids = []
    for i, (source, flight) in enumerate(
        [("satellite", None), ("naip", None), ("in_flight", FLIGHT)]
    ):
        data = make_jpeg(i)
        meta = store.put_tile(
            TileWrite(
                zoom=14,
                x=10 + i,
                y=20,
                source=source,
                flight_id=flight,
                data=data,
                content_sha256=sha(data),
            )
        )
        ids.append(str(meta.tile_id))
    return ids


def common(cfg: TileCacheConfig) -> list[str]:
    return ["--dsn", cfg.dsn, "--tile-root", str(cfg.tile_root)]


def test_dump_lists_and_filters(filled: list[str], tile_config: TileCacheConfig) -> None:
    code, text = run(*common(tile_config), "dump")
    assert code == 0 and len(text.splitlines()) == 3
    code, text = run(*common(tile_config), "dump", "--source", "naip", "--json")
    (line,) = text.splitlines()
    assert json.loads(line)["tile_id"] == filled[1]
    code, text = run(*common(tile_config), "dump", "--pending", "--json")
    assert [json.loads(ln)["tile_id"] for ln in text.splitlines()] == [filled[2]]
    code, text = run(*common(tile_config), "dump", "--flight-id", FLIGHT)
    assert filled[2] in text and "pending" in text


def test_dump_stats(filled: list[str], tile_config: TileCacheConfig) -> None:
    code, text = run(*common(tile_config), "dump", "--stats", "--json")
    stats = json.loads(text)
    assert code == 0
    assert stats["tiles"] == 3 and stats["pending_upload"] == 1
    assert stats["by_source"] == {"in_flight": 1, "naip": 1, "satellite": 1}
    assert stats["by_zoom"] == {"14": 3}


def test_verify_clean_then_reports_every_kind_of_damage(
    filled: list[str], tile_config: TileCacheConfig
) -> None:
    assert run(*common(tile_config), "verify")[0] == 0
    root = tile_config.tile_root / "tiles" / "14"
    (root / "10" / f"{filled[0]}.jpg").write_bytes(make_jpeg(99))  # bit rot
    (root / "11" / f"{filled[1]}.jpg").unlink()  # lost file
    (root / "12" / f"{filled[2]}.json").write_text("{not json")
    orphan = root / "13" / f"{uuid.uuid4()}.jpg"
    orphan.parent.mkdir()
    orphan.write_bytes(make_jpeg(5))
    (root / "10" / ".x.jpg.tmp-0000").write_bytes(b"")
    code, text = run(*common(tile_config), "verify", "--json")
    report = json.loads(text)
    assert code == 1
    assert [m["tile_id"] for m in report["hash_mismatches"]] == [filled[0]]
    assert [m["tile_id"] for m in report["missing_files"]] == [filled[1]]
    assert [m["tile_id"] for m in report["bad_sidecars"]] == [filled[2]]
    assert report["orphan_files"] == [str(orphan)]
    assert len(report["temp_files"]) == 1
    # verify is read-only: the damage is still there
    assert orphan.exists()


def test_migrate_and_bad_config(pg_dsn: str, tmp_path: Path) -> None:
    code, text = run("--dsn", pg_dsn, "--tile-root", str(tmp_path), "migrate")
    assert code == 0 and text.startswith("applied")
    assert run("--dsn", pg_dsn, "migrate")[1].startswith("already at")
    params = tmp_path / "p.yaml"
    params.write_text("tile_cache:\n  ros__parameters:\n    pool_max: 0\n")
    assert run("--params-file", str(params), "dump")[0] == 2


def test_runs_as_a_module_without_ros(filled: list[str], tile_config: TileCacheConfig) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, runpy; sys.modules['rclpy'] = None; "
            "sys.argv = ['tools'] + sys.argv[1:]; "
            "runpy.run_module('gps_denied_onboard.tile_cache.tools', run_name='__main__')",
            *common(tile_config),
            "dump",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 3


def test_embedded_cluster_is_used_when_no_dsn_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GDO_DSN", raising=False)
    base = Path(tempfile.mkdtemp(prefix="gdo-tc-embedded-"))
    base.chmod(0o755)
    cfg = TileCacheConfig(dsn="", tile_root=base / "tiles")
    db = open_database(cfg)
    try:
        assert str(base / "pg") in db.dsn and db.started is not None
        with psycopg.connect(db.dsn) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("gps_denied",)
        again = open_database(cfg)  # already running: used, not owned
        assert again.started is None and again.dsn == db.dsn
    finally:
        db.close()
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    assert not os.path.exists(base)
