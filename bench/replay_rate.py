#!/usr/bin/env python3
"""Replay at maximum rate: messages/s published vs a bare rosbags read loop.

Writes a bag of N 256-byte messages on 4 topics (1 kHz sim), then measures
  1. baseline: a bare ``for conn, t, data in rosbags.rosbag2.Reader(bag).messages()``;
  2. replay: the replay tool's Player at ``rate=max`` publishing every message
     (raw CDR, ``publish_raw``) through real rclpy publishers (Fast DDS, no
     subscriber: the tool's own cost), with /clock at 100 Hz sim.
Figure: replay msgs/s, baseline = bare msgs/s, ratio = replay / bare. The
figure is ok only when the ratio is above a floor and what the replay handed to
rclpy equals the bag (topic, bytes, order, sim time at publication); the
check is a list append per message, outside the timed loop's own work.

``bench/run replay_rate [--quick]`` (harness), or standalone:
``bench/replay_rate.py [--messages 20000] [--storage mcap|sqlite3] [--size 256]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CLOCK_HZ = 100.0
# Publishing each message through rclpy and DDS costs far more than reading it;
# the floor catches a replay that lost its maximum-rate path (e.g. sleeping).
MIN_RATIO = 0.05


def write_bag(path: Path, n: int, storage: str, size: int) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    cls = store.types["std_msgs/msg/String"]
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conns = [
            w.add_connection(f"/bench/t{i}", "std_msgs/msg/String", typestore=store)
            for i in range(4)
        ]
        payload = bytes(store.serialize_cdr(cls(data="x" * size), "std_msgs/msg/String"))
        t0 = 1_700_000_000_000_000_000
        for k in range(n):
            w.write(conns[k % 4], t0 + k * 1_000_000, payload)  # 1 kHz sim


def bare(path: Path) -> tuple[list[tuple[str, int, bytes]], float]:
    """The bare read loop, timed; returns what it read (topic, stamp, bytes) too."""
    from rosbags.rosbag2 import Reader

    start = time.perf_counter()
    got: list[tuple[str, int, bytes]] = []
    with Reader(path) as r:
        for conn, t, data in r.messages():
            got.append((conn.topic, t, data))
    return got, time.perf_counter() - start


class _Checked:
    """Wraps the replay's ROS sink: everything it hands to rclpy, in order, with the
    ``/clock`` value last published before it (a list append per message)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.clock_ns: int | None = None
        self.clock_ticks: list[int] = []
        self.published: list[tuple[str, int | None, bytes]] = []

    def publish(self, topic: str, data: bytes) -> None:
        self.inner.publish(topic, data)
        self.published.append((topic, self.clock_ns, data))

    def publish_clock(self, sim_ns: int) -> None:
        self.inner.publish_clock(sim_ns)
        self.clock_ns = sim_ns
        self.clock_ticks.append(sim_ns)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def replay(path: Path, clock_hz: float) -> tuple[_Checked, float]:
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
        sink = _Checked(RosReplaySink(node, source.topics, options))
        player = Player(source, sink, options, MonotonicClock())
        start = time.perf_counter()
        player.run()
        elapsed = time.perf_counter() - start
        source.close()
        return sink, elapsed
    finally:
        node.destroy_node()
        rclpy.shutdown(context=ctx)


def content_errors(
    source: list[tuple[str, int, bytes]], sink: _Checked, clock_hz: float
) -> list[str]:
    """What the replay handed to rclpy against what the bag holds: every message,
    in order, on its topic, byte for byte, and never before sim time reached its
    stamp nor more than one clock period after it; /clock ticks non-decreasing."""
    errors: list[str] = []
    if len(sink.published) != len(source):
        errors.append(f"{len(sink.published)} messages published, bag holds {len(source)}")
    period_ns = round(1e9 / clock_hz)
    for i, ((topic, stamp, data), (p_topic, p_clock, p_data)) in enumerate(
        zip(source, sink.published, strict=False)
    ):
        if p_topic != topic or p_data != data:
            errors.append(f"message {i}: {p_topic} {len(p_data)} B, bag: {topic} {len(data)} B")
        elif p_clock is None or not stamp - period_ns < p_clock <= stamp:
            errors.append(f"message {i} stamped {stamp} published at /clock {p_clock}")
        if len(errors) > 5:
            break
    ticks = sink.clock_ticks
    if any(b < a for a, b in itertools.pairwise(ticks)):
        errors.append("/clock went backwards")
    return errors


def run(quick: bool) -> list[dict[str, object]]:
    """Harness entry: one figure per storage back end."""
    from harness import figure

    n = 5_000 if quick else 20_000
    out = []
    for storage in ("mcap", "sqlite3"):
        with tempfile.TemporaryDirectory() as tmp:
            bag = Path(tmp) / "bag"
            write_bag(bag, n, storage, 256)
            source, t_bare = bare(bag)
            sink, t_rep = replay(bag, CLOCK_HZ)
        errors = content_errors(source, sink, CLOCK_HZ)
        rate, base = len(sink.published) / t_rep, len(source) / t_bare
        out.append(
            figure(
                f"replay_rate_{storage}",
                rate,
                "msgs/s",
                base,
                f">= {MIN_RATIO}x the bare read loop, every message on its topic byte for byte"
                " in order, published within one /clock period after its stamp",
                not errors and rate >= MIN_RATIO * base,
                messages=n,
                content_errors=errors,
            )
        )
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
        source, t_bare = bare(bag)
        sink, t_rep = replay(bag, args.clock_hz)
    n_bare, n_rep = len(source), len(sink.published)
    result = {
        "bench": "replay_rate",
        "storage": args.storage,
        "messages": args.messages,
        "payload_bytes": args.size,
        "clock_hz": args.clock_hz,
        "bare_msgs_per_s": round(n_bare / t_bare),
        "replay_msgs_per_s": round(n_rep / t_rep),
        "ratio_replay_over_bare": round((n_rep / t_rep) / (n_bare / t_bare), 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
