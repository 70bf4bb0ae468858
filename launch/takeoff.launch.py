"""Take-off on a real ROS 2 install: ``ros2 launch gps_denied_onboard takeoff.launch.py``.

Starts the four lifecycle nodes (fdr_recorder, tile_cache, visual_nav, fc_bridge) and the
take-off sequencer, which drives them to ACTIVE one at a time in the spec's
order (recorder open before the FC link opens; see
gps_denied_onboard/takeoff/sequence.py). The nodes are NOT auto-activated by
launch: only the sequencer changes their states.

visual_nav and fc_bridge are respawned if they crash in flight, and the sequencer
brings the new process back to ACTIVE.

When the sequencer exits (a failed take-off, or a landing after Ctrl-C) the
whole launch shuts down, and the shutdown reason names its exit code; exit
code 2 means the flight data recorder could not be opened and the FC link was
never opened. (``ros2 launch`` itself exits 0 whatever a child's code was:
read the ``takeoff_sequencer exited with code N`` line, or use
``python -m gps_denied_onboard takeoff``, whose exit code is the sequencer's.)

Arguments: flight_id, fc_connection, dsn (empty = embedded PostgreSQL cluster
in pg_data_dir), flight_root, tile_root, pg_data_dir, learnt_camera_file,
use_sim_time.

The same order is enforced without a ROS CLI by
``python -m gps_denied_onboard takeoff`` (gps_denied_onboard/nodes/bringup.py),
which is what the tests run.
"""

from launch.actions import DeclareLaunchArgument, EmitEvent, LogInfo, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "gps_denied_onboard"
# On Ctrl-C launch sends SIGINT to every process at once; managed nodes then wait
# for the sequencer to land them in order, so SIGTERM must not come before that.
LANDING_TIMEOUT_S = "30"
# visual_nav and fc_bridge are started again when they exit in flight (never while
# launch shuts down); the sequencer configures and activates the new process
# (TakeoffSequencer.revive). Not the recorder (its flight cannot be reopened: the GCS
# is alerted) nor the tile cache (its database is handed over at take-off).
RESPAWN_DELAY_S = 1.0

ARGUMENTS = {
    "flight_id": ("", "flight to open; empty = derived from the take-off time"),
    "fc_connection": ("udpin:0.0.0.0:14550", "MAVLink connection, e.g. /dev/ttyTHS1:921600"),
    "dsn": ("", "tile cache PostgreSQL DSN; empty = private embedded cluster"),
    "flight_root": ("/var/lib/gps_denied_onboard/fdr", "where flight recordings go"),
    "tile_root": ("/var/lib/gps_denied_onboard/tiles", "where tile JPEGs go"),
    "pg_data_dir": ("/var/lib/gps_denied_onboard/pg", "embedded cluster data directory"),
    "learnt_camera_file": (
        "/var/lib/gps_denied_onboard/visual_nav/learnt_camera.json",
        "the camera's mounting and vignetting as learnt, kept across restarts",
    ),
    "use_sim_time": ("false", "follow /clock (rosbag replay)"),
}


def _sequencer_exited(event, context):
    reason = f"takeoff_sequencer exited with code {event.returncode}"
    if context.is_shutdown:  # Ctrl-C: launch is already shutting down; a second
        return [LogInfo(msg=reason)]  # Shutdown makes launch_ros raise (exit 1)
    return [LogInfo(msg=reason), EmitEvent(event=Shutdown(reason=reason))]


def generate_launch_description() -> LaunchDescription:
    # Strings stay strings: launch_ros YAML-parses bare substitutions, so
    # flight_id:=20240612 would become an int and 2024-06-12 a date (TypeError).
    lc = {name: ParameterValue(LaunchConfiguration(name), value_type=str) for name in ARGUMENTS}
    config = PathJoinSubstitution([FindPackageShare(PACKAGE), "config"])
    sim_time = {
        "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    }

    def params(yaml_name: str, extra: dict) -> list:
        return [PathJoinSubstitution([config, yaml_name]), {**extra, **sim_time}]

    recorder = LifecycleNode(
        package=PACKAGE,
        executable="fdr_recorder_node",
        name="fdr_recorder",
        namespace="",
        parameters=params("fdr_recorder.yaml", {"flight_root": lc["flight_root"]}),
        output="screen",
        sigterm_timeout=LANDING_TIMEOUT_S,
    )
    tile_cache = LifecycleNode(
        package=PACKAGE,
        executable="tile_cache_node",
        name="tile_cache",
        namespace="",
        parameters=params("tile_cache.yaml", {"dsn": lc["dsn"], "tile_root": lc["tile_root"]}),
        output="screen",
        sigterm_timeout=LANDING_TIMEOUT_S,
    )
    visual_nav = LifecycleNode(
        package=PACKAGE,
        executable="visual_nav_node",
        name="visual_nav",
        namespace="",
        parameters=params("visual_nav.yaml", {"learnt_camera_file": lc["learnt_camera_file"]}),
        output="screen",
        sigterm_timeout=LANDING_TIMEOUT_S,
        # a crash in flight: started again, and the sequencer brings it back up
        respawn=True,
        respawn_delay=RESPAWN_DELAY_S,
    )
    fc_bridge = LifecycleNode(
        package=PACKAGE,
        executable="fc_bridge_node",
        name="fc_bridge",
        namespace="",
        parameters=params("fc_bridge.yaml", {"connection": lc["fc_connection"]}),
        output="screen",
        sigterm_timeout=LANDING_TIMEOUT_S,
        # a crash in flight: started again, and the sequencer brings it back up
        respawn=True,
        respawn_delay=RESPAWN_DELAY_S,
    )
    sequencer = Node(
        package=PACKAGE,
        executable="takeoff_sequencer",
        name="takeoff",
        namespace="",
        parameters=params(
            "takeoff.yaml",
            {
                "flight_id": lc["flight_id"],
                "dsn": lc["dsn"],
                "pg_data_dir": lc["pg_data_dir"],
            },
        ),
        output="screen",
        sigterm_timeout=LANDING_TIMEOUT_S,
    )
    return LaunchDescription(
        [
            *(
                DeclareLaunchArgument(name, default_value=default, description=doc)
                for name, (default, doc) in ARGUMENTS.items()
            ),
            recorder,
            tile_cache,
            visual_nav,
            fc_bridge,
            sequencer,
            RegisterEventHandler(OnProcessExit(target_action=sequencer, on_exit=_sequencer_exited)),
        ]
    )
