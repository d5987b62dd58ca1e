"""the retention loop: consumed events, inbox, mail deliveries, digests, engagement events,
meetings; notification settings in the new words

Revision ID: 0008
Revises: 0007

Who writes what (``../shared/LOOP.md``): the consumers write ``consumed_event`` (idempotency by
event id, per consumer group), ``inbox`` (fan-out), ``mail_delivery`` and ``digest`` (claimed
before a mail is handed to SMTP) and ``engagement_event`` (opens, clicks, participations,
dismissals, unsubscribes, partitioned by month); the write layer writes ``meeting`` with its
outbox events. The inbox and the loop's own tables carry no foreign keys: a national fan-out
writes millions of rows, where per-row key checks would cost more than the rows, and erasure
deletes from every table by name (consumers/erasure.py, proven by a test that lists them).
Each domain has its own function below.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _notification_words() -> None:
    # contracts/users.py: immediate → instant, never → off.
    op.execute(
        """
        UPDATE app_user
           SET notifications = jsonb_set(notifications, '{frequency}',
                 CASE notifications->>'frequency' WHEN 'immediate' THEN '"instant"'::jsonb
                                                  ELSE '"off"'::jsonb END)
         WHERE notifications->>'frequency' IN ('immediate', 'never')
        """
    )


def _consumed_events() -> None:
    op.execute(
        """
        CREATE TABLE consumed_event (
            consumer    text        NOT NULL,
            event_id    uuid        NOT NULL,
            consumed_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_consumed_event PRIMARY KEY (consumer, event_id)
        )
        """
    )


def _inbox() -> None:
    # One row per user, project, kind (and meeting and reminder lead for meetings' kinds).
    # level: index into geo_engine.audience.LEVELS (the narrowest that reached the user);
    # priority: 2 a civic deadline in the user's own commune, 1 news, 0 a recommendation.
    # A row is delivered once: by an instant alert (alerted_at), or by one digest
    # (digest_frequency, digest_period); overflow_at marks an alert the budget pushed to the
    # next digest.
    op.execute(
        """
        CREATE TABLE inbox (
            user_id          bigint      NOT NULL,
            project_id       bigint      NOT NULL,
            kind             text        NOT NULL,
            meeting_id       bigint      NOT NULL DEFAULT 0,
            lead_days        smallint    NOT NULL DEFAULT 0,
            level            smallint    NOT NULL,
            priority         smallint    NOT NULL DEFAULT 1,
            relevance        real,
            reason           text        NOT NULL,
            event_id         uuid,
            created_at       timestamptz NOT NULL DEFAULT now(),
            read_at          timestamptz,
            alerted_at       timestamptz,
            overflow_at      timestamptz,
            digest_frequency text,
            digest_period    date,
            CONSTRAINT pk_inbox PRIMARY KEY (user_id, project_id, kind, meeting_id, lead_days),
            CONSTRAINT ck_inbox_kind_known CHECK (kind IN ('published', 'closing_soon',
                'results', 'meeting_announced', 'meeting_reminder', 'recommended')),
            CONSTRAINT ck_inbox_priority CHECK (priority BETWEEN 0 AND 2),
            CONSTRAINT ck_inbox_digest CHECK ((digest_frequency IS NULL) = (digest_period IS NULL)
                AND (digest_frequency IS NULL OR digest_frequency IN ('daily', 'weekly')))
        )
        """
    )


def _mail() -> None:
    # key: 'alert:<user>:<project>:<kind>:<meeting>:<lead>' or 'digest:<user>:<frequency>:<period>';
    # claimed (inserted) before the mail is handed to SMTP, sent_at once it was accepted.
    # message_id is derived from the key, so a resend after a crash is recognisably the same.
    # opened_at: its open pixel was first fetched (one notification.opened per mail);
    # link_fetched_at/_project: the last fetch of one of its links, which tells a mail
    # scanner's burst of fetches from a person's click (geo_engine/mail_actions.py).
    op.execute(
        """
        CREATE TABLE mail_delivery (
            key        text        NOT NULL,
            user_id    bigint      NOT NULL,
            kind       text        NOT NULL,
            message_id text        NOT NULL,
            claimed_at timestamptz NOT NULL DEFAULT now(),
            sent_at    timestamptz,
            attempts   smallint    NOT NULL DEFAULT 0,
            opened_at  timestamptz,
            link_fetched_at      timestamptz,
            link_fetched_project bigint,
            CONSTRAINT pk_mail_delivery PRIMARY KEY (key),
            CONSTRAINT uq_mail_delivery_message_id UNIQUE (message_id),
            CONSTRAINT ck_mail_delivery_kind_known CHECK (kind IN ('alert', 'digest'))
        )
        """
    )
    op.execute("CREATE INDEX ix_mail_delivery_user_id ON mail_delivery (user_id, claimed_at)")
    op.execute(
        "CREATE INDEX ix_mail_delivery_unsent ON mail_delivery (claimed_at) WHERE sent_at IS NULL"
    )


def _digests() -> None:
    # At most one digest per user, frequency and local period (the day, or the ISO week's
    # Monday), claimed before sending.
    op.execute(
        """
        CREATE TABLE digest (
            user_id      bigint      NOT NULL,
            frequency    text        NOT NULL,
            period_start date        NOT NULL,
            claimed_at   timestamptz NOT NULL DEFAULT now(),
            sent_at      timestamptz,
            item_count   integer     NOT NULL DEFAULT 0,
            CONSTRAINT pk_digest PRIMARY KEY (user_id, frequency, period_start),
            CONSTRAINT ck_digest_frequency_known CHECK (frequency IN ('daily', 'weekly'))
        )
        """
    )


def _engagement_events() -> None:
    # By month of occurred_at; the key holds the partition column, as PostgreSQL requires,
    # and both come from the event, so a replayed event collides with itself.
    op.execute(
        """
        CREATE TABLE engagement_event (
            event_id     uuid        NOT NULL,
            user_id      bigint      NOT NULL,
            kind         text        NOT NULL,
            project_id   bigint,
            notification text,
            occurred_at  timestamptz NOT NULL,
            recorded_at  timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_engagement_event PRIMARY KEY (event_id, occurred_at),
            CONSTRAINT ck_engagement_event_kind_known CHECK (kind IN ('opened', 'clicked',
                'participated', 'dismissed', 'unsubscribed'))
        ) PARTITION BY RANGE (occurred_at)
        """
    )
    op.execute("CREATE INDEX ix_engagement_event_user_id ON engagement_event (user_id)")
    op.execute("CREATE INDEX ix_engagement_event_project_id ON engagement_event (project_id, kind)")
    # Months are created ahead by ensure_engagement_partitions (called by the consumer
    # before each month); the default partition catches anything outside them.
    op.execute(
        """
        CREATE FUNCTION ensure_engagement_partitions(first_month date, months integer)
        RETURNS void LANGUAGE plpgsql AS $$
        DECLARE m date;
        BEGIN
          FOR i IN 0 .. months - 1 LOOP
            m := date_trunc('month', first_month)::date + make_interval(months => i);
            EXECUTE format(
              'CREATE TABLE IF NOT EXISTS %I PARTITION OF engagement_event'
              ' FOR VALUES FROM (%L) TO (%L)',
              'engagement_event_' || to_char(m, 'YYYY_MM'), m, m + interval '1 month');
          END LOOP;
        END $$
        """
    )
    op.execute("CREATE TABLE engagement_event_default PARTITION OF engagement_event DEFAULT")
    op.execute("SELECT ensure_engagement_partitions(date '2025-01-01', 48)")


def _meetings() -> None:
    op.execute(
        """
        CREATE TABLE meeting (
            id           bigint      NOT NULL,
            project_id   bigint      NOT NULL,
            kind         text        NOT NULL,
            title        text        NOT NULL,
            place        text        NOT NULL,
            location     geometry(Point, 4326),
            starts_at    timestamptz NOT NULL,
            ends_at      timestamptz NOT NULL,
            cancelled_at timestamptz,
            created_at   timestamptz NOT NULL DEFAULT now(),
            updated_at   timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_meeting PRIMARY KEY (id),
            CONSTRAINT fk_meeting_project_id_project FOREIGN KEY (project_id)
                REFERENCES project (id) ON DELETE CASCADE,
            CONSTRAINT ck_meeting_kind_known CHECK (kind IN ('reunion_publique', 'atelier',
                'balade_urbaine')),
            CONSTRAINT ck_meeting_in_order CHECK (starts_at < ends_at),
            CONSTRAINT ck_meeting_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
            CONSTRAINT ck_meeting_place_length CHECK (char_length(place) BETWEEN 1 AND 300)
        )
        """
    )
    op.execute("CREATE INDEX ix_meeting_project_id ON meeting (project_id)")
    op.execute(
        "CREATE INDEX ix_meeting_starts_at ON meeting (starts_at) WHERE cancelled_at IS NULL"
    )
    op.execute("CREATE INDEX ix_meeting_location ON meeting USING gist (location)")


def _outbox_reconciler() -> None:
    # The reconciler (consumers/relay.py) walks published events by publication time to find
    # those a consumer group never recorded; published rows leave ix_outbox_unpublished.
    op.execute(
        "CREATE INDEX ix_outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL"
    )


def upgrade() -> None:
    _notification_words()
    _consumed_events()
    _inbox()
    _mail()
    _digests()
    _engagement_events()
    _meetings()
    _outbox_reconciler()


def downgrade() -> None:
    op.execute("DROP INDEX ix_outbox_published")
    for table in (
        "meeting",
        "engagement_event",
        "digest",
        "mail_delivery",
        "inbox",
        "consumed_event",
    ):
        op.execute(f"DROP TABLE {table} CASCADE")
    op.execute("DROP FUNCTION ensure_engagement_partitions(date, integer)")
    op.execute(
        """
        UPDATE app_user
           SET notifications = jsonb_set(notifications, '{frequency}',
                 CASE notifications->>'frequency' WHEN 'instant' THEN '"immediate"'::jsonb
                                                  ELSE '"never"'::jsonb END)
         WHERE notifications->>'frequency' IN ('instant', 'off')
        """
    )
