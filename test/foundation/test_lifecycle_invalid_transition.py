"""Every node process refuses a transition its state has not, and keeps serving.

rclpy answers a transition by label that the state lacks with ``success=False``, but
one by id raised out of ``spin_once`` and ended the process (a second take-off on the
same domain once sent our recorder ``configure`` mid-flight). The processes here are
the installed node executables, spun by ``run_node``, driven over DDS.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from lifecycle_driver import LifecycleDriver  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState  # noqa: E402

from gps_denied_onboard.nodes.bringup import PACKAGE, install_prefix  # noqa: E402

NODES = ["fdr_recorder_node", "tile_cache_node", "visual_nav_node", "fc_bridge_node"]


def _argv(executable: str) -> list[str]:
    exe = install_prefix() / "lib" / PACKAGE / executable
    assert exe.exists(), f"{exe} missing: build the package (scripts/bootstrap.sh)"
    return [sys.executable, str(exe)]


def _refused(driver: LifecycleDriver, transition_id: int) -> bool:
    req = ChangeState.Request()
    req.transition.id = transition_id  # by id, no label: rclpy's unguarded path
    res = driver.call(ChangeState, "change_state", req, timeout_s=20.0)
    return not res.success


@pytest.mark.parametrize("executable", NODES)
def test_a_transition_the_state_has_not_is_refused_and_the_node_serves_on(
    ros: None, tmp_path: Path, executable: str
) -> None:
    name = f"guard_{uuid.uuid4().hex[:8]}"
    log = tmp_path / "node.log"
    proc = subprocess.Popen(
        [*_argv(executable), "--ros-args", "-r", f"__node:={name}"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    driver = LifecycleDriver(name, prefix="guard_driver")
    try:
        assert driver.state() == "unconfigured"
        # unconfigured has configure and shutdown, not activate or deactivate
        assert _refused(driver, Transition.TRANSITION_ACTIVATE)
        assert _refused(driver, Transition.TRANSITION_DEACTIVATE)
        assert _refused(driver, 99)  # no such transition at all
        assert driver.state() == "unconfigured"
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        driver.close()
        proc.terminate()
        rc = proc.wait(timeout=30)
    assert rc == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert text.count("node.transition_refused") == 3, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
