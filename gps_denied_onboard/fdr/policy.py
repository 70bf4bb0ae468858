"""What the recorder accepts, and what it keeps.

:class:`RecordKindPolicy` has two gates. ``enforce_or_raise`` runs at the
producer's call site (inside ``FdrClient.emit``): records the schema does not
know, and raw camera frames, fail there, in the caller's stack, where the bug
is. ``gate_for_writer`` runs in the writer thread: it rate-caps
``failed_tile_thumbnail`` to one record per tumbling window (0.1 Hz by
default) and coalesces what it drops into ``overrun`` records, so a
thumbnail storm costs neither the disk nor the accounting.

:class:`CapacityCapPolicy` runs after every rotation: it chooses which closed
segments to delete while a flight is over its byte cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gps_denied_onboard.fdr.errors import RawFrameWriteForbiddenError
from gps_denied_onboard.record_schema import check_payload
from gps_denied_onboard.records import FlightRecord

#: Record kinds that would put raw camera frames into the FDR.
FORBIDDEN_KINDS = frozenset({"raw_nav_frame", "raw_ai_cam_frame"})
#: ROS message types that carry camera frames; never recorded raw, whatever the config says.
FORBIDDEN_RAW_TYPES = frozenset(
    {
        "sensor_msgs/msg/Image",
        "sensor_msgs/msg/CompressedImage",
        "sensor_msgs/Image",
        "sensor_msgs/CompressedImage",
    }
)
#: Kinds the writer rate-caps, with the cap's window.
RATE_CAPPED_KINDS = frozenset({"failed_tile_thumbnail"})


@dataclass
class Gap:
    """Records one producer lost, coalesced: count, time span, seq span, why.

    For ``ring_full`` and ``storage_unavailable`` the seqs ``first_seq..last_seq`` are all
    lost (``count == last_seq - first_seq + 1``); for ``rate_cap`` only ``count`` of the
    seqs in that range were dropped (the capped kind's), the others were written.
    """

    producer: str
    count: int
    first_stamp_ns: int
    last_stamp_ns: int
    first_seq: int
    last_seq: int
    reason: str
    kind: str | None = None

    def add(self, seq: int, stamp_ns: int, count: int = 1) -> None:
        self.count += count
        self.first_stamp_ns = min(self.first_stamp_ns, stamp_ns)
        self.last_stamp_ns = max(self.last_stamp_ns, stamp_ns)
        self.first_seq = min(self.first_seq, seq)
        self.last_seq = max(self.last_seq, seq)

    def merge(self, other: Gap) -> None:
        self.count += other.count
        self.first_stamp_ns = min(self.first_stamp_ns, other.first_stamp_ns)
        self.last_stamp_ns = max(self.last_stamp_ns, other.last_stamp_ns)
        self.first_seq = min(self.first_seq, other.first_seq)
        self.last_seq = max(self.last_seq, other.last_seq)

    def payload(self) -> dict[str, object]:
        out: dict[str, object] = {
            "producer": self.producer,
            "count": self.count,
            "first_stamp_ns": self.first_stamp_ns,
            "last_stamp_ns": self.last_stamp_ns,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "reason": self.reason,
        }
        if self.kind is not None:
            out["kind"] = self.kind
        return out


class RecordKindPolicy:
    """The two gates on record kinds (see module docstring).

    ``enforce_or_raise`` is called from every producer thread; it only reads
    shared state (a result cache whose races are benign). ``gate_for_writer``
    and ``take_closed_windows`` are called from the writer thread only.
    """

    def __init__(self, window_ns: int = 10_000_000_000) -> None:
        self._window_ns = window_ns
        self._check_cache: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}
        # (producer, kind) -> window index of the last record let through
        self._window: dict[tuple[str, str], int] = {}
        # (producer, kind) -> drops coalesced for the current window
        self._dropped: dict[tuple[str, str], tuple[int, Gap]] = {}
        self._closed: list[Gap] = []  # windows that ended with drops, not yet taken

    # -- producer side -------------------------------------------------------
    def enforce_or_raise(self, record: FlightRecord) -> tuple[str, ...]:
        """Check ``record`` at the call site.

        Returns:
            Flags to store with the record (``unknown_payload_key:<key>``), usually empty.

        Raises:
            RawFrameWriteForbiddenError: a raw camera frame kind.
            RecordSchemaError: unknown kind or a required payload key missing.
        """
        kind = record.kind
        key = (kind, tuple(record.payload))
        flags = self._check_cache.get(key)
        if flags is not None:
            return flags
        if kind in FORBIDDEN_KINDS:
            raise RawFrameWriteForbiddenError(
                f"record kind {kind!r} would store raw camera frames in the FDR; forbidden "
                "(RESTRICT-UAV-4)",
                kind=kind,
            )
        unknown = check_payload(kind, record.payload)
        flags = tuple(f"unknown_payload_key:{k}" for k in sorted(unknown))
        if len(self._check_cache) < 4096:
            self._check_cache[key] = flags
        return flags

    @staticmethod
    def enforce_raw_topic_or_raise(topic: str, type_name: str) -> None:
        """Refuse to record a ROS topic raw when its type carries camera frames.

        Raises:
            RawFrameWriteForbiddenError: ``type_name`` is an image type.
        """
        if type_name in FORBIDDEN_RAW_TYPES:
            raise RawFrameWriteForbiddenError(
                f"topic {topic!r} of type {type_name} carries camera frames; recording it raw "
                "is forbidden (RESTRICT-UAV-4)",
                kind="raw_ai_cam_frame",
            )

    # -- writer side ---------------------------------------------------------
    def gate_for_writer(self, producer: str, kind: str, stamp_ns: int, seq: int) -> bool:
        """True to write the record; False when it was dropped (and coalesced)."""
        if kind not in RATE_CAPPED_KINDS:
            return True
        key = (producer, kind)
        window = stamp_ns // self._window_ns
        last = self._window.get(key)
        if last is None or window > last:
            self._window[key] = window
            return True
        held = self._dropped.get(key)
        if held is not None and held[0] != window:
            self._closed.append(held[1])
            held = None
        if held is None:
            self._dropped[key] = (window, Gap(producer, 1, stamp_ns, stamp_ns, seq, seq,
                                              "rate_cap", kind))
        else:
            held[1].add(seq, stamp_ns)
        return False

    def take_closed_windows(self, now_ns: int | None = None) -> list[Gap]:
        """Coalesced drops of windows that have ended by ``now_ns`` (all of them if None)."""
        out, self._closed = self._closed, []
        for key, (window, gap) in list(self._dropped.items()):
            if now_ns is None or now_ns // self._window_ns > window:
                out.append(gap)
                del self._dropped[key]
        return out


@dataclass(frozen=True)
class SegmentInfo:
    """A segment of the open flight as the cap policy sees it."""

    index: int
    name: str
    size_bytes: int
    closed: bool


class CapacityCapPolicy:
    """Which closed segments to drop so a flight fits its cap.

    Rules: drop the oldest closed segment first, one at a time, while the
    flight's segment bytes exceed the cap. Never the open segment. Segment 0
    (it carries the flight header) is never dropped: in particular never on
    its own, as the only closed segment. When the flight is over its cap and
    nothing may be dropped, the cap is misconfigured (smaller than segment 0
    plus the open segment plus one closed segment): the caller logs ERROR and
    raises a GCS alert. There is no switch that turns this policy off.
    """

    def __init__(self, cap_bytes: int) -> None:
        self.cap_bytes = cap_bytes

    def choose_drops(self, segments: Sequence[SegmentInfo]) -> tuple[list[SegmentInfo], bool]:
        """Return the segments to drop (oldest first) and whether the cap still cannot hold."""
        total = sum(s.size_bytes for s in segments)
        candidates = sorted(
            (s for s in segments if s.closed and s.index != 0), key=lambda s: s.index
        )
        drops: list[SegmentInfo] = []
        for seg in candidates:
            if total <= self.cap_bytes:
                break
            drops.append(seg)
            total -= seg.size_bytes
        return drops, total > self.cap_bytes

    def misconfigured_reason(self, segment_size_bytes: int) -> str | None:
        """Why the cap can never hold for this segment size (None when it can)."""
        if self.cap_bytes < 3 * segment_size_bytes:
            return (
                f"flight_cap_bytes={self.cap_bytes} is below 3 x segment_size_bytes="
                f"{3 * segment_size_bytes}: the header segment, one closed and the open "
                "segment must fit"
            )
        return None
