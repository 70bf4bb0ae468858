"""MAVLink 2 signing of the FC link, over UDP against a simulated FC that holds the key.

pymavlink signs and verifies; these tests pin what the bridge does with it: the key
file rules, every outgoing message signed, forged and replayed incoming messages
dropped and counted, and the line saying whether the autopilot is set up.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gps_denied_onboard.clock import MonotonicClock
from gps_denied_onboard.fc_bridge.config import FcBridgeConfig
from gps_denied_onboard.fc_bridge.errors import FcSigningKeyError
from gps_denied_onboard.fc_bridge.link import FcLink, mavlink2
from gps_denied_onboard.fc_bridge.signing import load_signing_key
from gps_denied_onboard.records import MemorySink

from .link_support import linked, wait_until

KEY = bytes(range(32))
OTHER_KEY = bytes(range(100, 132))


@pytest.fixture
def key_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "mavlink.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, KEY.hex().encode() + b"\n")
    os.close(fd)
    yield path


def _write(path: Path, data: bytes, mode: int) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


# --- the key file ---------------------------------------------------------------------


def test_key_file_raw_or_hex_owner_only(tmp_path: Path, key_file: Path) -> None:
    assert load_signing_key(str(key_file)) == KEY
    assert load_signing_key(str(_write(tmp_path / "raw", KEY, 0o400))) == KEY


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o610])
def test_key_file_that_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = _write(tmp_path / "k", KEY, mode)
    with pytest.raises(FcSigningKeyError) as err:
        load_signing_key(str(path))
    assert err.value.path == str(path)
    assert f"mode {mode:04o}" in err.value.reason and "chmod 600" in err.value.reason


@pytest.mark.parametrize("data", [KEY[:31], KEY + b"\0", b"zz" * 32, b""])
def test_key_file_of_the_wrong_size_or_text_is_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(FcSigningKeyError, match="32 raw bytes or 64 hex digits"):
        load_signing_key(str(_write(tmp_path / "k", data, 0o600)))


def test_missing_key_file_and_symlink_are_refused(tmp_path: Path, key_file: Path) -> None:
    with pytest.raises(FcSigningKeyError, match="cannot open"):
        load_signing_key(str(tmp_path / "absent"))
    link = tmp_path / "link"
    link.symlink_to(key_file)
    with pytest.raises(FcSigningKeyError, match="cannot open"):
        load_signing_key(str(link))


def test_the_link_refuses_to_open_with_an_unsafe_key(tmp_path: Path) -> None:
    path = _write(tmp_path / "k", KEY, 0o644)
    link = FcLink(
        FcBridgeConfig(connection="udpout:127.0.0.1:9", signing_key_file=str(path)),
        MonotonicClock(),
        MemorySink(),
    )
    with pytest.raises(FcSigningKeyError):
        link.open()
    link.close()


# --- over the wire ------------------------------------------------------------------------


def _signed_link(key_file: Path, *, require: bool = True, fc_key: bytes | None = KEY) -> object:
    return linked(
        "ardupilot",
        telemetry_request=False,
        signing_key_file=str(key_file),
        signing_require=require,
        fc_kwargs={"signing_key": fc_key, "require_signed": True},
    )


def test_everything_the_bridge_sends_is_signed_and_the_fc_accepts_it(key_file: Path) -> None:
    with _signed_link(key_file) as (fc, link, _):
        link.wait_for_autopilot(5.0)
        link.send(link.mav.statustext_encode(mavlink2.MAV_SEVERITY_INFO, b"signed"))
        assert fc.wait_for("STATUSTEXT", 1, 5.0)
        assert wait_until(lambda: len(fc.received("HEARTBEAT")) >= 2, 5.0)
        got = fc.received()
        assert got and all(r.msg.get_signed() for r in got)
        assert {r.msg.get_link_id() for r in got} == {0}
        assert fc.signature_rejected == 0
        # the autopilot's own messages carry valid signatures: set up for signing
        line, problem = link.signing_status()
        assert not problem and line.startswith("signing on: the autopilot signs")
        assert link.stats.rx_signed_ok > 0 and link.stats.rx_signature_rejected == 0


def test_a_forged_message_without_the_key_is_dropped_and_counted(key_file: Path) -> None:
    with _signed_link(key_file) as (fc, link, _):
        link.wait_for_autopilot(5.0)
        seen: list[int] = []
        link.add_handler("GPS_RAW_INT", lambda m, _t: seen.append(m.lat))
        base = link.stats.rx_signature_rejected

        def forged(key: bytes | None) -> bytes:
            # same ids as the autopilot, as an intruder on the radio would use
            mav = mavlink2.MAVLink(None, fc.sysid, fc.compid)
            if key is not None:
                mav.signing.secret_key, mav.signing.sign_outgoing = key, True
                mav.signing.timestamp = fc._mav.signing.timestamp + 1000
            msg = mav.gps_raw_int_encode(0, 3, 123, 456, 0, 0, 0, 0, 0, 12)
            return bytes(msg.pack(mav))

        fc.inject_bytes(forged(None))  # unsigned
        fc.inject_bytes(forged(OTHER_KEY))  # signed, wrong key
        assert wait_until(lambda: link.stats.rx_signature_rejected == base + 2, 5.0)
        # a genuine one still passes: the forged frame's far-future timestamp did not
        # poison the stream (pymavlink alone would now reject the genuine ones as old)
        fc.send_message(fc.build("GPS_RAW_INT"))
        assert wait_until(lambda: bool(seen), 5.0)
        assert 123 not in seen and seen == [round(fc.state.lat_deg * 1e7)]


def test_a_replayed_signed_message_is_rejected_by_its_timestamp(key_file: Path) -> None:
    with _signed_link(key_file) as (fc, link, _):
        link.wait_for_autopilot(5.0)
        seen: list[str] = []
        link.add_handler("STATUSTEXT", lambda m, _t: seen.append(m.text))
        # a genuine, signed frame from the autopilot, captured off the air
        captured = bytes(fc._mav.statustext_encode(6, b"arm now").pack(fc._mav))
        fc.inject_bytes(captured)
        assert wait_until(lambda: seen == ["arm now"], 5.0)
        assert wait_until(lambda: len(fc.received("HEARTBEAT")) >= 1, 5.0)
        fc.send_message(fc.heartbeat())  # the stream moves on
        base = link.stats.rx_signature_rejected
        fc.inject_bytes(captured)  # the replay
        assert wait_until(lambda: link.stats.rx_signature_rejected == base + 1, 5.0)
        assert seen == ["arm now"]


def test_without_require_unsigned_messages_are_accepted_counted_and_named(
    key_file: Path,
) -> None:
    # an autopilot that was never given the key
    with _signed_link(key_file, require=False, fc_key=None) as (fc, link, _):
        link.wait_for_autopilot(5.0)
        assert wait_until(lambda: link.stats.rx_unverified_accepted >= 2, 5.0)
        line, problem = link.signing_status()
        assert problem and "arrive unsigned" in line and "accepted" in line
        # the FC cannot check them, but what we send is signed on the wire
        assert fc.received("HEARTBEAT")
        signed_flag = mavlink2.MAVLINK_IFLAG_SIGNED
        assert all(r.msg.get_header().incompat_flags & signed_flag for r in fc.received())


def test_with_require_an_unsigned_autopilot_is_never_detected(key_file: Path) -> None:
    with _signed_link(key_file, require=True, fc_key=None) as (_fc, link, _):
        with pytest.raises(Exception, match="rejected for their signature"):
            link.wait_for_autopilot(1.0)
        assert link.autopilot is None and link.stats.rx_signature_rejected > 0


def test_unsigned_link_says_so() -> None:
    with linked("ardupilot", telemetry_request=False) as (fc, link, _):
        link.wait_for_autopilot(5.0)
        assert link.signing_status() == (
            "signing off: the link is unsigned (signing_key_file unset)",
            False,
        )
        assert fc.wait_for("HEARTBEAT", 1, 5.0)
        assert fc.received("HEARTBEAT")[0].msg.get_signed() is False
