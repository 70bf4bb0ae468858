"""Root of the project's error hierarchy.

Every component has a small family under this root::

    GpsDeniedError
    ├── ConfigError                  bad parameter values (any component)
    ├── RecordSchemaError            a flight record that breaks fdr_record_schema
    ├── EmbeddedPostgresError        the private cluster could not start/stop
    ├── TileCacheError               tile_cache.errors
    ├── FdrError                     fdr.errors
    ├── FcBridgeError                fc_bridge.errors
    └── TakeoffError                 takeoff.errors

Callers catch a family, never match on message text. Wrapped library
errors (psycopg, OSError, pymavlink) are chained with ``raise ... from err``.
"""

from __future__ import annotations


class GpsDeniedError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(GpsDeniedError, ValueError):
    """A configuration value is missing, of the wrong type or out of range.

    Attributes:
        key: the parameter name that was rejected, when one is to blame.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class RecordSchemaError(GpsDeniedError, ValueError):
    """A flight record's kind or payload does not fit ``fdr_record_schema``.

    Attributes:
        kind: the record kind that was rejected.
    """

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class EmbeddedPostgresError(GpsDeniedError):
    """The private PostgreSQL cluster could not be created, started or stopped."""
