"""A node's first records: emitted before its record publisher matched the recorder.

DDS gives a VOLATILE sample only to the subscriptions matched when it is written, so
a node's records from before discovery had matched the recorder went nowhere (a
take-off lost ``fc.link_up`` that way). The record publisher now holds them
(``record_gate.RecordGate``: in order, bounded, the oldest dropped and reported) and
lets them out once a subscription matches. The rule is pinned here without ROS, then
over real DDS against the recorder run as its installed executable, on a topic of
its own (remapped) so that no other subscriber in the domain can match first.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from gps_denied_onboard.fdr.intake import DdsGapTracker
from gps_denied_onboard.record_gate import UNMATCHED, RecordGate
from gps_denied_onboard.records import RECORDS_CLOSED_KIND, FlightRecord

T0 = 1_778_544_000 * 1_000_000_000


def _evict(producer: str, i: int) -> FlightRecord:
    return FlightRecord("c6.evict", producer, T0 + i, {"tile_id": f"t{i}", "disk_bytes": i})


# -- the rule, without ROS ------------------------------------------------------------------


def test_records_emitted_before_a_match_go_out_first_in_order_with_their_stamps() -> None:
    gate = RecordGate(limit=10)
    early = [_evict("p", i) for i in range(3)]
    assert [gate.emit(r, matched=False) for r in early] == [[], [], []]
    assert gate.held == 3 and gate.published == 0
    later = _evict("p", 3)
    assert gate.emit(later, matched=True) == [*early, later]
    assert gate.held == 0 and gate.published == 4
    # matched from then on: straight through, nothing held
    assert gate.emit(_evict("p", 4), matched=True) == [_evict("p", 4)]


def test_a_match_seen_by_the_periodic_look_releases_the_hold() -> None:
    gate = RecordGate()
    gate.emit(_evict("p", 0), matched=False)
    gate.emit(_evict("q", 1), matched=False)
    assert gate.release() == [_evict("p", 0), _evict("q", 1)]
    assert gate.release() == []  # nothing twice


def test_past_the_bound_the_oldest_are_dropped_and_reported_before_the_rest() -> None:
    gate = RecordGate(limit=4)
    for i in range(10):
        gate.emit(_evict("p", i), matched=False)
    assert gate.held == 4 and gate.dropped_total == 6
    out = gate.release()
    notice, *kept = out
    assert kept == [_evict("p", i) for i in range(6, 10)]
    assert notice.kind == "overrun" and notice.producer == "p"
    assert dict(notice.payload) == {
        "producer": "p",
        "count": 6,
        "first_stamp_ns": T0,
        "last_stamp_ns": T0 + 5,
        "reason": UNMATCHED,
    }
    assert notice.stamp_ns == T0 + 5  # where the loss was: before the records kept
    assert gate.published == 5


def test_records_closed_says_what_left_when_it_goes_out() -> None:
    gate = RecordGate(limit=4)
    for i in range(6):
        gate.emit(_evict("p", i), matched=False)
    assert gate.close(T0 + 100, "/n", matched=False) == []  # held too, last
    assert not gate.unclosed
    assert gate.close(T0 + 101, "/n", matched=False) == []  # nothing emitted since
    out = gate.release()
    # 6 emitted, the bound 4: the closing record pushed a third one out
    assert [r.kind for r in out] == [
        "overrun",
        "c6.evict",
        "c6.evict",
        "c6.evict",
        "records_closed",
    ]
    assert out[0].payload["count"] == 3
    closing = out[-1]
    assert closing.stamp_ns == T0 + 100
    # published before it: the notice and three records; left the publisher: those
    # four and the three dropped (the flight holds 4 written + 3 accounted as lost)
    assert dict(closing.payload) == {"published": 4, "records": 7, "node": "/n"}
    # the next close counts from there
    gate.emit(_evict("p", 9), matched=True)
    (again,) = gate.close(T0 + 200, "/n", matched=True)
    assert dict(again.payload) == {"published": 6, "records": 1, "node": "/n"}


def test_a_close_while_matched_lets_the_hold_out_first() -> None:
    gate = RecordGate()
    gate.emit(_evict("p", 0), matched=False)
    gate.emit(FlightRecord("fc.link_up", "q", T0 + 1, {}), matched=False)
    out = gate.close(T0 + 2, "/n", matched=True)
    assert [(r.kind, r.producer) for r in out] == [
        ("c6.evict", "p"),
        ("fc.link_up", "q"),
        (RECORDS_CLOSED_KIND, "p"),
        (RECORDS_CLOSED_KIND, "q"),
    ]
    assert [dict(r.payload)["records"] for r in out[2:]] == [1, 1]
    assert [dict(r.payload)["published"] for r in out[2:]] == [2, 3]


def test_without_sequence_numbers_a_publishers_own_overrun_is_not_lost_again() -> None:
    # Humble: the recorder compares what it got with records_closed's count; the
    # records the publisher dropped from its hold are reported by its overrun, once.
    gate = RecordGate(limit=2)
    for i in range(5):
        gate.emit(_evict("p", i), matched=False)
    out = [*gate.close(T0 + 10, "/n", matched=False), *gate.release()]
    tracker = DdsGapTracker()
    gaps = [tracker.count(r.producer, r.kind, r.payload, r.stamp_ns) for r in out]
    assert gaps == [None] * len(out)
    assert tracker.lost_total == 0


# -- over real DDS, with the recorder ---------------------------------------------------------

ros_only = pytest.mark.ros


class _Producer:
    """A node with a record publisher on ``topic``, spun on a thread of its own (its
    look for a match is a timer)."""

    def __init__(self, topic: str, hold_limit: int | None = None) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from gps_denied_onboard.nodes.record_sink import RecordPublisherSink

        self.node = rclpy.create_node(f"held_producer_{uuid.uuid4().hex[:6]}")
        kw: dict[str, Any] = {} if hold_limit is None else {"hold_limit": hold_limit}
        self.sink = RecordPublisherSink(self.node, topic=topic, **kw)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            self._executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._executor.shutdown()
        self.node.destroy_node()


def _recorder(tmp_path: Path, topic: str, flight_id: str) -> tuple[Any, Any, Path]:
    from test_fdr_records_tail import _open_recorder

    return _open_recorder(tmp_path, flight_id, topic)


def _close_recorder(proc: Any, driver: Any, flight_id: str) -> None:
    from test_fdr_records_tail import _close_recorder as close

    close(proc, driver, flight_id)


def _of(flight: Path, producer: str) -> list[dict[str, Any]]:
    from gps_denied_onboard.fdr import tools

    return [r for r in tools.iter_records(flight) if r["producer"] == producer]


def _run(
    tmp_path: Path, flight_id: str, n: int, hold_limit: int | None, *, close_first: bool
) -> tuple[Any, str, Path]:
    """``n`` records emitted right after the sink is made; the recorder only 1.5 s
    later; the sink closed before the recorder came (``close_first``) or after.
    Returns (the sink, its producer slug, the flight)."""
    topic = f"/fdr_held_{uuid.uuid4().hex[:6]}/records"
    producer = _Producer(topic, hold_limit)
    slug = f"held_{uuid.uuid4().hex[:6]}"
    try:
        for i in range(n):
            producer.sink.emit(_evict(slug, i))
        if close_first:  # nobody to wait for: held, closing record included
            assert producer.sink.close(timeout_s=20.0) is False
        time.sleep(1.5)  # nothing subscribed yet: the records wait in the publisher
        assert producer.sink.subscription_count() == 0
        proc, driver, flight = _recorder(tmp_path, topic, flight_id)
        try:
            if not close_first:
                assert producer.sink.close(timeout_s=20.0)
            closed = driver.spin_until(
                lambda: any(r["kind"] == RECORDS_CLOSED_KIND for r in _of(flight, slug)), 30.0
            )
            assert closed, "records_closed never reached the flight"
        finally:
            _close_recorder(proc, driver, flight_id)
        return producer.sink, slug, flight
    finally:
        producer.close()


@ros_only
def test_records_emitted_before_the_recorder_existed_all_reach_the_flight(
    ros: None, tmp_path: Path
) -> None:
    from gps_denied_onboard.fdr import tools

    n = 40
    _sink, slug, flight = _run(tmp_path, "EARLY", n, hold_limit=None, close_first=False)
    records = _of(flight, slug)
    evicts = [r for r in records if r["kind"] == "c6.evict"]
    # every one, in order, with the stamp it was emitted with
    assert [r["payload"]["disk_bytes"] for r in evicts] == list(range(n))
    assert [r["stamp_ns"] for r in evicts] == [T0 + i for i in range(n)]
    (closed,) = [r for r in records if r["kind"] == RECORDS_CLOSED_KIND]
    assert closed["payload"]["published"] == n
    assert closed["payload"]["records"] == n
    # nothing lost, so nothing accounted as lost
    overruns = list(tools.iter_records(flight, kinds=["overrun"]))
    assert not [o for o in overruns if o["payload"]["producer"] == slug], overruns
    verdict = tools.verify_flight(tools.scan_flight(flight))
    assert verdict.ok, verdict.failures
    assert not verdict.warnings, verdict.warnings


@ros_only
def test_past_the_hold_bound_the_oldest_are_dropped_and_the_flight_accounts_them(
    ros: None, tmp_path: Path
) -> None:
    from gps_denied_onboard.fdr import tools

    n, limit = 25, 10
    sink, slug, flight = _run(tmp_path, "BOUND", n, hold_limit=limit, close_first=True)
    assert sink.dropped_unmatched == n - limit + 1  # the closing record pushed one more out
    records = _of(flight, slug)
    kinds = [r["kind"] for r in records]
    assert kinds == ["overrun"] + ["c6.evict"] * (limit - 1) + [RECORDS_CLOSED_KIND]
    notice = records[0]["payload"]
    dropped = n - limit + 1
    assert notice == {
        "producer": slug,
        "count": dropped,
        "first_stamp_ns": T0,
        "last_stamp_ns": T0 + dropped - 1,
        "reason": UNMATCHED,
    }
    kept = [r["payload"]["disk_bytes"] for r in records if r["kind"] == "c6.evict"]
    assert kept == list(range(dropped, n))
    closed = records[-1]["payload"]
    assert closed["published"] == limit  # the notice and the records kept
    assert closed["records"] == limit + dropped  # and those dropped
    # the flight: on disk + accounted lost = what the publisher says left it
    verdict = tools.verify_flight(tools.scan_flight(flight))
    assert verdict.ok, verdict.failures
    assert not verdict.warnings, verdict.warnings
    assert any(slug in c and f"holds {limit + dropped}" in c for c in verdict.checks), (
        verdict.checks
    )


@ros_only
def test_a_close_with_no_subscriber_anywhere_does_not_wait_and_says_so(ros: None) -> None:
    # a standalone node (no recorder on the graph) is not slowed down by the hold
    producer = _Producer(f"/fdr_held_{uuid.uuid4().hex[:6]}/records")
    try:
        for i in range(3):
            producer.sink.emit(_evict("alone", i))
        t0 = time.monotonic()
        assert producer.sink.close(timeout_s=4.0) is False  # reached nobody
        assert time.monotonic() - t0 < 1.0
        assert producer.sink.held == 4  # still held: a later match would take them
        assert not producer.sink.unclosed
    finally:
        producer.close()
