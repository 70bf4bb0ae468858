"""``run_node`` spins past rclpy's ``InvalidHandle`` out of ``spin_once``.

rclpy raises it when an entity is destroyed on one executor thread while another
builds the wait set from it (rclpy#1284, #1206): fc_bridge's process once ended that
way after a deactivate, and take-off's landing got no answer. The node process here
is real (``run_node``, its executor, DDS); the one stand-in is at the edge, a
waitable whose ``add_to_wait_set`` raises as a destroyed QoS event handler's does.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from lifecycle_driver import LifecycleDriver  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402

from gps_denied_onboard.nodes.runner import SPIN_ERRORS_IN_A_ROW_MAX  # noqa: E402

CHILD = textwrap.dedent(
    """
    import sys
    from rclpy.exceptions import InvalidHandle
    from rclpy.lifecycle import Node
    from rclpy.waitable import NumberOfEntities, Waitable
    from gps_denied_onboard.nodes.runner import run_node

    NAME, FAILS = sys.argv[1], int(sys.argv[2])

    class Destroyed(Waitable):
        # adding it to the wait set raises FAILS times, as a QoS event handler
        # destroyed between the executor gathering it and adding it does
        def __init__(self, group):
            super().__init__(group)
            self.fails = FAILS
        def is_ready(self, wait_set):
            return False
        def take_data(self):
            return None
        async def execute(self, taken_data):
            return None
        def get_num_entities(self):
            return NumberOfEntities()
        def add_to_wait_set(self, wait_set):
            if self.fails > 0:
                self.fails -= 1
                raise InvalidHandle("cannot use Destroyable because destruction was requested")

    class Probe(Node):
        def __init__(self):
            super().__init__(NAME)
            self.add_waitable(Destroyed(self.default_callback_group))

    sys.exit(run_node(Probe))
    """
)


def _run(tmp_path: Path, name: str, fails: int) -> tuple[subprocess.Popen[bytes], Path]:
    script, log = tmp_path / "probe.py", tmp_path / "probe.log"
    script.write_text(CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(script), name, str(fails)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return proc, log


def _spin_errors(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "node.spin_error" in line]


def test_a_node_keeps_answering_after_invalid_handle_out_of_spin_once(
    ros: None, tmp_path: Path
) -> None:
    name = f"spin_error_{uuid.uuid4().hex[:8]}"
    proc, log = _run(tmp_path, name, 3)
    driver = LifecycleDriver(name, prefix="spin_error_driver")
    try:
        # answered: LifecycleDriver raises if get_state goes unanswered
        assert driver.state() == "unconfigured"
        assert driver.transition(Transition.TRANSITION_CONFIGURE)
        assert driver.state() == "inactive"
        assert proc.poll() is None
    finally:
        driver.close()
        proc.terminate()
        rc = proc.wait(timeout=30)
    assert rc == 0, log.read_text()[-2000:]
    errors = _spin_errors(log)
    assert [e.rsplit("in_a_row=", 1)[1] for e in errors] == ["1", "2", "3"], errors
    assert "destruction was requested" in errors[0]


def test_invalid_handle_every_time_still_ends_the_node(ros: None, tmp_path: Path) -> None:
    proc, log = _run(tmp_path, f"spin_error_{uuid.uuid4().hex[:8]}", 10**6)
    try:
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc != 0
    assert len(_spin_errors(log)) == SPIN_ERRORS_IN_A_ROW_MAX
    assert "InvalidHandle" in log.read_text()
