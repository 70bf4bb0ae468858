"""GCS alerts -> STATUSTEXT: severity and 50-character chunking, decoded by the sim FC."""

from __future__ import annotations

import pytest

from gps_denied_onboard.clock import MonotonicClock
from gps_denied_onboard.fc_bridge.link import mavlink2
from gps_denied_onboard.fc_bridge.statustext import (
    AlertForwarder,
    StatusTextEncoder,
    reassemble,
    split_utf8,
)
from gps_denied_onboard.record_schema import check_payload

from .link_support import linked


def test_split_never_cuts_a_utf8_character() -> None:
    text = "é" * 40  # 80 bytes
    chunks = split_utf8(text)
    assert all(len(c) <= 50 for c in chunks)
    assert b"".join(chunks).decode() == text


def test_short_text_is_one_unchunked_message() -> None:
    msgs = StatusTextEncoder(mavlink2.MAVLink(None, 1, 191)).encode(4, "GPS lost")
    assert len(msgs) == 1 and msgs[0].id == 0 and msgs[0].severity == 4


def test_exactly_fifty_characters_get_a_terminating_empty_chunk() -> None:
    msgs = StatusTextEncoder(mavlink2.MAVLink(None, 1, 191)).encode(6, "x" * 50)
    assert [m.chunk_seq for m in msgs] == [0, 1]
    assert msgs[0].id == msgs[1].id != 0


def test_bad_severity_is_rejected() -> None:
    with pytest.raises(ValueError):
        StatusTextEncoder(mavlink2.MAVLink(None, 1, 191)).encode(9, "x")


@pytest.mark.parametrize("severity", [0, 2, 4, 6])
def test_alerts_arrive_at_the_fc_with_severity_and_chunks(severity: int) -> None:
    long_text = "fdr: segment write failed, recorder degraded; " * 3  # > 100 chars
    with linked("ardupilot") as (fc, link, sink):
        link.wait_for_autopilot(3.0)
        fwd = AlertForwarder(link, MonotonicClock(), sink)
        assert fwd.forward(severity, "short one") == 1
        n = fwd.forward(severity, long_text.strip(), source="fdr")
        assert n == 3
        got = [r.msg for r in fc.wait_for("STATUSTEXT", 1 + n, 3.0)]
        assert len(got) == 1 + n
        assert {m.severity for m in got} == {severity}
        assert got[0].id == 0 and got[0].text == "short one"
        chunks = got[1:]
        assert len({m.id for m in chunks}) == 1 and chunks[0].id != 0
        assert [m.chunk_seq for m in chunks] == [0, 1, 2]
        assert all(len(m.text) <= 50 for m in chunks)
        texts = reassemble(chunks)
        assert texts[chunks[0].id] == "fdr: " + long_text.strip()
        recs = sink.of_kind("fc.statustext_forwarded")
        assert [r.payload["severity"] for r in recs] == [severity, severity]
        for r in recs:
            assert check_payload(r.kind, r.payload) == frozenset(), r
