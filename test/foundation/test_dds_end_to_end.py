"""End-to-end proof of the foundation: the interfaces build, install and travel.

Two real rclpy nodes, each in its own process started from the colcon install,
exchange ``gps_denied_onboard/msg/FdrRecord`` over DDS on this run's private
ROS_DOMAIN_ID. It fails if the interface did not build or discovery fails.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from gps_denied_onboard.nodes.bringup import install_prefix

pytestmark = pytest.mark.ros


def _install_lib() -> Path:
    """lib/gps_denied_onboard of the install this test runs against (any workspace)."""
    return install_prefix() / "lib" / "gps_denied_onboard"


def _exe(name: str) -> str:
    path = _install_lib() / name
    assert path.exists(), f"{path} missing: run scripts/bootstrap.sh (colcon build) first"
    return str(path)


def test_fdr_record_crosses_process_boundary_over_dds() -> None:
    env = dict(os.environ)
    echo = subprocess.Popen(
        [_exe("fdr_record_echo"), "--count", "3", "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        ready = json.loads(echo.stdout.readline()) if echo.stdout else {}
        assert ready.get("ready") is True
        payload = json.dumps({"autopilot": "ardupilot", "sysid": 1, "compid": 1})
        send = subprocess.run(
            [
                _exe("fdr_record_send"),
                "--kind",
                "fc.link_up",
                "--producer",
                "fc_bridge",
                "--payload",
                payload,
                "--count",
                "3",
                "--timeout",
                "60",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert send.returncode == 0, send.stderr
        out, err = echo.communicate(timeout=60)
    finally:
        if echo.poll() is None:
            echo.kill()
    assert echo.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [r["payload"]["seq"] for r in records] == [0, 1, 2]
    first = records[0]
    assert first["kind"] == "fc.link_up"
    assert first["producer"] == "fc_bridge"
    assert first["schema_version"] == "1.1.0"
    assert first["payload"]["autopilot"] == "ardupilot"
    assert first["stamp_ns"] > 0
