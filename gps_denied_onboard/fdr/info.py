"""``info``: a scanned flight as a JSON-able report, and that report as text.

:func:`flight_info` turns a :class:`~gps_denied_onboard.fdr.flight_scan.FlightScan`
into the dict ``info --json`` prints (flight, segments, counters, per-kind
counts, gaps, torn tails); :func:`render_info` is the text ``info`` prints by
default, made from that same dict so the two views cannot disagree.
"""

from __future__ import annotations

from typing import Any

from gps_denied_onboard.fdr.flight_scan import FlightScan

__all__ = ["flight_info", "render_info"]


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


def render_info(info: dict[str, Any]) -> str:
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
