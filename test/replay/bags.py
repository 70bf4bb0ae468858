"""Small bags written in tests with rosbags' Writer and the mcap package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gps_denied_onboard.replay.types import project_typestore

S = 1_000_000_000
T0 = 1_700_000_000 * S

STORE = project_typestore()


def qos(reliability: str = "RELIABLE", durability: str = "VOLATILE", depth: int = 10) -> Any:
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, depth, QosReliability[reliability],
               QosDurability[durability], zero, zero, QosLiveliness.AUTOMATIC, zero, False)


def string_cdr(text: str) -> bytes:
    cls = STORE.types["std_msgs/msg/String"]
    return bytes(STORE.serialize_cdr(cls(data=text), "std_msgs/msg/String"))


def fix_cdr(i: int, stamp_ns: int) -> bytes:
    t = STORE.types
    header = t["std_msgs/msg/Header"](
        stamp=t["builtin_interfaces/msg/Time"](sec=stamp_ns // S, nanosec=stamp_ns % S),
        frame_id="map")
    import numpy as np

    msg = t["gps_denied_onboard/msg/PositionFix"](
        header=header, latitude=47.01 + i * 1e-5, longitude=-99.15, altitude_msl=600.0,
        velocity_enu=t["geometry_msgs/msg/Vector3"](x=1.0, y=0.0, z=0.0), velocity_valid=True,
        position_covariance=np.zeros(9), velocity_covariance=np.zeros(9), yaw_enu=0.0,
        yaw_valid=False, yaw_variance=0.0, reset_counter=0, quality=80)
    return bytes(STORE.serialize_cdr(msg, "gps_denied_onboard/msg/PositionFix"))


def write_rosbag(path: Path, storage: str, n: int = 20) -> list[tuple[str, int, bytes]]:
    """/chatter (String, reliable) every 100 ms, /fix (PositionFix, best effort) every 200 ms."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    written: list[tuple[str, int, bytes]] = []
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        chatter = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=STORE,
                                        offered_qos_profiles=[qos(depth=7)])
        fix = writer.add_connection("/fix", "gps_denied_onboard/msg/PositionFix", typestore=STORE,
                                    offered_qos_profiles=[qos("BEST_EFFORT", depth=500)])
        for i in range(n):
            stamp = T0 + i * 100_000_000
            data = string_cdr(f"hello {i}")
            writer.write(chatter, stamp, data)
            written.append(("/chatter", stamp, data))
            if i % 2 == 0:
                data = fix_cdr(i, stamp)
                writer.write(fix, stamp, data)
                written.append(("/fix", stamp, data))
    return written


def write_fdr_like_dir(path: Path, *, torn: bool = True) -> list[tuple[str, int, bytes]]:
    """A flight dir as the FDR writes it: MCAP segments with CDR + schemaless JSON channels."""
    from mcap.writer import Writer as McapWriter

    path.mkdir(parents=True)
    msgdef = STORE.generate_msgdef("std_msgs/msg/String", ros_version=2)[0]
    cdr: list[tuple[str, int, bytes]] = []
    files = []
    for seg in range(2):
        name = f"flight1_{seg}.mcap"
        files.append(name)
        with (path / name).open("wb") as fh:
            w = McapWriter(fh, use_chunking=False)
            w.start(profile="ros2", library="test")
            schema = w.register_schema("std_msgs/msg/String", "ros2msg", msgdef.encode())
            raw = w.register_channel("/chatter", "cdr", schema,
                                     {"offered_qos_profiles": ""})
            rec = w.register_channel("/fdr/fc.link_up", "json", 0,
                                     {"schema_name": "gps_denied_onboard/fdr/fc.link_up"})
            for i in range(5):
                stamp = T0 + (seg * 5 + i) * S
                data = string_cdr(f"seg{seg} {i}")
                w.add_message(raw, stamp, data, stamp, i)
                cdr.append(("/chatter", stamp, data))
                body = json.dumps({"kind": "fc.link_up", "stamp_ns": stamp, "payload": {}})
                w.add_message(rec, stamp, body.encode(), stamp, i)
            if seg == 1 and torn:
                fh.flush()
                size = fh.tell()
                fh.truncate(size - 7)  # cut the last (JSON) record: no footer, like a crash
                continue
            w.finish()
    meta = {
        "rosbag2_bagfile_information": {
            "version": 9, "storage_identifier": "mcap", "relative_file_paths": files,
            "duration": {"nanoseconds": 9 * S}, "starting_time": {"nanoseconds_since_epoch": T0},
            "message_count": 10,
            "topics_with_message_count": [{"topic_metadata": {
                "name": "/chatter", "type": "std_msgs/msg/String",
                "serialization_format": "cdr", "offered_qos_profiles": [],
                "type_description_hash": ""}, "message_count": 10}],
            "compression_format": "", "compression_mode": "",
            "custom_data": {"fdr.flight_id": "flight1"}, "files": [], "ros_distro": "jazzy",
        }
    }
    import yaml

    (path / "metadata.yaml").write_text(yaml.safe_dump(meta))
    return cdr
