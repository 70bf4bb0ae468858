"""Every rclpy, launch and launch_ros API the shipped code uses was checked against Humble.

The nodes must run on Humble (JetPack 6, Ubuntu 22.04, Python 3.10) as well as Jazzy,
but the tests run on the Jazzy wheels. So the APIs were read in Humble's own sources
(ros2/rclpy, ros2/launch and ros2/launch_ros, ``humble`` branches) and listed here with
the file they were found in, with the keyword arguments the project passes. This test
scans the shipped code (``gps_denied_onboard/``, ``launch/``, ``scripts/``, ``bench/``)
and fails on an import or a keyword that is not in the list: a newer API has to be
checked against Humble (and feature-detected if Humble lacks it) before it is added.

Newer than Humble, and how the code copes:
- ``rclpy.event_handler`` (Iron+; Humble: ``rclpy.qos_event``): imported through
  ``importlib`` with the Humble fallback (``nodes/fdr_raw_topics.py``); never imported
  by name in shipped code (only ``test/fdr/test_fdr_node_qos.py``, which runs on Jazzy).
- subscription callbacks taking ``(msg, info)`` (rclpy PR #922, after Humble): the
  recorder feature-detects them (``nodes/fdr_inbound.py``).
- ``rclpy.experimental.EventsExecutor`` (Jazzy+; Humble has no ``rclpy.experimental``):
  imported through ``importlib`` with ``SingleThreadedExecutor`` as the Humble fallback
  (``nodes/executors.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["gps_denied_onboard", "launch", "scripts", "bench"]

# (module, name) -> the Humble source file it is defined or re-exported in
HUMBLE_IMPORTS = {
    ("rclpy", "*"): "rclpy/rclpy/__init__.py",
    ("rclpy.callback_groups", "MutuallyExclusiveCallbackGroup"): "rclpy/rclpy/callback_groups.py",
    ("rclpy.callback_groups", "ReentrantCallbackGroup"): "rclpy/rclpy/callback_groups.py",
    ("rclpy.clock", "Clock"): "rclpy/rclpy/clock.py",
    ("rclpy.clock", "ClockType"): "rclpy/rclpy/clock.py",
    ("rclpy.context", "Context"): "rclpy/rclpy/context.py",
    ("rclpy.duration", "Duration"): "rclpy/rclpy/duration.py",
    ("rclpy.exceptions", "InvalidHandle"): (
        "rclpy/rclpy/exceptions.py (InvalidHandle = _rclpy.InvalidHandle, humble branch)"
    ),
    ("rclpy.exceptions", "ParameterException"): "rclpy/rclpy/exceptions.py",
    ("rclpy.executors", "Executor"): "rclpy/rclpy/executors.py",
    ("rclpy.executors", "ExternalShutdownException"): "rclpy/rclpy/executors.py",
    ("rclpy.executors", "MultiThreadedExecutor"): "rclpy/rclpy/executors.py",
    ("rclpy.executors", "SingleThreadedExecutor"): "rclpy/rclpy/executors.py",
    ("rclpy.lifecycle", "Node"): "rclpy/rclpy/lifecycle/__init__.py (Node = LifecycleNode)",
    ("rclpy.lifecycle", "State"): "rclpy/rclpy/lifecycle/__init__.py (State = LifecycleState)",
    ("rclpy.lifecycle", "TransitionCallbackReturn"): "rclpy/rclpy/lifecycle/__init__.py",
    ("rclpy.node", "Node"): "rclpy/rclpy/node.py",
    ("rclpy.parameter", "Parameter"): "rclpy/rclpy/parameter.py",
    ("rclpy.qos", "DurabilityPolicy"): "rclpy/rclpy/qos.py",
    ("rclpy.qos", "HistoryPolicy"): "rclpy/rclpy/qos.py",
    ("rclpy.qos", "QoSProfile"): "rclpy/rclpy/qos.py",
    ("rclpy.qos", "ReliabilityPolicy"): "rclpy/rclpy/qos.py",
    ("rclpy.qos", "qos_profile_sensor_data"): "rclpy/rclpy/qos.py",
    ("rclpy.serialization", "serialize_message"): "rclpy/rclpy/serialization.py",
    ("rclpy.signals", "SignalHandlerOptions"): "rclpy/rclpy/signals.py",
    ("rclpy.subscription", "Subscription"): "rclpy/rclpy/subscription.py",
    ("launch", "LaunchDescription"): "launch/launch/__init__.py",
    ("launch.actions", "DeclareLaunchArgument"): "launch/launch/actions/__init__.py",
    ("launch.actions", "EmitEvent"): "launch/launch/actions/__init__.py",
    ("launch.actions", "LogInfo"): "launch/launch/actions/__init__.py",
    ("launch.actions", "RegisterEventHandler"): "launch/launch/actions/__init__.py",
    ("launch.event_handlers", "OnProcessExit"): "launch/launch/event_handlers/__init__.py",
    ("launch.events", "Shutdown"): "launch/launch/events/__init__.py",
    ("launch.substitutions", "LaunchConfiguration"): "launch/launch/substitutions/__init__.py",
    ("launch.substitutions", "PathJoinSubstitution"): "launch/launch/substitutions/__init__.py",
    ("launch_ros.actions", "LifecycleNode"): "launch_ros/launch_ros/actions/lifecycle_node.py",
    ("launch_ros.actions", "Node"): "launch_ros/launch_ros/actions/node.py",
    ("launch_ros.parameter_descriptions", "ParameterValue"): (
        "launch_ros/launch_ros/parameter_descriptions.py"
    ),
    ("launch_ros.substitutions", "FindPackageShare"): "launch_ros/launch_ros/substitutions/",
}

# call name -> keywords Humble accepts there (the union where one name has several owners)
HUMBLE_KEYWORDS = {
    # rclpy/__init__.py: init, shutdown, create_node, spin_once, spin_until_future_complete
    "init": {"args", "context", "domain_id", "signal_handler_options"},
    "create_node": {
        "context",
        "cli_args",
        "namespace",
        "parameter_overrides",
        "allow_undeclared_parameters",
        "automatically_declare_parameters_from_overrides",
    },
    # rclpy.shutdown(context=) and Executor.shutdown(timeout_sec=)
    "shutdown": {"context", "uninstall_handlers", "timeout_sec"},
    "spin_once": {"timeout_sec", "executor"},
    "spin_until_future_complete": {"timeout_sec", "executor"},
    # node.py
    "create_subscription": {"callback_group", "event_callbacks", "qos_overriding_options", "raw"},
    "create_publisher": {
        "callback_group",
        "event_callbacks",
        "qos_overriding_options",
        "publisher_class",
    },
    "create_client": {"qos_profile", "callback_group"},
    "create_service": {"qos_profile", "callback_group"},
    "create_timer": {"callback_group", "clock"},
    "declare_parameter": {"descriptor", "ignore_override"},
    # client.py, clock.py, executors.py, duration.py, parameter.py, qos.py, qos_event.py
    "wait_for_service": {"timeout_sec"},
    "Clock": {"clock_type"},
    "SingleThreadedExecutor": {"context"},
    "MultiThreadedExecutor": {"num_threads", "context"},
    "Duration": {"seconds", "nanoseconds"},
    "Parameter": {"type_", "value"},
    "QoSProfile": {
        "depth",
        "history",
        "reliability",
        "durability",
        "lifespan",
        "deadline",
        "liveliness",
        "liveliness_lease_duration",
    },
    "SubscriptionEventCallbacks": {"deadline", "incompatible_qos", "liveliness", "message_lost"},
    # launch and launch_ros (ExecuteProcess/ExecuteLocal keywords pass through Node)
    "DeclareLaunchArgument": {"default_value", "description", "choices"},
    "EmitEvent": {"event"},
    "LogInfo": {"msg"},
    "OnProcessExit": {"target_action", "on_exit"},
    "Shutdown": {"reason", "due_to_sigint"},
    "ParameterValue": {"value_type"},
    "LifecycleNode": {
        "name",
        "namespace",
        "package",
        "executable",
        "parameters",
        "output",
        "sigterm_timeout",
        "sigkill_timeout",
        "remappings",
        "arguments",
        "ros_arguments",
        "exec_name",
        # launch humble, actions/execute_local.py: ExecuteLocal(respawn, respawn_delay)
        "respawn",
        "respawn_delay",
    },
    "Node": {
        "name",
        "namespace",
        "package",
        "executable",
        "parameters",
        "output",
        "sigterm_timeout",
        "sigkill_timeout",
        "remappings",
        "arguments",
        "ros_arguments",
        "exec_name",
    },
}
ROS_MODULES = ("rclpy", "launch", "launch_ros")


def _shipped_trees() -> list[tuple[Path, ast.Module]]:
    out = []
    for top in SHIPPED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "/msg/" in str(path) or "/srv/" in str(path):
                continue
            out.append((path, ast.parse(path.read_text(), str(path))))
    return out


def test_every_ros_import_in_shipped_code_was_checked_against_humble() -> None:
    unchecked = []
    seen = set()
    for path, tree in _shipped_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.split(".")[0] not in ROS_MODULES:
                    continue
                for alias in node.names:
                    key = (node.module, alias.name)
                    seen.add(key)
                    if key not in HUMBLE_IMPORTS:
                        unchecked.append(f"{path.relative_to(ROOT)}:{node.lineno} {key}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in ROS_MODULES:
                        key = (alias.name, "*")
                        seen.add(key)
                        if key not in HUMBLE_IMPORTS:
                            unchecked.append(f"{path.relative_to(ROOT)}:{node.lineno} {key}")
    assert not unchecked, "check these against Humble's sources first:\n" + "\n".join(unchecked)
    assert ("rclpy.event_handler", "PublisherEventCallbacks") not in seen
    assert len(seen) >= 30  # the scan sees the nodes and the launch file


def test_keywords_passed_to_ros_apis_exist_in_humble() -> None:
    bad = []
    checked: set[str] = set()
    for path, tree in _shipped_trees():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else None
            )
            if name not in HUMBLE_KEYWORDS:
                continue
            if not _ros_call(path, name):
                continue
            checked.add(name)
            extra = {k.arg for k in node.keywords if k.arg} - HUMBLE_KEYWORDS[name]
            if extra:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}({sorted(extra)})")
    assert not bad, "keywords Humble does not have:\n" + "\n".join(bad)
    # the scan reaches the nodes, the bring-up and the launch file
    assert {
        "init",
        "create_subscription",
        "create_timer",
        "LifecycleNode",
        "Node",
        "ParameterValue",
        "OnProcessExit",
        "SingleThreadedExecutor",
    } <= checked, checked


# names that other libraries (or ROS message classes) share: counted only in files
# that import them from the ROS package that owns the audited one
_OWNER = {"ParameterValue": "launch_ros", "Node": "launch_ros", "LifecycleNode": "launch_ros"}


def _ros_call(path: Path, name: str) -> bool:
    text = path.read_text()
    owner = _OWNER.get(name)
    if owner is not None and path.suffix == ".py" and "launch" not in path.parts:
        # rclpy's Node/LifecycleNode take no keywords we pass; the message ParameterValue
        # is not launch_ros's
        return f"from {owner}" in text and name != "ParameterValue"
    return any(f"from {m}" in text or f"import {m}" in text for m in ROS_MODULES)


#: modules newer than Humble -> what a file reaching them must also hold (its fallback)
NEWER_THAN_HUMBLE = {
    "rclpy.event_handler": ("rclpy.qos_event",),
    "rclpy.experimental": ("importlib", "SingleThreadedExecutor"),
}


@pytest.mark.parametrize("module", sorted(NEWER_THAN_HUMBLE))
def test_a_module_newer_than_humble_is_only_reached_with_its_humble_fallback(module: str) -> None:
    users = [
        path
        for path, _ in _shipped_trees()
        if module in path.read_text() and path.name != Path(__file__).name
    ]
    assert users, f"the scan should find the feature-detected {module}"
    for path in users:
        text = path.read_text()
        for needed in NEWER_THAN_HUMBLE[module]:
            assert needed in text, f"{path}: reaches {module} without {needed}"
