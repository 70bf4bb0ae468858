"""Baseline: ``tiles`` and ``sector_classifications``.

``tiles`` holds one row per stored tile: its web-mercator address
(zoom, x, y), where it came from (``source``; ``flight_id`` for tiles
captured in flight, NULL for reference imagery), the tile centre, when the
imagery was captured, its freshness, free-form quality metadata and the path
of its JPEG relative to the tile root.

Baseline freshness vocabulary (``ck_tiles_freshness_status``):

* ``fresh``         imagery young enough for its sector;
* ``stale_warn``    old, usable with a warning;
* ``stale_reject``  too old, not to be matched against;
* ``unknown``       never evaluated.

``sector_classifications`` names the operational sectors and how volatile
their ground is (``active_conflict``, ``stable_rear``, ...).

Revision ID: 0001
Revises:
Create Date: 2026-05-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BASELINE_FRESHNESS = ("fresh", "stale_warn", "stale_reject", "unknown")


def freshness_check(values: tuple[str, ...]) -> str:
    return "freshness_status IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.create_table(
        "tiles",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column("zoom", sa.SmallInteger, nullable=False),
        sa.Column("x", sa.Integer, nullable=False),
        sa.Column("y", sa.Integer, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("flight_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("latitude", sa.Float(precision=53), nullable=False),
        sa.Column("longitude", sa.Float(precision=53), nullable=False),
        sa.Column("captured_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("freshness_status", sa.Text, nullable=False, server_default=sa.text("'unknown'")),
        sa.Column(
            "tile_quality_metadata",
            postgresql.JSONB,
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
        sa.Column("file_path", sa.Text, nullable=False),
        sa.Column(
            "created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(freshness_check(BASELINE_FRESHNESS), name="ck_tiles_freshness_status"),
        sa.CheckConstraint("zoom BETWEEN 0 AND 24", name="ck_tiles_zoom"),
        sa.CheckConstraint("x >= 0 AND y >= 0", name="ck_tiles_xy_nonneg"),
        sa.CheckConstraint(
            "latitude BETWEEN -90 AND 90 AND longitude BETWEEN -180 AND 180",
            name="ck_tiles_latlon",
        ),
    )
    op.create_index("idx_tiles_zoom_x_y", "tiles", ["zoom", "x", "y"])
    op.create_index("idx_tiles_captured_at", "tiles", ["captured_at"])

    op.create_table(
        "sector_classifications",
        sa.Column("sector_id", sa.Text, primary_key=True),
        sa.Column("classification", sa.Text, nullable=False),
        sa.Column(
            "updated_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("sector_classifications")
    op.drop_index("idx_tiles_captured_at", table_name="tiles")
    op.drop_index("idx_tiles_zoom_x_y", table_name="tiles")
    op.drop_table("tiles")
