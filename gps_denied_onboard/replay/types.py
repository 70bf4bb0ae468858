"""A ``rosbags`` typestore that knows the project's own messages.

Used to write bags (the sample-flight generator, tests) and to decode them
without ROS: ROS 2 Jazzy's standard types plus every ``msg/*.msg`` of
``gps_denied_onboard``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PACKAGE = "gps_denied_onboard"


def default_msg_dir() -> Path:
    """``msg/`` of the source tree, else the installed ``share/gps_denied_onboard/msg``."""
    src = Path(__file__).resolve().parents[2] / "msg"
    if src.is_dir():
        return src
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE)) / "msg"


def project_typestore(msg_dir: Path | None = None) -> Any:
    """Jazzy typestore + ``gps_denied_onboard/msg/*`` from ``msg_dir``."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    types: dict[str, Any] = {}
    for path in sorted((msg_dir or default_msg_dir()).glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
    store.register(types)
    return store
