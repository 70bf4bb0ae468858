"""Structured log lines: a ``kind`` plus key/values.

The vocabulary is the FDR's: a log line's ``kind`` is the record kind an
investigator would search for (``c6.store.construct``, ``fc.link_down``...).
Lines render as ``kind key=value key=value`` with values JSON-encoded when
they are not plain tokens, so they stay grep-able and machine-parseable::

    c6.store.construct tiles=120 disk_bytes=4096000 orphans_removed=0

Core code logs through a stdlib :class:`logging.Logger`; the ROS nodes
install :class:`RclpyLogHandler`-style bridges (see ``nodes.ros_logging``) so the
same lines reach ``/rosout``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

_PLAIN = re.compile(r"^[A-Za-z0-9_.:/+\-@]+$")


def _render_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    if isinstance(value, str) and _PLAIN.match(value):
        return value
    return json.dumps(value, default=str, sort_keys=True, separators=(",", ":"))


def format_event(kind: str, fields: Mapping[str, Any]) -> str:
    """Render one structured line; keys keep the order they were given in."""
    if not kind or not _PLAIN.match(kind):
        raise ValueError(f"log kind must be a non-empty token, got {kind!r}")
    parts = [kind]
    for key, value in fields.items():
        parts.append(f"{key}={_render_value(value)}")
    return " ".join(parts)


def parse_event(line: str) -> tuple[str, dict[str, Any]]:
    """Inverse of :func:`format_event` for lines it produced (used by tests and tools)."""
    kind, _, rest = line.partition(" ")
    fields: dict[str, Any] = {}
    decoder = json.JSONDecoder()
    i = 0
    while i < len(rest):
        if rest[i] == " ":
            i += 1
            continue
        eq = rest.index("=", i)
        key = rest[i:eq]
        j = eq + 1
        if j < len(rest) and rest[j] in '"[{':
            value, end = decoder.raw_decode(rest, j)
            fields[key] = value
            i = end
        else:
            end = rest.find(" ", j)
            end = len(rest) if end == -1 else end
            token = rest[j:end]
            try:
                fields[key] = json.loads(token)
            except json.JSONDecodeError:
                fields[key] = token
            i = end
    return kind, fields


def log_event(logger: logging.Logger, level: int, kind: str, /, **fields: Any) -> None:
    """Log one structured event; the kind and fields also ride on the LogRecord.

    Handlers can read ``record.event_kind`` and ``record.event_fields`` instead
    of re-parsing the message.
    """
    if logger.isEnabledFor(level):
        logger.log(
            level,
            format_event(kind, fields),
            extra={"event_kind": kind, "event_fields": dict(fields)},
        )


class RateLimitedLog:
    """Emit at most one line per ``period_ns`` of the injected clock; count the rest.

    Used where a fault can repeat at wire speed (ENOSPC on every write, CRC
    errors on a noisy serial link) so that the log itself cannot become the
    next failure. The suppressed count rides on the next line that does go out.
    """

    def __init__(self, logger: logging.Logger, period_ns: int) -> None:
        self._logger = logger
        self._period_ns = period_ns
        self._last_ns: int | None = None
        self.suppressed = 0

    def log(self, now_ns: int, level: int, kind: str, /, **fields: Any) -> bool:
        if self._last_ns is not None and now_ns - self._last_ns < self._period_ns:
            self.suppressed += 1
            return False
        if self.suppressed:
            fields = {**fields, "suppressed": self.suppressed}
        self.suppressed = 0
        self._last_ns = now_ns
        log_event(self._logger, level, kind, **fields)
        return True
