"""Clock, structured logs, records, schema and parameter loading."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timezone
from pathlib import Path

import pytest

from gps_denied_onboard.clock import ManualClock, datetime_to_ns, ns_to_datetime
from gps_denied_onboard.config import build_config, config_defaults, load_ros_params_file
from gps_denied_onboard.errors import ConfigError, RecordSchemaError
from gps_denied_onboard.log import RateLimitedLog, format_event, log_event, parse_event
from gps_denied_onboard.record_schema import FDR_RECORD_SCHEMA_VERSION, check_payload
from gps_denied_onboard.records import FlightRecord, MemorySink


def test_manual_clock_moves_only_forward() -> None:
    clock = ManualClock(100)
    assert clock.now_ns() == 100
    assert clock.advance_s(1.5) == 1_500_000_100
    with pytest.raises(ValueError):
        clock.set_ns(5)
    with pytest.raises(ValueError):
        clock.advance_ns(-1)


def test_datetime_roundtrip_is_exact_to_the_microsecond() -> None:
    when = datetime(2026, 5, 12, 10, 30, 1, 123456, tzinfo=timezone.utc)
    assert ns_to_datetime(datetime_to_ns(when)) == when
    with pytest.raises(ValueError):
        datetime_to_ns(datetime(2026, 5, 12))  # naive


def test_structured_line_roundtrips_through_parse() -> None:
    fields = {"tiles": 3, "ratio": 0.5, "ok": True, "path": "/var/x y", "ids": [1, 2]}
    line = format_event("c6.store.construct", fields)
    assert line.startswith("c6.store.construct tiles=3 ratio=0.5 ok=true ")
    assert parse_event(line) == ("c6.store.construct", fields)


def test_log_event_carries_kind_and_fields_on_the_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("gps_denied_onboard.test")
    with caplog.at_level(logging.INFO, logger="gps_denied_onboard.test"):
        log_event(logger, logging.INFO, "fc.link_up", sysid=1)
    (rec,) = caplog.records
    assert rec.getMessage() == "fc.link_up sysid=1"
    assert rec.event_kind == "fc.link_up"  # type: ignore[attr-defined]
    assert rec.event_fields == {"sysid": 1}  # type: ignore[attr-defined]


def test_rate_limited_log_emits_once_per_period_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = RateLimitedLog(logging.getLogger("gps_denied_onboard.rl"), period_ns=1_000_000_000)
    with caplog.at_level(logging.ERROR, logger="gps_denied_onboard.rl"):
        sent = [
            limiter.log(t, logging.ERROR, "fdr_degraded", errno=28)
            for t in (0, 100, 999_999_999, 1_000_000_000)
        ]
    assert sent == [True, False, False, True]
    assert [r.getMessage() for r in caplog.records] == [
        "fdr_degraded errno=28",
        "fdr_degraded errno=28 suppressed=2",
    ]


def test_flight_record_payload_is_immutable_and_canonical() -> None:
    rec = FlightRecord("fc.armed", "fc_bridge", 5, {"b": 1, "a": 2})
    assert rec.schema_version == FDR_RECORD_SCHEMA_VERSION == "1.1.0"
    assert rec.payload_json() == '{"a":2,"b":1}'
    with pytest.raises(TypeError):
        rec.payload["c"] = 3  # type: ignore[index]
    again = FlightRecord.from_json_payload("fc.armed", "fc_bridge", 5, rec.payload_json(), "1.1.0")
    assert again == rec
    sink = MemorySink()
    sink.emit(rec)
    assert sink.of_kind("fc.armed") == [rec]


def test_schema_rejects_unknown_kind_and_missing_keys_and_flags_extras() -> None:
    with pytest.raises(RecordSchemaError) as err:
        check_payload("no_such_kind", {})
    assert err.value.kind == "no_such_kind"
    with pytest.raises(RecordSchemaError):
        check_payload("overrun", {"producer": "x"})
    extras = check_payload(
        "overrun",
        {"producer": "x", "count": 1, "first_stamp_ns": 0, "last_stamp_ns": 1, "new": 1},
    )
    assert extras == frozenset({"new"})


@dataclasses.dataclass(frozen=True)
class _DemoConfig:
    dsn: str = ""
    rate_hz: float = 10.0
    retries: int = 3
    topics: tuple[str, ...] = ()
    root: Path = Path("var/fdr")
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if self.rate_hz <= 0:
            raise ConfigError("rate_hz must be positive", key="rate_hz")


def test_build_config_coerces_types_and_rejects_bad_values() -> None:
    cfg = build_config(_DemoConfig, {"rate_hz": 5, "topics": ["/a"], "root": "/tmp/r"})
    assert cfg == _DemoConfig(rate_hz=5.0, topics=("/a",), root=Path("/tmp/r"))
    with pytest.raises(ConfigError) as err:
        build_config(_DemoConfig, {"rate_hz": -1.0})
    assert err.value.key == "rate_hz"
    with pytest.raises(ConfigError):
        build_config(_DemoConfig, {"retries": "3"})
    with pytest.raises(ConfigError):
        build_config(_DemoConfig, {"retries": True})
    with pytest.raises(ConfigError):
        build_config(_DemoConfig, {"typo": 1})
    assert config_defaults(_DemoConfig)["root"] == "var/fdr"


def test_ros_params_file_merges_wildcard_then_node_section(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "/**:\n  ros__parameters:\n    dsn: 'a'\n    retries: 1\n"
        "demo:\n  ros__parameters:\n    retries: 2\n"
    )
    assert load_ros_params_file(path, "demo") == {"dsn": "a", "retries": 2}
    path.write_text("- not a mapping\n")
    with pytest.raises(ConfigError):
        load_ros_params_file(path, "demo")
