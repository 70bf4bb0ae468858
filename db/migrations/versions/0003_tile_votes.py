"""Per-cell vote tally: ``tile_votes``.

In-flight observations of a ground cell vote on whether the stored imagery
still matches the ground; the tally is kept per ``location_hash`` (the
UUIDv5 of ``z/x/y``), shared by every source and flight of that cell, and
ranks bbox query results. A separate table keeps ``tiles`` writes free of
vote traffic and lets votes outlive an evicted tile.

Revision ID: 0003
Revises: 0002
Create Date: 2026-05-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tile_votes",
        sa.Column("location_hash", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("agree", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("disagree", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.CheckConstraint("agree >= 0 AND disagree >= 0", name="ck_tile_votes_nonneg"),
    )


def downgrade() -> None:
    op.drop_table("tile_votes")
