"""Node path: three publisher processes -> DDS -> fdr_recorder -> MCAP segments.

The recorder runs as its installed executable; this process drives it through
its lifecycle and OpenFlight/CloseFlight services. Each step, three publisher
processes (``python bench/fdr_node_path.py --publish ...``) send ``FdrRecord``
messages (about 200-byte payloads) at a paced total rate for a few seconds and
report how many they sent. The flight is then read back with the operator
tool, and per producer::

    sent == written + ring overrun (overrun records with seqs)
                    + DDS loss (overrun records, reason dds_loss)
                    + silent (nothing in the flight says where they went)

Figures: the highest tried rate with zero loss (target: at least 10,000
records/s), and the loss at twice that rate, split into accounted (ring overrun
+ DDS loss) and silent. ``silent`` must be 0 (the recorder never hides a gap).

The zero-loss figure's baseline is measured in the same run, before the recorder
starts: the same three publisher processes, at the highest rate tried, into a
bare rclpy subscriber process (``--subscribe``: the recorder's QoS, one
single-threaded executor, a callback that only counts), i.e. what a plain rclpy
subscription takes on this machine at that offered rate. Ratio > 1: the recorder
takes more than a plain subscription would.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
INSTALL_LIB = ROOT / ".colcon/install/gps_denied_onboard/lib/gps_denied_onboard"
PUBLISHERS = 3
TARGET_ZERO_LOSS = 10_000


# --- publisher process -------------------------------------------------------------------


def publish_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--publish", required=True, help="producer slug")
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--start-at", type=float, required=True, help="time.time() to start")
    args = ap.parse_args(argv)
    import rclpy
    from gps_denied_onboard.msg import FdrRecord
    from rclpy.node import Node

    from gps_denied_onboard.ros_topics import RECORD_QOS, TOPIC_FDR_RECORDS, ns_to_time_msg

    rclpy.init()
    node = Node(f"bench_pub_{args.publish}")
    pub = node.create_publisher(FdrRecord, TOPIC_FDR_RECORDS, RECORD_QOS)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    payload = json.dumps({"mode": "x" * 180})
    msg = FdrRecord(
        kind="fc.mode_change", producer=args.publish, schema_version="1.1.0", payload_json=payload
    )
    while time.time() < args.start_at:
        time.sleep(0.001)
    t0 = time.monotonic()
    sent = 0
    period = 0.005
    while True:
        elapsed = time.monotonic() - t0
        if elapsed >= args.seconds:
            break
        due = int(min(elapsed + period, args.seconds) * args.rate)
        while sent < due:
            msg.stamp = ns_to_time_msg(time.time_ns())
            pub.publish(msg)
            sent += 1
        time.sleep(max(0.0, t0 + elapsed + period - time.monotonic()))
    took = time.monotonic() - t0
    # A producer that shuts down cleanly waits until DDS has delivered what it published
    # (reliable: acknowledged by every matched reader), as the nodes' record publishers
    # should; what a publisher that dies takes with it is the only tail left unseen.
    from rclpy.duration import Duration

    acked = pub.wait_for_all_acked(Duration(seconds=30))
    print(
        json.dumps({"producer": args.publish, "sent": sent, "seconds": took, "acked": acked}),
        flush=True,
    )
    node.destroy_node()
    rclpy.shutdown()
    return 0


def subscribe_main(argv: list[str]) -> int:
    """A bare subscriber: the recorder's /fdr/records QoS, counts what it receives."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribe", required=True, help="file to write 'ready' to")
    ap.add_argument("--until", type=float, required=True, help="time.time() to stop")
    ap.add_argument("--depth", type=int, required=True)
    args = ap.parse_args(argv)
    import rclpy
    from gps_denied_onboard.msg import FdrRecord
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    from gps_denied_onboard.ros_topics import TOPIC_FDR_RECORDS

    rclpy.init()
    node = Node(f"bench_bare_sub_{uuid.uuid4().hex[:6]}")
    got = [0]

    def on_msg(_msg: Any) -> None:
        got[0] += 1

    qos = QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=args.depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )
    node.create_subscription(FdrRecord, TOPIC_FDR_RECORDS, on_msg, qos)
    Path(args.subscribe).write_text("ready\n")
    while time.time() < args.until:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps({"received": got[0]}), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


# --- driver ------------------------------------------------------------------------------


class Recorder:
    """The fdr_recorder process plus a driver node for its services."""

    def __init__(self, root: Path, name: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.name = name
        self.log = (root / "recorder.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(INSTALL_LIB / "fdr_recorder_node"),
                "--ros-args",
                "-r",
                f"__node:={name}",
                "-p",
                f"flight_root:={root / 'flights'}",
                "-p",
                "free_space_floor_bytes:=0",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.node = Node(f"bench_driver_{uuid.uuid4().hex[:6]}")
        self.ex = SingleThreadedExecutor()
        self.ex.add_node(self.node)
        self._rclpy = rclpy
        self.written: int | None = None
        from diagnostic_msgs.msg import DiagnosticArray

        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)

    def _on_diag(self, msg: Any) -> None:
        for status in msg.status:
            if status.name == self.name:
                values = {kv.key: kv.value for kv in status.values}
                if values.get("records_written", "").isdigit():
                    self.written = int(values["records_written"])

    def settle(self, timeout_s: float = 20.0) -> None:
        """Wait until records_written only moves by the recorder's own trickle (host health)."""
        start = time.monotonic()
        samples: list[tuple[float, int]] = []
        while time.monotonic() - start < timeout_s:
            self.ex.spin_once(timeout_sec=0.1)
            now = time.monotonic()
            if self.written is not None:
                samples.append((now, self.written))
            old = [w for t, w in samples if now - t >= 2.0]
            if old and self.written is not None and self.written - old[-1] <= 5:
                return

    def call(self, srv_type: Any, name: str, req: Any) -> Any:
        client = self.node.create_client(srv_type, f"/{self.name}/{name}")
        try:
            if not client.wait_for_service(timeout_sec=30):
                raise RuntimeError(f"recorder service {name} not available")
            fut = client.call_async(req)
            self.ex.spin_until_future_complete(fut, timeout_sec=60)
            if not fut.done():
                raise RuntimeError(f"recorder service {name} did not answer")
            return fut.result()
        finally:
            self.node.destroy_client(client)

    def transition(self, tid: int) -> None:
        from lifecycle_msgs.srv import ChangeState

        req = ChangeState.Request()
        req.transition.id = tid
        if not self.call(ChangeState, "change_state", req).success:
            raise RuntimeError(f"recorder transition {tid} failed")

    def stop(self) -> None:
        self.ex.shutdown()
        self.node.destroy_node()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _publishers(rate: float, seconds: float, start_at: float, slugs: list[str]) -> list[Any]:
    return [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "fdr_node_path.py"),
                "--publish",
                slug,
                "--rate",
                str(rate / PUBLISHERS),
                "--seconds",
                str(seconds),
                "--start-at",
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for slug in slugs
    ]


def _bare_step(root: Path, rate: float, seconds: float, depth: int) -> dict[str, Any]:
    """The same publishers into a bare rclpy subscriber process (no recorder running)."""
    ready = root / f"bare-{int(rate)}.ready"
    start_at = time.time() + 6.0
    sub = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "fdr_node_path.py"),
            "--subscribe",
            str(ready),
            "--until",
            str(start_at + seconds + 4.0),
            "--depth",
            str(depth),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    slugs = [f"bench_bare_p{i}" for i in range(PUBLISHERS)]
    procs = _publishers(rate, seconds, start_at, slugs)
    sent = 0
    took = seconds
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 60)
        line = json.loads(out.strip().splitlines()[-1])
        sent += line["sent"]
        took = max(took, float(line["seconds"]))
    out, _ = sub.communicate(timeout=seconds + 60)
    received = json.loads(out.strip().splitlines()[-1])["received"]
    return {
        "rate": rate,
        "sent": sent,
        "received": received,
        "seconds": took,
        "received_rate": received / took,
    }


def _step(rec: Recorder, root: Path, rate: float, seconds: float) -> dict[str, Any]:
    from gps_denied_onboard.srv import CloseFlight, OpenFlight

    from gps_denied_onboard.fdr import tools

    flight_id = f"bench-{int(rate)}-{uuid.uuid4().hex[:4]}"
    res = rec.call(OpenFlight, "open_flight", OpenFlight.Request(flight_id=flight_id))
    if not res.success:
        raise RuntimeError(f"open_flight: {res.error}")
    start_at = time.time() + 3.0
    slugs = [f"bench_p{i}" for i in range(PUBLISHERS)]
    procs = _publishers(rate, seconds, start_at, slugs)
    sent: dict[str, int] = {}
    took = seconds
    unacked = 0
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 60)
        line = json.loads(out.strip().splitlines()[-1])
        sent[line["producer"]] = line["sent"]
        unacked += 0 if line.get("acked") else 1
        # a publisher that DDS flow control held back took longer than asked
        took = max(took, float(line["seconds"]))
    rec.settle()
    closed = rec.call(CloseFlight, "close_flight", CloseFlight.Request(flight_id=flight_id))
    if not closed.success:
        raise RuntimeError(f"close_flight: {closed.error}")
    fs = tools.scan_flight(root / "flights" / flight_id)
    out: dict[str, Any] = {
        "rate": rate,
        "sent": 0,
        "written": 0,
        "ring_overrun": 0,
        "dds_loss": 0,
        "silent": 0,
        "seconds": took,
        "publishers_not_acked": unacked,
    }
    for slug in slugs:
        t = fs.producers.get(slug)
        written = t.written if t else 0
        ring = t.dropped_overrun if t else 0
        dds = t.dropped_upstream if t else 0
        out["sent"] += sent[slug]
        out["written"] += written
        out["ring_overrun"] += ring
        out["dds_loss"] += dds
        out["silent"] += sent[slug] - written - ring - dds
    out["verify_ok"] = tools.verify_flight(fs).ok
    out["lost"] = out["sent"] - out["written"]
    return out


def run(quick: bool) -> list[dict[str, Any]]:
    import rclpy
    from harness import figure
    from lifecycle_msgs.msg import Transition

    from gps_denied_onboard.nodes.fdr_recorder_node import FdrNodeConfig

    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 200)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    rates = (
        [5000.0, 10000.0, 12000.0]
        if quick
        else [2500.0, 5000.0, 7500.0, 10000.0, 12500.0, 15000.0, 20000.0]
    )
    seconds = 3.0 if quick else 10.0
    root = Path(tempfile.mkdtemp(prefix="gdo-bench-fdr-node-"))
    # Same-run baseline first, with no recorder on the topic: at the highest rate tried.
    bare = _bare_step(root, rates[-1], seconds, FdrNodeConfig().records_qos_depth)
    print(json.dumps({"bare_subscriber": bare}), file=sys.stderr, flush=True)
    rclpy.init()
    rec = Recorder(root, f"fdr_recorder_bench_{uuid.uuid4().hex[:6]}")
    steps: list[dict[str, Any]] = []
    try:
        rec.transition(Transition.TRANSITION_CONFIGURE)
        rec.transition(Transition.TRANSITION_ACTIVATE)
        best: dict[str, Any] | None = None
        for rate in rates:
            step = _step(rec, root, rate, seconds)
            steps.append(step)
            print(json.dumps({"step": step}), file=sys.stderr, flush=True)
            if step["lost"] != 0 or step["silent"] != 0:
                break
            best = step
        # records/s over the time the publishers really took to send them
        zero_rate = best["written"] / best["seconds"] if best else 0.0
        double_rate = 2 * (best["rate"] if best else rates[0])
        done = [s for s in steps if s["rate"] == double_rate]
        double = done[0] if done else _step(rec, root, double_rate, seconds)
        print(json.dumps({"step_2x": double}), file=sys.stderr, flush=True)
    finally:
        rec.stop()
        rclpy.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    accounted = double["ring_overrun"] + double["dds_loss"]
    lost_frac = double["lost"] / double["sent"] if double["sent"] else 0.0
    silent = sum(s["silent"] for s in [*steps, double])
    return [
        figure(
            "fdr_node_path.zero_loss_rate",
            zero_rate,
            "records/s",
            bare["received_rate"],
            f">= {TARGET_ZERO_LOSS} from {PUBLISHERS} publisher processes, nothing silent",
            zero_rate >= TARGET_ZERO_LOSS and silent == 0,
            baseline_name=(
                f"bare rclpy subscriber (same QoS, single-threaded executor) at "
                f"{bare['rate']:.0f} records/s offered, same run"
            ),
            bare_subscriber=bare,
            rates_tried=[s["rate"] for s in steps],
            steps=[
                {k: s[k] for k in ("rate", "sent", "written", "dds_loss", "ring_overrun", "silent")}
                for s in steps
            ],
        ),
        figure(
            "fdr_node_path.loss_at_2x",
            lost_frac,
            "fraction lost",
            # baseline: the fraction accounted in-band (overrun/dds_loss records);
            # ratio 1.0 means every lost record is accounted, none silent
            (accounted / double["sent"]) if double["sent"] else 0.0,
            "all loss accounted in-band, silent == 0",
            double["silent"] == 0,
            offered_rate=double["rate"],
            sent=double["sent"],
            written=double["written"],
            ring_overrun=double["ring_overrun"],
            dds_loss=double["dds_loss"],
            accounted=accounted,
            silent=double["silent"],
            verify_ok=double["verify_ok"],
        ),
    ]


if __name__ == "__main__":
    if "--publish" in sys.argv:
        raise SystemExit(publish_main(sys.argv[1:]))
    if "--subscribe" in sys.argv:
        raise SystemExit(subscribe_main(sys.argv[1:]))
    sys.path.insert(0, str(HERE))
    for fig in run("--quick" in sys.argv):
        print(json.dumps(fig))
