"""The visual_nav node keeps what it learnt about the camera in ``learnt_camera_file``.

Over real DDS, with the tile cache's services: a node configured with a file its
predecessor wrote (a camera mounted 1.2 / -0.8 deg off) fixes the frames of that
camera where they are; a corrupt file is refused, the node flies on without it,
and writes a whole one in its place.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from fc_bridge.node_support import spin_ros  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from gps_denied_onboard.visual_nav.learnt_camera import (  # noqa: E402
    LearntCamera,
    read_learnt_camera,
    write_learnt_camera,
)
from gps_denied_onboard.visual_nav.settings import EstimatorConfig  # noqa: E402

from .support import CAMERA, error_m, render  # noqa: E402
from .test_visual_nav_node import (  # noqa: E402
    POSE,
    Probe,
    _lifecycle_up,
    _near_tiles,
    _running,
    _tile_cache_and_vnav,
    wait_until,
)

MOUNTED_OFF = (1.2, -0.8)  # degrees about the body's forward and left axes


@pytest.fixture
def ros() -> Iterator[MultiThreadedExecutor]:
    yield from spin_ros()


def test_a_restarted_node_fixes_with_the_mounting_its_predecessor_learnt(
    ros: MultiThreadedExecutor, pg_dsn: str, tmp_path: Path
) -> None:
    ortho, near = _near_tiles()
    path = tmp_path / "visual_nav" / "learnt_camera.json"
    write_learnt_camera(
        path, LearntCamera(1, CAMERA, EstimatorConfig().mount_rotation, MOUNTED_OFF, None)
    )
    tile_cache, vnav = _tile_cache_and_vnav(pg_dsn, tmp_path)
    vnav.set_parameters([Parameter("learnt_camera_file", value=str(path))])
    probe = Probe(ros)
    nodes = [tile_cache, vnav]
    frame = render(ortho, POSE, mount_rpy=(*MOUNTED_OFF, 0.0))  # the camera as it is

    def error_of_next_fix() -> float:
        seen = len(probe.fixes)

        def fixed() -> bool:
            if len(probe.fixes) > seen:
                return True
            probe.fly(POSE, frame)
            return False

        assert wait_until(lambda: fixed() or time.sleep(2.0), 90.0), (
            f"no fix; diagnostics {vnav.stats.as_dict()}"
        )
        e, n = error_m(POSE, probe.fixes[-1].latitude, probe.fixes[-1].longitude)
        return math.hypot(e, n)

    def learnt_payloads() -> list[dict[str, object]]:
        return [json.loads(r.payload_json) for r in probe.records if r.kind == "vnav.learnt_camera"]

    def learnt_events() -> list[object]:
        return [p["event"] for p in learnt_payloads()]

    with _running(ros, probe, nodes):
        probe.put_tiles(near)
        # restored: the frame lands where it is (500 m x 1.44 deg = 12.6 m off without)
        assert error_of_next_fix() < 3.0
        assert wait_until(
            lambda: vnav.stats.as_dict().get("mount_correction_deg") == "1.20 -0.80", 10.0
        ), vnav.stats.as_dict()
        assert wait_until(lambda: "restored" in learnt_events(), 10.0), learnt_events()
        restored = next(p for p in learnt_payloads() if p["event"] == "restored")
        assert (restored["forward_deg"], restored["left_deg"]) == MOUNTED_OFF
        assert vnav.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        kept = read_learnt_camera(path)  # written again: the lens measured since
        assert kept.mount_correction_deg == pytest.approx(MOUNTED_OFF)
        assert kept.lens is not None and kept.lens.frames >= 1

        # a corrupt file: refused, the node flies on without it and writes a whole one
        path.write_text('{"version": 1, "camera": ')
        assert vnav.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        _lifecycle_up(vnav)
        assert error_of_next_fix() > 8.0  # nothing restored: the mounting's metres off
        assert wait_until(lambda: "refused" in learnt_events(), 10.0), learnt_events()
        assert vnav.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        fresh = read_learnt_camera(path)
        assert fresh.mount_correction_deg == (0.0, 0.0) and fresh.camera == CAMERA
