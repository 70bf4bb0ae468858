"""The operator tools are reachable the ROS way in a colcon environment:
``ros2 run gps_denied_onboard gdo-fdr|gdo-tile-cache`` resolves them through
the ament index to ``<prefix>/lib/gps_denied_onboard/<tool>`` (issue #12)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ros]


def _installed(tool: str) -> Path:
    from ament_index_python.packages import get_package_prefix

    # what `ros2 run` does: the package's prefix from the ament index, then lib/<pkg>/<exe>
    exe = Path(get_package_prefix("gps_denied_onboard")) / "lib" / "gps_denied_onboard" / tool
    assert exe.is_file(), f"{exe} not installed (colcon build)"
    assert os.access(exe, os.X_OK), f"{exe} is not executable"
    return exe


@pytest.mark.parametrize(
    ("tool", "commands"), [("gdo-fdr", "{info,cat,verify,"), ("gdo-tile-cache", "{dump,verify,")]
)
def test_tool_is_installed_as_a_ros_executable(tool: str, commands: str) -> None:
    proc = subprocess.run(
        [str(_installed(tool)), "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: ") and commands in proc.stdout, proc.stdout


def test_installed_tile_cache_tool_reads_a_real_cache(migrated_dsn: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            str(_installed("gdo-tile-cache")),
            "--dsn",
            migrated_dsn,
            "--tile-root",
            str(tmp_path),
            "dump",
            "--stats",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "tiles: 0" in proc.stdout.splitlines()


def test_installed_fdr_tool_refuses_a_missing_flight(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(_installed("gdo-fdr")), "info", str(tmp_path / "no-such-flight")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "no-such-flight" in proc.stderr + proc.stdout
