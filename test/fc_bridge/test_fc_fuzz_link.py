"""Robustness: garbage and bad-CRC frames interleaved with valid traffic, over real UDP."""

from __future__ import annotations

import random

from gps_denied_onboard.fc_bridge.link import mavlink2

from .link_support import linked, wait_until

_MAGIC = {0xFD, 0xFE}


def _garbage(rng: random.Random, n: int) -> bytes:
    """Random bytes that contain no MAVLink start-of-frame marker."""
    return bytes(b for b in rng.randbytes(n * 2) if b not in _MAGIC)[:n]


def _frame(mav: object, i: int) -> bytes:
    msg = mavlink2.MAVLink_named_value_int_message(i, b"seq", i)
    return bytes(msg.pack(mav))


def test_interleaved_garbage_and_bad_crc_are_counted_exactly_and_valid_frames_survive() -> None:
    rng = random.Random(5)
    with linked("ardupilot") as (fc, link, _):
        link.wait_for_autopilot(3.0)
        got: list[int] = []
        link.add_handler("NAMED_VALUE_INT", lambda m, t: got.append(m.value))
        before = link.stats
        mav = mavlink2.MAVLink(None, 1, 1)
        garbage_bytes = 0
        bad_crc = 0
        for i in range(200):
            payload = bytearray()
            g = _garbage(rng, rng.randint(1, 40))
            garbage_bytes += len(g)
            payload += g
            if i % 3 == 0:
                bad = bytearray(_frame(mav, 10_000 + i))
                bad[-1] ^= 0x5A  # corrupt the CRC
                payload += bad
                bad_crc += 1
            payload += _frame(mav, i)
            fc.inject_bytes(bytes(payload))
        assert wait_until(lambda: len(got) >= 200, 5.0), len(got)
        after = link.stats
        assert got == list(range(200))
        assert after.bad_data_bytes - before.bad_data_bytes == garbage_bytes
        assert after.bad_crc - before.bad_crc == bad_crc
        assert link.link_ok


def test_arbitrary_random_bytes_never_crash_or_stall_the_reader() -> None:
    rng = random.Random(11)
    with linked("px4") as (fc, link, _):
        link.wait_for_autopilot(3.0)
        for _ in range(300):
            fc.inject_bytes(rng.randbytes(rng.randint(1, 600)))
        # Also frames that look right but lie about their length or flags.
        for _ in range(100):
            hdr = bytes([0xFD, rng.randint(0, 255), rng.randint(0, 255)])
            fc.inject_bytes(hdr + rng.randbytes(rng.randint(0, 300)))

        def bad() -> int:
            s = link.stats
            return s.bad_data_bytes + s.bad_crc + s.bad_frames

        assert wait_until(lambda: bad() > 10_000, 5.0), link.stats
        # After the storm, valid traffic keeps flowing: the reader is alive and in sync.
        n = link.stats.rx_messages
        assert wait_until(lambda: link.stats.rx_messages > n + 20, 3.0)
        assert wait_until(lambda: link.link_ok, 2.0)
        t = link.last("HEARTBEAT")
        assert t is not None and t[0].autopilot == mavlink2.MAV_AUTOPILOT_PX4


def test_feed_directly_with_truncated_and_corrupted_frames_never_raises() -> None:
    rng = random.Random(3)
    with linked("ardupilot") as (fc, link, _):
        link.wait_for_autopilot(3.0)
        mav = mavlink2.MAVLink(None, 1, 1)
        for i in range(500):
            frame = bytearray(_frame(mav, i))
            cut = rng.randint(0, len(frame))
            for _ in range(rng.randint(0, 3)):
                frame[rng.randrange(len(frame))] = rng.randint(0, 255)
            fc.inject_bytes(bytes(frame[:cut]))
        n = link.stats.rx_messages
        assert wait_until(lambda: link.stats.rx_messages > n + 10, 3.0)
