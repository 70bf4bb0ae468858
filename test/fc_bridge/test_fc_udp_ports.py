"""A UDP socket whose port the kernel picks never shares it with another.

With SO_REUSEADDR set, Linux hands a socket bound to port 0 (or auto-bound at its
first send) a port another SO_REUSEADDR socket still holds, about once in 2,000
picks beside one such socket; that socket then takes the datagrams. A full suite
saw the bridge wait 3 s for the simulated FC's HEARTBEAT that never came.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from gps_denied_onboard.fc_bridge.config import parse_connection
from gps_denied_onboard.fc_bridge.sim_fc import SimFc
from gps_denied_onboard.fc_bridge.transport import open_transport

HELD = 300


def _port_and_reuse(fd: int) -> tuple[int, int]:
    """The port a socket's descriptor is bound to and its SO_REUSEADDR."""
    with socket.socket(fileno=socket.dup(fd)) as s:
        return s.getsockname()[1], s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)


def _fd(fc: Any) -> int:
    return int(fc._sock.fileno())


@pytest.fixture
def held_ports() -> Iterator[set[int]]:
    """Ports held by live SO_REUSEADDR sockets, as a busy process has them."""
    socks = []
    try:
        for _ in range(HELD):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", 0))
            socks.append(s)
        yield {s.getsockname()[1] for s in socks}
    finally:
        for s in socks:
            s.close()


def test_udpout_links_never_land_on_a_port_another_socket_holds(held_ports: set[int]) -> None:
    # before: about 1 in 80 such links shared a held port (300 held)
    landed = []
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    try:
        ep = parse_connection(f"udpout:127.0.0.1:{target.getsockname()[1]}")
        for _ in range(400):
            t = open_transport(ep)
            try:
                assert t.write(b"\xfd")
                landed.append(_port_and_reuse(t.fileno())[0])
            finally:
                t.close()
    finally:
        target.close()
    assert not held_ports.intersection(landed)


def test_udpin_on_port_0_never_lands_on_a_port_another_socket_holds(held_ports: set[int]) -> None:
    landed = []
    for _ in range(400):
        t = open_transport(parse_connection("udpin:127.0.0.1:0"))
        try:
            landed.append(_port_and_reuse(t.fileno())[0])
        finally:
            t.close()
    assert not held_ports.intersection(landed)


def test_a_sim_fc_takes_its_fixed_port_again_but_shares_no_picked_one() -> None:
    picked = SimFc("ardupilot").start()
    try:
        port, reuse = _port_and_reuse(_fd(picked))
        assert reuse == 0
    finally:
        picked.stop()
    again = SimFc("ardupilot", bind=("127.0.0.1", port)).start()
    try:
        assert _port_and_reuse(_fd(again)) == (port, 1)
    finally:
        again.stop()
