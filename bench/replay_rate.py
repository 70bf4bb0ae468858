#!/usr/bin/env python3
"""Replay at maximum rate: messages/s published vs a bare rosbags read loop.

Writes a bag of N 256-byte messages on 4 topics (1 kHz sim), then measures
  1. baseline: a bare ``for conn, t, data in rosbags.rosbag2.Reader(bag).messages()``;
  2. replay: the replay tool's Player at ``rate=max`` publishing every message
     (raw CDR, ``publish_raw``) through real rclpy publishers (Fast DDS, no
     subscriber: the tool's own cost), with /clock at 100 Hz sim.
Figure: replay msgs/s, baseline = bare msgs/s, ratio = replay / bare.

``bench/run replay_rate [--quick]`` (harness), or standalone:
``bench/replay_rate.py [--messages 20000] [--storage mcap|sqlite3] [--size 256]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def write_bag(path: Path, n: int, storage: str, size: int) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    cls = store.types["std_msgs/msg/String"]
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conns = [w.add_connection(f"/bench/t{i}", "std_msgs/msg/String", typestore=store)
                 for i in range(4)]
        payload = bytes(store.serialize_cdr(cls(data="x" * size), "std_msgs/msg/String"))
        t0 = 1_700_000_000_000_000_000
        for k in range(n):
            w.write(conns[k % 4], t0 + k * 1_000_000, payload)  # 1 kHz sim


def bare(path: Path) -> tuple[int, float]:
    from rosbags.rosbag2 import Reader

    start = time.perf_counter()
    count = 0
    with Reader(path) as r:
        for _conn, _t, _data in r.messages():
            count += 1
    return count, time.perf_counter() - start


def replay(path: Path, clock_hz: float) -> tuple[int, float]:
    import rclpy
    from rclpy.context import Context

    from gps_denied_onboard.clock import MonotonicClock
    from gps_denied_onboard.replay import Player, ReplayOptions, open_bag
    from gps_denied_onboard.replay.publisher import RosReplaySink

    ctx = Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("bench_replay", context=ctx)
    try:
        source = open_bag(path)
        options = ReplayOptions(rate=None, clock_hz=clock_hz)
        sink = RosReplaySink(node, source.topics, options)
        player = Player(source, sink, options, MonotonicClock())
        start = time.perf_counter()
        summary = player.run()
        elapsed = time.perf_counter() - start
        source.close()
        return summary.messages, elapsed
    finally:
        node.destroy_node()
        rclpy.shutdown(context=ctx)


def run(quick: bool) -> list[dict[str, object]]:
    """Harness entry: one figure per storage back end."""
    from harness import figure

    n = 5_000 if quick else 20_000
    out = []
    for storage in ("mcap", "sqlite3"):
        with tempfile.TemporaryDirectory() as tmp:
            bag = Path(tmp) / "bag"
            write_bag(bag, n, storage, 256)
            n_bare, t_bare = bare(bag)
            n_rep, t_rep = replay(bag, 100.0)
        out.append(figure(f"replay_rate_{storage}", n_rep / t_rep, "msgs/s", n_bare / t_bare,
                          "report (publishing through DDS costs more than reading)", n_rep == n,
                          messages=n))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=20_000)
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--size", type=int, default=256, help="payload bytes per message")
    p.add_argument("--clock-hz", type=float, default=100.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "bag"
        write_bag(bag, args.messages, args.storage, args.size)
        n_bare, t_bare = bare(bag)
        n_rep, t_rep = replay(bag, args.clock_hz)
    result = {
        "bench": "replay_rate", "storage": args.storage, "messages": args.messages,
        "payload_bytes": args.size, "clock_hz": args.clock_hz,
        "bare_msgs_per_s": round(n_bare / t_bare), "replay_msgs_per_s": round(n_rep / t_rep),
        "ratio_replay_over_bare": round((n_rep / t_rep) / (n_bare / t_bare), 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
