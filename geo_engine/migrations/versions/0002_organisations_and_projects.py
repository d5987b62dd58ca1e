"""organisations and projects

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geography, Geometry

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQL functions and views are kept as files of this revision: a later change gets a new file.
SQL = Path(__file__).resolve().parent.parent / "sql"


def _run_sql(name: str) -> None:
    op.execute((SQL / name).read_text(encoding="utf-8"))


def upgrade() -> None:
    op.create_table(
        "organisation",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("territory_level", sa.Text(), nullable=True),
        sa.Column("territory_code", sa.Text(collation="C"), nullable=True),
        sa.CheckConstraint(
            "kind IN ('commune', 'epci', 'departement', 'region', 'parlementaire', 'association', 'entreprise', 'syndicat')",
            name=op.f("ck_organisation_kind_known"),
        ),
        sa.CheckConstraint(
            "territory_level IN ('commune', 'epci', 'departement', 'region')",
            name=op.f("ck_organisation_territory_level_known"),
        ),
        sa.CheckConstraint(
            "(territory_level IS NULL) = (territory_code IS NULL)",
            name=op.f("ck_organisation_territory_complete"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisation")),
    )
    op.create_table(
        "organisation_member",
        sa.Column("organisation_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "role IN ('admin', 'agent', 'member')", name=op.f("ck_organisation_member_role_known")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
            name=op.f("fk_organisation_member_organisation_id_organisation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_organisation_member_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organisation_id", "user_id", name=op.f("pk_organisation_member")),
    )
    op.create_index(
        "ix_organisation_member_user_id", "organisation_member", ["user_id"], unique=False
    )
    op.create_geospatial_table(
        "project",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("organisation_id", sa.BigInteger(), nullable=False),
        sa.Column("space", sa.Text(), nullable=False),
        sa.Column("tool", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("themes", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("visibility", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("results_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scope_kind", sa.Text(), nullable=False),
        sa.Column(
            "location",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column(
            "place",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column(
            "place_geog",
            Geography(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeogFromText",
                name="geography",
            ),
            sa.Computed("place::geography", persisted=True),
            nullable=True,
        ),
        sa.Column(
            "place_3857",
            Geometry(
                geometry_type="POINT",
                srid=3857,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            sa.Computed("ST_Transform(place, 3857)", persisted=True),
            nullable=True,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "scope_kind IN ('national', 'territories', 'area', 'radius')",
            name=op.f("ck_project_scope_kind_known"),
        ),
        sa.CheckConstraint(
            "space IN ('territoires', 'loi', 'idees')", name=op.f("ck_project_space_known")
        ),
        sa.CheckConstraint(
            "status IN ('upcoming', 'open', 'closed', 'results')",
            name=op.f("ck_project_status_known"),
        ),
        sa.CheckConstraint(
            "tool IN ('consultation', 'questionnaire', 'boite_a_idees', 'debat', 'votation', 'carte_participative', 'mise_en_relation', 'petition', 'appel_a_projets', 'budget_participatif')",
            name=op.f("ck_project_tool_known"),
        ),
        sa.CheckConstraint(
            "visibility IN ('public', 'private')", name=op.f("ck_project_visibility_known")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
            name=op.f("fk_project_organisation_id_organisation"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project")),
    )
    op.create_geospatial_index(
        "idx_project_place",
        "project",
        ["place"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_geospatial_index(
        "idx_project_place_geog",
        "project",
        ["place_geog"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_geospatial_index(
        "idx_project_place_3857",
        "project",
        ["place_3857"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index("ix_project_organisation_id", "project", ["organisation_id"], unique=False)
    op.create_geospatial_table(
        "contribution",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), server_default="", nullable=False),
        sa.Column("author_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "geog",
            Geography(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeogFromText",
                name="geography",
                nullable=False,
            ),
            sa.Computed("geom::geography", persisted=True),
            nullable=False,
        ),
        sa.Column(
            "geom_3857",
            Geometry(
                geometry_type="POINT",
                srid=3857,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            sa.Computed("ST_Transform(geom, 3857)", persisted=True),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["app_user.id"],
            name=op.f("fk_contribution_author_id_app_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_contribution_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contribution")),
    )
    op.create_geospatial_index(
        "idx_contribution_geog",
        "contribution",
        ["geog"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_geospatial_index(
        "idx_contribution_geom",
        "contribution",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_geospatial_index(
        "idx_contribution_geom_3857",
        "contribution",
        ["geom_3857"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index("ix_contribution_project_id", "contribution", ["project_id"], unique=False)
    op.create_geospatial_table(
        "project_area",
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("radius_m", sa.Float(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_project_area_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_project_area")),
    )
    op.create_geospatial_index(
        "idx_project_area_geom",
        "project_area",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_table(
        "project_territory",
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(collation="C"), nullable=False),
        sa.CheckConstraint(
            "level IN ('commune', 'epci', 'departement', 'region')",
            name=op.f("ck_project_territory_level_known"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_project_territory_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "level", "code", name=op.f("pk_project_territory")),
    )
    op.create_index(
        "ix_project_territory_level_code", "project_territory", ["level", "code"], unique=False
    )
    _run_sql("0002_territory.sql")
    _run_sql("0002_visibility.sql")
    _run_sql("0002_tiles.sql")
    _run_sql("0002_features.sql")
    op.execute("CREATE INDEX ix_project_national ON project (id) WHERE scope_kind = 'national'")


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION projects_tile, communes_tile, project_feature, contribution_feature, "
        "visible_contributions, visible_projects"
    )
    op.execute("DROP MATERIALIZED VIEW departement_tile, commune_tile")
    op.execute("DROP VIEW territory")
    op.drop_index("ix_project_territory_level_code", table_name="project_territory")
    op.drop_table("project_territory")
    op.drop_geospatial_index(
        "idx_project_area_geom",
        table_name="project_area",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("project_area")
    op.drop_index("ix_contribution_project_id", table_name="contribution")
    op.drop_geospatial_index(
        "idx_contribution_geom",
        table_name="contribution",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_index(
        "idx_contribution_geog",
        table_name="contribution",
        postgresql_using="gist",
        column_name="geog",
    )
    op.drop_geospatial_table("contribution")
    op.drop_index("ix_project_organisation_id", table_name="project")
    op.drop_geospatial_index(
        "idx_project_place_geog",
        table_name="project",
        postgresql_using="gist",
        column_name="place_geog",
    )
    op.drop_geospatial_index(
        "idx_project_place", table_name="project", postgresql_using="gist", column_name="place"
    )
    op.drop_geospatial_table("project")
    op.drop_index("ix_organisation_member_user_id", table_name="organisation_member")
    op.drop_table("organisation_member")
    op.drop_table("organisation")
