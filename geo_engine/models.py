"""Write-side schema: territories, users' places, organisations and projects (alembic migrates
from this).

Heavy reads do not go through these classes: they are SQL files beside the code that runs them.
Geometries are WGS84 (SRID 4326) lon/lat, as in the source data.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from geoalchemy2 import Geography, Geometry
from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contracts.catalog import Level, OrganisationKind, Role, Space, Status, Tool, Visibility
from contracts.engagement import EngagementKind, FeedbackKind

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


StrEnumT = TypeVar("StrEnumT", bound=StrEnum)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# INSEE and SIREN codes compare byte by byte: "C" collation makes their indexes several times
# faster to build and probe than a linguistic one, and their order is the documented tie-break.
Code = Text(collation="C")


def _area() -> Geometry:
    return Geometry("MULTIPOLYGON", srid=4326, spatial_index=False)


class GeodataRelease(Base):
    """One row per millésime loaded; the highest is the one in force."""

    __tablename__ = "geodata_release"
    millesime: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(Text)
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Region(Base):
    __tablename__ = "region"
    code: Mapped[str] = mapped_column(Code, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    zone: Mapped[str] = mapped_column(Text)
    geom = mapped_column(_area(), nullable=True)


class Departement(Base):
    __tablename__ = "departement"
    code: Mapped[str] = mapped_column(Code, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    region_code: Mapped[str] = mapped_column(Code, ForeignKey("region.code"))
    zone: Mapped[str] = mapped_column(Text)
    geom = mapped_column(_area(), nullable=True)


class Epci(Base):
    """An intercommunalité; its outline is the union of its members' (computed in PostGIS)."""

    __tablename__ = "epci"
    siren: Mapped[str] = mapped_column(Code, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    population: Mapped[int] = mapped_column(Integer)
    member_count: Mapped[int] = mapped_column(Integer)
    area_km2: Mapped[float | None] = mapped_column(Float, nullable=True)
    xxl: Mapped[bool] = mapped_column(server_default="false")
    geom = mapped_column(_area(), nullable=True)


class Commune(Base):
    """A commune of the millésime in force, with or without an outline (COM, restored communes)."""

    __tablename__ = "commune"
    code: Mapped[str] = mapped_column(Code, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    departement_code: Mapped[str] = mapped_column(Code, ForeignKey("departement.code"))
    region_code: Mapped[str] = mapped_column(Code, ForeignKey("region.code"))
    epci_siren: Mapped[str | None] = mapped_column(Code, ForeignKey("epci.siren"), nullable=True)
    population: Mapped[int] = mapped_column(Integer)
    postal_codes: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    zone: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(Text)
    geom = mapped_column(_area(), nullable=True)

    __table_args__ = (
        Index("ix_commune_epci_siren", "epci_siren"),
        Index("ix_commune_departement_code", "departement_code", postgresql_include=["population"]),
        Index("ix_commune_region_code", "region_code", postgresql_include=["population"]),
    )


class CommunePiece(Base):
    """Commune outlines cut by ``ST_Subdivide``: small pieces make ``ST_Covers`` cheap."""

    __tablename__ = "commune_piece"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    commune_code: Mapped[str] = mapped_column(Code, ForeignKey("commune.code", ondelete="CASCADE"))
    geom = mapped_column(Geometry("POLYGON", srid=4326, spatial_index=True), nullable=False)

    __table_args__ = (Index("ix_commune_piece_commune_code", "commune_code"),)


class CommuneFormerCode(Base):
    """An INSEE code absorbed by a commune nouvelle (the data's ``anciensCodes``)."""

    __tablename__ = "commune_former_code"
    former_code: Mapped[str] = mapped_column(Code, primary_key=True)
    commune_code: Mapped[str] = mapped_column(Code, ForeignKey("commune.code", ondelete="CASCADE"))


class PostalCode(Base):
    __tablename__ = "postal_code"
    postal_code: Mapped[str] = mapped_column(Code, primary_key=True)
    commune_code: Mapped[str] = mapped_column(
        Code, ForeignKey("commune.code", ondelete="CASCADE"), primary_key=True
    )


class Arrondissement(Base):
    """Arrondissements municipaux of Paris, Lyon and Marseille (outlines for Paris only)."""

    __tablename__ = "arrondissement"
    code: Mapped[str] = mapped_column(Code, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    commune_code: Mapped[str] = mapped_column(Code, ForeignKey("commune.code"))
    population: Mapped[int] = mapped_column(Integer)
    postal_codes: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    geom = mapped_column(_area(), nullable=True)


class AppUser(Base):
    """A citizen's profile; where they live is in ``user_place``."""

    __tablename__ = "app_user"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    interests: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    notifications: Mapped[dict[str, object]] = mapped_column(JSONB, server_default="{}")
    timezone: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Sign-up (migration 0009): the return cohorts of the growth metrics.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class UserPlace(Base):
    """Where a user lives: a commune, or (ambiguous postal code) the candidates to choose from.

    ``home`` is the coarsened point when one was given; the exact point is never stored.
    Kept apart from ``app_user`` so that bulk placement can write a new table and swap it in.
    """

    __tablename__ = "user_place"
    user_id: Mapped[int] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True
    )
    commune_code: Mapped[str | None] = mapped_column(
        Code, ForeignKey("commune.code"), nullable=True
    )
    arrondissement_code: Mapped[str | None] = mapped_column(
        Code, ForeignKey("arrondissement.code"), nullable=True
    )
    candidate_communes: Mapped[list[str] | None] = mapped_column(ARRAY(Code), nullable=True)
    postal_code: Mapped[str | None] = mapped_column(Code, nullable=True)
    home = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=True)

    __table_args__ = (
        CheckConstraint(
            "commune_code IS NOT NULL OR candidate_communes IS NOT NULL", name="placed_or_pending"
        ),
        # Audiences read users by commune from the index alone (migration 0003).
        Index(
            "ix_user_place_commune_code",
            "commune_code",
            postgresql_include=["user_id", "arrondissement_code"],
        ),
        Index("idx_user_place_home", "home", postgresql_using="gist"),
    )


def _one_of(column: str, values: type[StrEnumT]) -> CheckConstraint:
    listed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=f"{column}_known")


def _point(*, indexed: bool) -> Geometry:
    return Geometry("POINT", srid=4326, spatial_index=indexed)


class Organisation(Base):
    """Who runs projects; ``territory_*`` is its home territory (a commune's own commune...)."""

    __tablename__ = "organisation"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    territory_level: Mapped[str | None] = mapped_column(Text, nullable=True)
    territory_code: Mapped[str | None] = mapped_column(Code, nullable=True)

    __table_args__ = (
        _one_of("kind", OrganisationKind),
        _one_of("territory_level", Level),
        CheckConstraint(
            "(territory_level IS NULL) = (territory_code IS NULL)", name="territory_complete"
        ),
    )


class OrganisationMember(Base):
    """Membership is what lets a user see the organisation's private projects."""

    __tablename__ = "organisation_member"
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        _one_of("role", Role),
        Index("ix_organisation_member_user_id", "user_id"),
    )


class Project(Base):
    """A participation project. Reads go through ``visible_projects(viewer)``, never this table.

    ``place`` is where the map shows it: its ``location`` when given, else a point inside its
    scope; national projects have none. ``place_geog`` is the same point as geography, so that
    nearby queries walk an index in metres (``<->``); ``place_3857`` is it in Web Mercator, so
    that tiles neither transform nor miss an index.
    """

    __tablename__ = "project"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    space: Mapped[str] = mapped_column(Text)
    tool: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default="")
    themes: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    visibility: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    opens_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closes_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    results_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    scope_kind: Mapped[str] = mapped_column(Text)
    location = mapped_column(_point(indexed=False), nullable=True)
    place = mapped_column(_point(indexed=True), nullable=True)
    place_geog = mapped_column(
        Geography("POINT", srid=4326, spatial_index=True),
        Computed("place::geography", persisted=True),
        nullable=True,
    )
    place_3857 = mapped_column(
        Geometry("POINT", srid=3857, spatial_index=True),
        Computed("ST_Transform(place, 3857)", persisted=True),
        nullable=True,
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        _one_of("space", Space),
        _one_of("tool", Tool),
        _one_of("visibility", Visibility),
        _one_of("status", Status),
        CheckConstraint(
            "scope_kind IN ('national', 'territories', 'area', 'radius')", name="scope_kind_known"
        ),
        Index("ix_project_organisation_id", "organisation_id"),
        # "What concerns commune C" adds every national project: a small partial index.
        Index("ix_project_national", "id", postgresql_where=text("scope_kind = 'national'")),
    )


class ProjectTerritory(Base):
    """A territory named by a project's scope; the btree answers "what concerns commune C"."""

    __tablename__ = "project_territory"
    project_id: Mapped[int] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), primary_key=True
    )
    level: Mapped[str] = mapped_column(Text, primary_key=True)
    code: Mapped[str] = mapped_column(Code, primary_key=True)

    __table_args__ = (
        _one_of("level", Level),
        Index("ix_project_territory_level_code", "level", "code"),
    )


class ProjectArea(Base):
    """A drawn area, or a point with a radius turned into its polygon (``radius_m`` kept)."""

    __tablename__ = "project_area"
    project_id: Mapped[int] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), primary_key=True
    )
    radius_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False)


class Contribution(Base):
    """A point on a participatory map; it is visible exactly when its project is."""

    __tablename__ = "contribution"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, server_default="")
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("app_user.id", ondelete="SET NULL"), nullable=True
    )
    geom = mapped_column(_point(indexed=True), nullable=False)
    geog = mapped_column(
        Geography("POINT", srid=4326, spatial_index=True),
        Computed("geom::geography", persisted=True),
        nullable=False,
    )
    geom_3857 = mapped_column(
        Geometry("POINT", srid=3857, spatial_index=True),
        Computed("ST_Transform(geom, 3857)", persisted=True),
        nullable=False,
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_contribution_project_id", "project_id"),)


class Follow(Base):
    """An organisation a user follows: its projects become the user's candidates."""

    __tablename__ = "follow"
    user_id: Mapped[int] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True
    )
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_follow_organisation_id", "organisation_id"),)


class Engagement(Base):
    """What a user did with a project: clicked on it, or took part; ``count`` times between
    ``first_at`` and ``last_at``. The recommender learns from these rows."""

    __tablename__ = "engagement"
    user_id: Mapped[int] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[int] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(Text, primary_key=True)
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    count: Mapped[int] = mapped_column(Integer, server_default="1")

    __table_args__ = (
        _one_of("kind", EngagementKind),
        CheckConstraint("count >= 1", name="count_positive"),
        CheckConstraint("first_at <= last_at", name="in_order"),
        # Popularity: participants per project, from the index alone.
        Index("ix_engagement_project_id", "project_id", "kind"),
    )


class RecommendationFeedback(Base):
    """What a user told the recommender: a project (``not_interested``, ``not_my_commune``)
    or a theme (``less_of_theme``). One row per (user, kind, project, theme), NULLs equal."""

    __tablename__ = "recommendation_feedback"
    __mapper_args__ = {"primary_key": ["user_id", "kind", "project_id", "theme"]}
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(Text)
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), nullable=True
    )
    theme: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        _one_of("kind", FeedbackKind),
        CheckConstraint(
            "CASE kind WHEN 'less_of_theme' THEN theme IS NOT NULL AND project_id IS NULL"
            " ELSE project_id IS NOT NULL AND theme IS NULL END",
            name="kind_target",
        ),
        Index(
            "uq_recommendation_feedback_user_id",
            "user_id",
            "kind",
            "project_id",
            "theme",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )


class Outbox(Base):
    """Domain events written in the same transaction as the rows they announce
    (``contracts/events.py`` gives each type's shape). The relay publishes the rows whose
    ``published_at`` is null, oldest first, and sets it; nothing publishes yet."""

    __tablename__ = "outbox"
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    type: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(SmallInteger)
    payload: Mapped[dict[str, object]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        Index(
            "ix_outbox_unpublished",
            "created_at",
            postgresql_where=text("published_at IS NULL"),
        ),
    )
