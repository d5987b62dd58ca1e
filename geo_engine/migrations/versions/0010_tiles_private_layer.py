"""tiles: a private projects layer apart from the cacheable public one, and tile_place

Revision ID: 0010_tiles
Revises: 0009

``private_projects_tile(z, x, y, viewer)`` answers only the private projects a viewer may see
(and their contributions), so that ``projects_tile(z, x, y, NULL)``, the same for everyone,
can be cached (api/tile_cache.py). ``tile_place`` is where the ``tiles`` consumer group last
saw each project and contribution, seeded here: the old place of a moved or hidden one.
"""

from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0010_tiles"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL = Path(__file__).resolve().parent.parent / "sql"


def upgrade() -> None:
    op.execute((SQL / "0010_private_tiles.sql").read_text(encoding="utf-8"))


def downgrade() -> None:
    op.execute("DROP TABLE tile_place")
    op.execute("DROP FUNCTION private_projects_tile(integer, integer, integer, bigint)")
