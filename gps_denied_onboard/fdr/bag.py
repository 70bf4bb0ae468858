"""``metadata.yaml``: the rosbag2 view of a flight directory.

Written atomically (temporary file, fsync, rename, directory fsync) at open,
at every rotation, at every capacity drop and at close, so that ``rosbags``
and ``ros2 bag info`` see the flight as a bag split into segments. Only the
CDR channels are listed (see FORMAT.md: rosbag2 readers accept one
serialization format per bag); the FDR record totals ride in ``custom_data``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gps_denied_onboard.durable import atomic_write
from gps_denied_onboard.record_schema import FDR_RECORD_SCHEMA_VERSION

ROSBAG2_METADATA_VERSION = 9


@dataclass
class SegmentEntry:
    """What metadata.yaml says about one segment file."""

    name: str
    index: int
    size_bytes: int = 0
    fdr_records: int = 0
    raw_messages: int = 0
    raw_start_ns: int | None = None
    raw_end_ns: int | None = None
    raw_topic_counts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    closed: bool = False
    torn: bool = False


def build_metadata(
    flight_id: str, segments: Sequence[SegmentEntry], *, closed: bool, dropped: Sequence[str]
) -> dict[str, Any]:
    topics: dict[tuple[str, str, str], int] = {}
    starts: list[int] = []
    ends: list[int] = []
    files = []
    for seg in segments:
        for key, count in seg.raw_topic_counts.items():
            topics[key] = topics.get(key, 0) + count
        if seg.raw_start_ns is not None and seg.raw_end_ns is not None:
            starts.append(seg.raw_start_ns)
            ends.append(seg.raw_end_ns)
        files.append(
            {
                "path": seg.name,
                "starting_time": {"nanoseconds_since_epoch": seg.raw_start_ns or 0},
                "duration": {"nanoseconds": (seg.raw_end_ns or 0) - (seg.raw_start_ns or 0)},
                "message_count": seg.raw_messages,
            }
        )
    start = min(starts) if starts else 0
    end = max(ends) if ends else 0
    info = {
        "version": ROSBAG2_METADATA_VERSION,
        "storage_identifier": "mcap",
        "relative_file_paths": [seg.name for seg in segments],
        "duration": {"nanoseconds": end - start},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": sum(topics.values()),
        "topics_with_message_count": [
            {
                "topic_metadata": {
                    "name": topic,
                    "type": type_name,
                    "serialization_format": "cdr",
                    "offered_qos_profiles": _qos_list(qos),
                    "type_description_hash": "",
                },
                "message_count": count,
            }
            for (topic, type_name, qos), count in sorted(topics.items())
        ],
        "compression_format": "",
        "compression_mode": "",
        "files": files,
        "custom_data": {
            "fdr.flight_id": flight_id,
            "fdr.record_schema": FDR_RECORD_SCHEMA_VERSION,
            "fdr.fdr_records": str(sum(seg.fdr_records for seg in segments)),
            "fdr.closed": "true" if closed else "false",
            "fdr.torn_segments": json.dumps([s.name for s in segments if s.torn]),
            "fdr.dropped_segments": json.dumps(list(dropped)),
        },
        "ros_distro": "jazzy",
    }
    return {"rosbag2_bagfile_information": info}


def _qos_list(qos: str) -> list[Any]:
    if not qos:
        return []
    try:
        loaded = yaml.safe_load(qos)
    except yaml.YAMLError:
        return []
    return loaded if isinstance(loaded, list) else []


def write_metadata(
    flight_dir: Path,
    flight_id: str,
    segments: Sequence[SegmentEntry],
    *,
    closed: bool,
    dropped: Sequence[str],
) -> None:
    doc = build_metadata(flight_id, segments, closed=closed, dropped=dropped)
    text = yaml.safe_dump(doc, default_flow_style=False, sort_keys=False)
    atomic_write(flight_dir / "metadata.yaml", text.encode())
