"""ROS parameters <-> the config dataclasses: one parameter per field, declared
from the defaults and read back through the dataclass's own checks."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import rclpy
from rclpy.node import Node

from gps_denied_onboard.config import build_config, config_defaults

T = TypeVar("T")


def declare_config(node: Node, cls: type[Any]) -> None:
    """Declare one parameter per field of the config dataclass ``cls``.

    Fields whose default is None are declared unset with dynamic typing, so a
    parameter file may give a number or a string ("" also means None); list
    defaults must be non-empty to carry a type, so empty lists are declared as
    string arrays.
    """
    from rcl_interfaces.msg import ParameterDescriptor

    for name, default in config_defaults(cls).items():
        if node.has_parameter(name):
            continue
        if default is None:
            node.declare_parameter(name, None, ParameterDescriptor(dynamic_typing=True))
            continue
        value = default
        if isinstance(value, list) and not value:
            from rcl_interfaces.msg import ParameterDescriptor, ParameterType

            node.declare_parameter(
                name, [""], ParameterDescriptor(type=ParameterType.PARAMETER_STRING_ARRAY)
            )
            node.set_parameters([rclpy.parameter.Parameter(name, value=[])])
            continue
        node.declare_parameter(name, value)
    # fields without default must still be declared so they can be set
    for f in dataclasses.fields(cls):
        if not node.has_parameter(f.name):
            node.declare_parameter(f.name, "")


def read_config(node: Node, cls: type[T]) -> T:
    """Build ``cls`` from the node's current parameter values.

    Raises:
        ConfigError: a value has the wrong type or fails the dataclass checks.
    """
    values: dict[str, Any] = {}
    hints = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name, f in hints.items():
        raw = node.get_parameter(name).value
        if (raw == "" or raw is None) and f.default is None:
            raw = None
        if isinstance(raw, list) and raw == [""]:
            raw = []
        values[name] = raw
    return build_config(cls, values)
