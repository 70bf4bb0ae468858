"""``recover``: rewrite torn segments as complete, indexed MCAP files.

A torn segment (kill -9, power loss, a storage error) ends at an arbitrary
byte with no summary, so index-based readers (Foxglove's indexed path, the
``mcap`` reader's summary path, rosbag2) cannot open it. :func:`recover_segment`
copies its readable part (:class:`~gps_denied_onboard.fdr.segment_reader.SegmentReader`)
into a new file written by the ``mcap`` Writer -- chunked, with message
indexes, chunk indexes, Statistics and summary offsets, the same summary a
cleanly closed segment has -- and renames it over the torn one, keeping the
original as ``<segment>.torn``. :func:`recover_flight` does that for a flight
directory, rebuilds ``metadata.yaml`` and logs what was lost in ``recovery.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from mcap.records import Attachment, Channel, DataEnd, Header, Message, Metadata, Schema

from gps_denied_onboard.durable import fsync_dir
from gps_denied_onboard.fdr.segment_reader import (
    FDR_TOPIC_PREFIX,
    SEGMENT_RE,
    FdrToolError,
    SegmentReader,
    flight_segments,
    is_fdr_channel,
)

RECOVERY_REPORT: Final = "recovery.json"


@dataclass
class SegmentRecovery:
    """What ``recover`` did to one torn segment and what was lost."""

    segment: str
    torn_reason: str
    file_bytes: int
    kept_bytes: int
    kept_messages: int
    last_log_ns: int | None
    kept_original_as: str | None
    last_seq: dict[str, int] = field(default_factory=dict)

    @property
    def lost_bytes(self) -> int:
        return self.file_bytes - self.kept_bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "torn_reason": self.torn_reason,
            "file_bytes": self.file_bytes,
            "kept_bytes": self.kept_bytes,
            "lost_bytes": self.lost_bytes,
            "kept_messages": self.kept_messages,
            "last_log_ns": self.last_log_ns,
            "kept_original_as": self.kept_original_as,
            "last_seq_by_producer": dict(sorted(self.last_seq.items())),
        }


def recover_segment(path: Path, *, keep_original: bool = True) -> SegmentRecovery | None:
    """Rewrite a torn segment as a complete MCAP file holding its readable part.

    The new file is written beside the segment, fsynced, then renamed over it,
    so the segment path always names either the torn or the recovered file.
    The torn original is kept as ``<segment>.torn`` unless ``keep_original``
    is false. A segment that is not torn is left alone.

    Returns:
        What was kept and lost, or ``None`` when the segment was not torn.
    """
    from mcap.writer import CompressionType, IndexType
    from mcap.writer import Writer as McapWriter

    path = Path(path)
    probe = SegmentReader(path)
    for _ in probe.messages():
        pass
    if probe.scan.torn is None:
        return None
    reader = SegmentReader(path)
    tmp = path.with_name(path.name + ".recover.tmp")
    last_seq: dict[str, int] = {}
    with tmp.open("wb") as out:
        # The summary a closed segment has: chunk + message indexes, Statistics, summary
        # offsets (all defaults of the mcap Writer, spelled out).
        writer = McapWriter(out, compression=CompressionType.NONE, use_chunking=True,
                            index_types=IndexType.ALL, use_statistics=True,
                            use_summary_offsets=True)
        started = False
        schema_ids: dict[int, int] = {}
        channel_ids: dict[int, int] = {}
        fdr_channels: set[int] = set()

        def start(profile: str = "ros2", library: str = "") -> None:
            nonlocal started
            if not started:
                lib = "gps_denied_onboard.fdr.tools recover" + (
                    f" (from {library})" if library else ""
                )
                writer.start(profile=profile, library=lib)
                started = True

        in_summary = False
        for _s, _e, record in reader.records():
            if isinstance(record, Header):
                start(record.profile, record.library)
                continue
            start()
            if isinstance(record, DataEnd):
                in_summary = True
            if in_summary:
                continue
            if isinstance(record, (Schema, Channel)) and record.id in (
                schema_ids if isinstance(record, Schema) else channel_ids
            ):
                continue  # an identical repeat (earlier recorders wrote each twice)
            if isinstance(record, Schema):
                schema_ids[record.id] = writer.register_schema(
                    record.name, record.encoding, record.data
                )
            elif isinstance(record, Channel):
                fdr_channels.discard(record.id)
                if is_fdr_channel(record):
                    fdr_channels.add(record.id)
                channel_ids[record.id] = writer.register_channel(
                    record.topic,
                    record.message_encoding,
                    schema_ids.get(record.schema_id, 0),
                    dict(record.metadata),
                )
            elif isinstance(record, Message) and record.channel_id in channel_ids:
                writer.add_message(
                    channel_ids[record.channel_id],
                    record.log_time,
                    record.data,
                    record.publish_time,
                    record.sequence,
                )
                if record.channel_id in fdr_channels:
                    _note_seq(record.data, last_seq)
            elif isinstance(record, Metadata):
                writer.add_metadata(record.name, dict(record.metadata))
            elif isinstance(record, Attachment):
                writer.add_attachment(
                    record.create_time, record.log_time, record.name, record.media_type, record.data
                )
        start()
        writer.finish()
        out.flush()
        os.fsync(out.fileno())
    torn = probe.scan.torn
    kept_as: str | None = None
    if keep_original:
        original = path.with_name(path.name + ".torn")
        if not original.exists():
            os.link(path, original)
        kept_as = original.name
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return SegmentRecovery(
        segment=path.name,
        torn_reason=torn.reason,
        file_bytes=torn.file_bytes,
        kept_bytes=torn.offset,
        kept_messages=probe.scan.messages,
        last_log_ns=probe.scan.last_log_ns,
        kept_original_as=kept_as,
        last_seq=last_seq,
    )


def _note_seq(data: bytes, last_seq: dict[str, int]) -> None:
    try:
        body = json.loads(data)
    except ValueError:
        return
    if isinstance(body, dict) and isinstance(body.get("seq"), int):
        last_seq[str(body.get("producer"))] = int(body["seq"])


def rebuild_bag_metadata(flight_dir: Path) -> None:
    """Rewrite ``metadata.yaml`` from the segments on disk (after a crash or ``recover``).

    Uses the recorder's own writer (:func:`gps_denied_onboard.fdr.bag.write_metadata`),
    so a rebuilt file reads exactly like one the recorder wrote. The names of
    segments dropped by the capacity cap and of segments abandoned after a
    storage error are carried over from the previous ``metadata.yaml`` (they
    cannot be seen on disk); a segment ``recover`` rewrote is listed as torn.
    """
    from gps_denied_onboard.fdr.bag import SegmentEntry, write_metadata

    flight_dir = Path(flight_dir)
    custom = _previous_custom_data(flight_dir / "metadata.yaml")
    dropped = _json_list(custom.get("fdr.dropped_segments"))
    torn_before = set(_json_list(custom.get("fdr.torn_segments")))
    entries = []
    closed = False
    flight_id = ""
    for path in flight_segments(flight_dir):
        reader = SegmentReader(path)
        entry = SegmentEntry(name=path.name, index=reader.scan.index or 0)
        for item in reader.messages():
            if item.is_fdr:
                entry.fdr_records += 1
                if item.channel.topic == FDR_TOPIC_PREFIX + "flight_footer":
                    closed = True
                continue
            t = item.message.log_time
            entry.raw_messages += 1
            entry.raw_start_ns = t if entry.raw_start_ns is None else min(entry.raw_start_ns, t)
            entry.raw_end_ns = t if entry.raw_end_ns is None else max(entry.raw_end_ns, t)
            key = (
                item.channel.topic,
                item.schema.name if item.schema else "",
                item.channel.metadata.get("offered_qos_profiles", ""),
            )
            entry.raw_topic_counts[key] = entry.raw_topic_counts.get(key, 0) + 1
        entry.size_bytes = reader.scan.file_bytes
        entry.closed = reader.scan.complete
        entry.torn = path.name in torn_before or path.with_name(path.name + ".torn").exists()
        m = SEGMENT_RE.match(path.name)
        flight_id = m["flight"] if m else flight_id
        entries.append(entry)
    write_metadata(flight_dir, flight_id, entries, closed=closed, dropped=dropped)


def _previous_custom_data(meta_path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(meta_path.read_text()) or {}
        info = loaded.get("rosbag2_bagfile_information") or {}
        custom = info.get("custom_data") or {}
        return dict(custom) if isinstance(custom, dict) else {}
    except (OSError, yaml.YAMLError, AttributeError):
        return {}


def _json_list(text: Any) -> list[str]:
    try:
        value = json.loads(text) if isinstance(text, str) else []
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


@dataclass
class FlightRecovery:
    """``recover``'s result for a flight directory."""

    flight_dir: Path
    segments: list[SegmentRecovery]
    metadata_rebuilt: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "flight_dir": str(self.flight_dir),
            "recovered": [s.as_dict() for s in self.segments],
            "lost_bytes": sum(s.lost_bytes for s in self.segments),
            "metadata_rebuilt": self.metadata_rebuilt,
        }


def recover_flight(flight_dir: Path, *, keep_original: bool = True) -> FlightRecovery:
    """Recover every torn segment of a flight, rebuild ``metadata.yaml``, log the result.

    The report is also appended to ``recovery.json`` in the flight directory,
    so an investigator later sees that the flight was recovered and what was lost.

    Raises:
        FdrToolError: the directory holds no segments.
    """
    flight_dir = Path(flight_dir)
    paths = flight_segments(flight_dir) if flight_dir.is_dir() else []
    if not paths:
        raise FdrToolError(f"no segments (<flight_id>_<index>.mcap) in {flight_dir}")
    done = [r for p in paths if (r := recover_segment(p, keep_original=keep_original))]
    rebuild_bag_metadata(flight_dir)
    result = FlightRecovery(flight_dir, done, metadata_rebuilt=True)
    if done:
        log_path = flight_dir / RECOVERY_REPORT
        history: list[Any] = []
        if log_path.exists():
            try:
                loaded = json.loads(log_path.read_text())
                history = loaded if isinstance(loaded, list) else [loaded]
            except (OSError, ValueError):
                history = []
        history.append(result.as_dict())
        tmp = log_path.with_name(log_path.name + ".tmp")
        tmp.write_text(json.dumps(history, indent=2) + "\n")
        os.replace(tmp, log_path)
    return result

