"""The recorder node's pure parts: topic specs, rosbag2 definitions, refusals, DDS gaps."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

pytest.importorskip("rclpy")

from gps_denied_onboard.errors import ConfigError  # noqa: E402
from gps_denied_onboard.fdr.intake import DdsGapTracker  # noqa: E402
from gps_denied_onboard.nodes.fdr_recorder_node import (  # noqa: E402
    FdrNodeConfig,
    parse_topic_entry,
    plan_raw_topics,
    rosbag2_msgdef,
)

RULE = "=" * 80


def test_topic_entries_parse_and_malformed_ones_are_config_errors() -> None:
    assert parse_topic_entry("/fc/status:gps_denied_onboard/msg/FcStatus") == (
        "/fc/status",
        "gps_denied_onboard/msg/FcStatus",
    )
    for bad in ("no-colon", "/t:std_msgs/String", "relative:std_msgs/msg/String", ":a/msg/B"):
        with pytest.raises(ConfigError, match="record_topics"):
            parse_topic_entry(bad)
    with pytest.raises(ConfigError, match="at least 1000"):
        FdrNodeConfig(records_qos_depth=10)


def test_rosbag2_definition_lists_every_dependency_once_and_decodes_cdr() -> None:
    """PositionFix -> std_msgs/Header -> builtin_interfaces/Time, geometry_msgs/Vector3."""
    text = rosbag2_msgdef("gps_denied_onboard/msg/PositionFix")
    sections = text.split(RULE + "\n")
    assert "float64 latitude" in sections[0]
    names = [s.splitlines()[0] for s in sections[1:]]
    assert names == [
        "MSG: std_msgs/Header",
        "MSG: builtin_interfaces/Time",
        "MSG: geometry_msgs/Vector3",
    ]
    # The definition is complete: a CDR message of the type decodes with it.
    from gps_denied_onboard.msg import PositionFix
    from mcap.records import Schema
    from mcap_ros2.decoder import DecoderFactory
    from rclpy.serialization import serialize_message

    msg = PositionFix(latitude=50.45, longitude=30.52, quality=77)
    msg.header.stamp.sec = 12
    msg.velocity_enu.x = 1.5
    schema = Schema(
        id=1, name="gps_denied_onboard/msg/PositionFix", encoding="ros2msg", data=text.encode()
    )
    decoded = DecoderFactory().decoder_for("cdr", schema)(serialize_message(msg))
    assert decoded.latitude == 50.45 and decoded.quality == 77
    assert decoded.header.stamp.sec == 12 and decoded.velocity_enu.x == 1.5


def test_definition_from_a_fixture_share_tree(tmp_path: Path) -> None:
    share = tmp_path / "share"
    (share / "pkg" / "msg").mkdir(parents=True)
    (share / "pkg" / "msg" / "Outer.msg").write_text(
        "# comment\nuint8 A=1\nInner[] items\npkg/Inner one\nstring<=5 name\n"
    )
    (share / "pkg" / "msg" / "Inner.msg").write_text("int32[3] v  # fixed array\n")
    text = rosbag2_msgdef("pkg/msg/Outer", [share])
    assert text == (
        "# comment\nuint8 A=1\nInner[] items\npkg/Inner one\nstring<=5 name\n"
        f"{RULE}\nMSG: pkg/Inner\nint32[3] v  # fixed array\n"
    )
    with pytest.raises(ConfigError, match=r"no pkg/msg/Missing\.msg"):
        rosbag2_msgdef("pkg/msg/Missing", [share])


def test_camera_frame_topics_are_refused_whatever_the_config_says() -> None:
    record, refused = plan_raw_topics(
        [
            "/fc/status:gps_denied_onboard/msg/FcStatus",
            "/camera/image_raw:sensor_msgs/msg/Image",
            "/ai_cam/compressed:sensor_msgs/msg/CompressedImage",
        ]
    )
    assert [r.topic for r in record] == ["/fc/status"]
    assert record[0].msgdef.startswith("# Flight-controller status")
    assert [(r.topic, r.type_name) for r in refused] == [
        ("/camera/image_raw", "sensor_msgs/msg/Image"),
        ("/ai_cam/compressed", "sensor_msgs/msg/CompressedImage"),
    ]
    assert all("forbidden" in r.reason for r in refused)


def test_unknown_type_and_duplicate_topic_fail_configuration() -> None:
    with pytest.raises(ConfigError, match="not installed"):
        plan_raw_topics(["/x:no_such_pkg/msg/Nope"])
    with pytest.raises(ConfigError, match="listed twice"):
        plan_raw_topics(["/a:std_msgs/msg/String", "/a:std_msgs/msg/String"])


def test_dds_gap_tracker_counts_holes_per_producer() -> None:
    t = DdsGapTracker()
    assert t.observe("a", 1, 100) is None
    assert t.observe("b", 1, 100) is None
    assert t.observe("a", 2, 110) is None
    assert t.observe("a", 6, 150) == (3, 110)  # 3, 4, 5 lost; last seen at 110
    assert t.observe("b", 2, 160) is None
    assert t.observe("a", 1, 170) is None  # publisher restarted: baseline reset, no loss
    assert t.resets == 1
    assert t.observe("a", None, 180) is None  # RMW without sequence numbers
    assert t.lost_total == 3


def test_qos_overrides_parse_and_decide_before_any_publisher() -> None:
    from types import SimpleNamespace

    from rclpy.qos import ReliabilityPolicy

    from gps_denied_onboard.nodes.fdr_raw_topics import parse_qos_overrides, wanted_reliability

    overrides = parse_qos_overrides(["/fc/navsat:best_effort", "/fc/status:reliable"])
    assert overrides == {
        "/fc/navsat": ReliabilityPolicy.BEST_EFFORT,
        "/fc/status": ReliabilityPolicy.RELIABLE,
    }
    for bad in (["/fc/navsat:fast"], ["navsat:best_effort"], ["/a:reliable", "/a:best_effort"]):
        with pytest.raises(ConfigError, match="raw_qos_overrides"):
            parse_qos_overrides(bad)
    with pytest.raises(ConfigError, match="raw_qos_overrides"):
        FdrNodeConfig(raw_qos_overrides=("/x:maybe",))

    def pub(rel: ReliabilityPolicy) -> SimpleNamespace:
        return SimpleNamespace(qos_profile=SimpleNamespace(reliability=rel))

    be, rel = ReliabilityPolicy.BEST_EFFORT, ReliabilityPolicy.RELIABLE
    # the override wins over what is discovered, and applies with nothing discovered
    assert wanted_reliability("/fc/navsat", overrides, []) == (be, "override")
    assert wanted_reliability("/fc/navsat", overrides, [pub(rel)]) == (be, "override")
    # rosbag2's rule: reliable only when every publisher offers it
    assert wanted_reliability("/t", overrides, [pub(rel), pub(rel)]) == (rel, "publishers")
    assert wanted_reliability("/t", overrides, [pub(rel), pub(be)]) == (be, "publishers")
    assert wanted_reliability("/t", overrides, []) == (rel, "no_publisher_yet")


def test_dds_gap_tracker_counts_a_lost_head_of_record_publishers() -> None:
    """Records publishers number from 1: a first sample numbered 40 means 39 lost.

    Without it the head of a publisher's stream (overwritten before the recorder
    took it, or published before it matched) was lost with nothing saying so.
    """
    t = DdsGapTracker()
    assert t.observe("a", 40, 500, from_one=True) == (39, 500)
    assert t.observe("a", 41, 510, from_one=True) is None
    assert t.observe("b", 1, 520, from_one=True) is None  # nothing before the first
    assert t.observe("a", 3, 530, from_one=True) == (2, 530)  # restarted, 1 and 2 lost
    assert t.resets == 1
    assert t.lost_total == 41
    # raw topics (publishers that may predate the recorder) keep the old baseline
    assert DdsGapTracker().observe("topic:/fc/status", 40, 500) is None
