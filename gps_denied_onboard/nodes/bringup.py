"""Take-off without a ROS 2 CLI: ``python -m gps_denied_onboard takeoff``.

Starts the same lifecycle nodes as ``launch/takeoff.launch.py`` (each in its
own process, from the colcon install, with parameters from ``config/``) and
runs the same take-off sequencer in this process. Embedded defaults on a fresh
machine: a private PostgreSQL cluster (``--dsn`` empty), a flight root and
tile root under ``./var``, the FC connection from ``--fc-connection`` or the
fc_bridge parameter file.

visual_nav and fc_bridge are started again if they exit in flight (as the launch
file's ``respawn`` does), and the sequencer brings the new process back up.

The node processes run in their own sessions, so a Ctrl-C reaches only this
process, which lands in order (FC link closed first, flight closed last, then
the cluster stopped) before it stops the node processes. The exit code is the
sequencer's: 0, 1 (a node failed) or 2 (the recorder could not open).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from gps_denied_onboard.embedded_pg import ClusterHome, cluster_home, resolve_dsn, server_user
from gps_denied_onboard.errors import EmbeddedPostgresError
from gps_denied_onboard.stop_signals import EXIT_INTERRUPTED, ignore_from_now, install_early

PACKAGE = "gps_denied_onboard"


@dataclass(frozen=True)
class NodeProcess:
    """One node to start: executable in lib/<package>, node name, parameters."""

    executable: str
    name: str
    params_file: str
    overrides: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BringupOptions:
    flight_id: str = ""
    fc_connection: str = ""
    dsn: str = ""
    run_dir: Path = Path("var")
    use_sim_time: bool = False
    service_timeout_s: float = 10.0
    fc_activate_timeout_s: float = 30.0
    extra_params: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def flight_root(self) -> Path:
        return self.run_dir / "flights"

    @property
    def tile_root(self) -> Path:
        return self.run_dir / "tiles"

    @property
    def learnt_camera_file(self) -> Path:
        return self.run_dir / "visual_nav" / "learnt_camera.json"

    @property
    def pg_data_dir(self) -> Path:
        return self.run_dir / "pg"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "log"


def share_dir() -> Path:
    """The package's installed share directory (config/, db/, launch/)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("gps_denied_onboard"))
    except Exception:  # ament_index not importable or package not installed
        return Path(__file__).resolve().parents[2]


def install_prefix() -> Path:
    """The colcon install prefix the package's share directory is in."""
    return share_dir().parents[1]


def node_processes(opts: BringupOptions) -> list[NodeProcess]:
    """The lifecycle nodes, in take-off order."""
    nodes = [
        NodeProcess(
            "fdr_recorder_node",
            "fdr_recorder",
            "fdr_recorder.yaml",
            {"flight_root": str(opts.flight_root.absolute())},
        ),
        NodeProcess(
            "tile_cache_node",
            "tile_cache",
            "tile_cache.yaml",
            {"tile_root": str(opts.tile_root.absolute())},
        ),
        NodeProcess(
            "visual_nav_node",
            "visual_nav",
            "visual_nav.yaml",
            {"learnt_camera_file": str(opts.learnt_camera_file.absolute())},
        ),
        NodeProcess(
            "fc_bridge_node",
            "fc_bridge",
            "fc_bridge.yaml",
            {"connection": opts.fc_connection} if opts.fc_connection else {},
        ),
    ]
    out = []
    for node in nodes:
        extra = opts.extra_params.get(node.name, {})
        out.append(
            NodeProcess(node.executable, node.name, node.params_file, {**node.overrides, **extra})
        )
    return out


def _param_args(params_file: Path, overrides: dict[str, str], use_sim_time: bool) -> list[str]:
    args = ["--ros-args", "--params-file", str(params_file)]
    for key, value in {**overrides, "use_sim_time": "true" if use_sim_time else "false"}.items():
        # values are YAML; rcl cannot parse an empty override, so spell "" out
        args += ["-p", f"{key}:={value}" if value != "" else f"{key}:=''"]
    return args


def _die_with_parent() -> None:
    """In the child: SIGTERM when the bring-up process dies (even by SIGKILL).

    The nodes run in their own sessions so that Ctrl-C reaches only the
    bring-up; this keeps them from outliving it as orphans (Linux only).
    """
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        pass


class NodeSupervisor:
    """Starts node processes in their own sessions, starts again those asked for that
    exited (:meth:`respawn`), and stops them, politely first."""

    def __init__(self, opts: BringupOptions) -> None:
        self._opts = opts
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._argv: dict[str, list[str]] = {}
        self._logs: list[IO[bytes]] = []
        self._stopping = False
        self.respawns: dict[str, int] = {}

    def start(self, nodes: Sequence[NodeProcess]) -> None:
        prefix = install_prefix()
        config = prefix / "share" / PACKAGE / "config"
        self._opts.log_dir.mkdir(parents=True, exist_ok=True)
        for node in nodes:
            exe = prefix / "lib" / PACKAGE / node.executable
            if not exe.exists():
                raise FileNotFoundError(f"{exe} missing: build the package (scripts/bootstrap.sh)")
            argv = [
                sys.executable,
                str(exe),
                *_param_args(config / node.params_file, node.overrides, self._opts.use_sim_time),
            ]
            argv += ["-r", f"__node:={node.name}"]
            self._argv[node.name] = argv
            self._spawn(node.name)

    def _spawn(self, name: str) -> None:
        log = open(self._opts.log_dir / f"{name}.log", "ab")  # noqa: SIM115
        self._logs.append(log)
        self.procs[name] = subprocess.Popen(
            self._argv[name],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only us: we land in order
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl only, no locks
        )

    def respawn(self, names: Sequence[str]) -> list[str]:
        """Start again each of ``names`` whose process exited (a crash in flight: the
        take-off sequencer then brings it back up); never once stopping. Returns them."""
        again: list[str] = []
        for name in names:
            proc = self.procs.get(name)
            if self._stopping or proc is None or proc.poll() is None:
                continue
            self.respawns[name] = self.respawns.get(name, 0) + 1
            print(
                json.dumps({"event": "node.respawned", "node": name, "exit_code": proc.returncode}),
                file=sys.stderr,
                flush=True,
            )
            self._spawn(name)
            again.append(name)
        return again

    def stop(self, timeout_s: float = 15.0) -> dict[str, int]:
        """SIGINT every node, then SIGKILL what is still there; returns exit codes."""
        self._stopping = True
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        codes: dict[str, int] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait()
        for log in self._logs:
            log.close()
        return codes


def run(
    opts: BringupOptions,
    *,
    on_active: Callable[[object], None] | None = None,
    stop: threading.Event | None = None,
    before_takeoff: Callable[[], None] | None = None,
) -> int:
    """Bring the stack up, hold it until ``stop`` (or ``on_active`` returns), land.

    ``before_takeoff`` runs once the node processes and the sequencer node exist,
    before the first transition (the main job waits there for /clock to match).
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from gps_denied_onboard.nodes.takeoff_node import TakeoffNode, run_sequencer
    from gps_denied_onboard.ros_spin import BackgroundSpin

    stop = stop or threading.Event()
    opts.run_dir.mkdir(parents=True, exist_ok=True)
    cluster = _cluster_home(opts)  # None when a DSN is configured
    supervisor = NodeSupervisor(opts)
    supervisor.start(node_processes(opts))
    config = install_prefix() / "share" / PACKAGE / "config" / "takeoff.yaml"
    overrides = {
        "flight_id": opts.flight_id,
        "dsn": opts.dsn,
        "pg_data_dir": str(cluster.data_dir if cluster else opts.pg_data_dir.absolute()),
        "service_timeout_s": str(opts.service_timeout_s),
        "fc_activate_timeout_s": str(opts.fc_activate_timeout_s),
        **opts.extra_params.get("takeoff", {}),
    }
    context = rclpy.Context()
    rclpy.init(
        args=["takeoff", *_param_args(config, overrides, opts.use_sim_time)],
        context=context,
        signal_handler_options=SignalHandlerOptions.NO,
    )
    code = 1
    try:
        node = TakeoffNode(context=context)
        # one thread: its callbacks (/clock, /rosout, /diagnostics, the heartbeat, service
        # answers) never wait on each other, the sequence itself waits on this thread's
        # caller; four threads cost 14 s of CPU in the main job for the same callbacks
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        spinner = BackgroundSpin(executor, "takeoff-executor")
        spinner.start()

        def _active(result: object) -> None:
            if on_active is None:
                return

            def _work() -> None:
                try:
                    on_active(result)
                finally:
                    stop.set()

            threading.Thread(target=_work, name="on-active", daemon=True).start()

        if before_takeoff is not None:
            before_takeoff()
        revivable = node.config.revivable()
        code = run_sequencer(node, stop, _active, lambda: supervisor.respawn(revivable))
        counters = node.sequencer.counters
        if counters is not None:
            print(
                json.dumps(
                    {
                        "event": "takeoff.landed",
                        "flight_id": node.sequencer.flight_id,
                        **vars(counters),
                    }
                ),
                flush=True,
            )
        spinner.stop(timeout_s=2.0)
        node.destroy_node()
    finally:
        if context.ok():
            rclpy.shutdown(context=context)
        supervisor.stop()
        if cluster is not None and not _remove_cluster_home(opts, cluster):
            code = code or 1
    return code


def _cluster_home(opts: BringupOptions) -> ClusterHome | None:
    """Where the embedded cluster lives (outside the run directory when root).

    The run directory's ``embedded_pg.json`` names it from now on. With no
    usable place outside, the run directory is tried, and the take-off's
    database step says why if that fails too.
    """
    if resolve_dsn(opts.dsn) is not None:
        return None
    try:
        home = cluster_home(opts.pg_data_dir)
    except EmbeddedPostgresError as err:
        print(f"embedded cluster: {err}; trying {opts.pg_data_dir}", file=sys.stderr, flush=True)
        home = ClusterHome(opts.pg_data_dir.absolute(), None, server_user())
    home.write_report(opts.run_dir, landed=False)
    return home


def _remove_cluster_home(opts: BringupOptions, home: ClusterHome) -> bool:
    """After landing: nothing of a per-run cluster stays. False if something did."""
    try:
        home.remove()
    except EmbeddedPostgresError as err:
        print(f"embedded cluster not removed: {err}", file=sys.stderr, flush=True)
    doc = home.write_report(opts.run_dir, landed=True)
    print(json.dumps({"event": "embedded_pg.landed", **doc}), flush=True)
    return str(doc["state"]) != "left behind"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m gps_denied_onboard takeoff",
        description="Start the nodes and take off in order; Ctrl-C lands.",
    )
    ap.add_argument("--flight-id", default="", help="default: flight-<UTC take-off time>")
    ap.add_argument(
        "--fc-connection",
        default="",
        help="MAVLink connection (default from config/fc_bridge.yaml), "
        "e.g. udpin:0.0.0.0:14550 or /dev/ttyTHS1:921600",
    )
    ap.add_argument(
        "--dsn",
        default=os.environ.get("GDO_DSN", ""),
        help="tile cache PostgreSQL DSN; empty = private embedded cluster",
    )
    ap.add_argument(
        "--run-dir",
        type=Path,
        default=Path("var"),
        help="flights/, tiles/, log/ go here (default ./var); pg/ too unless root "
        "(then the cluster lives outside it, see embedded_pg.json)",
    )
    ap.add_argument("--use-sim-time", action="store_true", help="follow /clock")
    ap.add_argument("--fc-activate-timeout", type=float, default=30.0)
    return ap


def main(argv: list[str] | None = None) -> int:
    # before any other work: a Ctrl-C from now on lands in order (or, before
    # anything is up, stops quietly), never a KeyboardInterrupt traceback
    signals = install_early()
    args = build_parser().parse_args(argv)
    opts = BringupOptions(
        flight_id=args.flight_id,
        fc_connection=args.fc_connection,
        dsn=args.dsn,
        run_dir=args.run_dir,
        use_sim_time=args.use_sim_time,
        fc_activate_timeout_s=args.fc_activate_timeout,
    )
    if signals.stopped:
        print("takeoff: stopped before take-off", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    stop = threading.Event()
    signals.relay(stop)

    def _announce(result: object) -> None:
        # one machine-readable line on stdout once the stack is up; then hold
        fields = {k: getattr(result, k) for k in ("flight_id", "flight_dir", "steps")}
        print(json.dumps({"event": "takeoff.active", **fields}), flush=True)
        stop.wait()

    try:
        return run(opts, on_active=_announce, stop=stop)
    finally:
        ignore_from_now()  # landed: more Ctrl-C must not kill the exit itself


if __name__ == "__main__":
    raise SystemExit(main())
