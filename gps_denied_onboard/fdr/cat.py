"""``cat``: a flight's records, filtered, as dicts in file order.

:func:`iter_records` streams the FDR records of a flight (and, asked for, the
raw topic messages, decoded from CDR where the ``ros2msg`` schema allows)
straight from the segments, record by record, without the whole-flight
accounting of :mod:`gps_denied_onboard.fdr.flight_scan`: ``cat`` and the replay
tests read records this way. Writing them as JSON lines is the command line's
(:mod:`gps_denied_onboard.fdr.tools`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from gps_denied_onboard.fdr.segment_reader import SegmentMessage, SegmentReader, flight_segments

__all__ = ["iter_records"]


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
