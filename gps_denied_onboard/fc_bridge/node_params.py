"""The fc_bridge node's parameters: the fields of its three config dataclasses.

ROS-free, so the parameter file can be checked without a node
(``test/fc_bridge/test_fc_node_params.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gps_denied_onboard.config import build_config, config_defaults
from gps_denied_onboard.errors import ConfigError
from gps_denied_onboard.fc_bridge.config import FcBridgeConfig
from gps_denied_onboard.fc_bridge.origin import OriginConfig
from gps_denied_onboard.fc_bridge.scheduler import FixOutputConfig

#: The node's parameters are the fields of these (disjoint) dataclasses.
CONFIG_CLASSES: tuple[type[Any], ...] = (FcBridgeConfig, FixOutputConfig, OriginConfig)


def build_node_config(
    values: Mapping[str, Any],
) -> tuple[FcBridgeConfig, FixOutputConfig, OriginConfig]:
    """Flat parameter values (ROS parameters or a ``--params-file`` section) -> configs.

    Each dataclass is built with ``build_config(strict=True)`` from its own fields; a
    name that belongs to none of them raises (a typo in ``config/fc_bridge.yaml`` is
    an error, not a silently ignored parameter). ``""`` means None for the fields
    whose default is None (ROS parameters have no null).

    Raises:
        ConfigError: unknown name, wrong type, or a range check failed.
    """
    owned: set[str] = set()
    built: list[Any] = []
    for cls in CONFIG_CLASSES:
        defaults = config_defaults(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        owned |= names
        part = {
            k: (None if v == "" and k in defaults and defaults[k] is None else v)
            for k, v in values.items()
            if k in names
        }
        built.append(build_config(cls, part, strict=True))
    unknown = sorted(set(values) - owned)
    if unknown:
        raise ConfigError(f"unknown fc_bridge parameters: {unknown}", key=unknown[0])
    return built[0], built[1], built[2]
