"""The main job keeps its ROS graph to itself unless told otherwise: a second run,
a take-off under test or an aircraft's stack on the LAN must not reach its nodes
(another run's take-off once sent its recorder a ``configure`` mid-flight)."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy")

from gps_denied_onboard.nodes.demo import PRIVATE_DOMAINS, private_graph


def test_without_a_domain_the_main_job_takes_a_private_one_on_this_host_only() -> None:
    env: dict[str, str] = {}
    domain = private_graph(env)
    assert int(domain) in PRIVATE_DOMAINS
    assert env["ROS_DOMAIN_ID"] == domain
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert "ROS_LOCALHOST_ONLY" not in env  # Jazzy warns it is deprecated


def test_the_callers_domain_and_discovery_range_are_kept() -> None:
    env = {"ROS_DOMAIN_ID": "7", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
    assert private_graph(env) == "7"
    assert env == {"ROS_DOMAIN_ID": "7", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}


def test_on_humble_the_graph_stays_on_this_host_through_localhost_only() -> None:
    env = {"ROS_DISTRO": "humble"}
    private_graph(env)
    assert env["ROS_LOCALHOST_ONLY"] == "1"
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE" not in env
