"""``verify``: check a scanned flight's structure, accounting identity and torn tails.

:func:`verify_flight` judges a :class:`~gps_denied_onboard.fdr.flight_scan.FlightScan`
against ``fdr/FORMAT.md``: torn tails, MCAP profile and channel encodings,
segments missing without a ``segment_rollover`` record for them, where the
flight header and footer stand, per producer that every seq is written or
covered by exactly one overrun record (offered = written + dropped_overrun),
and the footer's counters against the records. A producer whose publisher
closed in the flight (``records_closed``: how many it sent) is checked against
what the flight holds of it, written or accounted lost (ring, lag, DDS): fewer is
a warning, since records sent before the flight opened are legitimately absent
but a tail lost without a trace looks the same. A node take-off brought up of
which nothing is in the flight is a warning too. Its :class:`Verdict` is plain
data; printing it and the exit status are the command line's
(:mod:`gps_denied_onboard.fdr.tools`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gps_denied_onboard.fdr.flight_scan import FlightScan
from gps_denied_onboard.fdr.segment_reader import FDR_PRODUCER, FDR_TOPIC_PREFIX

__all__ = ["Verdict", "verify_flight"]


@dataclass
class Verdict:
    """``verify``'s findings: failures make the exit status non-zero."""

    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def verify_flight(fs: FlightScan) -> Verdict:
    """Structure, accounting identity and torn tails of a scanned flight."""
    v = Verdict()
    v.failures.extend(fs.problems)
    if not fs.segments:
        v.failures.append("no segments")
        return v
    # structure
    for s in fs.segments:
        if s.torn is not None:
            v.failures.append(
                f"{s.path.name}: torn tail at byte {s.torn.offset} of {s.torn.file_bytes} "
                f"({s.torn.reason}); run `recover`"
            )
        if s.late_channels:
            v.failures.append(
                f"{s.path.name}: channel defined after messages that use it (not valid MCAP; "
                "a torn copy of such a segment cannot be attributed to topics)"
            )
        if s.profile is not None and s.profile != "ros2":
            v.failures.append(f"{s.path.name}: MCAP profile {s.profile!r}, expected 'ros2'")
        for ch in s.channels.values():
            schema = s.schemas.get(ch.schema_id)
            if ch.topic.startswith(FDR_TOPIC_PREFIX):
                # FORMAT.md: schemaless JSON, the JSON schema in the channel metadata.
                json_schema = ch.metadata.get("jsonschema") or (
                    schema.data.decode() if schema and schema.encoding == "jsonschema" else ""
                )
                if ch.message_encoding != "json" or not json_schema:
                    v.failures.append(
                        f"{s.path.name}: {ch.topic} is not a JSON channel with a JSON schema"
                    )
            elif ch.message_encoding != "cdr" or schema is None or schema.encoding != "ros2msg":
                v.failures.append(f"{s.path.name}: raw topic {ch.topic} is not CDR with ros2msg")
    v.checks.append(f"{len(fs.segments)} segments read, {len(fs.torn)} torn")
    missing = [i for i in fs.missing_segment_indices if i != 0 or not fs.rollovers]
    if missing and len(fs.rollovers) < len(fs.missing_segment_indices):
        v.failures.append(
            f"segments {missing} are missing and only {len(fs.rollovers)} segment_rollover "
            "records account for dropped segments"
        )
    if fs.header is None:
        v.failures.append("no flight_header record")
    elif fs.header_position != (fs.segments[0].index, 0):
        v.failures.append(
            f"flight_header is not the first record of segment 0 ({fs.header_position})"
        )
    elif fs.flight_id is not None and fs.header.get("flight_id") != fs.flight_id:
        v.failures.append(
            f"flight_header names flight {fs.header.get('flight_id')!r}, files say {fs.flight_id!r}"
        )
    last = fs.segments[-1]
    if fs.footer is None:
        v.failures.append("no flight_footer record (flight not closed, or its tail was lost)")
    elif fs.footer_position != (last.index, last.messages - 1):
        v.failures.append("flight_footer is not the last record of the last segment")
    # accounting: for each producer, written seqs + overrun ranges cover 0..max exactly
    for producer, t in sorted(fs.producers.items()):
        if t.silent_gaps:
            n = sum(b - a + 1 for a, b in t.silent_gaps)
            v.failures.append(
                f"{producer}: {n} records missing from the sequence with no overrun record "
                f"(silent gaps {t.silent_gaps[:5]}{' ...' if len(t.silent_gaps) > 5 else ''})"
            )
        if t.overlaps:
            v.failures.append(f"{producer}: seqs written or dropped twice {t.overlaps[:5]}")
        if t.bad_overrun_counts:
            v.failures.append(
                f"{producer}: {t.bad_overrun_counts} overrun records whose count does not "
                "match their seq range"
            )
        if t.unsequenced:
            v.failures.append(f"{producer}: {t.unsequenced} records without a seq")
        offered = t.offered
        if offered is not None and offered != t.written + t.dropped_overrun:
            v.failures.append(
                f"{producer}: offered {offered} != written {t.written} + "
                f"dropped_overrun {t.dropped_overrun}"
            )
        v.checks.append(
            f"{producer}: offered={offered} written={t.written} dropped_overrun={t.dropped_overrun}"
        )
        if t.closes:
            held = t.written - t.closes + t.dropped_overrun + t.dropped_upstream
            line = (
                f"{producer}: its publisher sent {t.closed_sent} (records_closed x{t.closes}), "
                f"the flight holds {held} (written, dropped_overrun, dds_loss)"
            )
            if held < t.closed_sent:
                v.warnings.append(
                    f"{line}: {t.closed_sent - held} unaccounted (sent before the flight "
                    "opened, or lost without a trace)"
                )
            else:
                v.checks.append(line)
    _check_nodes_heard(fs, v)
    if fs.footer is not None:
        own = sum(int(o.get("count", 0)) for o in fs.overruns if o.get("by") == FDR_PRODUCER)
        want = fs.footer.get("records_dropped_overrun")
        if isinstance(want, int) and want != own:
            v.failures.append(
                f"footer records_dropped_overrun={want} but the recorder's overrun records "
                f"sum to {own}"
            )
        written = fs.footer.get("records_written")
        seen = fs.fdr_records + fs.raw_messages - 1  # everything before the footer
        if isinstance(written, int) and not fs.missing_segment_indices and written != seen:
            v.failures.append(
                f"footer records_written={written} but the segments hold {seen} records "
                "before the footer"
            )
        rollovers = fs.footer.get("rollover_count")
        if isinstance(rollovers, int) and rollovers != len(fs.rollovers):
            v.failures.append(
                f"footer rollover_count={rollovers} but there are {len(fs.rollovers)} "
                "segment_rollover records"
            )
    return v


def _base(node: str) -> str:
    """A node's name without its namespace (``/air/fc_bridge`` -> ``fc_bridge``)."""
    return node.rstrip("/").rsplit("/", 1)[-1]


def _check_nodes_heard(fs: FlightScan, v: Verdict) -> None:
    """Every node take-off brought up (``takeoff.active``) but the recorder is heard in
    the flight: a ``records_closed`` names it, or a producer carries its name.

    Why: a node whose record publisher never matched the recorder before it went down
    leaves nothing in the flight, not even the ``records_closed`` that the identity
    check reads, so no other check can see it (its node logs ``fdr.records_unmatched``).
    A warning, not a failure: a node renamed from its producer's slug and killed before
    its close is not heard either.
    """
    if not fs.brought_up:
        return
    opener = _base(fs.flight_opener) if fs.flight_opener else None
    closed = {_base(n) for n in fs.closed_nodes}
    for node in fs.brought_up:
        base = _base(node)
        if base == opener:
            continue  # the recorder writes its own records
        if base in closed or base in fs.producers:
            v.checks.append(f"{node}: heard in the flight")
        else:
            v.warnings.append(
                f"{node}: brought up by take-off (takeoff.active) but nothing in the flight "
                "is of it: no records_closed names it and no producer carries its name (its "
                "records reached no recorder, or it went down without closing)"
            )
