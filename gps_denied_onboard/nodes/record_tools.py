"""``fdr_record_echo`` and ``fdr_record_send``: the FdrRecord topic from a shell.

``ros2 topic echo``/``pub`` are not available on PyPI-only installs; these two
small nodes fill that gap for ``/fdr/records`` and double as the end-to-end
proof that the interfaces build and DDS discovery works:

    fdr_record_echo --count 3          # prints one JSON line per record
    fdr_record_send --kind fc.armed --producer probe --count 3
"""

from __future__ import annotations

import argparse
import json
import sys
import threading

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from gps_denied_onboard.msg import FdrRecord
from gps_denied_onboard.nodes.record_sink import RecordPublisherSink
from gps_denied_onboard.nodes.ros_clock import RosClock
from gps_denied_onboard.records import FlightRecord
from gps_denied_onboard.ros_topics import RECORD_QOS, TOPIC_FDR_RECORDS, time_msg_to_ns


def echo_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fdr_record_echo", description="print FdrRecord messages")
    ap.add_argument("--topic", default=TOPIC_FDR_RECORDS)
    ap.add_argument("--count", type=int, default=0, help="exit after N records (0 = forever)")
    ap.add_argument("--timeout", type=float, default=0.0, help="give up after S seconds (exit 1)")
    args, ros_args = ap.parse_known_args(argv)
    rclpy.init(args=ros_args)
    node = Node("fdr_record_echo")
    seen = 0
    done = threading.Event()

    def on_record(msg: FdrRecord) -> None:
        nonlocal seen
        line = {
            "kind": msg.kind,
            "producer": msg.producer,
            "stamp_ns": time_msg_to_ns(msg.stamp),
            "schema_version": msg.schema_version,
            "payload": json.loads(msg.payload_json or "{}"),
        }
        print(json.dumps(line, sort_keys=True), flush=True)
        seen += 1
        if args.count and seen >= args.count:
            done.set()

    node.create_subscription(FdrRecord, args.topic, on_record, RECORD_QOS)
    print(json.dumps({"ready": True, "node": node.get_fully_qualified_name()}), flush=True)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    clock = node.get_clock()
    start = clock.now().nanoseconds
    try:
        while rclpy.ok() and not done.is_set():
            executor.spin_once(timeout_sec=0.1)
            if args.timeout and clock.now().nanoseconds - start > args.timeout * 1e9:
                break
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0 if (not args.count or seen >= args.count) else 1


def send_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fdr_record_send", description="publish FdrRecord messages")
    ap.add_argument("--topic", default=TOPIC_FDR_RECORDS)
    ap.add_argument("--kind", required=True)
    ap.add_argument("--producer", required=True)
    ap.add_argument("--payload", default="{}", help="JSON object")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument(
        "--wait-subscribers", type=int, default=1, help="publish once N subscribers matched"
    )
    ap.add_argument("--timeout", type=float, default=30.0)
    args, ros_args = ap.parse_known_args(argv)
    payload = json.loads(args.payload)
    rclpy.init(args=ros_args)
    node = Node("fdr_record_send")
    sink = RecordPublisherSink(node, args.topic)
    clock = RosClock(node)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    start = clock.now_ns()
    rc = 0
    try:
        while sink.subscription_count() < args.wait_subscribers:
            executor.spin_once(timeout_sec=0.1)
            if clock.now_ns() - start > args.timeout * 1e9:
                print("no subscriber matched before the timeout", file=sys.stderr)
                rc = 1
                break
        if rc == 0:
            for i in range(args.count):
                body = payload if "seq" in payload else {**payload, "seq": i}
                sink.emit(FlightRecord(args.kind, args.producer, clock.now_ns(), body))
            # give reliable delivery a moment to complete before tearing down
            deadline = clock.now_ns() + int(2e9)
            while clock.now_ns() < deadline:
                executor.spin_once(timeout_sec=0.1)
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return rc
