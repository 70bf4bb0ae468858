"""Reading bags for replay: rosbag2 (sqlite3 or MCAP) and flight-recorder dirs.

Two back ends, one interface (:class:`BagSource`):

* ``rosbags`` (:class:`RosbagsSource`): any rosbag2 directory, ``.mcap`` or
  ``.db3`` file whose topics are all CDR. It is the normal path.
* ``mcap`` (:class:`McapDirSource`): a directory of ``.mcap`` files (or one
  file) read record by record with the ``mcap`` package. Used when rosbags
  refuses the bag, which it does for the flight recorder's segments: they hold
  JSON channels next to the CDR ones (rosbags rejects any non-CDR
  ``serialization_format`` in ``metadata.yaml``, and any MCAP whose profile is
  not ``ros2``), and a segment cut short by a power loss has no footer. This
  reader keeps the CDR channels (``message_encoding == "cdr"``), notes every
  other channel in :attr:`BagSource.skipped`, and stops cleanly at the end of
  a truncated file (noted too).

Both yield raw CDR bytes; nothing is deserialised.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gps_denied_onboard.replay.errors import BagOpenError

#: QoS depth used when the bag says nothing (and the floor otherwise).
DEFAULT_QOS_DEPTH = 100


@dataclass(frozen=True)
class QosSpec:
    """The publisher QoS to offer for one topic; ROS-free.

    Attributes:
        reliability: ``"reliable"`` or ``"best_effort"``.
        durability: ``"volatile"`` or ``"transient_local"``.
        depth: KEEP_LAST depth.
    """

    reliability: str = "reliable"
    durability: str = "volatile"
    depth: int = DEFAULT_QOS_DEPTH


def qos_from_offered(profiles: Sequence[Any]) -> QosSpec:
    """Pick a publisher QoS from a topic's recorded offered profiles.

    Same rule as ``ros2 bag play``: reliable only if every recorded publisher
    offered reliable, transient-local only if every one offered it, so that
    every original subscriber still matches. The depth is the recorded one but
    never below :data:`DEFAULT_QOS_DEPTH`. No profile: reliable, volatile, 100.

    Args:
        profiles: ``rosbags.interfaces.Qos`` values (anything with
            ``reliability``/``durability`` enums and ``depth``).
    """
    if not profiles:
        return QosSpec()
    reliable = all(getattr(p.reliability, "name", "") == "RELIABLE" for p in profiles)
    transient = all(getattr(p.durability, "name", "") == "TRANSIENT_LOCAL" for p in profiles)
    depth = max([DEFAULT_QOS_DEPTH, *(int(p.depth) for p in profiles)])
    return QosSpec(
        reliability="reliable" if reliable else "best_effort",
        durability="transient_local" if transient else "volatile",
        depth=depth,
    )


@dataclass(frozen=True)
class BagTopic:
    """One playable topic of a bag.

    Attributes:
        name: recorded topic name.
        msgtype: ``pkg/msg/Type``.
        count: messages recorded on it.
        qos: publisher QoS chosen from the recorded profiles.
    """

    name: str
    msgtype: str
    count: int
    qos: QosSpec = field(default_factory=QosSpec)


@dataclass(frozen=True)
class BagMessage:
    """One recorded message: topic, receive time (ns since epoch), CDR bytes."""

    topic: str
    timestamp_ns: int
    data: bytes


class BagSource(Protocol):
    """What the player needs from a bag."""

    path: Path
    backend: str
    topics: dict[str, BagTopic]
    skipped: list[str]
    start_ns: int
    end_ns: int

    def messages(self, topics: Sequence[str] = (), start_ns: int | None = None
                 ) -> Iterator[BagMessage]:
        """Messages of ``topics`` (all if empty) at or after ``start_ns``, in bag order."""
        ...

    def close(self) -> None:
        """Release files."""
        ...


class RosbagsSource:
    """A bag read with ``rosbags.rosbag2.Reader`` (sqlite3 or MCAP storage)."""

    backend = "rosbags"

    def __init__(self, path: Path) -> None:
        from rosbags.rosbag2 import Reader

        self.path = path
        self.skipped: list[str] = []
        try:
            self._reader = Reader(path)
            self._reader.open()
        except Exception as err:
            raise BagOpenError(f"rosbags cannot open {path}: {err}", path=str(path)) from err
        self.topics: dict[str, BagTopic] = {}
        by_topic: dict[str, list[Any]] = {}
        for conn in self._reader.connections:
            by_topic.setdefault(conn.topic, []).append(conn)
        for name in sorted(by_topic):
            conns = by_topic[name]
            types = {c.msgtype for c in conns}
            if len(types) != 1:
                self.skipped.append(f"{name}: several types recorded ({sorted(types)})")
                continue
            profiles = [q for c in conns for q in c.ext.offered_qos_profiles]
            self.topics[name] = BagTopic(name, types.pop(), sum(c.msgcount for c in conns),
                                         qos_from_offered(profiles))
        count = self._reader.message_count
        self.start_ns = int(self._reader.start_time) if count else 0
        self.end_ns = int(self._reader.end_time) - 1 if count else 0

    def messages(self, topics: Sequence[str] = (), start_ns: int | None = None
                 ) -> Iterator[BagMessage]:
        wanted = set(topics) if topics else set(self.topics)
        conns = [c for c in self._reader.connections if c.topic in wanted and
                 c.topic in self.topics]
        if not conns:
            return
        for conn, stamp, data in self._reader.messages(conns, start=start_ns):
            yield BagMessage(conn.topic, int(stamp), bytes(data))

    def close(self) -> None:
        if self._reader.is_open:
            self._reader.close()


@dataclass
class _Channel:
    topic: str
    msgtype: str
    encoding: str
    schema_encoding: str
    qos: QosSpec


class McapDirSource:
    """MCAP files read with the ``mcap`` package; CDR channels only.

    Args:
        path: a directory (every ``*.mcap`` in it, in the order of
            ``metadata.yaml``'s ``relative_file_paths`` when there is one, else
            by name) or a single ``.mcap`` file.
    """

    backend = "mcap"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files = _mcap_files(path)
        if not self.files:
            raise BagOpenError(f"no .mcap files in {path}", path=str(path))
        self.skipped: list[str] = []
        self.topics: dict[str, BagTopic] = {}
        counts: dict[str, int] = {}
        types: dict[str, str] = {}
        qos: dict[str, QosSpec] = {}
        noncdr: dict[str, str] = {}
        start = None
        end = None
        for file_path in self.files:
            channels: dict[int, _Channel] = {}
            for record in self._records(file_path, note=True):
                if isinstance(record, _ChannelRecord):
                    channels[record.id] = record.channel
                    continue
                chan = channels.get(record.channel_id)
                if chan is None:
                    continue
                if chan.encoding != "cdr":
                    what = chan.msgtype or "no schema"
                    noncdr.setdefault(chan.topic, f"{chan.encoding} ({what})")
                    continue
                known = types.setdefault(chan.topic, chan.msgtype)
                if known != chan.msgtype:
                    noncdr.setdefault(chan.topic, f"several types ({known}, {chan.msgtype})")
                    continue
                qos.setdefault(chan.topic, chan.qos)
                counts[chan.topic] = counts.get(chan.topic, 0) + 1
                stamp = record.log_time
                start = stamp if start is None else min(start, stamp)
                end = stamp if end is None else max(end, stamp)
        for topic, why in sorted(noncdr.items()):
            self.skipped.append(f"{topic}: not replayed, {why}")
            counts.pop(topic, None)
        for topic in sorted(counts):
            self.topics[topic] = BagTopic(topic, types[topic], counts[topic], qos[topic])
        self.start_ns = start or 0
        self.end_ns = end or 0

    def _records(self, file_path: Path, *, note: bool) -> Iterator[Any]:
        """Channel definitions and messages of one file, tolerating a cut-off end."""
        from mcap.exceptions import McapError
        from mcap.records import Channel, Message, Schema
        from mcap.stream_reader import StreamReader

        schemas: dict[int, tuple[str, str]] = {}
        with file_path.open("rb") as stream:
            reader = StreamReader(stream, record_size_limit=1 << 30)
            try:
                for record in reader.records:
                    if isinstance(record, Schema):
                        schemas[record.id] = (record.name, record.encoding)
                    elif isinstance(record, Channel):
                        name, schema_enc = schemas.get(record.schema_id, ("", ""))
                        profiles = _qos_from_metadata(record.metadata.get("offered_qos_profiles"))
                        yield _ChannelRecord(record.id, _Channel(
                            record.topic, name, record.message_encoding, schema_enc, profiles))
                    elif isinstance(record, Message):
                        yield record
            except (McapError, EOFError, ValueError, OSError, struct.error) as err:
                if note:
                    self.skipped.append(f"{file_path.name}: read stopped early ({err!r}); "
                                        "messages before that point are replayed")

    def messages(self, topics: Sequence[str] = (), start_ns: int | None = None
                 ) -> Iterator[BagMessage]:
        wanted = set(topics) if topics else set(self.topics)
        wanted &= set(self.topics)
        if not wanted:
            return
        streams = [self._file_messages(i, p, wanted, start_ns) for i, p in enumerate(self.files)]
        for _stamp, _index, _seq, msg in heapq.merge(*streams):
            yield msg

    def _file_messages(self, index: int, file_path: Path, wanted: set[str],
                       start_ns: int | None) -> Iterator[tuple[int, int, int, BagMessage]]:
        channels: dict[int, _Channel] = {}
        seq = 0
        for record in self._records(file_path, note=False):
            if isinstance(record, _ChannelRecord):
                channels[record.id] = record.channel
                continue
            chan = channels.get(record.channel_id)
            if chan is None or chan.topic not in wanted or chan.encoding != "cdr":
                continue
            if start_ns is not None and record.log_time < start_ns:
                continue
            seq += 1
            yield (record.log_time, index, seq,
                   BagMessage(chan.topic, int(record.log_time), bytes(record.data)))

    def close(self) -> None:
        """Nothing stays open between reads."""


@dataclass(frozen=True)
class _ChannelRecord:
    id: int
    channel: _Channel


def _qos_from_metadata(text: str | None) -> QosSpec:
    if not text:
        return QosSpec()
    try:
        from rosbags.rosbag2.metadata import parse_qos

        return qos_from_offered(parse_qos(text))
    except Exception:  # a malformed profile string must not stop a replay
        return QosSpec()


def _mcap_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix == ".mcap" else []
    meta = path / "metadata.yaml"
    if meta.exists():
        try:
            import yaml

            info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
            listed = [path / Path(p).name for p in info.get("relative_file_paths", [])]
            listed = [p for p in listed if p.suffix == ".mcap" and p.exists()]
            rest = sorted(p for p in path.glob("*.mcap") if p not in listed)
            if listed:
                return [*listed, *rest]
        except Exception:  # fall back to the files on disk, sorted by name
            return sorted(path.glob("*.mcap"))
    return sorted(path.glob("*.mcap"))


def is_fdr_flight_dir(path: Path) -> bool:
    """Whether ``path`` is a flight recorder's flight directory (``custom_data`` ``fdr.*``).

    Such a directory is a rosbag2 bag whose ``metadata.yaml`` lists only the
    CDR topics; its segments also hold JSON channels (the FDR records) and the
    last one may be torn, so it is read with :class:`McapDirSource`.
    """
    meta = path / "metadata.yaml"
    try:
        import yaml

        info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
        custom = info.get("custom_data") or {}
    except Exception:  # not readable as rosbag2 metadata: not an FDR dir
        return False
    return isinstance(custom, dict) and "fdr.flight_id" in custom


def open_bag(path: str | Path, backend: str = "auto") -> BagSource:
    """Open a bag for replay.

    Args:
        path: rosbag2 directory, ``.mcap`` or ``.db3`` file, or a flight
            recorder's flight directory.
        backend: ``"rosbags"``, ``"mcap"`` or ``"auto"`` (rosbags, and the
            ``mcap`` reader for FDR flight directories and when rosbags
            refuses an MCAP bag).

    Raises:
        BagOpenError: no back end can read it.
    """
    bag_path = Path(path)
    if not bag_path.exists():
        raise BagOpenError(f"{bag_path} does not exist", path=str(bag_path))
    if backend == "rosbags":
        return RosbagsSource(bag_path)
    if backend == "mcap":
        return McapDirSource(bag_path)
    if backend != "auto":
        raise BagOpenError(f"unknown backend {backend!r}", path=str(bag_path))
    if bag_path.is_dir() and (
        not (bag_path / "metadata.yaml").exists() or is_fdr_flight_dir(bag_path)
    ):
        return McapDirSource(bag_path)
    try:
        return RosbagsSource(bag_path)
    except BagOpenError as first:
        if not _mcap_files(bag_path):
            raise
        source = McapDirSource(bag_path)
        source.skipped.insert(0, f"rosbags refused the bag ({first.__cause__}); "
                                 "read with the mcap reader, CDR channels only")
        return source
