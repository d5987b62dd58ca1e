"""territories and users

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "app_user",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("interests", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column(
            "notifications",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("timezone", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
    )
    op.create_geospatial_table(
        "epci",
        sa.Column("siren", sa.Text(collation="C"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("population", sa.Integer(), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("area_km2", sa.Float(), nullable=True),
        sa.Column("xxl", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("siren", name=op.f("pk_epci")),
    )
    op.create_table(
        "geodata_release",
        sa.Column("millesime", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "loaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("millesime", name=op.f("pk_geodata_release")),
    )
    op.create_geospatial_table(
        "region",
        sa.Column("code", sa.Text(collation="C"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("zone", sa.Text(), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_region")),
    )
    op.create_geospatial_table(
        "departement",
        sa.Column("code", sa.Text(collation="C"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("region_code", sa.Text(collation="C"), nullable=False),
        sa.Column("zone", sa.Text(), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["region_code"], ["region.code"], name=op.f("fk_departement_region_code_region")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_departement")),
    )
    op.create_geospatial_table(
        "commune",
        sa.Column("code", sa.Text(collation="C"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("departement_code", sa.Text(collation="C"), nullable=False),
        sa.Column("region_code", sa.Text(collation="C"), nullable=False),
        sa.Column("epci_siren", sa.Text(collation="C"), nullable=True),
        sa.Column("population", sa.Integer(), nullable=False),
        sa.Column("postal_codes", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("zone", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["departement_code"],
            ["departement.code"],
            name=op.f("fk_commune_departement_code_departement"),
        ),
        sa.ForeignKeyConstraint(
            ["epci_siren"], ["epci.siren"], name=op.f("fk_commune_epci_siren_epci")
        ),
        sa.ForeignKeyConstraint(
            ["region_code"], ["region.code"], name=op.f("fk_commune_region_code_region")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_commune")),
    )
    op.create_index("ix_commune_epci_siren", "commune", ["epci_siren"], unique=False)
    op.create_geospatial_table(
        "arrondissement",
        sa.Column("code", sa.Text(collation="C"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("commune_code", sa.Text(collation="C"), nullable=False),
        sa.Column("population", sa.Integer(), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["commune_code"], ["commune.code"], name=op.f("fk_arrondissement_commune_code_commune")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_arrondissement")),
    )
    op.create_table(
        "commune_former_code",
        sa.Column("former_code", sa.Text(collation="C"), nullable=False),
        sa.Column("commune_code", sa.Text(collation="C"), nullable=False),
        sa.ForeignKeyConstraint(
            ["commune_code"],
            ["commune.code"],
            name=op.f("fk_commune_former_code_commune_code_commune"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("former_code", name=op.f("pk_commune_former_code")),
    )
    op.create_geospatial_table(
        "commune_piece",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("commune_code", sa.Text(collation="C"), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POLYGON",
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
            ["commune_code"],
            ["commune.code"],
            name=op.f("fk_commune_piece_commune_code_commune"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commune_piece")),
    )
    op.create_geospatial_index(
        "idx_commune_piece_geom",
        "commune_piece",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        "ix_commune_piece_commune_code", "commune_piece", ["commune_code"], unique=False
    )
    op.create_table(
        "postal_code",
        sa.Column("postal_code", sa.Text(collation="C"), nullable=False),
        sa.Column("commune_code", sa.Text(collation="C"), nullable=False),
        sa.ForeignKeyConstraint(
            ["commune_code"],
            ["commune.code"],
            name=op.f("fk_postal_code_commune_code_commune"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("postal_code", "commune_code", name=op.f("pk_postal_code")),
    )
    op.create_geospatial_table(
        "user_place",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("commune_code", sa.Text(collation="C"), nullable=True),
        sa.Column("arrondissement_code", sa.Text(collation="C"), nullable=True),
        sa.Column("candidate_communes", sa.ARRAY(sa.Text(collation="C")), nullable=True),
        sa.Column("postal_code", sa.Text(collation="C"), nullable=True),
        sa.Column(
            "home",
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
        sa.CheckConstraint(
            "commune_code IS NOT NULL OR candidate_communes IS NOT NULL",
            name=op.f("ck_user_place_placed_or_pending"),
        ),
        sa.ForeignKeyConstraint(
            ["arrondissement_code"],
            ["arrondissement.code"],
            name=op.f("fk_user_place_arrondissement_code_arrondissement"),
        ),
        sa.ForeignKeyConstraint(
            ["commune_code"], ["commune.code"], name=op.f("fk_user_place_commune_code_commune")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_user_place_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_place")),
    )
    op.create_index("ix_user_place_commune_code", "user_place", ["commune_code"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_user_place_commune_code", table_name="user_place")
    op.drop_geospatial_table("user_place")
    op.drop_table("postal_code")
    op.drop_index("ix_commune_piece_commune_code", table_name="commune_piece")
    op.drop_geospatial_index(
        "idx_commune_piece_geom",
        table_name="commune_piece",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("commune_piece")
    op.drop_table("commune_former_code")
    op.drop_geospatial_table("arrondissement")
    op.drop_index("ix_commune_epci_siren", table_name="commune")
    op.drop_geospatial_table("commune")
    op.drop_geospatial_table("departement")
    op.drop_geospatial_table("region")
    op.drop_table("geodata_release")
    op.drop_geospatial_table("epci")
    op.drop_table("app_user")
