"""Byte transports of the FC link: serial (termios), UDP in/out, TCP.

Each is a pipe with a pollable file descriptor; :func:`open_transport` picks one
from a parsed :class:`~gps_denied_onboard.fc_bridge.config.Endpoint`. Errors are
``OSError``/``EOFError``; the link turns them into a reconnect.
"""

from __future__ import annotations

import os
import select
import socket
from typing import Final

from gps_denied_onboard.fc_bridge.config import Endpoint

__all__ = ["Transport", "open_transport"]

_READ_SIZE: Final = 65536


class Transport:
    """A byte pipe with a pollable file descriptor."""

    def fileno(self) -> int:
        raise NotImplementedError

    def read(self) -> bytes:
        """Bytes available now (after select said readable). Raises OSError/EOFError."""
        raise NotImplementedError

    def write(self, data: bytes) -> bool:
        """Write one frame; False when there is nobody to send to yet. Raises OSError."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _UdpTransport(Transport):
    """``udpin`` binds and answers the last sender; ``udpout`` sends to a fixed address."""

    def __init__(self, ep: Endpoint) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.setblocking(False)
            if ep.kind == "udpin":
                if ep.port != 0:
                    # our own port again at once after a restart. Not on a socket whose
                    # port the kernel picks (udpout's, at its first send; udpin's port 0):
                    # with SO_REUSEADDR Linux may hand it one another such socket holds
                    # (1 pick in about 2,000 beside one), and the FC's datagrams go there
                    self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self._sock.bind((ep.host, ep.port))
                self._peer: tuple[str, int] | None = None
            else:
                self._peer = (ep.host, ep.port)
        except OSError:
            self._sock.close()
            raise
        self._fixed = ep.kind == "udpout"

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self) -> bytes:
        chunks = []
        while True:
            try:
                data, addr = self._sock.recvfrom(_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionRefusedError:
                # ICMP port unreachable from a previous sendto: the peer is not up yet.
                break
            if not self._fixed:
                self._peer = (addr[0], addr[1])
            chunks.append(data)
        return b"".join(chunks)

    def write(self, data: bytes) -> bool:
        if self._peer is None:
            return False
        try:
            self._sock.sendto(data, self._peer)
        except (BlockingIOError, ConnectionRefusedError):
            return False
        return True

    def close(self) -> None:
        self._sock.close()


class _TcpTransport(Transport):
    def __init__(self, ep: Endpoint) -> None:
        self._sock = socket.create_connection((ep.host, ep.port), timeout=2.0)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.settimeout(1.0)

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self) -> bytes:
        data = self._sock.recv(_READ_SIZE)
        if not data:
            raise EOFError("TCP peer closed the connection")
        return data

    def write(self, data: bytes) -> bool:
        self._sock.sendall(data)
        return True

    def close(self) -> None:
        self._sock.close()


class _SerialTransport(Transport):
    """A tty in raw mode at the configured baud rate (termios; no pyserial needed)."""

    def __init__(self, ep: Endpoint) -> None:
        import termios
        import tty

        speed = getattr(termios, f"B{ep.port}", None)
        if speed is None:
            raise OSError(f"baud rate {ep.port} is not supported by termios")
        self._fd = os.open(ep.host, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            tty.setraw(self._fd)
            attrs = termios.tcgetattr(self._fd)
            attrs[4] = attrs[5] = speed
            attrs[2] |= termios.CLOCAL | termios.CREAD
            attrs[2] &= ~termios.CRTSCTS
            termios.tcsetattr(self._fd, termios.TCSANOW, attrs)
        except (OSError, termios.error) as err:
            os.close(self._fd)
            raise OSError(f"cannot configure {ep.host}: {err}") from err

    def fileno(self) -> int:
        return self._fd

    def read(self) -> bytes:
        try:
            data = os.read(self._fd, _READ_SIZE)
        except BlockingIOError:
            return b""
        if not data:
            raise EOFError("serial device returned EOF")
        return data

    def write(self, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                _, writable, _ = select.select([], [self._fd], [], 0.1)
                if not writable:
                    return False
                continue
            view = view[n:]
        return True

    def close(self) -> None:
        os.close(self._fd)


def open_transport(ep: Endpoint) -> Transport:
    """Open the transport for ``ep``. Raises OSError."""
    if ep.kind in ("udpin", "udpout"):
        return _UdpTransport(ep)
    if ep.kind == "tcp":
        return _TcpTransport(ep)
    if ep.kind == "serial":
        return _SerialTransport(ep)
    raise OSError(f"unsupported transport {ep.kind!r}")
