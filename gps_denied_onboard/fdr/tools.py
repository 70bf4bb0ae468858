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
lies beyond is reported as the segment's *torn tail*.

This module is the command line (argparse, printing, exit codes) and the
tool's public names; the work is in one module per concern:
:mod:`~gps_denied_onboard.fdr.flight_scan` (the one pass ``info`` and
``verify`` share), :mod:`~gps_denied_onboard.fdr.info`,
:mod:`~gps_denied_onboard.fdr.verify`, :mod:`~gps_denied_onboard.fdr.cat` and
:mod:`~gps_denied_onboard.fdr.recover`. The names in ``__all__`` (those other code
imports from here) stay importable from here.

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
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from gps_denied_onboard.fdr.cat import iter_records
from gps_denied_onboard.fdr.flight_scan import FlightScan, ProducerTally, scan_flight
from gps_denied_onboard.fdr.info import flight_info, render_info
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
from gps_denied_onboard.fdr.verify import Verdict, verify_flight

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
    print(json.dumps(info, indent=2, default=str) if args.json else render_info(info))
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
