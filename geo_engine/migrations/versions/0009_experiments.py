"""the growth team's experiments: experiments, exposures, the assignment hash, sign-up dates

Revision ID: 0009
Revises: 0008

``experiment`` holds the spec (contracts/experiments.py) as JSON plus the columns the
assignment reads set-wise (``geo_engine/experiments_assigned.sql``): surface, unit kind, salt,
layer slice, the variants' names and cumulative edges. ``experiment_exposure`` logs each time a
unit's variant acted on a user (a digest sent or held out, an alert, a ranking served), once
per reference: replays after a crash collide with themselves. No foreign keys, like the loop's
tables: erasure deletes exposures by user (consumers/erasure.py).

``experiment_bucket(salt, unit)`` is contracts.experiments.bucket: the first 32 bits of
MD5(salt ':' unit). ``app_user.created_at`` is the sign-up instant the return cohorts need;
users who existed before it get the migration's instant. ``inbox.digest_rank`` is where a sent
digest showed a row: the logged lists of the offline replay. ``digest.held_out`` marks a
period a digest experiment's holdout spent without a mail.
"""

from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL = Path(__file__).resolve().parent.parent / "sql"


def _bucket_function() -> None:
    # IMMUTABLE and a single SELECT: the planner inlines it into the assignment's statement.
    op.execute(
        """
        CREATE FUNCTION experiment_bucket(salt text, unit text) RETURNS bigint
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$ SELECT ('x' || substr(md5(salt || ':' || unit), 1, 8))::bit(32)::bigint $$
        """
    )


def _experiments() -> None:
    op.execute(
        """
        CREATE TABLE experiment (
            id            integer     GENERATED ALWAYS AS IDENTITY,
            name          text        NOT NULL,
            surface       text        NOT NULL,
            unit          text        NOT NULL,
            salt          text        NOT NULL,
            layer_lo      smallint    NOT NULL,
            layer_hi      smallint    NOT NULL,
            variant_names text[]      NOT NULL,
            variant_edges integer[]   NOT NULL,
            spec          jsonb       NOT NULL,
            status        text        NOT NULL DEFAULT 'draft',
            created_at    timestamptz NOT NULL DEFAULT now(),
            started_at    timestamptz,
            stopped_at    timestamptz,
            CONSTRAINT pk_experiment PRIMARY KEY (id),
            CONSTRAINT uq_experiment_name UNIQUE (name),
            CONSTRAINT ck_experiment_surface_known CHECK (surface IN ('ranking', 'digest', 'alerts')),
            CONSTRAINT ck_experiment_unit_known CHECK (unit IN ('user', 'commune', 'epci')),
            CONSTRAINT ck_experiment_status_known CHECK (status IN ('draft', 'running', 'paused', 'stopped')),
            CONSTRAINT ck_experiment_layer CHECK (0 <= layer_lo AND layer_lo < layer_hi AND layer_hi <= 100),
            CONSTRAINT ck_experiment_variants CHECK (
                cardinality(variant_names) = cardinality(variant_edges)
                AND cardinality(variant_names) >= 2)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE experiment_exposure (
            experiment_id integer     NOT NULL,
            user_id       bigint      NOT NULL,
            variant       text        NOT NULL,
            unit          text        NOT NULL,
            ref           text        NOT NULL,
            exposed_at    timestamptz NOT NULL,
            CONSTRAINT pk_experiment_exposure PRIMARY KEY (experiment_id, user_id, ref)
        )
        """
    )
    op.execute("CREATE INDEX ix_experiment_exposure_user_id ON experiment_exposure (user_id)")


def _sign_up() -> None:
    # now() is stable, so PostgreSQL stores the default once: no table rewrite.
    op.execute("ALTER TABLE app_user ADD COLUMN created_at timestamptz NOT NULL DEFAULT now()")


def _digest_ranks() -> None:
    # The position (1 = first) at which a sent digest showed an inbox row: the logged lists the
    # offline replay re-ranks (growth/replay.py). NULL for rows a digest did not show.
    op.execute("ALTER TABLE inbox ADD COLUMN digest_rank smallint")


def _digest_holdout() -> None:
    # A digest period a holdout spent without a mail (consumers/digest.py): no items, no
    # delivery, never sent. It ends the period for the user, as a sent digest does, and marks
    # which of their inbox rows a digest would have taken: only rows created since count as
    # new (digest_due.sql), so the holdout is due exactly when its control would be.
    op.execute("ALTER TABLE digest ADD COLUMN held_out boolean NOT NULL DEFAULT false")
    # digest_due.sql reads a user's last held-out period for every due user: a probe of this
    # small index, not a scan of all their digests.
    op.execute(
        "CREATE INDEX ix_digest_held_out ON digest (user_id, frequency, claimed_at) WHERE held_out"
    )


def _epci_tiles() -> None:
    # The EPCI outlines of the growth dashboard's choropleth (api/growth_page.py).
    op.execute((SQL / "0009_epci_tiles.sql").read_text(encoding="utf-8"))


def upgrade() -> None:
    _bucket_function()
    _experiments()
    _sign_up()
    _digest_ranks()
    _digest_holdout()
    _epci_tiles()


def downgrade() -> None:
    op.execute("DROP FUNCTION epcis_tile(integer, integer, integer)")
    op.execute("DROP MATERIALIZED VIEW epci_tile")
    op.execute("DROP INDEX ix_digest_held_out")
    op.execute("ALTER TABLE digest DROP COLUMN held_out")
    op.execute("ALTER TABLE inbox DROP COLUMN digest_rank")
    op.execute("ALTER TABLE app_user DROP COLUMN created_at")
    op.execute("DROP TABLE experiment_exposure")
    op.execute("DROP TABLE experiment")
    op.execute("DROP FUNCTION experiment_bucket(text, text)")
