"""postal codes of the arrondissements municipaux

Revision ID: 0005
Revises: 0002

The codes people give for where they live: a postal code of Paris, Lyon or Marseille names an
arrondissement (75015 is Paris 15e), so the arrondissements keep their postal codes, as the
communes do. Filled by ``geo-engine geo load`` (a reload after this upgrade fills them, and
corrects the per-commune time zones of Polynésie française and the TAAF).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "arrondissement",
        sa.Column(
            "postal_codes",
            postgresql.ARRAY(sa.Text()),
            server_default="{}",
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("arrondissement", "postal_codes")
