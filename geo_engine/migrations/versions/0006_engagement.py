"""engagement, follows and recommendation feedback

Revision ID: 0006
Revises: 0005

What the recommender learns from and obeys: the organisations a user follows, what they
clicked on or took part in (one row per user, project and kind, counted), and what they told
it ("pas intéressé", "pas ma commune", "moins de ce thème"). Written by the write layer
(geo_engine/writes.py) with their outbox events, or in bulk by the fixtures; read set-wise by
geo_engine/engagement.py. ``NULLS NOT DISTINCT`` needs PostgreSQL 15 or later.
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _created_at(name: str = "created_at") -> "sa.Column[datetime]":
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "follow",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("organisation_id", sa.BigInteger(), nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_follow_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
            name=op.f("fk_follow_organisation_id_organisation"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "organisation_id", name=op.f("pk_follow")),
    )
    # "Who follows this organisation" (the fan-out of its new projects).
    op.create_index("ix_follow_organisation_id", "follow", ["organisation_id"])

    op.create_table(
        "engagement",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        _created_at("first_at"),
        _created_at("last_at"),
        sa.Column("count", sa.Integer(), server_default="1", nullable=False),
        sa.CheckConstraint(
            "kind IN ('participation', 'click')", name=op.f("ck_engagement_kind_known")
        ),
        sa.CheckConstraint("count >= 1", name=op.f("ck_engagement_count_positive")),
        sa.CheckConstraint("first_at <= last_at", name=op.f("ck_engagement_in_order")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_engagement_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_engagement_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "project_id", "kind", name=op.f("pk_engagement")),
    )
    # Popularity: participants per project, from the index alone.
    op.create_index("ix_engagement_project_id", "engagement", ["project_id", "kind"])

    op.create_table(
        "recommendation_feedback",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("project_id", sa.BigInteger(), nullable=True),
        sa.Column("theme", sa.Text(), nullable=True),
        _created_at(),
        sa.CheckConstraint(
            "kind IN ('not_interested', 'not_my_commune', 'less_of_theme')",
            name=op.f("ck_recommendation_feedback_kind_known"),
        ),
        sa.CheckConstraint(
            "CASE kind WHEN 'less_of_theme' THEN theme IS NOT NULL AND project_id IS NULL"
            " ELSE project_id IS NOT NULL AND theme IS NULL END",
            name=op.f("ck_recommendation_feedback_kind_target"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_recommendation_feedback_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_recommendation_feedback_project_id_project"),
            ondelete="CASCADE",
        ),
    )
    # One row per (user, kind, project, theme), NULLs equal: the same feedback twice is one row.
    op.execute(
        "CREATE UNIQUE INDEX uq_recommendation_feedback_user_id ON recommendation_feedback"
        " (user_id, kind, project_id, theme) NULLS NOT DISTINCT"
    )


def downgrade() -> None:
    op.drop_table("recommendation_feedback")
    op.drop_index("ix_engagement_project_id", table_name="engagement")
    op.drop_table("engagement")
    op.drop_index("ix_follow_organisation_id", table_name="follow")
    op.drop_table("follow")
