"""Operator CLI for the tile cache, usable without ROS.

::

    python -m gps_denied_onboard.tile_cache.tools dump [--zoom Z] [--source S] [--json]
    python -m gps_denied_onboard.tile_cache.tools dump --stats
    python -m gps_denied_onboard.tile_cache.tools verify [--json]
    python -m gps_denied_onboard.tile_cache.tools migrate
    python -m gps_denied_onboard.tile_cache.tools import ORTHO.tif [ORTHO2.tif ...] \
        --source S --captured YYYY-MM-DD [--zoom Z ...] [--json]

Configuration comes from ``--params-file`` (the node's ROS parameter YAML,
default ``config/tile_cache.yaml`` when present) with ``--dsn`` and
``--tile-root`` on top; with no DSN the embedded cluster is used (started if
needed, stopped again if this command started it). ``dump`` and ``verify``
only read: they never reconcile, evict or repair. ``import`` cuts an
orthophoto GeoTIFF into the cache's tiles (:mod:`.orthophoto_import`); it
migrates the database first and takes the tile root's lock, so it fails
(status 3, ``TileRootLockedError``) while the tile_cache node runs on it.

Exit status: 0 fine, 1 ``verify`` found problems or ``import`` saw tiles evicted
(the area does not fit the disk budget), 2 usage or configuration error, an
orthophoto that cannot be read or placed, or an import refused before it stored
anything (a zoom or source refused, too many tiles), 3 the database or the files
could not be read or written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from gps_denied_onboard.clock import SystemClock
from gps_denied_onboard.config import build_config, load_ros_params_file
from gps_denied_onboard.errors import GpsDeniedError
from gps_denied_onboard.records import MemorySink
from gps_denied_onboard.replay.geotiff import GeoTiffTooLarge
from gps_denied_onboard.tile_cache import pixels
from gps_denied_onboard.tile_cache.config import TileCacheConfig
from gps_denied_onboard.tile_cache.database import open_database
from gps_denied_onboard.tile_cache.errors import TileValidationError
from gps_denied_onboard.tile_cache.migrations import apply_migrations
from gps_denied_onboard.tile_cache.model import metadata_dict
from gps_denied_onboard.tile_cache.orthophoto_import import (
    ImportReport,
    default_zooms,
    import_orthophotos,
)
from gps_denied_onboard.tile_cache.store import PostgresFilesystemStore
from gps_denied_onboard.visual_nav.orthophoto import Orthophoto

NODE_NAME = "tile_cache"
DEFAULT_PARAMS = Path("config/tile_cache.yaml")
#: what ``import`` lets its images take decoded, together, by default (MiB): a NAIP
#: quarter quad at 0.6 m is about 330; the cutting holds a few times the 8-bit pixels
#: more, and the flight's nodes may share the machine
MAX_DECODED_MB = 2048.0


def _config(args: argparse.Namespace) -> TileCacheConfig:
    values: dict[str, Any] = {}
    params = args.params_file
    if params is None and DEFAULT_PARAMS.is_file():
        params = DEFAULT_PARAMS
    if params is not None:
        values.update(load_ros_params_file(Path(params), NODE_NAME))
    if args.dsn is not None:
        values["dsn"] = args.dsn
    if args.tile_root is not None:
        values["tile_root"] = args.tile_root
    return build_config(TileCacheConfig, values)


@contextmanager
def _store(config: TileCacheConfig, *, read_only: bool = True) -> Iterator[PostgresFilesystemStore]:
    db = open_database(config)
    try:
        cfg = replace(config, dsn=db.dsn)
        if not read_only:
            apply_migrations(db.dsn)
        store = PostgresFilesystemStore.from_config(
            cfg,
            SystemClock(),
            MemorySink(),
            logging.getLogger("gdo.tile_cache.tools"),
            read_only=read_only,
        )
        try:
            yield store
        finally:
            store.close()
    finally:
        db.close()


def cmd_dump(store: PostgresFilesystemStore, args: argparse.Namespace, out: TextIO) -> int:
    if args.stats:
        summary = store.summary()
        if args.json:
            out.write(json.dumps(summary, sort_keys=True) + "\n")
        else:
            for key, value in summary.items():
                out.write(f"{key}: {json.dumps(value, sort_keys=True)}\n")
        return 0
    where: dict[str, Any] = {}
    for name in ("zoom", "x", "y", "source", "flight_id"):
        value = getattr(args, name)
        if value is not None:
            where[name] = value
    if args.status is not None:
        where["freshness_status"] = args.status
    shown = 0
    for meta in store.iter_tiles(where):
        if args.pending and not meta.pending_upload:
            continue
        if args.limit and shown >= args.limit:
            break
        shown += 1
        if args.json:
            out.write(json.dumps(metadata_dict(meta), sort_keys=True) + "\n")
        else:
            flight = "-" if meta.flight_id is None else str(meta.flight_id)
            out.write(
                f"{meta.tile_id} {meta.zoom}/{meta.x}/{meta.y} {meta.source} {flight} "
                f"{meta.freshness_status} {meta.content_sha256[:12]} {meta.disk_bytes}B"
                f"{' pending' if meta.pending_upload else ''}\n"
            )
    return 0


def verify(store: PostgresFilesystemStore) -> dict[str, Any]:
    """Re-hash every tile file against the database; list what disagrees.

    Returns:
        ``checked`` (rows), ``ok``, and lists ``hash_mismatches``,
        ``missing_files``, ``bad_sidecars``, ``orphan_files`` and ``temp_files``.
    """
    report: dict[str, Any] = {
        "checked": 0,
        "ok": 0,
        "hash_mismatches": [],
        "missing_files": [],
        "bad_sidecars": [],
        "orphan_files": [],
        "temp_files": [],
    }
    known: set[Path] = set()
    for meta in store.iter_tiles():
        report["checked"] += 1
        jpeg = store.root / pixels.relative_jpeg_path(meta.zoom, meta.x, meta.tile_id)
        sidecar = jpeg.with_suffix(pixels.SIDECAR_SUFFIX)
        known.update((jpeg, sidecar))
        try:
            digest = hashlib.sha256(jpeg.read_bytes()).hexdigest()
        except FileNotFoundError:
            report["missing_files"].append({"tile_id": str(meta.tile_id), "path": str(jpeg)})
            continue
        good = True
        if digest != meta.content_sha256:
            good = False
            report["hash_mismatches"].append(
                {
                    "tile_id": str(meta.tile_id),
                    "path": str(jpeg),
                    "expected": meta.content_sha256,
                    "actual": digest,
                }
            )
        try:
            doc = json.loads(sidecar.read_text())
            if doc.get("content_sha256") != meta.content_sha256 or doc.get("tile_id") != str(
                meta.tile_id
            ):
                raise ValueError("sidecar disagrees with the database")
        except (OSError, ValueError) as err:
            good = False
            report["bad_sidecars"].append(
                {"tile_id": str(meta.tile_id), "path": str(sidecar), "error": str(err)}
            )
        report["ok"] += int(good)
    for f in pixels.scan_tile_files(store.root):
        if f.kind == "tmp":
            report["temp_files"].append(str(f.path))
        elif f.path not in known:
            report["orphan_files"].append(str(f.path))
    return report


def cmd_verify(store: PostgresFilesystemStore, args: argparse.Namespace, out: TextIO) -> int:
    report = verify(store)
    problems = sum(len(v) for v in report.values() if isinstance(v, list))
    if args.json:
        out.write(json.dumps(report, sort_keys=True) + "\n")
    else:
        out.write(f"checked {report['checked']} tiles, {report['ok']} ok, {problems} problems\n")
        for key, items in report.items():
            if isinstance(items, list):
                for item in items:
                    out.write(f"{key}: {json.dumps(item, sort_keys=True)}\n")
    return 1 if problems else 0


def _captured_ns(text: str) -> int:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 time with its offset, as epoch ns."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a date or ISO 8601 time: {text!r}") from err
    if when.tzinfo is None:
        if len(text) > 10:
            raise argparse.ArgumentTypeError(f"a time needs its UTC offset: {text!r}")
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def cmd_import(store: PostgresFilesystemStore, args: argparse.Namespace, out: TextIO) -> int:
    orthos = args.orthophotos_read
    zooms = tuple(args.zoom) if args.zoom else default_zooms(orthos, args.resolution_m)

    def progress(report: ImportReport) -> None:
        if not args.json and report.stored % 320 < 32:  # about every ten batches
            print(f"  stored {report.stored} tiles", file=sys.stderr)

    report = import_orthophotos(
        store,
        orthos,
        source=args.source,
        captured_at_ns=args.captured,
        zooms=zooms,
        jpeg_quality=args.jpeg_quality,
        progress=progress,
    )
    if args.json:
        out.write(json.dumps(asdict(report), sort_keys=True) + "\n")
    else:
        out.write(
            f"zooms {', '.join(map(str, report.zooms))}: {report.stored} tiles stored "
            f"({report.bytes_stored / 1e6:.1f} MB), {report.held} already held, "
            f"{report.empty} outside the image\n"
        )
    if report.evicted:
        print(
            f"gdo-tile-cache: {report.evicted} tiles evicted to keep within the disk budget: "
            "the area does not fit; raise disk_budget_bytes or import less",
            file=sys.stderr,
        )
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="gdo-tile-cache",
        description="Inspect and check the tile cache (read-only); import an orthophoto.",
    )
    ap.add_argument("--params-file", type=Path, help="ROS parameter YAML (tile_cache section)")
    ap.add_argument("--dsn", help="libpq DSN; empty = $GDO_DSN or the embedded cluster")
    ap.add_argument("--tile-root", help="directory holding tiles/")
    sub = ap.add_subparsers(dest="command", required=True)
    dump = sub.add_parser("dump", help="list tiles (filters combine), or --stats")
    dump.add_argument("--zoom", type=int)
    dump.add_argument("--x", type=int)
    dump.add_argument("--y", type=int)
    dump.add_argument("--source")
    dump.add_argument("--flight-id", dest="flight_id")
    dump.add_argument("--status", help="freshness status as stored")
    dump.add_argument("--pending", action="store_true", help="only tiles pending upload")
    dump.add_argument("--limit", type=int, default=0)
    dump.add_argument("--stats", action="store_true", help="totals instead of tiles")
    dump.add_argument("--json", action="store_true", help="one JSON object per line")
    ver = sub.add_parser("verify", help="re-hash every file against the database")
    ver.add_argument("--json", action="store_true")
    sub.add_parser("migrate", help="apply schema migrations up to head")
    imp = sub.add_parser("import", help="cut an orthophoto GeoTIFF into the cache's tiles")
    imp.add_argument(
        "orthophotos",
        type=Path,
        nargs="+",
        help="north-up GeoTIFFs in a projected CRS: every image of the area, in one import",
    )
    imp.add_argument("--source", required=True, help="the imagery's source name (naip...)")
    imp.add_argument(
        "--captured",
        required=True,
        type=_captured_ns,
        help="when the imagery was taken: YYYY-MM-DD (UTC) or ISO 8601 with offset",
    )
    imp.add_argument(
        "--zoom",
        type=int,
        action="append",
        help="a zoom to cut (repeat); default: those visual_nav reads at --resolution-m",
    )
    imp.add_argument(
        "--resolution-m",
        type=float,
        default=5.0,
        dest="resolution_m",
        help="visual_nav's resolution_m, for the default zooms (5)",
    )
    imp.add_argument("--jpeg-quality", type=int, default=90, dest="jpeg_quality")
    imp.add_argument(
        "--max-decoded-mb",
        type=float,
        default=MAX_DECODED_MB,
        dest="max_decoded_mb",
        help="the most the run's images may take decoded, together "
        f"(MiB, {MAX_DECODED_MB:g}): checked before a pixel is read",
    )
    imp.add_argument("--json", action="store_true", help="the report as one JSON object")
    return ap


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        config = _config(args)
    except GpsDeniedError as err:
        print(f"gdo-tile-cache: {err}", file=sys.stderr)
        return 2
    if args.command == "import":
        args.orthophotos_read = []
        # the images of one run are held together (their seams), within one budget
        budget = int(args.max_decoded_mb * 2**20)
        for path in args.orthophotos:  # before the database: a bad file changes nothing
            try:
                ortho = Orthophoto.read(path, max_bytes=budget)
            except (OSError, ValueError) as err:
                print(f"gdo-tile-cache: cannot read {path}: {err}", file=sys.stderr)
                if isinstance(err, GeoTiffTooLarge):
                    print(
                        "gdo-tile-cache: resample it to the pixel size the map needs "
                        "(gdalwarp -tr 2.5 2.5 keeps all visual_nav matches at its 5 m), "
                        "or raise --max-decoded-mb where the memory is there",
                        file=sys.stderr,
                    )
                return 2
            args.orthophotos_read.append(ortho)
            budget -= ortho.pixels.nbytes
    try:
        if args.command == "migrate":
            db = open_database(config)
            try:
                result = apply_migrations(db.dsn)
            finally:
                db.close()
            out.write(
                f"{'applied' if result.applied else 'already at'} {result.to_revision}"
                f" (from {result.from_revision or 'empty'})\n"
            )
            return 0
        if args.command == "import":
            with _store(config, read_only=False) as store:
                try:
                    return cmd_import(store, args, out)
                except TileValidationError as err:  # what was asked, not the store
                    print(f"gdo-tile-cache: {err}", file=sys.stderr)
                    return 2
        with _store(config) as store:
            if args.command == "dump":
                return cmd_dump(store, args, out)
            return cmd_verify(store, args, out)
    except GpsDeniedError as err:
        print(f"gdo-tile-cache: {type(err).__name__}: {err}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
