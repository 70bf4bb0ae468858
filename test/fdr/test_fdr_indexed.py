"""Segments open on the indexed path: a closed one, and a torn one once recovered.

Index-based readers never scan the data section: they read the footer, the
summary (Statistics, Chunk Index records) and then only the chunks and Message
Index records the index points at. Two of them are used here:

* the ``mcap`` Python reader's summary path (``make_reader`` on a seekable file
  is a SeekingReader: ``get_summary()``, then ``iter_messages()`` through the
  chunk indexes, merged into log-time order);
* ``@mcap/core``'s ``McapIndexedReader``, the reader Foxglove opens local MCAP
  files with, run with the machine's Node.js (installed from the npm registry
  into ``~/.cache/gps_denied_onboard/npm`` on first use).

Each must return every message the segment holds (compared with a record-by-record
scan of the same file), in log-time order, and a Statistics record whose
per-channel counts are the real ones. The flights interleave two producers whose
stamps alternate, so file order is not time order and the readers must sort.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from mcap.data_stream import ReadDataStream
from mcap.reader import SeekingReader, make_reader
from mcap.records import Chunk, MessageIndex
from mcap.stream_reader import breakup_chunk

import gps_denied_onboard
from gps_denied_onboard.clock import ManualClock, MonotonicClock
from gps_denied_onboard.errors import ConfigError
from gps_denied_onboard.fdr import FdrConfig, FlightRecorder
from gps_denied_onboard.fdr.config import MAX_SEGMENT_SIZE_BYTES
from gps_denied_onboard.fdr.recover import recover_flight
from gps_denied_onboard.fdr.segment_reader import SegmentReader
from gps_denied_onboard.records import FlightRecord

T0 = 1_778_544_000 * 1_000_000_000
PKG_PARENT = str(Path(gps_denied_onboard.__file__).parents[1])
NODE_SCRIPT = Path(__file__).with_name("mcap_indexed_read.cjs")
MCAP_CORE = "@mcap/core"
MCAP_CORE_VERSION = "2.2.2"
NPM_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / (
    "gps_denied_onboard/npm")
STRING_DEF = "string data\n"

Seen = tuple[str, int, int, bytes]  # topic, log_time, sequence, data


def _cdr_string(text: str) -> bytes:
    raw = text.encode() + b"\x00"
    return b"\x00\x01\x00\x00" + struct.pack("<I", len(raw)) + raw


def _scan(path: Path) -> tuple[list[Seen], bool]:
    """Every message of a segment in file order, read record by record (no index)."""
    reader = SegmentReader(path)
    seen = [(m.channel.topic, m.message.log_time, m.message.sequence, bytes(m.message.data))
            for m in reader.messages()]
    return seen, reader.scan.complete


def _indexed_python(path: Path) -> tuple[list[Seen], dict[str, int], int]:
    """Messages through the summary path, Statistics counts by topic, chunk count."""
    with path.open("rb") as fh:
        reader = make_reader(fh)
        assert isinstance(reader, SeekingReader)
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None
        topics = {cid: ch.topic for cid, ch in summary.channels.items()}
        counts = {topics[cid]: n for cid, n in summary.statistics.channel_message_counts.items()}
        assert summary.statistics.message_count == sum(counts.values())
        assert summary.statistics.chunk_count == len(summary.chunk_indexes) > 0
        seen = [(ch.topic, m.log_time, m.sequence, bytes(m.data))
                for _, ch, m in reader.iter_messages()]
        _check_message_indexes(fh, summary.chunk_indexes)
    return seen, counts, len(summary.chunk_indexes)


def _record(fh: BinaryIO, offset: int) -> tuple[int, bytes]:
    fh.seek(offset)
    opcode, length = struct.unpack("<BQ", fh.read(9))
    return opcode, fh.read(length)


def _check_message_indexes(fh: BinaryIO, chunk_indexes: list[Any]) -> None:
    """Every Message Index entry points at a message of its channel with its log time."""
    for ci in chunk_indexes:
        opcode, body = _record(fh, ci.chunk_start_offset)
        assert opcode == 0x06 and 9 + len(body) == ci.chunk_length
        chunk = Chunk.read(ReadDataStream(_Bytes(body)))
        data = chunk.data
        in_chunk = sum(1 for r in breakup_chunk(chunk, validate_crc=True)
                       if r.__class__.__name__ == "Message")
        indexed = 0
        assert ci.message_index_offsets, "a chunk without message indexes"
        for channel_id, offset in ci.message_index_offsets.items():
            opcode, body = _record(fh, offset)
            assert opcode == 0x07
            index = MessageIndex.read(ReadDataStream(_Bytes(body)))
            assert index.channel_id == channel_id
            for log_time, msg_offset in index.records:
                op, _len, ch, _seq, t = struct.unpack_from("<BQHIQ", data, msg_offset)
                assert (op, ch, t) == (0x05, channel_id, log_time)
                indexed += 1
        assert indexed == in_chunk


class _Bytes:
    """The file-like ReadDataStream needs, over bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def read(self, n: int) -> bytes:
        out = bytes(self._data[self._pos:self._pos + n])
        self._pos += len(out)
        return out


def _time_order(seen: list[Seen]) -> bool:
    return all(a[1] <= b[1] for a, b in pairwise(seen))


# --- the TypeScript reader Foxglove uses ---------------------------------------------


@pytest.fixture(scope="session")
def mcap_core() -> Path:
    """``node_modules`` holding @mcap/core, installed from the npm registry on first use."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm not on PATH: @mcap/core (Foxglove's MCAP reader) not run")
    modules = NPM_DIR / "node_modules"
    package = modules / "@mcap" / "core" / "package.json"
    NPM_DIR.mkdir(parents=True, exist_ok=True)
    with (NPM_DIR / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version(package) != MCAP_CORE_VERSION:
            if not (NPM_DIR / "package.json").exists():
                (NPM_DIR / "package.json").write_text('{"private": true}\n')
            try:
                out = subprocess.run(
                    [npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                     f"{MCAP_CORE}@{MCAP_CORE_VERSION}"],
                    cwd=NPM_DIR, capture_output=True, text=True, timeout=300, check=False)
            except subprocess.TimeoutExpired:
                pytest.skip(f"npm install {MCAP_CORE}@{MCAP_CORE_VERSION} timed out (registry "
                            "unreachable?): Foxglove's MCAP reader not run")
            if out.returncode != 0:
                pytest.skip(f"npm install {MCAP_CORE}@{MCAP_CORE_VERSION} failed (registry "
                            f"unreachable?): {out.stderr.strip()[-300:]}")
    assert _installed_version(package) == MCAP_CORE_VERSION
    return modules


def _installed_version(package: Path) -> str | None:
    try:
        return str(json.loads(package.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def _indexed_node(modules: Path, path: Path) -> dict[str, Any]:
    out = subprocess.run(["node", str(NODE_SCRIPT), str(path)], capture_output=True, text=True,
                         timeout=120, check=False, env={**os.environ, "NODE_PATH": str(modules)})
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _check_node(modules: Path, path: Path, scanned: list[Seen]) -> None:
    got = _indexed_node(modules, path)
    assert got["statistics"] is not None
    assert got["statistics"]["channelMessageCounts"] == dict(Counter(s[0] for s in scanned))
    assert got["statistics"]["messageCount"] == len(scanned)
    seen = [(topic, int(t), seq, n) for topic, t, seq, n in got["messages"]]
    assert sorted(seen) == sorted((s[0], s[1], s[2], len(s[3])) for s in scanned)
    assert all(a[1] <= b[1] for a, b in pairwise(seen))


# --- flights ---------------------------------------------------------------------------


def _fill(rec: FlightRecorder, rounds: int) -> Iterator[int]:
    """Two producers with alternating stamps (emitted in blocks) plus a raw topic."""
    fc = rec.register_client("fc_bridge")
    tiles = rec.register_client("tile_cache")
    for r in range(rounds):
        for i in range(40):
            k = r * 40 + i
            fc.emit(FlightRecord("fc.mode_change", "fc_bridge", T0 + 2 * k, {"mode": f"m{k}"}))
            tiles.emit(FlightRecord("c6.evict", "tile_cache", T0 + 2 * k + 1,
                                    {"tile_id": f"t{k}", "disk_bytes": k}))
        rec.write_raw("/chatter", "std_msgs/msg/String", STRING_DEF, _cdr_string(f"m{r}"),
                      T0 + 80 * r + 3)
        rec.flush()  # one writer batch, hence at least one chunk, per round
        yield r


@dataclass(frozen=True)
class Written:
    path: Path  # the segment
    scanned: list[Seen]  # its messages read record by record, file order


CLOSED_COUNTS = {"/fdr/flight_header": 1, "/fdr/fc.mode_change": 480, "/fdr/c6.evict": 480,
                 "/chatter": 12, "/fdr/flight_footer": 1}


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> Written:
    """A cleanly closed flight of one segment, many small chunks."""
    root = tmp_path_factory.mktemp("closed")
    rec = FlightRecorder(FdrConfig(flight_root=root, free_space_floor_bytes=0),
                         ManualClock(T0), MonotonicClock())
    rec.start()
    try:
        rec.open_flight("I1")
        for _ in _fill(rec, 12):
            pass
        rec.close_flight("I1")
    finally:
        rec.stop()
    path = root / "I1" / "I1_0.mcap"
    scanned, complete = _scan(path)
    assert complete
    assert not _time_order(scanned)  # blocks per producer: the readers must sort
    assert Counter(s[0] for s in scanned) == CLOSED_COUNTS
    return Written(path, scanned)


def test_closed_segment_reads_whole_through_its_index(closed: Written) -> None:
    seen, counts, chunks = _indexed_python(closed.path)
    assert counts == CLOSED_COUNTS
    assert chunks >= 12
    assert sorted(seen) == sorted(closed.scanned) and _time_order(seen)


def test_closed_segment_reads_whole_in_foxglove_s_reader(closed: Written,
                                                          mcap_core: Path) -> None:
    _check_node(mcap_core, closed.path, closed.scanned)


_CRASHING = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from gps_denied_onboard.clock import ManualClock, MonotonicClock
    from gps_denied_onboard.fdr import FdrConfig, FlightRecorder
    from gps_denied_onboard.records import FlightRecord
    T0 = int(sys.argv[2])
    rec = FlightRecorder(FdrConfig(flight_root=Path(sys.argv[1]), free_space_floor_bytes=0),
                         ManualClock(T0), MonotonicClock())
    rec.start()
    rec.open_flight("K1")
    fc = rec.register_client("fc_bridge")
    tiles = rec.register_client("tile_cache")
    k = 0
    while True:
        for _ in range(40):
            fc.emit(FlightRecord("fc.mode_change", "fc_bridge", T0 + 2 * k, {"mode": "m"}))
            tiles.emit(FlightRecord("c6.evict", "tile_cache", T0 + 2 * k + 1,
                                    {"tile_id": "t", "disk_bytes": k}))
            k += 1
        rec.write_raw("/chatter", "std_msgs/msg/String", "string data\\n",
                      b"\\x00\\x01\\x00\\x00\\x03\\x00\\x00\\x00hi\\x00", T0 + 2 * k)
        if k == 4000:
            print("running", flush=True)
        time.sleep(0.001)
    """
)


@pytest.fixture(scope="module")
def recovered(tmp_path_factory: pytest.TempPathFactory) -> Written:
    """A recorder killed with SIGKILL mid-flight, its torn segment recovered."""
    root = tmp_path_factory.mktemp("torn")
    proc = subprocess.Popen([sys.executable, "-c", _CRASHING, str(root), str(T0)],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": PKG_PARENT})
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "running"
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    path = root / "K1" / "K1_0.mcap"
    torn, complete = _scan(path)
    assert not complete and len(torn) > 8000
    result = recover_flight(root / "K1")
    assert [s.segment for s in result.segments] == ["K1_0.mcap"]
    recovered, complete = _scan(path)
    assert complete and recovered == torn  # every readable message kept, in file order
    assert not _time_order(recovered)
    return Written(path, torn)


def test_torn_segment_reads_whole_through_its_index_once_recovered(
    recovered: Written,
) -> None:
    seen, counts, _chunks = _indexed_python(recovered.path)
    assert counts == dict(Counter(s[0] for s in recovered.scanned))
    assert set(counts) == {"/fdr/flight_header", "/fdr/fc.mode_change", "/fdr/c6.evict",
                           "/chatter"}
    assert sorted(seen) == sorted(recovered.scanned) and _time_order(seen)


def test_recovered_segment_reads_whole_in_foxglove_s_reader(recovered: Written,
                                                             mcap_core: Path) -> None:
    _check_node(mcap_core, recovered.path, recovered.scanned)


def test_segment_size_is_capped_below_what_readers_open() -> None:
    assert MAX_SEGMENT_SIZE_BYTES <= 1 << 30  # Foxglove: unindexed files up to 1 GiB
    assert FdrConfig(segment_size_bytes=MAX_SEGMENT_SIZE_BYTES).segment_size_bytes == (
        MAX_SEGMENT_SIZE_BYTES)
    with pytest.raises(ConfigError, match="segment_size_bytes") as err:
        FdrConfig(segment_size_bytes=MAX_SEGMENT_SIZE_BYTES + 1)
    assert err.value.key == "segment_size_bytes"
