"""reusable geography: candidates of places, audiences of projects, arrondissement scopes

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL = Path(__file__).resolve().parent.parent / "sql"

LEVELS_0002 = "'commune', 'epci', 'departement', 'region'"
LEVELS = "'commune', 'arrondissement', 'epci', 'departement', 'region'"


def _run_sql(name: str) -> None:
    op.execute((SQL / name).read_text(encoding="utf-8"))


def _levels(levels: str) -> None:
    for table, column, name in (
        ("project_territory", "level", "ck_project_territory_level_known"),
        ("organisation", "territory_level", "ck_organisation_territory_level_known"),
    ):
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({column} IN ({levels}))")


def _territory_view(with_arrondissements: bool) -> None:
    op.execute(f"""
        CREATE OR REPLACE VIEW territory AS
            SELECT 'commune'::text AS level, code, name, geom FROM commune
            UNION ALL SELECT 'epci', siren, name, geom FROM epci
            UNION ALL SELECT 'departement', code, name, geom FROM departement
            UNION ALL SELECT 'region', code, name, geom FROM region
            {
        "UNION ALL SELECT 'arrondissement', a.code, a.name, coalesce(a.geom, c.geom)"
        " FROM arrondissement AS a JOIN commune AS c ON c.code = a.commune_code"
        if with_arrondissements
        else ""
    }
    """)


def upgrade() -> None:
    # A scope (or an organisation's home) may name a municipal arrondissement of Paris, Lyon or
    # Marseille; where the data has no outline (Lyon, Marseille) its commune's stands in.
    _levels(LEVELS)
    _territory_view(with_arrondissements=True)
    # Audiences: users by commune read from the index alone (user id and arrondissement
    # included), users by home point through a GiST index. Bulk placement
    # (pgcopy.constraints_deferred_to_the_end) drops and rebuilds every index of user_place
    # from its definition, so both survive it.
    op.execute("DROP INDEX ix_user_place_commune_code")
    op.execute(
        "CREATE INDEX ix_user_place_commune_code ON user_place (commune_code) "
        "INCLUDE (user_id, arrondissement_code)"
    )
    op.execute("CREATE INDEX idx_user_place_home ON user_place USING gist (home)")
    _run_sql("0003_candidates.sql")
    _run_sql("0003_audience.sql")


def downgrade() -> None:
    op.execute("DROP FUNCTION project_audience(bigint)")
    op.execute("DROP FUNCTION project_candidates(text[], geometry, bigint)")
    op.execute("DROP INDEX idx_user_place_home")
    op.execute("DROP INDEX ix_user_place_commune_code")
    op.execute("CREATE INDEX ix_user_place_commune_code ON user_place (commune_code)")
    op.execute("DELETE FROM project_territory WHERE level = 'arrondissement'")
    op.execute(
        "UPDATE organisation SET territory_level = NULL, territory_code = NULL "
        "WHERE territory_level = 'arrondissement'"
    )
    _territory_view(with_arrondissements=False)
    _levels(LEVELS_0002)
