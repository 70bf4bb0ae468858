"""One pass over a flight directory: what ``info`` and ``verify`` both report.

:func:`scan_flight` reads every segment of a flight once, record by record
through :class:`~gps_denied_onboard.fdr.segment_reader.SegmentReader` (so a
torn tail ends a segment cleanly), and tallies it into a :class:`FlightScan`:
the flight header and footer and where they stand, per-kind and per-topic
counts, overrun and ``segment_rollover`` records, and per producer a
:class:`ProducerTally` of written seqs and overrun ranges. After the pass each
tally is settled against the segments on disk, which tells a seq dropped with
a segment the capacity cap deleted from one no record accounts for.

This is the tool's reading and accounting, kept apart from what is made of it:
the ``verify`` checks (:mod:`gps_denied_onboard.fdr.verify`), the ``info``
report (:mod:`gps_denied_onboard.fdr.info`) and the command line
(:mod:`gps_denied_onboard.fdr.tools`). The layout read is ``fdr/FORMAT.md``'s.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from gps_denied_onboard.fdr.segment_reader import (
    RAW_PRODUCER,
    SEGMENT_RE,
    FdrToolError,
    SegmentReader,
    SegmentScan,
    flight_segments,
)
from gps_denied_onboard.records import RECORDS_CLOSED_KIND

__all__ = ["FlightScan", "ProducerTally", "scan_flight"]


@dataclass
class ProducerTally:
    """Per-producer accounting as the in-band records show it.

    Written seqs are kept as runs ``[first, last, first_segment, last_segment]``;
    overrun records contribute ``(first_seq, last_seq, segment)`` ranges. After
    the scan, :meth:`settle` merges both and finds what no record accounts for.
    """

    written: int = 0
    dropped_overrun: int = 0
    dropped_upstream: int = 0
    overrun_records: int = 0
    runs: list[list[int]] = field(default_factory=list)
    overrun_ranges: list[tuple[int, int, int]] = field(default_factory=list)
    unsequenced: int = 0
    #: ``records_closed`` records of this producer in the flight, and the sum of their
    #: ``records`` (what its publisher says it sent under this slug before each)
    closes: int = 0
    closed_sent: int = 0
    # filled by settle()
    min_seq: int | None = None
    max_seq: int | None = None
    silent_gaps: list[tuple[int, int]] = field(default_factory=list)
    rollover_gaps: list[tuple[int, int]] = field(default_factory=list)
    overlaps: list[tuple[int, int]] = field(default_factory=list)
    bad_overrun_counts: int = 0

    def add_written(self, seq: int, segment: int) -> None:
        self.written += 1
        runs = self.runs
        if runs and seq == runs[-1][1] + 1:
            runs[-1][1] = seq
            runs[-1][3] = segment
        else:
            runs.append([seq, seq, segment, segment])

    def add_overrun(self, first: Any, last: Any, count: int, segment: int) -> None:
        self.overrun_records += 1
        if not (isinstance(first, int) and isinstance(last, int)):
            # Lost before the recorder numbered them (e.g. in DDS): not in the seq space.
            self.dropped_upstream += count
            return
        self.dropped_overrun += count
        self.overrun_ranges.append((first, last, segment))
        if last - first + 1 != count:
            self.bad_overrun_counts += 1

    def settle(self, missing_between: Any) -> None:
        """Merge written runs and overrun ranges; classify what is left uncovered.

        ``missing_between(a, b)`` returns the segment indices strictly between
        two segments that are not on disk (dropped by the capacity cap).
        """
        spans = [(r[0], r[1], r[2], r[3]) for r in self.runs]
        spans += [(a, b, seg, seg) for a, b, seg in self.overrun_ranges]
        if not spans:
            return
        spans.sort()
        self.max_seq = max(b for _, b, _, _ in spans)
        # A recorder numbers a producer's records over its whole life, so a flight
        # after the first starts wherever the previous one stopped: the lowest seq
        # the flight shows is its start (what came before is in earlier flights).
        self.min_seq = spans[0][0]
        covered_to = self.min_seq - 1
        seg_at_cover = spans[0][2]
        for a, b, seg_a, seg_b in spans:
            if a <= covered_to:
                self.overlaps.append((a, min(b, covered_to)))
            elif a > covered_to + 1:
                hole = (covered_to + 1, a - 1)
                dropped = missing_between(seg_at_cover, seg_a)
                (self.rollover_gaps if dropped else self.silent_gaps).append(hole)
            if b > covered_to:
                covered_to, seg_at_cover = b, seg_b

    @property
    def offered(self) -> int | None:
        """Records offered as far as the flight still shows (cap-dropped ranges excluded)."""
        if self.max_seq is None or self.min_seq is None:
            return None
        return self.max_seq - self.min_seq + 1 - sum(b - a + 1 for a, b in self.rollover_gaps)


@dataclass
class FlightScan:
    """Everything ``info`` and ``verify`` report about one flight directory."""

    flight_dir: Path
    flight_id: str | None = None
    segments: list[SegmentScan] = field(default_factory=list)
    header: dict[str, Any] | None = None
    header_position: tuple[int | None, int] | None = None  # (segment index, message number)
    footer: dict[str, Any] | None = None
    footer_position: tuple[int | None, int] | None = None
    kinds: Counter[str] = field(default_factory=Counter)
    raw_topics: Counter[str] = field(default_factory=Counter)
    producers: dict[str, ProducerTally] = field(default_factory=lambda: defaultdict(ProducerTally))
    overruns: list[dict[str, Any]] = field(default_factory=list)
    rollovers: list[dict[str, Any]] = field(default_factory=list)
    present_indices: set[int] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    fdr_records: int = 0
    raw_messages: int = 0
    #: the nodes take-off brought up (its first ``takeoff.active`` record), and the one
    #: it opened the flight on (``takeoff.transition`` ``open_flight``: the recorder)
    brought_up: list[str] | None = None
    flight_opener: str | None = None
    #: the nodes named by ``records_closed`` records (their publishers' closes)
    closed_nodes: set[str] = field(default_factory=set)

    @property
    def torn(self) -> list[SegmentScan]:
        return [s for s in self.segments if s.torn is not None]

    @property
    def missing_segment_indices(self) -> list[int]:
        """Segment indices below the highest one that are not on disk."""
        if not self.present_indices:
            return []
        return [i for i in range(max(self.present_indices)) if i not in self.present_indices]

    def segments_missing_between(self, a: int | None, b: int | None) -> list[int]:
        """Indices strictly between segments ``a`` and ``b`` that are not on disk."""
        if a is None or b is None:
            return []
        return [i for i in range(a + 1, b) if i not in self.present_indices]


def scan_flight(flight_dir: Path) -> FlightScan:
    """Read every segment of a flight once and tally what ``info``/``verify`` need.

    Raises:
        FdrToolError: the directory does not exist or holds no segments.
    """
    flight_dir = Path(flight_dir)
    if not flight_dir.is_dir():
        raise FdrToolError(f"{flight_dir} is not a directory")
    paths = flight_segments(flight_dir)
    if not paths:
        raise FdrToolError(f"no segments (<flight_id>_<index>.mcap) in {flight_dir}")
    fs = FlightScan(flight_dir)
    fs.present_indices = {int(m["index"]) for p in paths if (m := SEGMENT_RE.match(p.name))}
    ids = {m["flight"] for p in paths if (m := SEGMENT_RE.match(p.name))}
    fs.flight_id = ids.pop() if len(ids) == 1 else None
    if ids:
        fs.problems.append(f"segments of more than one flight in {flight_dir}")
    raw_seq = -1
    for path in paths:
        reader = SegmentReader(path)
        position = 0
        for item in reader.messages():
            if item.is_fdr:
                try:
                    body = item.fdr_body()
                except ValueError:
                    fs.problems.append(
                        f"{path.name}: unreadable FDR record on {item.channel.topic}"
                    )
                    continue
                _tally(fs, body, reader.scan.index or 0, position)
            else:
                fs.raw_messages += 1
                fs.raw_topics[item.channel.topic] += 1
                raw_seq = _unwrap(raw_seq, item.message.sequence)
                fs.producers[RAW_PRODUCER].add_written(raw_seq, reader.scan.index or 0)
            position += 1
        fs.segments.append(reader.scan)
    for tally in fs.producers.values():
        tally.settle(fs.segments_missing_between)
    return fs


def _unwrap(previous: int, sequence: int) -> int:
    """Full seq from an MCAP ``sequence`` (the seq mod 2^32), given the previous full seq."""
    base = max(previous, 0) & ~0xFFFFFFFF
    value = base | (sequence & 0xFFFFFFFF)
    if previous >= 0 and value < previous - (1 << 31):
        value += 1 << 32
    return value


def _is_int(value: object) -> TypeGuard[int]:
    """An int that JSON/CBOR gave us, not a bool (``True`` is an ``int`` to Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _tally(fs: FlightScan, body: dict[str, Any], segment: int, position: int) -> None:
    kind = str(body.get("kind"))
    producer = str(body.get("producer"))
    raw_payload = body.get("payload")
    payload: dict[str, Any] = raw_payload if isinstance(raw_payload, dict) else {}
    fs.fdr_records += 1
    fs.kinds[kind] += 1
    if kind == "flight_header":
        if fs.header is not None:
            fs.problems.append("more than one flight_header")
        fs.header = payload
        fs.header_position = (segment, position)
    elif kind == "flight_footer":
        if fs.footer is not None:
            fs.problems.append("more than one flight_footer")
        fs.footer = payload
        fs.footer_position = (segment, position)
    elif kind == "overrun":
        fs.overruns.append(
            {**payload, "segment": segment, "stamp_ns": body.get("stamp_ns"), "by": producer}
        )
        count = payload.get("count")
        fs.producers[str(payload.get("producer", producer))].add_overrun(
            payload.get("first_seq"),
            payload.get("last_seq"),
            count if isinstance(count, int) else 0,
            segment,
        )
    elif kind == "segment_rollover":
        fs.rollovers.append(dict(payload))
    elif kind == "takeoff.active" and fs.brought_up is None:
        nodes = payload.get("nodes")
        if isinstance(nodes, list):
            fs.brought_up = [str(n) for n in nodes]
    elif kind == "takeoff.transition" and payload.get("transition") == "open_flight":
        fs.flight_opener = str(payload.get("node"))
    seq = body.get("seq")
    tally = fs.producers[producer]
    if kind == RECORDS_CLOSED_KIND:
        tally.closes += 1
        if isinstance(node := payload.get("node"), str):
            fs.closed_nodes.add(node)
        sent = payload.get("records")
        if _is_int(sent):
            tally.closed_sent += sent
    if _is_int(seq):
        tally.add_written(seq, segment)
    else:
        tally.written += 1
        tally.unsequenced += 1
