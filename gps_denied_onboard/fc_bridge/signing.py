"""MAVLink 2 message signing of the FC link, through pymavlink's own implementation.

* **Key**: 32 bytes from ``signing_key_file``, either raw or as 64 hex digits
  (whitespace ignored). :func:`load_signing_key` refuses a file that its group or
  others may read, write or execute (``mode & 0o077``) or that neither root nor
  the bridge's own user owns (:class:`~gps_denied_onboard.fc_bridge.errors.FcSigningKeyError`):
  whoever can read the key can command the aircraft.
* **Outgoing**: every message the link sends is signed (``MAVLink.signing``:
  ``sign_outgoing``, ``link_id`` = ``signing_link_id``, the timestamp starting at
  the injected clock's time in 10 us units since 2015-01-01 and increasing by one
  per message, as the MAVLink signing spec asks).
* **Incoming**: pymavlink checks each signature and its timestamp per
  (link id, system, component) stream; a timestamp not newer than the last one
  of its stream (a replay) or a new stream more than a minute behind fails.
  With ``signing_require`` unsigned and badly signed messages are dropped and
  counted (``link.rx_signature_rejected``); without it they are accepted and
  counted (``link.rx_unverified_accepted``). The verification state survives
  reconnects, so a replay stays a replay, and a frame that fails the check leaves
  the stream's timestamp as it was (:class:`VerifyingParser`).
* **Autopilot setup**: :func:`signing_line` says whether the autopilot's own
  messages arrive signed with our key (preflight, diagnostics ``signing``).
  Loading the key into the autopilot is left to a wired, trusted link
  (SETUP_SIGNING over USB, e.g. MAVProxy ``signing setup``): the bridge never
  sends its key over the air.
"""

from __future__ import annotations

import os
import stat
from typing import Any, Final

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from gps_denied_onboard.fc_bridge.errors import FcSigningKeyError

__all__ = [
    "KEY_BYTES",
    "VerifyingParser",
    "load_signing_key",
    "signing_line",
    "signing_timestamp",
]

KEY_BYTES: Final = 32
#: 2015-01-01T00:00:00Z, the MAVLink signing epoch (Unix seconds)
SIGNING_EPOCH_S: Final = 1_420_070_400


def load_signing_key(path: str) -> bytes:
    """Read and check a signing key file (see the module docstring).

    Raises:
        FcSigningKeyError: unreadable, readable by others, foreign owner, wrong size.
    """

    def fail(reason: str) -> FcSigningKeyError:
        return FcSigningKeyError(f"signing key {path}: {reason}", path=path, reason=reason)

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as err:
        raise fail(f"cannot open ({err.strerror})") from err
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise fail("not a regular file")
        if st.st_mode & 0o077:
            raise fail(
                f"mode {stat.S_IMODE(st.st_mode):04o} lets group or others at it; "
                "chmod 600 (only its owner may read it)"
            )
        if st.st_uid not in (0, os.geteuid()):
            raise fail(f"owned by uid {st.st_uid}, neither root nor this user")
        data = os.read(fd, 4 * KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) == KEY_BYTES:
        return bytes(data)
    text = b"".join(data.split())
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise fail(f"needs {KEY_BYTES} raw bytes or {2 * KEY_BYTES} hex digits")
    return key


class VerifyingParser(mavlink2.MAVLink):  # type: ignore[misc]
    """pymavlink's parser, except that a message failing its signature check leaves
    no trace in the stream state.

    pymavlink's ``check_signature`` records a message's timestamp as its stream's
    latest *before* it compares the signature, so one forged frame with a far-future
    timestamp, signed with any key, would make every genuine frame of that stream
    look like a replay: anyone on the radio could cut the link. Here the stream's
    previous timestamp is put back when the check fails; the check itself is
    pymavlink's.
    """

    def check_signature(self, msgbuf: Any, srcSystem: int, srcComponent: int) -> bool:  # noqa: N803
        stream = (msgbuf[-13], srcSystem, srcComponent)
        streams = self.signing.stream_timestamps
        before = streams.get(stream)
        ok = bool(super().check_signature(msgbuf, srcSystem, srcComponent))
        if not ok:
            if before is None:
                streams.pop(stream, None)
            else:
                streams[stream] = before
        return ok


def signing_timestamp(unix_ns: int) -> int:
    """MAVLink signing timestamp: 10 us units since 2015-01-01 (0 before it)."""
    return max(0, (int(unix_ns) - SIGNING_EPOCH_S * 1_000_000_000) // 10_000)


def signing_line(enabled: bool, require: bool, autopilot_signed: bool | None) -> tuple[str, bool]:
    """(line, is_problem) about the signing setup, for preflight and diagnostics.

    ``autopilot_signed``: whether the autopilot's last HEARTBEAT carried a valid
    signature with our key (None: none heard).
    """
    if not enabled:
        return "signing off: the link is unsigned (signing_key_file unset)", False
    if autopilot_signed:
        return "signing on: the autopilot signs its messages with our key", False
    if autopilot_signed is None:
        return "signing on: no message from the autopilot passed the signature check", True
    dropped = "dropped" if require else "accepted (signing_require is off)"
    return (
        "signing on, but the autopilot's messages arrive unsigned or signed with another "
        f"key ({dropped}): load the same key into the autopilot over USB (SETUP_SIGNING, "
        "e.g. MAVProxy 'signing setup')",
        True,
    )
