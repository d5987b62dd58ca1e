"""the recommender's reads: population of a département or région from the index alone

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A project scoped to a département or région concerns the population of its communes
    # (recommender/sql/project_facts.sql): summed from these indexes, without the table.
    op.execute(
        "CREATE INDEX ix_commune_departement_code ON commune (departement_code) INCLUDE (population)"
    )
    op.execute("CREATE INDEX ix_commune_region_code ON commune (region_code) INCLUDE (population)")


def downgrade() -> None:
    op.execute("DROP INDEX ix_commune_region_code")
    op.execute("DROP INDEX ix_commune_departement_code")
