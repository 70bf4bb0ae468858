"""``python -m gps_denied_onboard.replay BAG`` (console script ``gdo-replay``).

Replays a rosbag2 bag (sqlite3 or MCAP) or a flight recorder's flight
directory into the running ROS 2 graph: the recorded topics with their
recorded types and QoS, raw CDR bytes, plus ``/clock``. Nodes started with
``use_sim_time:=true`` follow the bag's time. ``ros2 bag play --clock BAG``
does the same job where rosbag2 is installed; the stack relies on nothing
but ``use_sim_time``.

Keys (when stdin is a terminal): space pause/resume, ``s`` one message while
paused, ``q`` stop. Services: ``~/pause`` (SetBool), ``~/toggle_pause`` and
``~/play_next`` (Trigger). ``--info`` lists the bag without ROS.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from gps_denied_onboard.clock import NS_PER_S, MonotonicClock, ns_to_datetime
from gps_denied_onboard.errors import GpsDeniedError
from gps_denied_onboard.replay.bag import BagSource, open_bag
from gps_denied_onboard.replay.options import (
    DEFAULT_CLOCK_HZ,
    ReplayOptions,
    parse_rate,
    parse_remaps,
    parse_topics,
)
from gps_denied_onboard.replay.player import Player, ReplaySummary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gdo-replay",
        description="Replay a rosbag2 bag (sqlite3/MCAP) or an FDR flight directory "
        "into ROS 2, with /clock.",
    )
    p.add_argument("bag", help="rosbag2 directory, .mcap/.db3 file, or FDR flight directory")
    p.add_argument("-r", "--rate", default="1.0",
                   help="playback rate (sim s per wall s), or 'max' (default 1.0)")
    p.add_argument("--start-offset", type=float, default=0.0, metavar="S",
                   help="skip the first S seconds of the bag")
    p.add_argument("--topics", nargs="+", default=[], metavar="TOPIC",
                   help="play only these recorded topics (default: every CDR topic)")
    p.add_argument("--remap", nargs="+", default=[], metavar="OLD:=NEW",
                   help="publish recorded topic OLD as NEW")
    p.add_argument("-l", "--loop", action="store_true", help="play again at the end")
    p.add_argument("--max-loops", type=int, default=0, help="with --loop: stop after N passes")
    p.add_argument("--clock-hz", type=float, default=DEFAULT_CLOCK_HZ,
                   help=f"/clock ticks per sim second (default {DEFAULT_CLOCK_HZ:g}; "
                   "0: only before messages)")
    p.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    p.add_argument("--paused", action="store_true", help="start paused")
    p.add_argument("--delay", type=float, default=0.5, metavar="S",
                   help="wall seconds between creating publishers and the first message, "
                   "for DDS discovery (default 0.5)")
    p.add_argument("--backend", choices=("auto", "rosbags", "mcap"), default="auto",
                   help="bag reader (default auto: rosbags; mcap for FDR flight dirs)")
    p.add_argument("--node-name", default="gdo_replay")
    p.add_argument("--info", action="store_true", help="list the bag's topics and exit (no ROS)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--ack-timeout", type=float, default=5.0, metavar="S",
                   help="at the end, wait up to S s for reliable readers to acknowledge")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="play only the first S sim seconds (after --start-offset)")
    p.add_argument("--wait-for-estimator", action="store_true",
                   help="lockstep with the visual_nav node: publish a camera frame only "
                   "once the last one is answered (fix or reject); a slow machine slows "
                   "the replay down instead of dropping frames")
    p.add_argument("--answer-timeout", type=float, default=20.0, metavar="S",
                   help="with --wait-for-estimator: give up on a frame's answer after S "
                   "wall seconds (counted and reported as unanswered)")
    return p


def options_from_args(args: argparse.Namespace) -> ReplayOptions:
    return ReplayOptions(
        rate=parse_rate(args.rate),
        start_offset_s=args.start_offset,
        topics=parse_topics(args.topics),
        remaps=parse_remaps(args.remap),
        loop=args.loop,
        max_loops=args.max_loops,
        clock_hz=args.clock_hz,
        clock=not args.no_clock,
        start_paused=args.paused,
        delay_s=args.delay,
        duration_s=args.duration,
    )


def describe(source: BagSource) -> str:
    """The bag's playable topics, span and notes, as text."""
    lines = [f"bag: {source.path} (reader: {source.backend})"]
    if source.topics:
        span = (source.end_ns - source.start_ns) / NS_PER_S
        lines.append(f"span: {ns_to_datetime(source.start_ns).isoformat()} + {span:.3f} s")
    width = max([len(t) for t in source.topics] + [5])
    for name, topic in source.topics.items():
        q = topic.qos
        lines.append(f"  {name:<{width}}  {topic.count:>7}  {topic.msgtype}  "
                     f"[{q.reliability}, {q.durability}, depth {q.depth}]")
    lines.extend(f"  note: {note}" for note in source.skipped)
    return "\n".join(lines)


def run_ros_replay(source: BagSource, options: ReplayOptions, *, node_name: str = "gdo_replay",
                   progress: bool = True, ack_timeout_s: float = 5.0,
                   ros_args: Sequence[str] | None = None,
                   wait_for_estimator: bool = False,
                   answer_timeout_s: float = 20.0) -> ReplaySummary:
    """Create a node, replay ``source`` into ROS and return the summary.

    Initialises rclpy (its own context) and shuts it down again. With
    ``wait_for_estimator`` the camera topics go out in lockstep with the
    visual_nav node (:mod:`.estimator_lockstep`); the summary's ``notes``
    then say how many frames were answered.
    """
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    from gps_denied_onboard.replay.console import KeyboardControl, ProgressBar
    from gps_denied_onboard.replay.publisher import ReplayControlServices, RosReplaySink
    from gps_denied_onboard.ros_spin import BackgroundSpin

    context = Context()
    rclpy.init(args=list(ros_args) if ros_args else None, context=context)
    node: Any = None
    spinner: BackgroundSpin | None = None
    keys: KeyboardControl | None = None
    previous_sigint: Any = None
    try:
        node = rclpy.create_node(node_name, context=context)
        sink: Any = RosReplaySink(node, source.topics, options)
        lockstep: Any = None
        if wait_for_estimator:
            from gps_denied_onboard.replay.estimator_lockstep import (
                CAMERA_TYPES,
                EstimatorLockstepSink,
                EstimatorWatch,
            )

            camera_topics = {t for t, v in source.topics.items() if v.msgtype in CAMERA_TYPES}
            lockstep = EstimatorLockstepSink(sink, EstimatorWatch(node),
                                             lambda topic: topic in camera_topics,
                                             answer_timeout_s)
            sink = lockstep
        services = ReplayControlServices(node)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        spinner = BackgroundSpin(executor, "replay-spin")
        spinner.start()

        host = MonotonicClock()
        player = Player(source, sink, options, host)
        if lockstep is not None:
            lockstep.player = player
        player.summary.skipped.extend((lockstep.inner if lockstep else sink).skipped)
        bar = ProgressBar(sys.stderr, host, player.sim_start_ns, player.sim_end_ns) \
            if progress else None
        player.progress = bar
        services.attach(player)
        if threading.current_thread() is threading.main_thread():
            previous_sigint = signal.signal(signal.SIGINT, lambda *_: player.stop())
        keys = KeyboardControl(player)
        keys.start()
        if options.delay_s > 0:
            threading.Event().wait(options.delay_s)
        if lockstep is not None and not lockstep.wait_until_matched(node, host, answer_timeout_s):
            player.summary.notes.append(
                "estimator lockstep: no visual_nav subscribed to the camera topics "
                f"within {answer_timeout_s:g} s; replaying anyway"
            )
        summary = player.run()
        if lockstep is not None:
            lockstep.finish()  # the last frame's answer
            summary.notes.append(lockstep.describe())
        if bar is not None:
            bar.finish(player)
        (lockstep.inner if lockstep else sink).wait_for_acks(ack_timeout_s)
        return summary
    finally:
        if keys is not None:
            keys.close()
        if previous_sigint is not None:
            signal.signal(signal.SIGINT, previous_sigint)
        if spinner is not None:
            spinner.stop(timeout_s=2.0)
        if node is not None:
            node.destroy_node()
        if context.ok():
            rclpy.shutdown(context=context)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    raw = list(sys.argv[1:] if argv is None else argv)
    ros_args: list[str] = []
    if "--ros-args" in raw:
        cut = raw.index("--ros-args")
        raw, ros_args = raw[:cut], ["--ros-args", *raw[cut + 1:]]
    args = build_parser().parse_args(raw)
    try:
        options = options_from_args(args)
        source = open_bag(args.bag, args.backend)
    except GpsDeniedError as err:
        print(f"gdo-replay: {err}", file=sys.stderr)
        return 2
    try:
        if args.info:
            print(describe(source))
            return 0
        if not source.topics:
            print(describe(source), file=sys.stderr)
            print("gdo-replay: nothing to replay", file=sys.stderr)
            return 1
        summary = run_ros_replay(source, options, node_name=args.node_name,
                                 progress=not args.no_progress, ack_timeout_s=args.ack_timeout,
                                 ros_args=ros_args, wait_for_estimator=args.wait_for_estimator,
                                 answer_timeout_s=args.answer_timeout)
    except GpsDeniedError as err:
        print(f"gdo-replay: {err}", file=sys.stderr)
        return 1
    finally:
        source.close()
    print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
