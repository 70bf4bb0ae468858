"""Tile identity, LRU and freshness rules (strictly additive on 0001).

Adds, and only adds:

* six ``tiles`` columns, all NULLable so existing rows stay valid:
  ``tile_uuid`` (UUIDv5 of the natural key, UNIQUE as ``uq_tiles_tile_uuid``),
  ``location_hash`` (UUIDv5 of ``z/x/y``), ``content_sha256`` (hex, CHECK
  length 64), ``disk_bytes`` (JPEG + sidecar bytes, CHECK >= 0),
  ``accessed_at`` (LRU clock) and ``uploaded_at`` (NULL = not uploaded);
* four btree indices: ``idx_tiles_location_hash``, ``idx_tiles_content_sha256``,
  ``idx_tiles_accessed_at`` (LRU order) and ``idx_tiles_uploaded_at``;
* the UNIQUE expression index ``idx_tiles_natural_key`` over
  ``(zoom, x, y, source, COALESCE(flight_id, zero UUID))``: one reference tile
  per source and cell, one captured tile per flight and cell (NULLs would
  otherwise never collide);
* ``ck_tiles_freshness_status`` widened to the union of the baseline
  vocabulary and the store's:

  ======================  =========================================
  baseline (0001)         ``fresh``, ``stale_warn``, ``stale_reject``, ``unknown``
  store (this revision)   ``fresh``, ``downgraded``, ``rejected``
  ======================  =========================================

  ``downgraded`` = older than its sector's downgrade threshold (usable, ranked
  lower); ``rejected`` = older than its reject threshold (not to be matched);
* four NULLable bbox columns on ``sector_classifications``
  (``min_latitude``, ``min_longitude``, ``max_latitude``, ``max_longitude``);
* ``tile_freshness_rules`` (classification, action, max_age), seeded with
  ``active_conflict`` -> ``reject`` after 6 months and ``stable_rear`` ->
  ``downgrade`` after 12 months.

``downgrade()`` removes every addition and restores the baseline CHECK;
rows carrying a store-only status are first mapped onto the baseline words
(``downgraded`` -> ``stale_warn``, ``rejected`` -> ``stale_reject``) so the
old CHECK can be validated.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BASELINE_FRESHNESS = ("fresh", "stale_warn", "stale_reject", "unknown")
STORE_FRESHNESS = ("fresh", "downgraded", "rejected")
UNION_FRESHNESS = tuple(dict.fromkeys(BASELINE_FRESHNESS + STORE_FRESHNESS))

NATURAL_KEY_SQL = (
    "CREATE UNIQUE INDEX idx_tiles_natural_key ON tiles "
    "(zoom, x, y, source, COALESCE(flight_id, '00000000-0000-0000-0000-000000000000'::uuid))"
)


def freshness_check(values: tuple[str, ...]) -> str:
    return "freshness_status IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.add_column("tiles", sa.Column("tile_uuid", postgresql.UUID(as_uuid=True), nullable=True))
    op.add_column("tiles", sa.Column("location_hash", postgresql.UUID(as_uuid=True), nullable=True))
    op.add_column("tiles", sa.Column("content_sha256", sa.Text, nullable=True))
    op.add_column("tiles", sa.Column("disk_bytes", sa.BigInteger, nullable=True))
    op.add_column("tiles", sa.Column("accessed_at", sa.TIMESTAMP(timezone=True), nullable=True))
    op.add_column("tiles", sa.Column("uploaded_at", sa.TIMESTAMP(timezone=True), nullable=True))
    op.create_unique_constraint("uq_tiles_tile_uuid", "tiles", ["tile_uuid"])
    op.create_check_constraint(
        "ck_tiles_content_sha256_len", "tiles", "length(content_sha256) = 64"
    )
    op.create_check_constraint("ck_tiles_disk_bytes_nonneg", "tiles", "disk_bytes >= 0")

    op.create_index("idx_tiles_location_hash", "tiles", ["location_hash"])
    op.create_index("idx_tiles_content_sha256", "tiles", ["content_sha256"])
    op.create_index("idx_tiles_accessed_at", "tiles", ["accessed_at"])
    op.create_index("idx_tiles_uploaded_at", "tiles", ["uploaded_at"])
    op.execute(NATURAL_KEY_SQL)

    op.drop_constraint("ck_tiles_freshness_status", "tiles", type_="check")
    op.create_check_constraint(
        "ck_tiles_freshness_status", "tiles", freshness_check(UNION_FRESHNESS)
    )

    for column in ("min_latitude", "min_longitude", "max_latitude", "max_longitude"):
        op.add_column(
            "sector_classifications",
            sa.Column(column, sa.Float(precision=53), nullable=True),
        )

    op.create_table(
        "tile_freshness_rules",
        sa.Column("classification", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("max_age", sa.Interval, nullable=False),
        sa.Column(
            "created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("classification", "action", name="pk_tile_freshness_rules"),
        sa.CheckConstraint(
            "action IN ('reject', 'downgrade')", name="ck_tile_freshness_rules_action"
        ),
        sa.CheckConstraint("max_age > interval '0'", name="ck_tile_freshness_rules_max_age"),
    )
    op.execute(
        "INSERT INTO tile_freshness_rules (classification, action, max_age) VALUES "
        "('active_conflict', 'reject', interval '6 months'), "
        "('stable_rear', 'downgrade', interval '12 months')"
    )


def downgrade() -> None:
    op.drop_table("tile_freshness_rules")
    for column in ("max_longitude", "max_latitude", "min_longitude", "min_latitude"):
        op.drop_column("sector_classifications", column)

    op.drop_constraint("ck_tiles_freshness_status", "tiles", type_="check")
    op.execute(
        "UPDATE tiles SET freshness_status = CASE freshness_status "
        "WHEN 'downgraded' THEN 'stale_warn' WHEN 'rejected' THEN 'stale_reject' "
        "ELSE freshness_status END "
        "WHERE freshness_status IN ('downgraded', 'rejected')"
    )
    op.create_check_constraint(
        "ck_tiles_freshness_status", "tiles", freshness_check(BASELINE_FRESHNESS)
    )

    op.drop_index("idx_tiles_natural_key", table_name="tiles")
    op.drop_index("idx_tiles_uploaded_at", table_name="tiles")
    op.drop_index("idx_tiles_accessed_at", table_name="tiles")
    op.drop_index("idx_tiles_content_sha256", table_name="tiles")
    op.drop_index("idx_tiles_location_hash", table_name="tiles")
    op.drop_constraint("ck_tiles_disk_bytes_nonneg", "tiles", type_="check")
    op.drop_constraint("ck_tiles_content_sha256_len", "tiles", type_="check")
    op.drop_constraint("uq_tiles_tile_uuid", "tiles", type_="unique")
    for column in (
        "uploaded_at",
        "accessed_at",
        "disk_bytes",
        "content_sha256",
        "location_hash",
        "tile_uuid",
    ):
        op.drop_column("tiles", column)
