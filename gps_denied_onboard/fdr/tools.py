"""Operator tool for flight recordings: ``info``, ``cat``, ``verify``, ``recover``.

Runs without ROS: it reads the MCAP segments with the ``mcap`` package and
needs nothing else from the aircraft image::

    python -m gps_denied_onboard.fdr.tools info    FLIGHT_DIR
    python -m gps_denied_onboard.fdr.tools cat     FLIGHT_DIR --kind overrun --producer fc_bridge
    python -m gps_denied_onboard.fdr.tools verify  FLIGHT_DIR
    python -m gps_denied_onboard.fdr.tools recover FLIGHT_DIR

A segment cut short by a crash (kill -9, power loss) has no summary and no
footer, and its last record may be incomplete. Every command reads segments
record by record from the start (never through the summary), through
:class:`~gps_denied_onboard.fdr.segment_reader.SegmentReader`, and stops
cleanly at the first record that is incomplete or not an MCAP record; what
lies beyond is reported as the segment's *torn tail*. ``recover`` is
:mod:`gps_denied_onboard.fdr.recover`; this module holds ``info``, ``verify``,
``cat`` and the command line.

The layout read here is the one the recorder writes (``fdr/FORMAT.md``):
segments ``<flight_id>_<index>.mcap`` in the flight directory, FDR records as
JSON on ``/fdr/<kind>`` channels with a body
``{"kind", "producer", "stamp_ns", "schema_version", "seq", "payload", "flags"?}``
(``seq`` counts, per producer, every record offered to the recorder over its
life, so a record that was dropped leaves a hole in it; a flight's first seq
is wherever the previous flight of the same recorder stopped), raw ROS topics as CDR with
``ros2msg`` schemas.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gps_denied_onboard.fdr.recover import (
    RECOVERY_REPORT,
    FlightRecovery,
    SegmentRecovery,
    rebuild_bag_metadata,
    recover_flight,
    recover_segment,
)
from gps_denied_onboard.fdr.segment_reader import (
    FDR_PRODUCER,
    FDR_TOPIC_PREFIX,
    MCAP_MAGIC,
    RAW_PRODUCER,
    SEGMENT_RE,
    FdrToolError,
    SegmentMessage,
    SegmentReader,
    SegmentScan,
    TornTail,
    flight_segments,
)

__all__ = [
    "FDR_PRODUCER",
    "FDR_TOPIC_PREFIX",
    "MCAP_MAGIC",
    "RAW_PRODUCER",
    "RECOVERY_REPORT",
    "SEGMENT_RE",
    "FdrToolError",
    "FlightRecovery",
    "FlightScan",
    "ProducerTally",
    "SegmentMessage",
    "SegmentReader",
    "SegmentRecovery",
    "SegmentScan",
    "TornTail",
    "Verdict",
    "flight_info",
    "flight_segments",
    "iter_records",
    "main",
    "parse_time",
    "rebuild_bag_metadata",
    "recover_flight",
    "recover_segment",
    "scan_flight",
    "verify_flight",
]


# --- flight level ---------------------------------------------------------------



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
    seq = body.get("seq")
    tally = fs.producers[producer]
    if isinstance(seq, int) and not isinstance(seq, bool):
        tally.add_written(seq, segment)
    else:
        tally.written += 1
        tally.unsequenced += 1


# --- verify -------------------------------------------------------------------


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


# --- info / cat -----------------------------------------------------------------


def flight_info(fs: FlightScan) -> dict[str, Any]:
    """``info`` as a JSON-able dict: flight, segments, counters, kinds, gaps, torn tails."""
    return {
        "flight_dir": str(fs.flight_dir),
        "flight_id": fs.flight_id,
        "header": fs.header,
        "footer": fs.footer,
        "closed": fs.footer is not None,
        "segments": [
            {
                "file": s.path.name,
                "index": s.index,
                "bytes": s.file_bytes,
                "messages": s.messages,
                "first_log_ns": s.first_log_ns,
                "last_log_ns": s.last_log_ns,
                "complete": s.complete,
                "torn": None
                if s.torn is None
                else {
                    "at_byte": s.torn.offset,
                    "lost_bytes": s.torn.lost_bytes,
                    "reason": s.torn.reason,
                },
            }
            for s in fs.segments
        ],
        "missing_segments": fs.missing_segment_indices,
        "fdr_records": fs.fdr_records,
        "raw_messages": fs.raw_messages,
        "kinds": dict(sorted(fs.kinds.items())),
        "raw_topics": dict(sorted(fs.raw_topics.items())),
        "producers": {
            p: {
                "written": t.written,
                "dropped_overrun": t.dropped_overrun,
                "dropped_upstream": t.dropped_upstream,
                "offered": t.offered,
                "silent_gaps": [list(g) for g in t.silent_gaps],
                "rollover_gaps": [list(g) for g in t.rollover_gaps],
            }
            for p, t in sorted(fs.producers.items())
        },
        "gaps": {
            "overrun": fs.overruns,
            "segment_rollover": fs.rollovers,
            "missing_seq": {
                p: [list(g) for g in t.silent_gaps]
                for p, t in sorted(fs.producers.items())
                if t.silent_gaps
            },
        },
        "problems": fs.problems,
    }


def _render_info(info: dict[str, Any]) -> str:
    lines = [f"flight {info['flight_id']}  ({info['flight_dir']})"]
    header = info["header"] or {}
    footer = info["footer"]
    lines.append(
        f"  started_at_ns {header.get('started_at_ns')}  "
        + ("closed" if footer else "NOT CLOSED (no flight_footer)")
    )
    if footer:
        lines.append(
            "  counters: "
            + "  ".join(
                f"{k}={footer.get(k)}"
                for k in (
                    "records_written",
                    "records_dropped_overrun",
                    "bytes_written",
                    "rollover_count",
                )
            )
        )
    lines.append(f"  segments ({len(info['segments'])}):")
    for s in info["segments"]:
        state = "ok" if s["complete"] else "TORN"
        lines.append(f"    {s['file']}  {s['bytes']} B  {s['messages']} msgs  {state}")
        if s["torn"]:
            t = s["torn"]
            lines.append(
                f"      torn at byte {t['at_byte']}: {t['reason']} ({t['lost_bytes']} B lost)"
            )
    if info["missing_segments"]:
        lines.append(f"  missing segments: {info['missing_segments']}")
    lines.append(f"  records: {info['fdr_records']} FDR, {info['raw_messages']} raw")
    for kind, n in info["kinds"].items():
        lines.append(f"    {kind:<28} {n}")
    for topic, n in info["raw_topics"].items():
        lines.append(f"    {topic:<28} {n} (raw)")
    lines.append("  producers:")
    for p, t in info["producers"].items():
        lines.append(
            f"    {p:<20} written={t['written']} dropped_overrun={t['dropped_overrun']} "
            f"offered={t['offered']}"
        )
    gaps = info["gaps"]
    if gaps["overrun"] or gaps["missing_seq"] or gaps["segment_rollover"]:
        lines.append("  gaps:")
        for o in gaps["overrun"]:
            lines.append(
                f"    overrun {o.get('producer')}: {o.get('count')} records "
                f"{o.get('first_stamp_ns')}..{o.get('last_stamp_ns')}"
                + (f" ({o['reason']})" if o.get("reason") else "")
            )
        for p, ranges in gaps["missing_seq"].items():
            lines.append(f"    missing seq {p}: {ranges}")
        for r in gaps["segment_rollover"]:
            lines.append(f"    segment dropped for capacity: {r.get('dropped_segment')}")
    else:
        lines.append("  gaps: none")
    for p in info["problems"]:
        lines.append(f"  PROBLEM: {p}")
    return "\n".join(lines)


def iter_records(
    flight_dir: Path,
    *,
    kinds: Sequence[str] = (),
    producers: Sequence[str] = (),
    since_ns: int | None = None,
    until_ns: int | None = None,
    raw: bool = False,
) -> Iterator[dict[str, Any]]:
    """FDR records (and, with ``raw``, raw topic messages) of a flight as dicts, in file order.

    Time filters apply to the record's ``stamp_ns`` (the producer's clock);
    raw messages are filtered on their log time.
    """
    decoders: dict[int, Any] = {}
    for path in flight_segments(Path(flight_dir)):
        reader = SegmentReader(path)
        for item in reader.messages():
            if item.is_fdr:
                try:
                    body = item.fdr_body()
                except ValueError:
                    continue
                stamp = body.get("stamp_ns")
                if kinds and body.get("kind") not in kinds:
                    continue
                if producers and body.get("producer") not in producers:
                    continue
                if not _in_window(stamp, since_ns, until_ns):
                    continue
                yield {**body, "segment": reader.scan.index, "log_time_ns": item.message.log_time}
            elif raw and not kinds and not producers:
                if not _in_window(item.message.log_time, since_ns, until_ns):
                    continue
                yield {
                    "topic": item.channel.topic,
                    "type": item.schema.name if item.schema else None,
                    "segment": reader.scan.index,
                    "log_time_ns": item.message.log_time,
                    "bytes": len(item.message.data),
                    "message": _decode_raw(item, decoders),
                }


def _in_window(stamp: Any, since_ns: int | None, until_ns: int | None) -> bool:
    if since_ns is None and until_ns is None:
        return True
    if not isinstance(stamp, int):
        return False
    return (since_ns is None or stamp >= since_ns) and (until_ns is None or stamp <= until_ns)


def _decode_raw(item: SegmentMessage, cache: dict[int, Any]) -> Any:
    if item.schema is None or item.schema.encoding != "ros2msg":
        return None
    decode: Any = cache.get(item.schema.id)
    if decode is None:
        try:
            from mcap_ros2.decoder import DecoderFactory

            decode = DecoderFactory().decoder_for("cdr", item.schema)
        except Exception:  # a schema the decoder cannot parse: report the size only
            decode = False
        cache[item.schema.id] = decode
    if not decode:
        return None
    try:
        return _plain(decode(item.message.data))
    except Exception:  # malformed CDR: size only
        return None


def _plain(value: Any) -> Any:
    if hasattr(value, "__slots__") and not isinstance(value, (str, bytes)):
        return {k: _plain(getattr(value, k)) for k in value.__slots__}
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": len(value)} if len(value) > 64 else value.hex()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def parse_time(text: str) -> int:
    """Epoch nanoseconds from an integer or an ISO-8601 time with a zone."""
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give a time zone (e.g. Z)")
    from gps_denied_onboard.clock import datetime_to_ns

    return datetime_to_ns(value)


# --- command line -----------------------------------------------------------------


def _flight_dir(path: Path) -> Path:
    path = Path(path)
    return path.parent if path.is_file() else path


def _cmd_info(args: argparse.Namespace) -> int:
    fs = scan_flight(_flight_dir(args.flight))
    info = flight_info(fs)
    print(json.dumps(info, indent=2, default=str) if args.json else _render_info(info))
    return 0


def _cmd_cat(args: argparse.Namespace) -> int:
    out = sys.stdout
    for rec in iter_records(
        _flight_dir(args.flight),
        kinds=args.kind or (),
        producers=args.producer or (),
        since_ns=args.since,
        until_ns=args.until,
        raw=args.raw,
    ):
        out.write(json.dumps(rec, sort_keys=True, default=str) + "\n")
    out.flush()
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    fs = scan_flight(_flight_dir(args.flight))
    verdict = verify_flight(fs)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": verdict.ok,
                    "failures": verdict.failures,
                    "warnings": verdict.warnings,
                    "checks": verdict.checks,
                },
                indent=2,
            )
        )
    else:
        for line in verdict.checks:
            print(f"ok    {line}")
        for line in verdict.warnings:
            print(f"warn  {line}")
        for line in verdict.failures:
            print(f"FAIL  {line}")
        print("verify: " + ("OK" if verdict.ok else f"FAILED ({len(verdict.failures)})"))
    return 0 if verdict.ok else 1


def _cmd_recover(args: argparse.Namespace) -> int:
    result = recover_flight(_flight_dir(args.flight), keep_original=not args.discard_torn)
    report = result.as_dict()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        if not result.segments:
            print("no torn segments; metadata.yaml rebuilt")
        for s in report["recovered"]:
            print(
                f"recovered {s['segment']}: kept {s['kept_messages']} messages "
                f"({s['kept_bytes']} B), lost {s['lost_bytes']} B at the tail "
                f"({s['torn_reason']}); "
                f"last readable log time {s['last_log_ns']}; last seq per producer "
                f"{s['last_seq_by_producer']}"
                + (f"; original kept as {s['kept_original_as']}" if s["kept_original_as"] else "")
            )
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m gps_denied_onboard.fdr.tools",
        description="Inspect, check and repair flight data recordings (no ROS needed).",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="flight, segments, counters, per-kind counts, gaps, torn tails")
    p.add_argument("flight", type=Path, help="flight directory (or one of its segments)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("cat", help="records as JSON lines, filtered")
    p.add_argument("flight", type=Path)
    p.add_argument("--kind", action="append", help="only this kind (repeatable)")
    p.add_argument("--producer", action="append", help="only this producer (repeatable)")
    p.add_argument("--since", type=parse_time, help="stamp_ns or ISO time, inclusive")
    p.add_argument("--until", type=parse_time, help="stamp_ns or ISO time, inclusive")
    p.add_argument("--raw", action="store_true", help="include raw topic messages (decoded)")
    p.set_defaults(func=_cmd_cat)
    p = sub.add_parser(
        "verify", help="structure, accounting identity, torn tails; exit 1 on failure"
    )
    p.add_argument("flight", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_verify)
    p = sub.add_parser("recover", help="rewrite torn segments readable, rebuild metadata.yaml")
    p.add_argument("flight", type=Path)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--discard-torn", action="store_true", help="do not keep the torn original as <seg>.torn"
    )
    p.set_defaults(func=_cmd_recover)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m gps_denied_onboard.fdr.tools`` (and ``gdo-fdr``)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except FdrToolError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... cat | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
