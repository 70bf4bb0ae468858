"""One FC link's epoch: whether what its threads record and log may still show.

A :class:`~gps_denied_onboard.fc_bridge.link.FcLink`'s reader may outlive the
deactivate that closed it (``FcLink.close`` leaves a reader that did not stop in time
behind, ``fc.link_thread_stuck``) and goes on when what held it lets go: it dispatches
what it had read, and the link and the handlers it calls emit flight records
(``fc.link_up``, ``fc.mode_change``, ``fc.gnss_health``, ``fc.origin_reported``...) and
log lines. The node gives each link, and everything that link's threads reach, the
record sink and the logger of one :class:`LinkEpoch`; :meth:`LinkEpoch.retire` (once the
link is closed, before the deactivate returns) ends both for good. A record or line
being written finishes first; none starts after, whatever the old reader does later,
even once the node was activated again with a new link (and a new epoch).

The epoch's lock is held only around writing one record or one line (a leaf: nothing
else is taken under it), so a thread holding another lock may log or record.
"""

from __future__ import annotations

import logging
import threading

from gps_denied_onboard.records import FlightRecord, RecordSink


class LinkEpoch:
    """Gates one link's records and log lines; see the module docstring."""

    def __init__(self) -> None:
        # reentrant: a sink or handler that logs again on the same thread must not hang
        self._lock = threading.RLock()
        self._live = True

    @property
    def live(self) -> bool:
        """Not yet retired."""
        return self._live

    def retire(self) -> None:
        """Nothing more from this link's sink or logger; waits for one being written."""
        with self._lock:
            self._live = False

    def sink(self, target: RecordSink) -> RecordSink:
        """``target``, while this epoch is live."""
        return _EpochSink(self, target)

    def logger(self, target: logging.Logger) -> logging.Logger:
        """``target`` (its name, level, filters and handlers), while this epoch is live."""
        return _EpochLogger(self, target)


class _EpochSink:
    def __init__(self, epoch: LinkEpoch, target: RecordSink) -> None:
        self._epoch = epoch
        self._target = target

    def emit(self, record: FlightRecord) -> None:
        with self._epoch._lock:
            if self._epoch._live:
                self._target.emit(record)


class _EpochLogger(logging.Logger):
    """A logger that hands each record to ``target`` while the epoch is live.

    Not registered with :mod:`logging` (one per link, dropped with it); enabled for
    exactly what ``target`` is enabled for.
    """

    def __init__(self, epoch: LinkEpoch, target: logging.Logger) -> None:
        super().__init__(target.name)
        self._epoch = epoch
        self._target = target

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 (logging's name)
        return self._epoch._live and self._target.isEnabledFor(level)

    def handle(self, record: logging.LogRecord) -> None:
        with self._epoch._lock:
            if self._epoch._live:
                self._target.handle(record)
