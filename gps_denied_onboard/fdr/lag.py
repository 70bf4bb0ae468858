"""The writer's lag bound: what waited in a ring too long is shed, in-band.

The rings decouple producers from the disk; the price is that a record is only
safe from a process kill once the writer has handed it to the OS. While the
writer keeps up, that takes at most one poll period (50 ms) or one wake batch.
When it falls behind (producers offer more than it can write, or the machine
starves it of CPU) the rings fill slowly and a record could wait for seconds,
all of which a kill -9 would lose without a trace.

So the age of the oldest record not yet handed to the OS is bounded by design:
at every pass, before writing, the writer takes from each ring every item that
entered it more than ``lag_bound_ns`` ago (on the recorder's monotonic clock)
and accounts it in an ``overrun`` record with reason ``lag`` (producer, count,
seq range, stamp span), exactly as a full ring is accounted. What it then writes
is fresh, and the overrun record reaches the OS in the same pass.

This module is the ring side of that rule; :mod:`~gps_denied_onboard.fdr.writer`
applies it and writes the gaps.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

from gps_denied_onboard.fdr.policy import Gap

#: ``overrun`` reason for records shed because they waited longer than the lag bound.
LAG_REASON: Final = "lag"


def take_stale(
    producer: str, ring: deque[tuple[int, Any, tuple[str, ...], int]], cutoff_ns: int
) -> list[Gap]:
    """Take every item offered before ``cutoff_ns`` from the front of ``ring``.

    Returns the gaps to write, in ring order: ``ring_full`` markers met on the way
    as they are, and the shed records coalesced into contiguous ``lag`` gaps (a
    marker ends one, so each lag gap's seqs are all lost).

    The writer calls this when it is already behind, so it is cheap per record: the
    stale prefix is found by bisection on the offer times (non-decreasing along the
    ring) and taken in one sweep.
    """
    lo, hi = 0, len(ring)
    while lo < hi:  # first index offered at or after the cutoff
        mid = (lo + hi) >> 1
        if ring[mid][3] < cutoff_ns:
            lo = mid + 1
        else:
            hi = mid
    if lo == 0:
        return []
    popleft = ring.popleft
    items = [popleft() for _ in range(lo)]
    markers = [i for i, it in enumerate(items) if it[1].__class__ is Gap]
    if not markers:
        return [_lag_gap(producer, items)]
    out: list[Gap] = []
    start = 0
    for i in markers:
        if i > start:
            out.append(_lag_gap(producer, items[start:i]))
        out.append(items[i][1])
        start = i + 1
    if start < len(items):
        out.append(_lag_gap(producer, items[start:]))
    return out


def _lag_gap(producer: str, items: list[tuple[int, Any, tuple[str, ...], int]]) -> Gap:
    stamps = [it[1].stamp_ns for it in items]
    return Gap(
        producer, len(items), min(stamps), max(stamps), items[0][0], items[-1][0], LAG_REASON
    )
