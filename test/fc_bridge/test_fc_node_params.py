"""config/fc_bridge.yaml against the fc_bridge node's declared parameters.

The take-off bring-up starts the node with ``--params-file config/fc_bridge.yaml``;
rclpy silently ignores a name the node never declares, so a typo there would be a
setting that never takes effect. These tests read the file the way the ROS-free
tools do (``load_ros_params_file`` + ``build_config(strict=True)``) and the way rcl
does (a real ``--params-file`` into a real node).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")

from lifecycle_msgs.msg import State as StateMsg  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402

from gps_denied_onboard.config import build_config, config_defaults, load_ros_params_file  # noqa: E402
from gps_denied_onboard.errors import ConfigError  # noqa: E402
from gps_denied_onboard.fc_bridge.config import FcBridgeConfig  # noqa: E402
from gps_denied_onboard.fc_bridge.node_params import CONFIG_CLASSES, build_node_config  # noqa: E402
from gps_denied_onboard.fc_bridge.origin import OriginConfig  # noqa: E402
from gps_denied_onboard.fc_bridge.scheduler import FixOutputConfig  # noqa: E402
from gps_denied_onboard.nodes.fc_bridge_node import NODE_NAME, FcBridgeNode  # noqa: E402

YAML = Path(__file__).resolve().parents[2] / "config" / "fc_bridge.yaml"
#: deployment values that differ from the dataclass default on purpose
DEPLOYMENT_VALUES = {"connection"}


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_every_yaml_name_is_a_field_of_exactly_one_config_dataclass() -> None:
    params = load_ros_params_file(YAML, NODE_NAME)
    assert params, "no fc_bridge.ros__parameters section"
    owners = {name: [c.__name__ for c in CONFIG_CLASSES if name in _fields(c)] for name in params}
    assert {n: o for n, o in owners.items() if len(o) != 1} == {}
    # each dataclass builds strictly from its own names, as the node does
    for cls in CONFIG_CLASSES:
        part = {k: v for k, v in params.items() if k in _fields(cls)}
        for k, default in config_defaults(cls).items():
            if default is None and part.get(k) == "":
                part[k] = None  # "" = unset for None-default fields (ROS has no null)
        build_config(cls, part, strict=True)
    link, out, origin = build_node_config(params)
    assert link.connection == "/dev/ttyTHS1:921600"
    assert out.output == "auto" and out.rate_hz is None
    assert origin.explicit() is None and origin.origin_from_first_fix


def test_yaml_mirrors_every_parameter_and_its_default() -> None:
    params = load_ros_params_file(YAML, NODE_NAME)
    declared = set().union(*(_fields(c) for c in CONFIG_CLASSES))
    assert set(params) == declared
    for cls in CONFIG_CLASSES:
        for name, default in config_defaults(cls).items():
            if name in DEPLOYMENT_VALUES:
                continue
            expected = "" if default is None else default
            assert params[name] == expected, name


def test_a_misspelt_name_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "fc_bridge.yaml"
    bad.write_text(YAML.read_text().replace("max_fix_age_s:", "max_fix_age:"))
    with pytest.raises(ConfigError, match="max_fix_age"):
        build_node_config(load_ros_params_file(bad, NODE_NAME))


def test_origin_is_all_three_or_none_and_nan_means_unset() -> None:
    assert OriginConfig(math.nan, math.nan, math.nan).explicit() is None
    origin = OriginConfig(47.5, 8.5, 400.0).explicit()
    assert origin is not None and origin.latitude_deg == 47.5
    with pytest.raises(ConfigError) as err:
        OriginConfig(origin_latitude_deg=47.5, origin_longitude_deg=8.5)
    assert err.value.key == "origin_altitude_msl_m"
    with pytest.raises(ConfigError):
        OriginConfig(95.0, 8.5, 400.0)
    assert FcBridgeConfig().connection and FixOutputConfig().output == "auto"


def _node_from_params_file(path: Path) -> FcBridgeNode:
    rclpy.init(args=["--ros-args", "--params-file", str(path)])
    return FcBridgeNode()


def test_params_file_reaches_the_node_through_rcl(tmp_path: Path) -> None:
    """The real --params-file path: every yaml name is declared and takes the yaml value;
    numbers for None-default fields (rate_hz, the origin) are accepted, .nan too."""
    text = YAML.read_text()
    text = text.replace('connection: "/dev/ttyTHS1:921600"', 'connection: "udpin:127.0.0.1:0"')
    text = text.replace('rate_hz: ""', "rate_hz: 20.0")
    text = text.replace('origin_latitude_deg: ""', "origin_latitude_deg: 47.25")
    text = text.replace('origin_longitude_deg: ""', "origin_longitude_deg: 8")
    text = text.replace('origin_altitude_msl_m: ""', "origin_altitude_msl_m: 410.5")
    path = tmp_path / "fc_bridge.yaml"
    path.write_text(text)
    expected = load_ros_params_file(path, NODE_NAME)
    node = _node_from_params_file(path)
    try:
        for name, value in expected.items():
            assert node.has_parameter(name), f"{name} in the yaml is not declared"
            assert node.get_parameter(name).value == value, name
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node._state_machine.current_state[0] == StateMsg.PRIMARY_STATE_INACTIVE
        assert node._fix_cfg is not None and node._fix_cfg.rate_hz == 20.0
        assert node._origin_cfg is not None
        origin = node._origin_cfg.explicit()
        assert origin is not None
        assert (origin.latitude_deg, origin.longitude_deg, origin.altitude_msl_m) == (
            47.25,
            8.0,
            410.5,
        )
    finally:
        node.destroy_node()
        rclpy.shutdown()


def test_shipped_params_file_configures_the_node_and_nan_origin_is_unset(tmp_path: Path) -> None:
    text = YAML.read_text().replace('origin_latitude_deg: ""', "origin_latitude_deg: .nan")
    path = tmp_path / "fc_bridge.yaml"
    path.write_text(text)
    node = _node_from_params_file(path)
    try:
        assert math.isnan(node.get_parameter("origin_latitude_deg").value)
        assert node.get_parameter("rate_hz").value == ""
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node._origin_cfg is not None and node._origin_cfg.explicit() is None
        assert node._fix_cfg is not None and node._fix_cfg.rate_hz is None
    finally:
        node.destroy_node()
        rclpy.shutdown()
