"""The filesystem half of the store: where tile files live and how they are
written and read.

Layout under ``tile_root``::

    tiles/<zoom>/<x>/<tile_id>.jpg     the JPEG, byte-identical to what was put
    tiles/<zoom>/<x>/<tile_id>.json    its sidecar (metadata for offline tools)
    tiles/<zoom>/<x>/.<name>.tmp-<hex> a write in progress

Every path component is an integer or a UUID the store derived itself; no
caller string (source, flight id) ever reaches a path. A file is written to a
temporary name, fsync'ed, renamed over its final name, and the directory is
fsync'ed, so a crash leaves either no file or the whole file.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from uuid import UUID

from gps_denied_onboard.durable import fsync_dir
from gps_denied_onboard.tile_cache.errors import TilePixelError, TileValidationError

TILES_DIR: Final = "tiles"
JPEG_SUFFIX: Final = ".jpg"
SIDECAR_SUFFIX: Final = ".json"
TMP_MARK: Final = ".tmp-"
SIDECAR_SCHEMA: Final = "gdo.tile_sidecar/1"

_SOI = b"\xff\xd8\xff"
_EOI = b"\xff\xd9"


def check_jpeg(data: bytes, max_bytes: int) -> None:
    """Refuse bytes that are empty, too large, or not a complete JPEG.

    Raises:
        TileValidationError: ``field="data"``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TileValidationError("tile data must be bytes", field="data")
    size = len(data)
    if size > max_bytes:
        raise TileValidationError(f"tile is {size} bytes, limit {max_bytes}", field="data")
    if size < len(_SOI) + len(_EOI) or bytes(data[:3]) != _SOI:
        raise TileValidationError("tile data is not a JPEG (no SOI marker)", field="data")
    if bytes(data[-2:]) != _EOI and bytes(data).rstrip(b"\x00")[-2:] != _EOI:
        raise TileValidationError("tile data is not a complete JPEG (no EOI marker)", field="data")


def relative_dir(zoom: int, x: int) -> str:
    return f"{TILES_DIR}/{int(zoom)}/{int(x)}"


def relative_jpeg_path(zoom: int, x: int, tile_id: UUID) -> str:
    return f"{relative_dir(zoom, x)}/{UUID(str(tile_id))}{JPEG_SUFFIX}"


def render_sidecar(fields: Mapping[str, Any]) -> bytes:
    """The sidecar's bytes: canonical JSON, one object, newline-terminated."""
    doc = {"schema": SIDECAR_SCHEMA, **fields}
    return (json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str) + "\n").encode()


def ensure_dir(root: Path, rel: str) -> Path:
    """Create ``root/rel`` and fsync every parent whose entries changed."""
    target = root / rel
    if target.is_dir():
        return target
    created: list[Path] = []
    current = target
    while not current.exists():
        created.append(current)
        current = current.parent
    for path in reversed(created):
        with contextlib.suppress(FileExistsError):
            path.mkdir()
        fsync_dir(path.parent)
    return target


def tmp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}{TMP_MARK}{secrets.token_hex(4)}")


def start_writeback(fd: int) -> None:
    """Ask the kernel to start writing ``fd``'s dirty pages now, without waiting
    (Linux: ``POSIX_FADV_DONTNEED`` initiates writeback; pages still dirty or
    under writeback stay cached). Only a hint: durability is still the fsync's."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):
            advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@dataclass(frozen=True)
class Staged:
    """A file whose bytes are durable under ``tmp``, not yet renamed to ``final``."""

    tmp: Path
    final: Path


def stage_files(files: Sequence[tuple[Path, bytes]]) -> list[Staged]:
    """Write each ``(final_path, data)`` to a temporary name beside it and make
    it durable; nothing is renamed (see :func:`publish_files`). The parent
    directories must exist.

    Phases, each over the whole set: create and fill the temporary files,
    start their writeback, fsync them. Filling every file before the first
    fsync matters (creating a file while the journal commits an earlier fsync
    waits for that commit), and so does starting every file's writeback before
    the first fsync: the first journal commit then carries all of them and the
    later fsyncs find little left to do. PostgreSQL's ``pg_flush_data`` uses
    the same hint.

    Raises:
        OSError: anything the filesystem refused; temporaries are removed.
    """
    staged: list[tuple[Path, Path, int]] = []
    try:
        for final, data in files:
            tmp = tmp_name(final)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            staged.append((tmp, final, fd))
            _write_all(fd, data)
        for _, _, fd in staged:
            start_writeback(fd)
        for _, _, fd in staged:
            os.fsync(fd)
        for i, (tmp, final, fd) in enumerate(staged):
            os.close(fd)
            staged[i] = (tmp, final, -1)
    except BaseException:
        for tmp, _, fd in staged:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    return [Staged(tmp, final) for tmp, final, _ in staged]


def publish_files(staged: Sequence[Staged]) -> None:
    """Rename each staged temporary over its final name, all or none. The
    names are not durable until their directories are fsync'ed
    (:func:`sync_dirs`); the bytes already are, so a name that survives a
    crash has its whole file.

    Raises:
        OSError: a rename failed; what was renamed is unlinked again and the
            other temporaries are removed.
    """
    done = 0
    try:
        for s in staged:
            os.rename(s.tmp, s.final)
            done += 1
    except BaseException:
        for i, s in enumerate(staged):
            with contextlib.suppress(OSError):
                os.unlink(s.final if i < done else s.tmp)
        raise


def sync_dirs(paths: Iterable[Path]) -> None:
    """fsync the directory of each path, each directory once, making the
    renames and creations in them durable.

    Raises:
        OSError: an fsync failed.
    """
    for directory in dict.fromkeys(path.parent for path in paths):
        fsync_dir(directory)


def write_files_atomically(files: Sequence[tuple[Path, bytes]]) -> None:
    """Write each ``(final_path, data)`` so that a crash leaves, per file, either
    nothing new or the whole file; the parent directories must exist.

    :func:`stage_files` (temporaries, durable), :func:`publish_files` (renamed
    over their final names), :func:`sync_dirs` (each directory fsync'ed once).

    Raises:
        OSError: anything the filesystem refused; temporaries are removed
            (files renamed before a failed directory fsync are the caller's
            to remove).
    """
    staged = stage_files(files)
    publish_files(staged)
    sync_dirs(s.final for s in staged)


def remove_files(paths: Sequence[Path]) -> None:
    """Unlink what exists of ``paths`` and fsync their directories."""
    dirs: set[Path] = set()
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            dirs.add(path.parent)
    for directory in dirs:
        with contextlib.suppress(OSError):
            fsync_dir(directory)


@dataclass(frozen=True)
class ScannedFile:
    path: Path
    tile_id: UUID | None
    kind: str  # "jpeg", "sidecar", "tmp", "other"


def scan_tile_files(root: Path) -> Iterator[ScannedFile]:
    """Every file under ``root/tiles``, classified by name."""
    base = root / TILES_DIR
    if not base.is_dir():
        return
    for dirpath, _dirnames, filenames in os.walk(base):
        for name in filenames:
            path = Path(dirpath) / name
            if name.startswith(".") and TMP_MARK in name:
                yield ScannedFile(path, None, "tmp")
                continue
            stem, dot, suffix = name.rpartition(".")
            kind = {"jpg": "jpeg", "json": "sidecar"}.get(suffix) if dot else None
            tile_id: UUID | None = None
            try:
                tile_id = UUID(stem) if kind and len(stem) == 36 else None
            except ValueError:
                tile_id = None
            if kind is None or tile_id is None:
                yield ScannedFile(path, None, "other")
            else:
                yield ScannedFile(path, tile_id, kind)


class MmapTilePixelHandle:
    """A read-only memory map of one tile's JPEG, as a context manager.

    ``with store.open_pixels(tile_id) as handle: decode(handle.view)``. The
    view is valid until the handle is closed; an evicted or replaced file stays
    readable through an open handle (the mapping keeps the inode alive).
    """

    def __init__(self, path: Path, *, tile_id: str | None = None) -> None:
        self.path = path
        self._tile_id = tile_id
        self._map: mmap.mmap | None = None
        self._view: memoryview | None = None

    def open(self) -> MmapTilePixelHandle:
        if self._map is not None:
            raise TilePixelError("handle already open", tile_id=self._tile_id, path=str(self.path))
        try:
            with open(self.path, "rb") as fh:
                self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as err:
            raise TilePixelError(
                f"cannot map {self.path}: {err}", tile_id=self._tile_id, path=str(self.path)
            ) from err
        self._view = memoryview(self._map)
        return self

    @property
    def view(self) -> memoryview:
        if self._view is None:
            raise TilePixelError("handle is not open", tile_id=self._tile_id, path=str(self.path))
        return self._view

    def __len__(self) -> int:
        return len(self.view)

    def read(self) -> bytes:
        return bytes(self.view)

    def close(self) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None
        if self._map is not None:
            self._map.close()
            self._map = None

    def __enter__(self) -> MmapTilePixelHandle:
        return self if self._map is not None else self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
