"""postal codes of the arrondissements municipaux; time zones of the communes that span zones

Revision ID: 0005
Revises: 0002

The codes people give for where they live: a postal code of Paris, Lyon or Marseille names an
arrondissement (75015 is Paris 15e), so the arrondissements keep their postal codes, as the
communes do; ``geo-engine geo load`` fills them (run it after this upgrade).

Time zones: the loader now gives each commune its own zone where its territory spans several
(geo_engine/territories/timezones.py). A database loaded before is corrected here (and by a reload, which
counts the corrected communes as updated). The values are frozen in this revision.
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Communes whose zone the former per-département rule got wrong, with their own.
TIME_ZONES = {
    "98718": "Pacific/Marquesas",  # Fatu-Hiva
    "98723": "Pacific/Marquesas",  # Hiva-Oa
    "98731": "Pacific/Marquesas",  # Nuku-Hiva
    "98746": "Pacific/Marquesas",  # Tahuata
    "98756": "Pacific/Marquesas",  # Ua-Huka
    "98757": "Pacific/Marquesas",  # Ua-Pou
    "98719": "Pacific/Gambier",  # Gambier
    "98413": "Asia/Dubai",  # Archipel des Crozet
    "98414": "Antarctica/DumontDUrville",  # La Terre-Adélie
    "98415": "Indian/Mayotte",  # Îles Éparses de l'océan Indien
}
FIX_TIME_ZONES = """
UPDATE commune AS c SET timezone = v.zone
FROM jsonb_each_text(CAST(:zones AS jsonb)) AS v(code, zone)
WHERE c.code = v.code AND c.timezone IS DISTINCT FROM v.zone
"""


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
    op.get_bind().execute(sa.text(FIX_TIME_ZONES), {"zones": json.dumps(TIME_ZONES)})


def downgrade() -> None:
    op.drop_column("arrondissement", "postal_codes")
