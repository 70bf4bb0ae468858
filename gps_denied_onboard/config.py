"""Parameters into frozen config dataclasses.

Every component's configuration is a frozen dataclass whose fields are ROS
parameter names. Nodes declare those parameters (defaults from the dataclass,
overridden by ``config/*.yaml``) and build the dataclass in ``on_configure``
with :func:`build_config`; ROS-free tools build it from the same YAML with
:func:`load_ros_params_file`. Range checks live in each dataclass's
``__post_init__`` and raise :class:`~gps_denied_onboard.errors.ConfigError`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gps_denied_onboard.errors import ConfigError

T = TypeVar("T")


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(name, value, inner[0])
    if origin in (tuple, list) and args:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"parameter {name!r} must be a list", key=name)
        item_type = args[0]
        return tuple(_coerce(name, v, item_type) for v in value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"parameter {name!r} must be a bool, got {value!r}", key=name)
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"parameter {name!r} must be an integer, got {value!r}", key=name)
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"parameter {name!r} must be a number, got {value!r}", key=name)
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"parameter {name!r} must be a string, got {value!r}", key=name)
        return value
    if annotation is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"parameter {name!r} must be a path, got {value!r}", key=name)
        return Path(value)
    return value


def build_config(cls: type[T], values: Mapping[str, Any], *, strict: bool = True) -> T:
    """Build the frozen dataclass ``cls`` from a flat mapping of parameter values.

    Args:
        cls: a dataclass type; its field names are the parameter names.
        values: parameter values; missing ones take the dataclass default.
        strict: reject names that are not fields (catches typos in YAML).

    Raises:
        ConfigError: unknown name, wrong type, or a range check failed.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = set(values) - set(fields)
    if strict and unknown:
        raise ConfigError(f"unknown parameters for {cls.__name__}: {sorted(unknown)}")
    kwargs = {name: _coerce(name, values[name], hints[name]) for name in fields if name in values}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{cls.__name__}: {err}") from err


def config_defaults(cls: type[Any]) -> dict[str, Any]:
    """Parameter names and default values of a config dataclass (for declare_parameter)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            continue
        if isinstance(value, Path):
            value = str(value)
        if isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def load_ros_params_file(path: Path, node_name: str) -> dict[str, Any]:
    """Read ``node_name``'s ``ros__parameters`` from a ROS 2 parameter YAML file.

    Accepts ``node_name``, ``/node_name`` and the ``/**`` wildcard section,
    most specific last so it wins, as ``ros2 run --params-file`` does.
    """
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read parameter file {path}: {err}") from err
    if not isinstance(doc, dict):
        raise ConfigError(f"parameter file {path} is not a mapping")
    merged: dict[str, Any] = {}
    for section in ("/**", node_name.lstrip("/"), "/" + node_name.lstrip("/")):
        block = doc.get(section)
        if isinstance(block, dict):
            params = block.get("ros__parameters", {})
            if not isinstance(params, dict):
                raise ConfigError(f"{path}: {section}.ros__parameters is not a mapping")
            merged.update(params)
    return merged
