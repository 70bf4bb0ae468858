"""Replay options: a frozen dataclass, checked by a pure function.

The command line (``replay/__main__.py``) and programmatic callers (the main
job, tests) build the same :class:`ReplayOptions`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gps_denied_onboard.errors import ConfigError

#: /clock cadence in sim-time Hz when none is given (``ros2 bag play --clock`` uses 40).
DEFAULT_CLOCK_HZ = 100.0


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay a bag.

    Attributes:
        rate: sim-time seconds per wall second; ``None`` plays as fast as
            possible (same order, no waiting).
        start_offset_s: skip this many seconds from the bag's first message;
            sim time starts there.
        topics: recorded topic names to play; empty plays every CDR topic.
        remaps: recorded topic name -> published topic name.
        loop: start again from the beginning at the end (sim time jumps back,
            as with ``ros2 bag play --loop``).
        clock_hz: /clock ticks per sim-time second; 0 publishes /clock only
            right before messages (when ``clock`` is on).
        clock: publish /clock at all.
        clock_before_messages: publish /clock = t right before the first
            message stamped t, so a ``use_sim_time`` node that handles it
            sees ``now() == t``.
        start_paused: start paused (resume with space, the pause service or
            :meth:`Player.resume`).
        delay_s: wall seconds to wait after creating publishers, before the
            first message (lets DDS discovery match subscribers).
        max_loops: with ``loop``, stop after this many passes (0 = forever).
        duration_s: play only this many sim seconds from the start (None: all).
    """

    rate: float | None = 1.0
    start_offset_s: float = 0.0
    topics: tuple[str, ...] = ()
    remaps: Mapping[str, str] = field(default_factory=dict)
    loop: bool = False
    clock_hz: float = DEFAULT_CLOCK_HZ
    clock: bool = True
    clock_before_messages: bool = True
    start_paused: bool = False
    delay_s: float = 0.0
    max_loops: int = 0
    duration_s: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "remaps", dict(self.remaps))
        object.__setattr__(self, "topics", tuple(self.topics))
        validate_options(self)

    def published_name(self, topic: str) -> str:
        """The name ``topic`` is published under after remapping."""
        return self.remaps.get(topic, topic)

    def selects(self, topic: str) -> bool:
        """Whether the recorded ``topic`` is to be played."""
        return not self.topics or topic in self.topics


def _finite(value: float, key: str) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value!r}", key=key)


def validate_options(options: ReplayOptions) -> None:
    """Check every option; raise :class:`ConfigError` naming the first bad one."""
    if options.rate is not None:
        _finite(options.rate, "rate")
        if options.rate <= 0:
            raise ConfigError(f"rate must be > 0 (or 'max'), got {options.rate}", key="rate")
    _finite(options.start_offset_s, "start_offset_s")
    if options.start_offset_s < 0:
        raise ConfigError("start_offset_s must be >= 0", key="start_offset_s")
    _finite(options.clock_hz, "clock_hz")
    if options.clock_hz < 0:
        raise ConfigError("clock_hz must be >= 0", key="clock_hz")
    _finite(options.delay_s, "delay_s")
    if options.delay_s < 0:
        raise ConfigError("delay_s must be >= 0", key="delay_s")
    if options.max_loops < 0:
        raise ConfigError("max_loops must be >= 0", key="max_loops")
    if options.duration_s is not None:
        _finite(options.duration_s, "duration_s")
        if options.duration_s <= 0:
            raise ConfigError("duration_s must be > 0", key="duration_s")
    for name in (*options.topics, *options.remaps, *options.remaps.values()):
        if not name.startswith("/"):
            raise ConfigError(f"topic names must be absolute (start with '/'): {name!r}",
                              key="topics")
    targets = [options.published_name(t) for t in options.remaps]
    if len(set(targets)) != len(targets):
        raise ConfigError("two topics remapped onto one name", key="remaps")


def parse_rate(text: str) -> float | None:
    """``"2"`` -> 2.0; ``"max"``/``"inf"``/``"0"`` -> None (as fast as possible)."""
    lowered = text.strip().lower()
    if lowered in {"max", "inf", "0"}:
        return None
    try:
        value = float(lowered)
    except ValueError as err:
        raise ConfigError(f"rate must be a number or 'max', got {text!r}", key="rate") from err
    if math.isinf(value):
        return None
    return value


def parse_remaps(items: Iterable[str]) -> dict[str, str]:
    """Parse ``old:=new`` pairs (names without a leading slash get one)."""
    remaps: dict[str, str] = {}
    for item in items:
        old, sep, new = item.partition(":=")
        if not sep or not old or not new:
            raise ConfigError(f"remap must look like old:=new, got {item!r}", key="remaps")
        remaps[_absolute(old)] = _absolute(new)
    return remaps


def _absolute(name: str) -> str:
    return name if name.startswith("/") else "/" + name


def parse_topics(items: Iterable[str]) -> tuple[str, ...]:
    """Topic names as given on the command line, made absolute, order kept."""
    seen: dict[str, None] = {}
    for item in items:
        for part in item.split(","):
            if part.strip():
                seen[_absolute(part.strip())] = None
    return tuple(seen)
